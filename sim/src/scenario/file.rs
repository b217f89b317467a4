//! The scenario file's schema, as written in TOML. Every table rejects unknown keys.

use gpushare_traces::azure2019::{DurationModel, Selection, Spread};
use gpushare_traces::generate::GeneratorConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Defaults to the file name without extension.
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    pub simulation: SimulationSpec,
    pub cluster: ClusterSpec,
    /// Custom GPU models, by name: every [`crate::device::DeviceSpec`] field, or `base = "…"`
    /// and the fields that differ.
    #[serde(default)]
    pub gpu_types: BTreeMap<String, toml::Table>,
    /// Named custom profiles, usable wherever a catalog name is: every profile field, or
    /// `base = "catalog-name"` and the fields that differ.
    #[serde(default)]
    pub profiles: BTreeMap<String, toml::Table>,
    /// The functions (Poisson and CSV workloads); trace workloads take theirs from the trace.
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
    pub workload: WorkloadSpec,
    /// `name` and the policy's own parameters.
    pub policy: toml::Table,
    #[serde(default)]
    pub output: OutputSpec,
    /// Axes for `gpushare sweep` and `gpushare check` (read there; `run` ignores it).
    #[serde(default)]
    pub sweep: Option<toml::Value>,
}

/// `[simulation]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSpec {
    #[serde(default)]
    pub seed: u64,
    pub horizon_s: f64,
    #[serde(default)]
    pub warmup_s: f64,
    #[serde(default)]
    pub drain: bool,
    /// Scales the offered load: multiplies Poisson rates; compresses the arrival times of trace
    /// and CSV workloads by this factor.
    #[serde(default = "one_f64")]
    pub load_scale: f64,
    /// An end-to-end latency objective: the summary reports the fraction of measured
    /// completions above it.
    pub slo_s: Option<f64>,
    /// Runs beyond the size bounds (expected arrivals, GPUs) are refused unless this is set.
    #[serde(default)]
    pub allow_large: bool,
}

fn one_f64() -> f64 {
    1.0
}

/// `[cluster]`: either `nodes`, `gpus_per_node` and `gpu`, or a list of `[[cluster.node_groups]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub nodes: Option<u32>,
    pub gpus_per_node: Option<u32>,
    /// A GPU name, or `{ profile = "FILE" }`: a device profile written by `gpushare calibrate`.
    pub gpu: Option<GpuRef>,
    #[serde(default)]
    pub node_groups: Vec<NodeGroup>,
    /// Local storage bandwidth for model loads, GB/s.
    #[serde(default = "default_storage_gbps")]
    pub storage_gbps: f64,
}

fn default_storage_gbps() -> f64 {
    2.0
}

/// `[[cluster.node_groups]]`: `count` identical nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub count: u32,
    pub gpus_per_node: u32,
    pub gpu: GpuRef,
}

/// Which GPU: a built-in or `[gpu_types]` name, or a measured device profile.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuRef {
    Name(String),
    Profile(ProfileRef),
}

impl<'de> Deserialize<'de> for GpuRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(name) => Ok(GpuRef::Name(name)),
            toml::Value::Table(t) => ProfileRef::deserialize(toml::Value::Table(t))
                .map(GpuRef::Profile)
                .map_err(|e| D::Error::custom(e.message().trim_end())),
            other => Err(D::Error::custom(format!(
                "expected a GPU name or {{ profile = \"FILE\" }}, got {}",
                other.type_str()
            ))),
        }
    }
}

/// `{ profile = "FILE" }`: the `[device]` table of a calibration file (relative to the scenario).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileRef {
    pub profile: PathBuf,
}

/// `[[functions]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub name: String,
    /// A catalog name, or an inline profile table (optionally with `base = "catalog-name"`).
    pub profile: toml::Value,
    /// Expands into `count` functions named `name-0`, `name-1`, … (zero-padded).
    #[serde(default = "one")]
    pub count: u32,
    /// Poisson arrival rate per function, requests/s (overrides `workload.rate_per_s`); with
    /// `zipf_s`, the total over the `count` functions.
    pub rate_per_s: Option<f64>,
    /// Splits `rate_per_s` over the `count` functions by Zipf weights: function k (from 1) gets
    /// k^−s / Σ j^−s of it (KaaS's clients: s = 1.8).
    pub zipf_s: Option<f64>,
}

fn one() -> u32 {
    1
}

/// `[workload]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkloadSpec {
    /// Independent Poisson arrivals per function.
    Poisson {
        /// Default rate for functions without their own `rate_per_s`.
        rate_per_s: Option<f64>,
    },
    /// A plain `time,func[,duration]` CSV (path relative to the scenario file).
    Csv {
        path: PathBuf,
        /// Skip and count malformed rows instead of stopping at the first.
        #[serde(default)]
        skip_bad_rows: bool,
    },
    /// The Azure Functions 2019 trace (a directory or files), or a generated one.
    Azure2019 {
        /// Directory or file of the trace (relative to the scenario file) …
        path: Option<PathBuf>,
        /// … or generate a synthetic trace with these parameters (published defaults).
        generate: Option<Box<GeneratorConfig>>,
        #[serde(default)]
        spread: Spread,
        /// Shift each function by its own random offset in [0, 60 s), cyclically within each
        /// minute, so that every traced invocation stays in its minute and in the window.
        #[serde(default)]
        shift: bool,
        #[serde(default)]
        durations: DurationModel,
        /// First and last day to read (1-based, inclusive).
        days: Option<[u32; 2]>,
        /// Window start, minutes from the start of the first day read.
        start_minute: Option<u32>,
        /// Window length in minutes.
        minutes: Option<u32>,
        #[serde(default)]
        select: Selection,
        /// Rescale all counts so the mean rate is this many requests per second.
        target_rps: Option<f64>,
        #[serde(default)]
        skip_bad_rows: bool,
        mapping: MappingSpec,
    },
    /// The Azure Functions 2021 trace `app,func,end_timestamp,duration`.
    Azure2021 {
        path: PathBuf,
        /// Rows sorted in memory at once before spilling to disk (bounded-memory re-sort).
        #[serde(default = "default_chunk_rows")]
        chunk_rows: usize,
        /// Use each row's duration as the invocation's execution time.
        #[serde(default = "yes")]
        use_durations: bool,
        #[serde(default)]
        skip_bad_rows: bool,
        mapping: MappingSpec,
    },
    /// The Azure LLM inference trace (2023/2024: `TIMESTAMP,ContextTokens,GeneratedTokens`;
    /// 2025 with `NumImages`), one function serving the named model.
    AzureLlm {
        path: PathBuf,
        /// A built-in LLM (`gpushare catalog`).
        model: String,
        #[serde(default)]
        skip_bad_rows: bool,
    },
}

fn default_chunk_rows() -> usize {
    1_000_000
}

/// How trace functions get GPU profiles.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MappingSpec {
    /// Every function runs this profile.
    Single { profile: String },
    /// Each function draws a profile with these weights, by a stable hash of its key (the same
    /// function always gets the same profile, whatever else the trace holds).
    Weighted { profiles: BTreeMap<String, f64> },
    /// By the function's mean duration: the first class whose `max_ms` is at least it; the last
    /// class needs no `max_ms`.
    DurationClass { classes: Vec<DurationClass> },
}

/// One duration class of [`MappingSpec::DurationClass`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationClass {
    pub max_ms: Option<f64>,
    pub profile: String,
}

/// `[output]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output directory; default `out/<scenario name>`.
    pub dir: Option<PathBuf>,
    /// Write `invocations.csv` (one row per invocation).
    #[serde(default = "yes")]
    pub invocations: bool,
    /// Sample every GPU this often (seconds) into `timeseries.csv`: utilisation and SM
    /// occupancy over each interval, memory and instances at its end.
    pub timeseries_s: Option<f64>,
    /// Write `timeline.json`, a Chrome / Perfetto trace of GPUs, instances and phases.
    #[serde(default)]
    pub timeline: bool,
    /// Only this window of the run in the timeline, `[start_s, end_s]`.
    pub timeline_window_s: Option<[f64; 2]>,
    /// Which GPUs `summary.json` lists one by one: `auto` (up to 1,024), `all` or `none`;
    /// per-type summaries (`gpu_types`) are always there.
    #[serde(default)]
    pub gpu_detail: GpuDetail,
}

/// `[output] gpu_detail`: which GPUs the summary lists one by one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuDetail {
    /// Every GPU of a cluster of at most [`crate::summary::GPU_DETAIL_AUTO_LIMIT`].
    #[default]
    Auto,
    All,
    None,
}

impl GpuDetail {
    /// Whether a cluster of `gpus` GPUs is listed GPU by GPU.
    pub fn lists(self, gpus: usize) -> bool {
        match self {
            GpuDetail::Auto => gpus <= crate::summary::GPU_DETAIL_AUTO_LIMIT,
            GpuDetail::All => true,
            GpuDetail::None => false,
        }
    }
}

fn yes() -> bool {
    true
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            dir: None,
            invocations: true,
            timeseries_s: None,
            timeline: false,
            timeline_window_s: None,
            gpu_detail: GpuDetail::Auto,
        }
    }
}
