//! The scenario file's schema, as written in TOML. Every table rejects unknown keys.

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
    pub functions: Vec<FunctionSpec>,
    pub workload: WorkloadSpec,
    /// `name` and the policy's own parameters.
    pub policy: toml::Table,
    #[serde(default)]
    pub output: OutputSpec,
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
}

/// `[cluster]`: either `nodes`, `gpus_per_node` and `gpu`, or a list of `[[cluster.node_groups]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub nodes: Option<u32>,
    pub gpus_per_node: Option<u32>,
    pub gpu: Option<String>,
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
    pub gpu: String,
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
    /// Poisson arrival rate per function, requests/s (overrides `workload.rate_per_s`).
    pub rate_per_s: Option<f64>,
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
    Csv { path: PathBuf },
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
}

fn yes() -> bool {
    true
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            dir: None,
            invocations: true,
        }
    }
}
