//! `gpushare replay`: a scenario's arrivals, in real time, on real worker processes.
//!
//! The orchestrator lays the policy's mechanism out ([`crate::plan::layout`]), starts the MPS
//! daemon where the mechanism needs one, starts every worker process and waits until each has
//! its context, kernels and memory, then replays the workload: each arrival at its time (divided
//! by `--time-scale`), sent to a worker of its function with a free lane (the least loaded;
//! otherwise it waits in its function's FIFO queue, up to `[policy] max_queue`), and each reply
//! recorded. Under `kaas` the request's host code runs off the worker (before: a timer that
//! delays its turn in the queue; after: its planned time added), as the model has it, and the
//! worker spends the kernel graph's `dispatch_ms` (KaaS's measured launch path) as host time
//! before the kernels. The run
//! covers `[0, horizon)` of arrivals; with `drain` it waits for the last completion (at most
//! `drain_timeout` past the horizon), otherwise what is in flight at the horizon is
//! `unfinished`. NVML is sampled meanwhile. Results go out in the simulator's schema
//! ([`crate::measured`]).
//!
//! What the replay leaves out, so that the simulation it is compared with must leave it out
//! too: instances are fixed for the run (no scaling, no cold starts in the measured window — use
//! a warm-up that covers them in the simulation), and there is one device type.
//!
//! The parts: `prepare` checks the options and decides the replay (calibration, layout, each
//! function's plan), `workers` starts the worker processes and waits until they are set up,
//! `dispatch` is the event loop, and `results` summarises and writes what it recorded.

mod dispatch;
mod prepare;
mod results;
mod workers;

pub use prepare::time_scaled;

use crate::driver::ReplayError;
use crate::mps::MpsDaemon;
use crate::nvml::{self, DeviceInfo, Sampler};
use crate::plan::{Layout, Mechanism};
use crate::protocol::{Backend, now_ns};
use crate::signals;
use dispatch::Dispatch;
use gpushare_sim::Scenario;
use gpushare_sim::summary::Summary;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Device ordinals to replay on.
    pub gpus: Vec<u32>,
    /// Arrivals come this many times faster than the scenario's times.
    pub time_scale: f64,
    pub out: PathBuf,
    pub backend: Backend,
    /// The device calibration; default: the scenario's `gpu = { profile = FILE }`.
    pub calibration: Option<PathBuf>,
    /// The `gpushare` executable (its hidden `replay-worker` command).
    pub worker_exe: PathBuf,
    pub sample_period: Duration,
    /// How long to wait past the horizon for in-flight work when the scenario drains.
    pub drain_timeout: Duration,
    /// How long workers may take to set up.
    pub setup_timeout: Duration,
    /// The `gpushare run` arguments that gave this scenario (for the prediction command).
    pub scenario_args: Vec<String>,
}

/// One worker in the report.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerReport {
    pub id: usize,
    pub gpu: u32,
    pub functions: Vec<String>,
    pub lanes: u32,
    pub mps_percentage: Option<f64>,
    /// The SM count the worker's context reported (an MPS client below 100 % is told its
    /// share; 0: emulated).
    pub sms_seen: u32,
    pub pid: u32,
    pub context_s: f64,
    pub kernels: String,
    pub resident_mib: f64,
    pub extra_mib: f64,
    pub cublas: bool,
    pub completed: u64,
}

/// A distribution of harness delays, ms.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Delays {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Delays {
    fn of(ns: Vec<u64>) -> Delays {
        let mut ms: Vec<f64> = ns.iter().map(|&n| n as f64 / 1e6).collect();
        if ms.is_empty() {
            return Delays::default();
        }
        Delays {
            count: ms.len(),
            p50_ms: crate::quantile(&mut ms, 0.5),
            p99_ms: crate::quantile(&mut ms, 0.99),
            max_ms: crate::quantile(&mut ms, 1.0),
        }
    }
}

/// `replay.json`: how the replay ran.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// `cuda`, or `emulated` (no GPU touched: a test of the harness, not a measurement).
    pub backend: &'static str,
    pub measurement: bool,
    pub scenario: String,
    pub policy: String,
    pub mechanism: Mechanism,
    pub gpus: Vec<u32>,
    pub device: Option<DeviceInfo>,
    /// Which driver, cuBLAS and NVRTC files were loaded (`None`: emulated).
    pub libraries: Option<crate::libs::LibrariesReport>,
    pub calibration: Option<PathBuf>,
    pub time_scale: f64,
    /// The `gpushare run` command whose simulation this replay measures.
    pub prediction_command: String,
    pub workers: Vec<WorkerReport>,
    /// How late arrivals were sent, and how long a request took to reach its worker.
    pub arrival_lag: Delays,
    pub handoff: Delays,
    pub nvml_samples: usize,
    /// The SM clock while the GPU was busy (lowest, median, highest, MHz), and whether it
    /// sagged below the calibration's (see the notes).
    pub sm_clock_busy_mhz: Option<(u32, u32, u32)>,
    pub clock_sagged: bool,
    pub wall_s: f64,
    pub aborted: Option<String>,
    pub notes: Vec<String>,
}

/// A finished replay.
pub struct ReplayRun {
    pub summary: Summary,
    pub report: ReplayReport,
}

/// Replays `scenario` and writes its results into `opts.out`.
pub fn replay(scenario: &Scenario, opts: &ReplayOptions) -> Result<ReplayRun, ReplayError> {
    let mut notes: Vec<String> = Vec::new();
    let p = prepare::prepare(scenario, opts, &mut notes)?;
    let s = &p.scenario;
    std::fs::create_dir_all(opts.out.join("workers"))
        .map_err(|e| ReplayError::Failed(format!("creating {}: {e}", opts.out.display())))?;
    // Everything is checked: say what runs (on stderr; the results go to stdout).
    eprintln!(
        "replaying {} under {} ({}): {:.1} s of arrivals …",
        s.name,
        s.policy.name,
        opts.backend.name(),
        s.horizon as f64 / 1e9
    );
    signals::install();
    let device = device_identity(opts, &mut notes);
    check_compute_mode(device.as_ref(), &p.lay, opts)?;
    let mut daemon = start_mechanism(&p.lay, opts, &mut notes)?;
    let (tx, rx) = mpsc::channel::<workers::Msg>();
    let mut workers = workers::launch(
        &p.lay.workers,
        opts,
        &p.split,
        p.cal.threads_per_block,
        daemon.as_ref(),
        tx,
    )?;
    workers::wait_ready(&mut workers, &rx, opts.setup_timeout)?;
    if let Some(d) = &daemon {
        d.check_clients_joined().map_err(ReplayError::Unavailable)?;
    }
    workers::check_ready(&workers, &p.dev, &mut notes)?;
    let sampler = start_sampler(opts, &mut notes);

    // The replay.
    let started = std::time::Instant::now();
    let origin = now_ns() + 100_000_000;
    let tally = Dispatch::new(&p, &mut workers, origin).run(&rx, opts.drain_timeout, &mut notes)?;
    let stop = now_ns().saturating_sub(origin);
    let end = if tally.aborted.is_none() && !s.drain {
        s.horizon
    } else {
        stop
    };
    let wall_s = started.elapsed().as_secs_f64();
    workers.quit_all(Duration::from_secs(10));
    let samples = sampler.map(Sampler::finish);
    if let Some(mut d) = daemon.take()
        && let Err(e) = d.stop()
    {
        notes.push(e);
    }
    let ended = results::Ended {
        tally,
        samples,
        origin,
        end,
        wall_s,
    };
    results::finish(p, opts, device, &workers, ended, notes)
}

/// The device as NVML names it (CUDA only; `None` noted when it cannot be read).
fn device_identity(opts: &ReplayOptions, notes: &mut Vec<String>) -> Option<DeviceInfo> {
    if opts.backend == Backend::Cuda {
        match nvml::device_info(opts.gpus[0]) {
            Ok(d) => Some(d),
            Err(e) => {
                notes.push(format!("device identity not read: {e}"));
                None
            }
        }
    } else {
        None
    }
}

/// The compute mode (left as it is) may forbid the layout.
fn check_compute_mode(device: Option<&DeviceInfo>, lay: &Layout, opts: &ReplayOptions) -> Result<(), ReplayError> {
    if let Some(d) = device {
        for &g in &opts.gpus {
            let on_gpu = lay.workers.iter().filter(|w| w.gpu == g).count();
            crate::probe::check_compute_mode(&d.compute_mode, lay.mechanism, on_gpu)
                .map_err(ReplayError::Unavailable)?;
        }
    }
    Ok(())
}

/// The mechanism: an MPS daemon where the layout needs one (emulated: none, noted).
fn start_mechanism(
    lay: &Layout,
    opts: &ReplayOptions,
    notes: &mut Vec<String>,
) -> Result<Option<MpsDaemon>, ReplayError> {
    let mut daemon = None;
    if lay.mechanism == Mechanism::Mps {
        if opts.backend == Backend::Cuda {
            daemon = Some(MpsDaemon::start().map_err(ReplayError::Unavailable)?);
        } else {
            notes.push("emulated: no MPS daemon started; the active-thread percentages only label the workers".into());
        }
    }
    Ok(daemon)
}

/// NVML sampling of the replay's GPUs (CUDA only; `None` noted when NVML cannot start).
fn start_sampler(opts: &ReplayOptions, notes: &mut Vec<String>) -> Option<Sampler> {
    if opts.backend == Backend::Cuda {
        match Sampler::start(opts.gpus.clone(), opts.sample_period) {
            Ok(s) => Some(s),
            Err(e) => {
                notes.push(format!(
                    "no NVML sampling ({e}): utilisation from CUDA events, peak memory not measured"
                ));
                None
            }
        }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::prepare::split_host;
    use super::workers::sees_whole_gpu;
    use super::*;
    use crate::plan::{FunctionPlan, Op, PlannedOp, WorkerSpec};

    #[test]
    fn kernel_servers_run_host_code_off_the_worker() {
        let plan = FunctionPlan {
            name: "f".into(),
            ops: vec![
                PlannedOp {
                    op: Op::Host { ns: 5 },
                    ns: 5,
                },
                PlannedOp {
                    op: Op::H2d { bytes: 10 },
                    ns: 2,
                },
                PlannedOp {
                    op: Op::Host { ns: 1 },
                    ns: 1,
                },
                PlannedOp {
                    op: Op::Spin { blocks: 1, iters: 9 },
                    ns: 3,
                },
                PlannedOp {
                    op: Op::Host { ns: 7 },
                    ns: 7,
                },
            ],
            resident_bytes: 0,
            activation_bytes: 0,
            planned_ns: 18,
        };
        let (before, after, gpu) = split_host(&plan);
        assert_eq!((before, after), (5, 7));
        // Host time between GPU operations stays with the worker.
        assert_eq!(gpu.ops.len(), 3);
        assert!(gpu.ops[0].op.on_gpu() && gpu.ops[2].op.on_gpu());
    }

    #[test]
    fn only_uncapped_workers_are_held_to_the_devices_sm_count() {
        let spec = |pct| WorkerSpec {
            id: 0,
            gpu: 0,
            functions: vec![0],
            mps_percentage: pct,
            lanes: 1,
        };
        assert!(sees_whole_gpu(&spec(None)));
        assert!(sees_whole_gpu(&spec(Some(100.0))));
        assert!(!sees_whole_gpu(&spec(Some(50.0))));
    }

    #[test]
    fn delays_report_quantiles_in_ms() {
        let d = Delays::of((1..=100).map(|k| k * 1_000_000).collect());
        assert_eq!((d.count, d.p50_ms, d.max_ms), (100, 51.0, 100.0));
        assert_eq!(Delays::of(Vec::new()).count, 0);
    }
}
