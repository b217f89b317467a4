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

#[test]
fn consolidation_fits_one_gpu_and_meets_resnets_slo() {
    use gpushare_sim::record::{InvocationRecord, Outcome, RecordSink};
    use std::cell::RefCell;
    use std::rc::Rc;
    struct Resnet(Rc<RefCell<(u64, u64)>>);
    impl RecordSink for Resnet {
        fn record(&mut self, r: &InvocationRecord<'_>) -> std::io::Result<()> {
            if r.function == "resnet" && r.outcome == Outcome::Completed && r.arrival >= 60_000_000_000 {
                let mut t = self.0.borrow_mut();
                t.0 += 1;
                t.1 += u64::from(r.end.unwrap() - r.arrival > 69_000_000);
            }
            Ok(())
        }
    }
    let path = common::repo_root().join("scenarios/fastgshare_consolidation.toml");
    let sc = ScenarioSource::load(&path).unwrap().parse().unwrap();
    let policy = gpushare_policies::build(&sc).unwrap();
    let tally = Rc::new(RefCell::new((0, 0)));
    let s = Simulation::new(&sc, policy, Box::new(Resnet(tally.clone())))
        .unwrap()
        .run()
        .unwrap()
        .summary;
    let (n, late) = *tally.borrow();
    let ratio = late as f64 / n as f64;
    println!(
        "{} instances on 1 GPU; ResNet: {n} measured, {late} over 69 ms ({:.2} %)",
        s.instances.peak_alive,
        ratio * 100.0
    );
    assert_eq!(s.instances.peak_alive, 8, "4 ResNet + 2 RNN-T + 2 BERT");
    assert_eq!(s.counts.rejected, 0);
    assert!(n > 5000);
    assert!(ratio <= 0.01, "{ratio}");
}
