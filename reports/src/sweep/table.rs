//! A sweep's tables on disk, and reading them back (for `merge` and `plot`).
//!
//! - `runs.csv`: one row per run — `run,point,replicate,seed`, one column per axis (the
//!   value's label), then one column per metric (every numeric run-wide figure of
//!   `summary.csv`, named as there, e.g. `latency_s.end_to_end.p99`). Wide: one line per run.
//! - `summary.csv`: tidy, one row per point and metric — `point`, the axes, then
//!   `metric,n,mean,std,ci95_low,ci95_high,min,max` over the point's seeds.
//! - `sweep.json`: what was swept (scenario, overrides, axes and their labels, seeds, counts,
//!   shard), so that shards can be checked against each other and figures labelled.
//!
//! Numbers are written in Rust's shortest round-trip form, so reading a table back gives the
//! same values bit for bit; aggregates are always computed from `runs.csv`'s numbers. The
//! tables are written, as the runs complete, by [`super::writer`].

use crate::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// One run's row.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub run: usize,
    pub point: usize,
    pub replicate: u32,
    pub seed: u64,
    /// The label of the point's value on each axis.
    pub labels: Vec<String>,
    pub metrics: Vec<(String, f64)>,
}

/// What was swept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepInfo {
    pub scenario: String,
    pub file: String,
    /// Command-line overrides applied to every point.
    pub overrides: Vec<String>,
    pub axes: Vec<AxisInfo>,
    /// The seed of each replicate (the same for every point).
    pub seeds: Vec<u64>,
    pub points: usize,
    pub runs: usize,
    /// `"I/N"` when this directory holds shard I of N.
    pub shard: Option<String>,
}

/// One axis in `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxisInfo {
    pub key: String,
    pub labels: Vec<String>,
}

fn csv_err(e: csv::Error) -> io::Error {
    io::Error::other(e)
}

/// One CSV record as the `csv` crate writes it (a record's bytes do not depend on the records
/// before it, so records written one by one join into the file one writer would write).
pub(crate) fn record_bytes<I, T>(fields: I) -> io::Result<Vec<u8>>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).map_err(csv_err)?;
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// The header row of a CSV file being read from `path`.
pub(crate) fn csv_header<R: io::Read>(r: &mut csv::Reader<R>, path: &Path) -> Result<Vec<String>, String> {
    Ok(r.headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(String::from)
        .collect())
}

/// The rows of a `runs.csv` written for a sweep, read one at a time (a shard's, in `merge`,
/// without holding them all).
pub struct RunsReader {
    path: PathBuf,
    header: Vec<String>,
    /// The columns before the metrics: run, point, replicate, seed and the axes.
    fixed: usize,
    records: csv::Reader<io::BufReader<std::fs::File>>,
    record: csv::StringRecord,
    /// Runs, points and replicates of the sweep.
    counts: (usize, usize, usize),
}

impl RunsReader {
    /// Opens `dir/runs.csv` written for `info` and checks its header.
    pub fn open(dir: &Path, info: &SweepInfo) -> Result<RunsReader, String> {
        let path = dir.join("runs.csv");
        let io_err = |e: io::Error| format!("{}: {e}", path.display());
        let mut file = std::fs::File::open(&path).map_err(io_err)?;
        if let Some(lines) = cut_short(&mut file).map_err(io_err)? {
            return Err(format!(
                "{}:{lines}: the last line has no line end: the file was cut short",
                path.display()
            ));
        }
        let mut records = csv::Reader::from_reader(io::BufReader::with_capacity(1 << 16, file));
        let header = csv_header(&mut records, &path)?;
        let fixed = 4 + info.axes.len();
        let expected: Vec<String> = ["run", "point", "replicate", "seed"]
            .iter()
            .map(|s| s.to_string())
            .chain(info.axes.iter().map(|a| a.key.clone()))
            .collect();
        if header.len() < fixed || header[..fixed] != expected[..] {
            return Err(format!(
                "{}:1: expected the columns to start with {}",
                path.display(),
                expected.join(",")
            ));
        }
        Ok(RunsReader {
            path,
            header,
            fixed,
            records,
            record: csv::StringRecord::new(),
            counts: (info.runs, info.points, info.seeds.len()),
        })
    }

    /// `what` at line `line` of the file.
    pub fn at(&self, line: u64, what: String) -> String {
        format!("{}:{line}: {what}", self.path.display())
    }

    /// The next row and its line, its run, point and replicate within the sweep's; `None` at
    /// the end.
    pub fn next_row(&mut self) -> Result<Option<(RunRow, u64)>, String> {
        match self.records.read_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return Err(self.at(e.position().map_or(0, |p| p.line()), e.to_string())),
        }
        let (rec, header, fixed) = (&self.record, &self.header, self.fixed);
        let line = rec.position().map_or(0, |p| p.line());
        let field = |k: usize| rec.get(k).unwrap_or("");
        let int = |k: usize| -> Result<u64, String> {
            field(k)
                .parse::<u64>()
                .map_err(|_| self.at(line, format!("{}: `{}` is not a whole number", header[k], field(k))))
        };
        let mut metrics = Vec::new();
        for (k, name) in header.iter().enumerate().skip(fixed) {
            let v = field(k);
            if !v.is_empty() {
                let x = v
                    .parse::<f64>()
                    .map_err(|_| self.at(line, format!("{name}: `{v}` is not a number")))?;
                metrics.push((name.clone(), x));
            }
        }
        let row = RunRow {
            run: int(0)? as usize,
            point: int(1)? as usize,
            replicate: int(2)? as u32,
            seed: int(3)?,
            labels: (4..fixed).map(|k| field(k).to_string()).collect(),
            metrics,
        };
        check_run_row(&row, self.counts).map_err(|m| self.at(line, m))?;
        Ok(Some((row, line)))
    }
}

/// Where `file` does not end with a line end: its number of lines (the last one cut short).
fn cut_short(file: &mut std::fs::File) -> io::Result<Option<u64>> {
    use io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    file.seek(SeekFrom::Start(0))?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    let mut ends = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ends += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(Some(ends + 1))
}

/// Reads `runs.csv` written for `info`.
pub fn read_runs(dir: &Path, info: &SweepInfo) -> Result<Vec<RunRow>, String> {
    let mut reader = RunsReader::open(dir, info)?;
    let mut rows = Vec::new();
    let mut seen = vec![false; info.runs];
    while let Some((row, line)) = reader.next_row()? {
        if std::mem::replace(&mut seen[row.run], true) {
            return Err(reader.at(line, format!("run: {} appears twice", row.run)));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A row's run, point and replicate within the sweep's `(runs, points, replicates)`.
fn check_run_row(row: &RunRow, (runs, points, replicates): (usize, usize, usize)) -> Result<(), String> {
    let within = |name: &str, value: usize, count: usize| {
        if value < count {
            Ok(())
        } else {
            Err(format!(
                "{name}: {value} is out of range; sweep.json has {count} (0 to {})",
                count.saturating_sub(1)
            ))
        }
    };
    within("run", row.run, runs)?;
    within("point", row.point, points)?;
    within("replicate", row.replicate as usize, replicates)
}

/// Writes `sweep.json`.
pub fn write_info(dir: &Path, info: &SweepInfo) -> io::Result<()> {
    let mut json = serde_json::to_string_pretty(info).map_err(io::Error::other)?;
    json.push('\n');
    write_atomic(&dir.join("sweep.json"), json.as_bytes())
}

/// Reads `sweep.json`.
pub fn read_info(dir: &Path) -> Result<SweepInfo, String> {
    let path = dir.join("sweep.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (is {} a sweep's output directory?)",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
