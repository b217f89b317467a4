//! What a replay runs, decided on the CPU and unit-tested: the process layout of a policy's
//! mechanism ([`layout`]) and each function's work as real operations ([`function_plan`]).
//!
//! **Layout.** The replay measures the data plane of a policy — how its mechanism shares a GPU —
//! with the layout fixed before the clock starts: every worker process exists from the start
//! (no scaling, no cold starts inside the measured run). Per policy:
//! - `exclusive`, `static`: one process (own CUDA context) per instance, each on a GPU of its
//!   own (`max_instances` or `instances` per function — a number, or a table by function —
//!   default 1);
//! - `time-sharing`: one process per instance, spread over the GPUs round robin; contexts on one
//!   GPU time-slice as CUDA does by default;
//! - `mps`, `fractional`: the same under a private MPS control daemon, each process with its
//!   function's `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` (`caps`, `active_thread_percentage`;
//!   `fractional` 12.5);
//! - `kaas`: one worker per GPU serving every function, one request at a time on its stream
//!   (the model's discipline); its kernel module is loaded once (the module cache) and every
//!   function's buffers are allocated once and stay resident (the buffer cache, with room for
//!   all: the replay measures no eviction); the request's host code runs off the worker and the
//!   graph's `dispatch_ms` on it;
//! - `sage`: one process per (GPU, function), its instances as streams of one shared context,
//!   the weights allocated once and read by every lane (activations per lane). Setup happens
//!   before the measured run, so SAGE's overlapped setup is not what a replay measures.
//!
//! `mig` would change the GPU's MIG layout, which the harness never does; `fast-gshare` and
//! `knix-vcuda` need their launch hooks (FaST-Manager, vCUDA), which it does not have; they are
//! refused with that reason.
//!
//! **Operations.** A profile's host steps run as host time in the worker; copies copy the
//! profile's bytes between pinned host memory and the device; a kernel phase of `work` ns (on
//! this device), SM footprint `d`, SM throughput `s` and DRAM throughput `m` (its compiled
//! [`KernelDemand`]) becomes a spin kernel over `ceil(d × SMs)` blocks running its compute share
//! `s / (s + m)` of `work` and a stream kernel over the same blocks moving its memory share's
//! bytes, both sized by the device's calibration. A GEMM-like phase (`s` ≥ 0.8, `m` ≤ 0.15) runs
//! as cuBLAS SGEMMs instead when the calibration has an SGEMM rate — as many whole 4096³ SGEMMs
//! as fit, the rest a spin kernel.

use crate::calibration::ReplayCalibration;
use gpushare_policies::replay_mapping::{ReplayMechanism, replay_mapping};
use gpushare_sim::Scenario;
use gpushare_sim::contention::KernelDemand;
use gpushare_sim::device::DeviceSpec;
use gpushare_sim::profile::{CompiledProfile, PhaseKind, Step};
use serde::{Deserialize, Serialize};

/// One real operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Host (CPU) time in the worker, ns.
    Host { ns: u64 },
    /// Pinned host → device copy.
    H2d { bytes: u64 },
    /// Device → pinned host copy.
    D2h { bytes: u64 },
    /// The spin kernel: `blocks` blocks, `iters` iterations each.
    Spin { blocks: u32, iters: u64 },
    /// The stream kernel: `blocks` blocks, `passes` over a buffer of `bytes` (read and written).
    Stream { blocks: u32, bytes: u64, passes: u32 },
    /// `reps` cuBLAS SGEMMs of n × n × n.
    Gemm { n: u32, reps: u32 },
}

impl Op {
    /// The operation stretched by `scale` (a traced duration against the profile's solo time):
    /// host time, spin iterations, stream passes and GEMM repetitions scale (whole passes and
    /// repetitions, at least one); a copy is repeated `round(scale)` times (at least once), so
    /// its buffers stay the profile's size.
    pub fn scaled(self, scale: f64) -> (Op, u32) {
        if scale == 1.0 {
            return (self, 1);
        }
        let whole = |n: f64| n.round().max(1.0);
        match self {
            Op::Host { ns } => (
                Op::Host {
                    ns: (ns as f64 * scale).round() as u64,
                },
                1,
            ),
            Op::H2d { .. } | Op::D2h { .. } => (self, whole(scale) as u32),
            Op::Spin { blocks, iters } => (
                Op::Spin {
                    blocks,
                    iters: whole(iters as f64 * scale) as u64,
                },
                1,
            ),
            Op::Stream { blocks, bytes, passes } => {
                let (bytes, passes) = stream_shape(2.0 * bytes as f64 * f64::from(passes) * scale);
                (Op::Stream { blocks, bytes, passes }, 1)
            }
            Op::Gemm { n, reps } => (
                Op::Gemm {
                    n,
                    reps: whole(f64::from(reps) * scale) as u32,
                },
                1,
            ),
        }
    }

    /// True for operations on the GPU (copies and kernels).
    pub fn on_gpu(self) -> bool {
        !matches!(self, Op::Host { .. })
    }
}

/// An operation and its planned duration alone on the device, ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOp {
    pub op: Op,
    pub ns: u64,
}

/// A function's request as operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionPlan {
    pub name: String,
    pub ops: Vec<PlannedOp>,
    /// Device memory the worker allocates for the function when it starts (weights and
    /// activations of the profile), bytes.
    pub resident_bytes: u64,
    /// Of which activations: a worker running several of its requests at once (SAGE lanes)
    /// holds one set per lane.
    pub activation_bytes: u64,
    /// The planned duration alone on the GPU, ns (the profile's solo time; what the
    /// operations are sized to).
    pub planned_ns: u64,
}

/// Size of the stream kernel's buffers, bytes (each of two): 2.5 × the largest L2 cache (H100's
/// 50 MB), so that every pass goes to device memory.
pub const STREAM_BUFFER_BYTES: u64 = 128 << 20;
/// Granularity of the stream kernel's buffers, bytes (float4 elements, cache-line aligned).
pub const STREAM_GRAIN: u64 = 256;

/// The stream kernel's shape for `moved` bytes (read plus written): the fewest passes whose
/// buffers fit in [`STREAM_BUFFER_BYTES`], and the buffer size that moves exactly that (to
/// [`STREAM_GRAIN`]). The worker moves a short phase's buffers along the whole allocation
/// launch after launch, so no launch finds its data in L2.
pub fn stream_shape(moved: f64) -> (u64, u32) {
    let per_pass_max = 2 * STREAM_BUFFER_BYTES;
    let passes = ((moved / per_pass_max as f64).ceil() as u32).max(1);
    let bytes = (moved / (2.0 * f64::from(passes)) / STREAM_GRAIN as f64).round() as u64 * STREAM_GRAIN;
    (bytes.max(STREAM_GRAIN), passes)
}

/// The SGEMM size of the cuBLAS path.
pub const GEMM_N: u32 = 4096;

/// `profile` (compiled for `dev`) as operations, sized with `cal`.
pub fn function_plan(name: &str, profile: &CompiledProfile, dev: &DeviceSpec, cal: &ReplayCalibration) -> FunctionPlan {
    let mut ops = Vec::new();
    for step in &profile.steps {
        match *step {
            Step::Host(ns) => ops.push(PlannedOp {
                op: Op::Host { ns },
                ns,
            }),
            Step::Gpu(p) => match p.kind {
                PhaseKind::H2d => ops.push(PlannedOp {
                    op: Op::H2d {
                        bytes: (p.work as f64 * dev.host_link_gbps).round() as u64,
                    },
                    ns: p.work,
                }),
                PhaseKind::D2h => ops.push(PlannedOp {
                    op: Op::D2h {
                        bytes: (p.work as f64 * dev.host_link_gbps).round() as u64,
                    },
                    ns: p.work,
                }),
                PhaseKind::Kernel => kernel_ops(p.work, &p.demand, dev, cal, &mut ops),
            },
        }
    }
    FunctionPlan {
        name: name.to_string(),
        ops,
        resident_bytes: profile.weights_bytes + profile.activation_bytes,
        activation_bytes: profile.activation_bytes,
        planned_ns: profile.solo_exec,
    }
}

fn kernel_ops(work: u64, demand: &KernelDemand, dev: &DeviceSpec, cal: &ReplayCalibration, ops: &mut Vec<PlannedOp>) {
    let blocks = ((demand.footprint * f64::from(dev.sms)).ceil() as u32).clamp(1, dev.sms.max(1));
    // The share of its time bound by memory.
    let bw = demand.dram / (demand.sm + demand.dram);
    if let (true, Some(tflops)) = (demand.sm >= 0.8 && demand.dram <= 0.15, cal.sgemm_tflops) {
        // Whole SGEMMs, and the remainder as a spin kernel over the same SMs, so the phase keeps
        // its length to the microsecond rather than to a GEMM.
        let one = 2.0 * f64::from(GEMM_N).powi(3) / (tflops * 1e12) * 1e9; // ns per SGEMM
        let reps = (work as f64 / one).floor() as u32;
        if reps > 0 {
            ops.push(PlannedOp {
                op: Op::Gemm { n: GEMM_N, reps },
                ns: (f64::from(reps) * one).round() as u64,
            });
        }
        let rest = work as f64 - f64::from(reps) * one;
        if rest >= 1e3 {
            ops.push(PlannedOp {
                op: Op::Spin {
                    blocks,
                    iters: ((rest / 1e3) * cal.spin_iters_per_us).round().max(1.0) as u64,
                },
                ns: rest.round() as u64,
            });
        }
        return;
    }
    let compute_ns = work as f64 * (1.0 - bw);
    if compute_ns >= 1.0 {
        let iters = ((compute_ns / 1e3) * cal.spin_iters_per_us).round().max(1.0) as u64;
        ops.push(PlannedOp {
            op: Op::Spin { blocks, iters },
            ns: compute_ns.round() as u64,
        });
    }
    let memory_ns = work as f64 * bw;
    if memory_ns >= 1.0 {
        let gbps = cal.stream_gbps_at(f64::from(blocks) / f64::from(dev.sms.max(1)));
        // Bytes read plus written; one pass over the buffers moves 2 × its size.
        let (bytes, passes) = stream_shape(memory_ns * gbps);
        ops.push(PlannedOp {
            op: Op::Stream { blocks, bytes, passes },
            ns: memory_ns.round() as u64,
        });
    }
}

/// One worker process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub id: usize,
    /// Device ordinal.
    pub gpu: u32,
    /// Functions it serves (scenario indices).
    pub functions: Vec<u32>,
    /// `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`, under MPS.
    pub mps_percentage: Option<f64>,
    /// Requests it runs at once (streams of its context).
    pub lanes: u32,
}

/// The mechanism of a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// One process per instance, each on a GPU of its own.
    Exclusive,
    /// Processes sharing GPUs by CUDA's time slicing.
    TimeSlicing,
    /// Processes under an MPS control daemon.
    Mps,
    /// One worker per GPU serving every function (KaaS).
    KernelServer,
    /// One context per (GPU, function), its instances as streams (SAGE).
    SharedContext,
}

/// Processes and mechanism for a policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub policy: String,
    pub mechanism: Mechanism,
    pub workers: Vec<WorkerSpec>,
}

/// The layout of `scenario`'s policy on `gpus` GPUs (ordinals 0..gpus), from the mechanism
/// and instances its registry entry declares ([`gpushare_policies::replay_mapping`]), or why it
/// cannot be replayed.
pub fn layout(scenario: &Scenario, gpus: u32) -> Result<Layout, String> {
    let policy = scenario.policy.name.clone();
    if gpus == 0 {
        return Err("no GPU to replay on".into());
    }
    let mapping = replay_mapping(scenario)?;
    let mut workers = Vec::new();
    let mut add = |gpu: u32, functions: Vec<u32>, mps: Option<f64>, lanes: u32| {
        let id = workers.len();
        workers.push(WorkerSpec {
            id,
            gpu,
            functions,
            mps_percentage: mps,
            lanes,
        });
    };
    let n = scenario.functions.len() as u32;
    let per = |f: u32| mapping.instances[f as usize];
    let mechanism = match &mapping.mechanism {
        ReplayMechanism::ProcessPerGpu => {
            let total: u32 = (0..n).map(per).sum();
            if total > gpus {
                return Err(format!(
                    "`{policy}` gives every instance a GPU of its own: {total} instances ({n} functions) need {total} GPUs, {gpus} available"
                ));
            }
            let mut g = 0;
            for f in 0..n {
                for _ in 0..per(f) {
                    add(g, vec![f], None, 1);
                    g += 1;
                }
            }
            Mechanism::Exclusive
        }
        ReplayMechanism::TimeSlicing | ReplayMechanism::Mps { .. } => {
            let percent = match &mapping.mechanism {
                ReplayMechanism::Mps { percent } => Some(percent),
                _ => None,
            };
            let mut k = 0;
            for f in 0..n {
                for _ in 0..per(f) {
                    add(k % gpus, vec![f], percent.map(|p| p[f as usize]), 1);
                    k += 1;
                }
            }
            if percent.is_some() {
                Mechanism::Mps
            } else {
                Mechanism::TimeSlicing
            }
        }
        ReplayMechanism::KernelServer => {
            for g in 0..gpus {
                add(g, (0..n).collect(), None, 1);
            }
            Mechanism::KernelServer
        }
        ReplayMechanism::SharedContext => {
            for f in 0..n {
                add(f % gpus, vec![f], None, per(f));
            }
            Mechanism::SharedContext
        }
    };
    Ok(Layout {
        policy,
        mechanism,
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpushare_sim::ScenarioSource;
    use std::path::Path;

    fn scenario(policy: &str, extra_functions: &str) -> Scenario {
        let text = format!(
            "[simulation]\nhorizon_s = 10.0\n[cluster]\nnodes = 1\ngpus_per_node = 2\ngpu = \"a100-80gb\"\n\
             [[functions]]\nname = \"r\"\nprofile = \"kaas-resnet50\"\nrate_per_s = 1.0\n{extra_functions}\
             [workload]\nkind = \"poisson\"\n[policy]\n{policy}\n"
        );
        ScenarioSource::from_text(Path::new("s.toml"), &text).parse().unwrap()
    }

    fn cal() -> ReplayCalibration {
        ReplayCalibration {
            threads_per_block: 256,
            spin_iters_per_us: 200.0,
            stream_gbps: vec![(0.25, 1000.0), (1.0, 1600.0)],
            sgemm_tflops: Some(19.0),
            launch_overhead_us: 3.0,
        }
    }

    #[test]
    fn a_profile_becomes_copies_and_sized_kernels() {
        let s = scenario("name = \"exclusive\"", "");
        let dev = &s.devices[0];
        let c = s.functions[0].profile.compile(&s.functions[0].reference, dev, 2.0);
        let plan = function_plan("r", &c, dev, &cal());
        // ResNet-50: host 21.7 ms, 0.574 MiB in, a kernel at 16 % of the SMs, 0.004 MiB out.
        assert_eq!(plan.ops[0].op, Op::Host { ns: 21_700_000 });
        let Op::H2d { bytes } = plan.ops[1].op else {
            panic!("{:?}", plan.ops)
        };
        assert!((bytes as f64 - 0.574 * 1048576.0).abs() < 64.0, "{bytes}");
        let Op::Spin { blocks, iters } = plan.ops[2].op else {
            panic!("{:?}", plan.ops)
        };
        // ceil(footprint × 108) blocks; the compute share s / (s + m) of the phase's work at 200
        // iters/µs.
        let Step::Gpu(k) = c.steps[2] else { panic!() };
        let expect_blocks = (k.demand.footprint * 108.0).ceil() as u32;
        assert_eq!(blocks, expect_blocks);
        let compute = k.demand.sm / (k.demand.sm + k.demand.dram);
        assert_eq!(iters, ((k.work as f64 * compute / 1e3) * 200.0).round() as u64);
        let Op::Stream {
            blocks: sb,
            passes,
            bytes,
        } = plan.ops[3].op
        else {
            panic!("{:?}", plan.ops)
        };
        // The memory share of the work at the interpolated bandwidth of those SMs, read and
        // written.
        let moved = k.work as f64 * (1.0 - compute) * cal().stream_gbps_at(f64::from(expect_blocks) / 108.0);
        assert_eq!(sb, expect_blocks);
        assert!(
            (2.0 * (bytes * u64::from(passes)) as f64 - moved).abs() <= 2.0 * STREAM_GRAIN as f64 * f64::from(passes),
            "{bytes} × {passes} for {moved}"
        );
        // Every operation carries its planned time; together they are the profile's solo time.
        let planned: u64 = plan.ops.iter().map(|p| p.ns).sum();
        assert!(
            planned.abs_diff(c.solo_exec) <= plan.ops.len() as u64,
            "{planned} vs {}",
            c.solo_exec
        );
        assert!(matches!(plan.ops[4].op, Op::D2h { .. }));
        assert_eq!(plan.resident_bytes, c.weights_bytes + c.activation_bytes);
    }

    #[test]
    fn stream_shapes_move_exactly_what_is_asked_in_few_passes() {
        for moved in [1e3, 3.3e7, 2.0 * STREAM_BUFFER_BYTES as f64, 1e9, 7.77e9] {
            let (bytes, passes) = stream_shape(moved);
            assert!(bytes <= STREAM_BUFFER_BYTES && bytes % STREAM_GRAIN == 0);
            assert_eq!(
                passes,
                ((moved / (2 * STREAM_BUFFER_BYTES) as f64).ceil() as u32).max(1)
            );
            let got = 2.0 * bytes as f64 * f64::from(passes);
            assert!(
                (got - moved).abs() <= (2 * STREAM_GRAIN) as f64 * f64::from(passes),
                "{moved}: {got}"
            );
        }
    }

    #[test]
    fn traced_durations_stretch_every_operation() {
        assert_eq!(Op::Host { ns: 100 }.scaled(2.5), (Op::Host { ns: 250 }, 1));
        assert_eq!(
            Op::Spin { blocks: 4, iters: 1000 }.scaled(0.5),
            (Op::Spin { blocks: 4, iters: 500 }, 1)
        );
        assert_eq!(Op::H2d { bytes: 64 }.scaled(2.6), (Op::H2d { bytes: 64 }, 3));
        assert_eq!(Op::D2h { bytes: 64 }.scaled(0.2), (Op::D2h { bytes: 64 }, 1));
        assert_eq!(Op::Gemm { n: 8, reps: 3 }.scaled(2.0), (Op::Gemm { n: 8, reps: 6 }, 1));
        let (Op::Stream { bytes, passes, .. }, 1) = (Op::Stream {
            blocks: 2,
            bytes: 1 << 20,
            passes: 1,
        })
        .scaled(3.0) else {
            panic!()
        };
        assert_eq!((bytes, passes), (3 << 20, 1));
        assert_eq!(
            Op::Spin { blocks: 1, iters: 7 }.scaled(1.0),
            (Op::Spin { blocks: 1, iters: 7 }, 1)
        );
    }

    #[test]
    fn gemm_like_phases_use_cublas_when_calibrated() {
        let s = scenario("name = \"exclusive\"", "");
        let dev = s.devices[0].clone();
        let cg = gpushare_sim::catalog::builtin_profile("kaas-cgemm").unwrap();
        let v100 = gpushare_sim::device::builtin_device("v100-16gb").unwrap();
        let c = cg.compile(&v100, &dev, 2.0);
        let plan = function_plan("g", &c, &dev, &cal());
        assert!(
            plan.ops.iter().any(|o| matches!(o.op, Op::Gemm { n: 4096, .. })),
            "{:?}",
            plan.ops
        );
        let without = ReplayCalibration {
            sgemm_tflops: None,
            ..cal()
        };
        let plan = function_plan("g", &c, &dev, &without);
        assert!(plan.ops.iter().any(|o| matches!(o.op, Op::Spin { .. })));
    }

    #[test]
    fn layouts_follow_the_mechanism() {
        let two = "[[functions]]\nname = \"b\"\nprofile = \"kaas-bert\"\nrate_per_s = 1.0\n";
        let l = layout(&scenario("name = \"exclusive\"", two), 2).unwrap();
        assert_eq!(l.mechanism, Mechanism::Exclusive);
        assert_eq!(
            l.workers
                .iter()
                .map(|w| (w.gpu, w.functions.clone()))
                .collect::<Vec<_>>(),
            [(0, vec![0]), (1, vec![1])]
        );
        assert!(
            layout(&scenario("name = \"exclusive\"\nmax_instances = 2", two), 2)
                .unwrap_err()
                .contains("need 4 GPUs")
        );
        let l = layout(
            &scenario("name = \"mps\"\ncaps = { b = 30 }\nactive_thread_percentage = 50", two),
            1,
        )
        .unwrap();
        assert_eq!(l.mechanism, Mechanism::Mps);
        assert_eq!(
            l.workers.iter().map(|w| w.mps_percentage).collect::<Vec<_>>(),
            [Some(50.0), Some(30.0)]
        );
        assert_eq!(
            layout(&scenario("name = \"fractional\"", ""), 1).unwrap().workers[0].mps_percentage,
            Some(12.5)
        );
        let l = layout(&scenario("name = \"kaas\"", two), 2).unwrap();
        assert_eq!(l.workers.len(), 2);
        assert_eq!(l.workers[1].functions, [0, 1]);
        let l = layout(&scenario("name = \"sage\"\nmax_instances = 3", ""), 1).unwrap();
        assert_eq!((l.mechanism, l.workers[0].lanes), (Mechanism::SharedContext, 3));
        let l = layout(&scenario("name = \"time-sharing\"", two), 1).unwrap();
        assert_eq!(l.workers.iter().map(|w| w.gpu).collect::<Vec<_>>(), [0, 0]);
        for (p, says) in [
            ("mig", "MIG layout"),
            ("fast-gshare", "FaST-Manager"),
            ("knix-vcuda", "vCUDA"),
        ] {
            let e = layout(&scenario(&format!("name = \"{p}\""), ""), 1).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
