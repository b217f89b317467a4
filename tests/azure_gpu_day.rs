//! `scenarios/azure_gpu_day.toml`, cut to one hour (13:00, near the diurnal peak): many
//! functions on few GPUs, where sharing a GPU is what keeps functions warm. A model property on
//! a generated Azure-like trace (no published number): the cold-start and p99 comparisons are
//! made on the means over 10 seeds (the trace and the arrivals both follow the seed), with
//! their 95 % intervals.

mod common;

#[test]
fn sharing_policies_keep_many_functions_warm_on_few_gpus() {
    let run_seed = |policy: &str, seed: u64| {
        let sets = [
            "simulation.horizon_s=3600",
            "simulation.warmup_s=600",
            "workload.start_minute=780",
            "workload.minutes=60",
            &format!("policy={policy}"),
        ];
        let s = common::simulate_with(&common::repo_root().join("scenarios/azure_gpu_day.toml"), &sets, seed);
        assert_eq!(
            s.counts.arrivals,
            s.counts.completed + s.counts.rejected + s.counts.failed + s.counts.unfinished
        );
        s
    };
    let run = |policy: &str| run_seed(policy, 1);
    let cold = |policy: &str| common::over_seeds(|seed| run_seed(policy, seed).cold_start_ratio);
    let p99 = |policy: &str| common::over_seeds(|seed| run_seed(policy, seed).latency_s.end_to_end.p99);
    let exclusive = "{ name = \"exclusive\" }";
    let (ex_cold, ex_p99) = (cold(exclusive), p99(exclusive));
    println!("exclusive: cold-start ratio {ex_cold}, p99 {ex_p99} s");
    // 150-odd functions on 16 whole GPUs: instances keep displacing each other.
    assert!(ex_cold.low > 0.10, "{ex_cold}");
    for sharing in ["time-sharing", "fractional", "mig", "sage", "kaas"] {
        let policy = format!("{{ name = \"{sharing}\" }}");
        let s = run(&policy);
        assert_eq!(s.counts.completed + s.counts.unfinished, s.counts.arrivals, "{sharing}");
        let (c, p) = (cold(&policy), p99(&policy));
        println!("{sharing}: cold-start ratio {c}, p99 {p} s");
        assert!(
            c.high * 10.0 < ex_cold.low,
            "{sharing}: cold {c} vs exclusive {ex_cold}"
        );
        assert!(p.high < ex_p99.low, "{sharing}: p99 {p} vs exclusive {ex_p99}");
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
