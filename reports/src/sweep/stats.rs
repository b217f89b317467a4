//! Mean and 95 % confidence interval of a point's runs over seeds: the sample mean ± t(0.975,
//! n − 1) × s / √n, with Student's t from a table (exact to three decimals for 1–30 degrees of
//! freedom, then interpolated in 1/df towards the normal 1.960). With one run the interval is
//! the value itself.

/// Two-sided 95 % critical values of Student's t for 1–30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];
/// Beyond 30: (df, t) anchors, interpolated linearly in 1/df.
const T95_TAIL: [(f64, f64); 4] = [(30.0, 2.042), (60.0, 2.000), (120.0, 1.980), (f64::INFINITY, 1.960)];

/// The two-sided 95 % critical value of t with `df` degrees of freedom (`df` ≥ 1).
pub fn t95(df: usize) -> f64 {
    if (1..=30).contains(&df) {
        return T95[df - 1];
    }
    let x = 1.0 / df as f64;
    for w in T95_TAIL.windows(2) {
        let ((d0, t0), (d1, t1)) = (w[0], w[1]);
        let (x0, x1) = (1.0 / d0, 1.0 / d1);
        if x <= x0 && x >= x1 {
            return t1 + (t0 - t1) * (x - x1) / (x0 - x1);
        }
    }
    1.960
}

/// Summary of one metric over a point's runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub min: f64,
    pub max: f64,
}

/// Aggregates `values` (at least one).
pub fn aggregate(values: &[f64]) -> Aggregate {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let half = if n > 1 {
        t95(n - 1) * std / (n as f64).sqrt()
    } else {
        0.0
    };
    Aggregate {
        n,
        mean,
        std,
        ci95_low: mean - half,
        ci95_high: mean + half,
        min: values.iter().cloned().fold(f64::INFINITY, f64::min),
        max: values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_small_sample() {
        // 2, 4, 6: mean 4, s = 2, t(2) = 4.303: 4 ± 4.303 × 2 / √3.
        let a = aggregate(&[2.0, 4.0, 6.0]);
        assert_eq!((a.n, a.mean, a.std, a.min, a.max), (3, 4.0, 2.0, 2.0, 6.0));
        let half = 4.303 * 2.0 / 3f64.sqrt();
        assert!((a.ci95_high - 4.0 - half).abs() < 1e-12 && (4.0 - a.ci95_low - half).abs() < 1e-12);
        let one = aggregate(&[5.0]);
        assert_eq!((one.ci95_low, one.ci95_high), (5.0, 5.0));
    }

    #[test]
    fn t_tends_to_the_normal() {
        assert_eq!(t95(1), 12.706);
        assert_eq!(t95(30), 2.042);
        assert!((t95(60) - 2.000).abs() < 1e-12);
        assert!(t95(45) < 2.042 && t95(45) > 2.0);
        assert!((t95(1_000_000) - 1.960).abs() < 1e-3);
    }
}
