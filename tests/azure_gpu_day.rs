//! `scenarios/azure_gpu_day.toml`, cut to one hour (13:00, near the diurnal peak): many
//! functions on few GPUs, where sharing a GPU is what keeps functions warm.

mod common;

use gpushare_sim::ScenarioSource;

#[test]
fn sharing_policies_keep_many_functions_warm_on_few_gpus() {
    let run = |policy: &str| {
        let mut src = ScenarioSource::load(&common::repo_root().join("scenarios/azure_gpu_day.toml")).unwrap();
        for set in [
            "simulation.horizon_s=3600",
            "simulation.warmup_s=600",
            "workload.start_minute=780",
            "workload.minutes=60",
            &format!("policy={policy}"),
        ] {
            src.set(set).unwrap();
        }
        let s = common::simulate_scenario(&src.parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            s.counts.arrivals,
            s.counts.completed + s.counts.rejected + s.counts.failed + s.counts.unfinished
        );
        println!(
            "{policy}: {} arrivals, {} completed, {} unfinished, cold {:.2} %, p99 {:.3} s",
            s.counts.arrivals,
            s.counts.completed,
            s.counts.unfinished,
            100.0 * s.cold_start_ratio,
            s.latency_s.end_to_end.p99
        );
        s
    };
    let exclusive = run("{ name = \"exclusive\" }");
    // 150-odd functions on 16 whole GPUs: instances keep displacing each other.
    assert!(exclusive.cold_start_ratio > 0.10, "{}", exclusive.cold_start_ratio);
    for sharing in ["time-sharing", "fractional", "mig", "sage", "kaas"] {
        let s = run(&format!("{{ name = \"{sharing}\" }}"));
        assert_eq!(s.counts.completed + s.counts.unfinished, s.counts.arrivals, "{sharing}");
        assert!(
            s.cold_start_ratio * 10.0 < exclusive.cold_start_ratio,
            "{sharing}: cold {} vs exclusive {}",
            s.cold_start_ratio,
            exclusive.cold_start_ratio
        );
        assert!(
            s.latency_s.end_to_end.p99 < exclusive.latency_s.end_to_end.p99,
            "{sharing}"
        );
    }
    // Static pools give 16 functions a GPU each for good; the rest are never served.
    let fixed = run("{ name = \"static\" }");
    assert_eq!(fixed.instances.created, 16);
    assert!(
        fixed
            .functions
            .iter()
            .filter(|f| f.completed == 0 && f.arrivals > 0)
            .count()
            > 50
    );
}
