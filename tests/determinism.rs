//! Same scenario and seed → byte-identical output files; a different seed → different results.

mod common;

fn run(scenario: &str, out: &std::path::Path, extra: &[&str]) {
    let mut args = vec!["run", scenario, "--quiet", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::gpushare_ok(&args);
}

#[test]
fn same_seed_gives_byte_identical_outputs() {
    for scenario in ["scenarios/quickstart.toml", "scenarios/csv_example.toml"] {
        let a = common::temp_dir("det-a");
        let b = common::temp_dir("det-b");
        run(scenario, &a, &[]);
        run(scenario, &b, &[]);
        for file in ["summary.json", "summary.csv", "invocations.csv", "latency_cdf.csv"] {
            let x = std::fs::read(a.join(file)).unwrap();
            let y = std::fs::read(b.join(file)).unwrap();
            assert!(!x.is_empty(), "{scenario}: {file} is empty");
            assert!(x == y, "{scenario}: {file} differs between two runs with the same seed");
        }
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
}

#[test]
fn samples_and_timelines_are_deterministic_and_change_nothing_else() {
    let (a, b, plain) = (
        common::temp_dir("det-ts-a"),
        common::temp_dir("det-ts-b"),
        common::temp_dir("det-ts-0"),
    );
    let extra = ["--set", "output.timeseries_s=0.5", "--set", "output.timeline=true"];
    run("scenarios/kaas_contention.toml", &a, &extra);
    run("scenarios/kaas_contention.toml", &b, &extra);
    run("scenarios/kaas_contention.toml", &plain, &[]);
    for file in ["timeseries.csv", "timeline.json", "summary.json", "invocations.csv"] {
        let x = std::fs::read(a.join(file)).unwrap();
        assert!(
            x == std::fs::read(b.join(file)).unwrap(),
            "{file} differs between two runs"
        );
    }
    // Observing does not change the run.
    for file in ["summary.json", "invocations.csv"] {
        let x = std::fs::read(a.join(file)).unwrap();
        assert!(
            x == std::fs::read(plain.join(file)).unwrap(),
            "{file} changed with sampling on"
        );
    }
    for d in [a, b, plain] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn another_seed_changes_the_arrivals() {
    let a = common::temp_dir("seed-a");
    let b = common::temp_dir("seed-b");
    run("scenarios/quickstart.toml", &a, &["--seed", "1"]);
    run("scenarios/quickstart.toml", &b, &["--seed", "2"]);
    let x = std::fs::read(a.join("invocations.csv")).unwrap();
    let y = std::fs::read(b.join("invocations.csv")).unwrap();
    assert!(x != y);
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}
