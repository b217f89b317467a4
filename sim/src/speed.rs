//! The kernel speed model: how fast a kernel phase progresses given its SM share.
//!
//! A kernel phase has `work` (its duration alone on the whole GPU) and `sm_demand` `d` (the
//! fraction of SMs it can keep busy). Given an SM share `s`, its speed relative to running alone
//! on the whole GPU is
//!
//! ```text
//! g(x) = x / (1 + x^p)^(1/p)          (a smooth min(x, 1))
//! rate(s, d) = g(s / d) / g(1 / d)     (so that rate(1, d) = 1)
//! ```
//!
//! with the knee sharpness `p` a device parameter (`inf` gives the hard knee min(s/d, 1)): the rate grows linearly with the share while
//! the share is well below the demand and saturates above it. Co-running kernels slow each other
//! through memory bandwidth: a kernel with bandwidth intensity `b_i ∈ [0, 1]` next to kernels `j`
//! runs at `rate / (1 + κ · b_i · Σ_j b_j · u_j)`, where `u_j` is the fraction of the GPU kernel `j`
//! keeps busy and `κ` the device's interference coefficient. Both parameters live in
//! [`crate::device::DeviceSpec`]; the GPU-sharing issue calibrates them against published data.

/// Smooth saturating curve: ≈ x for x ≪ 1, → 1 for x ≫ 1.
fn smooth_min1(x: f64, p: f64) -> f64 {
    x / (1.0 + x.powf(p)).powf(1.0 / p)
}

/// Speed of a kernel with demand `demand` given SM share `share`, relative to running alone on
/// the whole GPU. Both arguments are fractions of the device's SMs in (0, 1].
pub fn kernel_rate(share: f64, demand: f64, knee: f64) -> f64 {
    if share <= 0.0 {
        return 0.0;
    }
    if share >= 1.0 {
        return 1.0;
    }
    if knee.is_infinite() {
        // Hard knee: exactly linear below the demand, flat above.
        return (share / demand).min(1.0);
    }
    smooth_min1(share / demand, knee) / smooth_min1(1.0 / demand, knee)
}

/// Fraction of the GPU's SMs that a kernel with this share and demand keeps busy.
pub fn sm_used(share: f64, demand: f64) -> f64 {
    share.min(demand)
}

/// Slowdown divisor from bandwidth interference: `1 + κ · b_self · Σ b_other · u_other`.
pub fn interference_divisor(kappa: f64, bw_self: f64, others_pressure: f64) -> f64 {
    1.0 + kappa * bw_self * others_pressure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_gpu_runs_at_full_speed() {
        for d in [0.1, 0.5, 1.0] {
            assert_eq!(kernel_rate(1.0, d, 4.0), 1.0);
        }
    }

    #[test]
    fn rate_is_monotone_and_saturates() {
        let d = 0.25;
        let mut prev = 0.0;
        for i in 1..=100 {
            let r = kernel_rate(i as f64 / 100.0, d, 4.0);
            assert!(r >= prev && r <= 1.0);
            prev = r;
        }
        // Well above the demand the kernel is nearly at full speed; well below it is ~linear.
        assert!(kernel_rate(0.75, d, 4.0) > 0.99);
        let low = kernel_rate(0.025, d, 4.0);
        assert!((low - 0.1).abs() < 0.01, "{low}");
    }

    #[test]
    fn infinite_knee_is_exactly_linear_then_flat() {
        assert_eq!(kernel_rate(0.5, 1.0, f64::INFINITY), 0.5);
        assert_eq!(kernel_rate(0.3, 0.25, f64::INFINITY), 1.0);
    }

    #[test]
    fn interference_only_with_bandwidth_on_both_sides() {
        assert_eq!(interference_divisor(0.5, 0.0, 0.9), 1.0);
        assert_eq!(interference_divisor(0.5, 0.9, 0.0), 1.0);
        assert!(interference_divisor(0.5, 0.8, 0.8) > 1.3);
    }
}
