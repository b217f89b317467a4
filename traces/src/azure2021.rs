//! The Azure Functions 2021 trace (Zhang et al., SOSP '21): `app,func,end_timestamp,duration`,
//! both in seconds; an invocation starts at `end_timestamp − duration`.
//!
//! The file is not assumed sorted by start. It is re-sorted with bounded memory: rows are read
//! in runs of `chunk_rows`, each run sorted by (start, function) and, if the file holds more
//! than one run, spilled to a temporary file of fixed-size binary records; the stream then
//! merges the runs (a k-way merge over as many readers as runs). Memory is one run plus one
//! buffered record per run; the 2 M-row real trace with the default 1 M-row runs needs about
//! 48 MB. Functions are keyed on (app, func) and numbered in order of first appearance.

use crate::rows::{SkippedRows, each_row, open_with_header, row_error, seconds};
use crate::tempdir::TempDir;
use crate::{Arrival, ArrivalSource, Nanos, TraceError, secs_to_ns};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One function of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Function2021 {
    pub app: String,
    pub func: String,
    pub invocations: u64,
    /// Mean duration, seconds.
    pub mean_duration_s: f64,
}

/// What reading found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report2021 {
    pub rows: u64,
    /// Rows whose start (end − duration) fell before 0: started at 0 instead.
    pub clamped_starts: u64,
    pub runs: usize,
    pub skipped: SkippedRows,
}

impl std::fmt::Display for Report2021 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rows: {}; starts before 0 clamped to 0: {}; sorted runs: {}; malformed rows skipped: {}",
            self.rows, self.clamped_starts, self.runs, self.skipped.count
        )?;
        for e in &self.skipped.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    start: Nanos,
    func: u32,
    duration: Nanos,
}

const REC_BYTES: usize = 20;

impl Rec {
    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&self.start.to_le_bytes())?;
        out.write_all(&self.func.to_le_bytes())?;
        out.write_all(&self.duration.to_le_bytes())
    }
    fn read(input: &mut impl Read) -> std::io::Result<Option<Rec>> {
        let mut b = [0u8; REC_BYTES];
        match input.read_exact(&mut b) {
            Ok(()) => Ok(Some(Rec {
                start: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
                func: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
                duration: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Where the sorted runs are.
#[derive(Debug)]
enum Runs {
    /// The whole file fitted in one run.
    Memory(Arc<Vec<Rec>>),
    /// Spilled runs, deleted with the directory.
    Files { dir: Arc<TempDir>, paths: Vec<PathBuf> },
}

/// A read, re-sorted 2021 trace.
#[derive(Debug)]
pub struct Azure2021 {
    pub functions: Vec<Function2021>,
    pub report: Report2021,
    runs: Runs,
}

/// Reads `path`, sorting by start in runs of `chunk_rows`.
pub fn read(path: &Path, chunk_rows: usize, skip_bad_rows: bool) -> Result<Azure2021, TraceError> {
    let (mut rdr, _) = open_with_header(path, &["app", "func", "end_timestamp", "duration"])?;
    let chunk_rows = chunk_rows.max(1);
    let mut report = Report2021::default();
    let mut ids: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut functions: Vec<Function2021> = Vec::new();
    let mut run: Vec<Rec> = Vec::with_capacity(chunk_rows.min(1 << 20));
    let mut spilled: Vec<PathBuf> = Vec::new();
    let mut dir: Option<TempDir> = None;
    let spill = |run: &mut Vec<Rec>, dir: &mut Option<TempDir>, spilled: &mut Vec<PathBuf>| -> Result<(), TraceError> {
        run.sort_unstable();
        if dir.is_none() {
            *dir = Some(TempDir::new("azure2021").map_err(|source| TraceError::Io {
                path: std::env::temp_dir(),
                source,
            })?);
        }
        let p = dir
            .as_ref()
            .expect("created")
            .path()
            .join(format!("run-{}.bin", spilled.len()));
        let io = |source| TraceError::Io {
            path: p.clone(),
            source,
        };
        let mut out = BufWriter::new(File::create(&p).map_err(io)?);
        for r in run.iter() {
            r.write(&mut out).map_err(io)?;
        }
        out.flush().map_err(io)?;
        spilled.push(p);
        run.clear();
        Ok(())
    };
    each_row(&mut rdr, path, skip_bad_rows, &mut report.skipped, |line, rec| {
        if rec.len() != 4 {
            return Err(row_error(
                path,
                line,
                "row",
                format!("has {} fields; expected 4 (app,func,end_timestamp,duration)", rec.len()),
            ));
        }
        if rec[0].is_empty() || rec[1].is_empty() {
            return Err(row_error(
                path,
                line,
                if rec[0].is_empty() { "app" } else { "func" },
                "is empty; expected a hash",
            ));
        }
        let end = seconds(&rec[2]).map_err(|m| row_error(path, line, "end_timestamp", m))?;
        let duration = seconds(&rec[3]).map_err(|m| row_error(path, line, "duration", m))?;
        report.rows += 1;
        let key = (rec[0].to_string(), rec[1].to_string());
        let next_id = ids.len() as u32;
        let id = *ids.entry(key).or_insert_with(|| {
            functions.push(Function2021 {
                app: rec[0].to_string(),
                func: rec[1].to_string(),
                invocations: 0,
                mean_duration_s: 0.0,
            });
            next_id
        });
        let f = &mut functions[id as usize];
        f.invocations += 1;
        f.mean_duration_s += (duration - f.mean_duration_s) / f.invocations as f64;
        let start = if end >= duration {
            end - duration
        } else {
            report.clamped_starts += 1;
            0.0
        };
        run.push(Rec {
            start: secs_to_ns(start),
            func: id,
            duration: secs_to_ns(duration),
        });
        if run.len() >= chunk_rows {
            spill(&mut run, &mut dir, &mut spilled)?;
        }
        Ok(())
    })?;
    let runs = if spilled.is_empty() {
        run.sort_unstable();
        report.runs = 1;
        Runs::Memory(Arc::new(run))
    } else {
        if !run.is_empty() {
            spill(&mut run, &mut dir, &mut spilled)?;
        }
        report.runs = spilled.len();
        Runs::Files {
            dir: Arc::new(dir.expect("spilled")),
            paths: spilled,
        }
    };
    Ok(Azure2021 {
        functions,
        report,
        runs,
    })
}

/// The arrivals of a read 2021 trace, in start order.
pub struct Azure2021Stream {
    memory: Option<(Arc<Vec<Rec>>, usize)>,
    readers: Vec<BufReader<File>>,
    paths: Vec<PathBuf>,
    heap: BinaryHeap<Reverse<(Rec, usize)>>,
    use_durations: bool,
    _dir: Option<Arc<TempDir>>,
}

impl Azure2021Stream {
    /// Streams `trace`; with `use_durations`, each arrival carries its row's duration.
    pub fn new(trace: &Azure2021, use_durations: bool) -> Result<Self, TraceError> {
        let mut s = Azure2021Stream {
            memory: None,
            readers: Vec::new(),
            paths: Vec::new(),
            heap: BinaryHeap::new(),
            use_durations,
            _dir: None,
        };
        match &trace.runs {
            Runs::Memory(v) => s.memory = Some((v.clone(), 0)),
            Runs::Files { dir, paths } => {
                s._dir = Some(dir.clone());
                for (i, p) in paths.iter().enumerate() {
                    let io = |source| TraceError::Io {
                        path: p.clone(),
                        source,
                    };
                    let mut r = BufReader::with_capacity(1 << 16, File::open(p).map_err(io)?);
                    if let Some(rec) = Rec::read(&mut r).map_err(io)? {
                        s.heap.push(Reverse((rec, i)));
                    }
                    s.readers.push(r);
                    s.paths.push(p.clone());
                }
            }
        }
        Ok(s)
    }

    fn arrival(&self, r: Rec) -> Arrival {
        Arrival {
            time: r.start,
            func: r.func,
            duration: self.use_durations.then_some(r.duration.max(1)),
        }
    }
}

impl ArrivalSource for Azure2021Stream {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        if let Some((v, pos)) = &mut self.memory {
            let r = v.get(*pos).copied();
            *pos += 1;
            return Ok(r.map(|r| self.arrival(r)));
        }
        let Some(Reverse((rec, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let path = &self.paths[i];
        if let Some(next) = Rec::read(&mut self.readers[i]).map_err(|source| TraceError::Io {
            path: path.clone(),
            source,
        })? {
            self.heap.push(Reverse((next, i)));
        }
        Ok(Some(self.arrival(rec)))
    }
}
