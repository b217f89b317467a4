//! One Markdown table of several runs of a scenario side by side (`gpushare compare`).
//!
//! Each row is one run, labelled by what was varied (a policy, with its parameters if given).
//! The columns are the figures a policy comparison reads first: throughput, completions,
//! what did not complete (rejected, failed, unfinished at the horizon), end-to-end latency
//! percentiles, the cold-start ratio, mean GPU utilisation and the instances created. Every
//! figure comes from the run's [`Summary`], so a table pasted into a README or a paper is
//! reproduced by the same command.

use gpushare_sim::summary::Summary;
use std::fmt::Write;

/// Renders `runs` (label, summary) as a Markdown table, rows in the order given.
pub fn markdown(runs: &[(String, Summary)]) -> String {
    let mut out = String::from(
        "| policy | throughput /s | completed | rejected | failed | unfinished | p50 s | p99 s | cold starts | GPU util | instances |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (label, s) in runs {
        let e2e = &s.latency_s.end_to_end;
        let latency = |v: f64| {
            if e2e.count == 0 {
                "–".to_string()
            } else {
                format!("{v:.4}")
            }
        };
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {} | {} | {} | {} | {} | {:.1} % | {:.1} % | {} |",
            label.replace('|', "\\|"),
            s.throughput_per_s,
            s.counts.completed,
            s.counts.rejected,
            s.counts.failed,
            s.counts.unfinished,
            latency(e2e.p50),
            latency(e2e.p99),
            100.0 * s.cold_start_ratio,
            100.0 * s.gpu.utilisation_mean,
            s.instances.created,
        );
    }
    if let Some((_, s)) = runs.first() {
        let _ = writeln!(
            out,
            "\nThroughput counts completions that end after the {} s warm-up; latencies and cold \
             starts, requests that arrived after it; completed, rejected, failed and unfinished, \
             the whole {} s run.",
            s.warmup_s, s.horizon_s
        );
    }
    out
}
