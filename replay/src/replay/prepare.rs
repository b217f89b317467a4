//! What a replay decides before it starts anything: the checks of the options against the
//! scenario (time scale, GPUs, one device type), the calibration that sizes the kernels and the
//! libraries it needs, the policy's process layout, and each function's plan — under a kernel
//! server with its host code split off the worker.

use super::ReplayOptions;
use crate::calibration::{Calibration, ReplayCalibration};
use crate::driver::{self, NO_DRIVER, ReplayError};
use crate::libs::LibrariesReport;
use crate::plan::{self, FunctionPlan, Layout, Mechanism, PlannedOp};
use crate::protocol::Backend;
use gpushare_sim::Scenario;
use gpushare_sim::device::DeviceSpec;
use std::path::PathBuf;

/// A replay as decided before anything starts.
pub(super) struct Prepared {
    /// The scenario as replayed ([`time_scaled`]), and the overrides that give the same to
    /// `gpushare run`.
    pub scenario: Scenario,
    pub overrides: Vec<String>,
    /// The device type of every GPU.
    pub dev: DeviceSpec,
    pub cal: ReplayCalibration,
    pub cal_path: Option<PathBuf>,
    /// The SM clock the calibration was measured at, MHz.
    pub reference_clock: Option<u32>,
    pub libraries: Option<LibrariesReport>,
    /// The workers, on the replay's device ordinals.
    pub lay: Layout,
    pub plans: Vec<FunctionPlan>,
    /// Each function's host time before and after its GPU part (off the worker), and the plan a
    /// worker runs.
    pub split: Vec<(u64, u64, FunctionPlan)>,
    /// Whether host code runs off the worker (a kernel server).
    pub host_off_worker: bool,
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

/// Checks `opts` against `scenario` and decides the replay; what the user should know goes to
/// `notes`.
pub(super) fn prepare(
    scenario: &Scenario,
    opts: &ReplayOptions,
    notes: &mut Vec<String>,
) -> Result<Prepared, ReplayError> {
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
    let dev = device_type(&scenario, opts)?;
    let (cal, cal_path, reference_clock) = calibration(&scenario, opts, &dev)?;
    let libraries = libraries(opts, &cal, notes)?;
    let lay = layout(&scenario, opts, notes)?;
    let s = &scenario;
    let plans: Vec<FunctionPlan> = s
        .functions
        .iter()
        .map(|f| {
            let c = f.profile.compile(&f.reference, &dev, s.storage_gbps);
            plan::function_plan(&f.name, &c, &dev, &cal)
        })
        .collect();
    let host_off_worker = lay.mechanism == Mechanism::KernelServer;
    let split = split_plans(s, &plans, host_off_worker);
    Ok(Prepared {
        scenario,
        overrides,
        dev,
        cal,
        cal_path,
        reference_clock,
        libraries,
        lay,
        plans,
        split,
        host_off_worker,
    })
}

/// The one device type of the (time-scaled) scenario's cluster, which must have as many GPUs as
/// the replay and a millisecond of arrivals at least.
fn device_type(s: &Scenario, opts: &ReplayOptions) -> Result<DeviceSpec, ReplayError> {
    if s.horizon < 1_000_000 {
        return Err(ReplayError::Input(format!(
            "--time-scale {}: leaves {:.3e} s of arrivals; a replay needs at least a millisecond",
            opts.time_scale,
            s.horizon as f64 / 1e9
        )));
    }
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
    Ok(s.devices[dev_index].clone())
}

/// The calibration that sizes the kernels for `dev`: `--calibration`, else the scenario's
/// measured profile of `dev`, else (emulated only) nominal sizes; with its file and the SM clock
/// it was measured at.
fn calibration(
    s: &Scenario,
    opts: &ReplayOptions,
    dev: &DeviceSpec,
) -> Result<(ReplayCalibration, Option<PathBuf>, Option<u32>), ReplayError> {
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
    Ok((cal, cal_path, reference_clock))
}

/// The libraries a CUDA replay loads (`None`: emulated), refused where the calibration needs
/// cuBLAS and none loads.
fn libraries(
    opts: &ReplayOptions,
    cal: &ReplayCalibration,
    notes: &mut Vec<String>,
) -> Result<Option<LibrariesReport>, ReplayError> {
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
    Ok(libraries)
}

/// The policy's process layout, its workers on the replay's device ordinals.
fn layout(s: &Scenario, opts: &ReplayOptions, notes: &mut Vec<String>) -> Result<Layout, ReplayError> {
    let mut lay = plan::layout(s, opts.gpus.len() as u32).map_err(ReplayError::Input)?;
    let mapping = gpushare_policies::replay_mapping::replay_mapping(s).map_err(ReplayError::Input)?;
    if mapping.prewarm == Some(false) {
        notes.push(
            "the replay's instances start set up; the simulation of this scenario starts them cold: \
             simulate the prediction with --set policy.prewarm=true"
                .into(),
        );
    }
    for w in &mut lay.workers {
        w.gpu = opts.gpus[w.gpu as usize];
    }
    Ok(lay)
}

/// Each function's plan as a worker runs it: whole, or under a kernel server (`host_off_worker`)
/// its GPU part with the server's own dispatch time, the host time before and after it apart.
fn split_plans(s: &Scenario, plans: &[FunctionPlan], host_off_worker: bool) -> Vec<(u64, u64, FunctionPlan)> {
    plans
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
        .collect()
}

/// The host time before the first GPU operation and after the last, and the plan without it.
pub(super) fn split_host(plan: &FunctionPlan) -> (u64, u64, FunctionPlan) {
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
