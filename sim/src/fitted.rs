//! The fitted parameters: `validation/fitted.toml`, written by `gpushare fit` from the
//! calibration rows of `validation/measurements.csv` only, compiled into the binary and read
//! once. The built-in devices take their contention coefficients and time-slicing costs from
//! it, and the catalog the kernel figures of the profiles whose published numbers are curves
//! rather than profiler readings (FaST-GShare's, DenseNet-121's).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The committed file, as compiled in.
pub const FITTED_TOML: &str = include_str!("../../validation/fitted.toml");

/// Device coefficients beyond datasheet values (see [`crate::contention`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCoefficients {
    pub dram_queueing: f64,
    pub l2_contention: f64,
    pub time_slice_ms: f64,
    pub context_switch_us: f64,
}

impl DeviceCoefficients {
    /// Gives `device` these coefficients.
    pub fn apply_to(&self, device: &mut crate::device::DeviceSpec) {
        device.dram_queueing = self.dram_queueing;
        device.l2_contention = self.l2_contention;
        device.time_slice_ms = self.time_slice_ms;
        device.context_switch_us = self.context_switch_us;
    }
}

/// A workload's fitted figures: its kernel phase's time alone and SM throughput, and its host
/// time, each present when fitted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedProfile {
    pub solo_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_pre_ms: Option<f64>,
}

/// The whole file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fitted {
    pub device: DeviceCoefficients,
    /// How each device coefficient was obtained (fitted on which rows, or assumed and why).
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    pub profiles: BTreeMap<String, FittedProfile>,
}

impl Fitted {
    /// Parses a fitted file (errors give the line and column).
    pub fn parse(text: &str) -> Result<Fitted, String> {
        let f: Fitted = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        f.check()?;
        Ok(f)
    }

    /// Every value a finite, non-negative number (a NaN would silently poison every
    /// prediction), solo times positive.
    fn check(&self) -> Result<(), String> {
        let d = &self.device;
        for (name, v) in [
            ("dram_queueing", d.dram_queueing),
            ("l2_contention", d.l2_contention),
            ("time_slice_ms", d.time_slice_ms),
            ("context_switch_us", d.context_switch_us),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "[device] {name}: expected a finite, non-negative number, got {v}"
                ));
            }
        }
        for (name, p) in &self.profiles {
            let bad = !(p.solo_ms.is_finite() && p.solo_ms > 0.0)
                || p.sm_pct.is_some_and(|v| !(v.is_finite() && v > 0.0 && v <= 100.0))
                || p.host_pre_ms.is_some_and(|v| !(v.is_finite() && v >= 0.0));
            if bad {
                return Err(format!(
                    "[profiles.{name}]: expected solo_ms > 0, sm_pct in (0, 100] and host_pre_ms ≥ 0, all finite; got {p:?}"
                ));
            }
        }
        Ok(())
    }

    /// Reads and parses the fitted file at `path` (errors name it).
    pub fn load(path: &std::path::Path) -> Result<Fitted, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Fitted::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The committed fit.
pub fn committed() -> &'static Fitted {
    static FIT: OnceLock<Fitted> = OnceLock::new();
    FIT.get_or_init(|| Fitted::parse(FITTED_TOML).unwrap_or_else(|e| panic!("validation/fitted.toml is invalid: {e}")))
}

/// The committed device coefficients.
pub fn device() -> DeviceCoefficients {
    committed().device
}

/// The committed fit of catalog profile `name`: (solo_ms, sm_pct, host_pre_ms), the host time
/// 0 when not fitted.
pub fn profile(name: &str) -> (f64, f64, f64) {
    let p = committed()
        .profiles
        .get(name)
        .unwrap_or_else(|| panic!("validation/fitted.toml has no [profiles.{name}]"));
    let sm = p
        .sm_pct
        .unwrap_or_else(|| panic!("validation/fitted.toml: [profiles.{name}] has no sm_pct"));
    (p.solo_ms, sm, p.host_pre_ms.unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_fit_parses() {
        let f = super::committed();
        assert!(f.device.time_slice_ms > 0.0);
        assert!(!f.profiles.is_empty());
    }
}
