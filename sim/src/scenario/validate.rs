//! Validation: from the deserialised schema ([`ScenarioFile`]) to a [`Scenario`] — the bounds of
//! `[simulation]` and `[output]`, the cluster ([`devices`]), the functions
//! ([`functions`](super::functions)) or the trace's ([`traced`]), the policy's name and the
//! scenario's own.

use super::devices::{self, Cluster};
use super::error::{ConfigError, DocPath};
use super::file::{self, OutputSpec, ScenarioFile, WorkloadSpec};
use super::functions::{ProfileBook, check_fits, explicit_functions};
use super::traced::{self, BuildError, Traced};
use super::{Function, PolicySpec, Scenario, Workload};
use crate::profile::FunctionProfile;
use crate::time::secs_to_ns;
use std::path::Path;

/// Merges `overlay` onto the `base` value (both tables), overlay keys winning.
pub(super) fn merged(base: toml::Value, overlay: &toml::Table) -> toml::Value {
    let mut t = match base {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    };
    for (k, v) in overlay {
        if k != "base" {
            t.insert(k.clone(), v.clone());
        }
    }
    toml::Value::Table(t)
}

/// The longest horizon a scenario may ask for, seconds: about 31 years, far inside the
/// nanosecond clock's 584 years, so no time near it saturates.
pub const MAX_HORIZON_S: f64 = gpushare_traces::MAX_SECONDS;
/// The shortest: a microsecond (a shorter one rounds to no time at all).
pub const MIN_HORIZON_S: f64 = 1e-6;
/// The finest `timeseries_s`, seconds, and the most samples a time series may have per GPU.
pub const MIN_TIMESERIES_S: f64 = 1e-3;
pub const MAX_TIMESERIES_POINTS: f64 = 1e7;
/// The most arrivals a Poisson workload may be expected to bring (Σ rate × load_scale ×
/// horizon) without `simulation.allow_large = true`: about ten minutes of simulation at the
/// engine's measured rate, five times a whole Azure day.
pub const MAX_EXPECTED_ARRIVALS: f64 = 2e9;
/// The most GPUs a cluster may have without `simulation.allow_large = true`.
pub const MAX_GPUS: u64 = 1 << 20;

/// The most copies one `[[functions]]` entry's `count` may make.
pub const MAX_FUNCTION_COUNT: u32 = 1_000_000;

/// Refuses a Poisson workload expected to bring more than [`MAX_EXPECTED_ARRIVALS`], blaming the
/// field that makes it so: the load scale if the rates alone would fit, else the fastest
/// function's rate if it alone would not, else the horizon.
/// `entries` are the `[[functions]]` entries' counts, which `functions` expands in order.
fn check_expected_arrivals(
    functions: &[Function],
    entries: &[u32],
    load_scale: f64,
    horizon_s: f64,
    root: &DocPath,
) -> Result<(), ConfigError> {
    let rates: f64 = functions.iter().map(|f| f.rate_per_s).sum();
    let expected = rates * load_scale * horizon_s;
    if expected <= MAX_EXPECTED_ARRIVALS {
        return Ok(());
    }
    let fastest = functions
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.rate_per_s.total_cmp(&b.1.rate_per_s))
        .map(|(i, f)| (i, f.rate_per_s));
    let sim = root.key("simulation");
    let at = if rates * horizon_s <= MAX_EXPECTED_ARRIVALS {
        sim.key("load_scale")
    } else if let Some((i, _)) = fastest.filter(|(_, r)| r * horizon_s > MAX_EXPECTED_ARRIVALS) {
        // The entry that expanded into function i.
        let mut before = 0usize;
        let entry = entries
            .iter()
            .position(|&c| {
                before += c as usize;
                i < before
            })
            .unwrap_or(0);
        root.key("functions").index(entry).key("rate_per_s")
    } else {
        sim.key("horizon_s")
    };
    Err(ConfigError::at(
        at,
        format!(
            "about {expected:.3e} arrivals expected (the functions' rate_per_s × load_scale × horizon_s); a run may bring at \
             most {MAX_EXPECTED_ARRIVALS:e} (about ten minutes of simulation) without `simulation.allow_large = true`"
        ),
    ))
}

/// A scenario's name names its default output folder (`out/<name>`): one plain path component.
fn check_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        Err(format!(
            "`{}`: a scenario's name is its default output folder out/<name>, so it must be one plain folder name \
             (no `/`, `\\`, `..` or control characters)",
            name.escape_debug()
        ))
    }
}

pub(super) fn positive(path: DocPath, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::at(path, format!("must be a positive number, got {v}")))
    }
}

pub(super) fn non_negative(path: DocPath, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::at(path, format!("must be a non-negative number, got {v}")))
    }
}

pub(super) fn one_of(names: impl Iterator<Item = String>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// `[simulation]`'s horizon and warm-up, seconds: the horizon within [`MIN_HORIZON_S`,
/// `MAX_HORIZON_S`], the warm-up shorter than it.
fn horizon_and_warmup(simulation: &file::SimulationSpec, sim: &DocPath) -> Result<(f64, f64), ConfigError> {
    let horizon_s = positive(sim.key("horizon_s"), simulation.horizon_s)?;
    if horizon_s < MIN_HORIZON_S {
        return Err(ConfigError::at(
            sim.key("horizon_s"),
            format!("must be at least {MIN_HORIZON_S:e} s (a microsecond), got {horizon_s:e}"),
        ));
    }
    if horizon_s > MAX_HORIZON_S {
        return Err(ConfigError::at(
            sim.key("horizon_s"),
            format!(
                "must be at most {MAX_HORIZON_S:e} s (about 31 years; times are whole nanoseconds), got {horizon_s:e}"
            ),
        ));
    }
    let warmup_s = non_negative(sim.key("warmup_s"), simulation.warmup_s)?;
    if warmup_s >= horizon_s {
        return Err(ConfigError::at(
            sim.key("warmup_s"),
            format!("must be shorter than horizon_s ({horizon_s} s), got {warmup_s}"),
        ));
    }
    Ok((horizon_s, warmup_s))
}

/// `[output]`: a folder that is one, a time series of a sensible size, a timeline window.
fn check_output(output: &OutputSpec, out: &DocPath, horizon_s: f64) -> Result<(), ConfigError> {
    if output.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(ConfigError::at(
            out.key("dir"),
            "must name a folder (an empty one would write into the current folder); leave it out for out/<name>",
        ));
    }
    if let Some(v) = output.timeseries_s {
        let v = positive(out.key("timeseries_s"), v)?;
        if v < MIN_TIMESERIES_S || horizon_s / v > MAX_TIMESERIES_POINTS {
            return Err(ConfigError::at(
                out.key("timeseries_s"),
                format!(
                    "must be at least {MIN_TIMESERIES_S} s and give at most {MAX_TIMESERIES_POINTS:e} samples over horizon_s \
                     ({horizon_s} s), i.e. at least {} s; got {v}",
                    (horizon_s / MAX_TIMESERIES_POINTS).max(MIN_TIMESERIES_S)
                ),
            ));
        }
    }
    if let Some([a, b]) = output.timeline_window_s
        && !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b)
    {
        return Err(ConfigError::at(
            out.key("timeline_window_s"),
            format!("must be [start_s, end_s] with 0 ≤ start < end, got [{a}, {b}]"),
        ));
    }
    Ok(())
}

/// A CSV workload's file: named, and not a folder.
fn csv_workload(path: &Path, skip_bad_rows: bool, base_dir: &Path, at: DocPath) -> Result<Workload, ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::at(
            at,
            "must name a CSV file of arrivals (time,func[,duration])",
        ));
    }
    let full = base_dir.join(path);
    if full.is_dir() {
        return Err(ConfigError::at(
            at,
            format!(
                "{} is a directory; expected a CSV file of arrivals (time,func[,duration])",
                full.display()
            ),
        ));
    }
    Ok(Workload::Csv {
        path: full,
        skip_bad_rows,
    })
}

/// Validates `spec` (its paths relative to `base_dir`; named `default_name` unless it says) into
/// a scenario.
pub(super) fn build(spec: ScenarioFile, base_dir: &Path, default_name: String) -> Result<Scenario, BuildError> {
    let root = DocPath::default();
    let sim = root.key("simulation");
    let (horizon_s, warmup_s) = horizon_and_warmup(&spec.simulation, &sim)?;
    let load_scale = positive(sim.key("load_scale"), spec.simulation.load_scale)?;
    let slo = match spec.simulation.slo_s {
        Some(v) => Some(secs_to_ns(positive(sim.key("slo_s"), v)?)),
        None => None,
    };
    check_output(&spec.output, &root.key("output"), horizon_s)?;
    let cluster = devices::cluster(&spec, base_dir)?;
    let Traced {
        functions,
        workload,
        notes,
    } = functions_and_workload(&spec, &cluster, base_dir)?;
    let policy = policy_spec(spec.policy, root.key("policy"))?;
    if matches!(workload, Workload::Poisson) && !spec.simulation.allow_large {
        let entries: Vec<u32> = spec.functions.iter().map(|f| f.count).collect();
        check_expected_arrivals(&functions, &entries, load_scale, horizon_s, &root)?;
    }
    let name_of_scenario = spec.name.unwrap_or(default_name);
    check_name(&name_of_scenario).map_err(|msg| ConfigError::at(root.key("name"), msg))?;
    Ok(Scenario {
        name: name_of_scenario,
        description: spec.description,
        seed: spec.simulation.seed,
        horizon: secs_to_ns(horizon_s),
        warmup: secs_to_ns(warmup_s),
        drain: spec.simulation.drain,
        load_scale,
        slo,
        devices: cluster.devices,
        device_profiles: cluster.device_profiles,
        gpus: cluster.gpus,
        storage_gbps: cluster.storage_gbps,
        functions,
        workload,
        policy,
        output: spec.output,
        notes,
    })
}

/// The functions and where their arrivals come from: listed in the scenario (a Poisson or CSV
/// workload), or taken from a trace.
fn functions_and_workload(spec: &ScenarioFile, cluster: &Cluster, base_dir: &Path) -> Result<Traced, BuildError> {
    let root = DocPath::default();
    let book = ProfileBook::new(&spec.profiles)?;
    let explicit = matches!(spec.workload, WorkloadSpec::Poisson { .. } | WorkloadSpec::Csv { .. });
    if !explicit {
        return from_trace(spec, &book, cluster, base_dir);
    }
    let functions = explicit_functions(spec, &book, &cluster.known, &cluster.devices, cluster.storage_gbps)?;
    let workload = match &spec.workload {
        WorkloadSpec::Csv { path, skip_bad_rows } => {
            csv_workload(path, *skip_bad_rows, base_dir, root.key("workload").key("path"))?
        }
        _ => Workload::Poisson,
    };
    Ok(Traced {
        functions,
        workload,
        notes: Vec::new(),
    })
}

/// A trace workload's functions, workload and notes; every mapped profile must fit.
fn from_trace(
    spec: &ScenarioFile,
    book: &ProfileBook,
    cluster: &Cluster,
    base_dir: &Path,
) -> Result<Traced, BuildError> {
    let root = DocPath::default();
    if !spec.functions.is_empty() {
        return Err(ConfigError::at(
            root.key("functions"),
            "a trace workload takes its functions from the trace: remove [[functions]] and map them with [workload.mapping]",
        )
        .into());
    }
    let env = traced::Env {
        book,
        devices: &cluster.devices,
        known: &cluster.known,
        base_dir,
        seed: spec.simulation.seed,
    };
    let t = traced::build(&spec.workload, &env)?;
    // Every mapped profile must fit; checked once per distinct profile.
    let mut checked: Vec<&FunctionProfile> = Vec::new();
    for f in &t.functions {
        if !checked.contains(&&f.profile) {
            check_fits(
                &f.profile,
                &f.reference,
                &cluster.devices,
                cluster.storage_gbps,
                root.key("workload").key("mapping"),
            )?;
            checked.push(&f.profile);
        }
    }
    Ok(t)
}

/// The policy's name and parameters, from `[policy]` at `pol` (the policy itself is checked by
/// the registry).
fn policy_spec(mut params: toml::Table, pol: DocPath) -> Result<PolicySpec, ConfigError> {
    let name = match params.remove("name") {
        Some(toml::Value::String(n)) => n,
        Some(_) => {
            return Err(ConfigError::at(
                pol.key("name"),
                "must be a string (see `gpushare policies`)",
            ));
        }
        None => return Err(ConfigError::at(pol, "missing field `name` (see `gpushare policies`)")),
    };
    Ok(PolicySpec { name, params })
}
