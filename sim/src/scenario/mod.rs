//! Scenario files: loading, `--set` overrides, validation, and located error messages.
//!
//! A scenario is read in three passes. The text is parsed as TOML; `--set key.path=value`
//! overrides are applied to the parsed table; the table is deserialised into the schema of
//! [`file`](mod@file) and then checked field by field. Any error carries the path of the field at fault,
//! which is resolved against the original text to a file, line and column with the offending
//! line underlined — or, if the field came from `--set`, to that override.
//!
//! This module holds the validated types ([`Scenario`], [`Function`], [`Workload`],
//! [`PolicySpec`]). Loading and overrides are `source`'s ([`ScenarioSource`], [`from_value`]);
//! validation is `validate`'s, with the cluster's devices in `devices`, the functions and named
//! profiles in `functions`, and trace workloads in `traced`.

mod devices;
pub mod error;
pub mod file;
mod functions;
mod locate;
mod refine;
mod source;
mod traced;
mod validate;

pub use error::{ConfigError, DocPath, ScenarioError, Seg};
pub use file::{GpuDetail, OutputSpec};
pub use source::{ScenarioSource, from_value};
pub use validate::{
    MAX_EXPECTED_ARRIVALS, MAX_FUNCTION_COUNT, MAX_GPUS, MAX_HORIZON_S, MAX_TIMESERIES_POINTS, MIN_HORIZON_S,
    MIN_TIMESERIES_S,
};

use crate::device::DeviceSpec;
use crate::profile::FunctionProfile;
use crate::time::Nanos;
use gpushare_traces::azure2019::{Azure2019, Azure2019Stream, StreamOptions};
use gpushare_traces::azure2021::{Azure2021, Azure2021Stream};
use gpushare_traces::llm::{LlmCost, LlmSource};
use gpushare_traces::{ArrivalSource, Compressed, PlainCsvSource, PoissonSource, TraceError};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A policy as named in the scenario: `name` and the rest of `[policy]` as parameters.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub name: String,
    pub params: toml::Table,
}

impl PolicySpec {
    /// Deserialises the parameters into `T`, with errors located under `policy.`.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        from_value(
            toml::Value::Table(self.params.clone()),
            &DocPath(vec![Seg::Key("policy".into())]),
        )
    }
}

/// A function after `count` expansion, with its resolved profile.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub profile: FunctionProfile,
    /// The device the profile's kernel work was measured on.
    pub reference: DeviceSpec,
    /// Poisson rate (0 for trace-driven workloads).
    pub rate_per_s: f64,
}

/// Where arrivals come from.
#[derive(Clone, Debug)]
pub enum Workload {
    /// Poisson arrivals at each function's `rate_per_s`.
    Poisson,
    /// A plain CSV file.
    Csv { path: PathBuf, skip_bad_rows: bool },
    /// A read Azure 2019 trace (functions in scenario order).
    Azure2019 { trace: Arc<Azure2019>, opts: StreamOptions },
    /// A read, re-sorted Azure 2021 trace.
    Azure2021 { trace: Arc<Azure2021>, use_durations: bool },
    /// An Azure LLM trace, streamed from the file; every request invokes function 0.
    AzureLlm {
        path: PathBuf,
        cost: LlmCost,
        skip_bad_rows: bool,
    },
}

/// A validated scenario, ready to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub horizon: Nanos,
    pub warmup: Nanos,
    pub drain: bool,
    /// Offered-load factor (`[simulation] load_scale`).
    pub load_scale: f64,
    /// End-to-end latency objective.
    pub slo: Option<Nanos>,
    /// Device types used by the cluster.
    pub devices: Vec<DeviceSpec>,
    /// Device types loaded from measured profiles (`gpu = { profile = "FILE" }`): name and file.
    pub device_profiles: Vec<(String, PathBuf)>,
    /// Every GPU as (node, device type index).
    pub gpus: Vec<(u32, usize)>,
    pub storage_gbps: f64,
    pub functions: Vec<Function>,
    pub workload: Workload,
    pub policy: PolicySpec,
    pub output: OutputSpec,
    /// What loading the workload found (cleaning reports, cost models), for the user.
    pub notes: Vec<String>,
}

impl Scenario {
    /// Opens the workload as a stream of arrivals.
    pub fn open_workload(&self) -> Result<Box<dyn ArrivalSource>, TraceError> {
        let source: Box<dyn ArrivalSource> = match &self.workload {
            Workload::Poisson => {
                let rates: Vec<f64> = self.functions.iter().map(|f| f.rate_per_s * self.load_scale).collect();
                return Ok(Box::new(PoissonSource::new(&rates, self.seed, self.horizon)));
            }
            Workload::Csv { path, skip_bad_rows } => {
                let names: Vec<String> = self.functions.iter().map(|f| f.name.clone()).collect();
                Box::new(gpushare_traces::NonEmpty::new(
                    PlainCsvSource::open(path, &names, *skip_bad_rows)?,
                    path,
                )?)
            }
            Workload::Azure2019 { trace, opts } => Box::new(Azure2019Stream::new((**trace).clone(), *opts)),
            Workload::Azure2021 { trace, use_durations } => Box::new(Azure2021Stream::new(trace, *use_durations)?),
            Workload::AzureLlm {
                path,
                cost,
                skip_bad_rows,
            } => Box::new(gpushare_traces::NonEmpty::new(
                LlmSource::open(path, *cost, *skip_bad_rows)?,
                path,
            )?),
        };
        Ok(if self.load_scale == 1.0 {
            source
        } else {
            Box::new(Compressed::new(source, self.load_scale))
        })
    }

    /// Opens a workload streamed from a file and reads its first arrival, so that a file that
    /// cannot be read, or has no row, is refused before anything is run or printed. Workloads
    /// read while loading (or generated) have nothing left to check.
    pub fn check_workload(&self) -> Result<(), TraceError> {
        if matches!(self.workload, Workload::Csv { .. } | Workload::AzureLlm { .. }) {
            self.open_workload()?;
        }
        Ok(())
    }

    /// Output directory: `[output] dir`, else `out/<name>`.
    pub fn output_dir(&self) -> PathBuf {
        self.output
            .dir
            .clone()
            .unwrap_or_else(|| Path::new("out").join(&self.name))
    }
}
