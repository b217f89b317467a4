//! Many runs: `sweep` (and `--resume`), `merge` of shards, `plot` of a sweep or run, and
//! `check` of the CI scenarios against their baseline.

use crate::scenario_cli::{ScenarioArgs, source};
use crate::{Failure, threads};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct SweepArgs {
    #[command(flatten)]
    pub(crate) scenario: ScenarioArgs,
    /// An axis, KEY=V1,V2,… (adds to, or replaces the same key of, the [sweep] table), e.g.
    /// --axis simulation.load_scale=0.5,1,2 or --axis 'policy=kaas,mps'. Repeatable.
    #[arg(long = "axis", value_name = "KEY=V1,V2,…")]
    pub(crate) axes: Vec<String>,
    /// Seeds per point (default: [sweep] seeds, else 1).
    #[arg(long)]
    pub(crate) seeds: Option<u32>,
    /// Threads (default: every core).
    #[arg(long, short)]
    pub(crate) jobs: Option<usize>,
    /// Run only shard I of N (1-based), e.g. --shard 3/8; join shards with `gpushare merge`.
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<String>,
    /// Output directory (default: out/<scenario name>-sweep, with -shard-I-of-N when sharded).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Keep each run's invocations.csv (when its scenario asks for one).
    #[arg(long)]
    pub(crate) invocations: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Resume an interrupted sweep into the same --out: keep each run it completed (its
    /// point.json records the same place and scenario fingerprint), simulate the rest.
    #[arg(long)]
    pub(crate) resume: bool,
}

pub(crate) fn sweep_error(e: gpushare_reports::sweep::SweepError) -> Failure {
    match e {
        gpushare_reports::sweep::SweepError::Input(m) => Failure::Input(m),
        gpushare_reports::sweep::SweepError::Run(m) => Failure::Run(anyhow::anyhow!(m)),
    }
}

pub(crate) fn sweep(args: SweepArgs) -> Result<(), Failure> {
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
        window: 0,
    };
    let (rows, kept) = sweep::execute(plan, &out, &opts, &gpushare_policies::build).map_err(sweep_error)?;
    println!(
        "{rows} runs ({points} points × {seeds} seeds{}{}) in {:.2} s on {jobs} threads: {}",
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

pub(crate) fn merge(shards: Vec<PathBuf>, out: PathBuf) -> Result<(), Failure> {
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

pub(crate) fn plot(
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
pub(crate) fn check(
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
