//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use gpushare_sim::record::{InvocationRecord, NullSink, RecordSink};
use gpushare_sim::{ScenarioSource, Simulation, Summary};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;

/// Simulates a scenario given as TOML text, without writing files.
pub fn simulate(text: &str) -> Summary {
    simulate_file(Path::new("test.toml"), text)
}

/// Simulates scenario text as if it were the file `file` (relative paths resolve beside it).
pub fn simulate_file(file: &Path, text: &str) -> Summary {
    simulate_source(&ScenarioSource::from_text(file, text))
}

/// Parses and simulates a scenario source; panics with the located error.
pub fn simulate_source(src: &ScenarioSource) -> Summary {
    let scenario = src.parse().unwrap_or_else(|e| panic!("{e}"));
    let policy = gpushare_policies::build(&scenario).unwrap_or_else(|e| panic!("{}", src.locate(e)));
    run(&scenario, policy)
}

/// Parses and simulates a scenario source, handing every invocation record to `keep`: the
/// summary and what `keep` returned of the records, in the order they were written.
pub fn simulate_keeping<T: 'static>(
    src: &ScenarioSource,
    keep: impl FnMut(&InvocationRecord<'_>) -> Option<T> + 'static,
) -> (Summary, Vec<T>) {
    struct Keep<T, F>(Rc<RefCell<Vec<T>>>, F);
    impl<T, F: FnMut(&InvocationRecord<'_>) -> Option<T>> RecordSink for Keep<T, F> {
        fn record(&mut self, r: &InvocationRecord<'_>) -> std::io::Result<()> {
            self.0.borrow_mut().extend((self.1)(r));
            Ok(())
        }
    }
    let scenario = src.parse().unwrap_or_else(|e| panic!("{e}"));
    let policy = gpushare_policies::build(&scenario).unwrap_or_else(|e| panic!("{}", src.locate(e)));
    let kept = Rc::new(RefCell::new(Vec::new()));
    let out = Simulation::new(&scenario, policy, Box::new(Keep(kept.clone(), keep)))
        .unwrap()
        .run()
        .unwrap();
    (out.summary, kept.take())
}

fn run(scenario: &gpushare_sim::Scenario, policy: Box<dyn gpushare_sim::policy::Policy>) -> Summary {
    Simulation::new(scenario, policy, Box::new(NullSink))
        .unwrap()
        .run()
        .unwrap()
        .summary
}

/// The number that follows `before` in `text`, up to the next space (e.g. a figure in a
/// policy's report line).
pub fn number_after<T: std::str::FromStr>(text: &str, before: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let after = text
        .split(before)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{before}` in {text:?}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

/// Runs the `gpushare` binary with `args` from the repository root.
pub fn gpushare(args: &[&str]) -> Output {
    // A test binary carried to another machine (a GPU machine without a Rust toolchain) finds
    // the binary and the checkout through GPUSHARE_BIN and GPUSHARE_REPO.
    let bin =
        std::env::var_os("GPUSHARE_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gpushare")), PathBuf::from);
    Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("gpushare runs")
}

/// Runs the `gpushare` binary with `args`, asserting that it succeeds; returns what it printed.
pub fn gpushare_ok(args: &[&str]) -> String {
    let o = gpushare(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Runs the `gpushare` binary with `args`, asserting that it exits with `code`; returns what it
/// said on standard error.
pub fn gpushare_fails(code: i32, args: &[&str]) -> String {
    let o = gpushare(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    err
}

/// [`gpushare_fails`] with exit code 2 (bad input), asserting that the error says `says`.
pub fn gpushare_refuses(args: &[&str], says: &str) {
    let err = gpushare_fails(2, args);
    assert!(err.contains(says), "{args:?}: {err}");
}

/// The arguments of `gpushare run SCENARIO -q --out OUT`, with `--set` before each of `sets`.
pub fn run_args<'a>(scenario: &'a str, out: &'a Path, sets: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", scenario, "-q", "--out", out.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    args
}

/// `gpushare sweep` of `scenario` (a copy of [`SWEEP`]) into `out` with one seed and a third
/// axis from the command line, `cluster.gpus_per_node=1,2`: 8 runs. Returns what it printed.
pub fn sweep_over_gpus_per_node(scenario: &Path, out: &Path) -> String {
    gpushare_ok(&[
        "sweep",
        scenario.to_str().unwrap(),
        "-q",
        "--seeds",
        "1",
        "--axis",
        "cluster.gpus_per_node=1,2",
        "--out",
        out.to_str().unwrap(),
    ])
}

pub fn repo_root() -> PathBuf {
    std::env::var_os("GPUSHARE_REPO").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// A fresh, empty temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpushare-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every bundled scenario file, sorted.
pub fn bundled_scenarios() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root().join("scenarios"), &mut out);
    out.sort();
    out
}

/// Simulates a parsed (possibly modified) scenario, without writing files.
pub fn simulate_scenario(scenario: &gpushare_sim::Scenario) -> Summary {
    let policy = gpushare_policies::build(scenario).unwrap_or_else(|e| panic!("{e:?}"));
    run(scenario, policy)
}

/// Two policies × two loads × two seeds on one A100: eight short runs.
pub const SWEEP: &str = r#"
name = "tiny"
[simulation]
seed = 5
horizon_s = 20.0
warmup_s = 2.0
slo_s = 0.05
[cluster]
nodes = 1
gpus_per_node = 2
gpu = "a100-80gb"
[[functions]]
name = "c"
profile = "kaas-resnet50"
count = 3
rate_per_s = 60.0
zipf_s = 1.0
[workload]
kind = "poisson"
[policy]
name = "mps"
max_queue = 16
[output]
timeseries_s = 1.0
[sweep]
seeds = 2
policy = ["mps", { label = "ts", name = "time-sharing", max_queue = 16 }]
simulation.load_scale = [0.5, 1.0]
"#;

/// Writes `text` as a scenario in a fresh directory; returns its path.
pub fn scenario(name: &str, text: &str) -> PathBuf {
    let dir = temp_dir(name);
    let p = dir.join("s.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Seeds every trend test runs: 1 to `SEEDS`.
pub const SEEDS: u64 = 10;

/// A figure over seeds 1…`SEEDS`, run in parallel (the result does not depend on the order):
/// its mean and 95 % confidence interval (Student's t), and the values.
pub fn over_seeds(figure: impl Fn(u64) -> f64 + Sync) -> Seeds {
    use rayon::prelude::*;
    let values: Vec<f64> = (1..=SEEDS).into_par_iter().map(&figure).collect();
    let a = gpushare_reports::sweep::stats::aggregate(&values);
    Seeds {
        mean: a.mean,
        low: a.ci95_low,
        high: a.ci95_high,
        values,
    }
}

/// A figure's mean and 95 % interval over seeds.
#[derive(Clone, Debug)]
pub struct Seeds {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    pub values: Vec<f64>,
}

impl std::fmt::Display for Seeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let half = (self.high - self.low) / 2.0;
        write!(
            f,
            "{:.3} ± {:.3} (95 % CI, {} seeds)",
            self.mean,
            half,
            self.values.len()
        )
    }
}

/// Simulates a scenario file with overrides (and `simulation.seed` = `seed`).
pub fn simulate_with(file: &Path, sets: &[&str], seed: u64) -> Summary {
    let mut src = ScenarioSource::load(file).unwrap_or_else(|e| panic!("{e}"));
    for s in sets {
        src.set(s).unwrap_or_else(|e| panic!("{e}"));
    }
    src.set(&format!("simulation.seed={seed}")).unwrap();
    simulate_source(&src)
}
