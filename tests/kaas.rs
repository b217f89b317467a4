//! KaaS (PAPERS.md §2) against its baselines on `scenarios/kaas_contention.toml`, and the KaaS
//! catalog graphs against the paper's KaaS column. Print the figures with
//! `cargo test --release --test kaas -- --nocapture`.
//!
//! The warm-latency test is a weak validation: nothing is fitted to the KaaS end-to-end latencies
//! it checks (rows `kaas-03/06/09/12` of `validation/measurements.csv`), but the graphs' dispatch
//! cost is built from the same table's KaaS GPU times, so it checks that the published columns add
//! up as the model composes them rather than any sharing behaviour; the contention trends are a validation of direction (nothing is
//! fitted to them; the offered load and GPU count are the scenario's, as the paper does not
//! state them). Every figure is a mean over 10 seeds with its 95 % confidence interval, and a
//! trend holds only when the intervals clear it.

mod common;

use gpushare_sim::Summary;

/// The four workloads with the total offered load of the scenario (twice KaaS's capacity).
const WORKLOADS: [(&str, f64); 4] = [
    ("kaas-cgemm", 200.0),
    ("kaas-resnet50", 1000.0),
    ("kaas-bert", 80.0),
    ("kaas-jacobi", 104.0),
];
const CLIENTS: [u32; 7] = [1, 2, 4, 5, 8, 16, 28];

const EXCLUSIVE: &str =
    r#"{ name = "exclusive", kill_largest = true, keep_alive_s = inf, max_queue = 16, evict_idle = false }"#;
const FRACTIONAL: &str = r#"{ name = "fractional", max_instances = 1, max_queue = 16 }"#;
const KAAS: &str = r#"{ name = "kaas", max_queue = 16 }"#;

fn run(profile: &str, rate: f64, clients: u32, policy: &str, extra: &[&str]) -> Summary {
    run_seed(profile, rate, clients, policy, extra, 1)
}

fn run_seed(profile: &str, rate: f64, clients: u32, policy: &str, extra: &[&str], seed: u64) -> Summary {
    let mut sets = vec![
        format!("functions[0].profile=\"{profile}\""),
        format!("functions[0].rate_per_s={rate}"),
        format!("functions[0].count={clients}"),
    ];
    sets.extend(extra.iter().map(|e| e.to_string()));
    sets.push(format!("policy={policy}"));
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    common::simulate_with(&common::repo_root().join("scenarios/kaas_contention.toml"), &sets, seed)
}

/// Completions per second in the measured window (whenever the requests arrived: a thrashing
/// baseline's full queues hold old ones).
fn rate(s: &Summary) -> f64 {
    s.throughput_per_s
}

/// A figure of one configuration over 10 seeds.
fn seeds(
    profile: &str,
    offered: f64,
    clients: u32,
    policy: &str,
    extra: &[&str],
    figure: fn(&Summary) -> f64,
) -> common::Seeds {
    common::over_seeds(|seed| figure(&run_seed(profile, offered, clients, policy, extra, seed)))
}

#[test]
fn warm_requests_take_the_published_kaas_latency() {
    // The paper's KaaS column, end-to-end ms (V100).
    for (profile, published) in [
        ("kaas-resnet50", 30.2),
        ("kaas-bert", 151.4),
        ("kaas-cgemm", 47.7),
        ("kaas-jacobi", 82.9),
    ] {
        let p50 = seeds(profile, 2.0, 1, KAAS, &[], |s| s.latency_s.end_to_end.p50 * 1e3);
        println!("{profile}: warm p50 {p50} ms, published {published} ms");
        assert!(
            p50.low >= 0.95 * published && p50.high <= 1.05 * published,
            "{profile}: {p50} vs {published}"
        );
    }
}

#[test]
fn kaas_holds_its_throughput_where_exclusive_collapses_and_fractional_grows() {
    for (profile, offered) in WORKLOADS {
        let series = |policy: &str| -> Vec<common::Seeds> {
            CLIENTS
                .iter()
                .map(|&n| seeds(profile, offered, n, policy, &[], rate))
                .collect()
        };
        let (kaas, exclusive, fractional) = (series(KAAS), series(EXCLUSIVE), series(FRACTIONAL));
        let fmt = |v: &[common::Seeds]| {
            v.iter()
                .map(|x| format!("{:.1}±{:.1}", x.mean, (x.high - x.low) / 2.0))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("{profile} ({CLIENTS:?} clients, completions/s, mean ± 95 % CI over 10 seeds)");
        println!("  kaas       {}", fmt(&kaas));
        println!("  exclusive  {}", fmt(&exclusive));
        println!("  fractional {}", fmt(&fractional));
        // Exclusive: with more clients than GPUs every hand-over is a cold start (paper: e.g.
        // cGEMM 89 → 1.5 qps from 4 to 5 clients); KaaS serves at least 10× more from 5 on.
        for (k, &n) in CLIENTS.iter().enumerate().filter(|&(_, &n)| n >= 5) {
            assert!(
                kaas[k].low >= 10.0 * exclusive[k].high,
                "{profile}, {n} clients: {} vs {}",
                kaas[k],
                exclusive[k]
            );
        }
        // The collapse comes with the fifth client: at 4 (one GPU each) exclusive still serves
        // at least 10× what it serves at 5.
        assert!(
            exclusive[2].low >= 10.0 * exclusive[3].high,
            "{profile}: {}",
            fmt(&exclusive)
        );
        // KaaS stays within 20 % of its peak up to 16 clients (paper: cGEMM ≈ 88 qps to ≈ 28
        // clients). BERT is the model's known exception: its KaaS footprint (3.78 GB) fills a
        // quarter of a V100's cache, so the heavy Zipf clients spilling onto other GPUs evict
        // each other; it keeps ≥ 70 %.
        let peak = kaas.iter().map(|x| x.mean).fold(0.0, f64::max);
        let floor = if profile == "kaas-bert" { 0.70 } else { 0.80 };
        for (k, &n) in CLIENTS.iter().enumerate().filter(|&(_, &n)| n <= 16) {
            assert!(kaas[k].low >= floor * peak, "{profile}, {n} clients: {}", fmt(&kaas));
        }
        // Fractional (one 1/8-SM MPS client each, 8 per GPU, packed) grows with clients while
        // slices are free: paper, Jacobi 65 → 201 qps from 1 to 16 clients (×3.1). Every step up
        // (its interval above the last one's), and ×3 overall. (The first version of this test
        // asked ×1.1 per step, a figure of its own; with co-located memory-bound clients now
        // slowing each other through DRAM queueing, 4 → 5 clients gains ×1.09, and the test keeps
        // to the paper's claim instead. Reported in the closing note of the model's issue.)
        if profile == "kaas-jacobi" {
            let upto16 = &fractional[..6];
            assert!(upto16.windows(2).all(|w| w[1].low > w[0].high), "{}", fmt(&fractional));
            assert!(upto16[5].low >= 3.0 * upto16[0].high, "{}", fmt(&fractional));
        }
    }
}

#[test]
fn kaas_p99_under_contention_is_far_below_exclusive() {
    // A moderate load (a fraction of either policy's capacity) with more clients than GPUs,
    // drained so that every accepted request completes.
    for (profile, offered) in [
        ("kaas-resnet50", 100.0),
        ("kaas-cgemm", 40.0),
        ("kaas-bert", 15.0),
        ("kaas-jacobi", 20.0),
    ] {
        for n in [5, 8] {
            let p99 = |s: &Summary| s.latency_s.end_to_end.p99;
            let kp = seeds(profile, offered, n, KAAS, &["simulation.drain=true"], p99);
            let ep = seeds(profile, offered, n, EXCLUSIVE, &["simulation.drain=true"], p99);
            println!("{profile}, {n} clients: p99 kaas {kp} s, exclusive {ep} s");
            // Paper: up to 16× lower latency under contention.
            assert!(5.0 * kp.high <= ep.low, "{profile}, {n} clients: {kp} vs {ep}");
        }
    }
}

#[test]
fn affinity_and_the_buffer_cache_each_carry_their_share() {
    let with = |extra: &str| {
        let policy = format!("{{ name = \"kaas\", max_queue = 16{extra} }}");
        seeds("kaas-cgemm", 200.0, 16, &policy, &[], rate)
    };
    let (full, no_affinity, no_cache) = (with(""), with(", affinity = false"), with(", buffer_cache = false"));
    println!(
        "16 cGEMM clients: kaas {full}/s, without affinity {no_affinity}/s, without the buffer cache {no_cache}/s"
    );
    // Without affinity every GPU serves every client and its cache thrashes; without the cache
    // every request reloads its 1.6 GB of operands.
    assert!(no_affinity.high < 0.6 * full.low, "{no_affinity} vs {full}");
    assert!(no_cache.high < 0.4 * full.low, "{no_cache} vs {full}");
}

#[test]
fn host_code_does_not_hold_a_worker() {
    // ResNet-50 spends 21.7 of its 30 ms in host code: four workers serve about
    // 4 / 8.2 ms = 488 requests/s, far more than 4 / 30 ms if the host code held them.
    let s = run("kaas-resnet50", 1000.0, 4, KAAS, &[]);
    let capacity_if_held = 4.0 / 0.0299;
    let served = seeds("kaas-resnet50", 1000.0, 4, KAAS, &[], rate);
    println!("ResNet-50, 4 clients: {served}/s (host code on the GPU would cap it at {capacity_if_held:.0}/s)");
    assert!(served.low > 3.0 * capacity_if_held);
    // Every request is accounted for.
    let c = &s.counts;
    assert_eq!(c.arrivals, c.completed + c.rejected + c.failed + c.unfinished);
}
