//! MIG: isolated slices, layouts that change only on idle GPUs, errors for GPUs without MIG.
//! Properties of the mechanism on exact arrival times (no random input). The published MIG
//! measurements are rows `migperf-*` and `nos-*` of the fidelity report.

mod common;

use gpushare_sim::ScenarioSource;
use gpushare_sim::record::{InvocationRecord, Outcome};

/// (function, exec, setup, gpu, end) of each completed invocation.
type Rec = (String, u64, u64, u32, u64);

/// `n` functions of one 70 ms kernel that needs every SM (no DRAM traffic) on H100s under MIG.
fn run(n: usize, gpus: u32, csv: &str, extra_policy: &str) -> Vec<Rec> {
    let dir = common::temp_dir(&format!("mig-{n}-{}-{}", csv.len(), extra_policy.len()));
    std::fs::write(dir.join("w.csv"), csv).unwrap();
    let mut t = format!(
        "[simulation]\nhorizon_s = 100.0\n[gpu_types.h]\nbase = \"h100-80gb\"\ncontext_create_s = 0.0\n[cluster]\nnodes = 1\ngpus_per_node = {gpus}\ngpu = \"h\"\n\
         [profiles.k]\nreference_gpu = \"h\"\nweights_mib = 0.0\nactivation_mib = 1000.0\ncontainer_start_s = 0.0\nframework_init_s = 0.0\n\
         phases = [{{ kind = \"kernel\", solo_ms = 70.0, sm_pct = 100, dram_pct = 0 }}]\n"
    );
    for i in 0..n {
        t.push_str(&format!("[[functions]]\nname = \"f{i}\"\nprofile = \"k\"\n"));
    }
    t.push_str(&format!("[workload]\nkind = \"csv\"\npath = \"w.csv\"\n[policy]\nname = \"mig\"\nkeep_alive_s = inf\nreconfigure_s = 2.0\n{extra_policy}\n"));
    // The device name must be a MIG-capable built-in: use it directly.
    let t = t
        .replace("gpu = \"h\"", "gpu = \"h100-80gb\"")
        .replace("reference_gpu = \"h\"", "reference_gpu = \"h100-80gb\"");
    let src = ScenarioSource::from_text(&dir.join("s.toml"), &t);
    let completed = |r: &InvocationRecord<'_>| {
        (r.outcome == Outcome::Completed).then(|| {
            let function = r.function.to_string();
            (
                function,
                r.exec.unwrap(),
                r.setup.unwrap(),
                r.gpu.unwrap(),
                r.end.unwrap(),
            )
        })
    };
    common::simulate_keeping(&src, completed).1
}

#[test]
fn seven_isolated_slices_run_on_their_own_sms_without_interference() {
    // Seven functions at once: seven 1g.10gb slices on the one H100, each with 16 of its 132 SMs
    // (not 1/7: `nvidia-smi mig -lgip`), so a 70 ms kernel that needs every SM takes
    // 70 × 132 / 16 = 577.5 ms whether it runs alone or next to six others.
    let csv: String = std::iter::once("time,func".to_string())
        .chain((0..7).map(|i| format!("0,f{i}")))
        .collect::<Vec<_>>()
        .join("\n");
    let recs = run(7, 1, &csv, "");
    assert_eq!(recs.len(), 7);
    assert!(
        recs.iter()
            .all(|(_, exec, _, gpu, _)| *exec == 577_500_000 && *gpu == 0),
        "{recs:?}"
    );
    // They ran side by side: the first placement filled the idle GPU with seven 1g slices, so
    // all seven started together after the one reconfiguration and ended together.
    assert!(recs.iter().all(|r| r.4 == recs[0].4), "{recs:?}");
    // Alone, the same slice gives the same time.
    let alone = run(1, 1, "time,func\n0,f0\n", "");
    assert_eq!(alone[0].1, 577_500_000);
}

#[test]
fn layouts_change_only_on_idle_gpus() {
    // f0 wants 3g.40gb, f1 4g.40gb. f0 starts first and holds the GPU busy until 2.41 s;
    // f1 arriving meanwhile cannot reconfigure a busy GPU and waits; when f0 idles, it is
    // evicted, the GPU reconfigured (2 s), and f1 runs.
    let recs = run(
        2,
        1,
        "time,func\n0,f0\n0.1,f1\n",
        "profiles = { f0 = \"3g.40gb\", f1 = \"4g.40gb\" }",
    );
    let f0 = recs.iter().find(|r| r.0 == "f0").unwrap();
    let f1 = recs.iter().find(|r| r.0 == "f1").unwrap();
    // Setup: 2 s of reconfiguration + the H100's 0.25 s context creation.
    assert_eq!(f0.2, 2_250_000_000, "f0 paid the reconfiguration");
    assert_eq!(f0.1, 154_000_000, "3g.40gb has 60 of 132 SMs: 70 × 132 / 60 = 154 ms");
    assert!(f1.2 >= 2_250_000_000, "f1 paid a reconfiguration too: {f1:?}");
}

#[test]
fn gpus_without_mig_and_bad_profiles_are_refused() {
    let dir = common::temp_dir("mig-bad");
    let base = "[simulation]\nhorizon_s = 10.0\n[cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = \"GPU\"\n[[functions]]\nname = \"r\"\nprofile = \"kaas-resnet50\"\nrate_per_s = 1.0\n[workload]\nkind = \"poisson\"\n[policy]\nname = \"mig\"\n";
    let check = |text: &str, want: &str| {
        std::fs::write(dir.join("m.toml"), text).unwrap();
        let o = common::gpushare(&["validate", dir.join("m.toml").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "expected `{want}` in {err}");
    };
    check(&base.replace("GPU", "v100-16gb"), "v100-16gb has no MIG");
    check(
        &format!("{}profiles = {{ r = \"5g.50gb\" }}\n", base.replace("GPU", "h100-80gb")),
        "unknown MIG profile `5g.50gb` on h100-80gb; valid: 1g.10gb",
    );
}

#[test]
fn a_slice_owns_its_memory_slices_share_of_the_bandwidth() {
    // A kernel that is nearly all DRAM traffic (90 % of the A100's bandwidth alone, few SMs) on
    // a 1g.10gb slice — one memory slice of eight — gets an eighth of the bandwidth: it runs at
    // 1/8 ÷ 0.9 of its speed on the whole GPU. On a 3g.40gb slice (four of eight): 4/8 ÷ 0.9.
    use gpushare_policies::closed_loop::{self, Client, Mechanism};
    use gpushare_sim::device::builtin_device;
    use gpushare_sim::profile::{FunctionProfile, KernelPhase, ModelSource, Phase};
    let a100 = builtin_device("a100-80gb").unwrap();
    let profile = FunctionProfile {
        description: String::new(),
        source: String::new(),
        reference_gpu: "a100-80gb".into(),
        weights_mib: 10.0,
        activation_mib: 10.0,
        model_source: ModelSource::Host,
        container_start_s: 0.0,
        framework_init_s: 0.0,
        host_pre_ms: 0.0,
        host_post_ms: 0.0,
        phases: vec![Phase::Kernel(KernelPhase::new(10.0, 5.0, 90.0))],
        kernel_graph: None,
    };
    for (slice, memory_slices) in [("1g.10gb", 1.0), ("3g.40gb", 4.0)] {
        let client = Client {
            slice: Some(slice.into()),
            ..Client::whole(profile.clone(), a100.clone())
        };
        let m = closed_loop::run(&a100, &[client], Mechanism::Mig, 50).unwrap();
        let rate = 10.0 / m.clients[0].latency_ms;
        let expect = memory_slices / 8.0 / 0.9;
        assert!((rate - expect).abs() < 1e-3, "{slice}: {rate} vs {expect}");
    }
}

#[test]
fn an_a100_seven_slice_instance_has_98_of_its_108_sms() {
    use gpushare_policies::mig::profiles_for;
    let a100 = profiles_for("a100-80gb");
    let seven = a100.iter().find(|p| p.name == "7g.80gb").unwrap();
    assert_eq!((seven.sms, seven.share(108).sms), (98, 98.0 / 108.0));
    let h100 = profiles_for("h100-80gb");
    let sms: Vec<u32> = h100.iter().map(|p| p.sms).collect();
    assert_eq!(sms, [16, 26, 32, 60, 64, 132]);
}
