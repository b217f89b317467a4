//! KNIX vCUDA caps: a sandbox is held to its core percentage; memory comes in 256 MB units;
//! Knative scales sandboxes by concurrency within [min, max]. Properties of KNIX's mechanism
//! (the paper's figures were not available): the caps are checked over 10 seeds, mean and 95 %
//! confidence interval; the scaling bounds are a rule, the same on any seed.

mod common;

use gpushare_sim::Summary;

fn run(usage: &str, rate: f64, extra: &str) -> Summary {
    run_seed(usage, rate, extra, 1)
}

fn run_seed(usage: &str, rate: f64, extra: &str, seed: u64) -> Summary {
    let dir = common::temp_dir(&format!("knix-{}-{rate}-{seed}", usage.len() + extra.len()));
    let text = format!(
        "[simulation]\nseed = {seed}\nhorizon_s = 120.0\nwarmup_s = 20.0\n[cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = \"a100-80gb\"\n\
         [profiles.k]\nreference_gpu = \"a100-80gb\"\nweights_mib = 100.0\nactivation_mib = 300.0\ncontainer_start_s = 0.0\nframework_init_s = 0.0\n\
         phases = [{{ kind = \"kernel\", solo_ms = 100.0, sm_pct = 100, dram_pct = 0 }}]\n\
         [[functions]]\nname = \"a\"\nprofile = \"k\"\nrate_per_s = {rate}\n[[functions]]\nname = \"b\"\nprofile = \"k\"\nrate_per_s = {rate}\n\
         [workload]\nkind = \"poisson\"\n[policy]\nname = \"knix-vcuda\"\nusage = {usage}\nkeep_alive_s = inf\n{extra}\n"
    );
    common::simulate_file(&dir.join("s.toml"), &text)
}

#[test]
fn sandboxes_are_held_to_their_core_percentage() {
    // Both sandboxes always busy (20 requests/s of 100 ms each), capped at 30 % and 20 %, one
    // sandbox each (max_scale = 1): the GPU is busy about 50 % of the time, and each function's
    // throughput is its cap over 100 ms.
    let caps = "{ a = 30, b = 20 }";
    let extra = "max_scale = 1\nmax_queue = 10";
    let per = |s: &Summary, n: &str| s.functions.iter().find(|f| f.name == n).unwrap().completed as f64 / s.end_s;
    let util = common::over_seeds(|seed| run_seed(caps, 20.0, extra, seed).gpu.utilisation_mean);
    let a = common::over_seeds(|seed| per(&run_seed(caps, 20.0, extra, seed), "a"));
    let b = common::over_seeds(|seed| per(&run_seed(caps, 20.0, extra, seed), "b"));
    println!("utilisation {util}; a {a}/s (cap 3/s), b {b}/s (cap 2/s)");
    assert!(util.low > 0.45 && util.high < 0.55, "{util}");
    assert!(a.low > 2.7 && a.high < 3.3 && b.low > 1.7 && b.high < 2.3, "{a} {b}");
    let s = run(caps, 20.0, extra);
    // Memory is granted in 256 MB units: 400 MiB of profile + 450 MiB of context = 850 → 1024.
    assert_eq!(s.gpus[0].peak_memory_mib, 2048.0);
}

#[test]
fn knative_scales_by_concurrency_within_bounds() {
    // Heavy load, 100 % caps: 5 sandboxes at most per function.
    let s = run("{ a = 100, b = 100 }", 200.0, "max_queue = 200");
    println!("peak sandboxes {}", s.instances.peak_alive);
    assert_eq!(s.instances.peak_alive, 10, "max_scale 5 per function");
    // Light load: min_scale keeps one sandbox per function alive, none more.
    let s = run("{ a = 100, b = 100 }", 0.5, "");
    assert_eq!((s.instances.peak_alive, s.instances.alive_at_end), (2, 2));
}
