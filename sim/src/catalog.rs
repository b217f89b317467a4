//! The built-in catalog of function profiles, with the source of every number.
//!
//! All eight profiles were measured on a V100 16 GB, so `reference_gpu = "v100-16gb"`; on other
//! devices their kernels are rescaled by [`crate::profile::FunctionProfile::compile`].
//! Memory reported by the papers in GB is read as GiB (`nvidia-smi`'s units) and converted to
//! MiB. Numbers the papers do not give are marked *assumed* below, with the reasoning.
//!
//! Setup costs are not reported by either paper. Every profile uses the same assumed breakdown:
//! container start 0.5 s (a warm-image container start), framework initialisation 4.5 s (the
//! PyTorch GPU runtime start-up measured at ≈ 4.5 s, cited in PAPERS.md §3), CUDA context creation
//! from the device spec, and model load = weights over min(storage, host link).
//!
//! **KaaS workloads** (Pemberton et al., arXiv 2212.08146; PAPERS.md §2; the "native" column):
//! end-to-end latency, GPU time, memory and SM utilisation per request. The GPU time becomes one
//! kernel phase with `sm_demand` = the reported SM utilisation; the rest of the end-to-end time is
//! host time before the GPU work (the paper does not split it). The input/output copies are
//! sized from the models' tensors and taken out of the GPU time.
//!
//! **KaaS kernel graphs** (the paper's "KaaS" column, for the `kaas` policy): each of the four
//! KaaS profiles states its graph. Buffer sizes add up to the memory KaaS used (ResNet-50
//! 0.57 GB, BERT 3.78 GB — the artifact keeps BERT's constants per kernel argument, so more
//! than the native 1.70 GB — cGEMM 2.41 GB, Jacobi 0.32 GB): the weights or operands are a
//! constant input, the request's data an input and its result an output (the copies of the
//! native profile), the rest a constant workspace. `dispatch_ms` is KaaS's GPU time minus the
//! native GPU time (ResNet 8.2 − 4.4, BERT 99.0 − 92.9, cGEMM 39.6 − 38.9, Jacobi 77.1 −
//! 54.0 ms): the worker's launch path, holding the GPU but no SMs. Host code stays the native
//! host time. A warm request then takes host + dispatch + kernels + copies: 29.9 / 153.0 / 47.2
//! / 85.4 ms against the published KaaS end-to-end 30.2 / 151.4 / 47.7 / 82.9 ms
//! (`tests/kaas.rs` checks within 5 %).
//!
//! **FaST-GShare workloads** (Gu et al., ICPP '23; PAPERS.md §4): throughput at quota 1.0 and
//! 100 % SM gives the service time of one request (1 / qps). `sm_demand` and the speed-curve
//! `speed_knee` of each are fitted to the published throughput over 6–100 % SM by
//! `scripts/fit_fast_profiles.py` (worst cell within 3.7 %); ResNet's 3.35 ms of host time comes
//! from its published quota row (throughput ≈ 1 / (host + GPU / quota), worst cell within 6.3 %),
//! the other three are GPU-bound. `tests/fast_profiler.rs` runs the FaST-Profiler grid in
//! simulation against the table. ResNet's memory is the published 1,525 MB
//! (1,427 MB with model sharing, so 98 MB of weights); the other three models' memory is not
//! published: their weights are the parameter counts × 4 bytes and activations are assumed.
//! Bandwidth intensities are assumed (compute-bound GEMM low, stencil Jacobi high, DNN inference
//! moderate); the device's interference coefficient is fitted to DenseNet-121 co-runs under MPS
//! (see `densenet121` and `crate::device`).

use crate::kernel_graph::{BufferRole, BufferSpec, KernelGraph};
use crate::profile::{FunctionProfile, ModelSource, Phase};

const CONTAINER_START_S: f64 = 0.5;
const FRAMEWORK_INIT_S: f64 = 4.5;

#[allow(clippy::too_many_arguments)]
fn profile(
    description: &str,
    source: &str,
    weights_mib: f64,
    activation_mib: f64,
    host_pre_ms: f64,
    phases: Vec<Phase>,
) -> FunctionProfile {
    FunctionProfile {
        description: description.into(),
        source: source.into(),
        reference_gpu: "v100-16gb".into(),
        weights_mib,
        activation_mib,
        model_source: ModelSource::Storage,
        container_start_s: CONTAINER_START_S,
        framework_init_s: FRAMEWORK_INIT_S,
        host_pre_ms,
        host_post_ms: 0.0,
        phases,
        kernel_graph: None,
    }
}

/// A KaaS kernel graph: `dispatch_ms` and (name, MiB, role, const) buffers.
fn graph(dispatch_ms: f64, buffers: &[(&str, f64, BufferRole, bool)]) -> Option<KernelGraph> {
    Some(KernelGraph {
        dispatch_ms,
        buffers: buffers
            .iter()
            .map(|&(name, mib, role, constant)| BufferSpec {
                name: name.into(),
                mib,
                role,
                constant,
            })
            .collect(),
    })
}

/// GB as reported (read as GiB) in MiB.
const GB: f64 = 1024.0;

fn kernel(work_ms: f64, sm_demand: f64, bw_intensity: f64) -> Phase {
    Phase::Kernel {
        work_ms,
        sm_demand,
        bw_intensity,
        speed_knee: None,
    }
}

/// A kernel with its own speed-curve sharpness (fitted to a published curve, or stated).
fn fitted_kernel(work_ms: f64, sm_demand: f64, speed_knee: f64, bw_intensity: f64) -> Phase {
    Phase::Kernel {
        work_ms,
        sm_demand,
        bw_intensity,
        speed_knee: Some(speed_knee),
    }
}

/// All built-in profiles, by name.
pub fn builtin_profiles() -> Vec<(&'static str, FunctionProfile)> {
    const KAAS: &str = "KaaS (arXiv 2212.08146), V100 16 GB, native column; PAPERS.md §2";
    const FAST: &str = "FaST-GShare (ICPP '23), V100, FaST-Profiler at quota 1.0; PAPERS.md §4";
    vec![
        (
            "kaas-resnet50",
            // e2e 26.1 ms, GPU 4.4 ms, 0.47 GB, SM 16 %. Weights: 25.6 M params × 4 B = 98 MiB.
            // Input 1×3×224×224 fp32 = 0.57 MiB, output 1000 fp32.
            profile(
                "ResNet-50 inference, batch 1",
                KAAS,
                98.0,
                481.0 - 98.0,
                26.1 - 4.4,
                vec![
                    Phase::H2d { mib: 0.574 },
                    kernel(4.4 - 0.05, 0.16, 0.3),
                    Phase::D2h { mib: 0.004 },
                ],
            )
            .with_graph(graph(
                8.2 - 4.4,
                &[
                    ("weights", 98.0, BufferRole::Input, true),
                    ("image", 0.574, BufferRole::Input, false),
                    ("logits", 0.004, BufferRole::Output, false),
                    ("workspace", 0.57 * GB - 98.0 - 0.578, BufferRole::Temporary, true),
                ],
            )),
        ),
        (
            "kaas-bert",
            // e2e 146.9 ms, GPU 92.9 ms, 1.70 GB, SM 71 %. Weights: BERT-large 335 M params × 4 B.
            profile(
                "BERT-large inference (SQuAD, sequence 384)",
                KAAS,
                1278.0,
                1741.0 - 1278.0,
                146.9 - 92.9,
                vec![
                    Phase::H2d { mib: 0.01 },
                    kernel(92.9, 0.71, 0.3),
                    Phase::D2h { mib: 0.01 },
                ],
            )
            .with_graph(graph(
                99.0 - 92.9,
                &[
                    ("constants", 3.78 * GB - 463.0 - 0.02, BufferRole::Input, true),
                    ("tokens", 0.01, BufferRole::Input, false),
                    ("logits", 0.01, BufferRole::Output, false),
                    ("workspace", 463.0, BufferRole::Temporary, true),
                ],
            )),
        ),
        (
            "kaas-cgemm",
            // e2e 46.5 ms, GPU 38.9 ms, 2.39 GB, SM 88 %. The operands must stay resident (copying
            // 2.4 GB per request would take longer than the whole request): assumed 2/3 constant
            // inputs (weights), 1/3 output. A tiled GEMM's speed is proportional to its SMs up to
            // its demand: a sharp knee (16, as the GEMM of scenarios/mps_vs_timeslice.toml), so
            // co-running GEMMs gain nothing from sharing SMs.
            profile(
                "complex GEMM (CUTLASS)",
                KAAS,
                1631.0,
                2447.0 - 1631.0,
                46.5 - 38.9,
                vec![fitted_kernel(38.9, 0.88, 16.0, 0.1)],
            )
            .with_graph(graph(
                39.6 - 38.9,
                &[
                    ("operands", 1631.0, BufferRole::Input, true),
                    ("result", 2.41 * GB - 1631.0, BufferRole::Temporary, true),
                ],
            )),
        ),
        (
            "kaas-jacobi",
            // e2e 62.3 ms, GPU 54.0 ms, 0.32 GB, SM 89 %. Assumed: the matrix is constant (weights),
            // the iterate vectors are activations.
            profile(
                "Jacobi iterative solver",
                KAAS,
                256.0,
                328.0 - 256.0,
                62.3 - 54.0,
                vec![kernel(54.0, 0.89, 0.8)],
            )
            .with_graph(graph(
                77.1 - 54.0,
                &[
                    ("matrix", 256.0, BufferRole::Input, true),
                    ("iterates", 0.32 * GB - 256.0, BufferRole::Temporary, true),
                ],
            )),
        ),
        (
            "fast-resnet",
            // 74.9 qps alone (3.35 ms host + 10.0 ms GPU); 1,525 MB total of which 98 MB weights. Our
            // footprint adds the context (300 MiB) itself, so activations = 1525 − 98 − 300.
            profile(
                "ResNet-50 (MLPerf) inference",
                FAST,
                98.0,
                1525.0 - 98.0 - 300.0,
                3.35,
                vec![fitted_kernel(1000.0 / 74.9 - 3.35, 0.09, 2.875, 0.3)],
            ),
        ),
        (
            "fast-bert",
            // 47.9 qps alone; saturates at ≈ 50 % SM. Weights 335 M × 4 B; activations assumed.
            profile(
                "BERT-large (MLPerf) inference",
                FAST,
                1278.0,
                700.0,
                0.0,
                vec![fitted_kernel(1000.0 / 47.9, 0.31, 3.625, 0.3)],
            ),
        ),
        (
            "fast-gnmt",
            // 29.5 qps alone; saturates at 50–80 % SM (0.65 taken). Weights ≈ 160 M × 4 B;
            // activations assumed.
            profile(
                "GNMT translation (MLPerf) inference",
                FAST,
                610.0,
                500.0,
                0.0,
                vec![fitted_kernel(1000.0 / 29.5, 0.25, 1.625, 0.3)],
            ),
        ),
        (
            "fast-rnnt",
            // 12.4 qps alone; saturates at ≈ 24 % SM. Weights ≈ 120 M × 4 B; activations assumed.
            profile(
                "RNN-T speech recognition (MLPerf) inference",
                FAST,
                458.0,
                400.0,
                0.0,
                vec![fitted_kernel(1000.0 / 12.4, 0.06, 1.875, 0.3)],
            ),
        ),
        ("densenet121", densenet121()),
    ]
}

/// DenseNet-121 inference, the workload of the published MPS co-location measurements
/// (PAPERS.md, "NVIDIA mechanisms"): work, demand and knee fitted by
/// `scripts/fit_fast_profiles.py` to its latencies alone at 10/20/80/90 % SM; fully
/// bandwidth-sensitive (assumed) so that the device's interference coefficient carries its
/// co-run slowdowns. Memory: 8.0 M parameters × 4 B of weights; activations assumed.
fn densenet121() -> FunctionProfile {
    FunctionProfile {
        description: "DenseNet-121 inference".into(),
        source: "MPS co-location latencies, PAPERS.md \"NVIDIA mechanisms\"; fitted".into(),
        reference_gpu: "v100-16gb".into(),
        weights_mib: 31.0,
        activation_mib: 300.0,
        model_source: ModelSource::Storage,
        container_start_s: CONTAINER_START_S,
        framework_init_s: FRAMEWORK_INIT_S,
        host_pre_ms: 0.0,
        host_post_ms: 0.0,
        phases: vec![fitted_kernel(13.74, 0.48, 1.625, 1.0)],
        kernel_graph: None,
    }
}

/// Looks a built-in profile up by name.
pub fn builtin_profile(name: &str) -> Option<FunctionProfile> {
    builtin_profiles().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::builtin_device;

    #[test]
    fn catalog_profiles_are_valid_and_match_their_sources() {
        let v100 = builtin_device("v100-16gb").unwrap();
        for (name, p) in builtin_profiles() {
            p.check().unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(builtin_device(&p.reference_gpu).is_some(), "{name}");
            let c = p.compile(&v100, &v100, 2.0);
            assert!(c.footprint() < v100.memory_bytes(), "{name} must fit a V100");
        }
        // KaaS ResNet-50: the solo execution time is the published end-to-end latency.
        let c = builtin_profile("kaas-resnet50").unwrap().compile(&v100, &v100, 2.0);
        assert!((c.solo_exec as f64 / 1e6 - 26.1).abs() < 0.05, "{}", c.solo_exec);
        // FaST ResNet: one request alone takes 1 / 74.9 qps.
        let c = builtin_profile("fast-resnet").unwrap().compile(&v100, &v100, 2.0);
        assert!((1e9 / c.solo_exec as f64 - 74.9).abs() < 0.01);
    }
}
