//! The validation commands: `fit` (the model's free parameters from the calibration rows) and
//! `fidelity` (every row predicted, the report, the CI check).

use super::Failure;
use clap::Args;
use gpushare_reports::fidelity::{self, dataset::Dataset, model::Model};
use gpushare_sim::fitted::Fitted;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct DataArgs {
    /// The dataset.
    #[arg(long, default_value = "validation/measurements.csv")]
    dataset: PathBuf,
    /// The workloads its experiments run.
    #[arg(long, default_value = "validation/workloads.toml")]
    workloads: PathBuf,
    /// Threads (default: every core; the results do not depend on it).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// The LLM-serving dataset (default: `llm.csv` beside --dataset, left out when there is
    /// none: a dataset of one's own need not have LLM rows).
    #[arg(long)]
    llm_dataset: Option<PathBuf>,
}

impl DataArgs {
    /// The LLM dataset to read: the one given, else `llm.csv` beside the dataset if there is one.
    fn llm_dataset(&self) -> Option<PathBuf> {
        if let Some(p) = &self.llm_dataset {
            return Some(p.clone());
        }
        Some(self.dataset.with_file_name("llm.csv")).filter(|p| p.exists())
    }
}

#[derive(Args)]
pub(crate) struct FitArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the fitted parameters.
    #[arg(long, default_value = "validation/fitted.toml")]
    out: PathBuf,
    /// Fit and compare with the file at --out instead of writing it: exit 1 if any parameter
    /// differs by more than 0.1 %.
    #[arg(long)]
    check: bool,
}

#[derive(Args)]
pub(crate) struct FidelityArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The fitted parameters to predict with (default: the ones compiled in, i.e. the committed
    /// validation/fitted.toml).
    #[arg(long)]
    fitted: Option<PathBuf>,
    /// Where to write report.md, report.csv and the figure.
    #[arg(long, default_value = "reports/fidelity")]
    out: PathBuf,
    /// Predict and compare with the report.csv in --out instead of writing: exit 1 if a row
    /// cannot be predicted or the validation median error is worse than the committed one.
    #[arg(long)]
    check: bool,
}

fn pool(jobs: Option<usize>) -> Result<rayon::ThreadPool, Failure> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(super::threads(jobs)?)
        .build()
        .map_err(|e| Failure::Run(e.into()))
}

/// The repository root the dataset's scenario paths are relative to: the dataset's directory's
/// parent.
fn root_of(dataset: &Path) -> PathBuf {
    dataset
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn fit(args: FitArgs) -> Result<(), Failure> {
    let threads = pool(args.data.jobs)?;
    let data = Dataset::load(&args.data.dataset).map_err(Failure::Input)?;
    let model = Model::load(&args.data.workloads, gpushare_sim::fitted::committed().clone()).map_err(Failure::Input)?;
    let root = root_of(&args.data.dataset);
    let calibration = data.calibration();
    if let Some(name) = fidelity::fit::uncovered(&calibration, &model) {
        return Err(Failure::Input(format!(
            "{}: no calibration row (set = calibration, fits = workload) measures workload `{name}`, which {} lists parameters to fit for; add one, or remove its `fit`",
            args.data.dataset.display(),
            args.data.workloads.display()
        )));
    }
    let fitted = threads
        .install(|| fidelity::fit::fit(&calibration, &model, &root))
        .map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
    let text = fidelity::fit::to_toml(&fitted);
    if let Some(llm) = args.data.llm_dataset() {
        fit_llm(&llm, args.check)?;
    }
    if args.check {
        let committed = Fitted::load(&args.out).map_err(Failure::Input)?;
        let diffs = fidelity::fit::differences(&committed, &fitted, 1e-3);
        if !diffs.is_empty() {
            return Err(Failure::Run(anyhow::anyhow!(
                "the fit differs from {}:\n  {}",
                args.out.display(),
                diffs.join("\n  ")
            )));
        }
        println!(
            "{}: the fit of {} calibration rows reproduces it",
            args.out.display(),
            calibration.len()
        );
        return Ok(());
    }
    gpushare_reports::atomic::write_atomic(&args.out, text.as_bytes())
        .map_err(|e| Failure::Run(anyhow::anyhow!("{}: {e}", args.out.display())))?;
    println!(
        "wrote {} ({} workloads, device coefficients) from {} calibration rows",
        args.out.display(),
        fitted.profiles.len(),
        calibration.len()
    );
    Ok(())
}

/// The LLM cost model's efficiencies fitted on the calibration rows of `path`, against the
/// compiled-in defaults (`CostParams::default`, which must be this fit): printed, or with
/// `check` an error if they differ.
fn fit_llm(path: &Path, check: bool) -> Result<(), Failure> {
    use gpushare_sim::serving::cost::CostParams;
    let rows = fidelity::llm::load(path).map_err(Failure::Input)?;
    let calibration: Vec<_> = rows.iter().filter(|r| r.calibration).collect();
    let fit = fidelity::llm::fit(&calibration).map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
    let compiled = CostParams::default();
    let same = (fit.compute_efficiency - compiled.compute_efficiency).abs() < 1e-3
        && (fit.memory_efficiency - compiled.memory_efficiency).abs() < 1e-3;
    let line = format!(
        "LLM cost model from {} calibration rows of {}: compute_efficiency {}, memory_efficiency {} (compiled in: {}, {})",
        calibration.len(),
        path.display(),
        fit.compute_efficiency,
        fit.memory_efficiency,
        compiled.compute_efficiency,
        compiled.memory_efficiency
    );
    if check && !same {
        return Err(Failure::Run(anyhow::anyhow!(
            "{line}: the compiled-in values differ from the fit"
        )));
    }
    println!("{line}");
    Ok(())
}

/// Every row of the LLM dataset (if there is one) predicted with the compiled-in cost model:
/// the report written into `out`, or checked against the committed one.
fn fidelity_llm(data: &DataArgs, out: &Path, check: bool) -> Result<(), Failure> {
    let Some(path) = data.llm_dataset() else {
        return Ok(());
    };
    let params = gpushare_sim::serving::cost::CostParams::default();
    let rows = fidelity::llm::load(&path).map_err(Failure::Input)?;
    let preds = fidelity::llm::predict_all(&rows, &params);
    if check {
        let committed_path = out.join("llm.csv");
        let committed = std::fs::read_to_string(&committed_path)
            .map_err(|e| Failure::Input(format!("{}: {e}", committed_path.display())))?;
        let line = fidelity::llm::check(&preds, &committed)
            .map_err(|e| Failure::Run(anyhow::anyhow!("{}: {e}", committed_path.display())))?;
        println!("fidelity: {line}");
        return Ok(());
    }
    let written = fidelity::llm::write(&preds, &params, out).map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
    println!("{}", fidelity::llm::summary(&preds));
    for w in written {
        println!("wrote {}", w.display());
    }
    Ok(())
}

pub(crate) fn fidelity(args: FidelityArgs) -> Result<(), Failure> {
    let threads = pool(args.data.jobs)?;
    let data = Dataset::load(&args.data.dataset).map_err(Failure::Input)?;
    let fitted = match &args.fitted {
        Some(p) => Fitted::load(p).map_err(Failure::Input)?,
        None => gpushare_sim::fitted::committed().clone(),
    };
    let model = Model::load(&args.data.workloads, fitted).map_err(Failure::Input)?;
    let root = root_of(&args.data.dataset);
    let preds = threads.install(|| fidelity::predict(&data.rows, &model, &root));
    if args.check {
        let path = args.out.join("report.csv");
        let committed =
            std::fs::read_to_string(&path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
        let line = fidelity::report::check(&preds, &committed)
            .map_err(|e| Failure::Run(anyhow::anyhow!("{}: {e}", path.display())))?;
        println!("fidelity: {line}");
        return fidelity_llm(&args.data, &args.out, true);
    }
    let written = fidelity::report::write(&preds, &args.out).map_err(|e| Failure::Run(anyhow::anyhow!(e)))?;
    println!("{}", fidelity::report::summary(&preds));
    for w in written {
        println!("wrote {}", w.display());
    }
    fidelity_llm(&args.data, &args.out, false)
}
