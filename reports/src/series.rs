//! Per-run series beside the summary: `latency_cdf.csv` (end-to-end latency at quantiles, for
//! CDF figures) and `timeseries.csv` (each GPU sampled over time, with `[output] timeseries_s`).
//!
//! `latency_cdf.csv`: `quantile,latency_s`, the quantiles of
//! `gpushare_sim::summary::cdf_quantiles` over measured completions (from the run's HDR
//! histogram: within 0.1 %). `timeseries.csv`: `time_s,gpu,utilisation,sm_occupancy,memory_mib,instances`,
//! one row per GPU per interval (utilisation and SM occupancy averaged over the interval ending
//! at `time_s`, memory and instances at that instant).

use crate::atomic::write_atomic;
use gpushare_sim::device::MIB;
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

/// Writes `timeseries.csv` into `dir`.
pub fn write_timeseries(dir: &Path, samples: &[GpuSample]) -> io::Result<()> {
    let mut out = String::from(TIMESERIES_HEADER);
    for s in samples {
        write_secs(&mut out, s.time);
        let _ = writeln!(
            out,
            ",{},{},{},{},{}",
            s.gpu,
            s.utilisation,
            s.sm_occupancy,
            format_args!("{:.3}", s.memory as f64 / MIB as f64),
            s.instances
        );
    }
    write_atomic(&dir.join("timeseries.csv"), out.as_bytes())
}

/// Reads a `latency_cdf.csv`: (quantile, seconds) pairs.
pub fn read_cdf(path: &Path) -> Result<Vec<(f64, f64)>, String> {
    read_rows(path, CDF_HEADER, |f| Ok((num(f[0])?, num(f[1])?)))
}

/// Reads a `timeseries.csv` into samples.
pub fn read_timeseries(path: &Path) -> Result<Vec<GpuSample>, String> {
    read_rows(path, TIMESERIES_HEADER, |f| {
        Ok(GpuSample {
            time: (num(f[0])? * 1e9).round() as u64,
            gpu: num(f[1])? as u32,
            utilisation: num(f[2])?,
            sm_occupancy: num(f[3])?,
            memory: (num(f[4])? * MIB as f64).round() as u64,
            instances: num(f[5])? as u32,
        })
    })
}

fn num(s: &str) -> Result<f64, String> {
    s.trim().parse::<f64>().map_err(|_| format!("`{s}` is not a number"))
}

fn read_rows<T>(path: &Path, header: &str, row: impl Fn(&[&str]) -> Result<T, String>) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    if lines.next() != Some(header.trim_end()) {
        return Err(format!(
            "{}:1: expected the header `{}`",
            path.display(),
            header.trim_end()
        ));
    }
    let width = header.split(',').count();
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            let fields: Vec<&str> = l.split(',').collect();
            if fields.len() != width {
                return Err(format!(
                    "{}:{}: expected {width} fields, found {}",
                    path.display(),
                    i + 2,
                    fields.len()
                ));
            }
            row(&fields).map_err(|e| format!("{}:{}: {e}", path.display(), i + 2))
        })
        .collect()
}
