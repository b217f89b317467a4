//! The worker processes: starting each with its set-up (and a thread that forwards what it
//! says), waiting until every one is ready, checking what they report, and quitting them —
//! killed if they do not exit, also when the replay returns early.

use super::ReplayOptions;
use crate::client::send_line;
use crate::driver::{NO_DRIVER, ReplayError};
use crate::mps::MpsDaemon;
use crate::plan::{FunctionPlan, WorkerSpec};
use crate::protocol::{Ready, Reply, Request, Setup, now_ns};
use crate::signals;
use gpushare_sim::device::DeviceSpec;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What workers send the orchestrator.
pub(super) enum Msg {
    Reply(usize, Reply),
    Garbage(usize, String),
    Closed(usize),
}

pub(super) struct Worker {
    pub spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    pub log: PathBuf,
    pub outstanding: u32,
    pub ready: Option<Ready>,
    pub completed: u64,
    _registered: signals::Registered,
}

/// The worker processes; killed on drop if they have not exited.
pub(super) struct Workers(pub Vec<Worker>);

impl Workers {
    pub(super) fn quit_all(&mut self, wait: Duration) {
        for w in &mut self.0 {
            if let Some(mut s) = w.stdin.take() {
                let _ = send_line(&mut s, &Request::Quit);
            }
        }
        let deadline = now_ns() + wait.as_nanos() as u64;
        for w in &mut self.0 {
            loop {
                match w.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if now_ns() < deadline => std::thread::sleep(Duration::from_millis(10)),
                    Ok(None) => {
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Sends `req` to worker `w`.
    pub(super) fn send(&mut self, w: usize, req: &Request) -> Result<(), String> {
        let stdin = self.0[w].stdin.as_mut().ok_or("worker closed")?;
        send_line(stdin, req).map_err(|e| format!("worker {w}: {e}"))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.quit_all(Duration::from_secs(5));
    }
}

pub(super) fn log_tail(path: &Path) -> String {
    crate::last_lines(path, 5).map_or(String::new(), |l| format!(" (its stderr, {}: {l})", path.display()))
}

/// Whether a worker is told the device's whole SM count: not an MPS client capped below 100 %.
pub(super) fn sees_whole_gpu(spec: &WorkerSpec) -> bool {
    spec.mps_percentage.is_none_or(|p| p >= 100.0)
}

/// Starts a worker for each of `specs` (under `daemon`, if any), each told to set up its
/// functions' plans (from `split`); what they say goes to `tx`.
pub(super) fn launch(
    specs: &[WorkerSpec],
    opts: &ReplayOptions,
    split: &[(u64, u64, FunctionPlan)],
    threads_per_block: u32,
    daemon: Option<&MpsDaemon>,
    tx: mpsc::Sender<Msg>,
) -> Result<Workers, ReplayError> {
    let mut workers = Workers(Vec::new());
    for spec in specs {
        let log = opts.out.join("workers").join(format!("worker-{}.stderr", spec.id));
        let stderr =
            std::fs::File::create(&log).map_err(|e| ReplayError::Failed(format!("creating {}: {e}", log.display())))?;
        let mut cmd = crate::client::command(&opts.worker_exe);
        cmd.stderr(Stdio::from(stderr));
        if let Some(d) = daemon {
            cmd.envs(d.client_env(spec.mps_percentage));
        }
        let mut child = cmd.spawn().map_err(|e| {
            ReplayError::Failed(format!(
                "starting worker {} ({}): {e}",
                spec.id,
                opts.worker_exe.display()
            ))
        })?;
        let stdout = child.stdout.take().expect("piped");
        let mut stdin = child.stdin.take().expect("piped");
        let setup = Setup {
            worker: spec.clone(),
            backend: opts.backend,
            functions: spec
                .functions
                .iter()
                .map(|&f| (f, split[f as usize].2.clone()))
                .collect(),
            threads_per_block,
        };
        send_line(&mut stdin, &setup).map_err(|e| ReplayError::Failed(format!("worker {}: {e}", spec.id)))?;
        forward(stdout, spec.id, tx.clone());
        let registered = signals::register_worker(child.id());
        workers.0.push(Worker {
            spec: spec.clone(),
            _registered: registered,
            child,
            stdin: Some(stdin),
            log,
            outstanding: 0,
            ready: None,
            completed: 0,
        });
    }
    Ok(workers)
}

/// A thread that sends what worker `id` writes to `tx`, line by line, then that it closed.
fn forward(stdout: ChildStdout, id: usize, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            let msg = match serde_json::from_str::<Reply>(&l) {
                Ok(r) => Msg::Reply(id, r),
                Err(_) => Msg::Garbage(id, l),
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::Closed(id));
    });
}

/// Waits until every worker is set up, at most `timeout`.
pub(super) fn wait_ready(
    workers: &mut Workers,
    rx: &mpsc::Receiver<Msg>,
    timeout: Duration,
) -> Result<(), ReplayError> {
    let setup_deadline = now_ns() + timeout.as_nanos() as u64;
    while workers.0.iter().any(|w| w.ready.is_none()) {
        if signals::interrupted() {
            return Err(ReplayError::Failed(
                "interrupted while the workers were setting up".into(),
            ));
        }
        let left = setup_deadline.saturating_sub(now_ns());
        if left == 0 {
            let late: Vec<String> = workers
                .0
                .iter()
                .filter(|w| w.ready.is_none())
                .map(|w| format!("worker {}{}", w.spec.id, log_tail(&w.log)))
                .collect();
            return Err(ReplayError::Failed(format!(
                "not ready after {} s (a CUDA context that never came up; under MPS, clients the daemon does not serve): {}",
                timeout.as_secs(),
                late.join("; ")
            )));
        }
        match rx.recv_timeout(Duration::from_nanos(left).min(Duration::from_millis(100))) {
            Ok(Msg::Reply(w, Reply::Ready(r))) => workers.0[w].ready = Some(r),
            Ok(msg) => return Err(not_ready(workers, msg)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ReplayError::Failed("every worker exited while setting up".into()));
            }
        }
    }
    Ok(())
}

/// The error a message other than `Ready` makes during the set-up.
fn not_ready(workers: &Workers, msg: Msg) -> ReplayError {
    match msg {
        Msg::Reply(w, Reply::SetupFailed { error }) => {
            let kind = if error == NO_DRIVER {
                ReplayError::Unavailable
            } else {
                ReplayError::Failed
            };
            kind(format!(
                "worker {w} (GPU {}) could not set up: {error}",
                workers.0[w].spec.gpu
            ))
        }
        Msg::Reply(w, other) => ReplayError::Failed(format!("worker {w} answered {other:?} before it was ready")),
        Msg::Garbage(w, l) => ReplayError::Failed(format!("worker {w} wrote something not in the protocol: {l}")),
        Msg::Closed(w) => ReplayError::Failed(format!(
            "worker {w} exited while setting up{}",
            log_tail(&workers.0[w].log)
        )),
    }
}

/// Checks what the ready workers report against `dev`; notes the kernel buffers they hold.
pub(super) fn check_ready(workers: &Workers, dev: &DeviceSpec, notes: &mut Vec<String>) -> Result<(), ReplayError> {
    for w in &workers.0 {
        let r = w.ready.as_ref().expect("all ready");
        // An MPS client below 100 % active threads is told a reduced SM count: only a client
        // that may use the whole GPU sees the device's own (what each saw is in the report).
        if sees_whole_gpu(&w.spec) && r.sms != 0 && r.sms != dev.sms {
            return Err(ReplayError::Input(format!(
                "GPU {} has {} SMs, the scenario's device `{}` {}: calibrate this GPU (`gpushare calibrate --gpu {}`) and load its profile",
                w.spec.gpu, r.sms, dev.name, dev.sms, w.spec.gpu
            )));
        }
    }
    for w in &workers.0 {
        let r = w.ready.as_ref().expect("all ready");
        if r.extra_bytes > 0 {
            notes.push(format!(
                "worker {} holds {:.0} MiB of kernel buffers beyond its functions' weights and activations",
                w.spec.id,
                r.extra_bytes as f64 / gpushare_sim::device::MIB as f64
            ));
        }
    }
    Ok(())
}
