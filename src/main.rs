//! The `gpushare` command line: parses arguments, calls the libraries, prints.
//!
//! Exit codes: 0 success; 1 a run failed (a policy broke an engine rule, an output could not be
//! written); 2 bad input (scenario, trace or arguments), with a message naming the file, line
//! and field.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gpushare_sim::record::{NullSink, RecordSink};
use gpushare_sim::{Scenario, ScenarioSource, SimError, Simulation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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
    Run(RunArgs),
    /// Check a scenario, its policy and its workload without simulating.
    Validate(ScenarioArgs),
    /// List the policies a scenario can name, with their parameters.
    Policies,
    /// List the built-in GPUs and function profiles.
    Catalog,
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

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(args),
        Command::Policies => {
            list_policies();
            Ok(())
        }
        Command::Catalog => {
            list_catalog();
            Ok(())
        }
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

/// Loads, overrides and validates the scenario and builds its policy.
fn load(args: &ScenarioArgs) -> Result<(Scenario, Box<dyn gpushare_sim::policy::Policy>), Failure> {
    let mut src = ScenarioSource::load(&args.scenario)?;
    for s in &args.set {
        src.set(s)?;
    }
    if let Some(seed) = args.seed {
        src.set(&format!("simulation.seed={seed}"))?;
    }
    let scenario = src.parse()?;
    let policy = gpushare_policies::build(&scenario).map_err(|e| src.locate(e))?;
    for note in &scenario.notes {
        eprintln!("{note}");
    }
    Ok((scenario, policy))
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let (scenario, policy) = load(&args.scenario)?;
    let dir = args.out.clone().unwrap_or_else(|| scenario.output_dir());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let invocations_path = dir.join("invocations.csv");
    let sink: Box<dyn RecordSink> = if scenario.output.invocations && !args.no_invocations {
        Box::new(gpushare_reports::InvocationCsv::create(&invocations_path)?)
    } else {
        // A stale file from an earlier run would look like this run's output.
        if invocations_path.exists() {
            std::fs::remove_file(&invocations_path)?;
        }
        Box::new(NullSink)
    };
    let started = Instant::now();
    let output = Simulation::new(&scenario, policy, sink)?.run()?;
    let wall = started.elapsed().as_secs_f64();
    let mut sink = output.sink;
    sink.finish()
        .with_context(|| format!("writing {}", invocations_path.display()))?;
    gpushare_reports::write_summary(&dir, &output.summary)
        .with_context(|| format!("writing the summary into {}", dir.display()))?;
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

fn validate(args: ScenarioArgs) -> Result<(), Failure> {
    let (scenario, policy) = load(&args)?;
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
    Ok(())
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
    }
}

/// Peak resident memory of this process (Linux), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
