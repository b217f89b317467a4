//! Per-run series beside the summary: `latency_cdf.csv` (end-to-end latency at quantiles, for
//! CDF figures) and `timeseries.csv` (each GPU sampled over time, with `[output] timeseries_s`).
//!
//! `latency_cdf.csv`: `quantile,latency_s`, the quantiles of
//! `gpushare_sim::summary::cdf_quantiles` over measured completions (from the run's HDR
//! histogram: within 0.1 %). `timeseries.csv`: `time_s,gpu,utilisation,sm_occupancy,memory_mib,instances`,
//! one row per GPU per interval (utilisation and SM occupancy averaged over the interval ending
//! at `time_s`, memory and instances at that instant).

use crate::atomic::{StreamedFile, write_atomic};
use gpushare_sim::device::MIB;
use gpushare_sim::record::SampleSink;
use gpushare_sim::time::write_secs;
use gpushare_sim::world::GpuSample;
use std::fmt::Write;
use std::io;
use std::path::Path;

/// Header of `latency_cdf.csv`.
pub const CDF_HEADER: &str = "quantile,latency_s\n";
/// Header of `timeseries.csv`.
pub const TIMESERIES_HEADER: &str = "time_s,gpu,utilisation,sm_occupancy,memory_mib,instances\n";

/// Writes `latency_cdf.csv` into `dir`.
pub fn write_cdf(dir: &Path, cdf: &[(f64, f64)]) -> io::Result<()> {
    let mut out = String::from(CDF_HEADER);
    for (q, v) in cdf {
        let _ = writeln!(out, "{q},{v}");
    }
    write_atomic(&dir.join("latency_cdf.csv"), out.as_bytes())
}

/// Writes `timeseries.csv` into `dir` from samples held in memory (the replay's measured ones).
pub fn write_timeseries(dir: &Path, samples: &[GpuSample]) -> io::Result<()> {
    let mut out = TimeseriesCsv::create(dir)?;
    for s in samples {
        out.sample(s)?;
    }
    out.finish()
}

/// Streams `timeseries.csv` as the run takes its samples (written under a temporary name and
/// renamed when the run finishes), so that a long run at a fine interval never holds them all.
pub struct TimeseriesCsv {
    file: StreamedFile,
    path: std::path::PathBuf,
    line: String,
}

impl TimeseriesCsv {
    /// Starts `dir/timeseries.csv`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let path = dir.join("timeseries.csv");
        Ok(TimeseriesCsv {
            file: StreamedFile::create(&path, TIMESERIES_HEADER, "timeseries.csv")?,
            path,
            line: String::with_capacity(96),
        })
    }
}

impl SampleSink for TimeseriesCsv {
    fn sample(&mut self, s: &GpuSample) -> io::Result<()> {
        let l = &mut self.line;
        l.clear();
        write_secs(l, s.time);
        let _ = writeln!(
            l,
            ",{},{},{},{},{}",
            s.gpu,
            s.utilisation,
            s.sm_occupancy,
            format_args!("{:.3}", s.memory as f64 / MIB as f64),
            s.instances
        );
        self.file.append(l.as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        let path = &self.path;
        self.file
            .finish()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }
}

/// Reads a `latency_cdf.csv`: (quantile, seconds) pairs, quantiles rising from 0 to 1 (a
/// file that stops short of 1 was cut), latencies finite and non-negative.
pub fn read_cdf(path: &Path) -> Result<Vec<(f64, f64)>, String> {
    let mut last_q = -1.0;
    let rows = read_rows(path, CDF_HEADER, |f| {
        let q = num(f, 0, "quantile", 0.0, 1.0)?;
        if q <= last_q {
            return Err(format!(
                "field `quantile`: {q} does not rise above the previous row's {last_q}"
            ));
        }
        last_q = q;
        Ok((q, num(f, 1, "latency_s", 0.0, f64::MAX)?))
    })?;
    match rows.last() {
        Some(&(q, _)) if q < 1.0 => Err(format!(
            "{}: the CDF stops at quantile {q}; a whole latency_cdf.csv ends at 1 (the file was cut short?)",
            path.display()
        )),
        _ => Ok(rows),
    }
}

/// Reads a `timeseries.csv` into samples.
pub fn read_timeseries(path: &Path) -> Result<Vec<GpuSample>, String> {
    read_rows(path, TIMESERIES_HEADER, |f| {
        Ok(GpuSample {
            time: (num(f, 0, "time_s", 0.0, 1e9)? * 1e9).round() as u64,
            gpu: num(f, 1, "gpu", 0.0, f64::from(u32::MAX))? as u32,
            utilisation: num(f, 2, "utilisation", 0.0, 1.0)?,
            sm_occupancy: num(f, 3, "sm_occupancy", 0.0, 1.0)?,
            memory: (num(f, 4, "memory_mib", 0.0, 1e12)? * MIB as f64).round() as u64,
            instances: num(f, 5, "instances", 0.0, f64::from(u32::MAX))? as u32,
        })
    })
}

/// Field `i` (named `name`) of a row: a number from `low` to `high`.
fn num(fields: &[&str], i: usize, name: &str, low: f64, high: f64) -> Result<f64, String> {
    let s = fields[i];
    match s.trim().parse::<f64>() {
        Ok(v) if (low..=high).contains(&v) => Ok(v),
        Ok(_) => Err(format!(
            "field `{name}`: `{s}` is out of range; expected {low} to {high:e}"
        )),
        Err(_) => Err(format!(
            "field `{name}`: `{s}` is not a number; expected {low} to {high:e}"
        )),
    }
}

/// The rows of a file this crate wrote, after its header. A byte-order mark and CRLF line ends
/// (a spreadsheet's save) are accepted; a last line with no line end was cut short.
fn read_rows<T>(
    path: &Path,
    header: &str,
    mut row: impl FnMut(&[&str]) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(format!(
            "{}:{}: the last line has no line end: the file was cut short (write it again)",
            path.display(),
            text.lines().count()
        ));
    }
    let mut lines = text.lines();
    if lines.next() != Some(header.trim_end()) {
        return Err(format!(
            "{}:1: expected the header `{}`",
            path.display(),
            header.trim_end()
        ));
    }
    let width = header.split(',').count();
    let mut out = Vec::new();
    for (i, l) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        let at = format!("{}:{}", path.display(), i + 2);
        let fields: Vec<&str> = l.split(',').collect();
        if fields.len() != width {
            return Err(format!("{at}: expected {width} fields, found {}", fields.len()));
        }
        out.push(row(&fields).map_err(|e| format!("{at}: {e}"))?);
    }
    Ok(out)
}
