//! The GPU contention model: how fast co-running kernel phases progress on a GPU (or on one MIG
//! slice of it) given the SMs their sharing mechanism grants them, the DRAM bandwidth they
//! share, their L2 working sets and the memory system's queueing. docs/gpu-model.md states the
//! equations, the parameters and their sources; this module is their only implementation.
//!
//! A kernel phase is described as a profiler measures it alone on the whole device
//! ([`KernelDemand`], compiled from the profile's `solo_ms`, `sm_pct`, `dram_pct`, `blocks`,
//! `threads_per_block`/`occupancy_pct`, `l2_mib`). A *partition* is the whole GPU or one MIG
//! slice: its own share of the device's SMs, DRAM bandwidth and L2. Per partition, at every
//! change of the set of running phases:
//!
//! 1. **Compute.** The mechanism grants kernel `i` a fraction `g_i` of the device's SMs for a
//!    fraction `τ_i` of the time (time slicing, time quotas), with `Σ g_i τ_i ≤ 1`. A phase's
//!    kernels have SM footprints spread uniformly over `[lo, hi]` around its mean footprint `d`;
//!    each runs at `min(1, g / d_k)`, so the phase's compute rate is the harmonic mean
//!    [`compute_rate`]: 1 when `g ≥ hi`, `g / d` when `g ≤ lo`. It keeps `r·d ≤ g` SMs busy.
//! 2. **Cache.** Kernels that state an L2 working set share the partition's L2 in proportion to
//!    it; a kernel losing part of what it had cached alone moves more DRAM traffic
//!    ([`cache_inflation`], coefficient `l2_contention`).
//! 3. **Bandwidth.** Each kernel asks `D_i = τ_i · rc_i · m_i · φ_i` of the device's bandwidth;
//!    when the asks exceed the partition's bandwidth `B`, it is divided max-min fairly
//!    ([`bandwidth_level`]): no kernel gets more than it asks, and the rest is split evenly.
//! 4. **Queueing.** Memory latency grows with the traffic of the other kernels: a kernel's
//!    compute-bound rate is divided by `1 + κ_q · σ_i · ρ_i` (in [`solve`]'s last pass), with
//!    `σ_i = min(1, m_i φ_i)` its memory sensitivity and `ρ_i` the others' share of `B`.
//!
//! The rate is `r_i = τ_i · rc_i · min(1 / (1 + κ_q σ_i ρ_i), b_i / D_i)`. By construction no
//! kernel runs faster than alone on the whole device (`r_i ≤ 1`), the SMs in use never exceed
//! the grants (`Σ r_i d_i ≤ Σ τ_i g_i ≤ 1`) and the DRAM traffic never exceeds the partition's
//! bandwidth (`Σ r_i m_i φ_i ≤ B`); the property tests below and the engine's own check after
//! every recomputation with co-running kernels (a kernel alone is [`alone`], bounded by its
//! construction) hold the model to it. Nothing here calls a transcendental function.

/// A kernel phase's demands on one device, computed once when its profile is compiled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelDemand {
    /// Mean SM footprint `d`: the fraction of the device's SMs the phase needs to run at its
    /// solo speed, in (0, 1].
    pub footprint: f64,
    /// The footprints of the phase's kernels spread uniformly over `[lo, hi]` (mean `d`).
    pub lo: f64,
    pub hi: f64,
    /// SM throughput alone, a fraction of the device's peak (Nsight Compute's
    /// `sm__throughput`); reported, and used to size replays.
    pub sm: f64,
    /// DRAM throughput alone, a fraction of the device's peak bandwidth.
    pub dram: f64,
    /// L2 working set, MiB; 0 when not stated (the kernel takes no part in cache contention).
    pub l2_mib: f64,
}

impl KernelDemand {
    /// A demand from a mean footprint, spreading it as far as `[0, 1]` allows on both sides.
    pub fn new(footprint: f64, sm: f64, dram: f64, l2_mib: f64) -> Self {
        let d = footprint.clamp(f64::MIN_POSITIVE, 1.0);
        let h = d.min(1.0 - d);
        KernelDemand {
            footprint: d,
            lo: d - h,
            hi: d + h,
            sm,
            dram,
            l2_mib,
        }
    }

    /// No demand: copies and other phases that use no SMs.
    pub const NONE: KernelDemand = KernelDemand {
        footprint: 0.0,
        lo: 0.0,
        hi: 0.0,
        sm: 0.0,
        dram: 0.0,
        l2_mib: 0.0,
    };
}

/// A partition's resources as fractions of the whole device: SMs, DRAM bandwidth, L2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartitionShare {
    pub sms: f64,
    pub bandwidth: f64,
    pub l2: f64,
}

impl PartitionShare {
    /// The whole device.
    pub const WHOLE: PartitionShare = PartitionShare {
        sms: 1.0,
        bandwidth: 1.0,
        l2: 1.0,
    };
}

/// The device coefficients the model needs beyond datasheet values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// `κ_q`: how much a memory-sensitive kernel slows as the other kernels fill the bandwidth.
    pub dram_queueing: f64,
    /// `κ_L2`: extra DRAM traffic, relative to a kernel's solo traffic, when the whole part of
    /// its working set that fitted in L2 alone is evicted by co-runners.
    pub l2_contention: f64,
}

/// Compute rate of a phase granted `grant` of the device's SMs (full time), relative to its
/// solo speed on the whole device: the harmonic mean of `min(1, g / d_k)` over footprints `d_k`
/// uniform on `[lo, hi]`.
pub fn compute_rate(d: &KernelDemand, grant: f64) -> f64 {
    if grant >= d.hi {
        return 1.0;
    }
    if grant <= 0.0 {
        return 0.0;
    }
    if grant <= d.lo {
        return grant / d.footprint;
    }
    // 1 / [(g − lo)/w + (hi² − g²)/(2 g w)], over one denominator.
    let width = d.hi - d.lo;
    2.0 * grant * width / (grant * grant - 2.0 * grant * d.lo + d.hi * d.hi)
}

/// DRAM-traffic factor `φ ≥ 1` of a kernel with working set `own_mib` among co-runners whose
/// stated working sets sum to `total_mib` (its own included), in an L2 of `l2_mib`.
pub fn cache_inflation(own_mib: f64, total_mib: f64, l2_mib: f64, coefficient: f64) -> f64 {
    if own_mib <= 0.0 || total_mib <= l2_mib || coefficient <= 0.0 {
        return 1.0;
    }
    let cached_alone = own_mib.min(l2_mib);
    let cached_now = l2_mib * own_mib / total_mib;
    1.0 + coefficient * ((cached_alone - cached_now).max(0.0) / own_mib)
}

/// The max-min fair level for bandwidth `capacity` among `asks` (sorted in place): every ask
/// below the level is met, every other gets the level. `None` when the asks fit.
pub fn bandwidth_level(asks: &mut [f64], capacity: f64) -> Option<f64> {
    let total: f64 = asks.iter().sum();
    if total <= capacity {
        return None;
    }
    asks.sort_unstable_by(f64::total_cmp);
    let mut room = capacity;
    let mut left = asks.len();
    for &a in asks.iter() {
        let level = room / left as f64;
        if a > level {
            return Some(level);
        }
        room -= a;
        left -= 1;
    }
    // Rounding only: every ask fitted after all.
    Some(asks.last().copied().unwrap_or(0.0))
}

/// What the model reads and sets of a running kernel; the engine's phases implement it, so
/// that solving copies nothing.
pub trait KernelState {
    fn demand(&self) -> &KernelDemand;
    /// SM grant, a fraction of the device's SMs.
    fn grant(&self) -> f64;
    /// Fraction of the time it holds the GPU.
    fn time_share(&self) -> f64;
    /// Its progress rate relative to running alone on the whole device (set by [`solve`]).
    fn rate_mut(&mut self) -> &mut f64;
    /// Where [`solve`] keeps its bandwidth ask between its two passes.
    fn ask_mut(&mut self) -> &mut f64;
    /// Its compute-bound rate: time share × [`compute_rate`] at its grant. Implementors may
    /// keep it between solves while grant and time share stay the same (most phases keep both
    /// for their whole life), which spares the division at every recomputation.
    fn compute_bound(&mut self) -> f64 {
        self.time_share() * compute_rate(self.demand(), self.grant())
    }
}

/// [`KernelState`]'s accessors for a type that keeps the model's state in its own fields, named
/// in the order demand, SM grant, time share, rate, bandwidth ask: the one definition the
/// engine's phases and this module's tests share (`compute_bound` stays each type's own).
macro_rules! kernel_state_fields {
    ($demand:ident, $grant:ident, $time_share:ident, $rate:ident, $ask:ident) => {
        fn demand(&self) -> &$crate::contention::KernelDemand {
            &self.$demand
        }
        fn grant(&self) -> f64 {
            self.$grant
        }
        fn time_share(&self) -> f64 {
            self.$time_share
        }
        fn rate_mut(&mut self) -> &mut f64 {
            &mut self.$rate
        }
        fn ask_mut(&mut self) -> &mut f64 {
            &mut self.$ask
        }
    };
}
pub(crate) use kernel_state_fields;

/// What one partition uses after [`solve`]: SMs and DRAM bandwidth, fractions of the device.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub sms: f64,
    pub dram: f64,
}

/// A kernel alone in its partition (what [`solve`] gives for one kernel, without its buffers):
/// its rate and the SMs it keeps busy.
pub fn alone(d: &KernelDemand, grant: f64, time_share: f64, bandwidth: f64) -> (f64, f64) {
    let rc = time_share * compute_rate(d, grant);
    let ask = rc * d.dram;
    let rate = if ask > bandwidth { rc * (bandwidth / ask) } else { rc };
    (rate, rate * d.footprint)
}

/// Reusable buffers for [`solve`], so that the engine allocates nothing per event.
#[derive(Debug, Default)]
pub struct Scratch {
    sorted: Vec<f64>,
}

/// Sets the rate of every kernel of `kernels` that `member` selects (one partition's), and
/// calls `done` with each once its rate is final. `concurrent` is false for mechanisms whose
/// contexts take turns (no cache sharing or queueing between them).
#[allow(clippy::too_many_arguments)]
pub fn solve<K: KernelState>(
    kernels: &mut [K],
    member: impl Fn(&K) -> bool,
    part: PartitionShare,
    l2_mib: f64,
    coefficients: Coefficients,
    concurrent: bool,
    scratch: &mut Scratch,
    done: impl FnMut(&mut K),
) -> Usage {
    // Asks at the compute-bound rate, and the working sets of the kernels that run.
    let mut asked = 0.0;
    let mut total_ws = 0.0;
    for k in kernels.iter_mut().filter(|k| member(k)) {
        let rc = k.compute_bound();
        let d = k.demand();
        let (dram, ws) = (d.dram, d.l2_mib);
        *k.rate_mut() = rc;
        let ask = rc * dram;
        *k.ask_mut() = ask;
        asked += ask;
        total_ws += if rc > 0.0 { ws } else { 0.0 };
    }
    // Cache inflation where co-running working sets exceed the partition's L2.
    let l2 = l2_mib * part.l2;
    let cache = concurrent && total_ws > l2 && coefficients.l2_contention > 0.0;
    if cache {
        asked = 0.0;
        for k in kernels.iter_mut().filter(|k| member(k)) {
            let phi = cache_inflation(k.demand().l2_mib, total_ws, l2, coefficients.l2_contention);
            let ask = k.ask_mut();
            *ask *= phi;
            asked += *ask;
        }
    }
    let any_capped = asked > part.bandwidth;
    let level = if any_capped {
        let sorted = &mut scratch.sorted;
        sorted.clear();
        sorted.extend(kernels.iter_mut().filter(|k| member(k)).map(|k| *k.ask_mut()));
        bandwidth_level(sorted, part.bandwidth)
    } else {
        None
    };
    let level_or_max = level.unwrap_or(f64::INFINITY);
    let granted_total = if any_capped {
        let mut sum = 0.0;
        for k in kernels.iter_mut().filter(|k| member(k)) {
            let a = *k.ask_mut();
            sum += if a < level_or_max { a } else { level_or_max };
        }
        sum
    } else {
        asked
    };
    let settle = Settle {
        level: level_or_max,
        granted_total,
        inv_bandwidth: 1.0 / part.bandwidth,
        kappa: coefficients.dram_queueing,
        queueing: concurrent && coefficients.dram_queueing > 0.0,
        cache,
    };
    // Without a bandwidth cap every kernel gets what it asks: that pass is compiled apart.
    if any_capped {
        settle_rates::<K, true>(kernels, member, &settle, done)
    } else {
        settle_rates::<K, false>(kernels, member, &settle, done)
    }
}

/// What [`settle_rates`] needs of [`solve`]'s first passes.
struct Settle {
    /// The max-min fair bandwidth level (infinite when the asks fit).
    level: f64,
    /// Σ bandwidth granted.
    granted_total: f64,
    inv_bandwidth: f64,
    kappa: f64,
    queueing: bool,
    cache: bool,
}

/// [`solve`]'s last pass: each kernel's rate from its grant of bandwidth and the queueing its
/// neighbours cause; `CAPPED` false when every ask is met.
fn settle_rates<K: KernelState, const CAPPED: bool>(
    kernels: &mut [K],
    member: impl Fn(&K) -> bool,
    s: &Settle,
    mut done: impl FnMut(&mut K),
) -> Usage {
    let mut usage = Usage::default();
    for k in kernels.iter_mut().filter(|k| member(k)) {
        let ask = *k.ask_mut();
        let got = if CAPPED && ask > s.level { s.level } else { ask };
        let (footprint, dram) = (k.demand().footprint, k.demand().dram);
        let rate = k.rate_mut();
        let mut factor = if CAPPED && got < ask { got / ask } else { 1.0 };
        if s.queueing && ask > 0.0 {
            // Sensitivity σ = min(1, m·φ) (`ask / rate` with cache inflation), the neighbours'
            // load ρ = their share of the bandwidth.
            let sigma = if s.cache { ask / *rate } else { dram };
            let sigma = if sigma < 1.0 { sigma } else { 1.0 };
            let rho = (s.granted_total - got) * s.inv_bandwidth;
            let rho = if rho < 1.0 { rho } else { 1.0 };
            let rho = if rho > 0.0 { rho } else { 0.0 };
            // The queueing divisor 1 + κ_q σ ρ, σ and ρ clamped to [0, 1].
            let q = 1.0 / (1.0 + s.kappa * sigma * rho);
            if q < factor {
                factor = q;
            }
        }
        *rate *= factor;
        usage.sms += *rate * footprint;
        usage.dram += ask * factor;
        done(k);
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One kernel on its own, outside the engine's phases.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Running {
        pub demand: KernelDemand,
        pub grant: f64,
        pub time_share: f64,
        pub rate: f64,
        pub ask: f64,
    }

    impl KernelState for Running {
        kernel_state_fields!(demand, grant, time_share, rate, ask);
    }

    fn kernel(footprint: f64, dram: f64) -> KernelDemand {
        KernelDemand::new(footprint, footprint, dram, 0.0)
    }

    fn run(kernels: &[(KernelDemand, f64, f64)], part: PartitionShare, coeff: Coefficients) -> (Vec<f64>, Usage) {
        let mut ks: Vec<Running> = kernels
            .iter()
            .map(|&(demand, grant, time_share)| Running {
                demand,
                grant,
                time_share,
                rate: 0.0,
                ask: 0.0,
            })
            .collect();
        let usage = solve(
            &mut ks,
            |_| true,
            part,
            40.0,
            coeff,
            true,
            &mut Scratch::default(),
            |_| {},
        );
        (ks.iter().map(|k| k.rate).collect(), usage)
    }

    /// Two copies of `k` on the whole GPU, each granted half its SMs full time.
    fn halves(k: KernelDemand, coeff: Coefficients) -> (Vec<f64>, Usage) {
        run(&[(k, 0.5, 1.0); 2], PartitionShare::WHOLE, coeff)
    }

    const NO_COEFF: Coefficients = Coefficients {
        dram_queueing: 0.0,
        l2_contention: 0.0,
    };

    #[test]
    fn whole_gpu_is_solo_speed_and_a_hard_kernel_is_linear() {
        for d in [0.05, 0.3, 0.5, 0.9, 1.0] {
            assert_eq!(compute_rate(&kernel(d, 0.0), 1.0), 1.0);
        }
        // A phase that needs every SM slows in proportion to the SMs it loses.
        let full = kernel(1.0, 0.0);
        assert_eq!(compute_rate(&full, 0.5), 0.5);
        assert_eq!(compute_rate(&full, 0.25), 0.25);
        // Spread footprints: linear below `lo`, 1 above `hi`, continuous between.
        let k = kernel(0.2, 0.0);
        assert_eq!((k.lo, k.hi), (0.0, 0.4));
        assert_eq!(compute_rate(&k, 0.4), 1.0);
        let just_below = compute_rate(&k, 0.4 - 1e-9);
        assert!((just_below - 1.0).abs() < 1e-6, "{just_below}");
        let k = kernel(0.8, 0.0);
        assert!((k.lo - 0.6).abs() < 1e-12 && k.hi == 1.0);
        assert!((compute_rate(&k, 0.3) - 0.3 / 0.8).abs() < 1e-12);
    }

    #[test]
    fn two_full_gpu_kernels_halved_make_one_gpu_and_no_more() {
        let (rates, usage) = halves(kernel(1.0, 0.0), NO_COEFF);
        assert_eq!(rates, vec![0.5, 0.5]);
        assert!((usage.sms - 1.0).abs() < 1e-12);
    }

    #[test]
    fn memory_bound_pair_cannot_exceed_the_bandwidth() {
        // Each alone moves 90 % of peak bandwidth: together at most 1 / 0.9 of one.
        let (rates, usage) = halves(kernel(0.5, 0.9), NO_COEFF);
        let combined: f64 = rates.iter().sum();
        assert!(combined <= 1.0 / 0.9 + 1e-12, "{combined}");
        assert!(usage.dram <= 1.0 + 1e-12);
    }

    #[test]
    fn a_slice_of_an_eighth_of_the_bandwidth_gives_a_memory_bound_kernel_an_eighth() {
        let slice = PartitionShare {
            sms: 14.0 / 108.0,
            bandwidth: 1.0 / 8.0,
            l2: 1.0 / 8.0,
        };
        let (rates, _) = run(&[(kernel(0.1, 1.0), 14.0 / 108.0, 1.0)], slice, NO_COEFF);
        assert!((rates[0] - 0.125).abs() < 1e-12, "{}", rates[0]);
    }

    #[test]
    fn thrashing_working_sets_give_destructive_interference() {
        // Two memory-heavy kernels whose working sets each fit L2 alone but not together.
        let k = KernelDemand::new(0.5, 0.5, 0.8, 30.0);
        let coeff = Coefficients {
            dram_queueing: 0.0,
            l2_contention: 2.0,
        };
        let (rates, usage) = halves(k, coeff);
        // Each keeps 20 of the 30 MiB it had cached alone: φ = 1 + 2 · 10/30, so each asks
        // 0.8 · 5/3 of the bandwidth, gets half, and runs at 0.5 / (4/3) = 0.375.
        let combined: f64 = rates.iter().sum();
        assert!((combined - 0.75).abs() < 1e-12, "{combined}");
        assert!((usage.dram - 1.0).abs() < 1e-12);
    }

    #[test]
    fn queueing_hurts_the_small_neighbour_more() {
        let coeff = Coefficients {
            dram_queueing: 1.0,
            l2_contention: 0.0,
        };
        let k = kernel(0.45, 0.5);
        let (rates, _) = run(&[(k, 0.1, 1.0), (k, 0.9, 1.0)], PartitionShare::WHOLE, coeff);
        let small_alone = compute_rate(&k, 0.1);
        let big_alone = compute_rate(&k, 0.9);
        let small = small_alone / rates[0];
        let big = big_alone / rates[1];
        assert!(small > big && big >= 1.0, "{small} {big}");
    }

    #[test]
    fn bandwidth_level_is_max_min_fair() {
        let mut asks = [0.1, 0.6, 0.6];
        let l = bandwidth_level(&mut asks, 1.0).unwrap();
        assert!((l - 0.45).abs() < 1e-12);
        assert!(bandwidth_level(&mut [0.2, 0.3], 1.0).is_none());
    }

    fn demand() -> impl Strategy<Value = KernelDemand> {
        (
            0.01f64..=1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
            prop_oneof![Just(0.0), 0.1f64..80.0],
        )
            .prop_map(|(d, s_frac, m, w)| KernelDemand::new(d, d * s_frac, m, w))
    }

    fn mix() -> impl Strategy<Value = Vec<(KernelDemand, f64, f64)>> {
        prop::collection::vec((demand(), 0.0f64..=1.0, prop_oneof![Just(1.0), 0.05f64..=1.0]), 1..12).prop_map(
            |mut ks| {
                // A mechanism's grants: scale so that Σ g τ ≤ 1.
                let sum: f64 = ks.iter().map(|k| k.1 * k.2).sum();
                if sum > 1.0 {
                    for k in &mut ks {
                        k.1 /= sum;
                    }
                }
                ks
            },
        )
    }

    fn part() -> impl Strategy<Value = PartitionShare> {
        prop_oneof![
            Just(PartitionShare::WHOLE),
            (1u32..=7, 1u32..=8).prop_map(|(c, m)| PartitionShare {
                sms: f64::from(c) / 7.0,
                bandwidth: f64::from(m) / 8.0,
                l2: f64::from(m) / 8.0,
            })
        ]
    }

    fn coefficients() -> impl Strategy<Value = Coefficients> {
        (0.0f64..3.0, 0.0f64..4.0).prop_map(|(q, l)| Coefficients {
            dram_queueing: q,
            l2_contention: l,
        })
    }

    proptest! {
        #[test]
        fn resources_are_never_overspent(ks in mix(), p in part(), c in coefficients()) {
            let (rates, usage) = run(&ks, p, c);
            let granted: f64 = ks.iter().map(|k| k.1 * k.2).sum();
            prop_assert!(usage.sms <= granted + 1e-9, "SMs {} > granted {granted}", usage.sms);
            prop_assert!(usage.dram <= p.bandwidth + 1e-9, "DRAM {} > {}", usage.dram, p.bandwidth);
            for (r, k) in rates.iter().zip(&ks) {
                prop_assert!(*r >= 0.0 && *r <= k.2 + 1e-12, "rate {r} above its time share {}", k.2);
                prop_assert!(*r * k.0.dram <= p.bandwidth + 1e-9);
            }
        }

        #[test]
        fn more_sms_never_slow_a_kernel(ks in mix(), p in part(), c in coefficients(), extra in 0.0f64..0.5) {
            let (before, _) = run(&ks, p, c);
            let mut more = ks.clone();
            more[0].1 = (more[0].1 + extra).min(1.0);
            let (after, _) = run(&more, p, c);
            prop_assert!(after[0] >= before[0] - 1e-12, "{} < {}", after[0], before[0]);
        }

        #[test]
        fn alone_is_solve_with_one_kernel(k in demand(), g in 0.0f64..=1.0, t in 0.05f64..=1.0, p in part(), c in coefficients()) {
            let (rates, usage) = run(&[(k, g, t)], p, c);
            let (rate, sms) = alone(&k, g, t, p.bandwidth);
            prop_assert!((rates[0] - rate).abs() <= 1e-12 * rate.max(1.0), "{} vs {rate}", rates[0]);
            prop_assert!((usage.sms - sms).abs() <= 1e-12);
        }

        #[test]
        fn compute_rate_is_monotone_and_bounded(k in demand(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (rl, rh) = (compute_rate(&k, lo), compute_rate(&k, hi));
            prop_assert!(rl <= rh + 1e-12);
            prop_assert!(rh <= 1.0);
            // SMs busy never exceed the grant.
            prop_assert!(rl * k.footprint <= lo + 1e-12);
        }
    }
}
