//! FaST-GShare's trends (`scenarios/fastgshare_*.toml`) against time sharing.

mod common;

use gpushare_sim::{ScenarioSource, Simulation, Summary};

fn run(file: &str, policy: Option<&str>) -> Summary {
    let path = common::repo_root().join("scenarios").join(file);
    let mut sc = ScenarioSource::load(&path)
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(p) = policy {
        sc.policy.name = p.to_string();
        sc.policy.params.remove("configs");
    }
    let policy = gpushare_policies::build(&sc).unwrap_or_else(|e| panic!("{e:?}"));
    Simulation::new(&sc, policy, Box::new(gpushare_sim::record::NullSink))
        .unwrap()
        .run()
        .unwrap()
        .summary
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
        "fast-gshare: {:.1} completions/s, SM occupancy {:.3} ({})",
        fast.throughput_per_s,
        fast.gpu.sm_occupancy_mean,
        per(&fast)
    );
    println!(
        "time-sharing: {:.1} completions/s, SM occupancy {:.3} ({})",
        ts.throughput_per_s,
        ts.gpu.sm_occupancy_mean,
        per(&ts)
    );
    let (t, o) = (
        fast.throughput_per_s / ts.throughput_per_s,
        fast.gpu.sm_occupancy_mean / ts.gpu.sm_occupancy_mean,
    );
    println!("throughput ×{t:.2} (paper ×3.15), SM occupancy ×{o:.2} (paper ×3.13)");
    assert!(t >= 2.0, "{t}");
    assert!(o >= 2.0, "{o}");
}
