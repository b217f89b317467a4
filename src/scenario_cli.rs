//! The commands that take one scenario: `run`, `validate`, `compare` (policies side by side)
//! and `profile`, and loading a scenario with its overrides.

use crate::Failure;
use crate::sweep_cli::sweep_error;
use anyhow::Context;
use clap::Args;
use gpushare_sim::record::NullSink;
use gpushare_sim::{Scenario, ScenarioSource, Simulation};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct ScenarioArgs {
    /// Scenario file (TOML).
    pub(crate) scenario: PathBuf,
    /// Override a scenario field, e.g. --set policy.keep_alive_s=60 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// Override simulation.seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) scenario: ScenarioArgs,
    /// Output directory (default: [output] dir, else out/<scenario name>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Do not write invocations.csv.
    #[arg(long)]
    pub(crate) no_invocations: bool,
    /// Print only the output directory.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// The scenario file with the command line's overrides applied.
pub(crate) fn source(args: &ScenarioArgs) -> Result<ScenarioSource, Failure> {
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
pub(crate) fn load(args: &ScenarioArgs) -> Result<(Scenario, Box<dyn gpushare_sim::policy::Policy>), Failure> {
    let src = source(args)?;
    let scenario = src.parse()?;
    let policy = gpushare_policies::build(&scenario).map_err(|e| src.locate(e))?;
    scenario.check_workload().map_err(|e| Failure::Input(e.to_string()))?;
    for note in &scenario.notes {
        eprintln!("{note}");
    }
    Ok((scenario, policy))
}

pub(crate) fn run(args: RunArgs) -> Result<(), Failure> {
    let src = source(&args.scenario)?;
    if gpushare_sim::serving::is_serving(&src) {
        return run_serving(&src, &args);
    }
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

/// `gpushare run` of a serving scenario (a `[serving]` table): LLM engines, not invocations.
fn run_serving(src: &ScenarioSource, args: &RunArgs) -> Result<(), Failure> {
    let scenario = gpushare_sim::serving::ServingScenario::parse(src)?;
    let dir = args.out.clone().unwrap_or_else(|| scenario.output_dir());
    let keep = !args.no_invocations && scenario.file.output.invocations.unwrap_or(true);
    let started = std::time::Instant::now();
    let run = gpushare_sim::serving::run(&scenario, keep).map_err(Failure::Input)?;
    let wall = started.elapsed().as_secs_f64();
    gpushare_reports::serving_files::write_serving(&dir, &run)
        .map_err(|e| Failure::Run(anyhow::anyhow!("writing {}: {e}", dir.display())))?;
    if args.quiet {
        println!("{}", dir.display());
        return Ok(());
    }
    let s = &run.summary;
    let f = &s.figures;
    println!(
        "scenario       {} (LLM serving, {} × {}, {})",
        s.scenario, s.gpus, s.gpu, s.sharing
    );
    println!(
        "requests       {} arrived, {} completed, {} refused",
        f.arrived, f.completed, f.refused
    );
    println!(
        "TTFT (s)       p50 {:.3}  p90 {:.3}  p99 {:.3}",
        f.ttft_s.p50, f.ttft_s.p90, f.ttft_s.p99
    );
    println!(
        "TPOT (s)       p50 {:.4}  p90 {:.4}  p99 {:.4}",
        f.tpot_s.p50, f.tpot_s.p90, f.tpot_s.p99
    );
    println!(
        "throughput     {:.2} requests/s, {:.0} output tokens/s; SLO attainment {:.1} %",
        f.requests_per_s,
        f.output_tokens_per_s,
        100.0 * f.slo_attainment
    );
    println!(
        "engines        {} iterations, mean batch {:.1}, {} preemptions, {} cold starts",
        s.iterations, s.mean_batch, f.preemptions, s.cold_starts
    );
    println!("wrote          {}", dir.display());
    println!(
        "performance    {} requests, {} events in {wall:.3} s wall: {:.2} M requests/s",
        f.arrived,
        s.events,
        f.arrived as f64 / wall.max(1e-9) / 1e6
    );
    Ok(())
}

/// `--policy ARG` applied to the scenario: its row label and the scenario, its policy checked.
/// ARG is a name (`mps`: the scenario's other `[policy]` keys stay), a table (replacing them), or
/// `LABEL: TABLE`.
pub(crate) fn with_policy(args: &ScenarioArgs, arg: &str) -> Result<(String, Scenario), Failure> {
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
pub(crate) fn compare(args: ScenarioArgs, policies: Vec<String>) -> Result<(), Failure> {
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

pub(crate) fn validate(args: ScenarioArgs) -> Result<(), Failure> {
    let src = source(&args)?;
    if gpushare_sim::serving::is_serving(&src) {
        let s = gpushare_sim::serving::ServingScenario::parse(&src)?;
        let requests = gpushare_sim::serving::count_requests(&s).map_err(Failure::Input)?;
        println!(
            "{}: ok — LLM serving, {} deployments on {} × {} ({:?}), {requests} requests within the {} s horizon",
            display(&args.scenario),
            s.file.deployments.len(),
            u64::from(s.file.cluster.nodes) * u64::from(s.file.cluster.gpus_per_node),
            s.device.name,
            s.file.serving.sharing,
            s.file.simulation.horizon_s
        );
        if let Some(line) = validate_sweep(&args)? {
            println!("{line}");
        }
        return Ok(());
    }
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
pub(crate) fn validate_sweep(args: &ScenarioArgs) -> Result<Option<String>, Failure> {
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
        plan.info.runs
    )))
}

pub(crate) fn profile(args: ScenarioArgs, out: Option<PathBuf>, seconds: f64) -> Result<(), Failure> {
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

pub(crate) fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Peak resident memory of this process (Linux), MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
