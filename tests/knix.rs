//! KNIX vCUDA caps: a sandbox is held to its core percentage; memory comes in 256 MB units;
//! Knative scales sandboxes by concurrency within [min, max].

mod common;

use gpushare_sim::Summary;

fn run(usage: &str, rate: f64, extra: &str) -> Summary {
    let dir = common::temp_dir(&format!("knix-{}-{rate}", usage.len() + extra.len()));
    let text = format!(
        "[simulation]\nhorizon_s = 120.0\nwarmup_s = 20.0\n[cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = \"a100-80gb\"\n\
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
    let s = run("{ a = 30, b = 20 }", 20.0, "max_scale = 1\nmax_queue = 10");
    let per = |n: &str| s.functions.iter().find(|f| f.name == n).unwrap().completed as f64 / s.end_s;
    println!(
        "utilisation {:.3}; a {:.2}/s (cap 3/s), b {:.2}/s (cap 2/s)",
        s.gpu.utilisation_mean,
        per("a"),
        per("b")
    );
    assert!((s.gpu.utilisation_mean - 0.5).abs() < 0.05);
    assert!((per("a") - 3.0).abs() < 0.3 && (per("b") - 2.0).abs() < 0.3);
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
