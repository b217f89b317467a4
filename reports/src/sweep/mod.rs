//! `gpushare sweep`: a scenario over the Cartesian product of its axes ([`spec`]), each point
//! run with one or more seeds, in parallel, into one directory of results ([`table`]).
//!
//! Every run is a whole `gpushare run` of its point (its own directory under `runs/`, with
//! `summary.json`, `latency_cdf.csv` and whatever `[output]` asks for, plus `point.json`), and
//! depends only on its scenario and seed: results do not depend on the thread count or on which
//! shard ran them. Every point is validated — scenario and policy — before the first run starts,
//! so bad input costs nothing. `--shard I/N` runs the runs whose index is I − 1 modulo N;
//! [`merge`] joins shard directories into exactly what one unsharded sweep writes.

pub mod spec;
pub mod stats;
pub mod table;

use crate::run_files::{RunFailure, simulate_into};
use crate::summary_files::summary_metrics;
use gpushare_sim::policy::Policy;
use gpushare_sim::scenario::ConfigError;
use gpushare_sim::{Scenario, ScenarioSource};
use rayon::prelude::*;
use spec::{SweepSpec, replicate_seed};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use table::{AxisInfo, RunRow, SweepInfo};

/// Builds a run's policy (the registry of `gpushare-policies`; passed in so that this crate
/// depends on the simulator only).
pub type PolicyBuilder = dyn Fn(&Scenario) -> Result<Box<dyn Policy>, ConfigError> + Sync;

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Bad input (a scenario, an axis, a shard): nothing was run.
    #[error("{0}")]
    Input(String),
    /// A run failed or its files could not be written.
    #[error("{0}")]
    Run(String),
}

/// One run to do.
pub struct PlannedRun {
    pub run: usize,
    pub point: usize,
    pub replicate: u32,
    pub seed: u64,
    pub labels: Vec<String>,
    source: ScenarioSource,
}

/// A validated sweep, ready to run.
pub struct Plan {
    pub info: SweepInfo,
    pub runs: Vec<PlannedRun>,
}

/// How to run.
pub struct Options {
    /// Threads (at least 1).
    pub jobs: usize,
    /// `(I, N)`: run only shard I of N (1-based).
    pub shard: Option<(usize, usize)>,
    /// Keep each run's `invocations.csv` when its scenario asks for it (off by default: a
    /// sweep's invocations are rarely wanted and can be large).
    pub invocations: bool,
    /// Report progress on stderr.
    pub progress: bool,
    /// Keep the runs an earlier, interrupted sweep into the same folder completed: those whose
    /// `point.json` (written last) records this run's place and scenario fingerprint.
    pub resume: bool,
}

/// Expands `spec` over `src` and validates every point: its scenario parses and its policy
/// builds.
/// The most runs (points × seeds) one sweep may plan: its plan and tables are held in memory
/// (about 2 KB a run), and each point's scenario is parsed up front.
pub const MAX_RUNS: usize = 100_000;

pub fn plan(src: &ScenarioSource, spec: &SweepSpec, build: &PolicyBuilder) -> Result<Plan, SweepError> {
    let input = |e: String| SweepError::Input(e);
    let runs_wanted = spec.points().saturating_mul(spec.seeds as usize);
    if runs_wanted > MAX_RUNS {
        return Err(input(format!(
            "{} points × {} seeds = {runs_wanted} runs: a sweep may have at most {MAX_RUNS}; use fewer axis values or \
             seeds, or split the axes over several sweeps",
            spec.points(),
            spec.seeds
        )));
    }
    let mut runs = Vec::new();
    let mut name = String::new();
    let mut seeds = Vec::new();
    for p in 0..spec.points() {
        let mut point_src = src.clone();
        spec.apply(&mut point_src, p).map_err(|e| input(e.to_string()))?;
        let scenario = point_src.parse().map_err(|e| input(e.to_string()))?;
        build(&scenario).map_err(|e| input(point_src.locate(e).to_string()))?;
        if p == 0 {
            name = scenario.name.clone();
            seeds = (0..spec.seeds).map(|r| replicate_seed(scenario.seed, r)).collect();
        }
        let labels: Vec<String> = spec
            .axes
            .iter()
            .zip(spec.coordinates(p))
            .map(|(a, k)| a.values[k].label.clone())
            .collect();
        for r in 0..spec.seeds {
            let seed = replicate_seed(scenario.seed, r);
            let mut run_src = point_src.clone();
            if r > 0 {
                run_src
                    .set_value(
                        &format!("[sweep] seed of replicate {r}"),
                        "simulation.seed",
                        toml::Value::Integer(seed as i64),
                    )
                    .map_err(|e| input(e.to_string()))?;
            }
            runs.push(PlannedRun {
                run: runs.len(),
                point: p,
                replicate: r,
                seed,
                labels: labels.clone(),
                source: run_src,
            });
        }
    }
    let info = SweepInfo {
        scenario: name,
        file: src.file.display().to_string(),
        overrides: src.override_origins().iter().map(|s| s.to_string()).collect(),
        axes: spec
            .axes
            .iter()
            .map(|a| AxisInfo {
                key: a.key.clone(),
                labels: a.values.iter().map(|v| v.label.clone()).collect(),
            })
            .collect(),
        seeds,
        points: spec.points(),
        runs: runs.len(),
        shard: None,
    };
    Ok(Plan { info, runs })
}

/// The directory of run `run` of `total`.
/// Removes the run folders under `out/runs` that this plan does not write (an earlier, larger
/// sweep's), so that the folder never holds runs its tables do not list.
fn remove_stale_runs(out: &Path, plan: &Plan) -> Result<(), SweepError> {
    let runs = out.join("runs");
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return Ok(());
    };
    let ours: std::collections::HashSet<PathBuf> =
        plan.runs.iter().map(|r| run_dir(out, r.run, plan.info.runs)).collect();
    for e in entries.flatten() {
        let p = e.path();
        let numbered = e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit());
        if numbered && p.is_dir() && !ours.contains(&p) {
            std::fs::remove_dir_all(&p)
                .map_err(|err| SweepError::Run(format!("removing the stale run {}: {err}", p.display())))?;
        }
    }
    Ok(())
}

pub fn run_dir(out: &Path, run: usize, total: usize) -> PathBuf {
    let width = total.saturating_sub(1).to_string().len().max(4);
    out.join("runs").join(format!("{run:0width$}"))
}

fn point_json(r: &PlannedRun, info: &SweepInfo) -> String {
    let axes: Vec<serde_json::Value> = info
        .axes
        .iter()
        .zip(&r.labels)
        .map(|(a, l)| serde_json::json!({ "key": a.key, "value": l }))
        .collect();
    let v = serde_json::json!({
        "run": r.run, "point": r.point, "replicate": r.replicate, "seed": r.seed, "axes": axes,
        "scenario_fingerprint": r.source.fingerprint(),
    });
    let mut s = serde_json::to_string_pretty(&v).expect("serialises");
    s.push('\n');
    s
}

/// Runs `plan` (or its shard) into `out` and writes the tables; returns the rows and how many
/// runs were kept from an earlier sweep (`resume`).
pub fn execute(
    plan: Plan,
    out: &Path,
    opts: &Options,
    build: &PolicyBuilder,
) -> Result<(Vec<RunRow>, usize), SweepError> {
    run_all(plan, Some(out), opts, build)
}

/// Runs `plan` without writing anything (for `gpushare check`); returns the rows.
pub fn run_in_memory(plan: Plan, opts: &Options, build: &PolicyBuilder) -> Result<Vec<RunRow>, SweepError> {
    run_all(plan, None, opts, build).map(|(rows, _)| rows)
}

fn run_all(
    mut plan: Plan,
    out: Option<&Path>,
    opts: &Options,
    build: &PolicyBuilder,
) -> Result<(Vec<RunRow>, usize), SweepError> {
    if let Some((i, n)) = opts.shard {
        if n == 0 || i == 0 || i > n {
            return Err(SweepError::Input(format!(
                "--shard {i}/{n}: expected I/N with 1 ≤ I ≤ N"
            )));
        }
        plan.runs.retain(|r| r.run % n == i - 1);
        plan.info.shard = Some(format!("{i}/{n}"));
    }
    let total = plan.info.runs;
    let todo = plan.runs.len();
    if let Some(out) = out {
        std::fs::create_dir_all(out).map_err(|e| SweepError::Run(format!("creating {}: {e}", out.display())))?;
        remove_stale_runs(out, &plan)?;
    }
    let done = AtomicUsize::new(0);
    let kept_count = AtomicUsize::new(0);
    let bar = (opts.progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(todo as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, about {eta} left")
                .expect("valid template"),
        );
        b
    });
    let plain = Mutex::new(());
    let info = &plan.info;
    let one = |r: &PlannedRun| -> Result<RunRow, SweepError> {
        let started = Instant::now();
        let kept = match out {
            Some(out) if opts.resume => resumed(&run_dir(out, r.run, total), r),
            _ => None,
        };
        let was_kept = kept.is_some();
        let metrics = match kept {
            Some(metrics) => metrics,
            None => simulate_run(r, out.map(|o| run_dir(o, r.run, total)), opts, build, info)?,
        };
        kept_count.fetch_add(usize::from(was_kept), Ordering::Relaxed);
        let k = done.fetch_add(1, Ordering::Relaxed) + 1;
        match &bar {
            Some(b) => b.inc(1),
            None if opts.progress => {
                let _guard = plain.lock();
                let seed = if info.seeds.len() > 1 {
                    format!(", seed {}", r.seed)
                } else {
                    String::new()
                };
                let how = if was_kept {
                    "kept from the earlier sweep".to_string()
                } else {
                    format!("in {:.2} s", started.elapsed().as_secs_f64())
                };
                eprintln!("[{k}/{todo}] run {} ({}{seed}) {how}", r.run, r.labels.join(", "));
            }
            None => {}
        }
        Ok(RunRow {
            run: r.run,
            point: r.point,
            replicate: r.replicate,
            seed: r.seed,
            labels: r.labels.clone(),
            metrics,
        })
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| SweepError::Run(format!("starting {} threads: {e}", opts.jobs)))?;
    // Results come back in run order whatever order the threads finish in. One run per task:
    // runs differ in length, and rayon's default blocks of runs left one thread idle at the end
    // (1.64x on two threads instead of 1.86x; BENCHMARKS.md).
    let rows: Vec<RunRow> = pool.install(|| plan.runs.par_iter().with_max_len(1).map(one).collect::<Result<_, _>>())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(out) = out {
        write_tables(out, &plan.info, &rows)?;
    }
    Ok((rows, kept_count.into_inner()))
}

/// The metrics of run `r` as an earlier sweep left them in `dir`, if it completed there with
/// the same place and scenario fingerprint (`point.json` is written after every other file).
fn resumed(dir: &Path, r: &PlannedRun) -> Option<Vec<(String, f64)>> {
    let point: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("point.json")).ok()?).ok()?;
    let same = point["run"].as_u64() == Some(r.run as u64)
        && point["point"].as_u64() == Some(r.point as u64)
        && point["replicate"].as_u64() == Some(u64::from(r.replicate))
        && point["seed"].as_u64() == Some(r.seed)
        && point["scenario_fingerprint"].as_str() == Some(r.source.fingerprint().as_str());
    if !same {
        return None;
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).ok()?).ok()?;
    let metrics = crate::summary_files::summary_metrics_of(&summary);
    (!metrics.is_empty()).then_some(metrics)
}

/// Simulates run `r`, into `dir` where there is one (its `point.json` last, so that a run cut
/// short is never taken for a complete one); returns its metrics.
fn simulate_run(
    r: &PlannedRun,
    dir: Option<PathBuf>,
    opts: &Options,
    build: &PolicyBuilder,
    info: &SweepInfo,
) -> Result<Vec<(String, f64)>, SweepError> {
    let fail = |e: String| SweepError::Run(format!("run {} ({}): {e}", r.run, r.labels.join(", ")));
    let scenario = r.source.parse().map_err(|e| fail(e.to_string()))?;
    let policy = build(&scenario).map_err(|e| fail(r.source.locate(e).to_string()))?;
    let summary = match dir {
        Some(dir) => {
            match std::fs::remove_file(dir.join("point.json")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e.to_string())),
                _ => {}
            }
            let output = simulate_into(&dir, &scenario, policy, opts.invocations)
                .map_err(|e| match e {
                    RunFailure::Sim(e) => fail(e.to_string()),
                    other => fail(other.to_string()),
                })?
                .output;
            crate::atomic::write_atomic(&dir.join("point.json"), point_json(r, info).as_bytes())
                .map_err(|e| fail(e.to_string()))?;
            output.summary
        }
        None => {
            let sink = Box::new(gpushare_sim::record::NullSink);
            let sim = gpushare_sim::Simulation::new(&scenario, policy, sink).map_err(|e| fail(e.to_string()))?;
            sim.run().map_err(|e| fail(e.to_string()))?.summary
        }
    };
    Ok(summary_metrics(&summary))
}

fn write_tables(out: &Path, info: &SweepInfo, rows: &[RunRow]) -> Result<(), SweepError> {
    let io = |e: std::io::Error| SweepError::Run(format!("writing into {}: {e}", out.display()));
    table::write_runs(out, info, rows).map_err(io)?;
    table::write_summary_table(out, info, rows).map_err(io)?;
    table::write_info(out, info).map_err(io)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Joins the shard directories `shards` (of one sweep, together every run) into `out`: the
/// same files an unsharded sweep writes.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<SweepInfo, SweepError> {
    let input = SweepError::Input;
    let Some(first) = shards.first() else {
        return Err(input("give at least one shard directory".into()));
    };
    let mut info = table::read_info(first).map_err(input)?;
    info.shard = None;
    let mut rows: Vec<(RunRow, PathBuf)> = Vec::new();
    for dir in shards {
        if !dir.is_dir() {
            return Err(input(format!("{}: no such shard directory", dir.display())));
        }
        if out
            .canonicalize()
            .is_ok_and(|o| dir.canonicalize().is_ok_and(|d| d == o))
        {
            return Err(input(format!(
                "--out {} is one of the shards; merge into a new directory",
                out.display()
            )));
        }
        let mut this = table::read_info(dir).map_err(input)?;
        this.shard = None;
        if this != info {
            return Err(input(format!(
                "{} is not a shard of the same sweep as {} (their sweep.json differ beyond the shard)",
                dir.display(),
                first.display()
            )));
        }
        for r in table::read_runs(dir, &info).map_err(input)? {
            if rows.iter().any(|(o, _)| o.run == r.run) {
                return Err(input(format!(
                    "run {} appears in two shards (again in {})",
                    r.run,
                    dir.display()
                )));
            }
            rows.push((r, dir.clone()));
        }
    }
    rows.sort_by_key(|(r, _)| r.run);
    if rows.len() != info.runs {
        let have: Vec<usize> = rows.iter().map(|(r, _)| r.run).collect();
        let missing: Vec<String> = (0..info.runs)
            .filter(|k| !have.contains(k))
            .take(10)
            .map(|k| k.to_string())
            .collect();
        return Err(input(format!(
            "the shards hold {} of the sweep's {} runs; missing runs include {}",
            rows.len(),
            info.runs,
            missing.join(", ")
        )));
    }
    // Every run's summary must be whole before anything is copied: a shard cut short (a full
    // disk, a killed job) must not merge into a sweep that looks complete.
    for (r, dir) in &rows {
        let summary = run_dir(dir, r.run, info.runs).join("summary.json");
        let text = std::fs::read_to_string(&summary).map_err(|e| input(format!("{}: {e}", summary.display())))?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
            input(format!(
                "{}: not a whole summary ({e}); run that shard again",
                summary.display()
            ))
        })?;
    }
    for (r, dir) in &rows {
        let (from, to) = (run_dir(dir, r.run, info.runs), run_dir(out, r.run, info.runs));
        copy_dir(&from, &to)
            .map_err(|e| SweepError::Run(format!("copying {} into {}: {e}", from.display(), to.display())))?;
    }
    let rows: Vec<RunRow> = rows.into_iter().map(|(r, _)| r).collect();
    write_tables(out, &info, &rows)?;
    Ok(info)
}
