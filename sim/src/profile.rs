//! Function profiles: what one invocation of a GPU function costs.
//!
//! A profile states its memory (model weights and activations), its setup costs (container start,
//! CUDA context creation, framework initialisation, model load), and its execution as a sequence
//! of steps: host time before, GPU phases (host↔device copies and kernels), host time after.
//! A kernel phase is written as a profiler measures it alone on the whole *reference* GPU
//! (`solo_ms`, `sm_pct`, `dram_pct`, …); on another device it is rescaled (see
//! [`FunctionProfile::compile`]). Profiles are data: the built-in catalog
//! ([`crate::catalog`]) and scenario files use the same fields.

use crate::contention::KernelDemand;
use crate::device::{DeviceSpec, MIB};
use crate::kernel_graph::KernelGraph;
use crate::time::{Nanos, ms_to_ns, secs_to_ns};
use serde::{Deserialize, Serialize};

/// Where model weights are loaded from during setup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Local storage: weights cross min(storage bandwidth, host link).
    #[default]
    Storage,
    /// Host memory (already cached): weights cross the host link only.
    Host,
}

/// One GPU phase of an invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Phase {
    /// Host→device copy of `mib` MiB over the host link.
    H2d { mib: f64 },
    /// Device→host copy of `mib` MiB over the host link.
    D2h { mib: f64 },
    /// CPU work between GPU phases (e.g. a training step's data loading), ms.
    Host { ms: f64 },
    /// Kernels, as a profiler measures them alone on the whole reference GPU
    /// (docs/gpu-model.md says how to measure each field).
    Kernel(KernelPhase),
}

/// A kernel phase in the language of a profiler, measured alone on the profile's
/// `reference_gpu`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelPhase {
    /// Duration alone, ms (Nsight Systems: the phase's kernels' time, summed).
    pub solo_ms: f64,
    /// SM throughput, % of peak (Nsight Compute `sm__throughput.avg.pct_of_peak_sustained_elapsed`).
    pub sm_pct: f64,
    /// DRAM throughput, % of peak (Nsight Compute `dram__throughput.avg.pct_of_peak_sustained_elapsed`).
    pub dram_pct: f64,
    /// Thread blocks per launch (`launch__grid_size`): bounds the SMs the kernels can occupy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u32>,
    /// Threads per block (`launch__block_size`); needs `blocks`. With it, the kernels' occupancy
    /// bounds how far they can be squeezed onto fewer SMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_per_block: Option<u32>,
    /// Achieved occupancy, % (`sm__warps_active.avg.pct_of_peak_sustained_active`), instead of
    /// `threads_per_block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupancy_pct: Option<f64>,
    /// L2 working set, MiB: takes part in cache contention when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2_mib: Option<f64>,
}

impl KernelPhase {
    /// A kernel phase with only the three required measurements.
    pub fn new(solo_ms: f64, sm_pct: f64, dram_pct: f64) -> Self {
        KernelPhase {
            solo_ms,
            sm_pct,
            dram_pct,
            blocks: None,
            threads_per_block: None,
            occupancy_pct: None,
            l2_mib: None,
        }
    }

    /// Range checks; (field, message) for the first field out of range.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let KernelPhase {
            solo_ms,
            sm_pct,
            dram_pct,
            ..
        } = *self;
        if !(solo_ms.is_finite() && (0.0..=MAX_MS).contains(&solo_ms)) {
            return Err((
                "solo_ms",
                format!("must be a number of ms from 0 to {MAX_MS:e}, got {}", shown(solo_ms)),
            ));
        }
        if !(sm_pct > 0.0 && sm_pct <= 100.0) {
            return Err((
                "sm_pct",
                format!("must be in (0, 100] (% of peak SM throughput), got {sm_pct}"),
            ));
        }
        if !(0.0..=100.0).contains(&dram_pct) {
            return Err((
                "dram_pct",
                format!("must be in [0, 100] (% of peak DRAM throughput), got {dram_pct}"),
            ));
        }
        if self.blocks == Some(0) {
            return Err(("blocks", "must be at least 1".into()));
        }
        if let Some(t) = self.threads_per_block {
            if !(1..=1024).contains(&t) {
                return Err(("threads_per_block", format!("must be in [1, 1024], got {t}")));
            }
            if self.blocks.is_none() {
                return Err(("threads_per_block", "needs `blocks` (the grid size) beside it".into()));
            }
            if self.occupancy_pct.is_some() {
                return Err((
                    "occupancy_pct",
                    "give either `occupancy_pct` or `threads_per_block`, not both".into(),
                ));
            }
        }
        if let Some(o) = self.occupancy_pct {
            if !(o > 0.0 && o <= 100.0) {
                return Err(("occupancy_pct", format!("must be in (0, 100], got {o}")));
            }
        }
        if let Some(w) = self.l2_mib {
            if !(w.is_finite() && w >= 0.0) {
                return Err(("l2_mib", format!("must be a non-negative number of MiB, got {w}")));
            }
        }
        Ok(())
    }

    /// Fraction of `dev`'s SMs the grid can occupy at once.
    fn parallelism(&self, dev: &DeviceSpec) -> f64 {
        self.blocks
            .map_or(1.0, |b| (f64::from(b) / f64::from(dev.sms)).min(1.0))
    }

    /// Compute capacity the kernels can use on `dev`, SM-MHz (their grid may not fill it).
    fn usable_sm_mhz(&self, dev: &DeviceSpec) -> f64 {
        f64::from(self.blocks.map_or(dev.sms, |b| b.min(dev.sms))) * dev.sm_clock_mhz
    }

    /// Occupancy on the SMs it occupies on `dev`, a fraction (0 when unknown).
    fn occupancy(&self, dev: &DeviceSpec) -> f64 {
        if let Some(o) = self.occupancy_pct {
            return o / 100.0;
        }
        match (self.blocks, self.threads_per_block) {
            (Some(b), Some(t)) => {
                let occupied = f64::from(b.min(dev.sms));
                let per_sm = (f64::from(b) / occupied)
                    .ceil()
                    .min((dev.max_threads_per_sm / t).max(1) as f64);
                (per_sm * f64::from(t) / f64::from(dev.max_threads_per_sm)).min(1.0)
            }
            _ => 0.0,
        }
    }

    /// The SM throughput it cannot exceed on the reference device: the share of SMs its grid
    /// occupies. `Err` names the inconsistency.
    pub fn check_on(&self, reference: &DeviceSpec) -> Result<(), (&'static str, String)> {
        let p = self.parallelism(reference);
        if self.sm_pct > p * 100.0 + 1e-9 {
            return Err((
                "sm_pct",
                format!(
                    "{} % SM throughput is more than the {:.1} % of {}'s {} SMs that {} blocks can occupy",
                    self.sm_pct,
                    p * 100.0,
                    reference.name,
                    reference.sms,
                    self.blocks.unwrap_or(0)
                ),
            ));
        }
        Ok(())
    }

    /// Its duration alone on `dev` (ns) and its demands there, from its measurements on
    /// `reference` (docs/gpu-model.md, "Across devices").
    pub fn compile(&self, reference: &DeviceSpec, dev: &DeviceSpec) -> (Nanos, KernelDemand) {
        let s = self.sm_pct / 100.0;
        let m = self.dram_pct / 100.0;
        let compute_ratio = self.usable_sm_mhz(reference) / self.usable_sm_mhz(dev);
        let bandwidth_ratio = reference.mem_bandwidth_gbps / dev.mem_bandwidth_gbps;
        let weighted = (s * compute_ratio + m * bandwidth_ratio) / (s + m);
        let compute_floor = s * reference.sm_mhz() / self.usable_sm_mhz(dev);
        let factor = weighted.max(compute_floor).max(m * bandwidth_ratio);
        let sm = s * reference.sm_mhz() / (factor * dev.sm_mhz());
        let dram = m * bandwidth_ratio / factor;
        let p = self.parallelism(dev);
        let footprint = (sm.max(p * self.occupancy(dev))).min(p);
        let work = ms_to_ns(self.solo_ms * factor);
        (work, KernelDemand::new(footprint, sm, dram, self.l2_mib.unwrap_or(0.0)))
    }
}

/// The fields of the first contention model, which no longer exist: a clear error for files
/// written against them.
const LEGACY_KERNEL_FIELDS: [&str; 4] = ["work_ms", "sm_demand", "bw_intensity", "speed_knee"];

/// If the profile table `value` uses a kernel field of the first model, the phase's index and
/// the message that says what replaced it.
pub fn legacy_kernel_field(value: &toml::Value) -> Option<(usize, &'static str, String)> {
    let phases = value.get("phases")?.as_array()?;
    for (i, phase) in phases.iter().enumerate() {
        let Some(t) = phase.as_table() else { continue };
        if let Some(&f) = LEGACY_KERNEL_FIELDS.iter().find(|f| t.contains_key(**f)) {
            return Some((
                i,
                f,
                format!(
                    "`{f}` belongs to the old speed model: a kernel phase is now written as a profiler measures it alone, `solo_ms`, `sm_pct`, `dram_pct` (optional `blocks`, `threads_per_block` or `occupancy_pct`, `l2_mib`); see docs/gpu-model.md"
                ),
            ));
        }
    }
    None
}

/// A GPU function's costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionProfile {
    /// What the function is.
    #[serde(default)]
    pub description: String,
    /// Where the numbers come from.
    #[serde(default)]
    pub source: String,
    /// The device on which its kernel phases were measured.
    pub reference_gpu: String,
    /// Model weights (read-only, shareable), MiB.
    pub weights_mib: f64,
    /// Activations, workspace and other per-instance memory, MiB.
    pub activation_mib: f64,
    /// Where weights are loaded from at setup.
    #[serde(default)]
    pub model_source: ModelSource,
    /// Container (sandbox) start, seconds.
    pub container_start_s: f64,
    /// Framework initialisation (e.g. the PyTorch runtime), seconds.
    pub framework_init_s: f64,
    /// Host (CPU) time before the GPU phases, ms.
    #[serde(default)]
    pub host_pre_ms: f64,
    /// Host (CPU) time after the GPU phases, ms.
    #[serde(default)]
    pub host_post_ms: f64,
    /// GPU phases, in order.
    pub phases: Vec<Phase>,
    /// Its kernel graph for kernel servers (KaaS); derived from the profile when absent
    /// ([`FunctionProfile::graph`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_graph: Option<KernelGraph>,
}

/// The kind of a GPU phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseKind {
    Kernel,
    H2d,
    D2h,
}

/// A GPU phase compiled for one device: `work` is its duration alone on that device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuPhase {
    pub kind: PhaseKind,
    pub work: Nanos,
    /// Its demands on the device (kernels; [`KernelDemand::NONE`] for copies).
    pub demand: KernelDemand,
}

impl GpuPhase {
    /// A host↔device copy of `work` ns.
    pub fn copy(kind: PhaseKind, work: Nanos) -> Self {
        GpuPhase {
            kind,
            work,
            demand: KernelDemand::NONE,
        }
    }
}

/// One step of an invocation on a given device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// CPU time; holds the instance but no GPU resource.
    Host(Nanos),
    /// A phase on the instance's GPU.
    Gpu(GpuPhase),
}

/// Setup (cold-start) costs on a given device, each part separately.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SetupParts {
    pub container: Nanos,
    pub context: Nanos,
    pub framework: Nanos,
    pub model_load: Nanos,
}

impl SetupParts {
    /// Setup with every part in sequence: the usual cold start.
    pub fn sequential(&self) -> Nanos {
        self.container + self.context + self.framework + self.model_load
    }
}

/// A profile compiled for one device: integer-nanosecond steps ready for the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledProfile {
    pub steps: Vec<Step>,
    /// Execution time alone on the device (sum of all steps).
    pub solo_exec: Nanos,
    pub setup: SetupParts,
    pub weights_bytes: u64,
    pub activation_bytes: u64,
    pub context_bytes: u64,
}

impl CompiledProfile {
    /// Device memory one instance needs without any sharing: context + weights + activations.
    pub fn footprint(&self) -> u64 {
        self.context_bytes + self.weights_bytes + self.activation_bytes
    }

    /// The steps from the first kernel to the last, as a range `(first, last + 1)`; `None`
    /// without kernels.
    pub fn kernel_span(&self) -> Option<(usize, usize)> {
        let is_kernel = |s: &Step| matches!(s, Step::Gpu(p) if p.kind == PhaseKind::Kernel);
        let first = self.steps.iter().position(is_kernel)?;
        let last = self.steps.iter().rposition(is_kernel)?;
        Some((first, last + 1))
    }

    /// Host time before the first kernel and after the last (all of it without kernels).
    pub fn host_around_kernels(&self) -> (Nanos, Nanos) {
        let host =
            |steps: &[Step]| -> Nanos { steps.iter().map(|s| if let Step::Host(ns) = s { *ns } else { 0 }).sum() };
        match self.kernel_span() {
            Some((lo, hi)) => (host(&self.steps[..lo]), host(&self.steps[hi..])),
            None => (host(&self.steps), 0),
        }
    }

    /// Kernel time alone on the device (the sum of its kernel phases' work).
    pub fn kernel_ns(&self) -> Nanos {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Gpu(p) if p.kind == PhaseKind::Kernel => p.work,
                _ => 0,
            })
            .sum()
    }
}

fn mib_bytes(mib: f64) -> u64 {
    (mib * MIB as f64).round() as u64
}

/// The longest time a profile may state, in ms: the traces' bound on any time read (10⁹ s),
/// far beyond any run yet within the simulated clock (u64 nanoseconds, 1.8 × 10¹⁰ s).
pub const MAX_MS: f64 = gpushare_traces::MAX_SECONDS * 1e3;
/// The most memory a profile may state, in MiB (a petabyte and more: beyond any GPU).
pub const MAX_MIB: f64 = 1e9;

/// A value as an error shows it: plainly, or in exponent form when huge (not 300 digits).
fn shown(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e15 {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// Time to move `bytes` at `gbps` GB/s.
pub fn copy_ns(bytes: u64, gbps: f64) -> Nanos {
    (bytes as f64 / gbps).round() as Nanos // bytes / (GB/s) = ns
}

impl FunctionProfile {
    /// Checks ranges; returns (field, message) for the first field out of range.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bounded = [
            ("weights_mib", self.weights_mib, MAX_MIB),
            ("activation_mib", self.activation_mib, MAX_MIB),
            ("container_start_s", self.container_start_s, MAX_MS / 1e3),
            ("framework_init_s", self.framework_init_s, MAX_MS / 1e3),
            ("host_pre_ms", self.host_pre_ms, MAX_MS),
            ("host_post_ms", self.host_post_ms, MAX_MS),
        ];
        for (field, v, max) in bounded {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err((
                    field.into(),
                    format!("must be a number from 0 to {max:e}, got {}", shown(v)),
                ));
            }
        }
        if let Some(g) = &self.kernel_graph {
            g.check().map_err(|(f, m)| (format!("kernel_graph.{f}"), m))?;
        }
        for (i, phase) in self.phases.iter().enumerate() {
            let at = |f: &str| format!("phases[{i}].{f}");
            match *phase {
                Phase::H2d { mib } | Phase::D2h { mib } => {
                    if !(mib.is_finite() && (0.0..=MAX_MIB).contains(&mib)) {
                        return Err((
                            at("mib"),
                            format!("must be a number from 0 to {MAX_MIB:e}, got {}", shown(mib)),
                        ));
                    }
                }
                Phase::Host { ms } => {
                    if !(ms.is_finite() && (0.0..=MAX_MS).contains(&ms)) {
                        return Err((
                            at("ms"),
                            format!("must be a number from 0 to {MAX_MS:e}, got {}", shown(ms)),
                        ));
                    }
                }
                Phase::Kernel(k) => {
                    k.check().map_err(|(f, m)| (at(f), m))?;
                }
            }
        }
        Ok(())
    }

    /// The same profile with kernel graph `graph`.
    pub fn with_graph(mut self, graph: Option<KernelGraph>) -> Self {
        self.kernel_graph = graph;
        self
    }

    /// Its kernel graph: the one it states, or one derived from its memory and copies
    /// ([`KernelGraph::derived`]).
    pub fn graph(&self) -> KernelGraph {
        if let Some(g) = &self.kernel_graph {
            return g.clone();
        }
        let (mut h2d, mut d2h) = (0.0, 0.0);
        for p in &self.phases {
            match p {
                Phase::H2d { mib } => h2d += mib,
                Phase::D2h { mib } => d2h += mib,
                _ => {}
            }
        }
        KernelGraph::derived(self.weights_mib, h2d, d2h, self.activation_mib)
    }

    /// Compiles the profile for `dev`, given the reference device and the node's storage
    /// bandwidth (GB/s).
    ///
    /// Kernels move between devices by their compute and bandwidth parts
    /// ([`KernelPhase::compile`]); copies and model loads run at the device's host-link
    /// bandwidth.
    pub fn compile(&self, reference: &DeviceSpec, dev: &DeviceSpec, storage_gbps: f64) -> CompiledProfile {
        let mut steps = Vec::with_capacity(self.phases.len() + 2);
        steps.push(Step::Host(ms_to_ns(self.host_pre_ms)));
        for phase in &self.phases {
            let gpu = match *phase {
                Phase::Host { ms } => {
                    steps.push(Step::Host(ms_to_ns(ms)));
                    continue;
                }
                Phase::H2d { mib } => GpuPhase::copy(PhaseKind::H2d, copy_ns(mib_bytes(mib), dev.host_link_gbps)),
                Phase::D2h { mib } => GpuPhase::copy(PhaseKind::D2h, copy_ns(mib_bytes(mib), dev.host_link_gbps)),
                Phase::Kernel(k) => {
                    let (work, demand) = k.compile(reference, dev);
                    GpuPhase {
                        kind: PhaseKind::Kernel,
                        work,
                        demand,
                    }
                }
            };
            steps.push(Step::Gpu(gpu));
        }
        steps.push(Step::Host(ms_to_ns(self.host_post_ms)));
        // Zero-length steps do nothing at any scale: leave them out of the engine's hot path.
        steps.retain(|s| !matches!(s, Step::Host(0) | Step::Gpu(GpuPhase { work: 0, .. })));
        let solo_exec = steps
            .iter()
            .map(|s| match s {
                Step::Host(ns) => *ns,
                Step::Gpu(p) => p.work,
            })
            .sum();
        let weights_bytes = mib_bytes(self.weights_mib);
        let load_gbps = match self.model_source {
            ModelSource::Host => dev.host_link_gbps,
            ModelSource::Storage => dev.host_link_gbps.min(storage_gbps),
        };
        CompiledProfile {
            steps,
            solo_exec,
            setup: SetupParts {
                container: secs_to_ns(self.container_start_s),
                context: secs_to_ns(dev.context_create_s),
                framework: secs_to_ns(self.framework_init_s),
                model_load: copy_ns(weights_bytes, load_gbps),
            },
            weights_bytes,
            activation_bytes: mib_bytes(self.activation_mib),
            context_bytes: dev.context_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::builtin_device;

    fn profile() -> FunctionProfile {
        FunctionProfile {
            description: String::new(),
            source: String::new(),
            reference_gpu: "v100-16gb".into(),
            weights_mib: 1024.0,
            activation_mib: 100.0,
            model_source: ModelSource::Storage,
            container_start_s: 0.5,
            framework_init_s: 1.0,
            host_pre_ms: 2.0,
            host_post_ms: 0.0,
            phases: vec![
                Phase::H2d { mib: 12.0 },
                Phase::Kernel(KernelPhase::new(10.0, 40.0, 40.0)),
            ],
            kernel_graph: None,
        }
    }

    #[test]
    fn compile_on_reference_device_keeps_work() {
        let v100 = builtin_device("v100-16gb").unwrap();
        let c = profile().compile(&v100, &v100, 2.0);
        // Host pre, copy, kernel; the zero-length host post step is dropped.
        assert_eq!(c.steps.len(), 3);
        let Step::Gpu(k) = c.steps[2] else { panic!() };
        assert_eq!(k.work, 10_000_000);
        assert!((k.demand.sm - 0.4).abs() < 1e-12 && (k.demand.dram - 0.4).abs() < 1e-12);
        assert!((k.demand.footprint - 0.4).abs() < 1e-12);
        // 12 MiB over 12 GB/s.
        let Step::Gpu(copy) = c.steps[1] else { panic!() };
        assert_eq!(copy.work, (12.0 * MIB as f64 / 12.0).round() as u64);
        assert_eq!(c.solo_exec, 2_000_000 + copy.work + 10_000_000);
        // 1 GiB from storage at min(2, 12) GB/s.
        assert_eq!(c.setup.model_load, (1024.0 * MIB as f64 / 2.0).round() as u64);
        assert_eq!(
            c.setup.sequential(),
            500_000_000 + 250_000_000 + 1_000_000_000 + c.setup.model_load
        );
        assert_eq!(c.footprint(), (300 + 1024 + 100) * MIB);
    }

    #[test]
    fn another_device_scales_compute_by_sm_clock_and_memory_by_bandwidth() {
        let v100 = builtin_device("v100-16gb").unwrap();
        let h100 = builtin_device("h100-80gb").unwrap();
        let c = profile().compile(&v100, &h100, 2.0);
        let Step::Gpu(k) = c.steps[2] else { panic!() };
        let compute = (80.0 * 1530.0) / (132.0 * 1980.0);
        let memory = 900.0 / 3350.0;
        let expect = 10.0 * (0.5 * compute + 0.5 * memory);
        assert!((k.work as f64 / 1e6 - expect).abs() < 1e-6);
        // The same work in a shorter time: utilisations there follow.
        let f = expect / 10.0;
        assert!((k.demand.sm - 0.4 * compute / f).abs() < 1e-9);
        assert!((k.demand.dram - 0.4 * memory / f).abs() < 1e-9);
    }

    #[test]
    fn no_resource_above_its_peak_on_any_device() {
        // A kernel that is nearly all bandwidth keeps DRAM ≤ 100 % on a device with far more
        // compute and the same bandwidth.
        let v100 = builtin_device("v100-16gb").unwrap();
        let mut fast = v100.clone();
        fast.sm_clock_mhz *= 8.0;
        let k = KernelPhase::new(10.0, 50.0, 90.0);
        let (work, d) = k.compile(&v100, &fast);
        assert!(d.dram <= 1.0 + 1e-12 && d.sm <= 1.0 + 1e-12, "{d:?}");
        assert!(work >= 9_000_000, "{work}");
    }

    #[test]
    fn a_small_grid_bounds_the_footprint_and_occupancy_raises_it() {
        let v100 = builtin_device("v100-16gb").unwrap();
        let mut k = KernelPhase::new(1.0, 20.0, 10.0);
        k.blocks = Some(40);
        assert!(k.check_on(&v100).is_ok());
        let (_, d) = k.compile(&v100, &v100);
        assert!((d.footprint - 0.2).abs() < 1e-12);
        // 40 blocks of 1,024 threads: each of the 40 SMs half full, so 20 % of the SMs at least.
        k.threads_per_block = Some(1024);
        let (_, d) = k.compile(&v100, &v100);
        assert!((d.footprint - 0.25).abs() < 1e-12, "{}", d.footprint);
        // A grid of 40 blocks cannot keep 60 % of 80 SMs busy.
        k.sm_pct = 60.0;
        assert_eq!(k.check_on(&v100).unwrap_err().0, "sm_pct");
    }

    #[test]
    fn check_names_the_bad_field() {
        let mut p = profile();
        p.phases[1] = Phase::Kernel(KernelPhase::new(1.0, 150.0, 0.0));
        assert_eq!(p.check().unwrap_err().0, "phases[1].sm_pct");
        let mut k = KernelPhase::new(1.0, 10.0, 0.0);
        k.threads_per_block = Some(256);
        p.phases[1] = Phase::Kernel(k);
        assert_eq!(p.check().unwrap_err().0, "phases[1].threads_per_block");
        let mut p = profile();
        p.weights_mib = f64::NAN;
        assert_eq!(p.check().unwrap_err().0, "weights_mib");
    }

    #[test]
    fn kernel_phases_read_from_toml_and_old_fields_are_named() {
        let p: Phase = toml::from_str("kind = \"kernel\"\nsolo_ms = 4.4\nsm_pct = 16\ndram_pct = 22").unwrap();
        assert_eq!(p, Phase::Kernel(KernelPhase::new(4.4, 16.0, 22.0)));
        let old: toml::Value =
            toml::from_str("phases = [{ kind = \"kernel\", work_ms = 1.0, sm_demand = 0.5 }]").unwrap();
        let (i, field, msg) = legacy_kernel_field(&old).unwrap();
        assert_eq!((i, field), (0, "work_ms"));
        assert!(msg.contains("solo_ms"));
    }
}
