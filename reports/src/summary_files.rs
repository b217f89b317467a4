//! `summary.json` and `summary.csv`.
//!
//! `summary.json` is the [`Summary`] as it is. `summary.csv` is the same content in long form,
//! one figure per row — `scope,metric,value` — ready for pandas or polars: scope `all` for
//! run-wide figures (nested names joined with dots, e.g. `latency_s.end_to_end.p99`),
//! `gpu:<id>` for each GPU listed, `gpu_type:<device>` for each device type and
//! `function:<name>` for each function.

use crate::atomic::write_atomic;
use gpushare_sim::Summary;
use serde_json::Value;
use std::io;
use std::path::Path;

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The long-form CSV text of a summary.
pub fn summary_csv(summary: &Summary) -> String {
    let v = serde_json::to_value(summary).expect("summaries serialise");
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let Value::Object(top) = v else {
        unreachable!("a summary is an object")
    };
    for (k, v) in &top {
        match (k.as_str(), v) {
            ("gpus" | "functions" | "gpu_types", Value::Array(items)) => {
                let (scope_kind, id_field) = match k.as_str() {
                    "gpus" => ("gpu", "id"),
                    "gpu_types" => ("gpu_type", "device"),
                    _ => ("function", "name"),
                };
                for item in items {
                    let id = match &item[id_field] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let mut fields = Vec::new();
                    flatten("", item, &mut fields);
                    for (metric, value) in fields.into_iter().filter(|(m, _)| m != id_field) {
                        rows.push((format!("{scope_kind}:{id}"), metric, value));
                    }
                }
            }
            _ => {
                let mut fields = Vec::new();
                flatten(k, v, &mut fields);
                rows.extend(fields.into_iter().map(|(m, val)| ("all".to_string(), m, val)));
            }
        }
    }
    let mut out = String::from("scope,metric,value\n");
    for (scope, metric, value) in rows {
        out.push_str(&format!(
            "{},{},{}\n",
            csv_field(&scope),
            csv_field(&metric),
            csv_field(&value)
        ));
    }
    out
}

/// The run-wide numeric figures of a summary, by their `summary.csv` names (scope `all`), in
/// the summary's order: the metrics of a sweep.
pub fn summary_metrics(summary: &Summary) -> Vec<(String, f64)> {
    summary_metrics_of(&serde_json::to_value(summary).expect("summaries serialise"))
}

/// [`summary_metrics`] of a summary read back from its `summary.json` (the same figures: a
/// float is written in its shortest form that reads back exactly).
pub fn summary_metrics_of(summary: &Value) -> Vec<(String, f64)> {
    let Some(top) = summary.as_object() else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    for (k, v) in top {
        // `seed` is a run's identity, not a figure: sweeps write it exactly in its own column
        // (as a float here it lost digits, and `runs.csv` had two columns called `seed`).
        if !matches!(
            k.as_str(),
            "seed" | "gpus" | "gpu_types" | "functions" | "policy_report" | "workload_report"
        ) {
            flatten(k, v, &mut fields);
        }
    }
    fields
        .into_iter()
        .filter_map(|(name, value)| value.parse::<f64>().ok().map(|x| (name, x)))
        .collect()
}

/// Writes `summary.json` and `summary.csv` into `dir`.
pub fn write_summary(dir: &Path, summary: &Summary) -> io::Result<()> {
    let mut json = serde_json::to_string_pretty(summary).map_err(io::Error::other)?;
    json.push('\n');
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    write_atomic(&dir.join("summary.csv"), summary_csv(summary).as_bytes())
}
