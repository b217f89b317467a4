//! Outputs a user can trust: a truncated shard never merges, a shard is never plotted as the
//! whole sweep, a re-run sweep holds no stale runs, a trace is never converted over itself.

mod common;

use common::{gpushare_fails, gpushare_refuses};
use std::path::{Path, PathBuf};

fn sweep(dir: &Path, out: &str, extra: &[&str]) -> PathBuf {
    let q = dir.join("q.toml");
    if !q.exists() {
        let text = std::fs::read_to_string(common::repo_root().join("scenarios/quickstart.toml")).unwrap();
        std::fs::write(&q, text).unwrap();
    }
    let out = dir.join(out);
    let mut args = vec![
        "sweep",
        q.to_str().unwrap(),
        "--set",
        "simulation.horizon_s=5",
        "--set",
        "simulation.warmup_s=1",
        "--seeds",
        "1",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::gpushare_ok(&args);
    out
}

#[test]
fn a_shard_cut_short_does_not_merge_and_a_missing_one_is_named() {
    let dir = common::temp_dir("safety-merge");
    let s1 = sweep(&dir, "s1", &["--axis", "policy.keep_alive_s=1,2", "--shard", "1/2"]);
    let s2 = sweep(&dir, "s2", &["--axis", "policy.keep_alive_s=1,2", "--shard", "2/2"]);
    let merged = dir.join("m");
    let (first, into) = (s1.to_str().unwrap(), merged.to_str().unwrap());
    gpushare_refuses(
        &["merge", first, "/nonexistent-shard", "--out", into],
        "/nonexistent-shard: no such shard directory",
    );
    let summary = std::fs::read_dir(s1.join("runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("summary.json");
    let text = std::fs::read_to_string(&summary).unwrap();
    std::fs::write(&summary, &text[..text.len() / 2]).unwrap();
    gpushare_refuses(
        &["merge", first, s2.to_str().unwrap(), "--out", into],
        "not a whole summary",
    );
    assert!(!merged.join("sweep.json").exists(), "nothing merged");
}

#[test]
fn a_shard_is_not_plotted_as_the_sweep() {
    let dir = common::temp_dir("safety-plot-shard");
    let s1 = sweep(&dir, "s1", &["--axis", "policy.keep_alive_s=1,2", "--shard", "1/2"]);
    gpushare_refuses(&["plot", s1.to_str().unwrap()], "shard 1/2 of a sweep");
    assert!(!s1.join("figures").exists(), "no figures folder left behind");
}

#[test]
fn a_sweep_run_again_into_its_folder_keeps_no_stale_runs() {
    let dir = common::temp_dir("safety-stale");
    let out = sweep(&dir, "s", &["--axis", "policy.keep_alive_s=1,2,3,4"]);
    assert_eq!(std::fs::read_dir(out.join("runs")).unwrap().count(), 4);
    sweep(&dir, "s", &["--axis", "policy.keep_alive_s=1,2"]);
    let mut runs: Vec<String> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    assert_eq!(runs, ["0000", "0001"]);
}

#[test]
fn a_trace_is_never_converted_or_sampled_over_itself() {
    let dir = common::temp_dir("safety-convert");
    let csv = dir.join("t.csv");
    std::fs::write(&csv, "time,func\n0.1,a\n").unwrap();
    let trace = csv.to_str().unwrap();
    gpushare_refuses(
        &["trace", "convert", trace, "--out", trace],
        "the trace would be overwritten while it is read",
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "time,func\n0.1,a\n");
    let az = dir.join("az");
    std::fs::create_dir_all(&az).unwrap();
    for f in ["invocations.csv", "durations.csv", "memory.csv"] {
        std::fs::copy(
            common::repo_root().join("traces/samples/azure2019-example").join(f),
            az.join(f),
        )
        .unwrap();
    }
    let before = std::fs::read(az.join("invocations.csv")).unwrap();
    let (folder, into_input) = (az.to_str().unwrap(), az.join("invocations.csv"));
    gpushare_fails(2, &["trace", "convert", folder, "--out", into_input.to_str().unwrap()]);
    gpushare_fails(2, &["trace", "sample", folder, "--out", folder]);
    assert_eq!(
        std::fs::read(az.join("invocations.csv")).unwrap(),
        before,
        "the input is untouched"
    );
    // A folder that cannot be written: exit 1 (not bad input), the path named once.
    let e = gpushare_fails(1, &["trace", "convert", trace, "--out", "/proc/no-such-dir/x.csv"]);
    assert_eq!(e.matches("/proc/no-such-dir/x.csv").count(), 1, "{e}");
}

/// A disk that fills during a run (an output's temporary made a link to /dev/full): exit 1, the
/// message names the file and does not blame the policy, and nothing is left behind — for the
/// streamed outputs, invocation records and GPU samples alike.
#[test]
fn a_disk_that_fills_mid_run_names_the_file_and_leaves_nothing() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full here: nothing to check");
        return;
    }
    for (file, extra) in [
        ("invocations.csv", None),
        ("timeseries.csv", Some("output.timeseries_s=0.01")),
    ] {
        let dir = common::temp_dir(&format!("full-{file}"));
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink("/dev/full", out.join(format!("{file}.tmp"))).unwrap();
        let e = gpushare_fails(
            1,
            &common::run_args("scenarios/quickstart.toml", &out, extra.as_slice()),
        );
        assert!(e.contains(&format!("{file}: No space left on device")), "{file}: {e}");
        assert!(!e.contains("policy"), "{file}: the policy is blamed: {e}");
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{file}: left behind {left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
