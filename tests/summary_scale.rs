//! `summary.json` does not grow with the cluster: per device type it keeps the GPUs' count and
//! spread, and lists each GPU only up to 1,024 GPUs unless asked (`[output] gpu_detail`).
//! Behaviour checks of the output (no model).

mod common;

use gpushare_sim::summary::Spread;

fn cluster(groups: &str, detail: &str) -> String {
    format!(
        r#"[simulation]
horizon_s = 20.0
seed = 1

[cluster]
{groups}

[[functions]]
name = "r"
profile = "kaas-resnet50"
rate_per_s = 40.0

[workload]
kind = "poisson"

[policy]
name = "exclusive"

[output]
gpu_detail = "{detail}"
"#
    )
}

const BIG: &str = "nodes = 260\ngpus_per_node = 4\ngpu = \"a100-80gb\"";
const MIXED: &str = "[[cluster.node_groups]]\ncount = 1\ngpus_per_node = 2\ngpu = \"v100-16gb\"\n\
                     [[cluster.node_groups]]\ncount = 1\ngpus_per_node = 3\ngpu = \"a100-80gb\"";

#[test]
fn gpus_are_listed_up_to_the_limit_unless_asked() {
    let auto = common::simulate(&cluster(BIG, "auto"));
    assert!(auto.gpus.is_empty(), "1,040 GPUs listed under auto");
    assert_eq!(auto.gpu_types.len(), 1);
    assert_eq!(auto.gpu_types[0].count, 1040);
    let json = serde_json::to_value(&auto).unwrap();
    assert!(json.get("gpus").is_none() && json.get("gpu_types").is_some());
    let all = common::simulate(&cluster(BIG, "all"));
    assert_eq!(all.gpus.len(), 1040);
    assert_eq!(all.gpu_types, auto.gpu_types, "the types do not depend on the listing");
    let small = common::simulate(&cluster(MIXED, "auto"));
    assert_eq!(small.gpus.len(), 5);
    assert!(common::simulate(&cluster(MIXED, "none")).gpus.is_empty());
}

#[test]
fn each_device_type_summarises_its_own_gpus() {
    let s = common::simulate(&cluster(MIXED, "all"));
    let names: Vec<&str> = s.gpu_types.iter().map(|t| t.device.as_str()).collect();
    assert_eq!(names, ["v100-16gb", "a100-80gb"]);
    for t in &s.gpu_types {
        let mine: Vec<f64> = s
            .gpus
            .iter()
            .filter(|g| g.device == t.device)
            .map(|g| g.utilisation)
            .collect();
        assert_eq!(t.count, mine.len());
        assert_eq!(t.utilisation, Spread::of(mine.clone()));
        let mean = mine.iter().sum::<f64>() / mine.len() as f64;
        assert!((t.utilisation.mean - mean).abs() < 1e-12);
        assert!(t.utilisation.min <= t.utilisation.p50 && t.utilisation.p50 <= t.utilisation.max);
    }
    let csv = gpushare_reports::summary_files::summary_csv(&s);
    assert!(csv.contains("gpu_type:a100-80gb,count,3\n"), "{csv}");
}

#[test]
fn spreads_use_nearest_rank_percentiles() {
    let s = Spread::of((1..=10).map(f64::from).collect());
    assert_eq!(
        (s.min, s.p10, s.p50, s.p90, s.max, s.mean),
        (1.0, 1.0, 5.0, 9.0, 10.0, 5.5)
    );
    assert_eq!(Spread::of(Vec::new()).max, 0.0);
    assert!(Spread::of(vec![1.0, f64::NAN]).mean.is_nan());
}
