//! FaST-GShare's trends (`scenarios/fastgshare_*.toml`) against time sharing.
//!
//! Validation of trends: the FaST profiles are fitted to the FaST-Profiler table only
//! (`gpushare fit`), never to these experiments; the offered load is the scenario's own (the
//! paper does not state it), so the paper's ×3.15 is a reference, not a target. Asserted on the
//! mean over 10 seeds with its 95 % confidence interval.

mod common;

use gpushare_sim::{ScenarioSource, Summary};

fn run(file: &str, policy: Option<&str>) -> Summary {
    run_seed(file, policy, 1)
}

fn run_seed(file: &str, policy: Option<&str>, seed: u64) -> Summary {
    let path = common::repo_root().join("scenarios").join(file);
    let mut src = ScenarioSource::load(&path).unwrap();
    src.set(&format!("simulation.seed={seed}")).unwrap();
    let mut sc = src.parse().unwrap_or_else(|e| panic!("{e}"));
    if let Some(p) = policy {
        sc.policy.name = p.to_string();
        sc.policy.params.remove("configs");
        sc.policy.params.remove("autoscale");
    }
    common::simulate_scenario(&sc)
}

#[test]
fn spatio_temporal_sharing_beats_time_sharing() {
    let fast = run("fastgshare_spatial.toml", None);
    let ts = run("fastgshare_spatial.toml", Some("time-sharing"));
    let per = |s: &Summary| {
        s.functions
            .iter()
            .map(|f| format!("{} {:.1}/s", f.name, f.completed as f64 / s.end_s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "seed 1, fast-gshare: {:.1} completions/s ({})",
        fast.throughput_per_s,
        per(&fast)
    );
    println!(
        "seed 1, time-sharing: {:.1} completions/s ({})",
        ts.throughput_per_s,
        per(&ts)
    );
    let both = |seed| {
        (
            run_seed("fastgshare_spatial.toml", None, seed),
            run_seed("fastgshare_spatial.toml", Some("time-sharing"), seed),
        )
    };
    let t = common::over_seeds(|seed| {
        let (f, s) = both(seed);
        f.throughput_per_s / s.throughput_per_s
    });
    let o = common::over_seeds(|seed| {
        let (f, s) = both(seed);
        f.gpu.sm_occupancy_mean / s.gpu.sm_occupancy_mean
    });
    println!("throughput ×{t} (paper ×3.15)\nSM occupancy ×{o} (paper ×3.13)");
    assert!(t.low >= 2.0, "{t}");
    assert!(o.low >= 2.0, "{o}");
}

#[test]
fn consolidation_fits_one_gpu_and_meets_resnets_slo() {
    use gpushare_sim::record::{InvocationRecord, Outcome};
    // Of each ResNet completion after 60 s: whether it was over the SLO.
    let resnet_late = |r: &InvocationRecord<'_>| {
        let measured = r.function == "resnet" && r.outcome == Outcome::Completed && r.arrival >= 60_000_000_000;
        measured.then(|| r.end.unwrap() - r.arrival > 69_000_000)
    };
    let path = common::repo_root().join("scenarios/fastgshare_consolidation.toml");
    let late = common::over_seeds(|seed| {
        let mut src = ScenarioSource::load(&path).unwrap();
        src.set(&format!("simulation.seed={seed}")).unwrap();
        let (s, over_slo) = common::simulate_keeping(&src, resnet_late);
        let (n, late) = (over_slo.len(), over_slo.iter().filter(|&&l| l).count());
        assert_eq!(s.instances.peak_alive, 8, "4 ResNet + 2 RNN-T + 2 BERT");
        assert_eq!(s.counts.rejected, 0);
        assert!(n > 5000);
        late as f64 / n as f64 * 100.0
    });
    println!("8 instances on 1 GPU; ResNet requests over its 69 ms SLO: {late} %");
    assert!(late.high <= 1.0, "{late}");
}

/// ResNet on one V100 under the autoscaler; arrivals from `csv` (time,func).
fn autoscaled(csv: &str, horizon: f64) -> Summary {
    let dir = common::temp_dir(&format!("fast-auto-{}", csv.len()));
    std::fs::write(dir.join("w.csv"), csv).unwrap();
    let text = format!(
        "[simulation]\nhorizon_s = {horizon}\nwarmup_s = 20.0\n[cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = \"v100-16gb\"\n\
         [[functions]]\nname = \"resnet\"\nprofile = \"fast-resnet\"\n[workload]\nkind = \"csv\"\npath = \"w.csv\"\n\
         [policy]\nname = \"fast-gshare\"\nkeep_alive_s = inf\n"
    );
    common::simulate_file(&dir.join("s.toml"), &text)
}

fn steady(rate: f64, until: f64) -> String {
    let n = (rate * until) as usize;
    let mut s = String::from("time,func\n");
    for i in 0..n {
        s.push_str(&format!("{:.6},resnet\n", i as f64 / rate));
    }
    s
}

#[test]
fn autoscaler_follows_the_load_up_and_down() {
    // 60 requests/s for 120 s: more than one instance of the most efficient configuration can
    // serve, so it scales out, and keeps up.
    let s = autoscaled(&steady(60.0, 120.0), 120.0);
    println!(
        "steady: {:.1} completions/s, {} instances at peak, {} unfinished",
        s.throughput_per_s, s.instances.peak_alive, s.counts.unfinished
    );
    assert!((s.throughput_per_s - 60.0).abs() < 3.0);
    assert!(s.instances.peak_alive >= 2);
    assert!(s.counts.unfinished < 60);
    // The load stops at 60 s; with an infinite keep-alive only the autoscaler removes instances.
    let s = autoscaled(&steady(60.0, 60.0), 200.0);
    println!(
        "after the load: {} alive at the end of {} created",
        s.instances.alive_at_end, s.instances.created
    );
    assert_eq!(s.counts.unfinished, 0);
    assert_eq!(s.instances.alive_at_end, 0);
}
