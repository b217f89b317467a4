//! GPU-sharing policies, one module per policy, and the registry that maps a scenario's
//! `[policy] name` to a constructor.
//!
//! Adding a policy: write a module implementing [`gpushare_sim::policy::Policy`] (its module doc
//! cites the paper, lists what the model keeps and simplifies, and names its parameters' sources),
//! then add one [`PolicyInfo`] line to [`registry`].

pub mod closed_loop;
pub mod exclusive;
pub mod fast_gshare;
pub mod kaas;
pub mod kaas_static;
pub mod knix_vcuda;
pub mod mig;
pub mod mps;
pub mod null;
pub mod pool;
pub mod profiler;
pub mod sage;
pub mod time_sharing;

use gpushare_sim::Scenario;
use gpushare_sim::policy::Policy;
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec, Seg};

/// Builds a policy from the scenario's `[policy]` table.
pub type PolicyBuilder = fn(&PolicySpec, &Scenario) -> Result<Box<dyn Policy>, ConfigError>;

/// A registered policy.
pub struct PolicyInfo {
    /// The name scenarios use.
    pub name: &'static str,
    /// One line: what it models.
    pub summary: &'static str,
    /// Its parameters with defaults, one line.
    pub params: &'static str,
    /// Builds it from the scenario's `[policy]` table.
    pub build: PolicyBuilder,
}

/// Every policy, in the order `gpushare policies` lists them.
pub fn registry() -> &'static [PolicyInfo] {
    &[
        PolicyInfo {
            name: "exclusive",
            summary: "each instance owns a whole GPU; FIFO queue per function; fixed keep-alive (the coarse-grained baseline)",
            params: "keep_alive_s = 600, max_instances = unlimited, max_queue = unlimited, evict_idle = true, \
                     prewarm = false (instances start set up at t = 0, as `gpushare replay` runs them), kill_largest = false (KaaS: the largest group gives a GPU up to a client with none)",
            build: exclusive::Exclusive::build,
        },
        PolicyInfo {
            name: "time-sharing",
            summary: "CUDA's default: contexts packed by memory take turns on the GPU (fluid or exact slice-by-slice)",
            params: "mode = fluid|exact, slice_ms and switch_us = the device's (time_slice_ms, context_switch_us), max_contexts = unlimited; + the pool parameters of exclusive",
            build: time_sharing::TimeSharing::build,
        },
        PolicyInfo {
            name: "mps",
            summary: "MPS spatial sharing: clients' kernels run concurrently under per-client SM caps; packing by memory and SM share",
            params: "active_thread_percentage = 100, caps = {}, max_sm_sum = inf, max_clients = 48, placement = least-loaded|best-fit, memory_limit_mib; + the pool parameters of exclusive",
            build: mps::Mps::build,
        },
        PolicyInfo {
            name: "mig",
            summary: "MIG: isolated slices with dedicated SMs and memory; layouts change only on idle GPUs, at a cost",
            params: "profiles = { function = \"3g.40gb\" } (default: smallest that fits), reconfigure_s = 2; + the pool parameters of exclusive",
            build: mig::Mig::build,
        },
        PolicyInfo {
            name: "fast-gshare",
            summary: "FaST-GShare: time tokens per GPU (10 s window, quotas, priority) over MPS SM partitions; Maximal-Rectangles packing; model sharing",
            params: "configs = { function = { sm = 12, quota = 0.4, quota_limit } } (default: the profiler's most efficient cell), model_sharing = true; + the pool parameters of exclusive",
            build: fast_gshare::FastGShare::build,
        },
        PolicyInfo {
            name: "knix-vcuda",
            summary: "KNIX: sandboxes time-share the GPU, each held to its core percentage by vCUDA's token bucket (10 ms ticks); 256 MB memory units; Knative concurrency scaling",
            params: "gpu_usage = 100, usage = { function = percent }, concurrency_target = 20, min_scale = 1, max_scale = 5, bucket_ms = 100; + keep_alive_s",
            build: knix_vcuda::KnixVcuda::build,
        },
        PolicyInfo {
            name: "sage",
            summary: "SAGE: parallel setup (load ∥ context) and weights/context shared and kept resident per GPU across a function's invocations; reports density",
            params: "parallel_setup = true, share_weights = true, share_context = true; + the pool parameters of exclusive",
            build: sage::Sage::build,
        },
        PolicyInfo {
            name: "kaas",
            summary: "KaaS: one worker and context per GPU serving kernel graphs; LRU buffer cache, module cache; CFS over clients with affinity; host code off the GPU",
            params: "worker_start_s = 0.5, reserve_mib = 300, module_load_ms = 5, off_affinity_penalty = 10, affinity = true, buffer_cache = true, max_queue",
            build: kaas::Kaas::build,
        },
        PolicyInfo {
            name: "fractional",
            summary: "KaaS's fractional baseline: MPS with 1/8-SM clients, at most 8 per GPU",
            params: "the mps parameters, defaulting to active_thread_percentage = 12.5, max_clients = 8",
            build: mps::Mps::build_fractional,
        },
        PolicyInfo {
            name: "static",
            summary: "KaaS's static baseline: a fixed pool of whole-GPU instances per function from the start, never scaled",
            params: "instances = 1, max_queue",
            build: kaas_static::Static::build,
        },
        PolicyInfo {
            name: "null",
            summary: "rejects every invocation on arrival: measures the workload and arrival path alone (benchmarks)",
            params: "none",
            build: null::Null::build,
        },
    ]
}

/// Builds the scenario's policy, or says which names are valid.
pub fn build(scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
    let spec = &scenario.policy;
    match registry().iter().find(|p| p.name == spec.name) {
        Some(info) => (info.build)(spec, scenario),
        None => Err(ConfigError::at(
            DocPath(vec![Seg::Key("policy".into()), Seg::Key("name".into())]),
            format!(
                "unknown policy `{}`; valid: {}",
                spec.name,
                registry().iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// The README's Rust examples compile as doctests, so they cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
