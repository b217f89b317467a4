//! KaaS's baselines (PAPERS.md §2): `static` pools, `fractional` MPS slices and `exclusive`
//! with KaaS's eviction. Validation of direction (nothing is fitted to these trends); random
//! loads are asserted on the mean over 10 seeds with its 95 % confidence interval. The static
//! pool's outcome is a property of its rule, the same on any seed: one seed.

mod common;

use gpushare_sim::ScenarioSource;

#[test]
fn static_pools_serve_only_the_clients_that_got_a_gpu() {
    // Three clients, two GPUs, one instance each: the first two are served for the whole run,
    // the third never gets a GPU and its requests stay queued (reported unfinished).
    let text = "[simulation]\nhorizon_s = 120.0\n[cluster]\nnodes = 1\ngpus_per_node = 2\ngpu = \"v100-16gb\"\n\
                [[functions]]\nname = \"c\"\nprofile = \"kaas-resnet50\"\ncount = 3\nrate_per_s = 5.0\n\
                [workload]\nkind = \"poisson\"\n[policy]\nname = \"static\"\n";
    let s = common::simulate(text);
    let f = |n: &str| s.functions.iter().find(|f| f.name == n).unwrap().clone();
    println!(
        "instances {} created, {} reclaimed; c-2: {} completed, {} unfinished",
        s.instances.created,
        s.instances.reclaimed,
        f("c-2").completed,
        f("c-2").unfinished
    );
    assert_eq!((s.instances.created, s.instances.reclaimed), (2, 0));
    assert!(f("c-0").completed > 500 && f("c-1").completed > 500);
    assert_eq!(f("c-2").completed, 0);
    assert_eq!(f("c-2").unfinished, f("c-2").arrivals);
}

#[test]
fn fractional_slices_lift_low_occupancy_throughput_up_to_eight_clients() {
    let run = |clients: u32, seed: u64| {
        let mut src = ScenarioSource::load(&common::repo_root().join("scenarios/mps_vs_timeslice.toml")).unwrap();
        src.set(&format!("functions[0].count={clients}")).unwrap();
        src.set(&format!("simulation.seed={seed}")).unwrap();
        let mut sc = src.parse().unwrap();
        sc.policy.name = "fractional".into();
        common::simulate_scenario(&sc)
    };
    let t: Vec<common::Seeds> = [1, 2, 4, 8, 9]
        .iter()
        .map(|&n| common::over_seeds(|seed| run(n, seed).throughput_per_s))
        .collect();
    for (n, x) in [1, 2, 4, 8, 9].iter().zip(&t) {
        println!("fractional, low-occupancy kernels, {n} clients: {x} completions/s");
    }
    // Each client has 1/8 of the SMs: throughput grows with clients up to 8 …
    assert!(t.windows(2).take(3).all(|w| w[1].low > 1.5 * w[0].high), "{t:?}");
    // … and a ninth client finds no slice: nothing more.
    assert!((t[4].mean - t[3].mean).abs() < 0.05 * t[3].mean, "{t:?}");
}

/// Four GPUs, `clients` ResNet-50 clients at 25 requests/s each (within the GPUs' capacity at
/// four clients): completions per second over the whole run, and each client's completions.
fn exclusive_run(clients: u32, kill_largest: bool, seed: u64) -> (f64, Vec<u64>) {
    let text = format!(
        "[simulation]\nseed = {seed}\nhorizon_s = 120.0\n[cluster]\nnodes = 1\ngpus_per_node = 4\ngpu = \"v100-16gb\"\n\
         [[functions]]\nname = \"c\"\nprofile = \"kaas-resnet50\"\ncount = {clients}\nrate_per_s = 25.0\n\
         [workload]\nkind = \"poisson\"\n[policy]\nname = \"exclusive\"\nkill_largest = {kill_largest}\n"
    );
    let s = common::simulate(&text);
    let per_client = s.functions.iter().map(|f| f.completed).collect();
    (s.counts.completed as f64 / s.horizon_s, per_client)
}

#[test]
fn exclusive_with_kaas_eviction_collapses_once_clients_outnumber_gpus() {
    let four = common::over_seeds(|seed| exclusive_run(4, true, seed).0);
    let five = common::over_seeds(|seed| exclusive_run(5, true, seed).0);
    let five_kept = common::over_seeds(|seed| exclusive_run(5, false, seed).0);
    let (_, kept_clients) = exclusive_run(5, false, 1);
    println!(
        "exclusive, 4 GPUs: kill_largest 4 clients {four}/s, 5 clients {five}/s; \
         without it 5 clients {five_kept}/s, per client (seed 1) {kept_clients:?}"
    );
    // KaaS's artifact: ResNet 205 → 1.5 qps from 4 to 5 clients. Here every switch is a cold
    // start, so the fifth client makes throughput fall by at least 10×.
    assert!(five.high * 10.0 <= four.low, "{four} → {five}");
    // Without it, an instance hands its GPU over only when idle (its queue empty), which at this
    // load happens often enough to serve every client without thrashing.
    assert!(five_kept.low >= 0.9 * four.high, "{four} → {five_kept}");
    assert!(kept_clients.iter().all(|&c| c > 1000), "{kept_clients:?}");
}

#[test]
fn thrashing_exclusive_still_serves_one_request_per_cold_start() {
    // KaaS's exclusive baseline past the GPU count (kaas_contention.toml, cGEMM): each switch
    // kills the largest group's worker once it has served, and the starved client's worker
    // cold-starts in its place, so every GPU completes one request per cold start — a low rate,
    // not none (throughput counts completions that end in the measured window, whenever the
    // request arrived). Level: GPUs / (setup + one request), here 4 / 6.05 s ≈ 0.66/s; KaaS's
    // artifact shows 1.5/s for cGEMM with its own, unpublished, worker start time.
    let path = common::repo_root().join("scenarios/kaas_contention.toml");
    let exclusive =
        "policy={ name = \"exclusive\", kill_largest = true, keep_alive_s = inf, max_queue = 16, evict_idle = false }";
    for clients in [5, 8, 16] {
        let scenario = |seed: u64| {
            let mut src = gpushare_sim::ScenarioSource::load(&path).unwrap();
            src.set(&format!("functions[0].count={clients}")).unwrap();
            src.set(&format!("simulation.seed={seed}")).unwrap();
            src.set(exclusive).unwrap();
            src.parse().unwrap()
        };
        let sc = scenario(1);
        let f = &sc.functions[0];
        let c = f.profile.compile(&f.reference, &sc.devices[0], sc.storage_gbps);
        let per_switch = (c.setup.sequential() + c.solo_exec) as f64 / 1e9;
        let got = common::over_seeds(|seed| common::simulate_scenario(&scenario(seed)).throughput_per_s);
        let expect = 4.0 / per_switch;
        println!("{clients} clients: {got}/s, expected {expect:.3}/s");
        assert!(got.low > 0.85 * expect && got.high < 1.15 * expect, "{got} vs {expect}");
    }
}
