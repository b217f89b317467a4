//! The fidelity report: `report.csv` (every row, published against predicted), `report.md`
//! (summaries per set and source, the worst validation rows, every row) and the
//! predicted-against-published figure, and the CI check against a committed report.

use super::dataset::Set;
use super::{Prediction, Spread, TARGET_MEDIAN, TARGET_P90, spread, spread_of};
use crate::atomic::write_atomic;
use crate::plot::chart::{self, Figure, Markers, Panel, Point, Series};
use crate::plot::style::Width;
use crate::summary_files::csv_field;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The report's table, one line per row.
pub fn csv(preds: &[Prediction]) -> String {
    let mut out = String::from("id,set,workload,metric,unit,published,predicted,error\n");
    for p in preds {
        let r = &p.row;
        let (pred, err) = match (&p.predicted, p.error()) {
            (Ok(v), Some(e)) => (format!("{v:.6}"), format!("{e:.6}")),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{pred},{err}",
            r.id,
            r.set.name(),
            csv_field(&r.workload),
            csv_field(&r.metric),
            csv_field(&r.unit),
            r.value
        );
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn spread_row(name: &str, s: &Spread) -> String {
    format!(
        "| {name} | {} | {} | {} | {} |",
        s.rows,
        pct(s.median),
        pct(s.p90),
        pct(s.max)
    )
}

/// The short name of a row's source: the part of its id before the last `-`.
fn source_key(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(s, _)| s)
}

/// The summary of `report.md`: errors per set, and the validation targets met or missed.
pub fn summary(preds: &[Prediction]) -> String {
    let cal = spread_of(preds, Set::Calibration);
    let val = spread_of(preds, Set::Validation);
    let mut md = String::from("| set | rows | median abs. error | p90 | max |\n| --- | ---: | ---: | ---: | ---: |\n");
    let _ = writeln!(md, "{}", spread_row("calibration", &cal));
    let _ = writeln!(md, "{}", spread_row("validation", &val));
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(
        md,
        "\nTargets for the validation rows: median ≤ {} ({}), p90 ≤ {} ({}).",
        pct(TARGET_MEDIAN),
        verdict(val.median <= TARGET_MEDIAN),
        pct(TARGET_P90),
        verdict(val.p90 <= TARGET_P90)
    );
    md
}

/// `report.md`.
pub fn markdown(preds: &[Prediction]) -> String {
    let failed: Vec<&Prediction> = preds.iter().filter(|p| p.predicted.is_err()).collect();
    let mut md = String::new();
    md.push_str("# Fidelity: gpushare against published measurements\n\n");
    md.push_str(
        "Written by `gpushare fidelity` from `validation/measurements.csv` (the dataset and its split: \
         [validation/README.md](../../validation/README.md)) with the parameters of \
         `validation/fitted.toml`; do not edit. Error = (predicted − published) / published. \
         Calibration rows are what `gpushare fit` fitted the model's free parameters to (or stated \
         inputs): their errors say how well the model *can* fit. Validation rows never reached the \
         fit: their errors say how well it predicts.\n\n",
    );
    md.push_str("![predicted against published](fidelity.svg)\n\n## Summary\n\n");
    md.push_str(&summary(preds));
    if !failed.is_empty() {
        let _ = writeln!(md, "\n{} rows could not be predicted:\n", failed.len());
        for p in &failed {
            let _ = writeln!(md, "- `{}`: {}", p.row.id, p.predicted.as_ref().unwrap_err());
        }
    }
    md.push_str(
        "\n## By source\n\n| source | set | rows | median | p90 | max |\n| --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    let mut by: BTreeMap<(&str, Set), Vec<f64>> = BTreeMap::new();
    for p in preds {
        if let Some(e) = p.error() {
            by.entry((source_key(&p.row.id), p.row.set)).or_default().push(e);
        }
    }
    for ((src, set), errs) in &by {
        let s = spread(errs.iter().copied());
        let _ = writeln!(
            md,
            "{}",
            spread_row(&format!("{src} | {}", set.name()), &s)
                .replacen("| ", "| `", 1)
                .replacen(" | ", "` | ", 1)
        );
    }
    md.push_str("\n## Validation rows, worst first\n\n");
    md.push_str(&rows_table(preds.iter().filter(|p| p.row.set == Set::Validation), true));
    md.push_str("\n## Every row\n\n");
    md.push_str(&rows_table(preds.iter(), false));
    md
}

fn rows_table<'a>(preds: impl Iterator<Item = &'a Prediction>, worst_first: bool) -> String {
    let mut list: Vec<&Prediction> = preds.collect();
    if worst_first {
        list.sort_by(|a, b| {
            let e = |p: &Prediction| p.error().map_or(f64::INFINITY, f64::abs);
            e(b).total_cmp(&e(a)).then_with(|| a.row.id.cmp(&b.row.id))
        });
    }
    let mut t = String::from(
        "| id | set | workload | configuration | metric | published | predicted | error |\n| --- | --- | --- | --- | --- | ---: | ---: | ---: |\n",
    );
    for p in list {
        let r = &p.row;
        let (pred, err) = match (&p.predicted, p.error()) {
            (Ok(v), Some(e)) => (sig(*v), format!("{:+.1} %", e * 100.0)),
            (Err(e), _) => (format!("failed: {e}"), String::new()),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} | {} | {} {} | {pred} | {err} |",
            r.id,
            r.set.name(),
            r.workload,
            r.configuration,
            r.metric,
            r.value,
            r.unit
        );
    }
    t
}

/// Four significant digits.
fn sig(v: f64) -> String {
    let r = super::fit::round4(v);
    let s = format!("{r}");
    if s.contains('e') { format!("{v:.4e}") } else { s }
}

/// The predicted-against-published figure: both axes logarithmic, the line y = x, calibration
/// and validation rows marked apart.
pub fn figure(preds: &[Prediction]) -> Figure {
    let points = |set: Set| -> Vec<Point> {
        preds
            .iter()
            .filter(|p| p.row.set == set)
            .filter_map(|p| p.predicted.as_ref().ok().map(|&y| (p.row.value, y)))
            .map(|(x, y)| Point { x, y, err: None })
            .collect()
    };
    let all: Vec<f64> = preds
        .iter()
        .flat_map(|p| [Some(p.row.value), p.predicted.as_ref().ok().copied()])
        .flatten()
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Figure {
        name: "fidelity".into(),
        width: Width::Single,
        letters: false,
        panels: vec![Panel {
            x_label: "published (row's unit)".into(),
            y_label: "predicted (same unit)".into(),
            x_log: true,
            y_log: true,
            y_from_zero: false,
            x_categories: None,
            series: vec![
                Series {
                    label: "y = x".into(),
                    style: 0,
                    points: vec![
                        Point {
                            x: lo,
                            y: lo,
                            err: None,
                        },
                        Point {
                            x: hi,
                            y: hi,
                            err: None,
                        },
                    ],
                    markers: Markers::None,
                },
                Series {
                    label: "calibration".into(),
                    style: 1,
                    points: points(Set::Calibration),
                    markers: Markers::Only,
                },
                Series {
                    label: "validation".into(),
                    style: 2,
                    points: points(Set::Validation),
                    markers: Markers::Only,
                },
            ],
        }],
    }
}

/// Writes `report.csv`, `report.md` and the figure into `dir`; returns the paths.
pub fn write(preds: &[Prediction], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in [("report.csv", csv(preds)), ("report.md", markdown(preds))] {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    written.extend(chart::render(&figure(preds), dir)?);
    Ok(written)
}

/// The validation median |error| of a `report.csv`'s text.
pub fn committed_validation_median(text: &str) -> Result<f64, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut errs = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        if rec.get(1) == Some("validation") {
            let line = rec.position().map_or(0, |p| p.line());
            let e: f64 = rec
                .get(7)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("line {line}: error: a validation row without a number there"))?;
            errs.push(e);
        }
    }
    if errs.is_empty() {
        return Err("set: no validation rows".into());
    }
    Ok(spread(errs.into_iter()).median)
}

/// CI's check: every row predicted, and the validation median no worse than the committed
/// report's (both from the errors as `report.csv` prints them).
pub fn check(preds: &[Prediction], committed_csv: &str) -> Result<String, String> {
    if let Some(p) = preds.iter().find(|p| p.predicted.is_err()) {
        return Err(format!(
            "row `{}` could not be predicted: {}",
            p.row.id,
            p.predicted.as_ref().unwrap_err()
        ));
    }
    check_csv(committed_csv, &csv(preds))
}

/// The check between two `report.csv` texts: the new validation median no worse than the
/// committed one.
pub fn check_csv(committed_csv: &str, new_csv: &str) -> Result<String, String> {
    let before = committed_validation_median(committed_csv)?;
    let now = committed_validation_median(new_csv)?;
    let line = format!(
        "validation median |error| {} (committed report: {})",
        pct(now),
        pct(before)
    );
    if now > before + 1e-9 {
        Err(format!("{line}: worse than the committed report"))
    } else {
        Ok(line)
    }
}
