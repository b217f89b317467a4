//! Replays gpushare scenarios on a real GPU and checks the simulator against it.
//!
//! This crate owns the real-hardware side: what a scenario becomes on a GPU ([`plan`]: each
//! function's work as kernels and copies, each policy's process layout), the harness's kernels
//! ([`kernels`]) and CUDA operations ([`cuda`]), the worker processes ([`worker`]), what they
//! say to the orchestrator ([`protocol`]) and how they are started and driven ([`client`]), the mechanisms' set-up — a private MPS daemon
//! ([`mps`]) — NVML sampling ([`nvml`]), the replay itself ([`replay`]) with its records and
//! summary ([`measured`]), the device calibration ([`calibrate`], [`calibration`]), and what the
//! harness adds to an invocation ([`overhead`]).
//!
//! Every entry point checks for the driver first ([`driver`]): a machine without an NVIDIA GPU
//! gets a plain error, never a panic from a missing library.

pub mod calibrate;
pub mod calibration;
pub mod client;
pub mod colocate;
pub mod cuda;
pub mod driver;
pub mod kernels;
pub mod libs;
pub mod measured;
pub mod mps;
pub mod nvml;
pub mod overhead;
pub mod plan;
pub mod probe;
pub mod protocol;
pub mod replay;
pub mod signals;
pub mod worker;

pub use driver::{NO_DRIVER, ReplayError};

/// Waits for `child` at most `timeout`: its status, or `None` when it is still running then (or
/// cannot be waited for). Killing it is the caller's choice.
pub(crate) fn wait_for(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => return None,
        }
    }
}

/// The `q`-quantile of `v` (nearest rank, `v` sorted in place); NaN when `v` is empty.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The last `n` lines of the file at `path`, joined with ` | `; `None` when there are none.
pub(crate) fn last_lines(path: &std::path::Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    (!tail.is_empty()).then(|| tail.join(" | "))
}
