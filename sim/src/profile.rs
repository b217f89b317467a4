//! Function profiles: what one invocation of a GPU function costs.
//!
//! A profile states its memory (model weights and activations), its setup costs (container start,
//! CUDA context creation, framework initialisation, model load), and its execution as a sequence
//! of steps: host time before, GPU phases (host↔device copies and kernels), host time after.
//! Kernel `work` is the kernel's duration alone on the whole *reference* GPU; on another device it
//! is rescaled (see [`FunctionProfile::compile`]). Profiles are data: the built-in catalog
//! ([`crate::catalog`]) and scenario files use the same fields.

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
    /// Kernels: `work_ms` alone on the whole reference GPU; `sm_demand` the fraction of SMs they
    /// can use (0, 1]; `bw_intensity` the share of their time bound by memory bandwidth [0, 1];
    /// `speed_knee` the sharpness of their speed curve (default: the device's).
    Kernel {
        work_ms: f64,
        sm_demand: f64,
        #[serde(default)]
        bw_intensity: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speed_knee: Option<f64>,
    },
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
    /// The device on which `work_ms` was measured.
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
    pub sm_demand: f64,
    pub bw_intensity: f64,
    /// Speed-curve sharpness (the phase's own, else the device's).
    pub knee: f64,
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

/// Time to move `bytes` at `gbps` GB/s.
pub fn copy_ns(bytes: u64, gbps: f64) -> Nanos {
    (bytes as f64 / gbps).round() as Nanos // bytes / (GB/s) = ns
}

impl FunctionProfile {
    /// Checks ranges; returns (field, message) for the first field out of range.
    pub fn check(&self) -> Result<(), (String, String)> {
        let nonneg = [
            ("weights_mib", self.weights_mib),
            ("activation_mib", self.activation_mib),
            ("container_start_s", self.container_start_s),
            ("framework_init_s", self.framework_init_s),
            ("host_pre_ms", self.host_pre_ms),
            ("host_post_ms", self.host_post_ms),
        ];
        for (field, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return Err((field.into(), format!("must be a non-negative number, got {v}")));
            }
        }
        if let Some(g) = &self.kernel_graph {
            g.check().map_err(|(f, m)| (format!("kernel_graph.{f}"), m))?;
        }
        for (i, phase) in self.phases.iter().enumerate() {
            let at = |f: &str| format!("phases[{i}].{f}");
            match *phase {
                Phase::H2d { mib } | Phase::D2h { mib } => {
                    if !(mib.is_finite() && mib >= 0.0) {
                        return Err((at("mib"), format!("must be a non-negative number, got {mib}")));
                    }
                }
                Phase::Host { ms } => {
                    if !(ms.is_finite() && ms >= 0.0) {
                        return Err((at("ms"), format!("must be a non-negative number, got {ms}")));
                    }
                }
                Phase::Kernel {
                    work_ms,
                    sm_demand,
                    bw_intensity,
                    speed_knee,
                } => {
                    if let Some(k) = speed_knee {
                        if k.is_nan() || k <= 0.0 {
                            return Err((at("speed_knee"), format!("must be a positive number or inf, got {k}")));
                        }
                    }
                    if !(work_ms.is_finite() && work_ms >= 0.0) {
                        return Err((at("work_ms"), format!("must be a non-negative number, got {work_ms}")));
                    }
                    if !(sm_demand > 0.0 && sm_demand <= 1.0) {
                        return Err((
                            at("sm_demand"),
                            format!("must be in (0, 1] (a fraction of the SMs), got {sm_demand}"),
                        ));
                    }
                    if !(0.0..=1.0).contains(&bw_intensity) {
                        return Err((at("bw_intensity"), format!("must be in [0, 1], got {bw_intensity}")));
                    }
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
    /// Kernel work moves between devices by a two-term roofline: the compute-bound part
    /// (1 − bw_intensity) scales with FP32 throughput, the bandwidth-bound part with memory
    /// bandwidth. Copies and model loads run at the device's host-link bandwidth.
    pub fn compile(&self, reference: &DeviceSpec, dev: &DeviceSpec, storage_gbps: f64) -> CompiledProfile {
        let mut steps = Vec::with_capacity(self.phases.len() + 2);
        steps.push(Step::Host(ms_to_ns(self.host_pre_ms)));
        for phase in &self.phases {
            let gpu = match *phase {
                Phase::Host { ms } => {
                    steps.push(Step::Host(ms_to_ns(ms)));
                    continue;
                }
                Phase::H2d { mib } => GpuPhase {
                    kind: PhaseKind::H2d,
                    work: copy_ns(mib_bytes(mib), dev.host_link_gbps),
                    sm_demand: 0.0,
                    bw_intensity: 0.0,
                    knee: dev.speed_knee,
                },
                Phase::D2h { mib } => GpuPhase {
                    kind: PhaseKind::D2h,
                    work: copy_ns(mib_bytes(mib), dev.host_link_gbps),
                    sm_demand: 0.0,
                    bw_intensity: 0.0,
                    knee: dev.speed_knee,
                },
                Phase::Kernel {
                    work_ms,
                    sm_demand,
                    bw_intensity,
                    speed_knee,
                } => {
                    let factor = (1.0 - bw_intensity) * reference.fp32_tflops / dev.fp32_tflops
                        + bw_intensity * reference.mem_bandwidth_gbps / dev.mem_bandwidth_gbps;
                    GpuPhase {
                        kind: PhaseKind::Kernel,
                        work: ms_to_ns(work_ms * factor),
                        sm_demand,
                        bw_intensity,
                        knee: speed_knee.unwrap_or(dev.speed_knee),
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
                Phase::Kernel {
                    work_ms: 10.0,
                    sm_demand: 0.5,
                    bw_intensity: 0.5,
                    speed_knee: None,
                },
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
    fn faster_device_shortens_kernels_by_roofline() {
        let v100 = builtin_device("v100-16gb").unwrap();
        let h100 = builtin_device("h100-80gb").unwrap();
        let c = profile().compile(&v100, &h100, 2.0);
        let Step::Gpu(k) = c.steps[2] else { panic!() };
        let expect = 10.0 * (0.5 * 15.7 / 67.0 + 0.5 * 900.0 / 3350.0);
        assert!((k.work as f64 / 1e6 - expect).abs() < 1e-6);
    }

    #[test]
    fn check_names_the_bad_field() {
        let mut p = profile();
        p.phases[1] = Phase::Kernel {
            work_ms: 1.0,
            sm_demand: 1.5,
            bw_intensity: 0.0,
            speed_knee: None,
        };
        assert_eq!(p.check().unwrap_err().0, "phases[1].sm_demand");
        let mut p = profile();
        p.weights_mib = f64::NAN;
        assert_eq!(p.check().unwrap_err().0, "weights_mib");
    }
}
