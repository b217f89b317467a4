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

/// `v` at `path` must lie in `[lo, hi]` (finite); `what` says so in words.
fn within(path: &str, v: f64, lo: f64, hi: f64, what: &str) -> Result<(), ConfigError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(at(path, format!("must be {what}, got {v}")))
    }
}

/// Arrivals a run may expect at most (the invocation engine's bound).
const MAX_REQUESTS: f64 = crate::scenario::MAX_EXPECTED_ARRIVALS;
/// Requests a burst may hold at once (they are all queued at time 0).
const MAX_BURST: u64 = 10_000_000;
/// Largest times in seconds (a year) and bandwidths in GB/s accepted.
const MAX_SECONDS: f64 = 3.2e7;

/// Checks what the schema cannot; returns the GPU's spec.
fn check(f: &ServingFile) -> Result<DeviceSpec, ConfigError> {
    let device = builtin_device(&f.cluster.gpu).ok_or_else(|| {
        let names: Vec<String> = crate::device::builtin_devices().into_iter().map(|d| d.name).collect();
        at(
            "cluster.gpu",
            format!("unknown GPU `{}`; valid: {}", f.cluster.gpu, names.join(", ")),
        )
    })?;
    let sim = &f.simulation;
    within(
        "simulation.horizon_s",
        sim.horizon_s,
        crate::scenario::MIN_HORIZON_S,
        crate::scenario::MAX_HORIZON_S,
        "a positive number of seconds within the trace clock's range",
    )?;
    within(
        "simulation.slo_ttft_s",
        sim.slo_ttft_s,
        1e-9,
        MAX_SECONDS,
        "a positive number of seconds",
    )?;
    within(
        "simulation.slo_tpot_s",
        sim.slo_tpot_s,
        1e-9,
        MAX_SECONDS,
        "a positive number of seconds",
    )?;
    for (key, n) in [("nodes", f.cluster.nodes), ("gpus_per_node", f.cluster.gpus_per_node)] {
        if n == 0 {
            return Err(at(&format!("cluster.{key}"), "must be at least 1".into()));
        }
    }
    let gpus = u64::from(f.cluster.nodes) * u64::from(f.cluster.gpus_per_node);
    if gpus > crate::scenario::MAX_GPUS {
        return Err(at(
            "cluster.nodes",
            format!("{gpus} GPUs; at most {}", crate::scenario::MAX_GPUS),
        ));
    }
    check_serving(f, &device)?;
    check_deployments(f, &device)?;
    Ok(device)
}

fn check_serving(f: &ServingFile, device: &DeviceSpec) -> Result<(), ConfigError> {
    let s = &f.serving;
    let per_gpu_ok = match s.sharing {
        Mechanism::Dedicated => s.per_gpu == 1,
        Mechanism::Mig => [1, 2, 3, 7].contains(&s.per_gpu),
        _ => (1..=64).contains(&s.per_gpu),
    };
    if !per_gpu_ok {
        return Err(at(
            "serving.per_gpu",
            format!(
                "{} engines per GPU with sharing `{:?}`: dedicated takes 1, mig equal slices 1, 2, 3 or 7 (7g, 3g, 2g, 1g), time-slicing and mps 1 to 64",
                s.per_gpu, s.sharing
            ),
        ));
    }
    if s.sharing == Mechanism::Mig && device.mig.is_none() {
        return Err(at(
            "serving.sharing",
            format!("{} has no MIG; GPUs with it: A100s, H100, H200", device.name),
        ));
    }
    within(
        "serving.mps_cap",
        s.mps_cap,
        0.01,
        1.0,
        "a fraction of the SMs in [0.01, 1]",
    )?;
    let q = &s.scheduler;
    let p = |k: &str| format!("serving.scheduler.{k}");
    within(&p("max_batch"), q.max_batch as f64, 1.0, 1e6, "1 to 1,000,000 requests")?;
    within(
        &p("max_batched_tokens"),
        q.max_batched_tokens as f64,
        1.0,
        1e9,
        "1 to 10⁹ tokens",
    )?;
    within(&p("block_tokens"), q.block_tokens as f64, 1.0, 1e6, "1 to 10⁶ tokens")?;
    within(
        &p("memory_utilization"),
        q.memory_utilization,
        1e-6,
        1.0,
        "a fraction in (0, 1]",
    )?;
    within(
        &p("activation_fraction"),
        q.activation_fraction,
        0.0,
        q.memory_utilization - 1e-9,
        "a fraction in [0, memory_utilization)",
    )?;
    within(&p("watermark"), q.watermark, 0.0, 1.0 - 1e-9, "a fraction in [0, 1)")?;
    let c = &s.cost;
    within(
        "serving.cost.compute_efficiency",
        c.compute_efficiency,
        1e-6,
        1.0,
        "a fraction in (0, 1]",
    )?;
    within(
        "serving.cost.memory_efficiency",
        c.memory_efficiency,
        1e-6,
        1.0,
        "a fraction in (0, 1]",
    )?;
    within("serving.cost.host_ms", c.host_ms, 0.0, 1e6, "0 to 10⁶ ms")?;
    let cs = &s.cold_start;
    let p = |k: &str| format!("serving.cold_start.{k}");
    within(&p("container_s"), cs.container_s, 0.0, MAX_SECONDS, "0 s to a year")?;
    within(&p("runtime_s"), cs.runtime_s, 0.0, MAX_SECONDS, "0 s to a year")?;
    for (k, v) in [
        ("remote_gbps", cs.remote_gbps),
        ("ssd_gbps", cs.ssd_gbps),
        ("dram_gbps", cs.dram_gbps),
    ] {
        within(&p(k), v, 1e-3, 1e6, "0.001 to 10⁶ GB/s")?;
    }
    within(&p("dram_cache_gb"), cs.dram_cache_gb, 0.0, 1e9, "0 to 10⁹ GB")?;
    within(&p("ssd_cache_gb"), cs.ssd_cache_gb, 0.0, 1e9, "0 to 10⁹ GB")?;
    Ok(())
}

/// Every deployment, and what they need together: names apart, their kept instances within
/// the engine slots.
fn check_deployments(f: &ServingFile, device: &DeviceSpec) -> Result<(), ConfigError> {
    if f.deployments.is_empty() {
        return Err(at("deployments", "at least one [[deployments]] entry is needed".into()));
    }
    let slots = u64::from(f.cluster.nodes) * u64::from(f.cluster.gpus_per_node) * u64::from(f.serving.per_gpu);
    let mut kept = 0u64;
    for (i, d) in f.deployments.iter().enumerate() {
        if f.deployments[..i].iter().any(|e| e.name == d.name) {
            return Err(at(
                &format!("deployments[{i}].name"),
                format!("`{}` names an earlier deployment too", d.name),
            ));
        }
        check_deployment(f, device, d, i)?;
        kept += u64::from(d.min_instances);
        if kept > slots {
            return Err(at(
                &format!("deployments[{i}].min_instances"),
                format!(
                    "the deployments keep {kept} instances; the cluster has {slots} engine slots ({} GPUs × per_gpu {})",
                    slots / u64::from(f.serving.per_gpu),
                    f.serving.per_gpu
                ),
            ));
        }
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
    if d.keep_alive_s.is_nan() || d.keep_alive_s < 0.0 {
        return Err(at(
            &path("keep_alive_s"),
            format!("must be ≥ 0 seconds (or inf), got {}", d.keep_alive_s),
        ));
    }
    if d.scale_up_waiting == 0 {
        return Err(at(&path("scale_up_waiting"), "must be at least 1".into()));
    }
    let memory = slot_memory(f, device);
    let block_tokens = f.serving.scheduler.block_tokens;
    if cluster::kv_blocks(f, &model, memory, block_tokens) == 0 {
        let free = memory * (f.serving.scheduler.memory_utilization - f.serving.scheduler.activation_fraction);
        let why = if free > model.weights_bytes() {
            format!(
                "less than one KV block of {block_tokens} tokens is left after the weights: lower serving.scheduler.block_tokens"
            )
        } else {
            format!("its {:.1} GB of weights do not fit", model.weights_bytes() / 1e9)
        };
        return Err(at(
            &path("model"),
            format!(
                "{} leaves no KV cache in an engine's {:.1} GB ({} / per_gpu {}, memory_utilization {}): {why}",
                model.name,
                memory / 1e9,
                device.name,
                f.serving.per_gpu,
                f.serving.scheduler.memory_utilization
            ),
        ));
    }
    check_workload(&d.workload, &path("workload"), f.simulation.horizon_s)
}

fn check_workload(w: &spec::WorkloadSpec, path: &str, horizon_s: f64) -> Result<(), ConfigError> {
    use spec::WorkloadSpec::*;
    let p = |k: &str| format!("{path}.{k}");
    let tokens = |k: &str, v: u64| within(&p(k), v as f64, 1.0, 1e8, "1 to 10⁸ tokens");
    let rate = |v: f64| {
        within(&p("rate_per_s"), v, 1e-12, f64::MAX, "a positive rate")?;
        if v * horizon_s > MAX_REQUESTS {
            return Err(at(
                &p("rate_per_s"),
                format!("{v}/s over {horizon_s} s is more than {MAX_REQUESTS:e} requests"),
            ));
        }
        Ok(())
    };
    match w {
        AzureLlm { speedup, .. } => within(&p("speedup"), *speedup, 1e-6, 1e6, "a positive factor up to 10⁶"),
        Poisson {
            rate_per_s,
            prompt_tokens,
            output_tokens,
        } => {
            rate(*rate_per_s)?;
            tokens("prompt_tokens", *prompt_tokens)?;
            tokens("output_tokens", (*output_tokens).max(1))
        }
        Burst {
            requests,
            prompt_tokens,
            output_tokens,
        } => {
            within(
                &p("requests"),
                *requests as f64,
                1.0,
                MAX_BURST as f64,
                "1 to 10⁷ requests",
            )?;
            tokens("prompt_tokens", *prompt_tokens)?;
            tokens("output_tokens", (*output_tokens).max(1))
        }
        ClosedLoop {
            clients,
            requests,
            prompt_tokens,
            output_tokens,
        } => {
            within(
                &p("clients"),
                *clients as f64,
                1.0,
                MAX_BURST as f64,
                "1 to 10⁷ clients",
            )?;
            within(
                &p("requests"),
                *requests as f64,
                1.0,
                MAX_REQUESTS,
                "1 to 2·10⁹ requests",
            )?;
            tokens("prompt_tokens", *prompt_tokens)?;
            tokens("output_tokens", (*output_tokens).max(1))
        }
        Synthetic {
            rate_per_s,
            diurnal_amplitude,
            prompt_median,
            prompt_p99,
            output_median,
            output_p99,
            max_tokens,
        } => {
            rate(*rate_per_s)?;
            within(
                &p("diurnal_amplitude"),
                *diurnal_amplitude,
                0.0,
                1.0 - 1e-9,
                "a fraction in [0, 1)",
            )?;
            within(&p("prompt_median"), *prompt_median, 1.0, 1e8, "1 to 10⁸ tokens")?;
            within(
                &p("prompt_p99"),
                *prompt_p99,
                *prompt_median,
                1e8,
                "at least prompt_median",
            )?;
            within(&p("output_median"), *output_median, 1.0, 1e8, "1 to 10⁸ tokens")?;
            within(
                &p("output_p99"),
                *output_p99,
                *output_median,
                1e8,
                "at least output_median",
            )?;
            tokens("max_tokens", *max_tokens)
        }
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
    let end = c.last_activity;
    let busy: u64 = c.processors.iter().map(|p| p.busy_ns).sum();
    let cold_total = c.cold_start_total_ns;
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
