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
        sc.policy.params.remove("autoscale");
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
