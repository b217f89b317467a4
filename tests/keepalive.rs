//! Keep-alive and pre-warming ("Serverless in the Wild"'s hybrid histogram) through a real
//! policy: a function invoked every 20 minutes for a day, on `exclusive`. A property of the
//! policies on a deterministic workload (a CSV of exact times; nothing in these runs draws a
//! random number): one run is the whole answer, on any seed.

mod common;

use gpushare_sim::Summary;

fn run(policy: &str) -> Summary {
    let dir = common::temp_dir(&format!("ka-{}", policy.len()));
    let csv: String = std::iter::once("time,func".to_string())
        .chain((0..72).map(|i| format!("{},f", i * 1200)))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("w.csv"), csv).unwrap();
    let text = format!(
        "[simulation]\nhorizon_s = 86400.0\n[cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = \"a100-80gb\"\n\
         [[functions]]\nname = \"f\"\nprofile = \"kaas-resnet50\"\n[workload]\nkind = \"csv\"\npath = \"w.csv\"\n\
         [policy]\nname = \"exclusive\"\n{policy}\n"
    );
    common::simulate_file(&dir.join("s.toml"), &text)
}

#[test]
fn hybrid_histogram_prewarms_periodic_functions() {
    let short = run("keep_alive_s = 600.0");
    let long = run("keep_alive_s = 1800.0");
    let hybrid = run("keep_alive_s = 600.0\nkeep_alive_policy = \"hybrid\"");
    for (name, s) in [("fixed 10 min", &short), ("fixed 30 min", &long), ("hybrid", &hybrid)] {
        println!(
            "{name}: cold-start ratio {:.3}, idle GPU-seconds {:.0}, instances {}",
            s.cold_start_ratio, s.gpu.gpu_seconds_idle, s.instances.created
        );
    }
    // Every 20 minutes is past a 10-minute keep-alive: always cold.
    assert!(short.cold_start_ratio > 0.95);
    // 30 minutes keeps it warm, idle 20 minutes at a time.
    assert!(long.cold_start_ratio < 0.05);
    // The hybrid policy falls back to 10 minutes until it has seen 10 idle times, then unloads
    // after each use and pre-warms just before the next: few cold starts, little idle time.
    assert!(hybrid.cold_start_ratio < 0.25, "{}", hybrid.cold_start_ratio);
    assert!(hybrid.gpu.gpu_seconds_idle < 0.3 * long.gpu.gpu_seconds_idle);
    for s in [&short, &long, &hybrid] {
        assert_eq!(s.counts.completed, 72);
    }
}

/// `prewarm`: the instances a replay starts with — set up at time 0 — so no invocation waits
/// for a setup, under every pool policy; without it the first invocations do.
#[test]
fn prewarmed_pools_start_set_up_at_time_zero() {
    for policy in ["exclusive", "time-sharing", "mps", "sage", "static"] {
        let pool = if policy == "static" {
            ""
        } else {
            "max_instances = 1\nkeep_alive_s = 100000.0\n"
        };
        let text = |prewarm: bool| {
            format!(
                "[simulation]\nhorizon_s = 30.0\n[cluster]\nnodes = 1\ngpus_per_node = 2\ngpu = \"a100-80gb\"\n\
                 [[functions]]\nname = \"r\"\nprofile = \"kaas-resnet50\"\nrate_per_s = 5.0\n\
                 [[functions]]\nname = \"b\"\nprofile = \"kaas-bert\"\nrate_per_s = 2.0\n\
                 [workload]\nkind = \"poisson\"\n[policy]\nname = \"{policy}\"\n{pool}prewarm = {prewarm}\n"
            )
        };
        let warm = common::simulate(&text(true));
        let cold = common::simulate(&text(false));
        assert_eq!(warm.cold_starts, 0, "{policy}");
        assert_eq!(warm.latency_s.setup.count, 0, "{policy}");
        assert_eq!(warm.instances.created, 2, "{policy}");
        assert!(cold.cold_starts > 0, "{policy}");
        assert!(
            warm.latency_s.end_to_end.p99 < cold.latency_s.end_to_end.p99,
            "{policy}"
        );
    }
}
