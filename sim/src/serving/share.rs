//! How serving engines that share one GPU (or one MIG slice) divide it, iteration by iteration.
//!
//! An iteration's GPU part is given by its time alone on the GPU and the fractions of the
//! GPU's compute (`c`) and DRAM bandwidth (`m`) it keeps busy meanwhile ([`super::cost`]: one of
//! them is 1). Running at progress rate `ρ` (1 = as fast as alone) it uses `ρ·c` of the compute
//! and `ρ·m` of the bandwidth. The mechanisms:
//!
//! - **Dedicated** GPU or **MIG** slice: one engine, `ρ = 1`; a slice's peaks are its share of
//!   the GPU's (see [`super::cluster`]).
//! - **Time slicing** (CUDA's default between processes): one context on the GPU at a time;
//!   iterations run whole, first come first served, at `ρ = 1`, and switching to another
//!   engine's context costs the device's `context_switch_us` first.
//! - **MPS**: iterations of different engines run at once; each is capped at the active-thread
//!   fraction `cap` of the SMs (`ρ·c ≤ cap`), and together they keep within the GPU's compute
//!   (`Σ ρ·c ≤ 1`) and bandwidth (`Σ ρ·m ≤ 1`). Rates are max-min fair: all rise together until
//!   a cap or one of the two resources binds. Since every iteration uses both resources, the
//!   first resource to fill stops all of them (so one common level, capped per iteration).
//!
//! What it simplifies: no L2 or queueing interference between co-running iterations (the
//! kernel-level contention model of `contention.rs` needs profiled kernels; an iteration is
//! given by its roofline only), and a time slice is a whole iteration (an iteration is a few
//! to a few hundred ms, CUDA's time slice about 2 ms: the long-run shares agree, the latency of
//! one iteration is coarser).

/// How the engines on one GPU share it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    Dedicated,
    Mig,
    TimeSlicing,
    Mps,
}

/// An iteration's GPU part in progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Running {
    /// The engine (instance) it belongs to.
    pub inst: usize,
    /// Work left, in ns of running alone.
    pub left: f64,
    pub compute: f64,
    pub memory: f64,
    /// MPS's active-thread fraction (1 otherwise).
    pub cap: f64,
    pub rate: f64,
}

/// Sets `rate` of every running iteration under `mechanism` (time slicing: only the first
/// runs).
pub fn set_rates(mechanism: Mechanism, running: &mut [Running]) {
    match mechanism {
        Mechanism::Dedicated | Mechanism::Mig | Mechanism::TimeSlicing => {
            for (i, r) in running.iter_mut().enumerate() {
                r.rate = if i == 0 { 1.0 } else { 0.0 };
            }
        }
        Mechanism::Mps => mps_rates(running),
    }
}

/// MPS: the common level `λ` and each iteration at `min(λ, its cap's limit)`.
fn mps_rates(running: &mut [Running]) {
    let limit = |r: &Running| {
        if r.compute > 0.0 {
            (r.cap / r.compute).min(1.0)
        } else {
            1.0
        }
    };
    // Each resource's level: the λ at which Σ min(λ, limit_i)·w_i reaches 1.
    let level = |weight: &dyn Fn(&Running) -> f64, running: &[Running]| -> f64 {
        let mut items: Vec<(f64, f64)> = running.iter().map(|r| (limit(r), weight(r))).collect();
        items.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut used, mut rest): (f64, f64) = (0.0, items.iter().map(|x| x.1).sum());
        for (l, w) in items {
            // Below this limit every remaining iteration rises together.
            if rest > 0.0 && used + l * rest >= 1.0 {
                return (1.0 - used) / rest;
            }
            used += l * w;
            rest -= w;
        }
        f64::INFINITY
    };
    let lambda = level(&|r| r.compute, running)
        .min(level(&|r| r.memory, running))
        .min(1.0);
    for r in running.iter_mut() {
        r.rate = lambda.min(limit(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn it(compute: f64, memory: f64, cap: f64) -> Running {
        Running {
            inst: 0,
            left: 1.0,
            compute,
            memory,
            cap,
            rate: 0.0,
        }
    }

    #[test]
    fn a_prefill_and_a_decode_share_by_the_resource_that_fills_first() {
        // Prefill: compute-bound (c 1, m 0.3); decode: memory-bound (c 0.1, m 1).
        let mut r = [it(1.0, 0.3, 1.0), it(0.1, 1.0, 1.0)];
        set_rates(Mechanism::Mps, &mut r);
        // Bandwidth fills first: λ·(0.3 + 1) = 1.
        assert!((r[0].rate - 1.0 / 1.3).abs() < 1e-12 && (r[1].rate - 1.0 / 1.3).abs() < 1e-12);
        // Capped at half the SMs, the prefill runs at 0.5; the decode takes the bandwidth left.
        let mut r = [it(1.0, 0.3, 0.5), it(0.1, 1.0, 0.5)];
        set_rates(Mechanism::Mps, &mut r);
        assert!((r[0].rate - 0.5).abs() < 1e-12);
        assert!((r[1].rate - 0.85).abs() < 1e-12, "{}", r[1].rate);
    }

    proptest! {
        /// Physics: no iteration faster than alone or above its cap, and together within the
        /// GPU's compute and bandwidth — and not wastefully: some limit binds.
        #[test]
        fn mps_rates_keep_within_the_gpu(its in prop::collection::vec((0.0f64..=1.0, 0.0f64..=1.0, 0.05f64..=1.0, any::<bool>()), 1..12)) {
            let mut r: Vec<Running> = its.iter().map(|&(a, b, cap, compute_bound)| {
                if compute_bound { it(1.0, a, cap) } else { it(b, 1.0, cap) }
            }).collect();
            set_rates(Mechanism::Mps, &mut r);
            let (c, m): (f64, f64) = (r.iter().map(|x| x.rate * x.compute).sum(), r.iter().map(|x| x.rate * x.memory).sum());
            prop_assert!(c <= 1.0 + 1e-9 && m <= 1.0 + 1e-9, "compute {c}, memory {m}");
            for x in &r {
                prop_assert!(x.rate > 0.0 && x.rate <= 1.0 + 1e-12);
                prop_assert!(x.rate * x.compute <= x.cap + 1e-9);
            }
            let capped = r.iter().all(|x| x.rate >= 1.0 - 1e-9 || x.rate * x.compute >= x.cap - 1e-9);
            prop_assert!(capped || c >= 1.0 - 1e-9 || m >= 1.0 - 1e-9, "nothing binds: {r:?}");
        }
    }
}
