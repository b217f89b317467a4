//! Functions: the profiles a scenario can name ([`ProfileBook`]), the `[[functions]]` of Poisson
//! and CSV workloads after `count` expansion (with their Zipf shares), and the check that a
//! profile fits a GPU of the cluster.

use super::Function;
use super::error::{ConfigError, DocPath};
use super::file::{FunctionSpec, ScenarioFile, WorkloadSpec};
use super::source::from_value;
use super::validate::{MAX_FUNCTION_COUNT, merged, non_negative, one_of};
use crate::catalog;
use crate::device::{self, DeviceSpec};
use crate::profile::FunctionProfile;
use std::collections::BTreeMap;

/// The profiles a scenario can name: `[profiles]` first, then the catalog.
pub(crate) struct ProfileBook {
    custom: BTreeMap<String, FunctionProfile>,
}

impl ProfileBook {
    pub(super) fn new(tables: &BTreeMap<String, toml::Table>) -> Result<ProfileBook, ConfigError> {
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
pub(super) fn check_fits(
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

/// The `[[functions]]` of a Poisson or CSV workload, after `count` expansion.
pub(super) fn explicit_functions(
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
        check_name_and_count(f, &at)?;
        let profile = book.resolve(&f.profile, &at.key("profile"))?;
        let reference = reference_device(&profile, known, &at)?;
        let rate = entry_rate(f, default_rate, is_csv, &at)?;
        check_fits(&profile, &reference, devices, storage_gbps, at.key("profile"))?;
        let shares = entry_shares(f, is_csv, &at)?;
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

/// A `[[functions]]` entry (at `at`) has a plain name and a count within bounds.
fn check_name_and_count(f: &FunctionSpec, at: &DocPath) -> Result<(), ConfigError> {
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
    Ok(())
}

/// The device `profile` was measured on, among the `known` ones.
fn reference_device(profile: &FunctionProfile, known: &[DeviceSpec], at: &DocPath) -> Result<DeviceSpec, ConfigError> {
    known
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
        })
}

/// An entry's arrival rate (all its copies together): its own, else the workload's; none with
/// a CSV workload.
fn entry_rate(f: &FunctionSpec, default_rate: Option<f64>, is_csv: bool, at: &DocPath) -> Result<f64, ConfigError> {
    match (f.rate_per_s, default_rate) {
        (Some(_), _) if is_csv => Err(ConfigError::at(
            at.key("rate_per_s"),
            "applies to Poisson workloads only; with kind = \"csv\" arrivals come from the file (remove it)",
        )),
        (Some(r), _) => non_negative(at.key("rate_per_s"), r),
        (None, Some(r)) => Ok(r),
        (None, None) if is_csv => Ok(0.0),
        (None, None) => Err(ConfigError::at(
            at.clone(),
            "no arrival rate: set rate_per_s here or in [workload]",
        )),
    }
}

/// Each copy's share of an entry's rate: equal, or by Zipf weights (`zipf_s`).
fn entry_shares(f: &FunctionSpec, is_csv: bool, at: &DocPath) -> Result<Vec<f64>, ConfigError> {
    match f.zipf_s {
        None => Ok(vec![1.0; f.count as usize]),
        Some(_) if is_csv => Err(ConfigError::at(
            at.key("zipf_s"),
            "applies to Poisson workloads only; with kind = \"csv\" arrivals come from the file (remove it)",
        )),
        Some(z) if !(z.is_finite() && z >= 0.0) => Err(ConfigError::at(
            at.key("zipf_s"),
            format!("must be a non-negative number (the Zipf exponent), got {z}"),
        )),
        Some(z) => Ok(zipf_shares(f.count, z)),
    }
}

/// Zipf(`s`) shares of `n` ranks: k^−s / Σ j^−s for k = 1..n.
fn zipf_shares(n: u32, s: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=n).map(|k| f64::from(k).powf(-s)).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}
