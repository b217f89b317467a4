//! The `gpushare` command line: parses arguments, calls the libraries, prints.
//!
//! Exit codes: 0 success; 1 a run failed (a policy broke an engine rule, an output could not be
//! written); 2 bad input (scenario, trace or arguments), with a message naming the file, line
//! and field.

use clap::{Parser, Subcommand};
use gpushare_sim::SimError;
use std::path::PathBuf;
use std::process::ExitCode;

mod catalog_cli;
mod fidelity_cli;
mod help;
mod replay_cli;
mod scenario_cli;
mod sweep_cli;
mod trace_cli;

use catalog_cli::{list_catalog, list_policies};
use scenario_cli::{RunArgs, ScenarioArgs, compare, profile, run, validate};
use sweep_cli::{SweepArgs, check, merge, plot, sweep};
use trace_cli::{TraceCommand, trace};

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
    /// Run a scenario under several policies (in parallel) and print one Markdown table. (Given
    /// SIM_DIR REPLAY_DIR it still does what `replay-compare` does, for this release only.)
    #[command(after_help = help::COMPARE)]
    Compare {
        /// A scenario file (with --policy); the old form SIM_DIR REPLAY_DIR is now
        /// `replay-compare`.
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
    /// Set the simulator's predictions against a replay's measurements, policy by policy (p50,
    /// p99, throughput, utilisation, memory; relative errors and targets) as Markdown and CSV.
    #[command(after_help = help::REPLAY_COMPARE)]
    ReplayCompare {
        /// The simulation's output: a run directory, or a directory of them.
        sim: PathBuf,
        /// The replay's output, paired with the simulation's runs by scenario and policy.
        replay: PathBuf,
        /// Where to write comparison.md and comparison.csv (default: REPLAY).
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
    /// List the policies a scenario can name, with their parameters and defaults, the
    /// placements and the keep-alive plug-ins.
    #[command(after_help = help::POLICIES)]
    Policies {
        /// Print README's policy tables (Markdown) instead.
        #[arg(long)]
        markdown: bool,
    },
    /// List the built-in GPUs, function profiles and LLMs.
    #[command(after_help = help::CATALOG)]
    Catalog,
    /// Inspect, generate, sample and convert traces.
    #[command(subcommand)]
    #[command(after_help = help::TRACE)]
    Trace(TraceCommand),
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
                    let done = replay_cli::compare_dirs(sim, replay, out);
                    if done.is_ok() {
                        eprintln!(
                            "note: `gpushare compare SIM_DIR REPLAY_DIR` is now `gpushare replay-compare SIM_DIR REPLAY_DIR`; \
                             this form goes in the next release"
                        );
                    }
                    done
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
        Command::ReplayCompare { sim, replay, out } => replay_cli::compare_dirs(&sim, &replay, out),
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
        Command::Policies { markdown } => {
            list_policies(markdown);
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
