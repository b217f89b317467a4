//! Prediction against measurement (`gpushare compare SIM_DIR REPLAY_DIR`): the simulator's runs
//! beside the replay's, policy by policy, metric by metric — p50 and p99 end-to-end latency,
//! throughput, mean GPU utilisation and peak memory — with the relative error and, for the
//! first three, the target the validation holds the simulator to (10 %, 20 %, 5 %).
//!
//! Each directory is a run directory (with `summary.json`) or a directory of them (one level
//! down, e.g. one per policy); runs pair up by scenario and policy name. A replay directory made
//! by the emulated backend (`replay.json` says so) is flagged: its figures are the plan's.

use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// A metric compared, with the path of its figure in `summary.json` and its target.
pub struct Metric {
    pub name: &'static str,
    pub path: &'static [&'static str],
    /// Largest relative error the validation accepts, if it sets one.
    pub target: Option<f64>,
}

/// The metrics, in table order.
pub const METRICS: [Metric; 5] = [
    Metric {
        name: "p50_latency_s",
        path: &["latency_s", "end_to_end", "p50"],
        target: Some(0.10),
    },
    Metric {
        name: "p99_latency_s",
        path: &["latency_s", "end_to_end", "p99"],
        target: Some(0.20),
    },
    Metric {
        name: "throughput_per_s",
        path: &["throughput_per_s"],
        target: Some(0.05),
    },
    Metric {
        name: "gpu_utilisation",
        path: &["gpu", "utilisation_mean"],
        target: None,
    },
    Metric {
        name: "peak_memory_mib",
        path: &["gpu", "peak_memory_mib"],
        target: None,
    },
];

/// One run found in a directory.
#[derive(Clone, Debug)]
pub struct FoundRun {
    pub dir: PathBuf,
    pub scenario: String,
    pub policy: String,
    pub summary: Value,
    /// From `replay.json`, where there is one: `cuda` or `emulated`.
    pub backend: Option<String>,
}

fn read_run(dir: &Path) -> Result<Option<FoundRun>, String> {
    let path = dir.join("summary.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let summary: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not a summary: {e}", path.display()))?;
    let field = |k: &str| {
        summary[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: no `{k}` (is it a gpushare summary?)", path.display()))
    };
    let backend = std::fs::read_to_string(dir.join("replay.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["backend"].as_str().map(str::to_string));
    Ok(Some(FoundRun {
        dir: dir.to_path_buf(),
        scenario: field("scenario")?,
        policy: field("policy")?,
        summary,
        backend,
    }))
}

/// The runs in `dir`: itself, or its subdirectories (sorted by name).
pub fn find_runs(dir: &Path) -> Result<Vec<FoundRun>, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    if let Some(r) = read_run(dir)? {
        return Ok(vec![r]);
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut out = Vec::new();
    for d in subdirs {
        if let Some(r) = read_run(&d)? {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no summary.json in it or in its subdirectories (give a `gpushare run` or `gpushare replay` output directory, or their parent)",
            dir.display()
        ));
    }
    Ok(out)
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub policy: String,
    pub metric: &'static str,
    pub predicted: f64,
    pub measured: f64,
    /// (predicted − measured) / measured; NaN where either is missing or measured is 0.
    pub rel_error: f64,
    pub target: Option<f64>,
}

impl Row {
    /// `Some(true)` when within target, `Some(false)` when not, `None` without a target or a
    /// figure.
    pub fn met(&self) -> Option<bool> {
        let t = self.target?;
        if self.rel_error.is_nan() {
            return None;
        }
        Some(self.rel_error.abs() <= t)
    }
}

fn figure(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for k in path {
        at = &at[*k];
    }
    at.as_f64().unwrap_or(f64::NAN)
}

/// Pairs the runs and compares them. Runs without a partner are named in the second list.
pub fn compare(sim: &[FoundRun], replay: &[FoundRun]) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut unpaired = Vec::new();
    for r in replay {
        let Some(p) = sim.iter().find(|s| s.scenario == r.scenario && s.policy == r.policy) else {
            unpaired.push(format!(
                "replay {} ({} / {}) has no simulation",
                r.dir.display(),
                r.scenario,
                r.policy
            ));
            continue;
        };
        for m in &METRICS {
            let (predicted, measured) = (figure(&p.summary, m.path), figure(&r.summary, m.path));
            let rel_error = if measured == 0.0 || measured.is_nan() || predicted.is_nan() {
                f64::NAN
            } else {
                (predicted - measured) / measured
            };
            rows.push(Row {
                scenario: r.scenario.clone(),
                policy: r.policy.clone(),
                metric: m.name,
                predicted,
                measured,
                rel_error,
                target: m.target,
            });
        }
    }
    for s in sim {
        if !replay.iter().any(|r| r.scenario == s.scenario && r.policy == s.policy) {
            unpaired.push(format!(
                "simulation {} ({} / {}) has no replay",
                s.dir.display(),
                s.scenario,
                s.policy
            ));
        }
    }
    (rows, unpaired)
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// The rows as a Markdown table, with a closing line on the targets.
pub fn markdown(rows: &[Row], emulated: bool) -> String {
    let mut out = String::new();
    if emulated {
        out.push_str("**The replay was emulated (no GPU): its figures are the plan's timings, not measurements.**\n\n");
    }
    out.push_str("| scenario | policy | metric | predicted | measured | error | target | |\n|---|---|---|---:|---:|---:|---:|---|\n");
    for r in rows {
        let err = if r.rel_error.is_nan() {
            "–".to_string()
        } else {
            format!("{:+.1} %", 100.0 * r.rel_error)
        };
        let target = r.target.map_or(String::new(), |t| format!("±{:.0} %", 100.0 * t));
        let mark = match r.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {err} | {target} | {mark} |",
            r.scenario,
            r.policy,
            r.metric,
            num(r.predicted),
            num(r.measured)
        );
    }
    let judged: Vec<bool> = rows.iter().filter_map(Row::met).collect();
    let _ = writeln!(
        out,
        "\n{} of {} targeted figures within target (p50 ±10 %, p99 ±20 %, throughput ±5 %; error = (predicted − measured) / measured).",
        judged.iter().filter(|m| **m).count(),
        judged.len()
    );
    out
}

/// The rows as CSV: `scenario,policy,metric,predicted,measured,rel_error,target,met`.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("scenario,policy,metric,predicted,measured,rel_error,target,met\n");
    let f = |v: f64| if v.is_nan() { String::new() } else { format!("{v}") };
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.scenario,
            r.policy,
            r.metric,
            f(r.predicted),
            f(r.measured),
            f(r.rel_error),
            r.target.map_or(String::new(), |t| format!("{t}")),
            r.met().map_or(String::new(), |m| m.to_string())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(policy: &str, p50: f64, p99: f64, tput: f64) -> FoundRun {
        FoundRun {
            dir: PathBuf::from(policy),
            scenario: "s".into(),
            policy: policy.into(),
            summary: json!({
                "scenario": "s", "policy": policy, "throughput_per_s": tput,
                "latency_s": {"end_to_end": {"p50": p50, "p99": p99}},
                "gpu": {"utilisation_mean": 0.5, "peak_memory_mib": null}
            }),
            backend: None,
        }
    }

    #[test]
    fn runs_pair_by_policy_and_errors_are_relative_to_the_measurement() {
        let sim = vec![run("mps", 0.11, 0.30, 10.0), run("kaas", 1.0, 1.0, 1.0)];
        let rep = vec![run("mps", 0.10, 0.24, 10.4)];
        let (rows, unpaired) = compare(&sim, &rep);
        assert_eq!(rows.len(), METRICS.len());
        assert!((rows[0].rel_error - 0.1).abs() < 1e-9);
        assert_eq!(rows[0].met(), Some(true));
        assert!((rows[1].rel_error - 0.25).abs() < 1e-9);
        assert_eq!(rows[1].met(), Some(false));
        assert_eq!(rows[2].met(), Some(true));
        // Peak memory not measured: no error, no verdict.
        assert!(rows[4].rel_error.is_nan() && rows[4].met().is_none());
        assert_eq!(unpaired.len(), 1);
        assert!(unpaired[0].contains("kaas"));
        let md = markdown(&rows, false);
        assert!(
            md.contains("| s | mps | p99_latency_s | 0.3000 | 0.2400 | +25.0 % | ±20 % | **missed** |"),
            "{md}"
        );
        assert!(md.contains("2 of 3 targeted figures within target"));
        let c = csv(&rows);
        assert_eq!(c.lines().count(), 1 + METRICS.len());
        assert!(c.contains("s,mps,peak_memory_mib,,,,,"));
    }
}
