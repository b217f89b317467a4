//! The ETRI-style usage estimator (sim/src/usage_estimator.rs) on generated training-usage
//! series with phases and noise: its error against the true long-run usage as a function of the
//! fraction of the run observed, and when it starts to trust itself.

use gpushare_sim::usage_estimator::{EstimatorConfig, UsageEstimator};
use gpushare_traces::rng;
use rand_distr::{Distribution, Normal};

/// One sample per second of a training run: `epochs` cycles of data loading (low usage),
/// training steps (high usage) and evaluation (medium), each level with Gaussian noise.
fn series(seed: u64, epochs: usize, phases: &[(usize, f64)], noise: f64) -> Vec<f64> {
    let mut r = rng::stream(seed, "usage-series", 0);
    let n = Normal::new(0.0, noise).unwrap();
    let mut out = Vec::new();
    for _ in 0..epochs {
        for &(len, level) in phases {
            for _ in 0..len {
                out.push((level + n.sample(&mut r)).clamp(0.0, 1.0));
            }
        }
    }
    out
}

/// Relative error of the estimate at each observed fraction, and the fraction where it is first
/// trusted.
fn evaluate(s: &[f64]) -> (Vec<(f64, f64)>, Option<f64>) {
    let truth = s.iter().sum::<f64>() / s.len() as f64;
    let mut est = UsageEstimator::new(EstimatorConfig::default());
    let mut errs = Vec::new();
    let mut trusted_at = None;
    for (i, &u) in s.iter().enumerate() {
        let e = est.observe(u);
        let frac = (i + 1) as f64 / s.len() as f64;
        if e.trusted && trusted_at.is_none() {
            trusted_at = Some(frac);
        }
        errs.push((frac, (e.usage - truth).abs() / truth));
    }
    (errs, trusted_at)
}

fn error_at(errs: &[(f64, f64)], frac: f64) -> f64 {
    errs.iter().find(|(f, _)| *f >= frac).unwrap().1
}

/// The default series: 10 epochs of 30 s data loading at 10 %, 500 s of training at 85 %, 70 s
/// of evaluation at 45 %, noise σ = 0.05 (6,000 samples).
const DEFAULT_PHASES: [(usize, f64); 3] = [(30, 0.10), (500, 0.85), (70, 0.45)];

#[test]
fn error_falls_below_10_percent_before_20_percent_of_the_run() {
    let s = series(1, 10, &DEFAULT_PHASES, 0.05);
    let (errs, trusted_at) = evaluate(&s);
    for f in [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0] {
        println!(
            "observed {:>4.0} % of the run: error {:.1} %",
            f * 100.0,
            error_at(&errs, f) * 100.0
        );
    }
    println!(
        "trusted from {:.1} % of the run",
        trusted_at.unwrap_or(f64::NAN) * 100.0
    );
    // The first fraction after which the error stays below 10 %.
    let settled = errs.iter().rposition(|(_, e)| *e >= 0.10).map_or(0.0, |i| errs[i].0);
    println!("error below 10 % for good from {:.1} % of the run", settled * 100.0);
    assert!(settled < 0.20);
    // Once trusted, the estimate is within 10 %.
    let t = trusted_at.expect("the estimate becomes trusted");
    assert!(t < 0.20, "{t}");
    assert!(errs.iter().filter(|(f, _)| *f >= t).all(|(_, e)| *e < 0.10));
}

#[test]
fn trust_waits_for_every_phase_to_appear() {
    // A run whose first 10 minutes are only data loading and warm-up, then long training: the
    // window and the cumulative distribution disagree while training is new, so trust waits.
    let phases = [(600, 0.15), (3000, 0.9)];
    let s = series(2, 2, &phases, 0.03);
    let (errs, trusted_at) = evaluate(&s);
    let t = trusted_at.expect("trusted eventually");
    println!(
        "trusted from {:.1} % of the run; error then {:.1} %",
        t * 100.0,
        error_at(&errs, t) * 100.0
    );
    // Not trusted during the warm-up alone (its estimate is far off), and within 10 % when
    // trust comes. (Later, the second epoch's 10-minute warm-up pulls the running mean down by
    // up to 12 % mid-cycle: with a cycle this long, the cumulative mean is exact only at cycle
    // boundaries.)
    assert!(t > 600.0 / s.len() as f64);
    assert!(error_at(&errs, 600.0 / s.len() as f64) > 0.5);
    assert!(error_at(&errs, t) < 0.10);
}

#[test]
fn active_thread_percentage_from_the_estimate() {
    let mut est = UsageEstimator::new(EstimatorConfig::default());
    let mut e = est.observe(0.5);
    for _ in 0..1000 {
        e = est.observe(0.42);
    }
    assert_eq!(e.active_thread_percentage(0.1), 53);
    assert_eq!(e.active_thread_percentage(1.0), 100);
}
