//! LLM serving: each instance of an LLM function is a serving engine — iteration-level
//! scheduling over a paged KV cache ([`batcher`]), iterations timed by the model's roofline on
//! its GPU ([`cost`]), engines sharing GPUs by time slicing, MPS or MIG ([`share`]), and
//! serverless instances started cold from a checkpoint store, kept warm for a while, and placed
//! near cached checkpoints as ServerlessLLM does ([`cluster`]). A scenario with a `[serving]`
//! table is run here ([`spec`] is its schema); `gpushare run` writes [`report`]'s summary and
//! one row per request.
//!
//! This is its own event loop beside [`crate::engine`]: an LLM engine batches requests across
//! iterations, which the invocation-at-a-time engine does not express. What it shares with it:
//! the scenario loader (errors located, `--set`), the device catalogue, the traces' LLM reader
//! and the latency histograms.

pub mod batcher;
pub mod cluster;
pub mod cost;
pub mod report;
pub mod share;
pub mod source;
pub mod spec;

use crate::device::{DeviceSpec, builtin_device};
use crate::scenario::{ConfigError, DocPath, ScenarioError, ScenarioSource};
use batcher::BatchLimits;
use cluster::{Cluster, Deployment, Processor, Slot};
use cost::Resources;
use report::{DeploymentSummary, Figures, Record, ServingSummary};
use share::Mechanism;
use spec::ServingFile;
use std::path::Path;

/// Whether a scenario file is a serving scenario (has a `[serving]` table).
pub fn is_serving(src: &ScenarioSource) -> bool {
    toml::from_str::<toml::Table>(&src.text).is_ok_and(|t| t.contains_key("serving"))
}

/// A serving scenario, read and checked.
pub struct ServingScenario {
    pub file: ServingFile,
    pub name: String,
    pub base: std::path::PathBuf,
    pub device: DeviceSpec,
}

impl ServingScenario {
    /// Reads `src` (with its overrides) and checks every value.
    pub fn parse(src: &ScenarioSource) -> Result<ServingScenario, ScenarioError> {
        let table = src.table()?;
        let file: ServingFile =
            crate::scenario::from_value(toml::Value::Table(table), &DocPath::default()).map_err(|e| src.locate(e))?;
        let device = check(&file).map_err(|e| src.locate(e))?;
        let name = file.name.clone().unwrap_or_else(|| {
            src.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let base = src.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(ServingScenario {
            file,
            name,
            base,
            device,
        })
    }

    /// Where `gpushare run` writes by default.
    pub fn output_dir(&self) -> std::path::PathBuf {
        self.file
            .output
            .dir
            .clone()
            .unwrap_or_else(|| Path::new("out").join(&self.name))
    }
}

/// What a serving run gives.
pub struct ServingRun {
    pub summary: ServingSummary,
    /// One per request, in the order they ended (empty when not kept).
    pub records: Vec<Record>,
    pub deployment_names: Vec<String>,
    /// At each of [`crate::summary::cdf_quantiles`]: (quantile, TTFT, TPOT, end-to-end), s.
    pub cdf: Vec<(f64, f64, f64, f64)>,
}

fn at(path: &str, message: String) -> ConfigError {
    ConfigError::at(DocPath::parse(path).unwrap_or_default(), message)
}

/// Checks what the schema cannot; returns the GPU's spec.
fn check(f: &ServingFile) -> Result<DeviceSpec, ConfigError> {
    let device = builtin_device(&f.cluster.gpu).ok_or_else(|| {
        let names: Vec<String> = crate::device::builtin_devices().into_iter().map(|d| d.name).collect();
        at(
            "cluster.gpu",
            format!("unknown GPU `{}`; valid: {}", f.cluster.gpu, names.join(", ")),
        )
    })?;
    let positive = |v: f64, path: &str| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(at(path, format!("must be a positive number, got {v}")))
        }
    };
    positive(f.simulation.horizon_s, "simulation.horizon_s")?;
    positive(f.simulation.slo_ttft_s, "simulation.slo_ttft_s")?;
    positive(f.simulation.slo_tpot_s, "simulation.slo_tpot_s")?;
    if f.cluster.nodes == 0 || f.cluster.gpus_per_node == 0 {
        return Err(at("cluster.nodes", "nodes and gpus_per_node must be at least 1".into()));
    }
    check_serving(f)?;
    if f.deployments.is_empty() {
        return Err(at("deployments", "at least one [[deployments]] entry is needed".into()));
    }
    for (i, d) in f.deployments.iter().enumerate() {
        check_deployment(f, &device, d, i)?;
    }
    Ok(device)
}

fn check_serving(f: &ServingFile) -> Result<(), ConfigError> {
    let s = &f.serving;
    let per_gpu_ok = match s.sharing {
        Mechanism::Dedicated => s.per_gpu == 1,
        Mechanism::Mig => (1..=7).contains(&s.per_gpu),
        _ => s.per_gpu >= 1,
    };
    if !per_gpu_ok {
        return Err(at(
            "serving.per_gpu",
            format!(
                "{} engines per GPU with sharing `{:?}`: dedicated takes 1, mig 1 to 7 slices, time-slicing and mps at least 1",
                s.per_gpu, s.sharing
            ),
        ));
    }
    if !(s.mps_cap > 0.0 && s.mps_cap <= 1.0) {
        return Err(at("serving.mps_cap", format!("must be in (0, 1], got {}", s.mps_cap)));
    }
    let q = &s.scheduler;
    let ok = q.max_batch >= 1
        && q.max_batched_tokens >= 1
        && q.block_tokens >= 1
        && q.memory_utilization > 0.0
        && q.memory_utilization <= 1.0
        && (0.0..q.memory_utilization).contains(&q.activation_fraction)
        && (0.0..1.0).contains(&q.watermark);
    if !ok {
        return Err(at(
            "serving.scheduler",
            "max_batch, max_batched_tokens and block_tokens must be ≥ 1, memory_utilization in (0, 1], activation_fraction in [0, memory_utilization), watermark in [0, 1)".into(),
        ));
    }
    let c = &s.cost;
    let fraction = |v: f64| v > 0.0 && v <= 1.0;
    if !(fraction(c.compute_efficiency) && fraction(c.memory_efficiency) && c.host_ms >= 0.0 && c.host_ms.is_finite()) {
        return Err(at(
            "serving.cost",
            "compute_efficiency and memory_efficiency must be in (0, 1], host_ms ≥ 0".into(),
        ));
    }
    let cs = &s.cold_start;
    let gbps = [cs.remote_gbps, cs.ssd_gbps, cs.dram_gbps];
    if gbps.iter().any(|v| !(v.is_finite() && *v > 0.0)) || cs.container_s < 0.0 || cs.runtime_s < 0.0 {
        return Err(at(
            "serving.cold_start",
            "bandwidths must be positive GB/s, container_s and runtime_s ≥ 0".into(),
        ));
    }
    Ok(())
}

fn check_deployment(
    f: &ServingFile,
    device: &DeviceSpec,
    d: &spec::DeploymentSpec,
    i: usize,
) -> Result<(), ConfigError> {
    let path = |k: &str| format!("deployments[{i}].{k}");
    let model = llm(&d.model).ok_or_else(|| {
        let names: Vec<&str> = gpushare_traces::llm::builtin_llms().iter().map(|m| m.name).collect();
        at(
            &path("model"),
            format!("unknown model `{}`; valid: {}", d.model, names.join(", ")),
        )
    })?;
    if d.min_instances > d.max_instances {
        return Err(at(
            &path("max_instances"),
            format!("must be ≥ min_instances ({})", d.min_instances),
        ));
    }
    if d.keep_alive_s.is_nan() || d.keep_alive_s < 0.0 || d.scale_up_waiting == 0 {
        return Err(at(
            &path("keep_alive_s"),
            "keep_alive_s must be ≥ 0 and scale_up_waiting ≥ 1".into(),
        ));
    }
    let memory = slot_memory(f, device);
    let blocks = cluster::kv_blocks(f, &model, memory, f.serving.scheduler.block_tokens);
    if blocks == 0 {
        return Err(at(
            &path("model"),
            format!(
                "{} ({:.1} GB of weights) leaves no KV cache in an engine's {:.1} GB ({} × {} per GPU, memory_utilization {})",
                model.name,
                model.weights_bytes() / 1e9,
                memory / 1e9,
                device.name,
                f.serving.per_gpu,
                f.serving.scheduler.memory_utilization
            ),
        ));
    }
    check_workload(&d.workload, &path("workload"))
}

fn check_workload(w: &spec::WorkloadSpec, path: &str) -> Result<(), ConfigError> {
    use spec::WorkloadSpec::*;
    let bad = |m: &str| Err(at(path, m.to_string()));
    match w {
        AzureLlm { speedup, .. } if !(speedup.is_finite() && *speedup > 0.0) => bad("speedup must be positive"),
        Poisson { rate_per_s, .. } if !(rate_per_s.is_finite() && *rate_per_s > 0.0) => {
            bad("rate_per_s must be positive")
        }
        Poisson { prompt_tokens: 0, .. } | Burst { prompt_tokens: 0, .. } | ClosedLoop { prompt_tokens: 0, .. } => {
            bad("prompt_tokens must be ≥ 1")
        }
        ClosedLoop { clients: 0, .. } => bad("clients must be ≥ 1"),
        Synthetic {
            rate_per_s,
            diurnal_amplitude,
            prompt_median,
            prompt_p99,
            output_median,
            output_p99,
            max_tokens,
        } => {
            let rate_ok = rate_per_s.is_finite() && *rate_per_s > 0.0 && (0.0..1.0).contains(diurnal_amplitude);
            let tokens_ok = [(prompt_median, prompt_p99), (output_median, output_p99)]
                .iter()
                .all(|(m, p)| m.is_finite() && **m >= 1.0 && p.is_finite() && **p >= **m);
            if !rate_ok {
                bad("rate_per_s must be positive and diurnal_amplitude in [0, 1)")
            } else if !tokens_ok || *max_tokens == 0 {
                bad("token medians must be ≥ 1, each p99 ≥ its median, max_tokens ≥ 1")
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Requests the scenario's open-loop workloads bring before the horizon (a closed loop's or a
/// burst's stated count), read through every trace: what `gpushare validate` reports.
pub fn count_requests(scenario: &ServingScenario) -> Result<u64, String> {
    let f = &scenario.file;
    let horizon = crate::time::secs_to_ns(f.simulation.horizon_s);
    let mut n = 0;
    for (i, d) in f.deployments.iter().enumerate() {
        let mut r = source::Requests::open(&d.workload, &scenario.base, f.simulation.seed, i as u64)
            .map_err(|e| e.to_string())?;
        if let spec::WorkloadSpec::Burst { requests, .. } | spec::WorkloadSpec::ClosedLoop { requests, .. } = d.workload
        {
            n += requests;
            continue;
        }
        while r.peek_time().map_err(|e| e.to_string())?.is_some_and(|t| t < horizon) {
            r.take().map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

/// The built-in model called `name`.
fn llm(name: &str) -> Option<gpushare_traces::llm::LlmModel> {
    gpushare_traces::llm::builtin_llms()
        .into_iter()
        .find(|m| m.name == name)
}

/// An engine's GPU memory, bytes.
fn slot_memory(f: &ServingFile, device: &DeviceSpec) -> f64 {
    device.memory_mib * 1024.0 * 1024.0 / f64::from(f.serving.per_gpu)
}

/// Deployment `d`'s keep-alive plug-in: its own, seeing the deployment as its one function.
fn keep_alive(d: &spec::DeploymentSpec) -> Box<dyn crate::policy::KeepAlive> {
    let fixed = d
        .keep_alive_s
        .is_finite()
        .then(|| crate::time::secs_to_ns(d.keep_alive_s));
    match d.keep_alive_policy {
        spec::KeepAlivePolicy::Fixed => Box::new(crate::policy::FixedTtl(fixed)),
        spec::KeepAlivePolicy::Hybrid => {
            let cfg = crate::keepalive::HybridConfig {
                fallback: fixed,
                ..Default::default()
            };
            Box::new(crate::keepalive::HybridHistogram::new(cfg, 1))
        }
    }
}

/// Runs `scenario`; `records` keeps one record per request.
pub fn run(scenario: &ServingScenario, records: bool) -> Result<ServingRun, String> {
    let f = &scenario.file;
    let dev = &scenario.device;
    let per_gpu = f.serving.per_gpu;
    let mig = f.serving.sharing == Mechanism::Mig;
    let whole = Resources {
        flops: dev.tensor_tflops * 1e12,
        bandwidth: dev.mem_bandwidth_gbps * 1e9,
    };
    let memory = slot_memory(f, dev);
    let (mut processors, mut slots) = (Vec::new(), Vec::new());
    for node in 0..f.cluster.nodes {
        for _ in 0..f.cluster.gpus_per_node {
            let share = if mig { 1.0 / f64::from(per_gpu) } else { 1.0 };
            let resources = Resources {
                flops: whole.flops * share,
                bandwidth: whole.bandwidth * share,
            };
            let engines_here = if mig { 1 } else { per_gpu };
            for _ in 0..(if mig { per_gpu } else { 1 }) {
                processors.push(Processor::new(node, resources, dev.context_switch_us * 1e3));
                for _ in 0..engines_here {
                    slots.push(Slot {
                        processor: processors.len() - 1,
                        memory_bytes: memory,
                        taken: false,
                    });
                }
            }
        }
    }
    let mut deployments = Vec::new();
    for (i, d) in f.deployments.iter().enumerate() {
        deployments.push(Deployment {
            name: d.name.clone(),
            model: llm(&d.model).expect("checked"),
            min_instances: d.min_instances,
            max_instances: d.max_instances,
            scale_up_waiting: d.scale_up_waiting as usize,
            keep_alive: keep_alive(d),
            requests: source::Requests::open(&d.workload, &scenario.base, f.simulation.seed, i as u64)
                .map_err(|e| e.to_string())?,
            arrival_pending: false,
            instances: Vec::new(),
            stats: report::Stats::default(),
            started: 0,
            prewarms: 0,
        });
    }
    let q = &f.serving.scheduler;
    let limits = BatchLimits {
        max_batch: q.max_batch,
        max_batched_tokens: q.max_batched_tokens,
        chunked_prefill: q.chunked_prefill,
        block_tokens: q.block_tokens,
        blocks: 0,
        watermark: 0,
    };
    let mut cluster = Cluster::new(f.clone(), processors, slots, deployments, limits, records);
    cluster.run()?;
    Ok(summarise(scenario, cluster))
}

/// The run's summary, and its records.
fn summarise(scenario: &ServingScenario, c: Cluster) -> ServingRun {
    let f = &scenario.file;
    let (iterations, batched) = c
        .instances
        .iter()
        .fold((0, 0), |(i, b), inst| (i + inst.iterations, b + inst.batched));
    let end = c.total.last_end.max(c.now);
    let busy: u64 = c.processors.iter().map(|p| p.busy_ns).sum();
    let cold_total: u64 = c.cold_start_ns.iter().sum();
    let deployments = c
        .deployments
        .iter()
        .map(|d| DeploymentSummary {
            name: d.name.clone(),
            model: d.model.name.to_string(),
            instances_started: d.started,
            prewarms: d.prewarms,
            figures: Figures::of(&d.stats),
        })
        .collect();
    let summary = ServingSummary {
        scenario: scenario.name.clone(),
        kind: "llm-serving",
        seed: f.simulation.seed,
        horizon_s: f.simulation.horizon_s,
        end_s: crate::time::ns_to_secs(end),
        gpu: scenario.device.name.clone(),
        gpus: u64::from(f.cluster.nodes) * u64::from(f.cluster.gpus_per_node),
        sharing: format!("{:?}", f.serving.sharing).to_lowercase(),
        engines_per_gpu: f.serving.per_gpu,
        slo_ttft_s: f.simulation.slo_ttft_s,
        slo_tpot_s: f.simulation.slo_tpot_s,
        figures: Figures::of(&c.total),
        iterations,
        mean_batch: if iterations == 0 {
            0.0
        } else {
            batched as f64 / iterations as f64
        },
        cold_starts: c.cold_starts,
        cold_start_mean_s: if c.cold_starts == 0 {
            0.0
        } else {
            cold_total as f64 / c.cold_starts as f64 / 1e9
        },
        gpu_busy_fraction: if end == 0 {
            0.0
        } else {
            busy as f64 / (c.processors.len() as f64 * end as f64)
        },
        events: c.events,
        deployments,
    };
    let qs = crate::summary::cdf_quantiles();
    let (ttft, tpot, e2e) = (
        c.total.ttft.quantiles_s(&qs),
        c.total.tpot.quantiles_s(&qs),
        c.total.e2e.quantiles_s(&qs),
    );
    let at = |v: &Vec<f64>, i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    let cdf = if ttft.is_empty() {
        Vec::new()
    } else {
        qs.iter()
            .enumerate()
            .map(|(i, &q)| (q, at(&ttft, i), at(&tpot, i), at(&e2e, i)))
            .collect()
    };
    ServingRun {
        summary,
        deployment_names: c.deployments.iter().map(|d| d.name.clone()).collect(),
        records: c.records,
        cdf,
    }
}
