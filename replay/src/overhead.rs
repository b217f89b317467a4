//! `gpushare replay-overhead`: what the harness adds to an invocation. The same function's
//! operations run `n` times in a bare loop in this process (the worker's own executor, called
//! directly) and `n` times through the harness (a worker process, a request line down its stdin,
//! the reply line back), one at a time, in alternating blocks so that drift hits both alike. The
//! added time is the difference of the medians, against the bare median.
//!
//! With `--emulate` the operations are sleeps and the figure is the harness's CPU-side cost
//! (processes, pipes, JSON, wake-ups) without a GPU.

use crate::calibration::Calibration;
use crate::client::WorkerClient;
use crate::driver::{self, NO_DRIVER, ReplayError};
use crate::plan;
use crate::protocol::{Backend, Setup, now_ns};
use crate::{quantile, worker};
use serde::Serialize;
use std::path::PathBuf;

/// What to measure.
#[derive(Clone, Debug)]
pub struct OverheadOptions {
    pub gpu: u32,
    pub backend: Backend,
    /// Sizes the kernels (required with the CUDA backend).
    pub calibration: Option<PathBuf>,
    /// A catalog profile.
    pub profile: String,
    /// Invocations each way.
    pub n: u32,
    pub worker_exe: PathBuf,
}

/// The result, ms.
#[derive(Clone, Debug, Serialize)]
pub struct Overhead {
    pub profile: String,
    pub backend: &'static str,
    pub n: u32,
    /// The plan's solo time.
    pub planned_ms: f64,
    pub bare_p50_ms: f64,
    pub harness_p50_ms: f64,
    pub added_ms: f64,
    pub added_pct: f64,
}

/// Measures the overhead. Sets `CUDA_DEVICE_ORDER=PCI_BUS_ID` in this process's environment
/// (device ordinals as NVML numbers them): call it before starting threads of your own.
pub fn measure(opts: &OverheadOptions) -> Result<Overhead, ReplayError> {
    if opts.backend == Backend::Cuda && !driver::driver_present() {
        return Err(ReplayError::Unavailable(NO_DRIVER.into()));
    }
    // SAFETY: called from the command line before any thread or CUDA call.
    unsafe { crate::protocol::pin_device_order() };
    crate::signals::install();
    let profile = gpushare_sim::catalog::builtin_profile(&opts.profile).ok_or_else(|| {
        ReplayError::Input(format!(
            "--function {}: not a catalog profile (see `gpushare catalog`)",
            opts.profile
        ))
    })?;
    let Calibration {
        device: dev,
        replay: cal,
        ..
    } = crate::calibration::load_or_nominal(opts.calibration.as_deref(), opts.backend)?;
    let reference = gpushare_sim::device::builtin_device(&profile.reference_gpu).unwrap_or_else(|| dev.clone());
    let compiled = profile.compile(&reference, &dev, 2.0);
    let fplan = plan::function_plan(&opts.profile, &compiled, &dev, &cal);
    let setup = Setup::one_lane(
        0,
        opts.gpu,
        opts.backend,
        vec![fplan.clone()],
        None,
        cal.threads_per_block,
    );
    let ops = worker::request_ops(&fplan, 1.0);

    // The worker process, and the same executor in this one.
    let mut client = WorkerClient::start(&opts.worker_exe, &setup, &[]).map_err(ReplayError::Failed)?;
    let (bare, _) = worker::executor(&setup).map_err(ReplayError::Failed)?;
    let bare_once = || -> Result<f64, ReplayError> {
        let t0 = now_ns();
        bare.run(0, &ops).map_err(ReplayError::Failed)?;
        Ok((now_ns() - t0) as f64 / 1e6)
    };
    let mut harness_once = || -> Result<f64, ReplayError> {
        let t0 = now_ns();
        client.run(0).map_err(ReplayError::Failed)?;
        Ok((now_ns() - t0) as f64 / 1e6)
    };
    // Warm-up, both ways; then alternating blocks.
    for _ in 0..3 {
        bare_once()?;
        harness_once()?;
    }
    let block = 10.min(opts.n.max(1));
    let (mut bare_ms, mut harness_ms) = (Vec::new(), Vec::new());
    while (bare_ms.len() as u32) < opts.n {
        crate::signals::check_interrupted().map_err(ReplayError::Failed)?;
        for _ in 0..block {
            bare_ms.push(bare_once()?);
        }
        for _ in 0..block {
            harness_ms.push(harness_once()?);
        }
    }
    client.quit();
    let (b, h) = (quantile(&mut bare_ms, 0.5), quantile(&mut harness_ms, 0.5));
    Ok(Overhead {
        profile: opts.profile.clone(),
        backend: opts.backend.name(),
        n: bare_ms.len() as u32,
        planned_ms: fplan.planned_ns as f64 / 1e6,
        bare_p50_ms: b,
        harness_p50_ms: h,
        added_ms: h - b,
        added_pct: 100.0 * (h - b) / b,
    })
}
