//! `gpushare replay-overhead`: what the harness adds to an invocation. The same function's
//! operations run `n` times in a bare loop in this process (the worker's own executor, called
//! directly) and `n` times through the harness (a worker process, a request line down its stdin,
//! the reply line back), one at a time, in alternating blocks so that drift hits both alike. The
//! added time is the difference of the medians, against the bare median.
//!
//! With `--emulate` the operations are sleeps and the figure is the harness's CPU-side cost
//! (processes, pipes, JSON, wake-ups) without a GPU.

use crate::calibration::{Calibration, ReplayCalibration};
use crate::driver::{self, NO_DRIVER, ReplayError};
use crate::plan::{self, WorkerSpec};
use crate::protocol::{Backend, Reply, Request, Setup, line, now_ns};
use crate::worker;
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures the overhead. Sets `CUDA_DEVICE_ORDER=PCI_BUS_ID` in this process's environment
/// (device ordinals as NVML numbers them): call it before starting threads of your own.
pub fn measure(opts: &OverheadOptions) -> Result<Overhead, ReplayError> {
    if opts.backend == Backend::Cuda && !driver::driver_present() {
        return Err(ReplayError::Unavailable(NO_DRIVER.into()));
    }
    // SAFETY: called from the command line before any thread or CUDA call.
    unsafe { crate::protocol::pin_device_order() };
    let profile = gpushare_sim::catalog::builtin_profile(&opts.profile).ok_or_else(|| {
        ReplayError::Input(format!(
            "--function {}: not a catalog profile (see `gpushare catalog`)",
            opts.profile
        ))
    })?;
    let (dev, cal): (gpushare_sim::device::DeviceSpec, ReplayCalibration) = match (&opts.calibration, opts.backend) {
        (Some(p), _) => {
            let c = Calibration::load(p).map_err(ReplayError::Input)?;
            (c.device, c.replay)
        }
        (None, Backend::Emulated) => {
            let d = gpushare_sim::device::builtin_device("h100-80gb").expect("built in");
            let bw = d.mem_bandwidth_gbps;
            (
                d,
                ReplayCalibration {
                    threads_per_block: 1024,
                    spin_iters_per_us: 1000.0,
                    stream_gbps: vec![(1.0, bw)],
                    sgemm_tflops: None,
                    launch_overhead_us: 0.0,
                },
            )
        }
        (None, Backend::Cuda) => {
            return Err(ReplayError::Input(
                "--calibration FILE: the kernels are sized by a calibration (`gpushare calibrate`)".into(),
            ));
        }
    };
    let reference = gpushare_sim::device::builtin_device(&profile.reference_gpu).unwrap_or_else(|| dev.clone());
    let compiled = profile.compile(&reference, &dev, 2.0);
    let fplan = plan::function_plan(&opts.profile, &compiled, &dev, &cal);
    let setup = Setup {
        worker: WorkerSpec {
            id: 0,
            gpu: opts.gpu,
            functions: vec![0],
            mps_percentage: None,
            lanes: 1,
        },
        backend: opts.backend,
        functions: vec![(0, fplan.clone())],
        threads_per_block: cal.threads_per_block,
    };
    let ops = worker::request_ops(&fplan, 1.0);

    // The worker process.
    let mut child = Command::new(&opts.worker_exe)
        .arg("replay-worker")
        .envs(crate::protocol::CUDA_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| ReplayError::Failed(format!("starting a worker: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut read = move || -> Result<Reply, ReplayError> {
        let mut l = String::new();
        match out.read_line(&mut l) {
            Ok(0) | Err(_) => Err(ReplayError::Failed("the worker exited".into())),
            Ok(_) => {
                serde_json::from_str(&l).map_err(|e| ReplayError::Failed(format!("worker wrote `{}`: {e}", l.trim())))
            }
        }
    };
    let send = |stdin: &mut std::process::ChildStdin, r: &Request| {
        stdin
            .write_all(line(r).as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| ReplayError::Failed(format!("writing to the worker: {e}")))
    };
    stdin
        .write_all(line(&setup).as_bytes())
        .and_then(|_| stdin.flush())
        .map_err(|e| ReplayError::Failed(format!("writing to the worker: {e}")))?;
    match read()? {
        Reply::Ready(_) => {}
        Reply::SetupFailed { error } => {
            return Err(ReplayError::Failed(format!("the worker could not set up: {error}")));
        }
        other => return Err(ReplayError::Failed(format!("the worker answered {other:?}"))),
    }

    // The bare executor, in this process.
    let (bare, _) = worker::executor(&setup).map_err(ReplayError::Failed)?;
    let (mut bare_ms, mut harness_ms) = (Vec::new(), Vec::new());
    let block = 10.min(opts.n.max(1));
    let mut id = 0;
    // Warm-up, both ways.
    for _ in 0..3 {
        bare.run(0, &ops).map_err(ReplayError::Failed)?;
        send(
            &mut stdin,
            &Request::Run {
                id,
                func: 0,
                scale: 1.0,
            },
        )?;
        id += 1;
        read()?;
    }
    while (bare_ms.len() as u32) < opts.n {
        for _ in 0..block {
            let t0 = now_ns();
            bare.run(0, &ops).map_err(ReplayError::Failed)?;
            bare_ms.push((now_ns() - t0) as f64 / 1e6);
        }
        for _ in 0..block {
            let t0 = now_ns();
            send(
                &mut stdin,
                &Request::Run {
                    id,
                    func: 0,
                    scale: 1.0,
                },
            )?;
            id += 1;
            match read()? {
                Reply::Done(_) => harness_ms.push((now_ns() - t0) as f64 / 1e6),
                other => return Err(ReplayError::Failed(format!("the worker answered {other:?}"))),
            }
        }
    }
    let _ = send(&mut stdin, &Request::Quit);
    drop(stdin);
    let _ = child.wait();
    let (b, h) = (median(&mut bare_ms), median(&mut harness_ms));
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
