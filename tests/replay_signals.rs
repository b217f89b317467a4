//! The replay stops in order on SIGTERM as on Ctrl-C, and a second signal still ends every
//! worker (emulated backend: no GPU needed). Also the probe and the co-location matrix run
//! through the harness without a GPU.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start_replay(out: &std::path::Path) -> Child {
    let bin = std::env::var_os("GPUSHARE_BIN")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_gpushare")), Into::into);
    Command::new(bin)
        .args([
            "replay",
            "scenarios/validation/contention.toml",
            "--emulate",
            "--policy",
            r#"{ name = "time-sharing", keep_alive_s = 100000.0, max_instances = 1, prewarm = true }"#,
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(common::repo_root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pids whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The fields after the command's closing parenthesis: state, ppid, …
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        if rest.split_whitespace().nth(1).and_then(|x| x.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// True while `pid` runs (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Waits until `child` has its four workers running, and returns their pids.
fn workers_of(child: &Child) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = children(child.id());
        if w.len() >= 4 || Instant::now() > deadline {
            return w;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn term(pid: u32) {
    // SAFETY: kill(2) on a child of this test.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
}

fn wait_gone(pids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    pids.iter().copied().filter(|&p| alive(p)).collect()
}

#[test]
fn sigterm_stops_a_replay_in_order_and_keeps_what_it_recorded() {
    let out = common::temp_dir("replay-sigterm");
    let child = start_replay(&out);
    let workers = workers_of(&child);
    assert_eq!(workers.len(), 4, "time sharing: one worker per function");
    std::thread::sleep(Duration::from_millis(1500));
    term(child.id());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("stopped early: interrupted"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("replay.json")).unwrap()).unwrap();
    assert!(report["aborted"].as_str().unwrap().contains("interrupted"), "{report}");
    assert!(out.join("invocations.csv").exists());
    assert_eq!(wait_gone(&workers), Vec::<u32>::new(), "workers outlived the replay");
}

#[test]
fn a_second_signal_still_ends_every_worker() {
    let out = common::temp_dir("replay-sigterm-twice");
    let mut child = start_replay(&out);
    let workers = workers_of(&child);
    assert_eq!(workers.len(), 4);
    // Stopped workers never answer `quit`: the orderly stop would wait 10 s for them, so only
    // the forced path ends the command promptly. (Stopped workers would also be hung up by the
    // kernel once their group is orphaned; that the forced path kills registered workers and
    // quits registered MPS daemons itself is `signals`' unit test.)
    for &w in &workers {
        // SAFETY: kill(2) on the test's grandchildren.
        unsafe { libc::kill(w as i32, libc::SIGSTOP) };
    }
    term(child.id());
    std::thread::sleep(Duration::from_millis(500));
    let forced = Instant::now();
    term(child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the second signal forces the exit");
    assert!(forced.elapsed() < Duration::from_secs(5), "{:?}", forced.elapsed());
    assert_eq!(wait_gone(&workers), Vec::<u32>::new(), "workers outlived a forced stop");
}

#[test]
fn the_probe_and_the_colocation_matrix_run_without_a_gpu() {
    let dir = common::temp_dir("probe-colocate");
    let env = dir.join("probe.env");
    common::gpushare_ok(&["probe", "--emulate", "--env", env.to_str().unwrap()]);
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.contains("PROBE_CONTEXT=1") && text.contains("PROBE_MPS=1"),
        "{text}"
    );

    let out = dir.to_str().unwrap();
    common::gpushare_ok(&[
        "colocate",
        "--emulate",
        "--cell-s",
        "0.05",
        "--label",
        "emu",
        "--out",
        out,
    ]);
    let csv = std::fs::read_to_string(dir.join("colocation.csv")).unwrap();
    // Alone: 5 kernels under time slicing, 100 %, 50 %, and 25 % and 75 %; pairs: 15 + 15 + 15 + 25.
    assert_eq!(csv.lines().filter(|l| l.contains(",alone,")).count(), 25);
    assert_eq!(csv.lines().filter(|l| l.contains(",pair,")).count(), 70);
    assert!(csv.lines().skip(1).all(|l| l.starts_with("emu,emulated,")));
    // Emulated figures never enter the dataset.
    common::gpushare_refuses(&["colocate", "--add-to-dataset", out], "only measurements on a GPU");
}
