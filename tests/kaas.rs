//! KaaS (PAPERS.md §2) against its baselines on `scenarios/kaas_contention.toml`, and the KaaS
//! catalog graphs against the paper's KaaS column. Print the figures with
//! `cargo test --release --test kaas -- --nocapture`.

mod common;

use gpushare_sim::scenario::PolicySpec;
use gpushare_sim::{ScenarioSource, Summary};

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
    let mut src = ScenarioSource::load(&common::repo_root().join("scenarios/kaas_contention.toml")).unwrap();
    src.set(&format!("functions[0].profile=\"{profile}\"")).unwrap();
    src.set(&format!("functions[0].rate_per_s={rate}")).unwrap();
    src.set(&format!("functions[0].count={clients}")).unwrap();
    for e in extra {
        src.set(e).unwrap();
    }
    let mut sc = src.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut table: toml::Table = toml::from_str(&format!("p = {policy}")).unwrap();
    let toml::Value::Table(mut params) = table.remove("p").unwrap() else {
        panic!()
    };
    let name = params.remove("name").unwrap().as_str().unwrap().to_string();
    sc.policy = PolicySpec { name, params };
    common::simulate_scenario(&sc)
}

/// Completions per second over the whole run. (The measured window's throughput counts only
/// requests that arrived after the warm-up; a thrashing baseline's full queues hold older ones.)
fn rate(s: &Summary) -> f64 {
    s.counts.completed as f64 / s.end_s
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
        let s = run(profile, 2.0, 1, KAAS, &[]);
        let p50 = s.latency_s.end_to_end.p50 * 1e3;
        println!("{profile}: warm p50 {p50:.1} ms, published {published} ms");
        assert!((p50 / published - 1.0).abs() <= 0.05, "{profile}: {p50} vs {published}");
    }
}

#[test]
fn kaas_holds_its_throughput_where_exclusive_collapses_and_fractional_grows() {
    for (profile, offered) in WORKLOADS {
        let series = |policy: &str| -> Vec<f64> {
            CLIENTS
                .iter()
                .map(|&n| rate(&run(profile, offered, n, policy, &[])))
                .collect()
        };
        let (kaas, exclusive, fractional) = (series(KAAS), series(EXCLUSIVE), series(FRACTIONAL));
        let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ");
        println!("{profile} ({CLIENTS:?} clients, completions/s)");
        println!("  kaas       {}", fmt(&kaas));
        println!("  exclusive  {}", fmt(&exclusive));
        println!("  fractional {}", fmt(&fractional));
        // Exclusive: with more clients than GPUs every hand-over is a cold start (paper: e.g.
        // cGEMM 89 → 1.5 qps from 4 to 5 clients); KaaS serves at least 10× more from 5 on.
        for (k, &n) in CLIENTS.iter().enumerate().filter(|&(_, &n)| n >= 5) {
            assert!(
                kaas[k] >= 10.0 * exclusive[k],
                "{profile}, {n} clients: {kaas:?} vs {exclusive:?}"
            );
        }
        // The collapse comes with the fifth client: at 4 (one GPU each) exclusive still serves
        // at least 10× what it serves at 5.
        assert!(exclusive[2] >= 10.0 * exclusive[3], "{profile}: {exclusive:?}");
        // KaaS stays within 20 % of its peak up to 16 clients (paper: cGEMM ≈ 88 qps to ≈ 28
        // clients). BERT is the model's known exception: its KaaS footprint (3.78 GB) fills a
        // quarter of a V100's cache, so the heavy Zipf clients spilling onto other GPUs evict
        // each other; it keeps ≥ 70 %.
        let peak = kaas.iter().cloned().fold(0.0, f64::max);
        let floor = if profile == "kaas-bert" { 0.70 } else { 0.80 };
        for (k, &n) in CLIENTS.iter().enumerate().filter(|&(_, &n)| n <= 16) {
            assert!(kaas[k] >= floor * peak, "{profile}, {n} clients: {kaas:?}");
        }
        // Fractional (one 1/8-SM MPS client each, 8 per GPU) grows with clients while slices
        // are free (paper: Jacobi 65 → 201 qps at 16 clients).
        if profile == "kaas-jacobi" {
            let upto16 = &fractional[..6];
            assert!(upto16.windows(2).all(|w| w[1] > 1.1 * w[0]), "{fractional:?}");
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
            let k = run(profile, offered, n, KAAS, &["simulation.drain=true"]);
            let e = run(profile, offered, n, EXCLUSIVE, &["simulation.drain=true"]);
            let (kp, ep) = (k.latency_s.end_to_end.p99, e.latency_s.end_to_end.p99);
            println!("{profile}, {n} clients: p99 kaas {kp:.3} s, exclusive {ep:.1} s");
            // Paper: up to 16× lower latency under contention.
            assert!(5.0 * kp <= ep, "{profile}, {n} clients: {kp} vs {ep}");
        }
    }
}

#[test]
fn affinity_and_the_buffer_cache_each_carry_their_share() {
    let with = |extra: &str| {
        let policy = format!("{{ name = \"kaas\", max_queue = 16{extra} }}");
        rate(&run("kaas-cgemm", 200.0, 16, &policy, &[]))
    };
    let (full, no_affinity, no_cache) = (with(""), with(", affinity = false"), with(", buffer_cache = false"));
    println!(
        "16 cGEMM clients: kaas {full:.1}/s, without affinity {no_affinity:.1}/s, without the buffer cache {no_cache:.1}/s"
    );
    // Without affinity every GPU serves every client and its cache thrashes; without the cache
    // every request reloads its 1.6 GB of operands.
    assert!(no_affinity < 0.6 * full, "{no_affinity} vs {full}");
    assert!(no_cache < 0.4 * full, "{no_cache} vs {full}");
}

#[test]
fn host_code_does_not_hold_a_worker() {
    // ResNet-50 spends 21.7 of its 30 ms in host code: four workers serve about
    // 4 / 8.2 ms = 488 requests/s, far more than 4 / 30 ms if the host code held them.
    let s = run("kaas-resnet50", 1000.0, 4, KAAS, &[]);
    let capacity_if_held = 4.0 / 0.0299;
    println!(
        "ResNet-50, 4 clients: {:.0}/s (host code on the GPU would cap it at {capacity_if_held:.0}/s)",
        rate(&s)
    );
    assert!(rate(&s) > 3.0 * capacity_if_held);
    // Every request is accounted for.
    let c = &s.counts;
    assert_eq!(c.arrivals, c.completed + c.rejected + c.failed + c.unfinished);
}
