//! Streaming statistics: counts, latency histograms, per-function and per-GPU figures.
//!
//! Nothing here grows with the number of invocations: latencies go into HDR histograms (3
//! significant digits, so percentiles are within 0.1 %), means come from exact integer sums.
//! Latency statistics cover invocations that arrived at or after the warm-up time; the counts
//! cover every arrival, so that they add up.

use crate::record::RejectReason;
use crate::time::{Nanos, ns_to_secs};
use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency distribution.
pub struct LatencyStat {
    hist: Histogram<u64>,
    sum: u128,
    max: Nanos,
}

impl Default for LatencyStat {
    fn default() -> Self {
        LatencyStat {
            // 1 ns to 2^50 ns (13 days); longer values saturate at the top bucket.
            hist: Histogram::new_with_bounds(1, 1 << 50, 3).expect("valid histogram bounds"),
            sum: 0,
            max: 0,
        }
    }
}

impl LatencyStat {
    /// Adds one value.
    #[inline]
    pub fn record(&mut self, ns: Nanos) {
        self.hist.saturating_record(ns);
        self.sum += u128::from(ns);
        self.max = self.max.max(ns);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Exact mean in nanoseconds (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        if self.count() == 0 {
            0.0
        } else {
            self.sum as f64 / self.count() as f64
        }
    }

    /// The value at each quantile of `qs` (ascending, in [0, 1]), in seconds; empty without
    /// values. One pass over the histogram, with `value_at_quantile`'s definition (the first
    /// bucket whose cumulative count reaches ⌈q × n⌉, at least 1; its highest equivalent value,
    /// its lowest for q = 0).
    pub fn quantiles_s(&self, qs: &[f64]) -> Vec<f64> {
        let total = self.count();
        if total == 0 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(qs.len());
        let mut cumulative = 0u64;
        let mut it = self.hist.iter_recorded();
        let mut current: Option<u64> = None;
        for &q in qs {
            let q = q.min(1.0);
            let target = ((q * total as f64).ceil() as u64).max(1);
            while cumulative < target {
                let Some(v) = it.next() else { break };
                cumulative += v.count_since_last_iteration();
                current = Some(v.value_iterated_to());
            }
            let v = current.unwrap_or(0);
            let v = if q == 0.0 { self.hist.lowest_equivalent(v) } else { v };
            out.push(ns_to_secs(v));
        }
        out
    }

    /// Summary in seconds.
    pub fn summary(&self) -> LatencySummary {
        let q = |p: f64| {
            if self.count() == 0 {
                0.0
            } else {
                ns_to_secs(self.hist.value_at_quantile(p))
            }
        };
        LatencySummary {
            count: self.count(),
            mean: self.mean_ns() / 1e9,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: ns_to_secs(self.max),
        }
    }
}

/// Latency figures in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Per-function counters.
#[derive(Clone, Debug, Default)]
pub struct FuncStats {
    pub arrivals: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Measured (post-warm-up) completions, their cold ones and their e2e latency sum.
    pub measured_completed: u64,
    pub measured_cold: u64,
    pub e2e_sum: u128,
}

/// Everything counted during a run.
pub struct Metrics {
    pub warmup: Nanos,
    pub arrivals: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: [u64; RejectReason::ALL.len()],
    pub measured_arrivals: u64,
    pub measured_completed: u64,
    /// Completions that ended at or after the warm-up, whenever they arrived (throughput).
    pub ended_in_window: u64,
    pub measured_cold: u64,
    pub e2e: LatencyStat,
    pub queue: LatencyStat,
    /// Setup wait of cold invocations only.
    pub setup: LatencyStat,
    pub exec: LatencyStat,
    pub per_func: Vec<FuncStats>,
    pub instances_created: u64,
    pub instances_reclaimed: u64,
    pub instances_alive: u64,
    pub instances_peak: u64,
    /// Σ instance lifetime in the measured window × its GPU fraction, in ns.
    pub gpu_ns_allocated: f64,
    /// Σ time instances sat idle (warm or pre-warmed) in the measured window × GPU fraction, ns.
    pub gpu_ns_idle: f64,
    pub events: u64,
    /// The end-to-end latency objective, and measured completions above it.
    pub slo: Option<Nanos>,
    pub measured_slo_violations: u64,
}

impl Metrics {
    pub fn new(functions: usize, warmup: Nanos) -> Self {
        Metrics {
            warmup,
            arrivals: 0,
            completed: 0,
            failed: 0,
            rejected: [0; RejectReason::ALL.len()],
            measured_arrivals: 0,
            measured_completed: 0,
            ended_in_window: 0,
            measured_cold: 0,
            e2e: LatencyStat::default(),
            queue: LatencyStat::default(),
            setup: LatencyStat::default(),
            exec: LatencyStat::default(),
            per_func: vec![FuncStats::default(); functions],
            instances_created: 0,
            instances_reclaimed: 0,
            instances_alive: 0,
            instances_peak: 0,
            gpu_ns_allocated: 0.0,
            gpu_ns_idle: 0.0,
            events: 0,
            slo: None,
            measured_slo_violations: 0,
        }
    }

    /// Counts an arrival.
    #[inline]
    pub fn arrival(&mut self, func: usize, at: Nanos) {
        self.arrivals += 1;
        self.per_func[func].arrivals += 1;
        if at >= self.warmup {
            self.measured_arrivals += 1;
        }
    }

    /// Counts a completion with its latency parts.
    #[inline]
    pub fn completion(&mut self, func: usize, arrival: Nanos, queue: Nanos, setup: Nanos, exec: Nanos, cold: bool) {
        self.completed += 1;
        let f = &mut self.per_func[func];
        f.completed += 1;
        let e2e = queue + setup + exec;
        if arrival + e2e >= self.warmup {
            self.ended_in_window += 1;
        }
        if arrival < self.warmup {
            return;
        }
        self.measured_completed += 1;
        f.measured_completed += 1;
        f.e2e_sum += u128::from(e2e);
        self.e2e.record(e2e);
        if self.slo.is_some_and(|slo| e2e > slo) {
            self.measured_slo_violations += 1;
        }
        self.queue.record(queue);
        self.exec.record(exec);
        if cold {
            self.measured_cold += 1;
            f.measured_cold += 1;
            self.setup.record(setup);
        }
    }

    /// Counts a rejection.
    pub fn rejection(&mut self, func: usize, reason: RejectReason) {
        self.rejected[reason as usize] += 1;
        self.per_func[func].rejected += 1;
    }

    /// Total rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Counts a new instance.
    pub fn instance_created(&mut self) {
        self.instances_created += 1;
        self.instances_alive += 1;
        self.instances_peak = self.instances_peak.max(self.instances_alive);
    }

    /// Counts a reclaimed instance. GPU time is counted per GPU by the world
    /// (`allocation_changes`), not per instance.
    pub fn instance_reclaimed(&mut self) {
        self.instances_reclaimed += 1;
        self.instances_alive -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_one_pass_match_value_at_quantile() {
        let mut l = LatencyStat::default();
        for k in 1..5000u64 {
            l.record(k * k % 7919 * 1_000 + 17);
        }
        let qs = crate::summary::cdf_quantiles();
        let fast = l.quantiles_s(&qs);
        for (q, v) in qs.iter().zip(&fast) {
            let slow = l.hist.value_at_quantile(*q);
            let slow = if *q == 0.0 {
                l.hist.lowest_equivalent(slow)
            } else {
                slow
            };
            assert_eq!(*v, ns_to_secs(slow), "q = {q}");
        }
    }
}
