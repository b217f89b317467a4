//! A device profile as `gpushare calibrate` writes it: the simulator's device spec (`[device]`,
//! which a scenario loads with `gpu = { profile = "FILE" }`), what the replay needs to size its
//! kernels on this device (`[replay]`), and the raw measurements behind both (`[measured]`).

use gpushare_sim::device::DeviceSpec;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How the replay sizes kernels on one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayCalibration {
    /// Threads per block of the spin and stream kernels.
    pub threads_per_block: u32,
    /// Spin iterations one block runs per microsecond with an SM to itself.
    pub spin_iters_per_us: f64,
    /// Stream-kernel bandwidth (read + write) with a given fraction of the SMs: (fraction,
    /// GB/s), by fraction.
    pub stream_gbps: Vec<(f64, f64)>,
    /// SGEMM throughput at n = 4096, TFLOP/s, if measured (the cuBLAS path).
    #[serde(default)]
    pub sgemm_tflops: Option<f64>,
    /// Kernel launch overhead, µs.
    pub launch_overhead_us: f64,
}

impl ReplayCalibration {
    /// Stream bandwidth with `fraction` of the SMs, interpolated (GB/s).
    pub fn stream_gbps_at(&self, fraction: f64) -> f64 {
        let pts = &self.stream_gbps;
        match pts.len() {
            0 => 0.0,
            1 => pts[0].1,
            _ => {
                if fraction <= pts[0].0 {
                    return pts[0].1 * fraction / pts[0].0;
                }
                for w in pts.windows(2) {
                    let ((f0, g0), (f1, g1)) = (w[0], w[1]);
                    if fraction <= f1 {
                        return g0 + (g1 - g0) * (fraction - f0) / (f1 - f0);
                    }
                }
                pts[pts.len() - 1].1
            }
        }
    }
}

/// What calibration measured, kept beside the profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    /// The GPU's name as the driver reports it, and the driver version.
    #[serde(default)]
    pub gpu_name: String,
    #[serde(default)]
    pub driver: String,
    /// SMs and device memory as the driver reports them.
    #[serde(default)]
    pub sms: u32,
    #[serde(default)]
    pub memory_total_mib: f64,
    /// The spin kernel's time with two blocks per SM against one: about 2 when one block keeps
    /// an SM busy (the kernels' SM demand then means what it says).
    #[serde(default)]
    pub spin_two_blocks_per_sm_ratio: f64,
    /// Spin kernel of fixed total work over k blocks: (fraction of SMs, speed relative to all).
    #[serde(default)]
    pub spin_speed_by_share: Vec<(f64, f64)>,
    /// Same, with every SM's block but an MPS active-thread percentage: (fraction, speed).
    #[serde(default)]
    pub spin_speed_by_mps_share: Vec<(f64, f64)>,
    /// Pinned copies, GB/s.
    #[serde(default)]
    pub h2d_gbps: f64,
    #[serde(default)]
    pub d2h_gbps: f64,
    /// Two stream kernels on half the SMs each, together against alone: the time ratio.
    #[serde(default)]
    pub co_run_slowdown: Option<f64>,
    /// Context creation in fresh processes, seconds, each sample.
    #[serde(default)]
    pub context_create_s: Vec<f64>,
    /// Device memory one context takes (NVML, before and after a fresh process's context), MiB.
    #[serde(default)]
    pub context_memory_mib: Option<f64>,
    /// Two processes time-sharing the GPU: the latency of a short kernel of one while the other
    /// runs long ones, ms (p50, p99), and the short kernel alone (ms).
    #[serde(default)]
    pub time_slice_probe_ms: Option<(f64, f64, f64)>,
    /// The warm-up before the measurements: seconds, and whether the SM clock settled.
    #[serde(default)]
    pub warm_up_s: f64,
    #[serde(default)]
    pub clock_settled: bool,
    /// The SM and memory clocks after the warm-up, MHz (NVML): the reference a replay's clocks
    /// are checked against.
    #[serde(default)]
    pub sm_clock_mhz: Option<u32>,
    #[serde(default)]
    pub mem_clock_mhz: Option<u32>,
    /// The GPU's compute mode (NVML), e.g. `Default`.
    #[serde(default)]
    pub compute_mode: String,
    /// The cuBLAS and NVRTC files that were loaded (none: not loadable).
    #[serde(default)]
    pub cublas: Option<String>,
    #[serde(default)]
    pub nvrtc: Option<String>,
    /// Notes: what could not be measured, and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A whole calibration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub device: DeviceSpec,
    pub replay: ReplayCalibration,
    #[serde(default)]
    pub measured: Measured,
}

impl Calibration {
    /// Reads a calibration file; every error names the file, and the line where there is one.
    pub fn load(path: &Path) -> Result<Calibration, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: Calibration = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(&text, s.start));
            format!("{}:{line}: {}", path.display(), e.message().trim_end())
        })?;
        c.check().map_err(|(table, field, msg)| {
            format!(
                "{}:{}: [{table}] {field}: {msg}",
                path.display(),
                field_line(&text, table, field)
            )
        })?;
        Ok(c)
    }

    /// The values the replay and the simulator rely on: `(table, field, what is wrong)`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str, String)> {
        self.device.check().map_err(|(f, m)| ("device", f, m))?;
        let r = &self.replay;
        let fail = |f: &'static str, m: String| Err(("replay", f, m));
        if !(1..=1024).contains(&r.threads_per_block) {
            return fail(
                "threads_per_block",
                format!("expected 1 to 1024, got {}", r.threads_per_block),
            );
        }
        if !(r.spin_iters_per_us.is_finite() && r.spin_iters_per_us > 0.0) {
            return fail(
                "spin_iters_per_us",
                format!("expected a positive number, got {}", r.spin_iters_per_us),
            );
        }
        if r.stream_gbps.is_empty()
            || r.stream_gbps
                .iter()
                .any(|&(f, g)| !(f.is_finite() && f > 0.0 && f <= 1.0 && g.is_finite() && g > 0.0))
        {
            return fail(
                "stream_gbps",
                "expected at least one [fraction of SMs in (0, 1], GB/s > 0] pair".into(),
            );
        }
        if r.sgemm_tflops.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            return fail(
                "sgemm_tflops",
                format!("expected a positive number, got {:?}", r.sgemm_tflops),
            );
        }
        if !(r.launch_overhead_us.is_finite() && r.launch_overhead_us >= 0.0) {
            return fail(
                "launch_overhead_us",
                format!("expected a non-negative number, got {}", r.launch_overhead_us),
            );
        }
        Ok(())
    }

    /// Writes it, with a header saying where it came from.
    pub fn save(&self, path: &Path, header: &str) -> Result<(), String> {
        let body = toml::to_string(self).map_err(|e| e.to_string())?;
        let text: String = header.lines().map(|l| format!("# {l}\n")).collect::<String>() + &body;
        gpushare_reports::atomic::write_atomic(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The line of `field = …` in `[table]` of `text` (the table's line when the field is not
/// written, 1 when neither is).
fn field_line(text: &str, table: &str, field: &str) -> usize {
    let header = format!("[{table}]");
    let mut in_table = false;
    let mut table_line = 1;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            in_table = t == header;
            if in_table {
                table_line = i + 1;
            }
        } else if in_table && t.split('=').next().is_some_and(|k| k.trim() == field) {
            return i + 1;
        }
    }
    table_line
}

/// The nominal sizing of the emulated backend (it sizes nothing real).
pub fn nominal_sizing(mem_bandwidth_gbps: f64) -> ReplayCalibration {
    ReplayCalibration {
        threads_per_block: 1024,
        spin_iters_per_us: 1000.0,
        stream_gbps: vec![(1.0, mem_bandwidth_gbps)],
        sgemm_tflops: None,
        launch_overhead_us: 0.0,
    }
}

/// What a command sizes its kernels with: the calibration at `path`; without one, under the
/// emulated backend, the built-in `h100-80gb` with [`nominal_sizing`]; on a GPU, an error
/// naming what to run.
pub fn load_or_nominal(
    path: Option<&Path>,
    backend: crate::protocol::Backend,
) -> Result<Calibration, crate::ReplayError> {
    use crate::ReplayError;
    match (path, backend) {
        (Some(p), _) => Calibration::load(p).map_err(ReplayError::Input),
        (None, crate::protocol::Backend::Emulated) => {
            let device = gpushare_sim::device::builtin_device("h100-80gb").expect("built in");
            Ok(Calibration {
                replay: nominal_sizing(device.mem_bandwidth_gbps),
                device,
                measured: Measured::default(),
            })
        }
        (None, crate::protocol::Backend::Cuda) => Err(ReplayError::Input(
            "--calibration FILE: the kernels are sized by a calibration (`gpushare calibrate`)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bandwidth_interpolates_between_measured_shares() {
        let r = ReplayCalibration {
            threads_per_block: 256,
            spin_iters_per_us: 100.0,
            stream_gbps: vec![(0.25, 1000.0), (0.5, 1800.0), (1.0, 2000.0)],
            sgemm_tflops: None,
            launch_overhead_us: 3.0,
        };
        assert_eq!(r.stream_gbps_at(0.125), 500.0);
        assert_eq!(r.stream_gbps_at(0.375), 1400.0);
        assert_eq!(r.stream_gbps_at(1.0), 2000.0);
    }
}
