//! `gpushare check`: regression checks of policy metrics against a baseline, for CI.
//!
//! Each scenario of a directory (`scenarios/ci/` by default) runs as a sweep — its `[sweep]`
//! axes, typically the policies it compares — and each (scenario, point, metric) is compared
//! with the baseline CSV (`scenario,point,metric,value`; a point is named by its axis values,
//! `policy=kaas`, or `-` without axes; values are means over the point's seeds). A metric has a
//! direction (is higher better or worse?) and a tolerance: the change is a regression when it
//! is worse than `max(rel × |baseline|, abs)`, and an improvement when it is better by as
//! much. Defaults ([`DEFAULT_TOLERANCES`]) can be overridden per metric with `--tolerance
//! metric=rel`.
//!
//! The outcome is a Markdown table of what moved and an exit code: 0 when nothing regressed,
//! 1 when something did (or a baseline row has no counterpart any more: coverage lost), 2 on
//! bad input (a scenario, the baseline file, a tolerance). `--update` writes the current values
//! as the new baseline instead of comparing.

use crate::sweep::stats::aggregate;
use crate::sweep::table::RunRow;
use crate::sweep::{Options, PolicyBuilder, SweepError, plan, run_in_memory, spec::SweepSpec};
use gpushare_sim::ScenarioSource;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Whether a larger value is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// A checked metric: its `summary.csv` name, direction, relative and absolute tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub metric: &'static str,
    pub better: Better,
    pub rel: f64,
    pub abs: f64,
}

/// The metrics checked by default, with their tolerances. Simulations are deterministic, so any
/// change comes from the code or the scenarios; the tolerances say how much of a change is
/// worth failing a build for.
pub const DEFAULT_TOLERANCES: [Tolerance; 8] = [
    Tolerance {
        metric: "throughput_per_s",
        better: Better::Higher,
        rel: 0.02,
        abs: 0.01,
    },
    Tolerance {
        metric: "latency_s.end_to_end.mean",
        better: Better::Lower,
        rel: 0.05,
        abs: 1e-4,
    },
    Tolerance {
        metric: "latency_s.end_to_end.p50",
        better: Better::Lower,
        rel: 0.05,
        abs: 1e-4,
    },
    Tolerance {
        metric: "latency_s.end_to_end.p99",
        better: Better::Lower,
        rel: 0.10,
        abs: 1e-4,
    },
    Tolerance {
        metric: "cold_start_ratio",
        better: Better::Lower,
        rel: 0.10,
        abs: 0.002,
    },
    Tolerance {
        metric: "slo_violation_ratio",
        better: Better::Lower,
        rel: 0.10,
        abs: 0.002,
    },
    Tolerance {
        metric: "counts.rejected",
        better: Better::Lower,
        rel: 0.05,
        abs: 1.0,
    },
    Tolerance {
        metric: "gpu.gpu_seconds_allocated",
        better: Better::Lower,
        rel: 0.05,
        abs: 0.1,
    },
];

/// One measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub scenario: String,
    pub point: String,
    pub metric: String,
    pub value: f64,
}

/// How one baseline row compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Regressed,
    Missing,
    Improved,
    New,
}

/// The comparison.
pub struct Report {
    /// Rows that moved (or are missing or new), regressions first.
    pub moved: Vec<(Verdict, Value, Option<f64>, f64)>,
    pub checked: usize,
}

impl Report {
    /// How many values regressed and how many went missing.
    pub fn failures(&self) -> (usize, usize) {
        let count = |want: Verdict| self.moved.iter().filter(|(v, ..)| *v == want).count();
        (count(Verdict::Regressed), count(Verdict::Missing))
    }

    /// The failing rows, `verdict scenario point metric`, the first `n` of them.
    pub fn failing(&self, n: usize) -> Vec<String> {
        self.moved
            .iter()
            .filter(|(v, ..)| matches!(v, Verdict::Regressed | Verdict::Missing))
            .take(n)
            .map(|(v, x, ..)| {
                format!(
                    "{} {} {} {}",
                    if *v == Verdict::Missing { "missing" } else { "regressed" },
                    x.scenario,
                    x.point,
                    x.metric
                )
            })
            .collect()
    }

    /// True when the check fails.
    pub fn failed(&self) -> bool {
        self.moved
            .iter()
            .any(|(v, ..)| matches!(v, Verdict::Regressed | Verdict::Missing))
    }

    /// The Markdown table and a one-line summary.
    pub fn markdown(&self) -> String {
        let count = |v: Verdict| self.moved.iter().filter(|(x, ..)| *x == v).count();
        let mut out = format!(
            "{} values checked: {} regressed, {} missing, {} improved, {} new.\n",
            self.checked,
            count(Verdict::Regressed),
            count(Verdict::Missing),
            count(Verdict::Improved),
            count(Verdict::New)
        );
        if self.moved.is_empty() {
            out.push_str("Nothing moved beyond its tolerance.\n");
            return out;
        }
        out.push_str("\n| verdict | scenario | point | metric | baseline | now | change | tolerance |\n|---|---|---|---|---:|---:|---:|---:|\n");
        for (verdict, v, base, tol) in &self.moved {
            let (now, change) = match (verdict, base) {
                (Verdict::Missing, _) => ("–".to_string(), "–".to_string()),
                (_, Some(b)) => (fmt(v.value), relative(v.value, *b)),
                (_, None) => (fmt(v.value), "–".to_string()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {now} | {change} | {:.1} % |",
                match verdict {
                    Verdict::Regressed => "**regressed**",
                    Verdict::Missing => "**missing**",
                    Verdict::Improved => "improved",
                    Verdict::New => "new",
                },
                v.scenario,
                v.point,
                v.metric,
                base.map_or("–".to_string(), fmt),
                tol * 100.0,
            );
        }
        out
    }
}

fn fmt(x: f64) -> String {
    format!("{x:.6}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

fn relative(now: f64, base: f64) -> String {
    if base == 0.0 {
        return format!("{:+}", fmt(now - base));
    }
    format!("{:+.1} %", (now - base) / base.abs() * 100.0)
}

/// Reads `--tolerance metric=rel,…` overrides into the tolerance table.
pub fn tolerances(overrides: &[String]) -> Result<Vec<Tolerance>, String> {
    let mut t = DEFAULT_TOLERANCES.to_vec();
    for o in overrides.iter().flat_map(|o| o.split(',')) {
        let (m, v) = o
            .split_once('=')
            .ok_or_else(|| format!("--tolerance {o}: expected METRIC=REL, e.g. latency_s.end_to_end.p99=0.2"))?;
        let rel: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| format!("--tolerance {o}: `{v}` is not a non-negative fraction (0.05 = 5 %)"))?;
        let entry = t.iter_mut().find(|x| x.metric == m.trim()).ok_or_else(|| {
            let names: Vec<&str> = DEFAULT_TOLERANCES.iter().map(|x| x.metric).collect();
            format!(
                "--tolerance {o}: `{m}` is not a checked metric; checked: {}",
                names.join(", ")
            )
        })?;
        entry.rel = rel;
    }
    Ok(t)
}

/// The scenario files of `dir`, sorted.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no scenario files (*.toml)", dir.display()));
    }
    Ok(files)
}

/// Runs every scenario in `files` (each as its sweep, with `sets` applied) and returns the
/// checked metrics' values, means over seeds.
pub fn measure(
    files: &[PathBuf],
    sets: &[String],
    jobs: usize,
    checked: &[Tolerance],
    build: &PolicyBuilder,
) -> Result<Vec<Value>, SweepError> {
    let mut values = Vec::new();
    for file in files {
        let mut src = ScenarioSource::load(file).map_err(|e| SweepError::Input(e.to_string()))?;
        for s in sets {
            src.set(s).map_err(|e| SweepError::Input(e.to_string()))?;
        }
        let spec = SweepSpec::from_source(&src).map_err(|e| SweepError::Input(e.to_string()))?;
        let p = plan(&src, &spec, build)?;
        let scenario = p.info.scenario.clone();
        let keys: Vec<String> = p.info.axes.iter().map(|a| a.key.clone()).collect();
        let opts = Options {
            jobs,
            shard: None,
            invocations: false,
            progress: false,
            resume: false,
            window: 0,
        };
        let rows = run_in_memory(p, &opts, build)?;
        let mut by_point: BTreeMap<usize, Vec<&RunRow>> = BTreeMap::new();
        for r in &rows {
            by_point.entry(r.point).or_default().push(r);
        }
        for runs in by_point.values() {
            let point = if keys.is_empty() {
                "-".to_string()
            } else {
                keys.iter()
                    .zip(&runs[0].labels)
                    .map(|(k, l)| format!("{k}={l}"))
                    .collect::<Vec<_>>()
                    .join(";")
            };
            for t in checked {
                // A latency of a run in which nothing completed is no latency: left out, so that
                // the baseline's value counts as missing rather than "improved" to 0.
                let v: Vec<f64> = runs
                    .iter()
                    .filter(|r| !t.metric.starts_with("latency_s.") || completed(r) != Some(0.0))
                    .filter_map(|r| r.metrics.iter().find(|(m, _)| m == t.metric).map(|(_, v)| *v))
                    .filter(|v| v.is_finite())
                    .collect();
                if !v.is_empty() {
                    values.push(Value {
                        scenario: scenario.clone(),
                        point: point.clone(),
                        metric: t.metric.to_string(),
                        value: aggregate(&v).mean,
                    });
                }
            }
        }
    }
    Ok(values)
}

/// A run's completed invocations, when its summary says.
fn completed(r: &RunRow) -> Option<f64> {
    r.metrics.iter().find(|(m, _)| m == "counts.completed").map(|(_, v)| *v)
}

/// Reads a baseline file.
pub fn read_baseline(path: &Path) -> Result<Vec<Value>, String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| {
        format!(
            "{}: {e} (create it with `gpushare check --baseline {} --update`)",
            path.display(),
            path.display()
        )
    })?;
    let header = crate::sweep::table::csv_header(&mut r, path)?;
    if header != ["scenario", "point", "metric", "value"] {
        return Err(format!(
            "{}:1: expected the header scenario,point,metric,value",
            path.display()
        ));
    }
    let mut out: Vec<Value> = Vec::new();
    let mut lines: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let at = format!("{}:{line}", path.display());
        let metric = rec[2].to_string();
        if !DEFAULT_TOLERANCES.iter().any(|t| t.metric == metric) {
            return Err(format!(
                "{at}: metric: `{metric}` is not a checked metric (a renamed metric would never be compared); valid: {}",
                DEFAULT_TOLERANCES.map(|t| t.metric).join(", ")
            ));
        }
        // Every checked metric is a count, a rate, a time or a ratio: never negative, and a
        // NaN or an infinity could never regress.
        let value = rec[3]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{at}: value: `{}` is not a finite, non-negative number", &rec[3]))?;
        let key = (rec[0].to_string(), rec[1].to_string(), metric.clone());
        if let Some(first) = lines.insert(key, line) {
            return Err(format!(
                "{at}: scenario {}, point {}, metric {metric} already given on line {first}",
                &rec[0], &rec[1]
            ));
        }
        out.push(Value {
            scenario: rec[0].to_string(),
            point: rec[1].to_string(),
            metric,
            value,
        });
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no rows: an empty baseline would pass any build; write it with `gpushare check --baseline {} --update`",
            path.display(),
            path.display()
        ));
    }
    Ok(out)
}

/// Writes `values` as a baseline file.
pub fn write_baseline(path: &Path, values: &[Value]) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| format!("{}: {e}", path.display());
    w.write_record(["scenario", "point", "metric", "value"]).map_err(err)?;
    for v in values {
        w.write_record([
            v.scenario.as_str(),
            v.point.as_str(),
            v.metric.as_str(),
            &v.value.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: creating its folder: {e}", path.display()))?;
    }
    crate::atomic::write_atomic(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Compares `now` with `baseline` under `tolerances`.
pub fn compare(baseline: &[Value], now: &[Value], tolerances: &[Tolerance]) -> Report {
    let key = |v: &Value| (v.scenario.clone(), v.point.clone(), v.metric.clone());
    let current: BTreeMap<_, f64> = now.iter().map(|v| (key(v), v.value)).collect();
    let known: BTreeMap<_, f64> = baseline.iter().map(|v| (key(v), v.value)).collect();
    let mut moved = Vec::new();
    for b in baseline {
        let Some(t) = tolerances.iter().find(|t| t.metric == b.metric) else {
            continue;
        };
        match current.get(&key(b)) {
            None => moved.push((Verdict::Missing, b.clone(), Some(b.value), t.rel)),
            Some(&v) => {
                let slack = (t.rel * b.value.abs()).max(t.abs);
                let worse = match t.better {
                    Better::Higher => b.value - v,
                    Better::Lower => v - b.value,
                };
                let row = Value { value: v, ..b.clone() };
                if worse > slack {
                    moved.push((Verdict::Regressed, row, Some(b.value), t.rel));
                } else if -worse > slack {
                    moved.push((Verdict::Improved, row, Some(b.value), t.rel));
                }
            }
        }
    }
    for v in now {
        if !known.contains_key(&key(v)) {
            let rel = tolerances.iter().find(|t| t.metric == v.metric).map_or(0.0, |t| t.rel);
            moved.push((Verdict::New, v.clone(), None, rel));
        }
    }
    moved.sort_by_key(|a| a.0);
    Report {
        moved,
        checked: baseline.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(metric: &str, value: f64) -> Value {
        Value {
            scenario: "s".into(),
            point: "policy=x".into(),
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn directions_and_tolerances_decide() {
        let t = tolerances(&[]).unwrap();
        let base = [
            v("throughput_per_s", 100.0),
            v("latency_s.end_to_end.p99", 1.0),
            v("cold_start_ratio", 0.0),
        ];
        // Within tolerance either way: nothing moved.
        let r = compare(
            &base,
            &[
                v("throughput_per_s", 98.5),
                v("latency_s.end_to_end.p99", 1.09),
                v("cold_start_ratio", 0.001),
            ],
            &t,
        );
        assert!(r.moved.is_empty() && !r.failed());
        // Lower throughput and higher p99 regress; a lower cold-start ratio improves.
        let r = compare(
            &base,
            &[
                v("throughput_per_s", 97.0),
                v("latency_s.end_to_end.p99", 1.2),
                v("cold_start_ratio", 0.0),
            ],
            &t,
        );
        assert!(r.failed());
        assert_eq!(r.moved.iter().filter(|m| m.0 == Verdict::Regressed).count(), 2);
        // A row that disappeared fails; a new one does not.
        let r = compare(&base[..1], &[v("latency_s.end_to_end.p99", 1.0)], &t);
        assert!(r.failed() && r.moved.iter().any(|m| m.0 == Verdict::New));
    }

    #[test]
    fn a_baseline_that_could_never_fail_is_refused() {
        let dir = std::env::temp_dir().join(format!("gpushare-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = "scenario,point,metric,value\n";
        let cases = [
            (
                "nan",
                format!("{header}s,p,throughput_per_s,nan\n"),
                "s.csv:2: value: `nan`",
            ),
            (
                "inf",
                format!("{header}s,p,throughput_per_s,inf\n"),
                "s.csv:2: value: `inf`",
            ),
            (
                "negative",
                format!("{header}s,p,throughput_per_s,-1\n"),
                "s.csv:2: value: `-1`",
            ),
            ("empty", header.to_string(), "no rows"),
            (
                "renamed",
                format!("{header}s,p,throughput,3\n"),
                "s.csv:2: metric: `throughput`",
            ),
            (
                "duplicated",
                format!("{header}s,p,throughput_per_s,3\ns,p,throughput_per_s,4\n"),
                "s.csv:3: scenario s, point p, metric throughput_per_s already given on line 2",
            ),
        ];
        for (name, text, expected) in cases {
            let path = dir.join(format!("{name}-s.csv"));
            std::fs::write(&path, text).unwrap();
            let e = read_baseline(&path).unwrap_err();
            assert!(e.contains(expected), "{name}: {e}");
        }
        let good = dir.join("good.csv");
        std::fs::write(
            &good,
            format!("{header}s,p,throughput_per_s,3\ns,p,cold_start_ratio,0\n"),
        )
        .unwrap();
        assert_eq!(read_baseline(&good).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tolerance_overrides_are_checked() {
        let t = tolerances(&["latency_s.end_to_end.p99=0.5".into()]).unwrap();
        assert_eq!(
            t.iter().find(|x| x.metric == "latency_s.end_to_end.p99").unwrap().rel,
            0.5
        );
        assert!(
            tolerances(&["nope=1".into()])
                .unwrap_err()
                .contains("not a checked metric")
        );
        assert!(tolerances(&["cold_start_ratio=-1".into()]).is_err());
    }
}
