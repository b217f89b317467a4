//! SAGE's trends (`scenarios/sage_setup.toml`): durations and density against the
//! sequential-setup, no-sharing baseline, and what each mechanism contributes.
//!
//! Validation of the mechanisms' direction, not of SAGE's numbers: the paper's ×11.3 and ×1.22
//! come with setup breakdowns it does not publish, so the scenario states its own and no
//! parameter is fitted to SAGE. Trends are asserted on the mean over 10 seeds with its 95 %
//! confidence interval (the interval must clear the threshold).

mod common;

use gpushare_sim::Summary;

fn run(sets: &[&str]) -> Summary {
    run_seed(sets, 1)
}

fn run_seed(sets: &[&str], seed: u64) -> Summary {
    common::simulate_with(&common::repo_root().join("scenarios/sage_setup.toml"), sets, seed)
}

const BASELINE: [&str; 3] = [
    "policy.parallel_setup=false",
    "policy.share_weights=false",
    "policy.share_context=false",
];

#[test]
fn sage_shortens_cold_heavy_durations_at_least_threefold() {
    // Eight simulated hours per seed (not the file's two), so that each seed's mean duration is
    // precise enough for ten seeds to settle the claim.
    let long = "simulation.horizon_s=28800.0";
    let ratio = |extra: &[&str], seed: u64| {
        let base = run_seed(&[&[long][..], &BASELINE[..]].concat(), seed);
        let other = run_seed(&[&[long][..], extra].concat(), seed);
        base.latency_s.end_to_end.mean / other.latency_s.end_to_end.mean
    };
    let sage = common::over_seeds(|seed| ratio(&[], seed));
    let parallel =
        common::over_seeds(|seed| ratio(&["policy.share_weights=false", "policy.share_context=false"], seed));
    let cold = common::over_seeds(|seed| run_seed(&[&[long][..], &BASELINE[..]].concat(), seed).cold_start_ratio);
    println!("baseline cold-start ratio {cold}");
    println!("mean duration, baseline ÷ parallel setup only: {parallel}");
    println!("mean duration, baseline ÷ SAGE: {sage} (paper ×11.3 with its own breakdown)");
    assert!(cold.low > 0.7, "the workload must be cold-heavy: {cold}");
    assert!(sage.low >= 3.0, "{sage}");
    // Each mechanism helps: parallel setup alone shortens durations, sharing shortens them more.
    assert!(parallel.low > 1.0 && sage.low > parallel.high, "{parallel} vs {sage}");
}

#[test]
fn sage_packs_more_instances_per_gpu() {
    // A burst that needs more instances than memory allows: 4 functions at 10 requests/s of
    // 2 s each. Without sharing each instance takes context + weights + activations (1.8 GiB);
    // with it, a function's context and weights are held once per GPU.
    let burst = [
        "functions[0].count=4",
        "functions[0].rate_per_s=10.0",
        "profiles.mid-model.phases[0].solo_ms=2000.0",
        "simulation.horizon_s=900.0",
        "simulation.warmup_s=300.0",
    ];
    let density = |s: &Summary| -> f64 { common::number_after(&s.policy_report[0], "at most ") };
    let gain = common::over_seeds(|seed| {
        let sage = run_seed(&burst, seed);
        let base = run_seed(&[&burst[..], &BASELINE[..]].concat(), seed);
        density(&sage) / density(&base)
    });
    println!("density, SAGE ÷ baseline: {gain} (paper ×1.22)");
    assert!(gain.low >= 1.15, "{gain}");
}

#[test]
fn sage_is_never_much_worse_than_its_baseline_in_any_regime() {
    // Keep-alive {10, 60, 600, inf} s × load ×{0.1, 1, 2} on sage_setup.toml: SAGE's mean
    // duration stays within 10 % of the sequential-setup, no-sharing baseline's (it is shorter in
    // every cell), and it leaves no more requests unfinished. Before the fix, at 600 s, idle
    // instances held their function's shared weights and context: other functions starved
    // (mean 1,350 s against 1.1 s, 558 requests unfinished). A model property (no paper number),
    // checked on every cell rather than on average: one seed per cell.
    for keep in ["10.0", "60.0", "600.0", "inf"] {
        for load in ["0.1", "1.0", "2.0"] {
            let cell = [
                format!("policy.keep_alive_s={keep}"),
                format!("simulation.load_scale={load}"),
            ];
            let cell: Vec<&str> = cell.iter().map(String::as_str).collect();
            let sage = run(&cell);
            let base = run(&[&cell[..], &BASELINE[..]].concat());
            let (s, b) = (sage.latency_s.end_to_end.mean, base.latency_s.end_to_end.mean);
            println!("keep-alive {keep} s, load ×{load}: SAGE {s:.3} s, baseline {b:.3} s");
            assert!(s <= 1.1 * b, "keep-alive {keep}, load {load}: {s} vs {b}");
            assert!(
                sage.counts.unfinished <= base.counts.unfinished + 1,
                "{:?} vs {:?}",
                sage.counts,
                base.counts
            );
        }
    }
}
