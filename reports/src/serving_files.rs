//! A serving run's files: `summary.json`, `invocations.csv` (one row per request, when kept),
//! `latency_cdf.csv` (TTFT, TPOT and end-to-end at each quantile) and the figure
//! `figures/ttft_tpot_cdf.{svg,png}`. Every file is written under a temporary name and renamed.

use crate::atomic::write_atomic;
use crate::plot::chart::{Figure, Markers, Panel, Point, Series, render};
use crate::plot::style::Width;
use gpushare_sim::serving::ServingRun;
use gpushare_sim::time::ns_to_secs;
use std::fmt::Write;
use std::io;
use std::path::Path;

const REQUESTS_HEADER: &str = "id,deployment,instance,arrival_s,prompt_tokens,output_tokens,outcome,ttft_s,tpot_s,e2e_s,preemptions,cold,slo_met\n";

/// Writes `run`'s files into `dir` (created if needed); a `invocations.csv` from an earlier run is
/// removed when this one keeps no records.
pub fn write_serving(dir: &Path, run: &ServingRun) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut json = serde_json::to_string_pretty(&run.summary).map_err(io::Error::other)?;
    json.push('\n');
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    let requests = dir.join("invocations.csv");
    if run.records.is_empty() {
        if requests.exists() {
            std::fs::remove_file(&requests)?;
        }
    } else {
        write_atomic(&requests, requests_csv(run).as_bytes())?;
    }
    let mut cdf = String::from("quantile,ttft_s,tpot_s,e2e_s\n");
    // A quantile without values (no request had two tokens: no TPOT) is left empty.
    let value = |v: f64| if v.is_finite() { v.to_string() } else { String::new() };
    for &(q, a, b, c) in &run.cdf {
        let _ = writeln!(cdf, "{q},{},{},{}", value(a), value(b), value(c));
    }
    write_atomic(&dir.join("latency_cdf.csv"), cdf.as_bytes())?;
    if !run.cdf.is_empty() {
        let figures = dir.join("figures");
        std::fs::create_dir_all(&figures)?;
        render(&cdf_figure(&run.summary.scenario, &run.cdf), &figures).map_err(io::Error::other)?;
    }
    Ok(())
}

fn requests_csv(run: &ServingRun) -> String {
    let mut out = String::from(REQUESTS_HEADER);
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for r in &run.records {
        let outcome = if r.end.is_some() { "completed" } else { "refused" };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{outcome},{},{},{},{},{},{}",
            r.id,
            run.deployment_names[r.deployment],
            r.instance.map(|i| i.to_string()).unwrap_or_default(),
            ns_to_secs(r.arrival),
            r.prompt_tokens,
            r.output_tokens,
            opt(r.ttft().map(ns_to_secs)),
            opt(r.tpot().map(|t| t / 1e9)),
            opt(r.e2e().map(ns_to_secs)),
            r.preemptions,
            r.cold,
            r.slo_met
        );
    }
    out
}

/// `gpushare plot` of a serving run's directory: the TTFT and TPOT CDFs again, from its
/// `latency_cdf.csv`, into `out`.
pub fn replot(dir: &Path, out: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")?)
        .map_err(|e| format!("{}: {e}", dir.join("summary.json").display()))?;
    let name = summary["scenario"].as_str().unwrap_or("run").to_string();
    let mut cdf = Vec::new();
    for (i, line) in read("latency_cdf.csv")?.lines().enumerate().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.trim().parse().unwrap_or(f64::NAN)).collect();
        if v.len() != 4 || v[0].is_nan() {
            return Err(format!(
                "{}:{}: expected quantile,ttft_s,tpot_s,e2e_s",
                dir.join("latency_cdf.csv").display(),
                i + 1
            ));
        }
        cdf.push((v[0], v[1], v[2], v[3]));
    }
    if cdf.is_empty() {
        return Err(format!("{}: no request completed: nothing to plot", dir.display()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    render(&cdf_figure(&name, &cdf), out)
}

/// TTFT and TPOT CDFs, two panels.
fn cdf_figure(name: &str, cdf: &[(f64, f64, f64, f64)]) -> Figure {
    let panel = |label: &str, pick: fn(&(f64, f64, f64, f64)) -> f64| Panel {
        x_label: format!("{label} (s)"),
        y_label: "fraction of requests".into(),
        x_log: true,
        y_log: false,
        y_from_zero: true,
        x_categories: None,
        series: vec![Series {
            label: name.to_string(),
            style: 0,
            points: cdf
                .iter()
                .filter(|c| pick(c) > 0.0 && pick(c).is_finite())
                .map(|c| Point {
                    x: pick(c),
                    y: c.0,
                    err: None,
                })
                .collect(),
            markers: Markers::Spread(8),
        }],
    };
    Figure {
        name: "ttft_tpot_cdf".into(),
        width: Width::Double,
        panels: vec![
            panel("time to first token", |c| c.1),
            panel("time per output token", |c| c.2),
        ],
        letters: true,
    }
}
