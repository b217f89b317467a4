//! The replay harness on a real GPU. Each test returns at once (and says so) on a machine
//! without the NVIDIA driver, so CI stays green without a GPU; on a GPU machine they run with
//! the rest (`cargo test --release --test replay_gpu`, or the test binary carried to the
//! machine: see reports/validation/README.md).

mod common;

use std::path::Path;

fn gpu() -> bool {
    let yes = gpushare_replay::driver::driver_present();
    if !yes {
        eprintln!("skipped: no NVIDIA driver on this machine");
    }
    yes
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn calibrate(dir: &Path) -> gpushare_replay::calibration::Calibration {
    let file = dir.join("device.toml");
    ok(&common::gpushare(&[
        "calibrate",
        "--no-mps",
        "--out",
        file.to_str().unwrap(),
    ]));
    gpushare_replay::calibration::Calibration::load(&file).unwrap()
}

#[test]
fn calibration_measures_a_plausible_device() {
    if !gpu() {
        return;
    }
    let c = calibrate(&common::temp_dir("gpu-calibrate"));
    assert!(c.device.sms >= 16 && c.measured.sms == c.device.sms, "{:?}", c.measured);
    // The spin kernel's grid restriction gives the SM share: an eighth of the SMs runs the same
    // work at about an eighth of the speed.
    let (share, speed) = c.measured.spin_speed_by_share[0];
    assert!(
        (speed / share - 1.0).abs() < 0.15,
        "{:?}",
        c.measured.spin_speed_by_share
    );
    // One block keeps an SM busy: two blocks per SM take about twice as long.
    assert!(
        c.measured.spin_two_blocks_per_sm_ratio > 1.7,
        "{}",
        c.measured.spin_two_blocks_per_sm_ratio
    );
    let full = c.replay.stream_gbps.last().unwrap().1;
    assert!(
        full > 0.5 * c.device.mem_bandwidth_gbps && full < 1.05 * c.device.mem_bandwidth_gbps,
        "{full}"
    );
    assert!(c.device.host_link_gbps > 5.0 && c.device.context_create_s > 0.0);
}

#[test]
fn a_single_tenant_replay_runs_the_profiles_solo_time() {
    if !gpu() {
        return;
    }
    let dir = common::temp_dir("gpu-replay");
    calibrate(&dir);
    let profile = format!("cluster.gpu={{ profile = \"{}\" }}", dir.join("device.toml").display());
    // The same 20 s of the quickstart, replayed and simulated on the calibrated device.
    let both = |command: &str, out: &Path| {
        ok(&common::gpushare(&[
            command,
            "scenarios/validation/quickstart.toml",
            "--set",
            &profile,
            "--set",
            "simulation.horizon_s=20",
            "--set",
            "simulation.warmup_s=3",
            "--out",
            out.to_str().unwrap(),
        ]))
    };
    let json =
        |path: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap() };
    let out = dir.join("replay");
    both("replay", &out);
    let summary = json(&out.join("summary.json"));
    let exec = summary["latency_s"]["execution"]["p50"].as_f64().unwrap();
    // ResNet-50's solo time on the calibrated device, as the simulator compiles it.
    assert!(!both("run", &dir.join("sim")).is_empty());
    let predicted = json(&dir.join("sim/summary.json"));
    let solo = predicted["latency_s"]["execution"]["p50"].as_f64().unwrap();
    assert!(
        (exec / solo - 1.0).abs() < 0.10,
        "measured execution p50 {exec} s against the profile's {solo} s"
    );
    let report = json(&out.join("replay.json"));
    assert_eq!(report["measurement"].as_bool(), Some(true));
    assert!(report["nvml_samples"].as_u64().unwrap() > 100, "{report}");
    assert!(!summary["gpu"]["peak_memory_mib"].is_null());
}

#[test]
fn a_private_mps_daemon_starts_and_always_quits() {
    if !gpu() {
        return;
    }
    match gpushare_replay::mps::MpsDaemon::start() {
        Ok(mut d) => {
            d.stop().unwrap();
            // Stopped: a second stop is a no-op, and the daemon no longer answers.
            d.stop().unwrap();
            assert!(d.query("get_server_list").is_err());
        }
        Err(e) => eprintln!("MPS unavailable here, nothing to check: {e}"),
    }
}
