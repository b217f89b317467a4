//! `gpushare sweep` and `gpushare merge`: results that do not depend on the thread count or on
//! sharding, aggregates over seeds, and bad input refused before anything runs.

mod common;

use common::{SWEEP, gpushare_ok, gpushare_refuses, scenario};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (x, y) = (tree(a), tree(b));
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
    for (k, v) in &x {
        assert!(v == &y[k], "{k} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let s = scenario("sweep-threads", SWEEP);
    let dir = s.parent().unwrap();
    let (one, two) = (dir.join("j1"), dir.join("j2"));
    for (threads, out) in [("1", &one), ("2", &two)] {
        gpushare_ok(&[
            "sweep",
            s.to_str().unwrap(),
            "-q",
            "-j",
            threads,
            "--out",
            out.to_str().unwrap(),
        ]);
    }
    assert_same_tree(&one, &two);
    // 2 × 2 points × 2 seeds, each with its summary, CDF, samples and point.json.
    let files = tree(&one);
    assert_eq!(files.keys().filter(|k| k.ends_with("summary.json")).count(), 8);
    assert!(files.contains_key("runs/0007/timeseries.csv"));
}

#[test]
fn shards_merge_into_exactly_the_unsharded_sweep() {
    let s = scenario("sweep-shards", SWEEP);
    let dir = s.parent().unwrap();
    let whole = dir.join("whole");
    gpushare_ok(&["sweep", s.to_str().unwrap(), "-q", "--out", whole.to_str().unwrap()]);
    let shards: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("shard{i}"))).collect();
    for (i, d) in shards.iter().enumerate() {
        let shard = format!("{}/3", i + 1);
        gpushare_ok(&[
            "sweep",
            s.to_str().unwrap(),
            "-q",
            "--shard",
            &shard,
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    let merged = dir.join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", merged.to_str().unwrap()]);
    gpushare_ok(&args);
    assert_same_tree(&whole, &merged);
    // Two shards of three are not the whole sweep.
    let (first, second, partial) = (&shards[0], &shards[1], dir.join("partial"));
    gpushare_refuses(
        &[
            "merge",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            "--out",
            partial.to_str().unwrap(),
        ],
        "hold 6 of the sweep's 8 runs",
    );
}

#[test]
fn seeds_give_means_with_intervals() {
    let s = scenario("sweep-stats", SWEEP);
    let out = s.parent().unwrap().join("out");
    gpushare_ok(&["sweep", s.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let header: Vec<&str> = runs.lines().next().unwrap().split(',').collect();
    assert_eq!(
        &header[..6],
        ["run", "point", "replicate", "seed", "policy", "simulation.load_scale"]
    );
    let col = header.iter().position(|h| *h == "throughput_per_s").unwrap();
    // Point 0 is (mps, 0.5): runs 0 and 1, seeds 5 and a derived one.
    let rows: Vec<Vec<&str>> = runs.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!((rows[0][3], rows[0][4], rows[0][5]), ("5", "mps", "0.5"));
    assert_ne!(rows[0][3], rows[1][3]);
    let mean = (rows[0][col].parse::<f64>().unwrap() + rows[1][col].parse::<f64>().unwrap()) / 2.0;
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let line = summary
        .lines()
        .find(|l| l.starts_with("0,mps,0.5,throughput_per_s,"))
        .expect("point 0's throughput");
    let f: Vec<f64> = line.split(',').skip(4).map(|x| x.parse().unwrap()).collect();
    let (n, m, lo, hi) = (f[0], f[1], f[3], f[4]);
    assert_eq!(n, 2.0);
    assert!((m - mean).abs() < 1e-9, "{m} vs {mean}");
    assert!(lo <= m && m <= hi && lo < hi);
    // The load axis changes the load: twice the throughput at twice the load (both keep up).
    let at = |load: &str| -> f64 {
        let l = summary
            .lines()
            .find(|l| l.contains(&format!(",mps,{load},throughput_per_s,")))
            .unwrap();
        l.split(',').nth(5).unwrap().parse().unwrap()
    };
    assert!(
        (at("1.0") / at("0.5") - 2.0).abs() < 0.15,
        "{} {}",
        at("0.5"),
        at("1.0")
    );
}

#[test]
fn bad_sweeps_are_refused_before_anything_runs() {
    let bad_policy = SWEEP.replace("\"mps\", { label", "\"mpz\", { label");
    let s = scenario("sweep-bad", &bad_policy);
    let out = s.parent().unwrap().join("out");
    gpushare_refuses(
        &["sweep", s.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()],
        "in [sweep] axis `policy`, value 1 (`mpz`): policy.name: unknown policy `mpz`",
    );
    assert!(!out.exists(), "nothing is written for bad input");
    let s = scenario("sweep-bad2", SWEEP);
    for (args, says) in [
        (vec!["--shard", "4/3"], "--shard 4/3: expected I/N"),
        (vec!["--axis", "simulation.load_scale"], "expected KEY=V1,V2"),
        (vec!["--axis", "policy=mps,mps"], "both shown as `mps`"),
        (vec!["--seeds", "0"], "--seeds 0: expected 1 to 10000"),
    ] {
        let mut a = vec!["sweep", s.to_str().unwrap(), "-q"];
        a.extend(args);
        gpushare_refuses(&a, says);
    }
}

#[test]
fn command_line_axes_add_to_the_file() {
    let s = scenario("sweep-axis", SWEEP);
    let out = s.parent().unwrap().join("out");
    let printed = common::sweep_over_gpus_per_node(&s, &out);
    assert!(printed.starts_with("8 runs (8 points × 1 seeds)"), "{printed}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let keys: Vec<&str> = info["axes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["policy", "simulation.load_scale", "cluster.gpus_per_node"]);
}

/// `--resume` after an interruption: the runs that completed are kept (not simulated again),
/// the rest are run, and the folder ends byte-identical to an uninterrupted sweep's. A run cut
/// short (no point.json), one whose summary was damaged after a point.json of another scenario,
/// and every run of a changed scenario are simulated again.
#[test]
fn an_interrupted_sweep_resumes_into_the_uninterrupted_result() {
    let s = scenario("sweep-resume", SWEEP);
    let dir = s.parent().unwrap();
    let (whole, resumed) = (dir.join("whole"), dir.join("resumed"));
    let sweep = |out: &Path, extra: &[&str]| {
        let mut args = vec!["sweep", s.to_str().unwrap(), "-j", "2", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = common::gpushare(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    sweep(&whole, &["-q"]);
    sweep(&resumed, &["-q"]);
    let runs: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(resumed.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    assert!(runs.len() >= 3, "the test sweep has too few runs");
    // An interruption: run 0 never finished; the tables were never written.
    std::fs::remove_file(runs[0].join("point.json")).unwrap();
    std::fs::write(runs[0].join("summary.json"), "{").unwrap();
    // Run 1 was completed by another scenario: its fingerprint differs.
    let point = std::fs::read_to_string(runs[1].join("point.json")).unwrap();
    let other = point.replace("\"scenario_fingerprint\": \"", "\"scenario_fingerprint\": \"0");
    assert_ne!(point, other);
    std::fs::write(runs[1].join("point.json"), other).unwrap();
    for table in ["runs.csv", "summary.csv", "sweep.json"] {
        std::fs::remove_file(resumed.join(table)).unwrap();
    }
    let (out, err) = sweep(&resumed, &["--resume"]);
    let kept = runs.len() - 2;
    assert!(out.contains(&format!("{kept} kept from the earlier sweep")), "{out}");
    assert_eq!(err.matches("kept from the earlier sweep").count(), kept, "{err}");
    assert_same_tree(&whole, &resumed);

    // The same folder resumed with a changed scenario keeps nothing.
    let changed = std::fs::read_to_string(&s).unwrap().replace("seed = 5", "seed = 6");
    assert!(changed.contains("seed = 6"), "the test scenario's seed line moved");
    std::fs::write(&s, changed).unwrap();
    let (out, _) = sweep(&resumed, &["--resume", "-q"]);
    assert!(out.contains(", 0 kept from the earlier sweep"), "{out}");
}

/// On two threads runs finish out of order (run 0 simulates tens of times longer than each of
/// the others, which the second thread runs meanwhile), yet `runs.csv` and `summary.csv` list
/// them in run order: the folder is the same, byte for byte, as on one thread, where they finish
/// in order.
#[test]
fn rows_are_written_in_run_order_whatever_order_runs_finish_in() {
    let text = SWEEP.split("[sweep]").next().unwrap();
    let s = scenario("sweep-order", text);
    let dir = s.parent().unwrap();
    let sweep = |threads: &str, out: &Path| -> Vec<usize> {
        let o = common::gpushare(&[
            "sweep",
            s.to_str().unwrap(),
            "-j",
            threads,
            "--seeds",
            "1",
            "--axis",
            "simulation.horizon_s=12000,3,4,5,6,7,8,9",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Progress lines, one per run as it finishes: "[3/8] run 5 (4.0, seed …) in 0.01 s".
        String::from_utf8(o.stderr)
            .unwrap()
            .lines()
            .filter_map(|l| l.split("] run ").nth(1)?.split(' ').next()?.parse().ok())
            .collect()
    };
    let (one, two) = (dir.join("j1"), dir.join("j2"));
    let finished = sweep("2", &two);
    let in_order: Vec<usize> = (0..8).collect();
    let mut sorted = finished.clone();
    sorted.sort();
    assert_eq!(sorted, in_order, "every run reports once");
    assert_ne!(
        finished, in_order,
        "the runs finished in run order: nothing was reordered"
    );
    assert_eq!(sweep("1", &one), in_order);
    let runs = std::fs::read_to_string(two.join("runs.csv")).unwrap();
    let listed: Vec<usize> = runs
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, in_order);
    assert_same_tree(&one, &two);
}

/// `merge` reads the shards side by side: a run in two shards, or a shard whose rows are not in
/// run order, is refused, and nothing is written.
#[test]
fn merge_refuses_a_run_twice_and_rows_out_of_order() {
    let s = scenario("sweep-merge-bad", SWEEP);
    let dir = s.parent().unwrap();
    let shards: Vec<PathBuf> = (1..=2).map(|i| dir.join(format!("shard{i}"))).collect();
    for (i, d) in shards.iter().enumerate() {
        let shard = format!("{}/2", i + 1);
        gpushare_ok(&[
            "sweep",
            s.to_str().unwrap(),
            "-q",
            "--shard",
            &shard,
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    let merge = |a: &Path, b: &Path, out: &Path, says: &str| {
        gpushare_refuses(
            &[
                "merge",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            says,
        );
        assert!(!out.exists() || !out.join("runs.csv").exists(), "a table was written");
    };
    merge(
        &shards[0],
        &shards[0],
        &dir.join("twice"),
        "run 0 appears in two shards",
    );
    // Shard 1 holds runs 0, 2, 4, 6: its rows swapped.
    let csv = std::fs::read_to_string(shards[0].join("runs.csv")).unwrap();
    let mut lines: Vec<&str> = csv.lines().collect();
    lines.swap(1, 2);
    std::fs::write(shards[0].join("runs.csv"), lines.join("\n") + "\n").unwrap();
    merge(&shards[0], &shards[1], &dir.join("swapped"), "run 0 after run 2");
}
