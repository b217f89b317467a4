//! `gpushare fit`: the model's free parameters from the calibration rows alone.
//!
//! Fitting is given [`CalibrationRow`]s only (a type only [`super::dataset::Dataset::calibration`]
//! makes), so no validation number can reach it. Each fitted workload's figures (`solo_ms`,
//! `sm_pct`, `host_pre_ms` as `workloads.toml` lists them) minimise the squared log errors of
//! its `fits = workload` rows; `dram_queueing` those of its rows, and `context_switch_us` its
//! row's. Predictions come from the same experiments `gpushare fidelity` runs, so the fit and
//! the report can never disagree about the model. Two rounds (workloads, then coefficients, then
//! both again) settle the few rows that depend on both. A vanishing pull towards the starting
//! point (`PULL`) settles what the rows leave undetermined. Everything is deterministic: fixed
//! starting points, a fixed number of iterations, groups fitted in name order (in parallel, each
//! independent of the others within a round), values rounded to four significant digits.

use super::dataset::{CalibrationRow, Fits};
use super::experiment;
use super::model::{Model, Param};
use gpushare_sim::fitted::{DeviceCoefficients, Fitted, FittedProfile};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Where every fit starts, and the coefficients no row calibrates.
pub const START: DeviceCoefficients = DeviceCoefficients {
    dram_queueing: 1.0,
    l2_contention: 1.0,
    time_slice_ms: 2.0,
    context_switch_us: 50.0,
};

const ROUNDS: usize = 2;

/// Every workload's starting point.
const START_PROFILE: FittedProfile = FittedProfile {
    solo_ms: 10.0,
    sm_pct: Some(50.0),
    host_pre_ms: Some(0.0),
};

/// Weight of the pull towards the starting point, per unit² in the search space (ln solo_ms,
/// logit sm_pct, ln host): a parameter moves by one unit for what a 0.1 % misfit costs.
const PULL: f64 = 1e-6;

/// The first workload of `model` with parameters to fit that no row of `rows` fits: a dataset
/// that cannot calibrate the model (refuse it before fitting anything).
pub fn uncovered<'a>(rows: &[CalibrationRow], model: &'a Model) -> Option<&'a str> {
    model
        .workloads
        .iter()
        .filter(|(_, d)| !d.fit.is_empty())
        .map(|(name, _)| name.as_str())
        .find(|name| {
            !rows
                .iter()
                .any(|r| r.fits() == Fits::Workload && r.row().experiment.workloads()[0] == *name)
        })
}

/// Fits every parameter on `rows` (calibration rows only), for the workloads of `model`; the
/// fitted values `model` carries are ignored.
pub fn fit(rows: &[CalibrationRow], model: &Model, root: &Path) -> Result<Fitted, String> {
    let mut current = Fitted {
        device: START,
        sources: sources(rows),
        profiles: model
            .workloads
            .iter()
            .filter(|(_, d)| !d.fit.is_empty())
            .map(|(n, d)| {
                (
                    n.clone(),
                    FittedProfile {
                        solo_ms: START_PROFILE.solo_ms,
                        sm_pct: START_PROFILE.sm_pct.filter(|_| d.fit.contains(&Param::SmPct)),
                        host_pre_ms: START_PROFILE.host_pre_ms.filter(|_| d.fit.contains(&Param::HostPreMs)),
                    },
                )
            })
            .collect(),
    };
    uncovered(rows, model).map_or(Ok(()), |name| {
        Err(format!(
            "workload `{name}` lists parameters to fit but no calibration row fits it"
        ))
    })?;
    for _ in 0..ROUNDS {
        let names: Vec<String> = current.profiles.keys().cloned().collect();
        let fits: Vec<Result<(String, FittedProfile), String>> = names
            .par_iter()
            .map(|name| fit_workload(name, rows, model, &current, root).map(|p| (name.clone(), p)))
            .collect();
        for f in fits {
            let (name, p) = f?;
            current.profiles.insert(name, p);
        }
        current.device.dram_queueing = fit_coefficient(rows, Fits::DramQueueing, model, &current, root, |f, v| {
            f.device.dram_queueing = v
        })?;
        current.device.context_switch_us =
            fit_coefficient(rows, Fits::ContextSwitch, model, &current, root, |f, v| {
                f.device.context_switch_us = v
            })?;
    }
    Ok(round_all(current))
}

/// How each device coefficient was obtained.
fn sources(rows: &[CalibrationRow]) -> BTreeMap<String, String> {
    let ids = |f: Fits| {
        rows.iter()
            .filter(|r| r.fits() == f)
            .map(|r| r.row().id.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    BTreeMap::from([
        (
            "dram_queueing".into(),
            format!("fitted on calibration rows {}", ids(Fits::DramQueueing)),
        ),
        (
            "context_switch_us".into(),
            format!(
                "fitted on calibration row {} (time slice 2 ms)",
                ids(Fits::ContextSwitch)
            ),
        ),
        (
            "l2_contention".into(),
            "assumed 1.0: no calibration row measures cache contention (validation/README.md)".into(),
        ),
        (
            "time_slice_ms".into(),
            "assumed 2 ms: not documented by NVIDIA; only slice / (slice + switch) shows (validation/README.md)".into(),
        ),
    ])
}

/// Σ (ln predicted/published)² over `rows` with `fitted`; infinite when an experiment fails.
fn objective(rows: &[&CalibrationRow], model: &Model, fitted: &Fitted, root: &Path) -> f64 {
    let m = Model {
        workloads: model.workloads.clone(),
        fitted: fitted.clone(),
    };
    let mut sum = 0.0;
    for r in rows {
        let exp = &r.row().experiment;
        match experiment::run(exp, &m, root).and_then(|o| experiment::read(exp, &o)) {
            Ok(p) => sum += (p / r.row().value).ln().powi(2),
            Err(_) => return f64::INFINITY,
        }
    }
    sum
}

/// A workload's parameters, in the space the search moves in: ln solo_ms, logit(sm_pct/100),
/// ln(host_pre_ms + 0.01).
fn to_space(params: &[Param], p: &FittedProfile) -> Vec<f64> {
    params
        .iter()
        .map(|q| match q {
            Param::SoloMs => p.solo_ms.ln(),
            Param::SmPct => {
                let s = (p.sm_pct.unwrap_or(50.0) / 100.0).clamp(1e-6, 1.0 - 1e-6);
                (s / (1.0 - s)).ln()
            }
            Param::HostPreMs => (p.host_pre_ms.unwrap_or(0.0) + 0.01).ln(),
        })
        .collect()
}

fn from_space(params: &[Param], x: &[f64], base: &FittedProfile) -> FittedProfile {
    let mut p = *base;
    for (q, &v) in params.iter().zip(x) {
        match q {
            Param::SoloMs => p.solo_ms = v.exp(),
            Param::SmPct => p.sm_pct = Some(100.0 / (1.0 + (-v).exp())),
            Param::HostPreMs => p.host_pre_ms = Some((v.exp() - 0.01).max(0.0)),
        }
    }
    p
}

fn fit_workload(
    name: &str,
    rows: &[CalibrationRow],
    model: &Model,
    current: &Fitted,
    root: &Path,
) -> Result<FittedProfile, String> {
    let mine: Vec<&CalibrationRow> = rows
        .iter()
        .filter(|r| r.fits() == Fits::Workload && r.row().experiment.workloads()[0] == name)
        .collect();
    let params = model.workloads[name].fit.clone();
    let base = current.profiles[name];
    let start = to_space(&params, &START_PROFILE);
    let eval = |x: &[f64]| {
        let mut f = current.clone();
        f.profiles.insert(name.to_string(), from_space(&params, x, &base));
        // A vanishing pull towards the starting point settles parameters the rows leave
        // undetermined (an SM throughput that a slice's bandwidth hides) deterministically.
        let pull: f64 = x.iter().zip(&start).map(|(a, b)| (a - b).powi(2)).sum();
        objective(&mine, model, &f, root) + PULL * pull
    };
    // First the scale alone (every figure is proportional to solo_ms), then everything.
    let mut x = to_space(&params, &base);
    if let Some(k) = params.iter().position(|p| *p == Param::SoloMs) {
        let line = |v: f64| {
            let mut y = x.clone();
            y[k] = v;
            eval(&y)
        };
        x[k] = golden(line, (1e-4f64).ln(), (1e6f64).ln(), 80);
    }
    let x = nelder_mead(&eval, &x, 0.5, 400);
    let best = eval(&x);
    if !best.is_finite() {
        return Err(format!(
            "fitting `{name}`: no parameters make its calibration experiments run"
        ));
    }
    Ok(from_space(&params, &x, &base))
}

fn fit_coefficient(
    rows: &[CalibrationRow],
    which: Fits,
    model: &Model,
    current: &Fitted,
    root: &Path,
    set: impl Fn(&mut Fitted, f64) + Sync,
) -> Result<f64, String> {
    let mine: Vec<&CalibrationRow> = rows.iter().filter(|r| r.fits() == which).collect();
    let (lo, hi, log) = match which {
        Fits::DramQueueing => (0.0, 10.0, false),
        _ => ((1.0f64).ln(), (1e5f64).ln(), true),
    };
    if mine.is_empty() {
        return Ok(match which {
            Fits::DramQueueing => current.device.dram_queueing,
            _ => current.device.context_switch_us,
        });
    }
    let eval = |v: f64| {
        let mut f = current.clone();
        set(&mut f, if log { v.exp() } else { v });
        objective(&mine, model, &f, root)
    };
    let v = golden(eval, lo, hi, 60);
    if !eval(v).is_finite() {
        return Err(format!(
            "fitting {which:?}: no value makes its calibration experiments run"
        ));
    }
    Ok(if log { v.exp() } else { v })
}

/// Golden-section search for the minimum of `f` on [a, b], `iters` steps.
fn golden(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64, iters: usize) -> f64 {
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - r * (b - a);
    let mut d = a + r * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..iters {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - r * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + r * (b - a);
            fd = f(d);
        }
    }
    if fc <= fd { c } else { d }
}

/// Nelder–Mead from `x0` with initial steps `step`, at most `iters` iterations (standard
/// coefficients: reflection 1, expansion 2, contraction ½, shrink ½).
fn nelder_mead(f: &impl Fn(&[f64]) -> f64, x0: &[f64], step: f64, iters: usize) -> Vec<f64> {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=n)
        .map(|i| {
            let mut x = x0.to_vec();
            if i > 0 {
                x[i - 1] += step;
            }
            let v = f(&x);
            (x, v)
        })
        .collect();
    for _ in 0..iters {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if (simplex[n].1 - simplex[0].1).abs() < 1e-12 {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[n].0)
                .map(|(c, w)| c + t * (c - w))
                .collect()
        };
        let xr = along(1.0);
        let fr = f(&xr);
        if fr < simplex[0].1 {
            let xe = along(2.0);
            let fe = f(&xe);
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let xc = along(-0.5);
            let fc = f(&xc);
            if fc < simplex[n].1 {
                simplex[n] = (xc, fc);
            } else {
                let best = simplex[0].0.clone();
                for (x, v) in simplex.iter_mut().skip(1) {
                    for (xi, bi) in x.iter_mut().zip(&best) {
                        *xi = bi + 0.5 * (*xi - bi);
                    }
                    *v = f(x);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0).0
}

/// `v` to four significant digits, so that the file does not change with the last bits of a
/// machine's floating point.
pub fn round4(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 3 - v.abs().log10().floor() as i32;
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

fn round_all(mut f: Fitted) -> Fitted {
    f.device.dram_queueing = round4(f.device.dram_queueing);
    f.device.context_switch_us = round4(f.device.context_switch_us);
    for p in f.profiles.values_mut() {
        p.solo_ms = round4(p.solo_ms);
        p.sm_pct = p.sm_pct.map(round4);
        p.host_pre_ms = p.host_pre_ms.map(round4);
    }
    f
}

/// The parameters of `b` that differ from `a`'s by more than `rel` (relative), named.
pub fn differences(a: &Fitted, b: &Fitted, rel: f64) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |name: String, x: Option<f64>, y: Option<f64>| {
        let same = match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= rel * x.abs().max(y.abs()).max(1e-12),
            (None, None) => true,
            _ => false,
        };
        if !same {
            out.push(format!("{name}: {x:?} → {y:?}"));
        }
    };
    let (da, db) = (a.device, b.device);
    cmp(
        "device.dram_queueing".into(),
        Some(da.dram_queueing),
        Some(db.dram_queueing),
    );
    cmp(
        "device.l2_contention".into(),
        Some(da.l2_contention),
        Some(db.l2_contention),
    );
    cmp(
        "device.time_slice_ms".into(),
        Some(da.time_slice_ms),
        Some(db.time_slice_ms),
    );
    cmp(
        "device.context_switch_us".into(),
        Some(da.context_switch_us),
        Some(db.context_switch_us),
    );
    let names: std::collections::BTreeSet<&String> = a.profiles.keys().chain(b.profiles.keys()).collect();
    for n in names {
        let (pa, pb) = (a.profiles.get(n), b.profiles.get(n));
        cmp(format!("{n}.solo_ms"), pa.map(|p| p.solo_ms), pb.map(|p| p.solo_ms));
        cmp(
            format!("{n}.sm_pct"),
            pa.and_then(|p| p.sm_pct),
            pb.and_then(|p| p.sm_pct),
        );
        cmp(
            format!("{n}.host_pre_ms"),
            pa.and_then(|p| p.host_pre_ms),
            pb.and_then(|p| p.host_pre_ms),
        );
    }
    out
}

/// The file `gpushare fit` writes.
pub fn to_toml(f: &Fitted) -> String {
    let body = toml::to_string(f).expect("fitted values serialise");
    format!(
        "# Written by `gpushare fit` from the calibration rows of validation/measurements.csv (and\n# validation/workloads.toml); do not edit by hand: change the data and fit again.\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_find_known_minima() {
        let x = golden(|v| (v - 1.3).powi(2), -5.0, 5.0, 80);
        assert!((x - 1.3).abs() < 1e-6);
        let f = |x: &[f64]| (x[0] - 2.0).powi(2) + 3.0 * (x[1] + 1.0).powi(2);
        let x = nelder_mead(&f, &[0.0, 0.0], 0.5, 400);
        assert!((x[0] - 2.0).abs() < 1e-4 && (x[1] + 1.0).abs() < 1e-4, "{x:?}");
    }

    #[test]
    fn rounding_keeps_four_significant_digits() {
        assert_eq!(round4(123.456), 123.5);
        assert_eq!(round4(0.0012345), 0.001235);
        assert_eq!(round4(-9.87654), -9.877);
    }
}
