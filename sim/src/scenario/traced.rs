//! Trace workloads: reading the trace, naming its functions, and mapping them to GPU profiles.
//!
//! A trace names functions but says nothing about GPUs, so `[workload.mapping]` assigns each
//! trace function a profile (a catalog name or one from `[profiles]`): all the same (`single`),
//! a weighted mix drawn by a stable hash of the function's key (`weighted`: the same function
//! gets the same profile whatever else the trace holds), or by the function's mean duration
//! (`duration-class`). With trace durations on, each invocation's execution time replaces the
//! profile's (its phases are scaled to it).

use super::error::{ConfigError, DocPath};
use super::file::{MappingSpec, WorkloadSpec};
use super::functions::ProfileBook;
use super::{Function, Workload};
use crate::device::{DeviceSpec, MIB};
use crate::profile::{FunctionProfile, KernelPhase, ModelSource, Phase};
use gpushare_traces::azure2019::{self, ReadOptions, StreamOptions};
use gpushare_traces::generate::GeneratorConfig;
use gpushare_traces::llm::builtin_llms;
use gpushare_traces::tempdir::TempDir;
use gpushare_traces::{TraceError, azure2021};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Why a trace workload could not be built.
pub(crate) enum BuildError {
    Config(ConfigError),
    Trace(TraceError),
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}
impl From<TraceError> for BuildError {
    fn from(e: TraceError) -> Self {
        BuildError::Trace(e)
    }
}

/// The functions, workload and notes of a trace workload.
pub(crate) struct Traced {
    pub functions: Vec<Function>,
    pub workload: Workload,
    pub notes: Vec<String>,
}

/// What building needs from the rest of the scenario.
pub(crate) struct Env<'a> {
    pub book: &'a ProfileBook,
    /// The cluster's device types (the first sets LLM costs).
    pub devices: &'a [DeviceSpec],
    /// Every device the scenario can name.
    pub known: &'a [DeviceSpec],
    pub base_dir: &'a Path,
    pub seed: u64,
}

/// FNV-1a of a function key: a stable hash, the same on every platform and run.
fn stable_unit(key: &str) -> f64 {
    let h = gpushare_traces::rng::fnv1a(key.as_bytes());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A mapping resolved to profiles.
struct Mapper {
    profiles: Vec<(FunctionProfile, DeviceSpec)>,
    rule: Rule,
}

enum Rule {
    Single,
    /// (cumulative weight, profile index), weights normalised to end at 1.
    Weighted(Vec<(f64, usize)>),
    /// (upper bound in ms, profile index); the last bound is infinite.
    Classes(Vec<(f64, usize)>),
}

impl Mapper {
    fn new(spec: &MappingSpec, env: &Env<'_>, at: &DocPath) -> Result<Mapper, ConfigError> {
        let mut profiles = Vec::new();
        let mut add = |name: &str, path: DocPath| -> Result<usize, ConfigError> {
            let p = env.book.get(name, &path)?;
            let reference = env
                .known
                .iter()
                .find(|d| d.name == p.reference_gpu)
                .cloned()
                .ok_or_else(|| {
                    ConfigError::at(
                        path.clone(),
                        format!("profile `{name}` names an unknown reference GPU `{}`", p.reference_gpu),
                    )
                })?;
            profiles.push((p, reference));
            Ok(profiles.len() - 1)
        };
        let rule = match spec {
            MappingSpec::Single { profile } => {
                add(profile, at.key("profile"))?;
                Rule::Single
            }
            MappingSpec::Weighted { profiles: weights } => {
                let total: f64 = weights.values().sum();
                if weights.is_empty() || !(total.is_finite() && total > 0.0) || weights.values().any(|w| *w < 0.0) {
                    return Err(ConfigError::at(
                        at.key("profiles"),
                        "needs profile = weight entries, weights ≥ 0 with a positive sum",
                    ));
                }
                let mut acc = 0.0;
                let mut cum = Vec::new();
                for (name, w) in weights {
                    let i = add(name, at.key("profiles").key(name))?;
                    acc += w / total;
                    cum.push((acc, i));
                }
                if let Some(last) = cum.last_mut() {
                    last.0 = 1.0;
                }
                Rule::Weighted(cum)
            }
            MappingSpec::DurationClass { classes } => {
                if classes.is_empty() {
                    return Err(ConfigError::at(at.key("classes"), "needs at least one class"));
                }
                let mut out = Vec::new();
                let mut prev = 0.0;
                for (k, c) in classes.iter().enumerate() {
                    let path = at.key("classes").index(k);
                    let bound = match (c.max_ms, k + 1 == classes.len()) {
                        (Some(m), true) => {
                            return Err(ConfigError::at(
                                path.key("max_ms"),
                                format!("the last class takes every slower function: leave out its max_ms (got {m})"),
                            ));
                        }
                        (Some(m), _) if m.is_finite() && m > prev => m,
                        (None, true) => f64::INFINITY,
                        (None, false) => return Err(ConfigError::at(path, "every class but the last needs max_ms")),
                        (Some(m), _) => {
                            return Err(ConfigError::at(
                                path.key("max_ms"),
                                format!("must be finite and above the previous class's {prev}, got {m}"),
                            ));
                        }
                    };
                    prev = bound;
                    out.push((bound, add(&c.profile, path.key("profile"))?));
                }
                Rule::Classes(out)
            }
        };
        Ok(Mapper { profiles, rule })
    }

    /// The profile index for a function with this key and mean duration.
    fn pick(&self, key: &str, mean_ms: Option<f64>) -> usize {
        match &self.rule {
            Rule::Single => 0,
            Rule::Weighted(cum) => {
                let u = stable_unit(key);
                cum.iter().find(|(c, _)| u < *c).or(cum.last()).expect("non-empty").1
            }
            Rule::Classes(classes) => match mean_ms {
                Some(ms) => {
                    classes
                        .iter()
                        .find(|(b, _)| ms <= *b)
                        .expect("last class is unbounded")
                        .1
                }
                None => classes.last().expect("non-empty").1,
            },
        }
    }
}

/// Short, unique, readable names from long hashes: `app[..8]-func[..8]`, made unique by a
/// suffix on the rare collision.
fn short_names<'a>(keys: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    keys.map(|(app, func)| {
        let cut = |s: &str| s.chars().take(8).collect::<String>();
        let base = format!("{}-{}", cut(app), cut(func));
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 { base } else { format!("{base}~{n}") }
    })
    .collect()
}

fn function(name: String, mapper: &Mapper, i: usize) -> Function {
    let (profile, reference) = &mapper.profiles[i];
    Function {
        name,
        profile: profile.clone(),
        reference: reference.clone(),
        rate_per_s: 0.0,
    }
}

/// Builds an Azure 2019 workload (read, or generated on the fly).
fn azure2019(spec: &WorkloadSpec, env: &Env<'_>, at: &DocPath) -> Result<Traced, BuildError> {
    let WorkloadSpec::Azure2019 {
        path,
        generate,
        spread,
        shift,
        durations,
        days,
        start_minute,
        minutes,
        select,
        target_rps,
        skip_bad_rows,
        mapping,
    } = spec
    else {
        unreachable!("an Azure 2019 workload")
    };
    let mapper = Mapper::new(mapping, env, &at.key("mapping"))?;
    select
        .check()
        .map_err(|(f, m)| ConfigError::at(at.key("select").key(f), m))?;
    let mut notes = Vec::new();
    let (paths, _generated): (Vec<std::path::PathBuf>, Option<TempDir>) = match (path, generate) {
        (Some(p), None) => (vec![env.base_dir.join(p)], None),
        (None, Some(cfg)) => {
            let dir = generated(cfg, &at.key("generate"))?;
            notes.push(format!(
                "azure2019: generated {} functions × {} day(s), seed {}",
                cfg.functions, cfg.days, cfg.seed
            ));
            (vec![dir.path().to_path_buf()], Some(dir))
        }
        _ => {
            return Err(ConfigError::at(
                at.clone(),
                "give either `path` (a trace directory or file) or `generate` (a synthetic trace)",
            )
            .into());
        }
    };
    if let Some([a, b]) = days {
        if *a == 0 || a > b {
            return Err(ConfigError::at(
                at.key("days"),
                format!("must be [first, last] with 1 ≤ first ≤ last, got [{a}, {b}]"),
            )
            .into());
        }
    }
    if *minutes == Some(0) {
        return Err(ConfigError::at(at.key("minutes"), "must be at least 1").into());
    }
    let files = azure2019::discover(&paths)?;
    let window = match (start_minute, minutes) {
        (None, None) => None,
        (s, m) => Some((s.unwrap_or(0), m.unwrap_or(u32::MAX / 2))),
    };
    let opts = ReadOptions {
        days: days.map(|[a, b]| (a, b)),
        window,
        skip_bad_rows: *skip_bad_rows,
    };
    let mut trace = azure2019::read(&files, &opts).map_err(|e| match e {
        TraceError::Selection { option, message } => ConfigError::at(at.key(option), message).into(),
        e => BuildError::Trace(e),
    })?;
    trace.functions = select.apply(std::mem::take(&mut trace.functions), env.seed);
    if trace.functions.is_empty() {
        return Err(ConfigError::at(
            at.clone(),
            "no function of the trace is left after the window and selection",
        )
        .into());
    }
    let total: u64 = trace.functions.iter().map(|f| f.total).sum();
    let window_s = f64::from(trace.window.1 - trace.window.0) * 60.0;
    let scale = match target_rps {
        Some(r) if r.is_finite() && *r > 0.0 => r * window_s / total as f64,
        Some(r) => {
            return Err(ConfigError::at(at.key("target_rps"), format!("must be a positive rate, got {r}")).into());
        }
        None => 1.0,
    };
    notes.push(format!(
        "azure2019: {} functions, {total} invocations in minutes [{}, {}) (rescaled ×{scale:.4})\n{}",
        trace.functions.len(),
        trace.window.0,
        trace.window.1,
        trace.report
    ));
    let names = short_names(
        trace
            .functions
            .iter()
            .map(|f| (f.key.app.as_str(), f.key.function.as_str())),
    );
    let functions = trace
        .functions
        .iter()
        .zip(names)
        .map(|(f, name)| {
            let key = format!("{}/{}/{}", f.key.owner, f.key.app, f.key.function);
            let mean_ms = f.durations.map(|d| d.average).filter(|a| *a > 0.0);
            function(name, &mapper, mapper.pick(&key, mean_ms))
        })
        .collect();
    let opts = StreamOptions {
        spread: *spread,
        shift: *shift,
        durations: *durations,
        scale,
        seed: env.seed,
    };
    Ok(Traced {
        functions,
        workload: Workload::Azure2019 {
            trace: Arc::new(trace),
            opts,
        },
        notes,
    })
}

/// Builds a trace workload.
pub(crate) fn build(spec: &WorkloadSpec, env: &Env<'_>) -> Result<Traced, BuildError> {
    let at = DocPath::default().key("workload");
    match spec {
        WorkloadSpec::Azure2019 { .. } => azure2019(spec, env, &at),
        WorkloadSpec::Azure2021 {
            path,
            chunk_rows,
            use_durations,
            skip_bad_rows,
            mapping,
        } => {
            let mapper = Mapper::new(mapping, env, &at.key("mapping"))?;
            if *chunk_rows == 0 {
                return Err(ConfigError::at(at.key("chunk_rows"), "must be at least 1").into());
            }
            let trace = azure2021::read(&env.base_dir.join(path), *chunk_rows, *skip_bad_rows)?;
            if trace.functions.is_empty() {
                return Err(ConfigError::at(at.key("path"), "the trace has no invocation").into());
            }
            let notes = vec![format!(
                "azure2021: {} functions; {}",
                trace.functions.len(),
                trace.report
            )];
            let names = short_names(trace.functions.iter().map(|f| (f.app.as_str(), f.func.as_str())));
            let functions = trace
                .functions
                .iter()
                .zip(names)
                .map(|(f, name)| {
                    let key = format!("{}/{}", f.app, f.func);
                    function(name, &mapper, mapper.pick(&key, Some(f.mean_duration_s * 1e3)))
                })
                .collect();
            Ok(Traced {
                functions,
                workload: Workload::Azure2021 {
                    trace: Arc::new(trace),
                    use_durations: *use_durations,
                },
                notes,
            })
        }
        WorkloadSpec::AzureLlm {
            path,
            model,
            skip_bad_rows,
        } => {
            let llms = builtin_llms();
            let m = llms.iter().find(|m| m.name == model).ok_or_else(|| {
                let names: Vec<&str> = llms.iter().map(|m| m.name).collect();
                ConfigError::at(
                    at.key("model"),
                    format!("unknown model `{model}`; built in: {}", names.join(", ")),
                )
            })?;
            let dev = &env.devices[0];
            let cost = m.cost_on(dev.mem_bandwidth_gbps, dev.tensor_tflops);
            let profile = FunctionProfile {
                description: format!("{} serving, one request at a time", m.name),
                source: format!("{}; token cost model in gpushare-traces llm.rs", m.source),
                reference_gpu: dev.name.clone(),
                weights_mib: m.weights_bytes() / MIB as f64,
                // KV cache for an 8,192-token context plus 1 GiB of workspace (assumed).
                activation_mib: m.kv_bytes_per_token() * 8192.0 / MIB as f64 + 1024.0,
                model_source: ModelSource::Storage,
                container_start_s: 0.5,
                framework_init_s: 4.5,
                host_pre_ms: 0.0,
                host_post_ms: 0.0,
                // One phase scaled to each request's modelled time; decode dominates, so it is
                // mostly bandwidth-bound: 80 % of peak DRAM throughput and 30 % SM throughput,
                // assumed (decode reads every weight once per token).
                phases: vec![Phase::Kernel(KernelPhase::new(1.0, 30.0, 80.0))],
                kernel_graph: None,
            };
            let notes = vec![format!(
                "azure_llm: {} on {}: prefill {:.3} ms/token, decode {:.3} ms/token, weights {:.0} MiB",
                m.name,
                dev.name,
                cost.prefill_ns_per_token / 1e6,
                cost.decode_ns_per_token / 1e6,
                profile.weights_mib
            )];
            let functions = vec![Function {
                name: "llm".into(),
                profile,
                reference: dev.clone(),
                rate_per_s: 0.0,
            }];
            Ok(Traced {
                functions,
                workload: Workload::AzureLlm {
                    path: env.base_dir.join(path),
                    cost,
                    skip_bad_rows: *skip_bad_rows,
                },
                notes,
            })
        }
        WorkloadSpec::Poisson { .. } | WorkloadSpec::Csv { .. } => unreachable!("not a trace workload"),
    }
}

fn generated(cfg: &GeneratorConfig, at: &DocPath) -> Result<TempDir, BuildError> {
    cfg.check().map_err(|(f, m)| ConfigError::at(at.key(f), m))?;
    let dir = TempDir::new("generated-trace").map_err(|source| TraceError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    cfg.write(dir.path()).map_err(|source| TraceError::Io {
        path: dir.path().to_path_buf(),
        source,
    })?;
    Ok(dir)
}
