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

use crate::calibration::Calibration;
use crate::client::send_line;
use crate::driver::{self, NO_DRIVER, ReplayError};
use crate::measured::{self, Inputs, Record, WorkerUse};
use crate::mps::MpsDaemon;
use crate::nvml::{self, DeviceInfo, Sampler};
use crate::plan::{self, FunctionPlan, Mechanism, PlannedOp, WorkerSpec};
use crate::protocol::{Backend, Done, Ready, Reply, Request, Setup, now_ns};
use crate::signals;
use gpushare_sim::Scenario;
use gpushare_sim::record::{Outcome, RejectReason};
use gpushare_sim::summary::Summary;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
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

/// What workers send the orchestrator.
enum Msg {
    Reply(usize, Reply),
    Garbage(usize, String),
    Closed(usize),
}

struct Worker {
    spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    outstanding: u32,
    ready: Option<Ready>,
    completed: u64,
    _registered: signals::Registered,
}

/// The worker processes; killed on drop if they have not exited.
struct Workers(Vec<Worker>);

impl Workers {
    fn quit_all(&mut self, wait: Duration) {
        for w in &mut self.0 {
            if let Some(mut s) = w.stdin.take() {
                let _ = send_line(&mut s, &Request::Quit);
            }
        }
        let deadline = now_ns() + wait.as_nanos() as u64;
        for w in &mut self.0 {
            loop {
                match w.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if now_ns() < deadline => std::thread::sleep(Duration::from_millis(10)),
                    Ok(None) => {
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.quit_all(Duration::from_secs(5));
    }
}

fn log_tail(path: &Path) -> String {
    crate::last_lines(path, 5).map_or(String::new(), |l| format!(" (its stderr, {}: {l})", path.display()))
}

/// Whether a worker is told the device's whole SM count: not an MPS client capped below 100 %.
fn sees_whole_gpu(spec: &WorkerSpec) -> bool {
    spec.mps_percentage.is_none_or(|p| p >= 100.0)
}

/// A live invocation.
struct Inv {
    func: u32,
    arrival: u64,
    scale: f64,
    /// When it may take a worker (after its host code under kaas).
    ready_at: u64,
    host_after: u64,
    worker: Option<usize>,
    sent_at: u64,
}

/// The host time before the first GPU operation and after the last, and the plan without it.
fn split_host(plan: &FunctionPlan) -> (u64, u64, FunctionPlan) {
    let first = plan.ops.iter().position(|p| p.op.on_gpu());
    let last = plan.ops.iter().rposition(|p| p.op.on_gpu());
    let (Some(first), Some(last)) = (first, last) else {
        let host = plan.ops.iter().map(|p| p.ns).sum();
        return (
            host,
            0,
            FunctionPlan {
                ops: Vec::new(),
                ..plan.clone()
            },
        );
    };
    let host = |ops: &[PlannedOp]| ops.iter().map(|p| p.ns).sum::<u64>();
    let gpu_part = FunctionPlan {
        ops: plan.ops[first..=last].to_vec(),
        ..plan.clone()
    };
    (host(&plan.ops[..first]), host(&plan.ops[last + 1..]), gpu_part)
}

fn max_queue(s: &Scenario) -> u64 {
    s.policy
        .params
        .get("max_queue")
        .and_then(|v| v.as_integer())
        .map_or(u64::MAX, |v| v.max(0) as u64)
}

/// The scenario as replayed with `time_scale`: arrivals `time_scale` times closer, horizon and
/// warm-up shorter by as much; and the overrides that give the same to `gpushare run`.
pub fn time_scaled(s: &Scenario, time_scale: f64) -> (Scenario, Vec<String>) {
    let mut out = s.clone();
    if time_scale == 1.0 {
        return (out, Vec::new());
    }
    out.load_scale *= time_scale;
    out.horizon = (s.horizon as f64 / time_scale).round() as u64;
    out.warmup = (s.warmup as f64 / time_scale).round() as u64;
    let overrides = vec![
        format!("simulation.load_scale={}", out.load_scale),
        format!("simulation.horizon_s={}", out.horizon as f64 / 1e9),
        format!("simulation.warmup_s={}", out.warmup as f64 / 1e9),
    ];
    (out, overrides)
}

/// Replays `scenario` and writes its results into `opts.out`.
pub fn replay(scenario: &Scenario, opts: &ReplayOptions) -> Result<ReplayRun, ReplayError> {
    if opts.backend == Backend::Cuda && !driver::driver_present() {
        return Err(ReplayError::Unavailable(NO_DRIVER.into()));
    }
    if !(opts.time_scale.is_finite() && opts.time_scale > 0.0) {
        return Err(ReplayError::Input(format!(
            "--time-scale: must be a positive number, got {}",
            opts.time_scale
        )));
    }
    let (scenario, overrides) = time_scaled(scenario, opts.time_scale);
    let s = &scenario;
    if s.horizon < 1_000_000 {
        return Err(ReplayError::Input(format!(
            "--time-scale {}: leaves {:.3e} s of arrivals; a replay needs at least a millisecond",
            opts.time_scale,
            s.horizon as f64 / 1e9
        )));
    }
    let mut notes: Vec<String> = Vec::new();
    if opts.gpus.is_empty() {
        return Err(ReplayError::Input("no GPU given (--gpu)".into()));
    }
    if s.gpus.len() != opts.gpus.len() {
        return Err(ReplayError::Input(format!(
            "the scenario's cluster has {} GPUs but the replay has {} (--gpu {}): give the scenario the same cluster \
             (e.g. --set cluster.nodes=1 --set cluster.gpus_per_node={}), so that prediction and measurement describe the same machine",
            s.gpus.len(),
            opts.gpus.len(),
            opts.gpus.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(","),
            opts.gpus.len()
        )));
    }
    let dev_index = s.gpus[0].1;
    if s.gpus.iter().any(|&(_, d)| d != dev_index) {
        return Err(ReplayError::Input(
            "the replay runs on one device type; the scenario's cluster mixes several".into(),
        ));
    }
    let dev = s.devices[dev_index].clone();

    // Calibration: sizes the kernels for this device.
    let cal_path = opts.calibration.clone().or_else(|| {
        s.device_profiles
            .iter()
            .find(|(name, _)| *name == dev.name)
            .map(|(_, p)| p.clone())
    });
    let mut reference_clock = None;
    let (cal, cal_path) = match (opts.backend, cal_path) {
        (_, Some(p)) => {
            let c = Calibration::load(&p).map_err(ReplayError::Input)?;
            if c.device.sms != dev.sms {
                return Err(ReplayError::Input(format!(
                    "the calibration {} is of a GPU with {} SMs, the scenario's GPU `{}` has {}: load the measured profile with \
                     `gpu = {{ profile = \"{}\" }}` (or --set 'cluster.gpu={{ profile = \"…\" }}')",
                    p.display(),
                    c.device.sms,
                    dev.name,
                    dev.sms,
                    p.display()
                )));
            }
            reference_clock = c.measured.sm_clock_mhz;
            (c.replay, Some(p))
        }
        (Backend::Emulated, None) => (crate::calibration::nominal_sizing(dev.mem_bandwidth_gbps), None),
        (Backend::Cuda, None) => {
            return Err(ReplayError::Input(
                "no calibration: run `gpushare calibrate --out FILE` on this machine, then give the scenario \
                 `gpu = { profile = \"FILE\" }` (or pass --calibration FILE)"
                    .into(),
            ));
        }
    };
    let libraries = (opts.backend == Backend::Cuda).then(crate::libs::report);
    if opts.backend == Backend::Cuda && cal.sgemm_tflops.is_none() {
        notes.push(
            "the calibration has no SGEMM rate (it found no cuBLAS): GEMM-like phases replay as spin kernels".into(),
        );
    }
    if libraries.as_ref().is_some_and(|l| l.cublas.is_none()) && cal.sgemm_tflops.is_some() {
        // Never a silent fallback: GEMM-like phases would replay as spin kernels.
        return Err(ReplayError::Unavailable(format!(
            "the calibration sizes GEMM-like phases for cuBLAS, but no cuBLAS can be loaded here; {}",
            crate::libs::searched()
        )));
    }

    let mut lay = plan::layout(s, opts.gpus.len() as u32).map_err(ReplayError::Input)?;
    let pooled = matches!(
        s.policy.name.as_str(),
        "exclusive" | "static" | "time-sharing" | "mps" | "fractional" | "sage"
    );
    if pooled && s.policy.params.get("prewarm").and_then(|v| v.as_bool()) != Some(true) {
        notes.push(
            "the replay's instances start set up; the simulation of this scenario starts them cold: \
             simulate the prediction with --set policy.prewarm=true"
                .into(),
        );
    }
    for w in &mut lay.workers {
        w.gpu = opts.gpus[w.gpu as usize];
    }
    let plans: Vec<FunctionPlan> = s
        .functions
        .iter()
        .map(|f| {
            let c = f.profile.compile(&f.reference, &dev, s.storage_gbps);
            plan::function_plan(&f.name, &c, &dev, &cal)
        })
        .collect();
    let host_off_worker = lay.mechanism == Mechanism::KernelServer;
    let split: Vec<(u64, u64, FunctionPlan)> = plans
        .iter()
        .zip(&s.functions)
        .map(|(p, f)| {
            if !host_off_worker {
                return (0, 0, p.clone());
            }
            // A kernel server's own path per request (KaaS's launch and argument handling, the
            // kernel graph's `dispatch_ms`) holds the worker but no SMs: host time on it.
            let (before, after, mut gpu) = split_host(p);
            let dispatch = gpushare_sim::time::ms_to_ns(f.profile.graph().dispatch_ms);
            if dispatch > 0 {
                gpu.ops.insert(
                    0,
                    PlannedOp {
                        op: plan::Op::Host { ns: dispatch },
                        ns: dispatch,
                    },
                );
            }
            (before, after, gpu)
        })
        .collect();

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
    let device = if opts.backend == Backend::Cuda {
        match nvml::device_info(opts.gpus[0]) {
            Ok(d) => Some(d),
            Err(e) => {
                notes.push(format!("device identity not read: {e}"));
                None
            }
        }
    } else {
        None
    };

    // The compute mode (left as it is) may forbid the layout.
    if let Some(d) = &device {
        for &g in &opts.gpus {
            let on_gpu = lay.workers.iter().filter(|w| w.gpu == g).count();
            crate::probe::check_compute_mode(&d.compute_mode, lay.mechanism, on_gpu)
                .map_err(ReplayError::Unavailable)?;
        }
    }

    // The mechanism.
    let mut daemon = None;
    if lay.mechanism == Mechanism::Mps {
        if opts.backend == Backend::Cuda {
            daemon = Some(MpsDaemon::start().map_err(ReplayError::Unavailable)?);
        } else {
            notes.push("emulated: no MPS daemon started; the active-thread percentages only label the workers".into());
        }
    }

    // Workers.
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut workers = Workers(Vec::new());
    for spec in &lay.workers {
        let log = opts.out.join("workers").join(format!("worker-{}.stderr", spec.id));
        let stderr =
            std::fs::File::create(&log).map_err(|e| ReplayError::Failed(format!("creating {}: {e}", log.display())))?;
        let mut cmd = crate::client::command(&opts.worker_exe);
        cmd.stderr(Stdio::from(stderr));
        if let Some(d) = &daemon {
            cmd.envs(d.client_env(spec.mps_percentage));
        }
        let mut child = cmd.spawn().map_err(|e| {
            ReplayError::Failed(format!(
                "starting worker {} ({}): {e}",
                spec.id,
                opts.worker_exe.display()
            ))
        })?;
        let stdout = child.stdout.take().expect("piped");
        let mut stdin = child.stdin.take().expect("piped");
        let setup = Setup {
            worker: spec.clone(),
            backend: opts.backend,
            functions: spec
                .functions
                .iter()
                .map(|&f| (f, split[f as usize].2.clone()))
                .collect(),
            threads_per_block: cal.threads_per_block,
        };
        send_line(&mut stdin, &setup).map_err(|e| ReplayError::Failed(format!("worker {}: {e}", spec.id)))?;
        let (tx, id) = (tx.clone(), spec.id);
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let msg = match serde_json::from_str::<Reply>(&l) {
                    Ok(r) => Msg::Reply(id, r),
                    Err(_) => Msg::Garbage(id, l),
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            let _ = tx.send(Msg::Closed(id));
        });
        let registered = signals::register_worker(child.id());
        workers.0.push(Worker {
            spec: spec.clone(),
            _registered: registered,
            child,
            stdin: Some(stdin),
            log,
            outstanding: 0,
            ready: None,
            completed: 0,
        });
    }
    drop(tx);

    // Wait until every worker is set up.
    let setup_deadline = now_ns() + opts.setup_timeout.as_nanos() as u64;
    while workers.0.iter().any(|w| w.ready.is_none()) {
        if signals::interrupted() {
            return Err(ReplayError::Failed(
                "interrupted while the workers were setting up".into(),
            ));
        }
        let left = setup_deadline.saturating_sub(now_ns());
        if left == 0 {
            let late: Vec<String> = workers
                .0
                .iter()
                .filter(|w| w.ready.is_none())
                .map(|w| format!("worker {}{}", w.spec.id, log_tail(&w.log)))
                .collect();
            return Err(ReplayError::Failed(format!(
                "not ready after {} s (a CUDA context that never came up; under MPS, clients the daemon does not serve): {}",
                opts.setup_timeout.as_secs(),
                late.join("; ")
            )));
        }
        match rx.recv_timeout(Duration::from_nanos(left).min(Duration::from_millis(100))) {
            Ok(Msg::Reply(w, Reply::Ready(r))) => workers.0[w].ready = Some(r),
            Ok(Msg::Reply(w, Reply::SetupFailed { error })) => {
                let kind = if error == NO_DRIVER {
                    ReplayError::Unavailable
                } else {
                    ReplayError::Failed
                };
                return Err(kind(format!(
                    "worker {w} (GPU {}) could not set up: {error}",
                    workers.0[w].spec.gpu
                )));
            }
            Ok(Msg::Reply(w, other)) => {
                return Err(ReplayError::Failed(format!(
                    "worker {w} answered {other:?} before it was ready"
                )));
            }
            Ok(Msg::Garbage(w, l)) => {
                return Err(ReplayError::Failed(format!(
                    "worker {w} wrote something not in the protocol: {l}"
                )));
            }
            Ok(Msg::Closed(w)) => {
                return Err(ReplayError::Failed(format!(
                    "worker {w} exited while setting up{}",
                    log_tail(&workers.0[w].log)
                )));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ReplayError::Failed("every worker exited while setting up".into()));
            }
        }
    }
    if let Some(d) = &daemon {
        d.check_clients_joined().map_err(ReplayError::Unavailable)?;
    }
    for w in &workers.0 {
        let r = w.ready.as_ref().expect("all ready");
        // An MPS client below 100 % active threads is told a reduced SM count: only a client
        // that may use the whole GPU sees the device's own (what each saw is in the report).
        if sees_whole_gpu(&w.spec) && r.sms != 0 && r.sms != dev.sms {
            return Err(ReplayError::Input(format!(
                "GPU {} has {} SMs, the scenario's device `{}` {}: calibrate this GPU (`gpushare calibrate --gpu {}`) and load its profile",
                w.spec.gpu, r.sms, dev.name, dev.sms, w.spec.gpu
            )));
        }
    }
    for w in &workers.0 {
        let r = w.ready.as_ref().expect("all ready");
        if r.extra_bytes > 0 {
            notes.push(format!(
                "worker {} holds {:.0} MiB of kernel buffers beyond its functions' weights and activations",
                w.spec.id,
                r.extra_bytes as f64 / gpushare_sim::device::MIB as f64
            ));
        }
    }
    let sampler = if opts.backend == Backend::Cuda {
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
    };

    // The replay.
    let started = std::time::Instant::now();
    let origin = now_ns() + 100_000_000;
    let rel = |t: u64| t.saturating_sub(origin);
    let horizon = s.horizon;
    let mut source = s.open_workload().map_err(|e| ReplayError::Input(e.to_string()))?;
    let mut pending = source.next_arrival().map_err(|e| ReplayError::Input(e.to_string()))?;
    let limit = max_queue(s);
    let mut next_id = 0u64;
    let mut live: HashMap<u64, Inv> = HashMap::new();
    let mut queues: Vec<VecDeque<u64>> = vec![VecDeque::new(); s.functions.len()];
    let mut in_host: Vec<u64> = vec![0; s.functions.len()];
    let mut timers: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut records: Vec<Record> = Vec::new();
    let (mut lags, mut handoffs) = (Vec::new(), Vec::new());
    let mut replies = 0u64;
    let mut aborted: Option<String> = None;

    // Sends invocation `id` to worker `w`.
    let send = |workers: &mut Workers, w: usize, id: u64, inv: &mut Inv| -> Result<(), String> {
        let worker = &mut workers.0[w];
        let req = Request::Run {
            id,
            func: inv.func,
            scale: inv.scale,
        };
        let stdin = worker.stdin.as_mut().ok_or("worker closed")?;
        send_line(stdin, &req).map_err(|e| format!("worker {w}: {e}"))?;
        worker.outstanding += 1;
        inv.worker = Some(w);
        inv.sent_at = now_ns();
        Ok(())
    };
    // A worker of `func` with a free lane, the least loaded.
    let free_worker = |workers: &Workers, func: u32| -> Option<usize> {
        workers
            .0
            .iter()
            .enumerate()
            .filter(|(_, w)| w.spec.functions.contains(&func) && w.outstanding < w.spec.lanes.max(1))
            .min_by_key(|(i, w)| (w.outstanding, *i))
            .map(|(i, _)| i)
    };

    'replay: loop {
        if signals::interrupted() {
            aborted = Some("interrupted (a signal)".into());
            break;
        }
        let now = rel(now_ns());
        // Arrivals due.
        while let Some(a) = pending.filter(|a| a.time <= now && a.time < horizon) {
            pending = source.next_arrival().map_err(|e| ReplayError::Input(e.to_string()))?;
            lags.push(now - a.time);
            let id = next_id;
            next_id += 1;
            let (host_before, host_after, _) = split[a.func as usize];
            let scale = match a.duration {
                Some(d) if plans[a.func as usize].planned_ns > 0 => d as f64 / plans[a.func as usize].planned_ns as f64,
                _ => 1.0,
            };
            let mut inv = Inv {
                func: a.func,
                arrival: a.time,
                scale,
                ready_at: a.time + (host_before as f64 * scale).round() as u64,
                host_after: (host_after as f64 * scale).round() as u64,
                worker: None,
                sent_at: 0,
            };
            let f = a.func as usize;
            let waiting = queues[f].len() as u64 + in_host[f];
            if host_off_worker {
                if waiting >= limit {
                    records.push(rejected(id, &inv));
                    continue;
                }
                in_host[f] += 1;
                timers.push(Reverse((inv.ready_at, id)));
            } else if let Some(w) = free_worker(&workers, inv.func) {
                if let Err(e) = send(&mut workers, w, id, &mut inv) {
                    aborted = Some(e);
                    live.insert(id, inv);
                    break 'replay;
                }
            } else if waiting >= limit {
                records.push(rejected(id, &inv));
                continue;
            } else {
                queues[f].push_back(id);
            }
            live.insert(id, inv);
        }
        if pending.is_some_and(|a| a.time >= horizon) {
            pending = None;
        }
        // Host code done (kaas): the request may take a worker.
        while let Some(&Reverse((at, id))) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            let inv = live.get_mut(&id).expect("live");
            let f = inv.func as usize;
            in_host[f] -= 1;
            if let Some(w) = free_worker(&workers, inv.func) {
                if let Err(e) = send(&mut workers, w, id, inv) {
                    aborted = Some(e);
                    break 'replay;
                }
            } else {
                queues[f].push_back(id);
            }
        }
        // The end.
        if pending.is_none() {
            let quiet = live.is_empty();
            if now >= horizon && (!s.drain || quiet) {
                break;
            }
            if s.drain && now >= horizon + opts.drain_timeout.as_nanos() as u64 {
                notes.push(format!(
                    "drain stopped {} s after the horizon with {} invocations in flight",
                    opts.drain_timeout.as_secs(),
                    live.len()
                ));
                break;
            }
        }
        // Wait for a reply, the next arrival or timer, or the horizon.
        let mut wake = now + 100_000_000;
        if let Some(a) = pending {
            wake = wake.min(a.time);
        }
        if let Some(&Reverse((at, _))) = timers.peek() {
            wake = wake.min(at);
        }
        if pending.is_none() && now < horizon {
            wake = wake.min(horizon);
        }
        let msg = match rx.recv_timeout(Duration::from_nanos(wake.saturating_sub(now))) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                aborted = Some("every worker exited".into());
                break;
            }
        };
        replies += 1;
        match msg {
            Msg::Reply(w, Reply::Done(d)) => {
                let Some(inv) = live.remove(&d.id) else {
                    aborted = Some(format!("worker {w} reported invocation {} it was not running", d.id));
                    break;
                };
                workers.0[w].outstanding -= 1;
                workers.0[w].completed += 1;
                handoffs.push(d.start_ns.saturating_sub(inv.sent_at));
                records.push(completed(d.id, &inv, &d, w, workers.0[w].spec.gpu, &rel));
                // The freed lane takes the oldest request waiting for this worker's functions.
                while workers.0[w].outstanding < workers.0[w].spec.lanes.max(1) {
                    let next = workers.0[w]
                        .spec
                        .functions
                        .iter()
                        .filter_map(|&f| queues[f as usize].front().map(|&id| (id, f)))
                        .min();
                    let Some((id, f)) = next else { break };
                    queues[f as usize].pop_front();
                    let inv = live.get_mut(&id).expect("queued invocations are live");
                    if let Err(e) = send(&mut workers, w, id, inv) {
                        aborted = Some(e);
                        break 'replay;
                    }
                }
            }
            Msg::Reply(w, Reply::Failed { id, error }) => {
                if let Some(inv) = live.remove(&id) {
                    records.push(Record {
                        outcome: Outcome::Failed,
                        ..unfinished(id, &inv)
                    });
                }
                aborted = Some(format!("worker {w} failed: {error}{}", log_tail(&workers.0[w].log)));
                break;
            }
            Msg::Reply(w, other) => {
                aborted = Some(format!("worker {w} sent {other:?} during the replay"));
                break;
            }
            Msg::Garbage(w, l) => {
                aborted = Some(format!("worker {w} wrote something not in the protocol: {l}"));
                break;
            }
            Msg::Closed(w) => {
                aborted = Some(format!(
                    "worker {w} exited during the replay{}",
                    log_tail(&workers.0[w].log)
                ));
                break;
            }
        }
    }
    let stop = rel(now_ns());
    let end = if aborted.is_none() && !s.drain { horizon } else { stop };
    let wall_s = started.elapsed().as_secs_f64();
    workers.quit_all(Duration::from_secs(10));
    let samples = sampler.map(Sampler::finish);
    if let Some(mut d) = daemon.take()
        && let Err(e) = d.stop()
    {
        notes.push(e);
    }

    // Whatever is still live did not finish.
    let mut rest: Vec<(u64, Inv)> = live.into_iter().collect();
    rest.sort_by_key(|(id, _)| *id);
    records.extend(rest.iter().map(|(id, inv)| unfinished(*id, inv)));

    // Results.
    let nvml: Vec<(u64, nvml::Sample)> = samples
        .as_ref()
        .map(|s| {
            s.devices
                .iter()
                .filter(|x| x.t_ns >= origin)
                .map(|x| (rel(x.t_ns), *x))
                .collect()
        })
        .unwrap_or_default();
    if let Some(s) = &samples {
        notes.extend(s.notes.iter().cloned());
    }
    let busy_clocks = nvml::busy_clocks(&nvml.iter().map(|(_, x)| *x).collect::<Vec<_>>());
    let clock_sag = nvml::clock_sag(&nvml.iter().map(|(_, x)| *x).collect::<Vec<_>>(), reference_clock);
    notes.extend(clock_sag.clone());
    let functions: Vec<&str> = s.functions.iter().map(|f| f.name.as_str()).collect();
    let memory_mib = device
        .as_ref()
        .filter(|d| d.memory_total_bytes > 0)
        .map_or(dev.memory_mib, |d| {
            d.memory_total_bytes as f64 / gpushare_sim::device::MIB as f64
        });
    let inputs = Inputs {
        scenario: &s.name,
        policy: &s.policy.name,
        seed: s.seed,
        horizon,
        warmup: s.warmup,
        end,
        slo: s.slo,
        functions: functions.clone(),
        gpus: opts.gpus.iter().map(|&g| (g, dev.name.clone(), memory_mib)).collect(),
        workers: lay
            .workers
            .iter()
            .map(|w| WorkerUse {
                fraction: w.mps_percentage.map_or(1.0, |p| p / 100.0),
                gpu: w.gpu,
            })
            .collect(),
        records: &records,
        nvml: &nvml,
        replies,
    };
    let out = measured::summarise(&inputs);
    let mut summary = out.summary;
    summary.policy_report.push(format!(
        "replay ({}): {} workers, {:?} mechanism{}",
        opts.backend.name(),
        lay.workers.len(),
        lay.mechanism,
        if opts.backend == Backend::Emulated {
            "; emulated: no GPU was used, these are not measurements"
        } else {
            ""
        }
    ));
    let prediction_command = {
        let mut c = vec!["gpushare".to_string(), "run".to_string()];
        c.extend(opts.scenario_args.iter().cloned());
        for o in &overrides {
            c.push("--set".into());
            c.push(o.clone());
        }
        c.join(" ")
    };
    let report = ReplayReport {
        backend: opts.backend.name(),
        measurement: opts.backend == Backend::Cuda,
        scenario: s.name.clone(),
        policy: s.policy.name.clone(),
        mechanism: lay.mechanism,
        gpus: opts.gpus.clone(),
        device,
        libraries,
        calibration: cal_path,
        time_scale: opts.time_scale,
        prediction_command,
        workers: workers
            .0
            .iter()
            .map(|w| {
                let r = w.ready.clone().expect("ready");
                WorkerReport {
                    id: w.spec.id,
                    gpu: w.spec.gpu,
                    functions: w
                        .spec
                        .functions
                        .iter()
                        .map(|&f| functions[f as usize].to_string())
                        .collect(),
                    lanes: w.spec.lanes,
                    mps_percentage: w.spec.mps_percentage,
                    sms_seen: r.sms,
                    pid: r.pid,
                    context_s: r.context_s,
                    kernels: r.kernels,
                    resident_mib: r.resident_bytes as f64 / gpushare_sim::device::MIB as f64,
                    extra_mib: r.extra_bytes as f64 / gpushare_sim::device::MIB as f64,
                    cublas: r.cublas,
                    completed: w.completed,
                }
            })
            .collect(),
        arrival_lag: Delays::of(lags),
        handoff: Delays::of(handoffs),
        nvml_samples: nvml.len(),
        sm_clock_busy_mhz: busy_clocks,
        clock_sagged: clock_sag.is_some(),
        wall_s,
        aborted: aborted.clone(),
        notes,
    };
    write_outputs(
        &opts.out,
        s,
        &summary,
        &out.latency_cdf,
        &records,
        &functions,
        samples.as_ref(),
        &nvml,
        &report,
        &workers,
        origin,
    )
    .map_err(|e| ReplayError::Failed(format!("writing into {}: {e}", opts.out.display())))?;
    if let Some(why) = aborted {
        return Err(ReplayError::Failed(format!(
            "the replay stopped early: {why}; what it recorded is in {}",
            opts.out.display()
        )));
    }
    Ok(ReplayRun { summary, report })
}

fn rejected(id: u64, inv: &Inv) -> Record {
    Record {
        outcome: Outcome::Rejected(RejectReason::QueueFull),
        ..unfinished(id, inv)
    }
}

fn unfinished(id: u64, inv: &Inv) -> Record {
    Record {
        id,
        func: inv.func,
        arrival: inv.arrival,
        start: None,
        end: None,
        queue: None,
        exec: None,
        gpu: None,
        worker: None,
        gpu_busy: None,
        worker_busy: None,
        outcome: Outcome::Unfinished,
    }
}

fn completed(id: u64, inv: &Inv, d: &Done, w: usize, gpu: u32, rel: &dyn Fn(u64) -> u64) -> Record {
    let (start_w, end_w) = (rel(d.start_ns), rel(d.end_ns));
    let end = end_w + inv.host_after;
    let queue = start_w.saturating_sub(inv.ready_at);
    // Under kaas the host code before the worker is execution, not waiting: it ran at arrival.
    let start = if inv.ready_at > inv.arrival {
        inv.arrival
    } else {
        start_w
    };
    Record {
        id,
        func: inv.func,
        arrival: inv.arrival,
        start: Some(start),
        end: Some(end),
        queue: Some(queue),
        exec: Some(end.saturating_sub(inv.arrival + queue)),
        gpu: Some(gpu),
        worker: Some(w),
        gpu_busy: (d.gpu_ns > 0).then(|| {
            let e = rel(d.gpu_end_ns);
            (e.saturating_sub(d.gpu_ns), e)
        }),
        worker_busy: Some((start_w, end_w)),
        outcome: Outcome::Completed,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    dir: &Path,
    s: &Scenario,
    summary: &Summary,
    cdf: &[(f64, f64)],
    records: &[Record],
    functions: &[&str],
    samples: Option<&nvml::Samples>,
    nvml: &[(u64, nvml::Sample)],
    report: &ReplayReport,
    workers: &Workers,
    origin: u64,
) -> std::io::Result<()> {
    use gpushare_reports::atomic::write_atomic;
    use std::fmt::Write as _;
    measured::write_invocations(dir, records, functions)?;
    gpushare_reports::write_summary(dir, summary)?;
    gpushare_reports::series::write_cdf(dir, cdf)?;
    let mut text = String::from("t_s,gpu,util_pct,mem_util_pct,mem_used_mib,sm_clock_mhz,mem_clock_mhz\n");
    for (t, x) in nvml {
        let _ = writeln!(
            text,
            "{:.6},{},{},{},{:.1},{},{}",
            *t as f64 / 1e9,
            x.gpu,
            x.util_pct,
            x.mem_util_pct,
            x.mem_used_bytes as f64 / gpushare_sim::device::MIB as f64,
            x.sm_clock_mhz,
            x.mem_clock_mhz
        );
    }
    write_atomic(&dir.join("nvml.csv"), text.as_bytes())?;
    let mut text = String::from("t_s,gpu,pid,worker,sm_util_pct,mem_util_pct\n");
    let worker_of = |pid: u32| {
        workers
            .0
            .iter()
            .find(|w| w.ready.as_ref().is_some_and(|r| r.pid == pid))
            .map(|w| w.spec.id.to_string())
            .unwrap_or_default()
    };
    if let Some(smp) = samples {
        for p in smp.processes.iter().filter(|p| p.t_ns >= origin) {
            let _ = writeln!(
                text,
                "{:.6},{},{},{},{},{}",
                (p.t_ns - origin) as f64 / 1e9,
                p.gpu,
                p.pid,
                worker_of(p.pid),
                p.sm_util_pct,
                p.mem_util_pct
            );
        }
    }
    write_atomic(&dir.join("nvml_processes.csv"), text.as_bytes())?;
    let ts = dir.join("timeseries.csv");
    if let Some(every) = s.output.timeseries_s {
        let gpus: Vec<u32> = report.gpus.clone();
        let per_gpu: Vec<u32> = gpus
            .iter()
            .map(|g| report.workers.iter().filter(|w| w.gpu == *g).count() as u32)
            .collect();
        let every = gpushare_sim::time::secs_to_ns(every);
        let series = measured::timeseries(nvml, &gpus, &per_gpu, every, summary.end_s as u64 * 1_000_000_000);
        gpushare_reports::series::write_timeseries(dir, &series)?;
    } else if ts.exists() {
        std::fs::remove_file(ts)?;
    }
    let json = serde_json::to_string_pretty(report).expect("reports serialise");
    write_atomic(&dir.join("replay.json"), (json + "\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Op;

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
