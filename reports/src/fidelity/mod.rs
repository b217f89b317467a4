//! Fidelity against published measurements: the validation dataset ([`dataset`]), the model it
//! is predicted with ([`model`]), each row's experiment ([`experiment`]), the fit of the free
//! parameters on the calibration rows alone ([`fit`]), and the report (`gpushare fidelity`:
//! [`report`]).

pub mod colocation;
pub mod dataset;
pub mod experiment;
pub mod fit;
pub mod llm;
pub mod model;
pub mod report;

use dataset::{Experiment, Row, Set};
use model::Model;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// A row with what gpushare predicts for it.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub row: Row,
    pub predicted: Result<f64, String>,
}

impl Prediction {
    /// (predicted − published) / published.
    pub fn error(&self) -> Option<f64> {
        self.predicted
            .as_ref()
            .ok()
            .map(|p| (p - self.row.value) / self.row.value)
    }
}

/// The key of the run an experiment needs: rows that differ only in what they read from the
/// same run share it.
fn run_key(exp: &Experiment) -> String {
    match exp {
        Experiment::ClosedLoop {
            device,
            mechanism,
            clients,
            ..
        } => format!("{device} {mechanism:?} {clients:?}"),
        Experiment::Scenario { file, sets, .. } => format!("{} {sets:?}", file.display()),
    }
}

/// Predicts every row of `rows` with `model` (runs in parallel; the result does not depend on
/// the number of threads).
pub fn predict(rows: &[Row], model: &Model, root: &Path) -> Vec<Prediction> {
    let mut runs: BTreeMap<String, &Experiment> = BTreeMap::new();
    for r in rows {
        runs.entry(run_key(&r.experiment)).or_insert(&r.experiment);
    }
    let keyed: Vec<(&String, &&Experiment)> = runs.iter().collect();
    let outcomes: BTreeMap<String, Result<experiment::Outcome, String>> = keyed
        .par_iter()
        .map(|(k, e)| ((*k).clone(), experiment::run(e, model, root)))
        .collect();
    rows.iter()
        .map(|r| {
            let predicted = match &outcomes[&run_key(&r.experiment)] {
                Ok(o) => experiment::read(&r.experiment, o),
                Err(e) => Err(e.clone()),
            };
            Prediction {
                row: r.clone(),
                predicted,
            }
        })
        .collect()
}

/// Median, 90th percentile and maximum of absolute relative errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub rows: usize,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

/// The `q` quantile of sorted values, interpolating between order statistics (Hyndman and
/// Fan's type 7, as R and NumPy by default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The spread of |error| over `errors`.
pub fn spread(errors: impl Iterator<Item = f64>) -> Spread {
    let mut abs: Vec<f64> = errors.map(f64::abs).collect();
    abs.sort_by(f64::total_cmp);
    Spread {
        rows: abs.len(),
        median: quantile(&abs, 0.5),
        p90: quantile(&abs, 0.9),
        max: abs.last().copied().unwrap_or(f64::NAN),
    }
}

/// The spread of one set's predicted rows.
pub fn spread_of(preds: &[Prediction], set: Set) -> Spread {
    spread(preds.iter().filter(|p| p.row.set == set).filter_map(Prediction::error))
}

/// The validation targets: median |error| ≤ 15 %, p90 ≤ 35 %.
pub const TARGET_MEDIAN: f64 = 0.15;
pub const TARGET_P90: f64 = 0.35;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.9) - 3.7).abs() < 1e-12);
        let s = spread([-0.3, 0.1, 0.2].into_iter());
        assert_eq!((s.rows, s.median, s.max), (3, 0.2, 0.3));
    }
}
