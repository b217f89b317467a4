//! Time slicing: exact slices behave as stated, and the fluid approximation agrees with them
//! (properties of the model; the agreement is checked on one seed's arrivals, the same for
//! both modes).

mod common;

use gpushare_sim::record::{InvocationRecord, Outcome};
use gpushare_sim::{ScenarioSource, Summary};

/// `n` functions of one kernel that fills the GPU (100 % SM) of `solo_ms` each, on one GPU, time-shared.
fn scenario(n: usize, solo_ms: f64, workload: &str, mode: &str, horizon_s: f64) -> String {
    let mut t = format!(
        "[simulation]\nseed = 5\nhorizon_s = {horizon_s}\nwarmup_s = 10.0\n[gpu_types.g]\nbase = \"a100-80gb\"\ncontext_create_s = 0.0\n\
         [cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = \"g\"\n[profiles.k]\nreference_gpu = \"g\"\nweights_mib = 0.0\nactivation_mib = 100.0\n\
         container_start_s = 0.0\nframework_init_s = 0.0\nphases = [{{ kind = \"kernel\", solo_ms = {solo_ms}, sm_pct = 100, dram_pct = 0 }}]\n"
    );
    for i in 0..n {
        t.push_str(&format!("[[functions]]\nname = \"f{i}\"\nprofile = \"k\"\n"));
    }
    t.push_str(workload);
    t.push_str(&format!(
        "\n[policy]\nname = \"time-sharing\"\nmode = \"{mode}\"\nslice_ms = 2.0\nswitch_us = 50.0\nkeep_alive_s = inf\nmax_instances = 1\n"
    ));
    t
}

/// The summary, and (function, exec ns) of each completion.
fn run(text: &str) -> (Summary, Vec<(String, u64)>) {
    let dir = common::temp_dir(&format!("ts-{}", text.len()));
    let completed =
        |r: &InvocationRecord<'_>| (r.outcome == Outcome::Completed).then(|| (r.function.to_string(), r.exec.unwrap()));
    common::simulate_keeping(&ScenarioSource::from_text(&dir.join("s.toml"), text), completed)
}

#[test]
fn exact_slices_alternate_with_switch_costs() {
    // Two 20 ms kernels arrive together at t = 0 (instances already warm after a first round).
    let dir = common::temp_dir("ts-exact");
    std::fs::write(dir.join("w.csv"), "time,func\n0,f0\n0,f1\n1,f0\n1,f1\n").unwrap();
    let wl = format!("[workload]\nkind = \"csv\"\npath = \"{}\"", dir.join("w.csv").display());
    let (_, ends) = run(&scenario(2, 20.0, &wl, "exact", 20.0));
    // Second round (both warm, both arrive at 1 s): f0 runs 10 slices of 2 ms, f1 9, with 19
    // switches of 50 µs between: f0 ends at 38.95 ms; then a switch and f1's last slice: 41 ms.
    let second: Vec<u64> = ends[2..].iter().map(|(_, e)| *e).collect();
    assert_eq!(second, vec![38_950_000, 41_000_000], "{ends:?}");
    // Fluid: both progress at ½ × 2/(2 + 0.05) and end together at 41 ms.
    let (_, ends) = run(&scenario(2, 20.0, &wl, "fluid", 20.0));
    assert!(ends[2..].iter().all(|(_, e)| *e == 41_000_000), "{ends:?}");
}

#[test]
fn fluid_and_exact_agree_on_mean_latency() {
    // Stated workload: 4 functions, Poisson 6 requests/s each, one 25 ms kernel per request
    // (GPU load 0.6), slices of 2 ms with 50 µs switches, 2,000 s.
    let wl = "[workload]\nkind = \"poisson\"\nrate_per_s = 6.0";
    let (fluid, _) = run(&scenario(4, 25.0, wl, "fluid", 2000.0));
    let (exact, _) = run(&scenario(4, 25.0, wl, "exact", 2000.0));
    let (a, b) = (fluid.latency_s.end_to_end.mean, exact.latency_s.end_to_end.mean);
    let err = (a - b).abs() / b;
    println!(
        "mean end-to-end: fluid {a:.5} s, exact {b:.5} s, {:.2} % apart",
        err * 100.0
    );
    assert!(err < 0.05);
    assert_eq!(fluid.counts.arrivals, exact.counts.arrivals);
    // Contexts never overlap: SM occupancy equals utilisation for full-GPU kernels.
    assert!((exact.gpu.sm_occupancy_mean - exact.gpu.utilisation_mean).abs() < 1e-9);
}

#[test]
fn contexts_sharing_a_gpu_allocate_it_once() {
    // Four contexts kept on one GPU for the whole measured window: the GPU is allocated once,
    // not four times (each context claims the whole GPU, but they take turns on it).
    let wl = "[workload]\nkind = \"poisson\"\nrate_per_s = 5.0";
    let (s, _) = run(&scenario(4, 20.0, wl, "fluid", 60.0));
    let window = s.end_s - s.warmup_s;
    assert!(
        s.gpu.gpu_seconds_allocated <= window * 1.0 + 1e-9,
        "{} GPU-s allocated in {window} s on one GPU",
        s.gpu.gpu_seconds_allocated
    );
    assert!(
        s.gpu.gpu_seconds_allocated > 0.99 * window,
        "{}",
        s.gpu.gpu_seconds_allocated
    );
    assert!(s.gpu.gpu_seconds_idle <= s.gpu.gpu_seconds_allocated);
}
