//! The cluster's devices: every GPU type a scenario can name (the built-ins, `[gpu_types]`,
//! measured profiles read from their files) and its GPUs placed on nodes.

use super::error::{ConfigError, DocPath};
use super::file::{GpuRef, ScenarioFile};
use super::source::from_value;
use super::validate::{MAX_GPUS, merged, one_of, positive};
use crate::device::{self, DeviceSpec};
use std::path::{Path, PathBuf};

/// The cluster as validated.
pub(super) struct Cluster {
    /// Every device type the scenario can name: the built-ins, `[gpu_types]` and the measured
    /// profiles the cluster loads.
    pub known: Vec<DeviceSpec>,
    /// The device types the cluster has, which `gpus` index.
    pub devices: Vec<DeviceSpec>,
    pub gpus: Vec<NodeDevice>,
    /// The device types loaded from measured profiles: name and file.
    pub device_profiles: Vec<(String, PathBuf)>,
    pub storage_gbps: f64,
}

/// `[cluster]`, with `[gpu_types]` and the measured profiles it names (relative to `base_dir`).
pub(super) fn cluster(spec: &ScenarioFile, base_dir: &Path) -> Result<Cluster, ConfigError> {
    let mut known = resolve_devices(spec)?;
    let mut device_profiles = Vec::new();
    let c = &spec.cluster;
    let cl = DocPath::default().key("cluster");
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
            ));
        }
    }
    let (devices, gpus) = place_gpus(groups, &known, spec.simulation.allow_large, &cl)?;
    Ok(Cluster {
        known,
        devices,
        gpus,
        device_profiles,
        storage_gbps,
    })
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
