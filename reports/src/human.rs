//! The summary printed on the terminal after a run.

use gpushare_sim::Summary;
use gpushare_sim::metrics::LatencySummary;
use std::fmt::Write;

fn ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.3} s")
    } else {
        format!("{:.3} ms", v * 1e3)
    }
}

fn latency_row(out: &mut String, name: &str, l: &LatencySummary) {
    let _ = writeln!(
        out,
        "  {name:<14} {:>11} {:>11} {:>11} {:>11} {:>11}  (n = {})",
        ms(l.mean),
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        l.count
    );
}

/// A short human-readable account of a run.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let c = &s.counts;
    let _ = writeln!(
        out,
        "scenario {} · policy {} · seed {} · {} s simulated (warm-up {} s)",
        s.scenario, s.policy, s.seed, s.end_s, s.warmup_s
    );
    let reasons: Vec<String> = c
        .rejected_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let reasons = if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join(", "))
    };
    let _ = writeln!(
        out,
        "invocations    {} arrived = {} completed + {} rejected{reasons} + {} failed + {} unfinished",
        c.arrivals, c.completed, c.rejected, c.failed, c.unfinished
    );
    let _ = writeln!(
        out,
        "throughput     {:.3} completions/s over the measured window",
        s.throughput_per_s
    );
    let _ = writeln!(
        out,
        "  {:<14} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "latency", "mean", "p50", "p90", "p99", "p99.9"
    );
    latency_row(&mut out, "end-to-end", &s.latency_s.end_to_end);
    latency_row(&mut out, "queueing", &s.latency_s.queueing);
    latency_row(&mut out, "setup (cold)", &s.latency_s.setup);
    latency_row(&mut out, "execution", &s.latency_s.execution);
    let _ = writeln!(
        out,
        "cold starts    {} ({:.2} % of measured completions)",
        s.cold_starts,
        s.cold_start_ratio * 100.0
    );
    let _ = writeln!(
        out,
        "GPUs           {}: utilisation {:.1} %, SM occupancy {:.1} %, peak memory {:.0} MiB, {:.1} GPU·s allocated",
        s.gpu.count,
        s.gpu.utilisation_mean * 100.0,
        s.gpu.sm_occupancy_mean * 100.0,
        s.gpu.peak_memory_mib,
        s.gpu.gpu_seconds_allocated
    );
    let _ = writeln!(
        out,
        "instances      {} created, {} reclaimed, {} alive at end, {} at peak",
        s.instances.created, s.instances.reclaimed, s.instances.alive_at_end, s.instances.peak_alive
    );
    for line in &s.policy_report {
        let _ = writeln!(out, "policy         {line}");
    }
    for line in &s.workload_report {
        let _ = writeln!(out, "workload       {line}");
    }
    out
}
