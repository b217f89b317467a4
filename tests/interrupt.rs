//! An interrupted command leaves no temporary behind and nothing half-written under a final name.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_during_trace_generate_removes_its_temporaries() {
    let dir = common::temp_dir("interrupt-generate");
    let out = dir.join("trace");
    let bin = std::env::var_os("GPUSHARE_BIN")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_gpushare")), Into::into);
    let mut child = Command::new(bin)
        .args(["trace", "generate", "--functions", "100000", "--days", "2", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is writing a temporary.
    let tmp = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .map(|r| r.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".tmp")))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tmp(&out) {
        assert!(Instant::now() < deadline, "no temporary appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on a child of this test.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!tmp(&out), "a temporary was left behind");
    // Whatever is there under a final name is whole: each file ends with a full line.
    for e in std::fs::read_dir(&out).unwrap().flatten() {
        let text = std::fs::read(e.path()).unwrap();
        assert!(text.ends_with(b"\n"), "{} is cut short", e.path().display());
    }
}
