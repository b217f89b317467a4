//! `gpushare sweep`: a scenario over the Cartesian product of its axes ([`spec`]), each point
//! run with one or more seeds, in parallel, into one directory of results ([`table`]).
//!
//! Every run is a whole `gpushare run` of its point (its own directory under `runs/`, with
//! `summary.json`, `latency_cdf.csv` and whatever `[output]` asks for, plus `point.json`), and
//! depends only on its scenario and seed: results do not depend on the thread count or on which
//! shard ran them. Every point is validated — scenario and policy — before the first run starts,
//! so bad input costs nothing. `--shard I/N` runs the runs whose index is I − 1 modulo N;
//! [`merge`] joins shard directories into exactly what one unsharded sweep writes.
//!
//! Memory does not grow with the number of runs: the plan keeps the scenario and the axes and
//! makes each run when it runs ([`Plan::run`]); runs go to the threads one per task, in run order,
//! at most a window of them started and not yet written; their rows are written in run order as
//! they complete ([`writer`]); `merge` reads its shards' tables side by side, a row at a time.

pub mod spec;
pub mod stats;
pub mod table;
pub mod writer;

use crate::run_files::{RunFailure, simulate_into};
use crate::summary_files::summary_metrics;
use gpushare_sim::policy::Policy;
use gpushare_sim::scenario::ConfigError;
use gpushare_sim::serving::ServingScenario;
use gpushare_sim::{Scenario, ScenarioSource};
use spec::{SweepSpec, replicate_seed};
use std::collections::BTreeMap;
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
    /// Runs started and not yet written at most: those running and those finished ahead of an
    /// earlier run, waiting to be written in run order (0: the default, [`WINDOW_PER_THREAD`]
    /// per thread).
    pub window: usize,
}

/// The default window per thread: enough runs that a long run holding back the rows after it
/// seldom stops new runs from starting, few enough that the rows waiting take little memory.
pub const WINDOW_PER_THREAD: usize = 128;

/// The most runs (points × seeds) one sweep may plan. Nothing a sweep holds in memory grows with
/// its runs; every run writes its own folder, so the limit is the disk's.
pub const MAX_RUNS: usize = 100_000_000;

/// A point's scenario: one for the invocation engine, or an LLM serving scenario (a
/// `[serving]` table: `gpushare_sim::serving`).
enum PointScenario {
    Engine(Box<Scenario>),
    Serving(Box<ServingScenario>),
}

impl PointScenario {
    /// Reads `src` as the kind of scenario it is.
    fn parse(src: &ScenarioSource) -> Result<PointScenario, gpushare_sim::scenario::ScenarioError> {
        if gpushare_sim::serving::is_serving(src) {
            Ok(PointScenario::Serving(Box::new(ServingScenario::parse(src)?)))
        } else {
            Ok(PointScenario::Engine(Box::new(src.parse()?)))
        }
    }

    fn name(&self) -> &str {
        match self {
            PointScenario::Engine(s) => &s.name,
            PointScenario::Serving(s) => &s.name,
        }
    }

    fn seed(&self) -> u64 {
        match self {
            PointScenario::Engine(s) => s.seed,
            PointScenario::Serving(s) => s.file.simulation.seed,
        }
    }
}

/// Point `p` of the sweep: its scenario source and the scenario.
fn point_source(
    src: &ScenarioSource,
    spec: &SweepSpec,
    p: usize,
) -> Result<(ScenarioSource, PointScenario), SweepError> {
    let input = |e: String| SweepError::Input(e);
    let mut point_src = src.clone();
    spec.apply(&mut point_src, p).map_err(|e| input(e.to_string()))?;
    let scenario = PointScenario::parse(&point_src).map_err(|e| input(e.to_string()))?;
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
        if let PointScenario::Engine(s) = &scenario {
            build(s).map_err(|e| input(point_src.locate(e).to_string()))?;
        }
        if p == 0 {
            name = scenario.name().to_string();
            seeds = (0..spec.seeds).map(|r| replicate_seed(scenario.seed(), r)).collect();
            common_seed = Some(scenario.seed());
        } else if common_seed != Some(scenario.seed()) {
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
            None => PointScenario::parse(&source).map_err(|e| input(e.to_string()))?.seed(),
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

/// Runs `shard` of `plan` on `opts.jobs` threads, at most a window of runs at a time, and hands
/// their rows to `sink` in run order; returns how many runs were kept from an earlier sweep.
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
    // One run per task (runs differ in length, and rayon's blocks of runs left one thread idle
    // at the end: 1.64x on two threads instead of 1.86x; BENCHMARKS.md), started in run order
    // while fewer than `window` runs are running or waiting to be written.
    let ran = pool.in_place_scope(|scope| in_window(scope, &runner, shard, window, sink));
    if let Some(b) = &runner.bar {
        b.finish_and_clear();
    }
    ran?;
    Ok(runner.kept.into_inner())
}

/// What a run's task sends back: its index in the shard and its row, its error or its panic.
type Done = (usize, std::thread::Result<Result<RunRow, SweepError>>);

/// Runs the shard's runs as tasks of `scope`, at most `window` of them started and not yet
/// written, and hands their rows to `sink` in run order as they complete (those that finish
/// early wait in a reorder buffer no larger than the window). After an error no run starts;
/// those running finish, and the first error is returned.
fn in_window<'s>(
    scope: &rayon::Scope<'s>,
    runner: &'s Runner<'s>,
    shard: Shard,
    window: usize,
    sink: &mut dyn FnMut(RunRow) -> Result<(), SweepError>,
) -> Result<(), SweepError> {
    let (tx, rx) = std::sync::mpsc::channel::<Done>();
    let mut waiting: BTreeMap<usize, RunRow> = BTreeMap::new();
    let (mut started, mut finished, mut written) = (0, 0, 0);
    let mut failed: Option<SweepError> = None;
    loop {
        while failed.is_none() && started < shard.count && started < written + window.max(1) {
            let (tx, j) = (tx.clone(), started);
            scope.spawn(move |_| {
                let run = shard.first + j * shard.step;
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.one(run)));
                // The receiver outlives every task: it waits for each one's message.
                let _ = tx.send((j, done));
            });
            started += 1;
        }
        if finished == started {
            return failed.map_or(Ok(()), Err);
        }
        let (j, done) = rx.recv().expect("every started run sends its result");
        finished += 1;
        match done {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(Err(e)) => {
                failed.get_or_insert(e);
            }
            Ok(Ok(row)) if failed.is_none() => {
                waiting.insert(j, row);
                while let Some(row) = waiting.remove(&written) {
                    written += 1;
                    if let Err(e) = sink(row) {
                        failed = Some(e);
                        break;
                    }
                }
            }
            Ok(Ok(_)) => {}
        }
        if failed.is_some() {
            waiting.clear();
        }
    }
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
    let scenario = match PointScenario::parse(&r.source).map_err(|e| fail(e.to_string()))? {
        PointScenario::Engine(s) => *s,
        PointScenario::Serving(s) => return serve_run(r, &s, dir, opts, info),
    };
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

/// [`simulate_run`] of an LLM serving point: its run's files as `gpushare run` writes them
/// (`invocations.csv` only with `--invocations`), then `point.json`; its summary's figures.
fn serve_run(
    r: &PlannedRun,
    scenario: &ServingScenario,
    dir: Option<PathBuf>,
    opts: &Options,
    info: &SweepInfo,
) -> Result<Vec<(String, f64)>, SweepError> {
    let fail = |e: String| SweepError::Run(format!("run {} ({}): {e}", r.run, r.labels.join(", ")));
    let keep = dir.is_some() && opts.invocations && scenario.file.output.invocations.unwrap_or(true);
    if let Some(dir) = &dir {
        match std::fs::remove_file(dir.join("point.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e.to_string())),
            _ => {}
        }
    }
    let run = gpushare_sim::serving::run(scenario, keep).map_err(fail)?;
    if let Some(dir) = &dir {
        crate::serving_files::write_serving(dir, &run).map_err(|e| fail(e.to_string()))?;
        crate::atomic::write_atomic(&dir.join("point.json"), point_json(r, info).as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let value = serde_json::to_value(&run.summary).map_err(|e| fail(e.to_string()))?;
    Ok(crate::summary_files::summary_metrics_of(&value))
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

/// Hands `f` every row of the shards' `runs.csv`, in run order, with its shard's directory
/// (the rows of each shard are in run order, as a sweep writes them; the shards are read side by
/// side, a row of each at a time).
fn merged_rows(
    shards: &[PathBuf],
    info: &SweepInfo,
    f: &mut dyn FnMut(RunRow, &Path) -> Result<(), SweepError>,
) -> Result<(), SweepError> {
    let input = SweepError::Input;
    let mut readers = Vec::new();
    for dir in shards {
        let mut r = table::RunsReader::open(dir, info).map_err(input)?;
        let head = r.next_row().map_err(input)?;
        readers.push((r, head, dir));
    }
    loop {
        // The shard whose next row has the lowest run; a tie is a run in two shards.
        let mut lowest: Option<(usize, usize)> = None;
        for (k, (_, head, dir)) in readers.iter().enumerate() {
            let Some((row, _)) = head else { continue };
            match lowest {
                Some((low, _)) if low == row.run => {
                    return Err(input(format!(
                        "run {} appears in two shards (again in {})",
                        row.run,
                        dir.display()
                    )));
                }
                Some((low, _)) if low < row.run => {}
                _ => lowest = Some((row.run, k)),
            }
        }
        let Some((_, k)) = lowest else { return Ok(()) };
        let (reader, head, dir) = &mut readers[k];
        let (row, _) = head.take().expect("a shard with a next row");
        let next = reader.next_row().map_err(input)?;
        if let Some((later, line)) = &next {
            if later.run <= row.run {
                return Err(input(reader.at(
                    *line,
                    if later.run == row.run {
                        format!("run: {} appears twice", later.run)
                    } else {
                        format!(
                            "run {} after run {}: a shard's runs.csv lists its runs in run order, as `sweep` writes it",
                            later.run, row.run
                        )
                    },
                )));
            }
        }
        *head = next;
        f(row, dir)?;
    }
}

/// Joins the shard directories `shards` (of one sweep, together every run) into `out`: the
/// same files an unsharded sweep writes. The shards' tables are read a row at a time, three
/// times (every run once; every summary whole; copies and tables), so that memory does not grow
/// with the runs.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<SweepInfo, SweepError> {
    let input = SweepError::Input;
    let Some(first) = shards.first() else {
        return Err(input("give at least one shard directory".into()));
    };
    let mut info = table::read_info(first).map_err(input)?;
    info.shard = None;
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
    }
    let (mut count, mut next, mut missing) = (0, 0, Vec::new());
    merged_rows(shards, &info, &mut |r, _| {
        missing.extend((next..r.run).take(10 - missing.len()).map(|k| k.to_string()));
        (count, next) = (count + 1, r.run + 1);
        Ok(())
    })?;
    missing.extend((next..info.runs).take(10 - missing.len()).map(|k| k.to_string()));
    if count != info.runs {
        return Err(input(format!(
            "the shards hold {count} of the sweep's {} runs; missing runs include {}",
            info.runs,
            missing.join(", ")
        )));
    }
    // Every run's summary must be whole before anything is copied: a shard cut short (a full
    // disk, a killed job) must not merge into a sweep that looks complete.
    merged_rows(shards, &info, &mut |r, dir| {
        let summary = run_dir(dir, r.run, info.runs).join("summary.json");
        let text = std::fs::read_to_string(&summary).map_err(|e| input(format!("{}: {e}", summary.display())))?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
            input(format!(
                "{}: not a whole summary ({e}); run that shard again",
                summary.display()
            ))
        })?;
        Ok(())
    })?;
    let io = |e: std::io::Error| SweepError::Run(format!("writing into {}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(|e| SweepError::Run(format!("creating {}: {e}", out.display())))?;
    let mut tables = TableWriter::create(out, &info).map_err(io)?;
    merged_rows(shards, &info, &mut |r, dir| {
        let (from, to) = (run_dir(dir, r.run, info.runs), run_dir(out, r.run, info.runs));
        copy_dir(&from, &to)
            .map_err(|e| SweepError::Run(format!("copying {} into {}: {e}", from.display(), to.display())))?;
        tables.push(&r).map_err(io)
    })?;
    tables.finish(&info).map_err(io)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep of 5 horizons × 3 seeds on one GPU; the first point's runs are by far the
    /// longest, so that on two threads later runs finish before earlier ones.
    const SCENARIO: &str = r#"
name = "window"
[simulation]
seed = 3
horizon_s = 1.0
[cluster]
nodes = 1
gpus_per_node = 1
gpu = "a100-80gb"
[[functions]]
name = "c"
profile = "kaas-resnet50"
count = 1
rate_per_s = 20.0
[workload]
kind = "poisson"
[policy]
name = "exclusive"
[sweep]
seeds = 3
simulation.horizon_s = [40.0, 1.0, 2.0, 3.0, 4.0]
"#;

    fn planned() -> Plan {
        let src = ScenarioSource::from_text(Path::new("window.toml"), SCENARIO);
        let spec = SweepSpec::from_source(&src).unwrap();
        plan(&src, &spec, &gpushare_policies::build).unwrap()
    }

    fn options(jobs: usize, window: usize, shard: Option<(usize, usize)>) -> Options {
        Options {
            jobs,
            shard,
            invocations: false,
            progress: false,
            resume: false,
            window,
        }
    }

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn runs_are_made_from_the_plan_in_run_order() {
        let p = planned();
        assert_eq!((p.info.points, p.info.runs, p.seed), (5, 15, Some(3)));
        let r = p.run(7).unwrap();
        assert_eq!((r.run, r.point, r.replicate), (7, 2, 1));
        assert_eq!(
            (r.seed, r.labels.as_slice()),
            (p.info.seeds[1], ["2.0".to_string()].as_slice())
        );
        assert_eq!(r.source.parse().unwrap().seed, r.seed);
    }

    /// Whatever the window (one run, a window ending inside a point, all runs) and the thread
    /// count, the folder is the same, and the rows come in run order although on two threads
    /// runs finish out of order (the first point's are the longest).
    #[test]
    fn windows_and_threads_do_not_change_the_output() {
        let dir = gpushare_traces::tempdir::TempDir::new("sweep-windows").unwrap();
        let mut trees = Vec::new();
        for (jobs, window) in [(1, 0), (2, 1), (2, 4), (2, 0), (1, 7)] {
            let out = dir.path().join(format!("j{jobs}w{window}"));
            let (runs, kept) =
                execute(planned(), &out, &options(jobs, window, None), &gpushare_policies::build).unwrap();
            assert_eq!((runs, kept), (15, 0));
            trees.push(files(&out));
        }
        assert!(trees.iter().all(|t| *t == trees[0]), "the outputs differ");
        let runs_csv = &trees[0].iter().find(|(p, _)| p == Path::new("runs.csv")).unwrap().1;
        let order: Vec<String> = String::from_utf8_lossy(runs_csv)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        assert_eq!(order, (0..15).map(|k| k.to_string()).collect::<Vec<_>>());
        let rows = run_in_memory(planned(), &options(2, 4, None), &gpushare_policies::build).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.run).collect::<Vec<_>>(),
            (0..15).collect::<Vec<_>>()
        );
    }

    /// A shard makes its own runs only, and removes the folders of runs that are not its own.
    #[test]
    fn a_shard_runs_and_keeps_its_own_runs() {
        let dir = gpushare_traces::tempdir::TempDir::new("sweep-shard-window").unwrap();
        let out = dir.path().join("s");
        let stale = [run_dir(&out, 0, 15), run_dir(&out, 15, 15), out.join("runs").join("1")];
        for d in &stale {
            std::fs::create_dir_all(d).unwrap();
        }
        let (runs, _) = execute(planned(), &out, &options(2, 2, Some((2, 4))), &gpushare_policies::build).unwrap();
        assert_eq!(runs, 4);
        let mut left: Vec<String> = std::fs::read_dir(out.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["0001", "0005", "0009", "0013"]);
        let csv = std::fs::read_to_string(out.join("runs.csv")).unwrap();
        let runs: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(runs, ["1", "5", "9", "13"]);
        let bad = execute(planned(), &out, &options(1, 0, Some((5, 4))), &gpushare_policies::build);
        assert!(matches!(bad, Err(SweepError::Input(m)) if m.contains("--shard 5/4")));
    }

    /// A run that fails stops the sweep: no run starts after it, its error is returned, and no
    /// table (nor a temporary) is left in the folder.
    #[test]
    fn a_failed_run_leaves_no_tables() {
        let dir = gpushare_traces::tempdir::TempDir::new("sweep-fails").unwrap();
        let out = dir.path().join("f");
        std::fs::create_dir_all(out.join("runs")).unwrap();
        // A file where run 4's folder goes: that run cannot write its files.
        std::fs::write(run_dir(&out, 4, 15), "not a folder").unwrap();
        for (jobs, window) in [(1, 0), (2, 3)] {
            let e = execute(planned(), &out, &options(jobs, window, None), &gpushare_policies::build);
            assert!(
                matches!(&e, Err(SweepError::Run(m)) if m.starts_with("run 4 (1.0)")),
                "{:?}",
                e.err()
            );
            let mut left: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(left, ["runs"]);
        }
    }
}
