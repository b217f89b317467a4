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
use std::path::Path;

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

/// Reads `runs.csv` written for `info`.
pub fn read_runs(dir: &Path, info: &SweepInfo) -> Result<Vec<RunRow>, String> {
    let path = dir.join("runs.csv");
    let at = |line: u64, what: String| format!("{}:{line}: {what}", path.display());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(at(
            text.lines().count() as u64,
            "the last line has no line end: the file was cut short".into(),
        ));
    }
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = csv_header(&mut r, &path)?;
    let fixed = 4 + info.axes.len();
    let expected: Vec<String> = ["run", "point", "replicate", "seed"]
        .iter()
        .map(|s| s.to_string())
        .chain(info.axes.iter().map(|a| a.key.clone()))
        .collect();
    if header.len() < fixed || header[..fixed] != expected[..] {
        return Err(at(
            1,
            format!("expected the columns to start with {}", expected.join(",")),
        ));
    }
    let mut rows = Vec::new();
    let mut seen = vec![false; info.runs];
    for rec in r.records() {
        let rec = rec.map_err(|e| at(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let field = |k: usize| rec.get(k).unwrap_or("");
        let int = |k: usize| -> Result<u64, String> {
            field(k)
                .parse::<u64>()
                .map_err(|_| at(line, format!("{}: `{}` is not a whole number", header[k], field(k))))
        };
        let mut metrics = Vec::new();
        for (k, name) in header.iter().enumerate().skip(fixed) {
            let v = field(k);
            if !v.is_empty() {
                let x = v
                    .parse::<f64>()
                    .map_err(|_| at(line, format!("{name}: `{v}` is not a number")))?;
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
        check_run_row(&row, info, &mut seen).map_err(|m| at(line, m))?;
        rows.push(row);
    }
    Ok(rows)
}

/// A row's run, point and replicate within the sweep's (`sweep.json`), each run once.
fn check_run_row(row: &RunRow, info: &SweepInfo, seen: &mut [bool]) -> Result<(), String> {
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
    within("run", row.run, info.runs)?;
    within("point", row.point, info.points)?;
    within("replicate", row.replicate as usize, info.seeds.len())?;
    if std::mem::replace(&mut seen[row.run], true) {
        return Err(format!("run: {} appears twice", row.run));
    }
    Ok(())
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
