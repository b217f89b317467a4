//! The model a fidelity run predicts with: the workloads of `validation/workloads.toml` (catalog
//! profiles, or profiles described there), with their fitted kernel figures and the device
//! coefficients taken from a [`Fitted`] — the committed `validation/fitted.toml`, or a
//! candidate while fitting.

use gpushare_sim::catalog;
use gpushare_sim::device::{DeviceSpec, builtin_device};
use gpushare_sim::fitted::{DeviceCoefficients, Fitted, FittedProfile};
use gpushare_sim::profile::{FunctionProfile, KernelPhase, ModelSource, Phase};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A fitted figure of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    SoloMs,
    SmPct,
    HostPreMs,
}

/// One workload as `workloads.toml` states it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadDef {
    #[serde(default)]
    pub catalog: bool,
    pub fit: Vec<Param>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source: String,
    pub reference_gpu: Option<String>,
    #[serde(default)]
    pub weights_mib: f64,
    #[serde(default)]
    pub activation_mib: f64,
    pub dram_pct: Option<f64>,
    /// A stated (not fitted) SM throughput.
    pub sm_pct: Option<f64>,
    pub blocks: Option<u32>,
    pub threads_per_block: Option<u32>,
    pub occupancy_pct: Option<f64>,
}

/// Workloads and fitted values together.
#[derive(Clone, Debug)]
pub struct Model {
    pub workloads: BTreeMap<String, WorkloadDef>,
    pub fitted: Fitted,
}

impl Model {
    /// Reads `workloads.toml` and pairs it with `fitted`.
    pub fn load(workloads: &Path, fitted: Fitted) -> Result<Model, String> {
        let text = std::fs::read_to_string(workloads).map_err(|e| format!("{}: {e}", workloads.display()))?;
        let defs: BTreeMap<String, WorkloadDef> =
            toml::from_str(&text).map_err(|e| format!("{}: {}", workloads.display(), e.to_string().trim_end()))?;
        for (name, d) in &defs {
            let bad = |m: &str| Err(format!("{}: [{name}]: {m}", workloads.display()));
            if d.catalog && catalog::builtin_profile(name).is_none() {
                return bad("no catalog profile has this name");
            }
            if d.catalog && d.fit.is_empty() && fitted.profiles.contains_key(name) {
                return bad("its catalog figures are fitted (validation/fitted.toml): say which in `fit`");
            }
            if !d.catalog && (d.reference_gpu.is_none() || d.dram_pct.is_none()) {
                return bad("a workload that is not in the catalog states reference_gpu and dram_pct");
            }
            if !d.catalog && !d.fit.contains(&Param::SoloMs) {
                return bad("a workload that is not in the catalog fits solo_ms");
            }
            if !d.catalog && d.sm_pct.is_none() && !d.fit.contains(&Param::SmPct) {
                return bad("state sm_pct or fit it");
            }
        }
        Ok(Model {
            workloads: defs,
            fitted,
        })
    }

    /// A device with the model's coefficients.
    pub fn device(&self, name: &str) -> Result<DeviceSpec, String> {
        let mut d = builtin_device(name).ok_or_else(|| format!("unknown device `{name}`"))?;
        self.fitted.device.apply_to(&mut d);
        Ok(d)
    }

    /// The model's device coefficients.
    pub fn coefficients(&self) -> &DeviceCoefficients {
        &self.fitted.device
    }

    /// The fitted figures of `name` (all its `fit` parameters must be there).
    fn fitted_of(&self, name: &str, def: &WorkloadDef) -> Result<FittedProfile, String> {
        if def.fit.is_empty() {
            return Ok(FittedProfile {
                solo_ms: 0.0,
                sm_pct: None,
                host_pre_ms: None,
            });
        }
        self.fitted
            .profiles
            .get(name)
            .copied()
            .ok_or_else(|| format!("the fit has no [profiles.{name}]; run `gpushare fit`"))
    }

    /// Workload `name`'s profile and the device its figures were measured on.
    pub fn profile(&self, name: &str) -> Result<(FunctionProfile, DeviceSpec), String> {
        let def = self
            .workloads
            .get(name)
            .ok_or_else(|| format!("unknown workload `{name}` (validation/workloads.toml)"))?;
        let fit = self.fitted_of(name, def)?;
        let profile = if def.catalog {
            let mut p = catalog::builtin_profile(name).expect("checked when loaded");
            apply(&mut p, def, &fit)?;
            p
        } else {
            let kernel = KernelPhase {
                solo_ms: fit.solo_ms,
                sm_pct: def.sm_pct.or(fit.sm_pct).unwrap_or(0.0),
                dram_pct: def.dram_pct.unwrap_or(0.0),
                blocks: def.blocks,
                threads_per_block: def.threads_per_block,
                occupancy_pct: def.occupancy_pct,
                l2_mib: None,
            };
            let mut p = FunctionProfile {
                description: def.description.clone(),
                source: def.source.clone(),
                reference_gpu: def.reference_gpu.clone().unwrap_or_default(),
                weights_mib: def.weights_mib,
                activation_mib: def.activation_mib,
                model_source: ModelSource::Host,
                container_start_s: 0.0,
                framework_init_s: 0.0,
                host_pre_ms: 0.0,
                host_post_ms: 0.0,
                phases: vec![Phase::Kernel(kernel)],
                kernel_graph: None,
            };
            apply(&mut p, def, &fit)?;
            p
        };
        profile
            .check()
            .map_err(|(f, m)| format!("workload `{name}`: {f}: {m}"))?;
        let reference = self.device(&profile.reference_gpu)?;
        Ok((profile, reference))
    }
}

/// Puts the fitted figures into the profile's one kernel phase (and host time).
fn apply(p: &mut FunctionProfile, def: &WorkloadDef, fit: &FittedProfile) -> Result<(), String> {
    let kernels: Vec<&mut KernelPhase> = p
        .phases
        .iter_mut()
        .filter_map(|ph| match ph {
            Phase::Kernel(k) => Some(k),
            _ => None,
        })
        .collect();
    if !def.fit.is_empty() && kernels.len() != 1 {
        return Err("a fitted workload has exactly one kernel phase".into());
    }
    let missing = |what: &str| format!("the fit has no {what}; run `gpushare fit`");
    for k in kernels {
        for param in &def.fit {
            match param {
                Param::SoloMs => k.solo_ms = fit.solo_ms,
                Param::SmPct => k.sm_pct = fit.sm_pct.ok_or_else(|| missing("sm_pct"))?,
                Param::HostPreMs => {}
            }
        }
    }
    if def.fit.contains(&Param::HostPreMs) {
        p.host_pre_ms = fit.host_pre_ms.ok_or_else(|| missing("host_pre_ms"))?;
    }
    Ok(())
}
