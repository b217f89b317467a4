//! The real-GPU commands: `replay`, `calibrate` and `compare SIM_DIR REPLAY_DIR`.

use crate::Failure;
use crate::scenario_cli::{ScenarioArgs, display, source, with_policy};
use clap::Args;
use gpushare_replay::calibrate::CalibrateOptions;
use gpushare_replay::protocol::Backend;
use gpushare_replay::replay::ReplayOptions;
use gpushare_replay::{ReplayError, calibration::Calibration};
use std::path::{Path, PathBuf};
use std::time::Duration;

// The GPU commands keep SIGPIPE ignored (a dying worker must be an error, not this process's
// death), so their printing must not panic when stdout's reader goes away: what cannot be
// written is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

impl From<ReplayError> for Failure {
    fn from(e: ReplayError) -> Self {
        match e.exit_code() {
            2 => Failure::Input(e.to_string()),
            _ => Failure::Run(anyhow::anyhow!(e.to_string())),
        }
    }
}

#[derive(Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// The policy to replay: a name (keeps the scenario's other [policy] keys) or a table
    /// (default: the scenario's).
    #[arg(long, value_name = "NAME|TABLE")]
    policy: Option<String>,
    /// The GPU (device ordinal) to replay on; several, comma-separated, for a cluster of them.
    #[arg(long, default_value = "0", value_name = "N[,N…]")]
    gpu: String,
    /// Replay arrivals this many times faster (the run lasts horizon / X).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    time_scale: f64,
    /// Output directory (default: out/<scenario>-replay/<policy>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The device calibration (default: the scenario's `gpu = { profile = "FILE" }`).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Run the harness without a GPU: every operation is a sleep of its planned time. Tests the
    /// harness; the output says it is not a measurement.
    #[arg(long)]
    emulate: bool,
    /// NVML sampling period, ms.
    #[arg(long, default_value_t = 10.0)]
    sample_ms: f64,
    /// With `drain`, how long to wait past the horizon for work in flight, seconds.
    #[arg(long, default_value_t = 300.0)]
    drain_timeout_s: f64,
}

#[derive(Args)]
pub(crate) struct CalibrateArgs {
    /// The GPU (device ordinal) to measure.
    #[arg(long, default_value_t = 0)]
    gpu: u32,
    /// Where to write the device profile (default: out/calibration/gpu<N>.toml).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the MPS measurements (no daemon is started).
    #[arg(long)]
    no_mps: bool,
}

#[derive(Args)]
pub(crate) struct OverheadArgs {
    /// The GPU (device ordinal).
    #[arg(long, default_value_t = 0)]
    gpu: u32,
    /// The device calibration that sizes the kernels (required on a GPU).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// A catalog profile whose operations are timed.
    #[arg(long, default_value = "kaas-resnet50")]
    function: String,
    /// Invocations each way.
    #[arg(long, default_value_t = 200)]
    n: u32,
    /// Without a GPU: the operations are sleeps, the figure the harness's CPU-side cost.
    #[arg(long)]
    emulate: bool,
}

#[derive(Args)]
pub(crate) struct ProbeArgs {
    /// The GPU (device ordinal).
    #[arg(long, default_value_t = 0)]
    gpu: u32,
    /// Where to write probe.json (default: print it only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the result as shell assignments (PROBE_MPS=1 …) to FILE.
    #[arg(long, value_name = "FILE")]
    env: Option<PathBuf>,
    /// How long a worker may take to come up, seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout_s: f64,
    /// Probe the harness alone, without a GPU.
    #[arg(long)]
    emulate: bool,
    /// Skip the MPS check (no daemon is started): what a first probe that hung falls back to.
    #[arg(long)]
    no_mps: bool,
}

#[derive(Args)]
pub(crate) struct ColocateArgs {
    /// The GPU (device ordinal).
    #[arg(long, default_value_t = 0)]
    gpu: u32,
    /// The device calibration that sizes the kernels (required on a GPU).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// The GPU's label in the files (e.g. h200).
    #[arg(long, default_value = "gpu")]
    label: String,
    /// Seconds each pair runs (each kernel alone runs half of it).
    #[arg(long, default_value_t = 1.0)]
    cell_s: f64,
    /// Skip the MPS sharings.
    #[arg(long)]
    no_mps: bool,
    /// Folder for colocation.csv and colocation-kernels.csv.
    #[arg(long, default_value = "out/colocation")]
    out: PathBuf,
    /// Without a GPU: the kernels are sleeps (a dry run; not a measurement).
    #[arg(long)]
    emulate: bool,
    /// Measure nothing: put the measured matrix of DIR (a GPU folder holding colocation.csv and
    /// colocation-kernels.csv) into the validation dataset — kernels alone as calibration rows,
    /// pairs as validation rows — replacing any earlier conversion for the same GPU.
    #[arg(long, value_name = "DIR")]
    add_to_dataset: Option<PathBuf>,
    /// The dataset's folder (measurements.csv, workloads.toml), with --add-to-dataset.
    #[arg(long, default_value = "validation")]
    dataset_dir: PathBuf,
}

fn exe() -> Result<PathBuf, Failure> {
    std::env::current_exe().map_err(|e| Failure::Run(anyhow::anyhow!("locating the gpushare executable: {e}")))
}

fn positive(flag: &str, v: f64) -> Result<f64, Failure> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Failure::Input(format!("--{flag} {v}: expected a positive number")))
    }
}

pub(crate) fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let backend = if args.emulate { Backend::Emulated } else { Backend::Cuda };
    // Before reading anything else: a machine without the driver gets the one plain answer.
    if backend == Backend::Cuda && !gpushare_replay::driver::driver_present() {
        return Err(ReplayError::Unavailable(gpushare_replay::NO_DRIVER.into()).into());
    }
    if backend == Backend::Cuda {
        gpushare_replay::libs::ensure_loadable();
    }
    let gpus = args
        .gpu
        .split(',')
        .map(|g| g.trim().parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Failure::Input(format!("--gpu {}: expected device ordinals, e.g. 0 or 0,1", args.gpu)))?;
    let (scenario, mut scenario_args) = match &args.policy {
        Some(p) => {
            let (_, s) = with_policy(&args.scenario, p)?;
            let key = if p.trim_start().starts_with('{') {
                "policy"
            } else {
                "policy.name"
            };
            (s, vec!["--set".to_string(), format!("'{key}={p}'")])
        }
        None => {
            let src = source(&args.scenario)?;
            let s = src.parse()?;
            gpushare_policies::build(&s).map_err(|e| src.locate(e))?;
            (s, Vec::new())
        }
    };
    let mut prefix = vec![display(&args.scenario.scenario)];
    for s in &args.scenario.set {
        prefix.push("--set".into());
        prefix.push(format!("'{s}'"));
    }
    if let Some(seed) = args.scenario.seed {
        prefix.push(format!("--seed {seed}"));
    }
    prefix.append(&mut scenario_args);
    for note in &scenario.notes {
        eprintln!("{note}");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("out")
            .join(format!("{}-replay", scenario.name))
            .join(&scenario.policy.name)
    });
    let opts = ReplayOptions {
        gpus,
        time_scale: positive("time-scale", args.time_scale)?,
        out: out.clone(),
        backend,
        calibration: args.calibration.clone(),
        worker_exe: exe()?,
        sample_period: Duration::from_secs_f64(positive("sample-ms", args.sample_ms)? / 1e3),
        drain_timeout: Duration::from_secs_f64(positive("drain-timeout-s", args.drain_timeout_s)?),
        setup_timeout: gpushare_replay::client::SETUP_TIMEOUT,
        scenario_args: prefix,
    };
    let run = gpushare_replay::replay::replay(&scenario, &opts)?;
    say_raw!("{}", gpushare_reports::human::render(&run.summary));
    let r = &run.report;
    say!(
        "harness        arrivals sent {:.3} ms late (p99 {:.3} ms); requests reached their worker in {:.3} ms (p99 {:.3} ms)",
        r.arrival_lag.p50_ms,
        r.arrival_lag.p99_ms,
        r.handoff.p50_ms,
        r.handoff.p99_ms
    );
    for n in &r.notes {
        say!("note           {n}");
    }
    say!("wrote          {}", out.display());
    say!("prediction     {} --out SIM_DIR", r.prediction_command);
    Ok(())
}

pub(crate) fn calibrate(args: CalibrateArgs) -> Result<(), Failure> {
    if !gpushare_replay::driver::driver_present() {
        return Err(ReplayError::Unavailable(gpushare_replay::NO_DRIVER.into()).into());
    }
    gpushare_replay::libs::ensure_loadable();
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("out")
            .join("calibration")
            .join(format!("gpu{}.toml", args.gpu))
    });
    let cal: Calibration = gpushare_replay::calibrate::calibrate(&CalibrateOptions {
        gpu: args.gpu,
        worker_exe: exe()?,
        no_mps: args.no_mps,
    })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::Run(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
    }
    let header = format!(
        "Device profile of GPU {} ({}, driver {}), measured by gpushare {}:\n  gpushare calibrate --gpu {}{}{}\n\
         Load it in a scenario with  gpu = {{ profile = \"{}\" }}  (a path relative to the scenario).",
        args.gpu,
        cal.measured.gpu_name,
        cal.measured.driver,
        env!("CARGO_PKG_VERSION"),
        args.gpu,
        args.out
            .as_ref()
            .map_or(String::new(), |o| format!(" --out {}", o.display())),
        if args.no_mps { " --no-mps" } else { "" },
        out.display()
    );
    cal.save(&out, &header).map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
    for n in &cal.measured.notes {
        say!("note           {n}");
    }
    say!("wrote          {}", out.display());
    Ok(())
}

pub(crate) fn compare_dirs(sim: &Path, replay: &Path, out: Option<PathBuf>) -> Result<(), Failure> {
    use gpushare_reports::validation;
    let predicted = validation::find_runs(sim).map_err(Failure::Input)?;
    let measured = validation::find_runs(replay).map_err(Failure::Input)?;
    if let Some(r) = measured.iter().find(|r| r.backend.is_none()) {
        return Err(Failure::Input(format!(
            "{}: no replay.json beside its summary: it is not a `gpushare replay` output; compare a simulation's runs (first) with a replay's (second)",
            r.dir.display()
        )));
    }
    if let Some(r) = predicted.iter().find(|r| r.backend.is_some()) {
        return Err(Failure::Input(format!(
            "{}: has a replay.json: it is a replay's output, not a simulation's; give the simulation's runs first and the replay's second",
            r.dir.display()
        )));
    }
    let (rows, unpaired) = validation::compare(&predicted, &measured);
    if rows.is_empty() {
        return Err(Failure::Input(format!(
            "no run of {} pairs with a run of {} (runs pair by scenario and policy name): {}",
            sim.display(),
            replay.display(),
            unpaired.join("; ")
        )));
    }
    let emulated = measured.iter().any(|r| r.backend.as_deref() == Some("emulated"));
    let md = validation::markdown(&rows, emulated);
    say_raw!("{md}");
    for u in &unpaired {
        eprintln!("note: {u}");
    }
    let dir = out.unwrap_or_else(|| replay.to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| Failure::Run(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
    let write = |name: &str, text: &str| {
        gpushare_reports::atomic::write_atomic(&dir.join(name), text.as_bytes())
            .map_err(|e| Failure::Run(anyhow::anyhow!("writing {}: {e}", dir.join(name).display())))
    };
    write("comparison.md", &md)?;
    write("comparison.csv", &validation::csv(&rows))?;
    say!("wrote          {}/comparison.md, comparison.csv", dir.display());
    Ok(())
}

pub(crate) fn overhead(args: OverheadArgs) -> Result<(), Failure> {
    let backend = if args.emulate { Backend::Emulated } else { Backend::Cuda };
    if args.n == 0 {
        return Err(Failure::Input("--n 0: expected at least 1".into()));
    }
    if backend == Backend::Cuda {
        gpushare_replay::libs::ensure_loadable();
    }
    let r = gpushare_replay::overhead::measure(&gpushare_replay::overhead::OverheadOptions {
        gpu: args.gpu,
        backend,
        calibration: args.calibration,
        profile: args.function,
        n: args.n,
        worker_exe: exe()?,
    })?;
    say!(
        "{} ({}), {} invocations each way: planned {:.3} ms; bare loop p50 {:.3} ms; through the harness p50 {:.3} ms; added {:.3} ms = {:.2} %",
        r.profile,
        r.backend,
        r.n,
        r.planned_ms,
        r.bare_p50_ms,
        r.harness_p50_ms,
        r.added_ms,
        r.added_pct
    );
    Ok(())
}

pub(crate) fn probe(args: ProbeArgs) -> Result<(), Failure> {
    let backend = if args.emulate { Backend::Emulated } else { Backend::Cuda };
    if backend == Backend::Cuda {
        gpushare_replay::libs::ensure_loadable();
    }
    let p = gpushare_replay::probe::probe(&gpushare_replay::probe::ProbeOptions {
        gpu: args.gpu,
        backend,
        worker_exe: exe()?,
        timeout: Duration::from_secs_f64(positive("timeout-s", args.timeout_s)?),
        no_mps: args.no_mps,
    });
    let json = serde_json::to_string_pretty(&p).expect("the probe serialises") + "\n";
    say_raw!("{json}");
    let write = |path: &Path, text: &str| {
        gpushare_reports::atomic::write_atomic(path, text.as_bytes())
            .map_err(|e| Failure::Run(anyhow::anyhow!("writing {}: {e}", path.display())))
    };
    if let Some(out) = &args.out {
        write(out, &json)?;
    }
    if let Some(env) = &args.env {
        write(env, &p.shell())?;
    }
    if !p.context.ok {
        return Err(ReplayError::Unavailable(format!("no worker comes up here: {}", p.context.detail)).into());
    }
    Ok(())
}

fn add_colocation_to_dataset(dir: &Path, dataset_dir: &Path) -> Result<(), Failure> {
    use gpushare_reports::fidelity::colocation;
    let c = colocation::convert(dir).map_err(Failure::Input)?;
    let (rows_path, workloads_path) = (dataset_dir.join("measurements.csv"), dataset_dir.join("workloads.toml"));
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Failure::Input(format!("{}: {e}", p.display())));
    let (rows, workloads) = colocation::merge(&read(&rows_path)?, &read(&workloads_path)?, &c);
    // Checked as the fidelity commands will read them before anything is replaced.
    gpushare_reports::fidelity::dataset::Dataset::parse(&rows_path, &rows).map_err(Failure::Input)?;
    let write = |p: &Path, text: &str| {
        gpushare_reports::atomic::write_atomic(p, text.as_bytes())
            .map_err(|e| Failure::Run(anyhow::anyhow!("writing {}: {e}", p.display())))
    };
    write(&rows_path, &rows)?;
    write(&workloads_path, &workloads)?;
    say!(
        "added          {} calibration rows (kernels alone) and {} validation rows (pairs) of {} to {} and {}",
        c.calibration_rows,
        c.validation_rows,
        c.gpu,
        rows_path.display(),
        workloads_path.display()
    );
    say!("next           gpushare fit, then gpushare fidelity");
    Ok(())
}

pub(crate) fn colocate(args: ColocateArgs) -> Result<(), Failure> {
    if let Some(dir) = &args.add_to_dataset {
        return add_colocation_to_dataset(dir, &args.dataset_dir);
    }
    let backend = if args.emulate { Backend::Emulated } else { Backend::Cuda };
    if backend == Backend::Cuda {
        if !gpushare_replay::driver::driver_present() {
            return Err(ReplayError::Unavailable(gpushare_replay::NO_DRIVER.into()).into());
        }
        gpushare_replay::libs::ensure_loadable();
    }
    let opts = gpushare_replay::colocate::ColocateOptions {
        gpu: args.gpu,
        backend,
        calibration: args.calibration,
        worker_exe: exe()?,
        cell_s: args.cell_s,
        no_mps: args.no_mps,
        out: args.out,
    };
    let plain = !args.label.is_empty()
        && args.label.len() <= 40
        && args
            .label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !plain {
        return Err(Failure::Input(format!(
            "--label `{}`: expected a short name of letters, digits, `-`, `_` or `.` (e.g. h200)",
            args.label
        )));
    }
    let w = gpushare_replay::colocate::colocate(&opts, &args.label)?;
    for n in &w.notes {
        say!("note           {n}");
    }
    if backend == Backend::Emulated {
        say!("note           emulated: the kernels were sleeps; these are not measurements");
    }
    let files: Vec<String> = w.files.iter().map(|f| f.display().to_string()).collect();
    say!("wrote          {} cells: {}", w.cells, files.join(", "));
    Ok(())
}
