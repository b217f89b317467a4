//! `invocations.csv`: one row per invocation, streamed as invocations end.
//!
//! Columns: `id,function,arrival_s,start_s,end_s,queue_s,setup_s,exec_s,cold,node,gpu,outcome`.
//! Times are seconds with nine decimals, printed exactly from integer nanoseconds; a stage the
//! invocation never reached is empty. Rows appear in the order invocations end; `id` is the
//! arrival order. `outcome` is `completed`, `rejected:<reason>` or `unfinished`.

use crate::atomic::StreamedFile;
use gpushare_sim::record::{InvocationRecord, RecordSink};
use gpushare_sim::time::{Nanos, write_secs};
use std::io;
use std::path::Path;

/// The header line.
pub const HEADER: &str = "id,function,arrival_s,start_s,end_s,queue_s,setup_s,exec_s,cold,node,gpu,outcome\n";

/// Writes invocation records to a CSV file, atomically on [`RecordSink::finish`].
pub struct InvocationCsv {
    file: StreamedFile,
    line: String,
}

impl InvocationCsv {
    /// Starts `path` (written as `path.tmp` until finished).
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(InvocationCsv {
            file: StreamedFile::create(path, HEADER, "invocations.csv")?,
            line: String::with_capacity(256),
        })
    }
}

fn opt_secs(out: &mut String, v: Option<Nanos>) {
    if let Some(ns) = v {
        write_secs(out, ns);
    }
    out.push(',');
}

fn opt_u32(out: &mut String, v: Option<u32>) {
    if let Some(n) = v {
        use std::fmt::Write;
        let _ = write!(out, "{n}");
    }
    out.push(',');
}

/// Quotes a CSV field if it needs it.
fn push_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

impl RecordSink for InvocationCsv {
    fn record(&mut self, r: &InvocationRecord<'_>) -> io::Result<()> {
        use std::fmt::Write as _;
        let l = &mut self.line;
        l.clear();
        let _ = write!(l, "{},", r.id);
        push_field(l, r.function);
        l.push(',');
        opt_secs(l, Some(r.arrival));
        opt_secs(l, r.start);
        opt_secs(l, r.end);
        opt_secs(l, r.queue);
        opt_secs(l, r.setup);
        opt_secs(l, r.exec);
        l.push_str(if r.cold { "true," } else { "false," });
        opt_u32(l, r.node);
        opt_u32(l, r.gpu);
        l.push_str(r.outcome.name());
        l.push('\n');
        self.file.append(l.as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.finish()
    }
}
