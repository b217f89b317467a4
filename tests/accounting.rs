//! Every arrival ends in exactly one outcome, on every bundled scenario.
//!
//! Each scenario under `scenarios/` runs through the `gpushare` binary with per-invocation
//! output on; the test then checks that the summary's counts add up
//! (arrivals = completed + rejected + failed + unfinished), that the per-reason and
//! per-function counts agree with the totals, and that `invocations.csv` has exactly one row per
//! arrival with the outcome the summary counted. Horizons longer than 600 s are cut to 600 s
//! (the property does not depend on the horizon, and the day-long benchmark would dominate
//! the suite).

mod common;

use gpushare_sim::ScenarioSource;
use serde_json::Value;
use std::collections::BTreeMap;

#[test]
fn every_bundled_scenario_accounts_for_every_arrival() {
    let scenarios = common::bundled_scenarios();
    assert!(
        scenarios.len() >= 3,
        "expected the bundled scenarios, found {scenarios:?}"
    );
    for path in scenarios {
        let source = ScenarioSource::load(&path).unwrap();
        if gpushare_sim::serving::is_serving(&source) {
            // LLM serving scenarios: tests/llm_serving.rs accounts for their requests.
            continue;
        }
        let scenario = source.parse().unwrap_or_else(|e| panic!("{e}"));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let out = common::temp_dir(&format!("acct-{name}"));
        let mut args = vec!["run".to_string(), path.to_string_lossy().into(), "--quiet".into()];
        args.extend([
            "--out".into(),
            out.to_string_lossy().into(),
            "--set".into(),
            "output.invocations=true".into(),
        ]);
        if scenario.horizon > 600_000_000_000 {
            args.extend([
                "--set".into(),
                "simulation.horizon_s=600".into(),
                "--set".into(),
                "simulation.warmup_s=0".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = common::gpushare(&args);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));

        let summary: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        let c = &summary["counts"];
        let n = |v: &Value| v.as_u64().unwrap();
        let (arrivals, completed, rejected, failed, unfinished) = (
            n(&c["arrivals"]),
            n(&c["completed"]),
            n(&c["rejected"]),
            n(&c["failed"]),
            n(&c["unfinished"]),
        );
        assert!(arrivals > 0, "{name}: no arrivals");
        assert_eq!(
            arrivals,
            completed + rejected + failed + unfinished,
            "{name}: counts do not add up"
        );
        let by_reason: u64 = c["rejected_by_reason"].as_object().unwrap().values().map(n).sum();
        assert_eq!(by_reason, rejected, "{name}: rejections by reason");
        for field in ["arrivals", "completed", "rejected", "failed", "unfinished"] {
            let per_func: u64 = summary["functions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| n(&f[field]))
                .sum();
            assert_eq!(per_func, n(&c[field]), "{name}: per-function {field}");
        }

        let text = std::fs::read_to_string(out.join("invocations.csv")).unwrap();
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = vec![false; arrivals as usize];
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            assert_eq!(cols.len(), 12, "{name}: malformed row {line}");
            let id: usize = cols[0].parse().unwrap();
            assert!(!seen[id], "{name}: invocation {id} reported twice");
            seen[id] = true;
            let outcome = cols[11].split(':').next().unwrap().to_string();
            *outcomes.entry(outcome).or_default() += 1;
        }
        assert!(seen.iter().all(|&s| s), "{name}: some invocation has no row");
        assert_eq!(outcomes.get("completed").copied().unwrap_or(0), completed, "{name}");
        assert_eq!(outcomes.get("rejected").copied().unwrap_or(0), rejected, "{name}");
        assert_eq!(outcomes.get("unfinished").copied().unwrap_or(0), unfinished, "{name}");
        assert_eq!(outcomes.get("failed").copied().unwrap_or(0), failed, "{name}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn every_traced_invocation_in_the_window_arrives_even_when_shifted() {
    // The bundled 2019 sample, an hour with per-function shifts: a shift wraps within its
    // minute, so every invocation the trace counts in the window is an arrival (before, the
    // last minute's shifted tail fell past the horizon uncounted: 1,115 of 1,125).
    let path = common::repo_root().join("scenarios/azure2019_sample.toml");
    let scenario = ScenarioSource::load(&path).unwrap().parse().unwrap();
    let traced: u64 = match &scenario.workload {
        gpushare_sim::scenario::Workload::Azure2019 { trace, .. } => trace.functions.iter().map(|f| f.total).sum(),
        _ => panic!("the sample is an Azure 2019 scenario"),
    };
    let summary = common::simulate_file(&path, &std::fs::read_to_string(&path).unwrap());
    assert_eq!(summary.counts.arrivals, traced);
    assert_eq!(traced, 1125);
}
