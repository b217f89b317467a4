//! The `gpushare` command line: parses arguments, calls the libraries, prints.
//!
//! Exit codes: 0 success; 1 a run failed (a policy broke an engine rule, an output could not be
//! written); 2 bad input (scenario, trace or arguments), with a message naming the file, line
//! and field.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gpushare_sim::record::NullSink;
use gpushare_sim::{Scenario, ScenarioSource, SimError, Simulation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod fidelity_cli;
mod help;
mod replay_cli;

#[derive(Parser)]
#[command(
    name = "gpushare",
    version,
    about = "Discrete-event simulator of GPU-sharing policies for serverless platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a scenario and write summary.json, summary.csv and invocations.csv.
    #[command(after_help = help::RUN)]
    Run(RunArgs),
    /// Check a scenario, its policy and its workload without simulating.
    #[command(after_help = help::VALIDATE)]
    Validate(ScenarioArgs),
    /// Run a scenario under several policies (in parallel) and print one Markdown table; or,
    /// given SIM_DIR REPLAY_DIR, set the simulator's predictions against a replay's measurements
    /// (p50, p99, throughput, utilisation, memory) as Markdown and CSV.
    #[command(after_help = help::COMPARE)]
    Compare {
        /// A scenario file (with --policy), or a simulation and a replay output directory (each
        /// a run directory or a directory of them, paired by scenario and policy).
        #[arg(required = true, num_args = 1..=2, value_name = "SCENARIO | SIM_DIR REPLAY_DIR")]
        paths: Vec<PathBuf>,
        /// Override a scenario field, e.g. --set policy.keep_alive_s=60 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Override simulation.seed.
        #[arg(long)]
        seed: Option<u64>,
        /// A policy to run: a name (`mps`), which keeps the scenario's other `[policy]` keys, or
        /// a whole table (`{ name = "mps", active_thread_percentage = 50 }`), which replaces
        /// them; `LABEL: TABLE` names the row `LABEL`. Repeatable; rows follow the order given.
        #[arg(long = "policy", value_name = "NAME|[LABEL: ]TABLE")]
        policies: Vec<String>,
        /// With two directories: where to write comparison.md and comparison.csv (default:
        /// REPLAY_DIR).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replay a scenario on a real GPU: its arrivals in real time, each policy's mechanism for
    /// real (processes, MPS, a kernel server, a shared context), results in the simulator's
    /// schema plus NVML samples.
    #[command(after_help = help::REPLAY)]
    Replay(replay_cli::ReplayArgs),
    /// Measure a GPU and write the device profile the simulator loads with
    /// `gpu = { profile = "FILE" }` and the replay sizes its kernels with.
    #[command(after_help = help::CALIBRATE)]
    Calibrate(replay_cli::CalibrateArgs),
    /// Benchmark: what the replay harness adds to an invocation, against a bare loop of the
    /// same operations (BENCHMARKS.md).
    #[command(after_help = help::REPLAY_OVERHEAD)]
    ReplayOverhead(replay_cli::OverheadArgs),
    /// What this machine can replay, in seconds: driver, GPU and compute mode, cuBLAS and
    /// NVRTC, a worker's context, time slicing, an MPS client (probe.json; --env for scripts).
    #[command(after_help = help::PROBE)]
    Probe(replay_cli::ProbeArgs),
    /// Measure a co-location matrix: synthetic compute-, memory-bound and mixed kernels alone
    /// and in pairs under time slicing and MPS caps 100/100, 50/50, 25/75 (colocation.csv).
    #[command(after_help = help::COLOCATE)]
    Colocate(replay_cli::ColocateArgs),
    /// A replay's worker process (started by `gpushare replay`).
    #[command(hide = true)]
    ReplayWorker,
    /// Run a scenario over the product of its `[sweep]` axes (and `--axis`), in parallel, into
    /// one results directory: runs.csv, summary.csv (mean and 95 % CI over seeds), sweep.json,
    /// and each run's files under runs/.
    #[command(after_help = help::SWEEP)]
    Sweep(SweepArgs),
    /// Draw the figures of a sweep's (or a run's) output directory, as SVG and PNG, into
    /// DIR/figures (see figures.md there).
    #[command(after_help = help::PLOT)]
    Plot {
        /// A `gpushare sweep` or `gpushare run` output directory.
        dir: PathBuf,
        /// The axis along x (default: simulation.load_scale, else the first numeric axis).
        #[arg(long)]
        x: Option<String>,
        /// The axis whose values are the lines (default: policy).
        #[arg(long)]
        series: Option<String>,
        /// Where to write the figures (default: DIR/figures).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Letter the panels of figures with more than one, (a), (b), …, for a paper's caption.
        #[arg(long)]
        panel_letters: bool,
    },
    /// Run the CI scenarios and compare their policy metrics with a baseline: exit 0 when
    /// nothing regressed, 1 when something did, 2 on bad input.
    #[command(after_help = help::CHECK)]
    Check {
        /// The baseline CSV (scenario,point,metric,value).
        #[arg(long, default_value = "reports/baselines/ci.csv")]
        baseline: PathBuf,
        /// The directory of scenarios to run, each as its [sweep].
        #[arg(long, default_value = "scenarios/ci")]
        scenarios: PathBuf,
        /// Relative tolerance per metric, METRIC=REL (repeatable, or comma-separated), e.g.
        /// latency_s.end_to_end.p99=0.2.
        #[arg(long = "tolerance", value_name = "METRIC=REL")]
        tolerance: Vec<String>,
        /// Write the current values as the baseline instead of comparing.
        #[arg(long)]
        update: bool,
        /// Override a field of every scenario (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Threads (default: every core).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Join the output directories of a sharded sweep (`sweep --shard I/N`) into one.
    #[command(after_help = help::MERGE)]
    Merge {
        /// The shard directories.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Where to write the merged sweep.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the FaST-Profiler in simulation: each function's throughput over time quota × SM
    /// partition on the scenario's first GPU type, written as CSV.
    #[command(after_help = help::PROFILE)]
    Profile {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Output file (default: out/<scenario name>/profile.csv).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Simulated seconds per grid cell.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
    /// Fit the model's free parameters (fitted workloads' kernel figures, device coefficients)
    /// on the calibration rows of the validation dataset, and write validation/fitted.toml.
    #[command(after_help = help::FIT)]
    Fit(fidelity_cli::FitArgs),
    /// Predict every row of the validation dataset and write the fidelity report (published
    /// against predicted, per set and source, and a figure) into reports/fidelity.
    #[command(after_help = help::FIDELITY)]
    Fidelity(fidelity_cli::FidelityArgs),
    /// List the policies a scenario can name, with their parameters.
    #[command(after_help = help::POLICIES)]
    Policies,
    /// List the built-in GPUs, function profiles and LLMs.
    #[command(after_help = help::CATALOG)]
    Catalog,
    /// Inspect, generate, sample and convert traces.
    #[command(subcommand)]
    #[command(after_help = help::TRACE)]
    Trace(TraceCommand),
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Functions, apps, invocations, rate over time, inter-arrival CVs, durations, memory, and
    /// what reading skipped; streams the whole trace.
    #[command(after_help = help::TRACE_STATS)]
    Stats {
        /// A trace file, or a directory of Azure 2019 files.
        path: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Write a synthetic trace with the published Azure 2019 statistics, in the 2019 format.
    #[command(after_help = help::TRACE_GENERATE)]
    Generate {
        /// How many functions (at most 1,000,000).
        #[arg(long, default_value_t = 1000)]
        functions: usize,
        /// How many days of minutes (1,440 each).
        #[arg(long, default_value_t = 1)]
        days: u32,
        /// Seed of the generator: the same seed writes the same trace.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The directory to write the trace's files into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the selected functions and window of an Azure 2019 trace back in the 2019 format.
    #[command(after_help = help::TRACE_SAMPLE)]
    Sample {
        /// A directory (or file) of an Azure 2019 trace.
        path: PathBuf,
        /// The directory to write the sampled trace into (not the input's).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Benchmark: read, spread and stream every arrival with nothing else (BENCHMARKS.md).
    #[command(after_help = help::TRACE_BENCH)]
    Bench {
        /// A trace file, or a directory of Azure 2019 files.
        path: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Convert any supported trace to the plain `time,func,duration` CSV.
    #[command(after_help = help::TRACE_CONVERT)]
    Convert {
        /// A trace file, or a directory of Azure 2019 files.
        path: PathBuf,
        /// The plain CSV to write (not the input).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Args)]
struct ReadArgs {
    /// azure2019, azure2021, azure-llm or plain (default: detected).
    #[arg(long)]
    format: Option<String>,
    /// Skip and count malformed rows instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Azure 2019: exponential, uniform, equidistant or poisson-fit.
    #[arg(long, default_value = "exponential")]
    spread: String,
    /// Azure 2019: shift each function by a random offset within the minute.
    #[arg(long)]
    shift: bool,
    /// Azure 2019: percentiles, lognormal, global or none.
    #[arg(long, default_value = "percentiles")]
    durations: String,
    /// Seed of the random spreading within minutes and of durations drawn from distributions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Azure 2019: first and last day, e.g. 1-3.
    #[arg(long)]
    days: Option<String>,
    /// Azure 2019: window start in minutes from the first day read.
    #[arg(long)]
    start_minute: Option<u32>,
    /// Azure 2019: window length in minutes.
    #[arg(long)]
    minutes: Option<u32>,
    /// Azure 2019: keep the k most invoked functions.
    #[arg(long)]
    top_k: Option<usize>,
    /// Azure 2019: popularity band LO,HI (quantiles, 1 = most invoked).
    #[arg(long)]
    popularity: Option<String>,
    /// Azure 2019: keep a random fraction of the functions.
    #[arg(long)]
    sample_fraction: Option<f64>,
    /// Azure 2019: keep a random number of the functions.
    #[arg(long)]
    sample_count: Option<usize>,
    /// Azure 2019: seed of the random subset (default: --seed).
    #[arg(long)]
    sample_seed: Option<u64>,
    /// Azure 2019: keep these triggers, e.g. http,timer.
    #[arg(long)]
    triggers: Option<String>,
}

impl ReadArgs {
    fn options(&self) -> Result<(Option<gpushare_traces::any::Format>, gpushare_traces::any::OpenOptions), Failure> {
        use gpushare_traces::azure2019::{DurationModel, Selection, Spread};
        let bad = |flag: &str, v: &str, valid: &str| Failure::Input(format!("--{flag} {v}: expected {valid}"));
        let format = match &self.format {
            Some(f) => Some(
                gpushare_traces::any::Format::parse(f)
                    .ok_or_else(|| bad("format", f, "azure2019, azure2021, azure-llm or plain"))?,
            ),
            None => None,
        };
        let pair = |flag: &str, v: &str, sep: char| -> Result<(f64, f64), Failure> {
            let (a, b) = v
                .split_once(sep)
                .ok_or_else(|| bad(flag, v, &format!("two numbers separated by `{sep}`")))?;
            Ok((
                a.trim().parse().map_err(|_| bad(flag, v, "numbers"))?,
                b.trim().parse().map_err(|_| bad(flag, v, "numbers"))?,
            ))
        };
        let selection = Selection {
            triggers: self
                .triggers
                .as_ref()
                .map(|t| t.split(',').map(|s| s.trim().to_string()).collect()),
            popularity: self
                .popularity
                .as_ref()
                .map(|p| pair("popularity", p, ','))
                .transpose()?
                .map(|(a, b)| [a, b]),
            top_k: self.top_k,
            sample_fraction: self.sample_fraction,
            sample_count: self.sample_count,
            sample_seed: self.sample_seed,
        };
        selection
            .check()
            .map_err(|(f, m)| Failure::Input(format!("--{}: {m}", f.replace('_', "-"))))?;
        let days = match &self.days {
            Some(d) => {
                let (a, b) = pair("days", d, '-')?;
                if a < 1.0 || b < a || a.fract() != 0.0 || b.fract() != 0.0 {
                    return Err(bad("days", d, "FIRST-LAST with 1 ≤ FIRST ≤ LAST"));
                }
                Some((a as u32, b as u32))
            }
            None => None,
        };
        let window = match (self.start_minute, self.minutes) {
            (None, None) => None,
            (_, Some(0)) => return Err(Failure::Input("--minutes: must be at least 1".into())),
            (s, m) => Some((s.unwrap_or(0), m.unwrap_or(u32::MAX / 2))),
        };
        Ok((
            format,
            gpushare_traces::any::OpenOptions {
                spread: Spread::parse(&self.spread).ok_or_else(|| {
                    bad(
                        "spread",
                        &self.spread,
                        "exponential, uniform, equidistant or poisson-fit",
                    )
                })?,
                shift: self.shift,
                durations: DurationModel::parse(&self.durations)
                    .ok_or_else(|| bad("durations", &self.durations, "percentiles, lognormal, global or none"))?,
                seed: self.seed,
                skip_bad_rows: self.skip_bad_rows,
                days,
                window,
                selection,
            },
        ))
    }
}

#[derive(Args)]
struct ScenarioArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// Override a scenario field, e.g. --set policy.keep_alive_s=60 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Override simulation.seed.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Output directory (default: [output] dir, else out/<scenario name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not write invocations.csv.
    #[arg(long)]
    no_invocations: bool,
    /// Print only the output directory.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct SweepArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// An axis, KEY=V1,V2,… (adds to, or replaces the same key of, the [sweep] table), e.g.
    /// --axis simulation.load_scale=0.5,1,2 or --axis 'policy=kaas,mps'. Repeatable.
    #[arg(long = "axis", value_name = "KEY=V1,V2,…")]
    axes: Vec<String>,
    /// Seeds per point (default: [sweep] seeds, else 1).
    #[arg(long)]
    seeds: Option<u32>,
    /// Threads (default: every core).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Run only shard I of N (1-based), e.g. --shard 3/8; join shards with `gpushare merge`.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Output directory (default: out/<scenario name>-sweep, with -shard-I-of-N when sharded).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep each run's invocations.csv (when its scenario asks for one).
    #[arg(long)]
    invocations: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Resume an interrupted sweep into the same --out: keep each run it completed (its
    /// point.json records the same place and scenario fingerprint), simulate the rest.
    #[arg(long)]
    resume: bool,
}

/// An error and the exit code it maps to.
enum Failure {
    /// Bad input: exit 2.
    Input(String),
    /// The run itself failed: exit 1.
    Run(anyhow::Error),
}

impl From<gpushare_sim::scenario::ScenarioError> for Failure {
    fn from(e: gpushare_sim::scenario::ScenarioError) -> Self {
        Failure::Input(e.to_string())
    }
}

impl From<gpushare_reports::run_files::RunFailure> for Failure {
    fn from(e: gpushare_reports::run_files::RunFailure) -> Self {
        match e {
            gpushare_reports::run_files::RunFailure::Sim(e) => e.into(),
            other => Failure::Run(other.into()),
        }
    }
}

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Trace(t) => Failure::Input(t.to_string()),
            other => Failure::Run(other.into()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Run(e.into())
    }
}

impl Command {
    /// Whether the command drives worker processes through pipes (the real-GPU commands).
    fn writes_to_workers(&self) -> bool {
        matches!(
            self,
            Command::Replay(_)
                | Command::Calibrate(_)
                | Command::ReplayOverhead(_)
                | Command::Probe(_)
                | Command::Colocate(_)
                | Command::ReplayWorker
        )
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

fn main() -> ExitCode {
    let cli = help::parse_cli();
    if !cli.command.writes_to_workers() {
        // A reader that goes away (`gpushare catalog | head -1`) ends the command quietly, as
        // for any Unix tool, instead of a panic in `print!`. The replay's commands keep SIGPIPE
        // ignored: a worker that dies must be an error the orchestrator handles, not its death.
        // SAFETY: restoring a signal's default disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        // Interrupted (Ctrl-C, SIGTERM, SIGHUP): no half-written temporary is left behind. (The
        // GPU commands stop in order instead: gpushare_replay::signals.)
        let _ = ctrlc::set_handler(|| {
            gpushare_traces::atomic::remove_temporaries();
            eprintln!("interrupted: temporary files removed");
            std::process::exit(130);
        });
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(args),
        Command::Compare {
            paths,
            set,
            seed,
            policies,
            out,
        } => {
            if let [sim, replay] = &paths[..] {
                if !policies.is_empty() || !set.is_empty() || seed.is_some() {
                    Err(Failure::Input(
                        "compare SIM_DIR REPLAY_DIR takes no --policy, --set or --seed (they belong to a scenario)"
                            .into(),
                    ))
                } else {
                    replay_cli::compare_dirs(sim, replay, out)
                }
            } else if policies.is_empty() {
                Err(Failure::Input(
                    "compare SCENARIO needs at least one --policy (or give SIM_DIR REPLAY_DIR)".into(),
                ))
            } else {
                let scenario = ScenarioArgs {
                    scenario: paths[0].clone(),
                    set,
                    seed,
                };
                compare(scenario, policies)
            }
        }
        Command::Replay(args) => replay_cli::replay(args),
        Command::Calibrate(args) => replay_cli::calibrate(args),
        Command::ReplayOverhead(args) => replay_cli::overhead(args),
        Command::Probe(args) => replay_cli::probe(args),
        Command::Colocate(args) => replay_cli::colocate(args),
        Command::ReplayWorker => return ExitCode::from(gpushare_replay::worker::main() as u8),
        Command::Profile { scenario, out, seconds } => profile(scenario, out, seconds),
        Command::Sweep(args) => sweep(args),
        Command::Merge { shards, out } => merge(shards, out),
        Command::Check {
            baseline,
            scenarios,
            tolerance,
            update,
            set,
            jobs,
        } => check(baseline, scenarios, tolerance, update, set, jobs),
        Command::Plot {
            dir,
            x,
            series,
            out,
            panel_letters,
        } => plot(dir, x, series, out, panel_letters),
        Command::Fit(args) => fidelity_cli::fit(args),
        Command::Fidelity(args) => fidelity_cli::fidelity(args),
        Command::Policies => {
            list_policies();
            Ok(())
        }
        Command::Catalog => {
            list_catalog();
            Ok(())
        }
        Command::Trace(t) => trace(t),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The most worker threads `--jobs` may ask for.
pub(crate) const MAX_JOBS: usize = 256;

/// `--jobs`: this machine's parallelism when not given; 0 and more than [`MAX_JOBS`] refused.
pub(crate) fn threads(jobs: Option<usize>) -> Result<usize, Failure> {
    match jobs {
        None => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_JOBS)),
        Some(j) if (1..=MAX_JOBS).contains(&j) => Ok(j),
        Some(j) => Err(Failure::Input(format!(
            "--jobs {j}: expected 1 to {MAX_JOBS} threads (this machine has {})",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ))),
    }
}

/// The scenario file with the command line's overrides applied.
fn source(args: &ScenarioArgs) -> Result<ScenarioSource, Failure> {
    let mut src = ScenarioSource::load(&args.scenario)?;
    for s in &args.set {
        src.set(s)?;
    }
    if let Some(seed) = args.seed {
        src.set(&format!("simulation.seed={seed}"))?;
    }
    Ok(src)
}

/// Loads, overrides and validates the scenario and builds its policy.
fn load(args: &ScenarioArgs) -> Result<(Scenario, Box<dyn gpushare_sim::policy::Policy>), Failure> {
    let src = source(args)?;
    let scenario = src.parse()?;
    let policy = gpushare_policies::build(&scenario).map_err(|e| src.locate(e))?;
    scenario.check_workload().map_err(|e| Failure::Input(e.to_string()))?;
    for note in &scenario.notes {
        eprintln!("{note}");
    }
    Ok((scenario, policy))
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let (scenario, policy) = load(&args.scenario)?;
    let dir = args.out.clone().unwrap_or_else(|| scenario.output_dir());
    // The performance line times building and running the simulation, not writing its files.
    let simulated = gpushare_reports::run_files::simulate_into(&dir, &scenario, policy, !args.no_invocations)?;
    let (output, wall) = (simulated.output, simulated.wall.as_secs_f64());
    if args.quiet {
        println!("{}", dir.display());
        return Ok(());
    }
    print!("{}", gpushare_reports::human::render(&output.summary));
    println!("wrote          {}", dir.display());
    let n = output.summary.counts.arrivals;
    let rss = peak_rss_mib()
        .map(|m| format!(", peak RSS {m:.0} MiB"))
        .unwrap_or_default();
    println!(
        "performance    {n} invocations, {} events in {wall:.3} s wall: {:.2} M invocations/s{rss}",
        output.summary.events,
        n as f64 / wall.max(1e-9) / 1e6
    );
    Ok(())
}

/// `--policy ARG` applied to the scenario: its row label and the scenario, its policy checked.
/// ARG is a name (`mps`: the scenario's other `[policy]` keys stay), a table (replacing them), or
/// `LABEL: TABLE`.
fn with_policy(args: &ScenarioArgs, arg: &str) -> Result<(String, Scenario), Failure> {
    // `LABEL: { … }` names the row; a TOML inline table has no `:` before its `{`.
    let (label, p) = match arg.split_once('{') {
        Some((head, _)) if head.trim_end().ends_with(':') => {
            let (label, table) = arg.split_once(':').expect("checked");
            (label.trim().to_string(), table.trim())
        }
        _ => (arg.trim().to_string(), arg),
    };
    let name_only = !p.trim_start().starts_with('{');
    let mut src = source(args)?;
    // Set under the flag's own name, so that every error about it cites `--policy`.
    let value = if name_only {
        toml::Value::String(p.trim().to_string())
    } else {
        toml::from_str::<toml::Table>(&format!("v = {p}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| {
                Failure::Input(format!(
                    "--policy {arg}: `{p}` is not a TOML inline table; expected e.g. '{{ name = \"mps\", active_thread_percentage = 50 }}'"
                ))
            })?
    };
    src.set_value(
        &format!("--policy {arg}"),
        if name_only { "policy.name" } else { "policy" },
        value,
    )?;
    let scenario = src.parse()?;
    // Building the policy here reports bad input before any run starts; policies are not
    // `Send`, so each run builds its own again.
    gpushare_policies::build(&scenario).map_err(|e| {
        let kept_key = name_only && e.message.starts_with("unknown field");
        let msg = src.locate(e).to_string();
        Failure::Input(if kept_key {
            format!(
                "{msg}\n(--policy {p} keeps the scenario's other [policy] keys; give a table to replace \
                 them, e.g. --policy '{{ name = \"{p}\" }}')"
            )
        } else {
            msg
        })
    })?;
    Ok((label, scenario))
}

/// Each policy's run of the scenario, simulated in parallel; the table is the same whatever the
/// thread count, since every run is deterministic and rows keep the order given.
fn compare(args: ScenarioArgs, policies: Vec<String>) -> Result<(), Failure> {
    use rayon::prelude::*;
    let mut runs = Vec::new();
    for arg in &policies {
        let (label, scenario) = with_policy(&args, arg)?;
        if label.trim().is_empty() {
            return Err(Failure::Input(format!(
                "--policy {arg}: an empty label; write `LABEL: TABLE` with a label, or the table alone"
            )));
        }
        if runs.iter().any(|(l, _)| *l == label) {
            return Err(Failure::Input(format!(
                "--policy {arg}: the label `{label}` names two rows; give each row a distinct label"
            )));
        }
        if runs.is_empty() {
            // The workload's notes are the same for every policy.
            for note in &scenario.notes {
                eprintln!("{note}");
            }
        }
        runs.push((label, scenario));
    }
    let summaries = runs
        .into_par_iter()
        .map(|(label, scenario)| {
            let policy = gpushare_policies::build(&scenario)
                .map_err(|e| anyhow::anyhow!("{label}: {}: {}", e.path, e.message))?;
            let output = Simulation::new(&scenario, policy, Box::new(NullSink))?.run()?;
            Ok((label, output.summary))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    print!("{}", gpushare_reports::compare::markdown(&summaries));
    Ok(())
}

fn validate(args: ScenarioArgs) -> Result<(), Failure> {
    let (scenario, policy) = load(&args)?;
    let sweep = validate_sweep(&args)?;
    let mut source = scenario.open_workload().map_err(|e| Failure::Input(e.to_string()))?;
    let mut arrivals = 0u64;
    while let Some(a) = source.next_arrival().map_err(|e| Failure::Input(e.to_string()))? {
        if a.time >= scenario.horizon {
            break;
        }
        arrivals += 1;
    }
    println!(
        "{}: ok — {} functions, {} GPUs on {} nodes, policy {}, {} arrivals within the {} s horizon",
        display(&args.scenario),
        scenario.functions.len(),
        scenario.gpus.len(),
        scenario.gpus.last().map_or(0, |g| g.0 + 1),
        policy.name(),
        arrivals,
        gpushare_sim::time::ns_to_secs(scenario.horizon)
    );
    if let Some(line) = sweep {
        println!("{line}");
    }
    Ok(())
}

/// The scenario's `[sweep]`, if it has one, checked as `sweep` would: every point parsed and
/// its policy built; the line that says so.
fn validate_sweep(args: &ScenarioArgs) -> Result<Option<String>, Failure> {
    use gpushare_reports::sweep::{self, spec::SweepSpec};
    let src = source(args)?;
    let spec = SweepSpec::from_source(&src)?;
    if spec.axes.is_empty() {
        return Ok(None);
    }
    let plan = sweep::plan(&src, &spec, &gpushare_policies::build).map_err(sweep_error)?;
    Ok(Some(format!(
        "[sweep]: ok — {} points × {} seeds = {} runs, every point valid",
        spec.points(),
        spec.seeds,
        plan.runs.len()
    )))
}

fn profile(args: ScenarioArgs, out: Option<PathBuf>, seconds: f64) -> Result<(), Failure> {
    // Each of the grid's cells simulates `seconds` of a closed loop: an hour is far more than a
    // steady rate needs, and far inside the nanosecond clock.
    if !(seconds.is_finite() && (0.1..=3600.0).contains(&seconds)) {
        return Err(Failure::Input(format!(
            "--seconds {seconds}: expected 0.1 to 3600 seconds per cell (shorter cells end before a steady rate)"
        )));
    }
    let (scenario, _) = load(&args)?;
    let path = out.unwrap_or_else(|| scenario.output_dir().join("profile.csv"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: creating its folder", path.display()))?;
    }
    let mut csv = String::from("function,quota,sm_percent,qps,latency_ms\n");
    for f in 0..scenario.functions.len() {
        let points = gpushare_policies::profiler::profile(
            &scenario,
            f,
            &gpushare_policies::profiler::QUOTAS,
            &gpushare_policies::profiler::SM_SHARES,
            seconds,
        )
        .map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
        for p in points {
            csv.push_str(&format!(
                "{},{},{},{:.3},{:.3}\n",
                p.function,
                p.quota,
                p.sm * 100.0,
                p.qps,
                p.latency_ms
            ));
        }
    }
    gpushare_reports::atomic::write_atomic(&path, csv.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} ({} functions × {} quotas × {} SM partitions)",
        path.display(),
        scenario.functions.len(),
        gpushare_policies::profiler::QUOTAS.len(),
        gpushare_policies::profiler::SM_SHARES.len()
    );
    Ok(())
}

fn trace(cmd: TraceCommand) -> Result<(), Failure> {
    let input = |e: gpushare_traces::TraceError| Failure::Input(e.to_string());
    // Writing failed (a full disk, a folder that cannot be written): exit 1, not bad input.
    let output = |e: gpushare_traces::TraceError| match e {
        gpushare_traces::TraceError::Io { .. } => Failure::Run(anyhow::anyhow!(e.to_string())),
        other => Failure::Input(other.to_string()),
    };
    match cmd {
        TraceCommand::Stats { path, read } => {
            let (format, opts) = read.options()?;
            let opened = gpushare_traces::any::open(&path, format, &opts).map_err(input)?;
            let (stats, opened) = gpushare_traces::stats::compute(opened).map_err(input)?;
            println!("{}: {:?} trace", path.display(), opened.format);
            println!("{}", stats.render());
            if !opened.notes.is_empty() {
                println!("reading:\n{}", opened.notes);
            }
            print_skipped(opts.skip_bad_rows, opened.source.as_ref());
        }
        TraceCommand::Generate {
            functions,
            days,
            seed,
            out,
        } => {
            let cfg = gpushare_traces::generate::GeneratorConfig {
                functions,
                days,
                seed,
                ..Default::default()
            };
            cfg.check()
                .map_err(|(f, m)| Failure::Input(format!("--{}: {m}", f.replace('_', "-"))))?;
            let n = cfg.write(&out).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} functions × {days} day(s), {n} invocations, to {}",
                functions,
                out.display()
            );
        }
        TraceCommand::Sample { path, out, read } => {
            let (_, opts) = read.options()?;
            let files = gpushare_traces::azure2019::discover(std::slice::from_ref(&path)).map_err(input)?;
            let ro = gpushare_traces::azure2019::ReadOptions {
                days: opts.days,
                window: opts.window,
                skip_bad_rows: opts.skip_bad_rows,
            };
            let mut t = gpushare_traces::azure2019::read(&files, &ro).map_err(input)?;
            let triggers: std::collections::BTreeSet<String> = t.functions.iter().map(|f| f.trigger.clone()).collect();
            t.functions = opts.selection.apply(std::mem::take(&mut t.functions), opts.seed);
            if t.functions.is_empty() {
                return Err(Failure::Input(format!(
                    "{}: no function is left in minutes [{}, {}) after the selection ({}); the window's functions have the triggers {}: nothing to write",
                    path.display(),
                    t.window.0,
                    t.window.1,
                    opts.selection.describe(),
                    triggers.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
            refuse_overwriting_input(&path, &out, "--out")?;
            gpushare_traces::write::write_azure2019(&t, &out).map_err(output)?;
            let n: u64 = t.functions.iter().map(|f| f.total).sum();
            println!(
                "wrote {} functions, {n} invocations in minutes [{}, {}), to {}",
                t.functions.len(),
                t.window.0,
                t.window.1,
                out.display()
            );
            println!("reading:\n{}", t.report);
        }
        TraceCommand::Bench { path, read } => {
            let (format, opts) = read.options()?;
            let started = Instant::now();
            let mut opened = gpushare_traces::any::open(&path, format, &opts).map_err(input)?;
            let read_s = started.elapsed().as_secs_f64();
            let (mut n, mut last) = (0u64, 0u64);
            while let Some(a) = opened.source.next_arrival().map_err(input)? {
                n += 1;
                last = a.time;
            }
            let total_s = started.elapsed().as_secs_f64();
            let rss = peak_rss_mib()
                .map(|m| format!(", peak RSS {m:.0} MiB"))
                .unwrap_or_default();
            println!(
                "{}: {n} arrivals of {} functions (last at {:.1} s); read {read_s:.2} s, read + spread + stream {total_s:.2} s: \
                 {:.2} M arrivals/s overall, {:.2} M/s spreading and streaming{rss}",
                path.display(),
                opened.names.len(),
                last as f64 / 1e9,
                n as f64 / total_s / 1e6,
                n as f64 / (total_s - read_s).max(1e-9) / 1e6
            );
        }
        TraceCommand::Convert { path, out, read } => {
            let (format, opts) = read.options()?;
            refuse_overwriting_input(&path, &out, "--out")?;
            let mut opened = gpushare_traces::any::open(&path, format, &opts).map_err(input)?;
            let n = gpushare_traces::write::write_plain(opened.source.as_mut(), &opened.names, &out).map_err(output)?;
            println!(
                "wrote {n} invocations of {} functions to {}",
                opened.names.len(),
                out.display()
            );
            print_skipped(opts.skip_bad_rows, opened.source.as_ref());
        }
    }
    Ok(())
}

/// With `--skip-bad-rows`, what a streamed reader (plain CSV, LLM) skipped; the readers that
/// load the whole trace report it in their notes.
fn print_skipped(skip_bad_rows: bool, source: &dyn gpushare_traces::ArrivalSource) {
    if let Some(skipped) = source.skipped_rows().filter(|_| skip_bad_rows) {
        println!("{skipped}");
    }
}

/// Refuses an output that is the input, or lies in the input folder: the trace would be
/// replaced by (or mixed with) what is read from it.
fn refuse_overwriting_input(input: &Path, out: &Path, flag: &str) -> Result<(), Failure> {
    let (Ok(i), Some(o)) = (input.canonicalize(), canonical_even_if_new(out)) else {
        return Ok(());
    };
    let inside = i.is_dir() && (o == i || o.parent() == Some(i.as_path()));
    if o == i || inside {
        return Err(Failure::Input(format!(
            "{flag} {}: that is {} {}: the trace would be overwritten while it is read; write somewhere else",
            out.display(),
            if o == i { "the input" } else { "inside the input folder" },
            input.display()
        )));
    }
    Ok(())
}

/// `p` made absolute through its existing parent (the file itself need not exist).
fn canonical_even_if_new(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(p.file_name()?))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn list_policies() {
    for p in gpushare_policies::registry() {
        println!("{:<12} {}", p.name, p.summary);
        println!("{:<12} parameters: {}", "", p.params);
    }
}

fn list_catalog() {
    println!("GPUs (name: SMs, memory, memory bandwidth, host link, FP32):");
    for d in gpushare_sim::device::builtin_devices() {
        println!(
            "  {:<11} {:>3} SMs, {:>7.0} MiB, {:>5.0} GB/s, link {:>3.0} GB/s, {:>5.1} TFLOP/s",
            d.name, d.sms, d.memory_mib, d.mem_bandwidth_gbps, d.host_link_gbps, d.fp32_tflops
        );
    }
    println!("function profiles (name: what, source):");
    for (name, p) in gpushare_sim::catalog::builtin_profiles() {
        println!("  {:<14} {} — {}", name, p.description, p.source);
        if let Some(g) = &p.kernel_graph {
            let buffers: Vec<String> = g
                .buffers
                .iter()
                .map(|b| {
                    let digits = if b.mib < 1.0 { 3 } else { 1 };
                    format!(
                        "{} {:.digits$} MiB{}",
                        b.name,
                        b.mib,
                        if b.constant { " const" } else { "" }
                    )
                })
                .collect();
            println!(
                "  {:<14} kernel graph: dispatch {:.1} ms; {}",
                "",
                g.dispatch_ms,
                buffers.join(", ")
            );
        }
    }
    println!("LLMs for azure_llm workloads (name: parameters, layers, KV heads × size, source):");
    for m in gpushare_traces::llm::builtin_llms() {
        println!(
            "  {:<11} {:.2} B, {} layers, {} × {}, {}",
            m.name,
            m.parameters / 1e9,
            m.layers,
            m.kv_heads,
            m.head_dim,
            m.source
        );
    }
}

/// Peak resident memory of this process (Linux), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn sweep_error(e: gpushare_reports::sweep::SweepError) -> Failure {
    match e {
        gpushare_reports::sweep::SweepError::Input(m) => Failure::Input(m),
        gpushare_reports::sweep::SweepError::Run(m) => Failure::Run(anyhow::anyhow!(m)),
    }
}

fn sweep(args: SweepArgs) -> Result<(), Failure> {
    use gpushare_reports::sweep::{self, spec::SweepSpec};
    let src = source(&args.scenario)?;
    let mut spec = SweepSpec::from_source(&src)?;
    for a in &args.axes {
        spec.add_arg(a).map_err(Failure::Input)?;
    }
    if let Some(n) = args.seeds {
        if !(1..=10_000).contains(&n) {
            return Err(Failure::Input(format!(
                "--seeds {n}: expected 1 to 10000 seeds per point (as [sweep] seeds)"
            )));
        }
        spec.seeds = n;
    }
    let shard = match &args.shard {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once('/')
                .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
            match parsed {
                Some((i, n)) if n >= 1 && (1..=n).contains(&i) => Some((i, n)),
                _ => {
                    return Err(Failure::Input(format!(
                        "--shard {text}: expected I/N with 1 ≤ I ≤ N, e.g. 2/8"
                    )));
                }
            }
        }
    };
    let plan = sweep::plan(&src, &spec, &gpushare_policies::build).map_err(sweep_error)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let base = format!("{}-sweep", plan.info.scenario);
        let name = match shard {
            Some((i, n)) => format!("{base}-shard-{i}-of-{n}"),
            None => base,
        };
        PathBuf::from("out").join(name)
    });
    let jobs = threads(args.jobs)?;
    let (points, seeds) = (plan.info.points, spec.seeds);
    let started = Instant::now();
    let opts = sweep::Options {
        jobs,
        shard,
        invocations: args.invocations,
        progress: !args.quiet,
        resume: args.resume,
    };
    let (rows, kept) = sweep::execute(plan, &out, &opts, &gpushare_policies::build).map_err(sweep_error)?;
    println!(
        "{} runs ({points} points × {seeds} seeds{}{}) in {:.2} s on {jobs} threads: {}",
        rows.len(),
        shard.map(|(i, n)| format!(", shard {i}/{n}")).unwrap_or_default(),
        if args.resume {
            format!(", {kept} kept from the earlier sweep")
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn merge(shards: Vec<PathBuf>, out: PathBuf) -> Result<(), Failure> {
    let info = gpushare_reports::sweep::merge(&shards, &out).map_err(sweep_error)?;
    println!(
        "merged {} shards: {} runs ({} points): {}",
        shards.len(),
        info.runs,
        info.points,
        out.display()
    );
    Ok(())
}

fn plot(
    dir: PathBuf,
    x: Option<String>,
    series: Option<String>,
    out: Option<PathBuf>,
    panel_letters: bool,
) -> Result<(), Failure> {
    let opts = gpushare_reports::plot::PlotOptions {
        x,
        series,
        out,
        panel_letters,
    };
    let plotted = gpushare_reports::plot::plot(&dir, &opts).map_err(|e| match e {
        gpushare_reports::plot::PlotError::Input(m) => Failure::Input(m),
        gpushare_reports::plot::PlotError::Write(m) => Failure::Run(anyhow::anyhow!(m)),
    })?;
    for note in &plotted.notes {
        eprintln!("note: {note}");
    }
    let shown = opts.out.unwrap_or_else(|| dir.join("figures"));
    println!(
        "{} figure files in {} (see figures.md)",
        plotted.files.len(),
        shown.display()
    );
    Ok(())
}

/// `check` exits 1 on a regression; a `Failure::Run` carries that case.
fn check(
    baseline: PathBuf,
    scenarios: PathBuf,
    tolerance: Vec<String>,
    update: bool,
    set: Vec<String>,
    jobs: Option<usize>,
) -> Result<(), Failure> {
    use gpushare_reports::check;
    let tolerances = check::tolerances(&tolerance).map_err(Failure::Input)?;
    let files = check::scenario_files(&scenarios).map_err(Failure::Input)?;
    let base = if update {
        None
    } else {
        Some(check::read_baseline(&baseline).map_err(Failure::Input)?)
    };
    let jobs = threads(jobs)?;
    let started = Instant::now();
    let now = check::measure(&files, &set, jobs, &tolerances, &gpushare_policies::build).map_err(sweep_error)?;
    let wall = started.elapsed().as_secs_f64();
    match base {
        None => {
            check::write_baseline(&baseline, &now).map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
            println!(
                "wrote {} with {} values from {} scenarios ({wall:.1} s)",
                baseline.display(),
                now.len(),
                files.len()
            );
            Ok(())
        }
        Some(base) => {
            let report = check::compare(&base, &now, &tolerances);
            print!("{}", report.markdown());
            println!("({} scenarios in {wall:.1} s)", files.len());
            if report.failed() {
                let (regressed, missing) = report.failures();
                Err(Failure::Run(anyhow::anyhow!(
                    "policy metrics against {}: {regressed} regressed, {missing} missing (a baseline row the scenarios no \
                     longer give): {}; if the change is intended, run `gpushare check --update`",
                    baseline.display(),
                    report.failing(5).join(", ")
                )))
            } else {
                Ok(())
            }
        }
    }
}
