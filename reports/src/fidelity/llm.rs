//! Fidelity of the LLM-serving model against published measurements (`validation/llm.csv`):
//! each row's experiment run as a serving scenario (or, for one iteration, the cost model
//! alone), the fit of the cost model's two efficiencies on the calibration rows alone, and the
//! report (`reports/fidelity/llm.md`, `llm.csv`) with the median error per metric group.

use crate::atomic::write_atomic;
use crate::summary_files::csv_field;
use gpushare_sim::serving::cost::{CostModel, CostParams, IterationWork, Resources};
use gpushare_sim::serving::{self, ServingScenario};
use gpushare_sim::{ScenarioSource, device::builtin_device};
use std::fmt::Write;
use std::path::Path;

/// Target of the validation rows' median |error| per metric group (issue 17).
pub const TARGET_MEDIAN: f64 = 0.15;

/// One row of `llm.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRow {
    pub id: String,
    pub calibration: bool,
    /// What a calibration row fits: `compute_efficiency` or `memory_efficiency`.
    pub fits: String,
    pub model: String,
    pub gpu: String,
    pub experiment: Experiment,
    /// `ttft`, `tpot` or `throughput`.
    pub group: String,
    pub value: f64,
    pub unit: String,
}

/// How a row is predicted.
#[derive(Clone, Debug, PartialEq)]
pub enum Experiment {
    Burst {
        requests: u64,
        prompt: u64,
        output: u64,
        measure: String,
    },
    Prefill(u64),
    Decodes {
        batch: u64,
        context: u64,
    },
}

const MEASURES: [&str; 4] = ["ttft_ms", "tpot_ms", "tpot_p50_ms", "output_tokens_per_s"];

/// Reads `path`, every error naming the file, line and field.
pub fn load(path: &Path) -> Result<Vec<LlmRow>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}:1: the header has no `{name}` column", path.display()))
    };
    let cols: Vec<usize> = [
        "id",
        "set",
        "fits",
        "model",
        "gpu",
        "experiment",
        "metric",
        "value",
        "unit",
    ]
    .iter()
    .map(|c| col(c))
    .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("{}:{line}: {e}", path.display()))?;
        let field = |k: usize| rec.get(cols[k]).unwrap_or("").trim().to_string();
        let bad = |name: &str, why: String| format!("{}:{line}: field `{name}`: {why}", path.display());
        let calibration = match field(1).as_str() {
            "calibration" => true,
            "validation" => false,
            other => return Err(bad("set", format!("`{other}`; valid: calibration, validation"))),
        };
        let value: f64 = field(7)
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)
            .ok_or_else(|| bad("value", format!("`{}` is not a positive number", field(7))))?;
        let group = field(6);
        if !["ttft", "tpot", "throughput"].contains(&group.as_str()) {
            return Err(bad("metric", format!("`{group}`; valid: ttft, tpot, throughput")));
        }
        rows.push(LlmRow {
            id: field(0),
            calibration,
            fits: field(2),
            model: field(3),
            gpu: field(4),
            experiment: parse_experiment(&field(5)).map_err(|e| bad("experiment", e))?,
            group,
            value,
            unit: field(8),
        });
    }
    Ok(rows)
}

fn parse_experiment(text: &str) -> Result<Experiment, String> {
    let mut kv = std::collections::BTreeMap::new();
    for part in text.split_whitespace() {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        kv.insert(k, v);
    }
    let num = |k: &str| -> Result<u64, String> {
        kv.get(k)
            .ok_or_else(|| format!("`{k}=` is missing"))?
            .parse()
            .map_err(|_| format!("`{k}` must be a whole number"))
    };
    match kv.get("kind").copied() {
        Some("burst") => {
            let measure = kv.get("measure").copied().unwrap_or_default().to_string();
            if !MEASURES.contains(&measure.as_str()) {
                return Err(format!("measure `{measure}`; valid: {}", MEASURES.join(", ")));
            }
            Ok(Experiment::Burst {
                requests: num("requests")?,
                prompt: num("prompt")?,
                output: num("output")?,
                measure,
            })
        }
        Some("iteration") if kv.contains_key("prefill") => Ok(Experiment::Prefill(num("prefill")?)),
        Some("iteration") => Ok(Experiment::Decodes {
            batch: num("decodes")?,
            context: num("context")?,
        }),
        other => Err(format!("kind `{}`; valid: burst, iteration", other.unwrap_or(""))),
    }
}

/// What gpushare predicts for `row` with `params`, in the row's unit.
pub fn predict(row: &LlmRow, params: &CostParams) -> Result<f64, String> {
    match &row.experiment {
        Experiment::Burst {
            requests,
            prompt,
            output,
            measure,
        } => burst(row, params, (*requests, *prompt, *output), measure),
        Experiment::Prefill(p) => iteration_ms(row, params, |w| w.prefill(*p, 0)),
        Experiment::Decodes { batch, context } => iteration_ms(row, params, |w| {
            for _ in 0..*batch {
                w.decode(*context);
            }
        }),
    }
}

fn iteration_ms(row: &LlmRow, params: &CostParams, fill: impl Fn(&mut IterationWork)) -> Result<f64, String> {
    let dev = builtin_device(&row.gpu).ok_or_else(|| format!("{}: unknown GPU `{}`", row.id, row.gpu))?;
    let model = gpushare_traces::llm::builtin_llms()
        .into_iter()
        .find(|m| m.name == row.model)
        .ok_or_else(|| format!("{}: unknown model `{}`", row.id, row.model))?;
    let cost = CostModel {
        model,
        params: *params,
        resources: Resources {
            flops: dev.tensor_tflops * 1e12,
            bandwidth: dev.mem_bandwidth_gbps * 1e9,
        },
    };
    let mut w = IterationWork::default();
    fill(&mut w);
    Ok((cost.gpu_work(&w).alone_ns + cost.host_ns() as f64) / 1e6)
}

fn burst(
    row: &LlmRow,
    params: &CostParams,
    (n, prompt, output): (u64, u64, u64),
    measure: &str,
) -> Result<f64, String> {
    let text = format!(
        r#"[simulation]
horizon_s = 1.0
[cluster]
nodes = 1
gpus_per_node = 1
gpu = "{gpu}"
[serving]
cost = {{ compute_efficiency = {ce}, memory_efficiency = {me}, host_ms = {host} }}
[[deployments]]
name = "{id}"
model = "{model}"
workload = {{ kind = "burst", requests = {n}, prompt_tokens = {prompt}, output_tokens = {output} }}
"#,
        gpu = row.gpu,
        ce = params.compute_efficiency,
        me = params.memory_efficiency,
        host = params.host_ms,
        id = row.id,
        model = row.model,
    );
    let src = ScenarioSource::from_text(Path::new(&format!("{}.toml", row.id)), &text);
    let scenario = ServingScenario::parse(&src).map_err(|e| e.to_string())?;
    let run = serving::run(&scenario, false)?;
    let f = &run.summary.figures;
    if f.completed != n {
        return Err(format!("{}: {} of {n} requests completed", row.id, f.completed));
    }
    Ok(match measure {
        "ttft_ms" => f.ttft_s.mean * 1e3,
        "tpot_ms" => f.tpot_s.mean * 1e3,
        "tpot_p50_ms" => f.tpot_s.p50 * 1e3,
        _ => f.output_tokens_per_s,
    })
}

/// The efficiencies that make the calibration rows' predictions equal their published values
/// (each found by bisection on its own row; two rounds settle the small coupling between a
/// prefill's memory time and a decode's compute time). Reads only the rows given: pass the
/// calibration rows.
pub fn fit(calibration: &[&LlmRow]) -> Result<CostParams, String> {
    let mut p = CostParams {
        compute_efficiency: 0.5,
        memory_efficiency: 0.5,
        host_ms: 0.0,
    };
    for _ in 0..3 {
        for row in calibration {
            let set = |p: &mut CostParams, v: f64| match row.fits.as_str() {
                "compute_efficiency" => p.compute_efficiency = v,
                _ => p.memory_efficiency = v,
            };
            if !["compute_efficiency", "memory_efficiency"].contains(&row.fits.as_str()) {
                return Err(format!(
                    "{}: fits `{}`; valid: compute_efficiency, memory_efficiency",
                    row.id, row.fits
                ));
            }
            // Every measure falls as the efficiency rises except throughput, which rises.
            let rising = row.group == "throughput";
            let (mut lo, mut hi) = (0.01f64, 1.0f64);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                set(&mut p, mid);
                let too_slow = (predict(row, &p)? > row.value) != rising;
                if too_slow { lo = mid } else { hi = mid }
            }
            set(&mut p, 0.5 * (lo + hi));
        }
    }
    let round = |v: f64| (v * 1e4).round() / 1e4;
    p.compute_efficiency = round(p.compute_efficiency);
    p.memory_efficiency = round(p.memory_efficiency);
    Ok(p)
}

/// A row's prediction and error.
pub struct LlmPrediction<'a> {
    pub row: &'a LlmRow,
    pub predicted: Result<f64, String>,
}

impl LlmPrediction<'_> {
    pub fn error(&self) -> Option<f64> {
        self.predicted
            .as_ref()
            .ok()
            .map(|p| (p - self.row.value) / self.row.value)
    }
}

/// Every row predicted with `params`.
pub fn predict_all<'a>(rows: &'a [LlmRow], params: &CostParams) -> Vec<LlmPrediction<'a>> {
    rows.iter()
        .map(|row| LlmPrediction {
            row,
            predicted: predict(row, params),
        })
        .collect()
}

/// The median |error| of the validation rows of `group` and how many there are.
pub fn median_error(preds: &[LlmPrediction], group: &str) -> (f64, usize) {
    let e: Vec<f64> = preds
        .iter()
        .filter(|p| !p.row.calibration && p.row.group == group)
        .filter_map(|p| p.error().map(f64::abs))
        .collect();
    let n = e.len();
    (median(e), n)
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// One line per group: median |error| of the validation rows against the target.
pub fn summary(preds: &[LlmPrediction]) -> String {
    let mut out = String::from("LLM serving (validation/llm.csv), validation median |error|:");
    for g in ["ttft", "tpot", "throughput"] {
        let (m, n) = median_error(preds, g);
        let verdict = if m <= TARGET_MEDIAN { "met" } else { "MISSED" };
        let _ = write!(out, " {g} {:.1} % ({n} rows, {verdict})", m * 100.0);
        out.push(';');
    }
    out.pop();
    out
}

/// `llm.csv` and `llm.md` of the report.
pub fn write(preds: &[LlmPrediction], params: &CostParams, dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut table = String::from("id,set,metric,unit,published,predicted,error\n");
    let mut md = format!(
        "# LLM serving against published measurements\n\n`gpushare fidelity` from `validation/llm.csv` (see `validation/README.md`). Cost model: compute_efficiency {}, memory_efficiency {}, host_ms {} (the fit of the calibration rows).\n\n{}\n\n| id | set | metric | published | predicted | error |\n| --- | --- | --- | ---: | ---: | ---: |\n",
        params.compute_efficiency,
        params.memory_efficiency,
        params.host_ms,
        summary(preds)
    );
    for p in preds {
        let r = p.row;
        let set = if r.calibration { "calibration" } else { "validation" };
        let (pred, err) = match (&p.predicted, p.error()) {
            (Ok(v), Some(e)) => (format!("{v:.6}"), format!("{e:.6}")),
            (Err(e), _) => (String::new(), format!("error: {e}")),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            table,
            "{},{set},{},{},{},{pred},{}",
            r.id,
            r.group,
            csv_field(&r.unit),
            r.value,
            csv_field(&err)
        );
        let e = p.error().map(|e| format!("{:+.1} %", e * 100.0)).unwrap_or(err);
        let pv = p.predicted.as_ref().map(|v| format!("{v:.2}")).unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {set} | {} ({}) | {} | {pv} | {e} |",
            r.id, r.group, r.unit, r.value
        );
    }
    let (a, b) = (dir.join("llm.csv"), dir.join("llm.md"));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_atomic(&a, table.as_bytes()).map_err(|e| format!("{}: {e}", a.display()))?;
    write_atomic(&b, md.as_bytes()).map_err(|e| format!("{}: {e}", b.display()))?;
    Ok(vec![a, b])
}

/// The CI check: every row predicted, and no group's validation median worse than in the
/// committed `llm.csv`.
pub fn check(preds: &[LlmPrediction], committed_csv: &str) -> Result<String, String> {
    if let Some(p) = preds.iter().find(|p| p.predicted.is_err()) {
        return Err(format!("{}: {}", p.row.id, p.predicted.as_ref().err().unwrap()));
    }
    let mut committed: Vec<(String, String, f64)> = Vec::new();
    for line in committed_csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() >= 7 && f[1] == "validation" {
            if let Ok(e) = f[6].parse::<f64>() {
                committed.push((f[2].to_string(), f[0].to_string(), e.abs()));
            }
        }
    }
    for g in ["ttft", "tpot", "throughput"] {
        let e: Vec<f64> = committed.iter().filter(|c| c.0 == g).map(|c| c.2).collect();
        if e.is_empty() {
            continue;
        }
        let old = median(e);
        let (new, _) = median_error(preds, g);
        // The committed errors are rounded to 6 decimals.
        if new > old + 1e-6 {
            return Err(format!(
                "{g}: validation median |error| {:.2} % is worse than the committed {:.2} %",
                new * 100.0,
                old * 100.0
            ));
        }
    }
    Ok(summary(preds))
}
