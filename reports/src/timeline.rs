//! `timeline.json`: a run's spans as a Chrome / Perfetto trace (the Trace Event Format, JSON
//! object form), for looking at what a policy did. Open it in <https://ui.perfetto.dev> or
//! `chrome://tracing`.
//!
//! Each GPU is a process (`GPU 3 (a100-80gb, node 0)`), each instance slot a thread; on a slot's
//! track an instance's life holds its setup and its invocations, an invocation its copies,
//! kernels and host time. Times are microseconds of simulated time. With a window, only spans
//! that overlap it appear, clipped to it. The file is streamed and renamed into place when the
//! run ends.

use crate::atomic::AtomicFile;
use gpushare_sim::time::Nanos;
use gpushare_sim::timeline::{Span, SpanKind, Timeline};
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

/// Writes a Chrome trace.
pub struct ChromeTrace {
    file: Option<AtomicFile>,
    window: (Nanos, Nanos),
    named: BTreeSet<(u32, u32)>,
    first: bool,
}

impl ChromeTrace {
    /// Starts `path`; only spans overlapping `window` (start, end), if given, are written.
    pub fn create(path: &Path, window: Option<(Nanos, Nanos)>) -> io::Result<Self> {
        let mut file = AtomicFile::create(path)?;
        file.writer()
            .write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")?;
        Ok(ChromeTrace {
            file: Some(file),
            window: window.unwrap_or((0, Nanos::MAX)),
            named: BTreeSet::new(),
            first: true,
        })
    }

    fn event(&mut self, json: &str) -> io::Result<()> {
        let w = self.file.as_mut().expect("not finished").writer();
        if !self.first {
            w.write_all(b",\n")?;
        }
        self.first = false;
        w.write_all(json.as_bytes())
    }
}

fn micros(ns: Nanos) -> String {
    // Exact: three decimals of microseconds are the nanoseconds.
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Timeline for ChromeTrace {
    fn gpu(&mut self, gpu: u32, node: u32, device: &str) -> io::Result<()> {
        let name = escape(&format!("GPU {gpu} ({device}, node {node})"));
        self.event(&format!(
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{gpu},\"args\":{{\"name\":\"{name}\"}}}}"
        ))?;
        self.event(&format!(
            "{{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":{gpu},\"args\":{{\"sort_index\":{gpu}}}}}"
        ))
    }

    fn span(&mut self, s: &Span<'_>) -> io::Result<()> {
        let (from, to) = self.window;
        if s.end <= from || s.start >= to {
            return Ok(());
        }
        let (start, end) = (s.start.max(from), s.end.min(to));
        if self.named.insert((s.gpu, s.slot)) {
            self.event(&format!(
                "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":\"slot {}\"}}}}",
                s.gpu, s.slot, s.slot
            ))?;
        }
        let name = match s.kind {
            SpanKind::Instance | SpanKind::Invocation => escape(s.function),
            SpanKind::Setup => format!("setup {}", escape(s.function)),
            other => other.name().to_string(),
        };
        self.event(&format!(
            "{{\"name\":\"{name}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{},\"tid\":{}}}",
            s.kind.name(),
            micros(start),
            micros(end - start),
            s.gpu,
            s.slot
        ))
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.writer().write_all(b"\n]}\n")?;
            file.commit()?;
        }
        Ok(())
    }
}
