//! Streaming statistics of a trace: counts, rate over time, inter-arrival CVs, durations and
//! memory. Memory is per function and per hour, never per invocation.

use crate::any::Opened;
use crate::{Arrival, NS_PER_S, Nanos, TraceError};
use hdrhistogram::Histogram;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Statistics of one pass over a trace.
pub struct TraceStats {
    pub functions: usize,
    pub apps: usize,
    pub invocations: u64,
    pub first: Nanos,
    pub last: Nanos,
    /// Invocations per hour from the first arrival.
    pub per_hour: Vec<u64>,
    /// Inter-arrival CV over functions with at least 10 invocations.
    pub cvs: Vec<f64>,
    pub durations_ms: Histogram<u64>,
    pub memory_mb: Vec<f64>,
    pub wall_s: f64,
}

/// Each function's inter-arrival gaps, taken one arrival at a time (in time order): for their
/// coefficient of variation.
pub struct InterArrivals(Vec<Gaps>);

/// One function's last arrival and its gaps so far: count, Σgap and Σgap² (seconds).
#[derive(Clone, Copy)]
struct Gaps {
    last: Nanos,
    count: u64,
    sum: f64,
    sum_sq: f64,
}

impl InterArrivals {
    /// For `functions` functions, none of them seen yet.
    pub fn new(functions: usize) -> Self {
        let none = Gaps {
            last: u64::MAX,
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
        };
        InterArrivals(vec![none; functions])
    }

    /// Adds the gap since its function's previous arrival.
    pub fn add(&mut self, a: &Arrival) {
        let e = &mut self.0[a.func as usize];
        if e.last != u64::MAX {
            let g = (a.time - e.last) as f64 / NS_PER_S as f64;
            e.count += 1;
            e.sum += g;
            e.sum_sq += g * g;
        }
        e.last = a.time;
    }

    /// Each function's number of gaps and their CV (0 when the mean gap is 0), in function order.
    pub fn cvs(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.0.iter().map(|e| {
            let mean = e.sum / e.count as f64;
            let cv = if mean > 0.0 {
                ((e.sum_sq / e.count as f64 - mean * mean).max(0.0)).sqrt() / mean
            } else {
                0.0
            };
            (e.count, cv)
        })
    }
}

/// Streams the whole trace once.
pub fn compute(mut t: Opened) -> Result<(TraceStats, Opened), TraceError> {
    let started = std::time::Instant::now();
    let n = t.names.len();
    let mut gaps = InterArrivals::new(n);
    let mut per_hour: Vec<u64> = Vec::new();
    let mut durations = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).expect("valid bounds");
    let (mut count, mut first, mut last) = (0u64, None, 0);
    while let Some(a) = t.source.next_arrival()? {
        count += 1;
        let f0 = *first.get_or_insert(a.time);
        last = a.time;
        let hour = ((a.time - f0) / (3600 * NS_PER_S)) as usize;
        if per_hour.len() <= hour {
            per_hour.resize(hour + 1, 0);
        }
        per_hour[hour] += 1;
        if let Some(d) = a.duration {
            durations.saturating_record((d / 1_000_000).max(1));
        }
        gaps.add(&a);
    }
    let cvs = gaps.cvs().filter(|&(k, _)| k >= 9).map(|(_, cv)| cv).collect();
    let apps: BTreeSet<&String> = t.apps.iter().collect();
    let stats = TraceStats {
        functions: n,
        apps: apps.len(),
        invocations: count,
        first: first.unwrap_or(0),
        last,
        per_hour,
        cvs,
        durations_ms: durations,
        memory_mb: t.memory_mb.iter().flatten().copied().collect(),
        wall_s: started.elapsed().as_secs_f64(),
    };
    Ok((stats, t))
}

fn percentiles(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((p * (v.len() - 1) as f64).round()) as usize];
    format!(
        "p1 {:.3}, p25 {:.3}, p50 {:.3}, p75 {:.3}, p99 {:.3}",
        q(0.01),
        q(0.25),
        q(0.5),
        q(0.75),
        q(0.99)
    )
}

impl TraceStats {
    /// A human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let span = (self.last - self.first) as f64 / NS_PER_S as f64;
        let _ = writeln!(out, "functions      {} in {} apps", self.functions, self.apps);
        let _ = writeln!(
            out,
            "invocations    {} over {:.1} s ({:.3} per s)",
            self.invocations,
            span,
            self.invocations as f64 / span.max(1e-9)
        );
        let hours: Vec<String> = self.per_hour.iter().map(u64::to_string).collect();
        let _ = writeln!(out, "per hour       {}", hours.join(" "));
        let mut cvs = self.cvs.clone();
        let above = cvs.iter().filter(|c| **c > 1.0).count() as f64 / cvs.len().max(1) as f64;
        let near0 = cvs.iter().filter(|c| **c < 0.1).count() as f64 / cvs.len().max(1) as f64;
        let _ = writeln!(
            out,
            "inter-arrival CV over {} functions with ≥ 10 invocations: {}; {:.1} % above 1, {:.1} % below 0.1",
            cvs.len(),
            percentiles(&mut cvs),
            above * 100.0,
            near0 * 100.0
        );
        let d = &self.durations_ms;
        if d.is_empty() {
            let _ = writeln!(out, "durations      none in the trace");
        } else {
            let _ = writeln!(
                out,
                "durations (ms) p1 {}, p25 {}, p50 {}, p75 {}, p99 {} over {} invocations",
                d.value_at_quantile(0.01),
                d.value_at_quantile(0.25),
                d.value_at_quantile(0.5),
                d.value_at_quantile(0.75),
                d.value_at_quantile(0.99),
                d.len()
            );
        }
        let mut mem = self.memory_mb.clone();
        let _ = writeln!(out, "memory (MB)    per function: {}", percentiles(&mut mem));
        let _ = write!(
            out,
            "read, spread and streamed in {:.3} s: {:.2} M arrivals/s",
            self.wall_s,
            self.invocations as f64 / self.wall_s.max(1e-9) / 1e6
        );
        out
    }
}
