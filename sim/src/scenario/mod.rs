//! Scenario files: loading, `--set` overrides, validation, and located error messages.
//!
//! A scenario is read in three passes. The text is parsed as TOML; `--set key.path=value`
//! overrides are applied to the parsed table; the table is deserialised into the schema of
//! [`file`](mod@file) and then checked field by field. Any error carries the path of the field at fault,
//! which is resolved against the original text to a file, line and column with the offending
//! line underlined — or, if the field came from `--set`, to that override.

pub mod error;
pub mod file;
mod locate;
mod refine;
mod traced;

pub use error::{ConfigError, DocPath, ScenarioError, Seg};
pub use file::OutputSpec;

use crate::catalog;
use crate::device::{self, DeviceSpec};
use crate::profile::FunctionProfile;
use crate::time::{Nanos, secs_to_ns};
use file::{GpuRef, ScenarioFile, WorkloadSpec};
use gpushare_traces::azure2019::{Azure2019, Azure2019Stream, StreamOptions};
use gpushare_traces::azure2021::{Azure2021, Azure2021Stream};
use gpushare_traces::llm::{LlmCost, LlmSource};
use gpushare_traces::{ArrivalSource, Compressed, PlainCsvSource, PoissonSource, TraceError};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deserialises `value` into `T`, reporting errors with paths under `prefix`.
pub fn from_value<T: DeserializeOwned>(value: toml::Value, prefix: &DocPath) -> Result<T, ConfigError> {
    // Kept to find the key an error concerns: serde cannot see inside tagged enums.
    let original = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = prefix.clone();
        let mut inner = DocPath::default();
        for seg in e.path().iter() {
            let s = match seg {
                serde_path_to_error::Segment::Map { key } => Seg::Key(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Seg::Index(*index),
                _ => continue,
            };
            inner.0.push(s.clone());
            path.0.push(s);
        }
        // toml appends "in `table`" lines; the path already says where.
        let message = e.inner().to_string().lines().next().unwrap_or_default().to_string();
        if let Some(below) = refine::refine(&original, &inner, &message) {
            path.0.extend(below);
        }
        let at_key = message.starts_with("unknown field");
        ConfigError { path, message, at_key }
    })
}

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

/// A scenario file's text and the overrides given on the command line.
#[derive(Clone)]
pub struct ScenarioSource {
    pub file: PathBuf,
    pub text: String,
    /// Overrides in order: where each came from (`--set key=value`), its path and value.
    overrides: Vec<(String, DocPath, toml::Value)>,
}

impl ScenarioSource {
    /// Reads `file`.
    pub fn load(file: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Io {
            file: file.to_owned(),
            source,
        })?;
        Ok(ScenarioSource {
            file: file.to_owned(),
            text,
            overrides: Vec::new(),
        })
    }

    /// A scenario from text (for tests and generated scenarios); `file` names it in errors.
    pub fn from_text(file: &Path, text: &str) -> Self {
        ScenarioSource {
            file: file.to_owned(),
            text: text.to_string(),
            overrides: Vec::new(),
        }
    }

    /// Adds a `key.path=value` override. The value is read as a TOML value (`3`, `1.5`, `true`,
    /// `"text"`, `[1, 2]`); anything that is not valid TOML is taken as a string.
    pub fn set(&mut self, assignment: &str) -> Result<(), ScenarioError> {
        let bad = |what: &str| ScenarioError::Set {
            file: self.file.clone(),
            set: format!("--set {assignment}"),
            what: what.to_string(),
        };
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE, e.g. policy.keep_alive_s=60"))?;
        let path = DocPath::parse(key.trim())
            .ok_or_else(|| bad("the key must be a dotted path such as simulation.seed or functions[0].rate_per_s"))?;
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        self.overrides.push((format!("--set {assignment}"), path, value));
        Ok(())
    }

    /// Adds an override of `key` (a dotted path) with `value`; errors it causes name `origin`
    /// (e.g. "\[sweep\] axis `policy`, value 2").
    pub fn set_value(&mut self, origin: &str, key: &str, value: toml::Value) -> Result<(), ScenarioError> {
        let path = DocPath::parse(key.trim()).ok_or_else(|| ScenarioError::Set {
            file: self.file.clone(),
            set: origin.to_string(),
            what: format!("`{key}` is not a dotted path such as simulation.seed or functions[0].rate_per_s"),
        })?;
        self.overrides.push((origin.to_string(), path, value));
        Ok(())
    }

    /// A fingerprint of what this source simulates: its file's text and its overrides, and the
    /// tool's version (FNV-1a, 64 bits, the same on every platform). A sweep resumed with
    /// `--resume` reuses a run whose recorded fingerprint is this one. Trace files the scenario
    /// names are not read: a trace changed in place is not noticed.
    pub fn fingerprint(&self) -> String {
        use std::hash::Hasher;
        let mut h = gpushare_traces::rng::Fnv1a::default();
        let mut eat = |bytes: &[u8]| {
            h.write(bytes);
            h.write(&[0xff]);
        };
        eat(env!("CARGO_PKG_VERSION").as_bytes());
        eat(self.text.as_bytes());
        for (_, path, value) in &self.overrides {
            eat(path.to_string().as_bytes());
            eat(value.to_string().as_bytes());
        }
        let h = h.finish();
        format!("{h:016x}")
    }

    /// Where each override came from, in order (`--set key=value`, sweep axis values).
    pub fn override_origins(&self) -> Vec<&str> {
        self.overrides.iter().map(|(o, _, _)| o.as_str()).collect()
    }

    /// Resolves a [`ConfigError`] to the file location (or the `--set`) it concerns.
    pub fn locate(&self, err: ConfigError) -> ScenarioError {
        let what = format!("{}: {}", err.path, err.message);
        // An override's error lies under the key it sets, or is about that key itself (a key the
        // scenario has no place for: `unknown field` at one of its ancestors).
        let from_override = |p: &DocPath| err.path.starts_with(p) || (err.at_key && p.starts_with(&err.path));
        if let Some((raw, _, _)) = self.overrides.iter().rev().find(|(_, p, _)| from_override(p)) {
            return ScenarioError::Set {
                file: self.file.clone(),
                set: raw.clone(),
                what,
            };
        }
        let doc = self.text.parse::<toml_edit::Document<String>>();
        match doc.ok().and_then(|d| locate::locate(&d, &err.path, err.at_key)) {
            Some(span) => {
                let (line, column) = locate::line_col(&self.text, span.start);
                ScenarioError::At {
                    file: self.file.clone(),
                    line,
                    column,
                    what,
                    snippet: locate::snippet(&self.text, &span),
                }
            }
            None => ScenarioError::File {
                file: self.file.clone(),
                what,
            },
        }
    }

    /// Parses, applies overrides and validates.
    pub fn parse(&self) -> Result<Scenario, ScenarioError> {
        let mut table: toml::Table = toml::from_str(&self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = locate::line_col(&self.text, span.start);
            ScenarioError::At {
                file: self.file.clone(),
                line,
                column,
                what: format!("invalid TOML: {}", e.message().trim_end()),
                snippet: locate::snippet(&self.text, &span),
            }
        })?;
        for (raw, path, value) in &self.overrides {
            apply_override(&mut table, path, value.clone()).map_err(|what| ScenarioError::Set {
                file: self.file.clone(),
                set: raw.clone(),
                what,
            })?;
        }
        let spec: ScenarioFile =
            from_value(toml::Value::Table(table), &DocPath::default()).map_err(|e| self.locate(e))?;
        let base_dir = self.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let default_name = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        build(spec, &base_dir, default_name).map_err(|e| match e {
            traced::BuildError::Config(c) => self.locate(c),
            traced::BuildError::Trace(t) => ScenarioError::Trace(t.to_string()),
        })
    }
}

/// Sets `value` at `path` in `table`, creating missing tables on the way.
fn apply_override(table: &mut toml::Table, path: &DocPath, value: toml::Value) -> Result<(), String> {
    let mut cur = table;
    let segs = &path.0;
    let mut i = 0;
    while i < segs.len() {
        let Seg::Key(key) = &segs[i] else {
            return Err(format!("`{path}`: an index must follow a key"));
        };
        let last = i + 1 == segs.len();
        if last {
            cur.insert(key.clone(), value);
            return Ok(());
        }
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let next = match (&segs[i + 1], entry) {
            (Seg::Index(n), toml::Value::Array(items)) => {
                let len = items.len();
                if i + 2 == segs.len() {
                    let slot = items
                        .get_mut(*n)
                        .ok_or_else(|| format!("`{path}`: index {n} is out of range ({len} entries)"))?;
                    *slot = value;
                    return Ok(());
                }
                i += 1;
                items
                    .get_mut(*n)
                    .ok_or_else(|| format!("`{path}`: index {n} is out of range ({len} entries)"))?
            }
            (Seg::Index(_), _) => return Err(format!("`{path}`: `{key}` is not a list")),
            (Seg::Key(_), v) => v,
        };
        cur = next
            .as_table_mut()
            .ok_or_else(|| format!("`{path}`: cannot set a field inside a non-table value"))?;
        i += 1;
    }
    Ok(())
}

/// Merges `overlay` onto the `base` value (both tables), overlay keys winning.
fn merged(base: toml::Value, overlay: &toml::Table) -> toml::Value {
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

fn positive(path: DocPath, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::at(path, format!("must be a positive number, got {v}")))
    }
}

fn non_negative(path: DocPath, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::at(path, format!("must be a non-negative number, got {v}")))
    }
}

fn one_of(names: impl Iterator<Item = String>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// Resolves every device name the scenario can use: the built-ins plus `[gpu_types]`.
fn resolve_devices(spec: &ScenarioFile) -> Result<Vec<DeviceSpec>, ConfigError> {
    let mut all = device::builtin_devices();
    for (name, table) in &spec.gpu_types {
        let path = DocPath::default().key("gpu_types").key(name);
        let base = match table.get("base") {
            None => toml::Value::Table(toml::Table::new()),
            Some(toml::Value::String(b)) => match all.iter().find(|d| &d.name == b) {
                Some(d) => toml::Value::try_from(d).expect("device specs serialise"),
                None => {
                    return Err(ConfigError::at(
                        path.key("base"),
                        format!(
                            "unknown GPU `{b}`; valid: {}",
                            one_of(all.iter().map(|d| d.name.clone()))
                        ),
                    ));
                }
            },
            Some(_) => return Err(ConfigError::at(path.key("base"), "must be the name of a GPU")),
        };
        let mut dev: DeviceSpec = from_value(merged(base, table), &path)?;
        dev.name = name.clone();
        dev.check()
            .map_err(|(field, msg)| ConfigError::at(path.key(field), msg))?;
        all.retain(|d| &d.name != name);
        all.push(dev);
    }
    Ok(all)
}

/// The device name of `gpu`; a measured profile is read from its file (relative to the scenario)
/// and added to `known` under its `[device] name` (default: the file's stem).
fn gpu_name(
    gpu: &GpuRef,
    at: &DocPath,
    base_dir: &Path,
    known: &mut Vec<DeviceSpec>,
    profiles: &mut Vec<(String, PathBuf)>,
) -> Result<String, ConfigError> {
    let profile = match gpu {
        GpuRef::Name(n) => return Ok(n.clone()),
        GpuRef::Profile(p) => &p.profile,
    };
    let at = at.key("profile");
    let path = base_dir.join(profile);
    let bad = |what: String| ConfigError::at(at.clone(), format!("{}: {what}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read the device profile: {e}")))?;
    let mut file: toml::Table =
        toml::from_str(&text).map_err(|e| bad(format!("invalid TOML: {}", e.message().trim_end())))?;
    let Some(toml::Value::Table(mut table)) = file.remove("device") else {
        return Err(bad(
            "no [device] table (a profile written by `gpushare calibrate` has one)".into(),
        ));
    };
    let base = match table.remove("base") {
        None => toml::Value::Table(toml::Table::new()),
        Some(toml::Value::String(b)) => match known.iter().find(|d| d.name == b) {
            Some(d) => toml::Value::try_from(d).expect("device specs serialise"),
            None => return Err(bad(format!("device.base: unknown GPU `{b}`"))),
        },
        Some(_) => return Err(bad("device.base: must be the name of a GPU".into())),
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "measured".into());
    let mut dev: DeviceSpec = merged(base, &table)
        .try_into()
        .map_err(|e: toml::de::Error| bad(format!("[device]: {}", e.message().trim_end())))?;
    if dev.name.is_empty() {
        dev.name = stem;
    }
    dev.check()
        .map_err(|(field, msg)| bad(format!("device.{field}: {msg}")))?;
    known.retain(|d| d.name != dev.name);
    let name = dev.name.clone();
    known.push(dev);
    profiles.retain(|(n, _)| *n != name);
    profiles.push((name.clone(), path));
    Ok(name)
}

/// The profiles a scenario can name: `[profiles]` first, then the catalog.
pub(crate) struct ProfileBook {
    custom: BTreeMap<String, FunctionProfile>,
}

impl ProfileBook {
    fn new(tables: &BTreeMap<String, toml::Table>) -> Result<ProfileBook, ConfigError> {
        let mut book = ProfileBook {
            custom: BTreeMap::new(),
        };
        for (name, table) in tables {
            let path = DocPath::default().key("profiles").key(name);
            let p = book.resolve(&toml::Value::Table(table.clone()), &path)?;
            book.custom.insert(name.clone(), p);
        }
        Ok(book)
    }

    fn names(&self) -> String {
        one_of(
            self.custom
                .keys()
                .cloned()
                .chain(catalog::builtin_profiles().into_iter().map(|(n, _)| n.to_string())),
        )
    }

    /// The profile called `name`, or an error at `path` listing the valid names.
    pub(crate) fn get(&self, name: &str, path: &DocPath) -> Result<FunctionProfile, ConfigError> {
        self.custom
            .get(name)
            .cloned()
            .or_else(|| catalog::builtin_profile(name))
            .ok_or_else(|| {
                ConfigError::at(
                    path.clone(),
                    format!("unknown profile `{name}`; known: {}", self.names()),
                )
            })
    }

    /// A profile given as a name or as a table (optionally with `base = "name"`).
    fn resolve(&self, value: &toml::Value, path: &DocPath) -> Result<FunctionProfile, ConfigError> {
        if let Some((i, field, msg)) = crate::profile::legacy_kernel_field(value) {
            return Err(ConfigError::at(path.key("phases").index(i).key(field), msg));
        }
        let profile = match value {
            toml::Value::String(name) => self.get(name, path)?,
            toml::Value::Table(t) => {
                let base = match t.get("base") {
                    None => toml::Value::Table(toml::Table::new()),
                    Some(toml::Value::String(b)) => {
                        toml::Value::try_from(self.get(b, &path.key("base"))?).expect("profiles serialise")
                    }
                    Some(_) => return Err(ConfigError::at(path.key("base"), "must be the name of a profile")),
                };
                from_value(merged(base, t), path)?
            }
            _ => {
                return Err(ConfigError::at(
                    path.clone(),
                    format!("must be a profile name (one of: {}) or a profile table", self.names()),
                ));
            }
        };
        profile.check().map_err(|(field, msg)| {
            ConfigError::at(path.join(&DocPath::parse(&field).expect("valid field path")), msg)
        })?;
        Ok(profile)
    }
}

/// Checks that `profile` fits, alone, on at least one GPU type of the cluster.
fn check_fits(
    profile: &FunctionProfile,
    reference: &DeviceSpec,
    devices: &[DeviceSpec],
    storage_gbps: f64,
    at: DocPath,
) -> Result<(), ConfigError> {
    for (i, phase) in profile.phases.iter().enumerate() {
        if let crate::profile::Phase::Kernel(k) = phase {
            k.check_on(reference)
                .map_err(|(field, msg)| ConfigError::at(at.key("phases").index(i).key(field), msg))?;
        }
    }
    if devices
        .iter()
        .any(|d| profile.compile(reference, d, storage_gbps).footprint() <= d.memory_bytes())
    {
        return Ok(());
    }
    let biggest = devices
        .iter()
        .max_by(|a, b| a.memory_mib.total_cmp(&b.memory_mib))
        .expect("at least one device");
    let need = profile.compile(reference, biggest, storage_gbps).footprint() as f64 / device::MIB as f64;
    Err(ConfigError::at(
        at,
        format!(
            "needs {need:.0} MiB (context + weights + activations) but the largest GPU in the cluster, {}, has {:.0} MiB",
            biggest.name, biggest.memory_mib
        ),
    ))
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

/// A GPU as (node, index into the scenario's device types).
type NodeDevice = (u32, usize);

/// The cluster's device types and its GPUs as (node, device index), from its node groups
/// (count, GPUs per node, GPU name, where it is written).
fn place_gpus(
    groups: Vec<(u32, u32, String, DocPath)>,
    known: &[DeviceSpec],
    allow_large: bool,
    cl: &DocPath,
) -> Result<(Vec<DeviceSpec>, Vec<NodeDevice>), ConfigError> {
    let mut devices: Vec<DeviceSpec> = Vec::new();
    let mut gpus = Vec::new();
    let mut node = 0u32;
    let total_gpus: u64 = groups.iter().map(|(n, g, _, _)| u64::from(*n) * u64::from(*g)).sum();
    if total_gpus > MAX_GPUS && !allow_large {
        return Err(ConfigError::at(
            cl.clone(),
            format!(
                "{total_gpus} GPUs: a run may have at most {MAX_GPUS} without `simulation.allow_large = true` \
                 (each GPU has state and summary rows of its own)"
            ),
        ));
    }
    for (count, per_node, gpu, at) in groups {
        let count_key = if at == *cl { "nodes" } else { "count" };
        if count == 0 {
            return Err(ConfigError::at(at.key(count_key), "must be at least 1"));
        }
        if per_node == 0 {
            return Err(ConfigError::at(at.key("gpus_per_node"), "must be at least 1"));
        }
        let dev = known.iter().find(|d| d.name == gpu).ok_or_else(|| {
            ConfigError::at(
                at.key("gpu"),
                format!(
                    "unknown GPU `{gpu}`; valid: {} (or define it under [gpu_types.{gpu}])",
                    one_of(known.iter().map(|d| d.name.clone()))
                ),
            )
        })?;
        let ix = match devices.iter().position(|d| d.name == gpu) {
            Some(ix) => ix,
            None => {
                devices.push(dev.clone());
                devices.len() - 1
            }
        };
        for _ in 0..count {
            for _ in 0..per_node {
                gpus.push((node, ix));
            }
            node += 1;
        }
    }
    Ok((devices, gpus))
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

fn build(spec: ScenarioFile, base_dir: &Path, default_name: String) -> Result<Scenario, traced::BuildError> {
    let root = DocPath::default();
    let sim = root.key("simulation");
    let (horizon_s, warmup_s) = horizon_and_warmup(&spec.simulation, &sim)?;
    let load_scale = positive(sim.key("load_scale"), spec.simulation.load_scale)?;
    let slo = match spec.simulation.slo_s {
        Some(v) => Some(secs_to_ns(positive(sim.key("slo_s"), v)?)),
        None => None,
    };
    check_output(&spec.output, &root.key("output"), horizon_s)?;

    // Devices and cluster layout.
    let mut known = resolve_devices(&spec)?;
    let mut device_profiles = Vec::new();
    let c = &spec.cluster;
    let cl = root.key("cluster");
    let storage_gbps = positive(cl.key("storage_gbps"), c.storage_gbps)?;
    let mut groups: Vec<(u32, u32, String, DocPath)> = Vec::new();
    match (c.nodes, c.gpus_per_node, &c.gpu, c.node_groups.is_empty()) {
        (Some(n), Some(g), Some(gpu), true) => {
            let name = gpu_name(gpu, &cl.key("gpu"), base_dir, &mut known, &mut device_profiles)?;
            groups.push((n, g, name, cl.clone()))
        }
        (None, None, None, false) => {
            for (i, ng) in c.node_groups.iter().enumerate() {
                let at = cl.key("node_groups").index(i);
                let name = gpu_name(&ng.gpu, &at.key("gpu"), base_dir, &mut known, &mut device_profiles)?;
                groups.push((ng.count, ng.gpus_per_node, name, at));
            }
        }
        _ => {
            return Err(ConfigError::at(
                cl,
                "give either `nodes`, `gpus_per_node` and `gpu`, or a list of [[cluster.node_groups]] (count, gpus_per_node, gpu)",
            ).into());
        }
    }
    let (devices, gpus) = place_gpus(groups, &known, spec.simulation.allow_large, &cl)?;

    // Functions: listed in the scenario, or taken from a trace.
    let book = ProfileBook::new(&spec.profiles)?;
    let explicit = matches!(spec.workload, WorkloadSpec::Poisson { .. } | WorkloadSpec::Csv { .. });
    let (functions, workload, notes) = if explicit {
        let functions = explicit_functions(&spec, &book, &known, &devices, storage_gbps)?;
        let workload = match &spec.workload {
            WorkloadSpec::Csv { path, skip_bad_rows } => {
                csv_workload(path, *skip_bad_rows, base_dir, root.key("workload").key("path"))?
            }
            _ => Workload::Poisson,
        };
        (functions, workload, Vec::new())
    } else {
        if !spec.functions.is_empty() {
            return Err(ConfigError::at(
                root.key("functions"),
                "a trace workload takes its functions from the trace: remove [[functions]] and map them with [workload.mapping]",
            )
            .into());
        }
        let env = traced::Env {
            book: &book,
            devices: &devices,
            known: &known,
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
                    &devices,
                    storage_gbps,
                    root.key("workload").key("mapping"),
                )?;
                checked.push(&f.profile);
            }
        }
        (t.functions, t.workload, t.notes)
    };

    // Policy name and parameters (the policy itself is checked by the registry).
    let pol = root.key("policy");
    let mut params = spec.policy;
    let name = match params.remove("name") {
        Some(toml::Value::String(n)) => n,
        Some(_) => {
            return Err(ConfigError::at(pol.key("name"), "must be a string (see `gpushare policies`)").into());
        }
        None => return Err(ConfigError::at(pol, "missing field `name` (see `gpushare policies`)").into()),
    };

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
        devices,
        device_profiles,
        gpus,
        storage_gbps,
        functions,
        workload,
        policy: PolicySpec { name, params },
        output: spec.output,
        notes,
    })
}

/// The `[[functions]]` of a Poisson or CSV workload, after `count` expansion.
fn explicit_functions(
    spec: &ScenarioFile,
    book: &ProfileBook,
    known: &[DeviceSpec],
    devices: &[DeviceSpec],
    storage_gbps: f64,
) -> Result<Vec<Function>, ConfigError> {
    let root = DocPath::default();
    if spec.functions.is_empty() {
        return Err(ConfigError::at(
            root.key("functions"),
            "at least one [[functions]] entry is needed",
        ));
    }
    let default_rate = match &spec.workload {
        WorkloadSpec::Poisson { rate_per_s } => *rate_per_s,
        _ => None,
    };
    let is_csv = matches!(spec.workload, WorkloadSpec::Csv { .. });
    if let Some(r) = default_rate {
        non_negative(root.key("workload").key("rate_per_s"), r)?;
    }
    let mut functions: Vec<Function> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, f) in spec.functions.iter().enumerate() {
        let at = root.key("functions").index(i);
        if f.name.is_empty() {
            return Err(ConfigError::at(at.key("name"), "must not be empty"));
        }
        if f.name.chars().any(char::is_control) {
            return Err(ConfigError::at(
                at.key("name"),
                format!(
                    "`{}`: a function's name is a field of every output row: no control characters",
                    f.name.escape_debug()
                ),
            ));
        }
        if f.count == 0 || f.count > MAX_FUNCTION_COUNT {
            return Err(ConfigError::at(
                at.key("count"),
                format!(
                    "must be 1 to {MAX_FUNCTION_COUNT} (each copy is a function with tables of its own), got {}",
                    f.count
                ),
            ));
        }
        let profile = book.resolve(&f.profile, &at.key("profile"))?;
        let reference = known
            .iter()
            .find(|d| d.name == profile.reference_gpu)
            .cloned()
            .ok_or_else(|| {
                ConfigError::at(
                    at.key("profile").key("reference_gpu"),
                    format!(
                        "unknown GPU `{}`; valid: {}",
                        profile.reference_gpu,
                        one_of(known.iter().map(|d| d.name.clone()))
                    ),
                )
            })?;
        let rate = match (f.rate_per_s, default_rate) {
            (Some(_), _) if is_csv => {
                return Err(ConfigError::at(
                    at.key("rate_per_s"),
                    "applies to Poisson workloads only; with kind = \"csv\" arrivals come from the file (remove it)",
                ));
            }
            (Some(r), _) => non_negative(at.key("rate_per_s"), r)?,
            (None, Some(r)) => r,
            (None, None) if is_csv => 0.0,
            (None, None) => {
                return Err(ConfigError::at(
                    at,
                    "no arrival rate: set rate_per_s here or in [workload]",
                ));
            }
        };
        check_fits(&profile, &reference, devices, storage_gbps, at.key("profile"))?;
        let shares = match f.zipf_s {
            None => vec![1.0; f.count as usize],
            Some(_) if is_csv => {
                return Err(ConfigError::at(
                    at.key("zipf_s"),
                    "applies to Poisson workloads only; with kind = \"csv\" arrivals come from the file (remove it)",
                ));
            }
            Some(z) if !(z.is_finite() && z >= 0.0) => {
                return Err(ConfigError::at(
                    at.key("zipf_s"),
                    format!("must be a non-negative number (the Zipf exponent), got {z}"),
                ));
            }
            Some(z) => zipf_shares(f.count, z),
        };
        let width = (f.count - 1).to_string().len();
        for k in 0..f.count {
            let name = if f.count == 1 {
                f.name.clone()
            } else {
                format!("{}-{k:0width$}", f.name)
            };
            if !seen.insert(name.clone()) {
                return Err(ConfigError::at(
                    at.key("name"),
                    format!("function `{name}` is defined twice"),
                ));
            }
            functions.push(Function {
                name,
                profile: profile.clone(),
                reference: reference.clone(),
                rate_per_s: rate * shares[k as usize],
            });
        }
    }
    Ok(functions)
}

/// Zipf(`s`) shares of `n` ranks: k^−s / Σ j^−s for k = 1..n.
fn zipf_shares(n: u32, s: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=n).map(|k| f64::from(k).powf(-s)).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}
