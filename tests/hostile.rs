//! The hostile-input corpus (`tests/hostile/*.toml`, described in `tests/hostile/README.md`):
//! every case a bad input with the exit code and the words of the error it must give — never a
//! panic, a hang or a silent result.

mod common;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long any case may run.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    args: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    exit: i32,
    #[serde(default)]
    stderr: Vec<String>,
    /// Text the command's stdout must contain (what a successful run reports).
    #[serde(default)]
    stdout: Vec<String>,
    /// Paths (relative to the case's folder) that must not exist afterwards.
    #[serde(default)]
    absent: Vec<String>,
    /// The command's stdout is read only up to this many bytes, then closed (a reader that goes
    /// away, as `| head -c N` does).
    #[serde(default)]
    close_stdout_after: Option<usize>,
    /// With `close_stdout_after`: the command reports its progress on stderr by design (the
    /// replay: what runs, while its results go to stdout), so stderr may hold lines, but never
    /// an error or a panic.
    #[serde(default)]
    progress_on_stderr: bool,
    /// An open defect: the case states the right outcome, the tool does not give it yet. The
    /// run checks that it still fails (and says so, so that a fix removes this line); the
    /// closing note counts them.
    #[serde(default)]
    known_defect: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

const SCENARIO: &str = r#"name = "hostile"
[simulation]
seed = 1
horizon_s = 10.0

[cluster]
nodes = 1
gpus_per_node = 1
gpu = "v100-16gb"

[[functions]]
name = "a"
profile = "kaas-resnet50"
rate_per_s = 1.0

[workload]
kind = "poisson"

[policy]
name = "exclusive"
"#;

fn scenario_csv() -> String {
    SCENARIO
        .replace("rate_per_s = 1.0\n", "")
        .replace("kind = \"poisson\"", "kind = \"csv\"\npath = \"t.csv\"")
}

fn corpus() -> Vec<Case> {
    let dir = common::repo_root().join("tests/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let c: Corpus = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        cases.extend(c.case);
    }
    cases
}

fn substitute(arg: &str, dir: &Path) -> String {
    arg.replace("{scenario:csv}", dir.join("scenario-csv.toml").to_str().unwrap())
        .replace("{scenario}", dir.join("scenario.toml").to_str().unwrap())
        .replace("{dir}", dir.to_str().unwrap())
}

/// Runs one case; `Err` says what was wrong.
fn run(case: &Case, root: &Path) -> Result<(), String> {
    let dir = root.join(&case.id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("scenario.toml"), SCENARIO).unwrap();
    std::fs::write(dir.join("scenario-csv.toml"), scenario_csv()).unwrap();
    for (name, text) in &case.files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let bin =
        std::env::var_os("GPUSHARE_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gpushare")), PathBuf::from);
    let args: Vec<String> = case.args.iter().map(|a| substitute(a, &dir)).collect();
    let mut child = Command::new(bin)
        .args(&args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let limit = case.close_stdout_after;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        match limit {
            Some(n) => {
                let _ = (&mut stdout).take(n as u64).read_to_end(&mut buf);
                drop(stdout);
            }
            None => {
                let _ = stdout.read_to_end(&mut buf);
            }
        }
        buf
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not finish within {TIMEOUT:?}: {args:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let err = err_reader.join().unwrap();
    let code = status.code();
    if let Some(n) = case.close_stdout_after {
        // A reader that went away: the command ends quietly (SIGPIPE's default, or exit 0).
        use std::os::unix::process::ExitStatusExt;
        let quiet = status.signal() == Some(libc::SIGPIPE) || code == Some(0);
        let stderr_ok = if case.progress_on_stderr {
            !err.contains("error") && !err.contains("panicked")
        } else {
            err.is_empty()
        };
        if !quiet || !stderr_ok {
            return Err(format!("after {n} bytes read: {status:?}, stderr: {err}"));
        }
        return Ok(());
    }
    if code != Some(case.exit) {
        return Err(format!("exit {code:?}, expected {}; stderr: {err}", case.exit));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        return Err(format!("panicked: {err}"));
    }
    if case.exit != 0 && !err.starts_with("error: ") {
        return Err(format!("stderr does not start with `error: `: {err}"));
    }
    for want in &case.stderr {
        let want = substitute(want, &dir);
        if !err.contains(&want) {
            return Err(format!("stderr lacks `{want}`: {err}"));
        }
    }
    for want in &case.stdout {
        let want = substitute(want, &dir);
        if !out.contains(&want) {
            return Err(format!("stdout lacks `{want}`: {out}"));
        }
    }
    for a in &case.absent {
        if dir.join(a).exists() {
            return Err(format!("`{a}` exists afterwards"));
        }
    }
    Ok(())
}

#[test]
fn every_hostile_case_gets_its_clear_error() {
    let cases = corpus();
    let mut ids = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(ids.insert(c.id.clone()), "duplicate case id {}", c.id);
    }
    let root = common::temp_dir("hostile");
    let failures = std::sync::Mutex::new(Vec::new());
    let known = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(c) = cases.get(i) else { return };
                    match (run(c, &root), &c.known_defect) {
                        (Ok(()), None) => {}
                        (Err(e), None) => failures.lock().unwrap().push(format!("{}: {e}", c.id)),
                        (Err(_), Some(_)) => known.lock().unwrap().push(c.id.clone()),
                        (Ok(()), Some(_)) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: passes now: remove its known_defect line", c.id)),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let mut by_exit: BTreeMap<i32, usize> = BTreeMap::new();
    for c in &cases {
        *by_exit.entry(c.exit).or_default() += 1;
    }
    let known = known.into_inner().unwrap();
    eprintln!(
        "{} hostile cases, by expected exit code: {by_exit:?}; {} open defects (known_defect)",
        cases.len(),
        known.len()
    );
    if std::env::var_os("HOSTILE_LIST_FAILURES").is_some() {
        for f in &failures {
            println!("FAILING {f}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
