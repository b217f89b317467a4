//! KaaS's baselines (PAPERS.md §2): `static` pools and `fractional` MPS slices.

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
    let run = |clients: u32| {
        let mut src = ScenarioSource::load(&common::repo_root().join("scenarios/mps_vs_timeslice.toml")).unwrap();
        src.set(&format!("functions[0].count={clients}")).unwrap();
        let mut sc = src.parse().unwrap();
        sc.policy.name = "fractional".into();
        common::simulate_scenario(&sc)
    };
    let t: Vec<f64> = [1, 2, 4, 8, 9].iter().map(|&n| run(n).throughput_per_s).collect();
    println!("fractional, low-occupancy kernels: {t:?} completions/s at 1, 2, 4, 8, 9 clients");
    // Each client has 1/8 of the SMs: throughput grows with clients up to 8 …
    assert!(t.windows(2).take(3).all(|w| w[1] > 1.5 * w[0]), "{t:?}");
    // … and a ninth client finds no slice: nothing more.
    assert!((t[4] - t[3]).abs() < 0.05 * t[3], "{t:?}");
}
