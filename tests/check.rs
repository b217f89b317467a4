//! `gpushare check`: the CI scenarios against the committed baseline; a deliberately worse
//! policy parameter must fail it.

mod common;

use std::path::Path;

/// Copies `scenarios/ci/` into a fresh directory, applying `edit` to the named file.
fn ci_copy(name: &str, file: &str, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let dir = common::temp_dir(name);
    for e in std::fs::read_dir(common::repo_root().join("scenarios/ci")).unwrap() {
        let p = e.unwrap().path();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if p.file_name().unwrap() == file {
            let edited = edit(text.clone());
            assert_ne!(edited, text, "the edit changed nothing");
            text = edited;
        }
        std::fs::write(dir.join(p.file_name().unwrap()), text).unwrap();
    }
    dir
}

fn check(args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["check", "-j", "2"];
    a.extend_from_slice(args);
    let o = common::gpushare(&a);
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_committed_baseline_holds() {
    let (code, out, err) = check(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 regressed, 0 missing"), "{out}");
}

#[test]
fn a_worse_policy_parameter_fails_the_check() {
    // KaaS without client affinity: its caches thrash and throughput drops.
    let dir = ci_copy("check-worse", "kaas_contention.toml", |t| {
        t.replace(
            "  \"kaas\",\n",
            "  { label = \"kaas\", name = \"kaas\", max_queue = 16, affinity = false },\n",
        )
    });
    let (code, out, _) = check(&["--scenarios", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let regressed: Vec<&str> = out.lines().filter(|l| l.starts_with("| **regressed**")).collect();
    assert!(
        regressed
            .iter()
            .any(|l| l.contains("| ci-kaas-contention | policy=kaas | throughput_per_s |")),
        "{out}"
    );
    // Nothing else moved: every regression is KaaS's.
    assert!(regressed.iter().all(|l| l.contains("policy=kaas")), "{out}");
    // A wide enough tolerance lets it pass: tolerances are per metric.
    let wide = "throughput_per_s=0.9,latency_s.end_to_end.mean=100,latency_s.end_to_end.p50=100,latency_s.end_to_end.p99=100,\
                slo_violation_ratio=100,counts.rejected=100,gpu.gpu_seconds_allocated=100,cold_start_ratio=100";
    let (code, out, _) = check(&["--scenarios", dir.to_str().unwrap(), "--tolerance", wide]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_dropped_point_fails_and_bad_input_is_exit_2() {
    // A policy removed from a CI scenario: its baseline rows are missing.
    let dir = ci_copy("check-missing", "kaas_contention.toml", |t| {
        t.replace("  { name = \"static\", max_queue = 16 },\n", "")
    });
    let (code, out, _) = check(&["--scenarios", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("| **missing** | ci-kaas-contention | policy=static |"),
        "{out}"
    );
    let (code, _, err) = check(&["--baseline", "no/such/baseline.csv"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("create it with `gpushare check --baseline no/such/baseline.csv --update`"),
        "{err}"
    );
    let (code, _, err) = check(&["--tolerance", "throughput=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a checked metric"), "{err}");
}

#[test]
fn update_writes_a_baseline_that_then_holds() {
    let dir = common::temp_dir("check-update");
    let base = dir.join("b.csv");
    let (code, out, err) = check(&["--baseline", base.to_str().unwrap(), "--update"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("wrote "), "{out}");
    assert_eq!(
        std::fs::read(&base).unwrap(),
        std::fs::read(Path::new(&common::repo_root()).join("reports/baselines/ci.csv")).unwrap(),
        "the committed baseline is what --update writes today"
    );
    let (code, _, _) = check(&["--baseline", base.to_str().unwrap()]);
    assert_eq!(code, 0);
}
