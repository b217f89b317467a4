//! The validation dataset and its fit: fitting reads only calibration rows, the committed fit
//! and report are what the commands make.

mod common;

use gpushare_reports::fidelity::dataset::{Dataset, Set};
use gpushare_reports::fidelity::{fit, model::Model};
use gpushare_sim::fitted::{Fitted, committed};

fn load() -> (Dataset, Model) {
    let root = common::repo_root();
    let data = Dataset::load(&root.join("validation/measurements.csv")).unwrap();
    let model = Model::load(&root.join("validation/workloads.toml"), committed().clone()).unwrap();
    (data, model)
}

fn fit_of(data: &Dataset, model: &Model) -> Fitted {
    fit::fit(&data.calibration(), model, &common::repo_root()).unwrap()
}

#[test]
fn fitting_reads_only_calibration_rows_and_reproduces_the_committed_fit() {
    let (data, model) = load();
    let original = fit_of(&data, &model);
    // The committed file is what fitting the committed dataset gives.
    let diffs = fit::differences(committed(), &original, 1e-3);
    assert!(diffs.is_empty(), "validation/fitted.toml is stale: {diffs:?}");
    // Change every validation value: no fitted parameter moves, not by one bit.
    let mut changed = data.clone();
    for r in changed.rows.iter_mut().filter(|r| r.set == Set::Validation) {
        r.value *= 3.0;
    }
    assert_eq!(fit_of(&changed, &model), original);
    // The same change to one calibration row does move the fit (the test can fail).
    let mut changed = data.clone();
    let row = changed
        .rows
        .iter_mut()
        .find(|r| r.id == "igniter-01")
        .expect("a calibration row");
    assert_eq!(row.set, Set::Calibration);
    row.value *= 3.0;
    let moved = fit_of(&changed, &model);
    assert!(!fit::differences(&original, &moved, 1e-3).is_empty());
}

#[test]
fn the_committed_report_is_what_the_command_writes() {
    let out = common::temp_dir("fidelity");
    let o = common::gpushare(&["fidelity", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let committed = common::repo_root().join("reports/fidelity");
    for name in ["report.csv", "report.md", "fidelity.svg"] {
        let a = std::fs::read(committed.join(name)).unwrap_or_default();
        let b = std::fs::read(out.join(name)).unwrap();
        assert!(
            a == b,
            "reports/fidelity/{name} differs from what `gpushare fidelity` writes: regenerate it"
        );
    }
    // And CI's check passes on it.
    let o = common::gpushare(&["fidelity", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_check_fails_when_the_validation_median_gets_worse() {
    use gpushare_reports::fidelity::report;
    let text = std::fs::read_to_string(common::repo_root().join("reports/fidelity/report.csv")).unwrap();
    let before = report::committed_validation_median(&text).unwrap();
    // The same report with every validation error doubled.
    let mut worse = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        if i > 0 && f[1] == "validation" {
            let e: f64 = f.last().unwrap().parse().unwrap();
            *f.last_mut().unwrap() = format!("{:.6}", e * 2.0);
        }
        worse.push_str(&f.join(","));
        worse.push('\n');
    }
    let after = report::committed_validation_median(&worse).unwrap();
    assert!(after > before);
    assert!(report::check_csv(&text, &text).is_ok());
    let e = report::check_csv(&text, &worse).unwrap_err();
    assert!(e.contains("worse than the committed report"), "{e}");
}
