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
pub mod writer;

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
use writer::TableWriter;

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

/// One run to do, made from the plan when it is run ([`Plan::run`]).
pub struct PlannedRun {
    pub run: usize,
    pub point: usize,
    pub replicate: u32,
    pub seed: u64,
    pub labels: Vec<String>,
    source: ScenarioSource,
}

/// A validated sweep, ready to run. It holds the scenario and the axes, not the runs: each run
/// is made from them when it is run, so that a plan's size does not grow with its runs.
pub struct Plan {
    pub info: SweepInfo,
    src: ScenarioSource,
    spec: SweepSpec,
    /// The scenario seed of every point, where the axes leave it the same (they usually do): a
    /// run's seed is then known without parsing its point.
    seed: Option<u64>,
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
    /// Runs in flight at most, and rows waiting to be written in run order (0: the default,
    /// [`WINDOW_PER_THREAD`] per thread).
    pub window: usize,
}

/// The default window per thread: enough runs that a window's end, where threads wait for its
/// longest run, costs little, few enough that a window's rows take little memory.
pub const WINDOW_PER_THREAD: usize = 128;

/// The most runs (points × seeds) one sweep may plan. Nothing a sweep holds in memory grows with
/// its runs; every run writes its own folder, so the limit is the disk's.
pub const MAX_RUNS: usize = 100_000_000;

/// Point `p` of the sweep: its scenario source and the scenario.
fn point_source(src: &ScenarioSource, spec: &SweepSpec, p: usize) -> Result<(ScenarioSource, Scenario), SweepError> {
    let input = |e: String| SweepError::Input(e);
    let mut point_src = src.clone();
    spec.apply(&mut point_src, p).map_err(|e| input(e.to_string()))?;
    let scenario = point_src.parse().map_err(|e| input(e.to_string()))?;
    Ok((point_src, scenario))
}

/// Expands `spec` over `src` and validates every point: its scenario parses and its policy
/// builds. The points are checked one at a time and nothing of them is kept but the first
/// one's name and seed.
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
    let mut name = String::new();
    let mut seeds = Vec::new();
    let mut common_seed = None;
    for p in 0..spec.points() {
        let (point_src, scenario) = point_source(src, spec, p)?;
        build(&scenario).map_err(|e| input(point_src.locate(e).to_string()))?;
        if p == 0 {
            name = scenario.name.clone();
            seeds = (0..spec.seeds).map(|r| replicate_seed(scenario.seed, r)).collect();
            common_seed = Some(scenario.seed);
        } else if common_seed != Some(scenario.seed) {
            common_seed = None;
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
        runs: runs_wanted,
        shard: None,
    };
    Ok(Plan {
        info,
        src: src.clone(),
        spec: spec.clone(),
        seed: common_seed,
    })
}

impl Plan {
    /// Run `run` (below `info.runs`): point `run / seeds`, replicate `run % seeds`.
    pub fn run(&self, run: usize) -> Result<PlannedRun, SweepError> {
        let input = |e: String| SweepError::Input(e);
        let per_point = self.spec.seeds.max(1) as usize;
        let (point, replicate) = (run / per_point, (run % per_point) as u32);
        let mut source = self.src.clone();
        self.spec.apply(&mut source, point).map_err(|e| input(e.to_string()))?;
        let base = match self.seed {
            Some(seed) => seed,
            None => source.parse().map_err(|e| input(e.to_string()))?.seed,
        };
        let seed = replicate_seed(base, replicate);
        if replicate > 0 {
            source
                .set_value(
                    &format!("[sweep] seed of replicate {replicate}"),
                    "simulation.seed",
                    toml::Value::Integer(seed as i64),
                )
                .map_err(|e| input(e.to_string()))?;
        }
        let labels = self
            .spec
            .axes
            .iter()
            .zip(self.spec.coordinates(point))
            .map(|(a, k)| a.values[k].label.clone())
            .collect();
        Ok(PlannedRun {
            run,
            point,
            replicate,
            seed,
            labels,
            source,
        })
    }
}

/// The runs of one shard: `first`, `first + step`, … below the sweep's total.
#[derive(Clone, Copy)]
struct Shard {
    first: usize,
    step: usize,
    /// How many.
    count: usize,
}

impl Shard {
    /// Checks `opts.shard` and marks `info` with it.
    fn of(info: &mut SweepInfo, opts: &Options) -> Result<Shard, SweepError> {
        let (i, n) = opts.shard.unwrap_or((1, 1));
        if n == 0 || i == 0 || i > n {
            return Err(SweepError::Input(format!(
                "--shard {i}/{n}: expected I/N with 1 ≤ I ≤ N"
            )));
        }
        if opts.shard.is_some() {
            info.shard = Some(format!("{i}/{n}"));
        }
        let first = i - 1;
        let count = info.runs.saturating_sub(first).div_ceil(n);
        Ok(Shard { first, step: n, count })
    }

    fn holds(&self, run: usize) -> bool {
        run % self.step == self.first
    }
}

/// Removes the run folders under `out/runs` that this shard of the sweep does not write (an
/// earlier, larger sweep's), so that the folder never holds runs its tables do not list.
fn remove_stale_runs(out: &Path, total: usize, shard: Shard) -> Result<(), SweepError> {
    let runs = out.join("runs");
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let numbered = name.chars().all(|c| c.is_ascii_digit());
        let ours = name
            .parse::<usize>()
            .is_ok_and(|k| k < total && shard.holds(k) && run_dir(out, k, total) == p);
        if numbered && p.is_dir() && !ours {
            std::fs::remove_dir_all(&p)
                .map_err(|err| SweepError::Run(format!("removing the stale run {}: {err}", p.display())))?;
        }
    }
    Ok(())
}

/// The directory of run `run` of `total`.
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

/// Runs `plan` (or its shard) into `out` and writes the tables as the runs complete; returns
/// how many runs it holds and how many were kept from an earlier sweep (`resume`).
pub fn execute(
    mut plan: Plan,
    out: &Path,
    opts: &Options,
    build: &PolicyBuilder,
) -> Result<(usize, usize), SweepError> {
    let shard = Shard::of(&mut plan.info, opts)?;
    std::fs::create_dir_all(out).map_err(|e| SweepError::Run(format!("creating {}: {e}", out.display())))?;
    remove_stale_runs(out, plan.info.runs, shard)?;
    let io = |e: std::io::Error| SweepError::Run(format!("writing into {}: {e}", out.display()));
    let mut tables = TableWriter::create(out, &plan.info).map_err(io)?;
    let kept = run_windows(&plan, shard, Some(out), opts, build, &mut |row| {
        tables.push(&row).map_err(io)
    })?;
    tables.finish(&plan.info).map_err(io)?;
    Ok((shard.count, kept))
}

/// Runs `plan` without writing anything (for `gpushare check`); returns the rows.
pub fn run_in_memory(mut plan: Plan, opts: &Options, build: &PolicyBuilder) -> Result<Vec<RunRow>, SweepError> {
    let shard = Shard::of(&mut plan.info, opts)?;
    let mut rows = Vec::new();
    run_windows(&plan, shard, None, opts, build, &mut |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// What every run of a sweep shares.
struct Runner<'a> {
    plan: &'a Plan,
    out: Option<&'a Path>,
    opts: &'a Options,
    build: &'a PolicyBuilder,
    todo: usize,
    done: AtomicUsize,
    kept: AtomicUsize,
    bar: Option<indicatif::ProgressBar>,
    plain: Mutex<()>,
}

impl Runner<'_> {
    /// Does run `run` (or keeps it from an earlier sweep) and reports it.
    fn one(&self, run: usize) -> Result<RunRow, SweepError> {
        let (info, opts) = (&self.plan.info, self.opts);
        let r = self.plan.run(run)?;
        let started = Instant::now();
        let kept = match self.out {
            Some(out) if opts.resume => resumed(&run_dir(out, r.run, info.runs), &r),
            _ => None,
        };
        let was_kept = kept.is_some();
        let metrics = match kept {
            Some(metrics) => metrics,
            None => simulate_run(
                &r,
                self.out.map(|o| run_dir(o, r.run, info.runs)),
                opts,
                self.build,
                info,
            )?,
        };
        self.kept.fetch_add(usize::from(was_kept), Ordering::Relaxed);
        let k = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(b) => b.inc(1),
            None if opts.progress => {
                let _guard = self.plain.lock();
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
                eprintln!(
                    "[{k}/{}] run {} ({}{seed}) {how}",
                    self.todo,
                    r.run,
                    r.labels.join(", ")
                );
            }
            None => {}
        }
        Ok(RunRow {
            run: r.run,
            point: r.point,
            replicate: r.replicate,
            seed: r.seed,
            labels: r.labels,
            metrics,
        })
    }
}

/// Runs `shard` of `plan` a window at a time and hands each window's rows to `sink` in run
/// order; returns how many runs were kept from an earlier sweep.
fn run_windows(
    plan: &Plan,
    shard: Shard,
    out: Option<&Path>,
    opts: &Options,
    build: &PolicyBuilder,
    sink: &mut dyn FnMut(RunRow) -> Result<(), SweepError>,
) -> Result<usize, SweepError> {
    let todo = shard.count;
    let bar = (opts.progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(todo as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, about {eta} left")
                .expect("valid template"),
        );
        b
    });
    let runner = Runner {
        plan,
        out,
        opts,
        build,
        todo,
        done: AtomicUsize::new(0),
        kept: AtomicUsize::new(0),
        bar,
        plain: Mutex::new(()),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| SweepError::Run(format!("starting {} threads: {e}", opts.jobs)))?;
    let window = match opts.window {
        0 => WINDOW_PER_THREAD * opts.jobs.max(1),
        w => w,
    };
    // A window's rows come back in run order whatever order its runs finish in, and are written
    // before the next window starts: memory holds one window, however many runs. One run per
    // task: runs differ in length, and rayon's default blocks of runs left one thread idle at
    // the end (1.64x on two threads instead of 1.86x; BENCHMARKS.md).
    for start in (0..todo).step_by(window) {
        let runs = start..(start + window).min(todo);
        let rows: Vec<RunRow> = pool.install(|| {
            runs.into_par_iter()
                .with_max_len(1)
                .map(|j| runner.one(shard.first + j * shard.step))
                .collect::<Result<_, _>>()
        })?;
        rows.into_iter().try_for_each(&mut *sink)?;
    }
    if let Some(b) = &runner.bar {
        b.finish_and_clear();
    }
    Ok(runner.kept.into_inner())
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
    writer::write_tables(out, info, rows).map_err(|e| SweepError::Run(format!("writing into {}: {e}", out.display())))
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
