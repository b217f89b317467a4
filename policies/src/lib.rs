//! GPU-sharing policies, one module per policy, and the registry that maps a scenario's
//! `[policy] name` to a constructor.
//!
//! Adding a policy: write a module — on the pool, a [`placement::Placement`] and a
//! [`pool::PoolPolicy`] overriding only what it changes; off it, a
//! [`gpushare_sim::policy::Policy`] — whose doc cites the paper, lists what the model keeps and
//! simplifies, and names its parameters' sources; declare its parameters with [`params!`]; add
//! one [`PolicyInfo`] to [`registry`]. Rankings ([`placement::rankings`]) and keep-alive
//! plug-ins ([`keep_alive::keep_alives`]) are one line each in their own registries. README's
//! "Writing your own policy" walks through each, with examples that run as doctests.

pub mod closed_loop;
pub mod docs;
pub mod exclusive;
pub mod fast_gshare;
pub mod kaas;
pub mod kaas_static;
pub mod keep_alive;
pub mod knix_vcuda;
pub mod mig;
pub mod mps;
pub mod null;
pub mod params;
pub mod placement;
pub mod pool;
pub mod profiler;
pub mod replay_mapping;
pub mod sage;
pub mod time_sharing;

use gpushare_sim::Scenario;
use gpushare_sim::policy::Policy;
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec, Seg};
use params::{ParamDoc, Params};
use replay_mapping::Replay;

/// Builds a policy from the scenario's `[policy]` table.
pub type PolicyBuilder = fn(&PolicySpec, &Scenario) -> Result<Box<dyn Policy>, ConfigError>;

/// A registered policy.
pub struct PolicyInfo {
    /// The name scenarios use.
    pub name: &'static str,
    /// What it models.
    pub summary: &'static str,
    /// Its own parameters, from their typed declaration ([`params!`]).
    pub params: fn() -> Vec<ParamDoc>,
    /// Whether it is built on the [`pool`] and takes the pool's parameters too.
    pub pool: bool,
    /// Defaults of its own that differ from the declared ones, as `(key, TOML value)`: applied
    /// to `[policy]` for the keys it does not set.
    pub defaults: &'static [(&'static str, &'static str)],
    /// Builds it from the scenario's `[policy]` table.
    pub build: PolicyBuilder,
    /// How `gpushare replay` runs it on a real GPU.
    pub replay: Replay,
}

/// Every policy, in the order `gpushare policies` lists them.
pub fn registry() -> &'static [PolicyInfo] {
    &[
        PolicyInfo {
            name: "exclusive",
            summary: "each instance owns a whole GPU; FIFO queue per function; a new instance per queued invocation on an empty GPU (or on the GPU of the least recently used idle instance, evicted); fixed keep-alive: the coarse-grained baseline of KaaS, FaST-GShare and SAGE",
            params: exclusive::ExclusiveParams::docs,
            pool: true,
            defaults: &[],
            build: exclusive::Exclusive::build,
            replay: Replay::Mapped(replay_mapping::exclusive),
        },
        PolicyInfo {
            name: "time-sharing",
            summary: "CUDA's default: contexts packed by memory on a GPU take turns; `fluid` (each of n contexts at 1/n of the GPU, less switch overhead) or `exact` slice-by-slice round robin; SM occupancy stays low for small kernels",
            params: time_sharing::TsParams::docs,
            pool: true,
            defaults: &[("placement", "\"best-fit\"")],
            build: time_sharing::TimeSharing::build,
            replay: Replay::Mapped(replay_mapping::time_sliced),
        },
        PolicyInfo {
            name: "mps",
            summary: "MPS spatial sharing: clients' kernels run concurrently, each capped at its active-thread percentage; oversubscribed caps share SMs max-min fairly; co-runners slow each other through memory bandwidth (asymmetrically); clients spread over the GPUs under the SM-cap, memory and 48-client limits; training functions' caps from the ETRI-style usage estimator; fatal faults with optional fault coupling",
            params: mps::MpsParams::docs,
            pool: true,
            defaults: &[("placement", "\"least-loaded\"")],
            build: mps::Mps::build,
            replay: Replay::Mapped(replay_mapping::mps),
        },
        PolicyInfo {
            name: "mig",
            summary: "MIG slices (A100, H100, H200 profiles): isolated SMs and memory per slice; layouts change only on idle GPUs, at `reconfigure_s`, which every instance placed on the reconfiguring GPU waits for",
            params: mig::MigParams::docs,
            pool: true,
            defaults: &[],
            build: mig::Mig::build,
            replay: Replay::Unsupported("it would change the GPU's MIG layout, which this harness never does"),
        },
        PolicyInfo {
            name: "fast-gshare",
            summary: "FaST-GShare: per-GPU FaST-Manager time tokens (10 s window, quota request/limit, priority order, several holders while their SM partitions fit 100 %, adaptive token length, 2 ms per grant) over MPS SM partitions; admission Σ quota × SM ≤ 1 and memory; Maximal-Rectangles packing; model sharing; configurations given or the profiler's most efficient cell",
            params: fast_gshare::FastParams::docs,
            pool: true,
            defaults: &[],
            build: fast_gshare::FastGShare::build,
            replay: Replay::Unsupported(
                "it needs FaST-GShare's FaST-Manager launch hook, which this harness does not have",
            ),
        },
        PolicyInfo {
            name: "knix-vcuda",
            summary: "KNIX: sandboxes time-share the GPU, each held to its core percentage by vCUDA's token bucket (launches sleep in 10 ms ticks); memory in 256 MB units; Knative concurrency scaling (target 20, min 1, max 5)",
            params: knix_vcuda::KnixParams::docs,
            pool: true,
            defaults: &[("placement", "\"best-fit\"")],
            build: knix_vcuda::KnixVcuda::build,
            replay: Replay::Unsupported(
                "it needs vCUDA's launch hook (LD_PRELOAD token bucket), which this harness does not have",
            ),
        },
        PolicyInfo {
            name: "sage",
            summary: "SAGE: parallel setup (model load overlaps context and runtime start), a function's weights and context shared and kept resident per GPU across its instances (evicted least recently used when unused), GPUs holding them preferred; density reported",
            params: sage::SageParams::docs,
            pool: true,
            defaults: &[("placement", "\"best-fit\"")],
            build: sage::Sage::build,
            replay: Replay::Mapped(replay_mapping::shared_context),
        },
        PolicyInfo {
            name: "kaas",
            summary: "KaaS (Kernel-as-a-Service): one worker per GPU with one context, created once, serves every function's kernel graph one request at a time; host code runs on the CPU without holding a GPU; an LRU buffer cache per GPU and a module cache; CFS over clients with each client's affinity packed by its memory in eighths of a GPU",
            params: kaas::KaasParams::docs,
            pool: false,
            defaults: &[],
            build: kaas::Kaas::build,
            replay: Replay::Mapped(replay_mapping::kernel_server),
        },
        PolicyInfo {
            name: "fractional",
            summary: "KaaS's fractional baseline: `mps` with every client at 1/8 of the SMs and at most 8 clients per GPU, packed",
            params: mps::MpsParams::docs,
            pool: true,
            defaults: &[
                ("active_thread_percentage", "12.5"),
                ("max_clients", "8"),
                ("placement", "\"best-fit\""),
            ],
            build: mps::Mps::build,
            replay: Replay::Mapped(replay_mapping::mps),
        },
        PolicyInfo {
            name: "static",
            summary: "KaaS's static baseline: a fixed pool of whole-GPU instances per function from the start, never scaled or reclaimed",
            params: kaas_static::StaticParams::docs,
            pool: true,
            defaults: &[],
            build: kaas_static::Static::build,
            replay: Replay::Mapped(replay_mapping::fixed_instances),
        },
        PolicyInfo {
            name: "null",
            summary: "rejects every invocation on arrival (`rejected:admission`): measures a workload and the engine's arrival path alone, for benchmarks",
            params: params::NoParams::docs,
            pool: false,
            defaults: &[],
            build: null::Null::build,
            replay: Replay::Unsupported("it runs nothing"),
        },
    ]
}

impl PolicyInfo {
    /// `spec` with this policy's own defaults filled in where it sets nothing.
    pub fn with_defaults(&self, spec: &PolicySpec) -> PolicySpec {
        let mut spec = spec.clone();
        for (key, value) in self.defaults {
            spec.params.entry(key.to_string()).or_insert_with(|| toml_value(value));
        }
        spec
    }

    /// Every parameter it takes, with its real default: its own, then the pool's.
    pub fn all_params(&self) -> Vec<ParamDoc> {
        let mut all = (self.params)();
        if self.pool {
            all.extend(pool::PoolParams::docs());
        }
        for p in &mut all {
            if let Some((_, v)) = self.defaults.iter().find(|(k, _)| *k == p.key) {
                p.default = Some(v.to_string());
            }
        }
        all
    }
}

/// The TOML value `text` (as on the right of `key = …`); panics on text that is none, so only
/// for the registry's own constants and the tests.
pub fn toml_value(text: &str) -> toml::Value {
    let mut table: toml::Table = format!("v = {text}").parse().expect("a TOML value");
    table.remove("v").expect("the key just written")
}

/// Builds the scenario's policy, or says which names are valid.
pub fn build(scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
    let spec = &scenario.policy;
    match registry().iter().find(|p| p.name == spec.name) {
        Some(info) => (info.build)(&info.with_defaults(spec), scenario),
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
