//! Per-invocation execution times drawn from a function's published duration statistics.

use super::parse::{DURATION_LEVELS, DurationStats};
use crate::Nanos;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

/// The published global fit of per-function average durations (Shahrad et al., ATC '20):
/// log-normal with μ = −0.38 and σ = 2.36, in seconds.
pub const GLOBAL_MU: f64 = -0.38;
/// See [`GLOBAL_MU`].
pub const GLOBAL_SIGMA: f64 = 2.36;

/// How each invocation's execution time is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DurationModel {
    /// Uniform between neighbouring published percentiles (0, 1, 25, 50, 75, 99, 100), each band
    /// drawn with its probability mass: the piecewise-linear inverse of the published CDF.
    #[default]
    Percentiles,
    /// A per-function log-normal fitted to the percentiles: μ = ln p50, σ from the interquartile
    /// range ((ln p75 − ln p25) / 1.349), or from p99 when the quartiles coincide.
    Lognormal,
    /// The published global fit (μ = −0.38, σ = 2.36 s) for every invocation.
    Global,
    /// No trace duration: the profile's own execution time.
    None,
}

impl DurationModel {
    /// Parses `percentiles`, `lognormal`, `global` or `none`.
    pub fn parse(name: &str) -> Option<DurationModel> {
        Some(match name {
            "percentiles" => DurationModel::Percentiles,
            "lognormal" => DurationModel::Lognormal,
            "global" => DurationModel::Global,
            "none" => DurationModel::None,
            _ => return None,
        })
    }
}

/// A function's duration sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    Percentiles([f64; 7]),
    LogNormal { mu: f64, sigma: f64 },
    Global,
    None,
}

/// 0.6745 = the standard normal's 75th percentile; 2.3263 its 99th.
const Z75: f64 = 0.674_489_750_196_081_7;
const Z99: f64 = 2.326_347_874_040_841;

impl Sampler {
    /// The sampler for one function. Functions without usable statistics (missing, or an
    /// average of 0) fall back to the global fit.
    pub fn new(model: DurationModel, stats: Option<&DurationStats>) -> Sampler {
        let usable = stats.filter(|s| s.average > 0.0 && s.percentiles[6] > 0.0);
        match (model, usable) {
            (DurationModel::None, _) => Sampler::None,
            (DurationModel::Global, _) | (_, None) => Sampler::Global,
            (DurationModel::Percentiles, Some(s)) => Sampler::Percentiles(s.percentiles),
            (DurationModel::Lognormal, Some(s)) => {
                let p = s.percentiles;
                if p[3] <= 0.0 {
                    return Sampler::Global;
                }
                let mu = (p[3] / 1e3).ln();
                let sigma = if p[2] > 0.0 && p[4] > p[2] {
                    (p[4].ln() - p[2].ln()) / (2.0 * Z75)
                } else if p[5] > p[3] {
                    (p[5].ln() - p[3].ln()) / Z99
                } else {
                    0.0
                };
                Sampler::LogNormal { mu, sigma }
            }
        }
    }

    /// One execution time, or `None` for [`Sampler::None`].
    #[inline]
    pub fn draw<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<Nanos> {
        let secs = match *self {
            Sampler::None => return None,
            Sampler::Percentiles(p) => {
                let u: f64 = rng.random();
                let i = DURATION_LEVELS.windows(2).position(|w| u < w[1]).unwrap_or(5);
                let (l0, l1) = (DURATION_LEVELS[i], DURATION_LEVELS[i + 1]);
                (p[i] + (u - l0) / (l1 - l0) * (p[i + 1] - p[i])) / 1e3
            }
            Sampler::LogNormal { mu, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + sigma * z).exp()
            }
            Sampler::Global => {
                let z: f64 = StandardNormal.sample(rng);
                (GLOBAL_MU + GLOBAL_SIGMA * z).exp()
            }
        };
        // At least 1 µs; at most a day (the dataset's durations are per-invocation averages).
        // Rounded by adding ½ and truncating: exact for these positive values, and no libm call.
        Some((secs.clamp(1e-6, 86_400.0) * 1e9 + 0.5) as Nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(p: [f64; 7]) -> DurationStats {
        DurationStats {
            average: p[3],
            count: 100.0,
            minimum: p[0],
            maximum: p[6],
            percentiles: p,
        }
    }

    #[test]
    fn percentile_bands_reproduce_the_published_quantiles() {
        let s = Sampler::new(
            DurationModel::Percentiles,
            Some(&stats([10.0, 20.0, 100.0, 200.0, 400.0, 1000.0, 5000.0])),
        );
        let mut rng = crate::rng::stream(1, "t", 0);
        let mut v: Vec<u64> = (0..100_000).map(|_| s.draw(&mut rng).unwrap()).collect();
        v.sort_unstable();
        let q = |p: f64| v[(p * v.len() as f64) as usize] as f64 / 1e6;
        assert!((q(0.25) - 100.0).abs() < 3.0, "{}", q(0.25));
        assert!((q(0.50) - 200.0).abs() < 5.0, "{}", q(0.5));
        assert!((q(0.75) - 400.0).abs() < 10.0, "{}", q(0.75));
        assert!(v[0] as f64 / 1e6 >= 10.0 && *v.last().unwrap() as f64 / 1e6 <= 5000.0);
    }

    #[test]
    fn lognormal_fit_matches_median_and_quartiles() {
        let s = Sampler::new(
            DurationModel::Lognormal,
            Some(&stats([1.0, 2.0, 50.0, 100.0, 200.0, 900.0, 2000.0])),
        );
        let Sampler::LogNormal { mu, sigma } = s else {
            panic!("{s:?}")
        };
        assert!((mu - 0.1f64.ln()).abs() < 1e-12);
        assert!((sigma - (200f64.ln() - 50f64.ln()) / (2.0 * Z75)).abs() < 1e-12);
    }

    #[test]
    fn unusable_statistics_fall_back_to_the_global_fit() {
        assert_eq!(Sampler::new(DurationModel::Percentiles, None), Sampler::Global);
        assert_eq!(
            Sampler::new(DurationModel::Percentiles, Some(&stats([0.0; 7]))),
            Sampler::Global
        );
        assert_eq!(Sampler::new(DurationModel::None, None), Sampler::None);
    }
}
