//! A serving scenario's schema: a file with a `[serving]` table (the engines' settings and how
//! they share GPUs) and one `[[deployments]]` entry per model served, each with its workload.
//! Read with the scenario loader (`--set` overrides, errors at file, line and field).

use super::cost::CostParams;
use super::share::Mechanism;
use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingFile {
    pub name: Option<String>,
    pub simulation: SimulationSpec,
    pub cluster: ClusterSpec,
    pub serving: ServingSpec,
    pub deployments: Vec<DeploymentSpec>,
    #[serde(default)]
    pub output: OutputSpec,
    /// The axes of `gpushare sweep` (read there; a run ignores them).
    #[serde(default)]
    pub sweep: Option<toml::Table>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSpec {
    #[serde(default = "one")]
    pub seed: u64,
    /// Arrivals at or after it are not taken; the run goes on until every request ended.
    pub horizon_s: f64,
    /// Time-to-first-token objective, s.
    #[serde(default = "default_ttft_slo")]
    pub slo_ttft_s: f64,
    /// Time-per-output-token objective, s.
    #[serde(default = "default_tpot_slo")]
    pub slo_tpot_s: f64,
}

fn one() -> u64 {
    1
}
fn default_ttft_slo() -> f64 {
    1.0
}
fn default_tpot_slo() -> f64 {
    0.1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub gpu: String,
}

/// The engines' settings (vLLM's names and defaults where it has them).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSpec {
    /// How engines on one GPU share it.
    #[serde(default = "dedicated")]
    pub sharing: Mechanism,
    /// Engines per GPU (MIG: equal slices; time slicing and MPS: equal memory shares).
    #[serde(default = "one_u32")]
    pub per_gpu: u32,
    /// MPS: each engine's active-thread fraction of the SMs.
    #[serde(default = "one_f64")]
    pub mps_cap: f64,
    #[serde(default)]
    pub scheduler: SchedulerSpec,
    #[serde(default)]
    pub cost: CostParams,
    #[serde(default)]
    pub cold_start: ColdStartSpec,
}

fn dedicated() -> Mechanism {
    Mechanism::Dedicated
}
fn one_u32() -> u32 {
    1
}
fn one_f64() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSpec {
    /// `max_num_seqs` (1: one request at a time).
    pub max_batch: usize,
    /// `max_num_batched_tokens`.
    pub max_batched_tokens: u64,
    pub chunked_prefill: bool,
    /// `block_size`, tokens.
    pub block_tokens: u64,
    /// `gpu_memory_utilization`: the fraction of the engine's memory it may use.
    pub memory_utilization: f64,
    /// Activations and workspace, as a fraction of the engine's memory (vLLM paper §1: ≈ 5 %
    /// for a 13B model on an A100-40GB beside 65 % weights and 30 % KV cache).
    pub activation_fraction: f64,
    /// KV blocks kept free at admission, as a fraction of the cache (vLLM: 1 %).
    pub watermark: f64,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec {
            max_batch: 256,
            max_batched_tokens: 8192,
            chunked_prefill: false,
            block_tokens: 16,
            memory_utilization: 0.9,
            activation_fraction: 0.05,
            watermark: 0.01,
        }
    }
}

/// Where checkpoints are loaded from and what an instance start costs.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColdStartSpec {
    /// Container start, s.
    pub container_s: f64,
    /// Serving runtime start besides loading the weights (engine init, memory profiling), s:
    /// 11.7 s of memory profiling in vLLM's start-up log in ServerlessLLM's documentation
    /// (`docs/store/rocm_quickstart.md`, one run), rounded to 10 s — an assumption to set per
    /// deployment.
    pub runtime_s: f64,
    /// Remote checkpoint store, GB/s (ServerlessLLM's introduction: 130 GB in 26 s, 5 GB/s).
    pub remote_gbps: f64,
    /// Node's SSD, GB/s (ServerlessLLM's loader from NVMe: Llama-3.1-8B, 16.1 GB in 0.678 s,
    /// ≈ 23.7 GB/s; its repository's `benchmarks/results/h100_2025`).
    pub ssd_gbps: f64,
    /// Node's host memory to GPU, GB/s (at most the GPU's host link: PCIe 4.0 x16, 25 GB/s,
    /// on A100s).
    pub dram_gbps: f64,
    /// Keep checkpoints a node loaded in its host memory and SSD for later starts, and place
    /// new instances on nodes that hold their checkpoint (ServerlessLLM, OSDI '24).
    pub checkpoint_cache: bool,
    /// Host memory for cached checkpoints per node, GB.
    pub dram_cache_gb: f64,
    /// SSD for cached checkpoints per node, GB.
    pub ssd_cache_gb: f64,
}

impl Default for ColdStartSpec {
    fn default() -> Self {
        ColdStartSpec {
            container_s: 1.0,
            runtime_s: 10.0,
            remote_gbps: 5.0,
            ssd_gbps: 23.7,
            dram_gbps: 25.0,
            checkpoint_cache: false,
            dram_cache_gb: 256.0,
            ssd_cache_gb: 2048.0,
        }
    }
}

/// One model served, its instances and its workload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub name: String,
    /// A built-in model (`gpushare catalog`): llama2-7b, llama2-13b, mistral-7b.
    pub model: String,
    /// Instances started before the run (ready at 0) and kept. With `max_instances = 0` every
    /// request is refused on arrival (a null deployment: it measures the workload's path alone).
    #[serde(default = "one_u32")]
    pub min_instances: u32,
    #[serde(default = "one_u32")]
    pub max_instances: u32,
    /// Another instance starts (up to `max_instances`) when the least-loaded one already has
    /// this many requests waiting. Requests go to the least-loaded ready instance (a starting
    /// one only when none is ready) and stay where they were sent: during a burst the ready
    /// instances keep the queue while the new ones start.
    #[serde(default = "default_scale_up")]
    pub scale_up_waiting: u32,
    /// Instances above `min_instances` stop after this long idle (scale to zero with 0
    /// `min_instances`).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: f64,
    /// How long idle instances stay: `fixed` (`keep_alive_s`) or `hybrid` (Serverless in the
    /// Wild's histogram policy with its paper's defaults, `keep_alive_s` until it has learnt the
    /// deployment's idle times: it may stop an instance at once and pre-warm one before the
    /// next request is expected) — the keep-alive plug-ins of the invocation engine.
    #[serde(default)]
    pub keep_alive_policy: KeepAlivePolicy,
    pub workload: WorkloadSpec,
}

/// A deployment's keep-alive plug-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepAlivePolicy {
    #[default]
    Fixed,
    Hybrid,
}

fn default_max_tokens() -> u64 {
    8192
}

fn default_scale_up() -> u32 {
    4
}
fn default_keep_alive() -> f64 {
    60.0
}

/// A deployment's requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum WorkloadSpec {
    /// An Azure LLM inference trace (`TIMESTAMP,ContextTokens,GeneratedTokens[,NumImages]`).
    AzureLlm {
        path: std::path::PathBuf,
        #[serde(default)]
        skip_bad_rows: bool,
        /// Time scale: 2 plays the trace twice as fast.
        #[serde(default = "one_f64")]
        speedup: f64,
    },
    /// Poisson arrivals of requests with fixed sizes.
    Poisson {
        rate_per_s: f64,
        prompt_tokens: u64,
        output_tokens: u64,
    },
    /// Generated requests with a trace's statistics: Poisson arrivals at `rate_per_s` on
    /// average, modulated by a day-long sine of relative `diurnal_amplitude`; prompt and output
    /// tokens log-normal with the given medians and 99th percentiles, at most `max_tokens`.
    Synthetic {
        rate_per_s: f64,
        #[serde(default)]
        diurnal_amplitude: f64,
        prompt_median: f64,
        prompt_p99: f64,
        output_median: f64,
        output_p99: f64,
        #[serde(default = "default_max_tokens")]
        max_tokens: u64,
    },
    /// `requests` requests all at time 0 (a static batch, as throughput benchmarks run).
    Burst {
        requests: u64,
        prompt_tokens: u64,
        output_tokens: u64,
    },
    /// `clients` clients each sending its next request when the last ended, `requests` in all.
    ClosedLoop {
        clients: u64,
        requests: u64,
        prompt_tokens: u64,
        output_tokens: u64,
    },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSpec {
    /// Write `invocations.csv` (one row per request, as a run of the invocation engine writes
    /// one per invocation; default on).
    pub invocations: Option<bool>,
    pub dir: Option<std::path::PathBuf>,
}
