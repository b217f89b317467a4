//! The replay harness without a GPU: the plain no-driver answer, bad input, an emulated replay
//! through worker processes into the simulator's schema, and `compare SIM_DIR REPLAY_DIR`.
//! (What needs a GPU is in `tests/replay_gpu.rs`, which skips without the driver.)

mod common;

use common::{gpushare_ok, gpushare_refuses};
use serde_json::Value;
use std::path::Path;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn without_a_driver_replay_and_calibrate_say_so_and_exit_2() {
    if gpushare_replay::driver::driver_present() {
        eprintln!("skipped: this machine has the NVIDIA driver");
        return;
    }
    for args in [
        vec!["replay", "scenarios/validation/quickstart.toml"],
        vec!["calibrate"],
        vec!["replay-overhead"],
        vec!["calibrate", "--gpu", "1", "--out", "/nonexistent/x.toml"],
    ] {
        let o = common::gpushare(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim(),
            "error: no NVIDIA driver found: replay needs an NVIDIA GPU; `gpushare run` simulates the same scenario",
            "{args:?}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn what_cannot_be_replayed_is_refused_with_the_reason() {
    let out = common::temp_dir("replay-refused");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["replay", "scenarios/quickstart.toml", "--emulate", "--out", o],
            "the scenario's cluster has 8 GPUs but the replay has 1",
        ),
        (
            &[
                "replay",
                "scenarios/validation/quickstart.toml",
                "--emulate",
                "--policy",
                "{ name = \"mig\" }",
                "--out",
                o,
            ],
            "MIG layout",
        ),
        (
            &[
                "replay",
                "scenarios/validation/contention.toml",
                "--emulate",
                "--policy",
                "{ name = \"exclusive\" }",
                "--out",
                o,
            ],
            "need 4 GPUs, 1 available",
        ),
        (
            &[
                "replay",
                "scenarios/validation/quickstart.toml",
                "--emulate",
                "--time-scale",
                "0",
                "--out",
                o,
            ],
            "--time-scale 0: expected a positive number",
        ),
    ];
    for (args, says) in cases {
        gpushare_refuses(args, says);
    }
    // A calibration of another GPU than the scenario's.
    let cal = out.join("other.toml");
    std::fs::write(&cal, calibration_text(80)).unwrap();
    let (scenario, calibration) = ("scenarios/validation/quickstart.toml", cal.to_str().unwrap());
    gpushare_refuses(
        &[
            "replay",
            scenario,
            "--emulate",
            "--calibration",
            calibration,
            "--out",
            o,
        ],
        "with 80 SMs, the scenario's GPU `h100-80gb` has 132",
    );
}

/// A calibration file as `gpushare calibrate` writes it, for a GPU with `sms` SMs.
fn calibration_text(sms: u32) -> String {
    format!(
        r#"# written by hand for a test
[device]
name = "testgpu"
sms = {sms}
sm_clock_mhz = 1410.0
memory_mib = 40000.0
mem_bandwidth_gbps = 1500.0
l2_mib = 40.0
host_link_gbps = 20.0
context_memory_mib = 400.0
context_create_s = 0.3
fp32_tflops = 19.5
tensor_tflops = 312.0

[replay]
threads_per_block = 1024
spin_iters_per_us = 400.0
stream_gbps = [[0.5, 1200.0], [1.0, 1400.0]]
launch_overhead_us = 3.0

[measured]
gpu_name = "Test GPU"
"#
    )
}

#[test]
fn an_emulated_replay_writes_the_simulators_schema_and_compares() {
    let root = common::temp_dir("replay-emulated");
    let (sim, rep) = (root.join("sim"), root.join("replay"));
    // Kernel server (host code off the worker) and time sharing (a worker per function), the
    // run compressed ten times: 6 s of arrivals each.
    for (label, table) in [
        ("kaas", r#"{ name = "kaas", max_queue = 2 }"#),
        (
            "time-sharing",
            r#"{ name = "time-sharing", keep_alive_s = 100000.0, max_instances = 1, prewarm = true }"#,
        ),
    ] {
        let out = rep.join(label);
        let (scenario, into) = ("scenarios/validation/contention.toml", out.to_str().unwrap());
        let stdout = gpushare_ok(&[
            "replay",
            scenario,
            "--emulate",
            "--time-scale",
            "10",
            "--policy",
            table,
            "--out",
            into,
        ]);
        assert!(
            stdout.contains("emulated: no GPU was used, these are not measurements"),
            "{stdout}"
        );

        // The simulator's files, with every arrival accounted for.
        let summary = json(&out.join("summary.json"));
        let c = &summary["counts"];
        let n = |k: &str| c[k].as_u64().unwrap();
        assert_eq!(
            n("arrivals"),
            n("completed") + n("rejected") + n("failed") + n("unfinished")
        );
        assert!(n("completed") > 100, "{c}");
        let inv = std::fs::read_to_string(out.join("invocations.csv")).unwrap();
        assert_eq!(
            inv.lines().next().unwrap(),
            gpushare_reports::invocations::HEADER.trim_end()
        );
        assert_eq!(inv.lines().count() as u64 - 1, n("arrivals"));
        assert!(out.join("latency_cdf.csv").exists() && out.join("summary.csv").exists());
        // Not measured without NVML: null, never a made-up figure.
        assert!(summary["gpu"]["peak_memory_mib"].is_null() && summary["gpus"][0]["sm_occupancy"].is_null());
        let report = json(&out.join("replay.json"));
        assert_eq!(
            (report["backend"].as_str(), report["measurement"].as_bool()),
            (Some("emulated"), Some(false))
        );
        let workers = report["workers"].as_array().unwrap();
        if label == "kaas" {
            assert_eq!(workers.len(), 1);
            assert_eq!(workers[0]["functions"].as_array().unwrap().len(), 4);
            // max_queue = 2 over four functions at ten times the load: some requests turned away.
            assert!(n("rejected") > 0, "{c}");
            assert_eq!(c["rejected_by_reason"]["queue_full"].as_u64(), Some(n("rejected")));
        } else {
            assert_eq!(workers.len(), 4);
            assert_eq!(n("rejected"), 0);
        }
        // Whole runs: a worker per process, each with its pid.
        assert!(workers.iter().all(|w| w["pid"].as_u64().unwrap() > 0));

        // The prediction, as replay.json says to simulate it.
        let cmd = report["prediction_command"].as_str().unwrap();
        assert!(cmd.contains("simulation.load_scale=10"), "{cmd}");
        let policy = format!("policy={table}");
        let sets = [
            &policy,
            "simulation.load_scale=10",
            "simulation.horizon_s=6",
            "simulation.warmup_s=0.5",
        ];
        gpushare_ok(&common::run_args(scenario, &sim.join(label), &sets));
    }

    // `replay-compare SIM_DIR REPLAY_DIR`, and what it printed and said.
    let (sim_dir, replay_dir, into) = (sim.to_str().unwrap(), rep.to_str().unwrap(), root.to_str().unwrap());
    let compare = |command: &str| {
        let o = common::gpushare(&[command, sim_dir, replay_dir, "--out", into]);
        assert_eq!(code(&o), 0, "{command}: {}", stderr(&o));
        (String::from_utf8_lossy(&o.stdout).into_owned(), stderr(&o))
    };
    let (md, said) = compare("replay-compare");
    assert!(said.is_empty(), "{said}");
    // The old form still works for one release, and says what it is now.
    let (old, said) = compare("compare");
    assert_eq!(old, md);
    assert!(
        said.contains("is now `gpushare replay-compare SIM_DIR REPLAY_DIR`"),
        "{said}"
    );
    assert!(md.starts_with("**The replay was emulated (no GPU)"), "{md}");
    for policy in ["kaas", "time-sharing"] {
        for metric in [
            "p50_latency_s",
            "p99_latency_s",
            "throughput_per_s",
            "gpu_utilisation",
            "peak_memory_mib",
        ] {
            assert!(
                md.contains(&format!("| validation-contention | {policy} | {metric} |")),
                "{policy} {metric}: {md}"
            );
        }
    }
    let csv = std::fs::read_to_string(root.join("comparison.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 5);
    assert!(md.starts_with(&std::fs::read_to_string(root.join("comparison.md")).unwrap()));
}

#[test]
fn compare_dirs_rejects_what_it_cannot_pair() {
    let root = common::temp_dir("compare-dirs");
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    gpushare_refuses(
        &["replay-compare", empty, empty],
        "no summary.json in it or in its subdirectories",
    );
    gpushare_refuses(&["compare", "scenarios/quickstart.toml"], "needs at least one --policy");
    gpushare_refuses(&["compare", "a", "b", "--policy", "mps"], "takes no --policy");
}

#[test]
fn a_calibration_file_is_a_device_profile_the_simulator_loads() {
    let dir = common::temp_dir("device-profile");
    std::fs::write(dir.join("gpu.toml"), calibration_text(108)).unwrap();
    let scenario = |gpu: &str| {
        format!(
            "[simulation]\nhorizon_s = 30.0\n[cluster]\nnodes = 1\ngpus_per_node = 1\ngpu = {gpu}\n\
             [[functions]]\nname = \"r\"\nprofile = \"kaas-resnet50\"\nrate_per_s = 5.0\n\
             [workload]\nkind = \"poisson\"\n[policy]\nname = \"exclusive\"\n"
        )
    };
    let file = dir.join("s.toml");
    let src = gpushare_sim::ScenarioSource::from_text(&file, &scenario(r#"{ profile = "gpu.toml" }"#));
    let s = src.parse().unwrap_or_else(|e| panic!("{e}"));
    let d = &s.devices[s.gpus[0].1];
    assert_eq!(
        (d.name.as_str(), d.sms, d.host_link_gbps, d.context_create_s),
        ("testgpu", 108, 20.0, 0.3)
    );
    assert_eq!(s.device_profiles, [("testgpu".to_string(), dir.join("gpu.toml"))]);
    let summary = common::simulate_file(&file, &scenario(r#"{ profile = "gpu.toml" }"#));
    assert_eq!(summary.gpus[0].device, "testgpu");

    // Errors name the file, the key and what is wrong.
    std::fs::write(dir.join("nodevice.toml"), "[replay]\nthreads_per_block = 1\n").unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        calibration_text(108).replace("sms = 108", "sms = -1"),
    )
    .unwrap();
    for (gpu, says) in [
        (
            r#"{ profile = "missing.toml" }"#,
            "missing.toml: cannot read the device profile",
        ),
        (r#"{ profile = "nodevice.toml" }"#, "no [device] table"),
        (r#"{ profile = "bad.toml" }"#, "bad.toml: [device]"),
        (r#"{ profile = "gpu.toml", extra = 1 }"#, "unknown field `extra`"),
    ] {
        let e = gpushare_sim::ScenarioSource::from_text(&file, &scenario(gpu))
            .parse()
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{gpu}: {e}");
        assert!(e.contains("cluster.gpu"), "{gpu}: {e}");
    }
}

#[test]
fn the_overhead_benchmark_times_both_ways() {
    let s = gpushare_ok(&["replay-overhead", "--emulate", "--function", "kaas-cgemm", "--n", "20"]);
    assert!(
        s.starts_with("kaas-cgemm (emulated), 20 invocations each way: planned 25.025 ms"),
        "{s}"
    );
    assert!(
        s.contains("bare loop p50") && s.contains("through the harness p50"),
        "{s}"
    );
    gpushare_refuses(
        &["replay-overhead", "--emulate", "--function", "nope"],
        "--function nope: not a catalog profile",
    );
}
