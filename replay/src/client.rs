//! Starting worker processes and talking to one synchronously: the command every worker is
//! started with ([`command`]), and [`WorkerClient`], which the calibration's probes and the
//! overhead benchmark drive request by request. (The replay itself reads its workers' replies
//! on threads of its own, from processes started with the same [`command`].)

use crate::protocol::{CUDA_ENV, Done, Ready, Reply, Request, Setup, line};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// How long a worker may take to create its context, load its kernels and allocate its
/// memory: seconds on any GPU; a worker that takes longer is hung (under MPS, a client the
/// daemon never serves) and would otherwise hold the whole run.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// `EXE replay-worker` with the harness's CUDA environment and piped stdin and stdout, in a
/// process group of its own: Ctrl-C reaches the orchestrator only, which stops workers in order.
pub fn command(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.arg("replay-worker")
        .envs(CUDA_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0);
    c
}

/// Writes one protocol line and flushes it.
pub fn send_line<T: serde::Serialize>(to: &mut ChildStdin, msg: &T) -> Result<(), String> {
    to.write_all(line(msg).as_bytes())
        .and_then(|_| to.flush())
        .map_err(|e| format!("writing to a worker: {e}"))
}

/// How long one request may take before its worker counts as hung: far beyond any planned
/// invocation (tens of milliseconds) or calibration kernel (tens of milliseconds, queued by
/// the hundred).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One worker process, driven request by request. Its replies are read on a thread of its own,
/// so that every wait has a timeout: a worker that never answers cannot hold the caller.
pub struct WorkerClient {
    child: Child,
    stdin: ChildStdin,
    replies: std::sync::mpsc::Receiver<Result<Reply, String>>,
    pub ready: Ready,
    next_id: u64,
    _registered: crate::signals::Registered,
}

/// Reads `out` line by line into `tx` until the worker's stdout closes.
fn forward(out: ChildStdout, tx: std::sync::mpsc::Sender<Result<Reply, String>>) {
    let mut out = BufReader::new(out);
    loop {
        let r = read(&mut out);
        let end = r.is_err();
        if tx.send(r).is_err() || end {
            return;
        }
    }
}

impl WorkerClient {
    /// Starts a worker with `setup` (its stderr is this process's) and waits until it is ready,
    /// at most [`SETUP_TIMEOUT`].
    pub fn start(exe: &Path, setup: &Setup, env: &[(String, String)]) -> Result<WorkerClient, String> {
        Self::start_within(exe, setup, env, SETUP_TIMEOUT)
    }

    /// [`WorkerClient::start`] with a timeout of one's own: a worker not ready by then is
    /// killed and the error says so.
    pub fn start_within(
        exe: &Path,
        setup: &Setup,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<WorkerClient, String> {
        let mut child = command(exe)
            .envs(env.iter().cloned())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting a worker ({}): {e}", exe.display()))?;
        let registered = crate::signals::register_worker(child.id());
        let mut stdin = child.stdin.take().expect("piped");
        let out = child.stdout.take().expect("piped");
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || forward(out, tx));
        let mut client = WorkerClient {
            child,
            stdin: {
                send_line(&mut stdin, setup)?;
                stdin
            },
            replies,
            ready: Ready {
                pid: 0,
                sms: 0,
                context_s: 0.0,
                kernels: String::new(),
                resident_bytes: 0,
                extra_bytes: 0,
                cublas: false,
            },
            next_id: 0,
            _registered: registered,
        };
        client.ready = match client.next_reply(timeout, "ready")? {
            Reply::Ready(r) => r,
            Reply::SetupFailed { error } => return Err(format!("a worker could not set up: {error}")),
            other => return Err(format!("a worker answered {other:?}")),
        };
        Ok(client)
    }

    /// The next reply within `timeout`; a worker silent that long is killed and the error says
    /// what it was waited for.
    fn next_reply(&mut self, timeout: Duration, waiting_for: &str) -> Result<Reply, String> {
        match self.replies.recv_timeout(timeout) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err("a worker exited".into()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.kill();
                Err(format!(
                    "a worker (pid {}) was not {waiting_for} within {} s: its CUDA context or a kernel never came back \
                     (under MPS: a client the daemon does not serve); it was killed",
                    self.child.id(),
                    timeout.as_secs_f64()
                ))
            }
        }
    }

    fn kill(&mut self) {
        // SAFETY: kill(2) on the process group this process created for the worker.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Sends one request for function `func` without waiting for it.
    pub fn send(&mut self, func: u32) -> Result<(), String> {
        let req = Request::Run {
            id: self.next_id,
            func,
            scale: 1.0,
        };
        self.next_id += 1;
        send_line(&mut self.stdin, &req)
    }

    /// The next reply, which must be a completion, within [`REQUEST_TIMEOUT`].
    pub fn recv(&mut self) -> Result<Done, String> {
        self.recv_within(REQUEST_TIMEOUT)
    }

    /// [`WorkerClient::recv`] with a timeout of one's own.
    pub fn recv_within(&mut self, timeout: Duration) -> Result<Done, String> {
        match self.next_reply(timeout, "done with a request")? {
            Reply::Done(d) => Ok(d),
            Reply::Failed { error, .. } => Err(format!("a worker failed: {error}")),
            other => Err(format!("a worker answered {other:?}")),
        }
    }

    /// One request, waited for.
    pub fn run(&mut self, func: u32) -> Result<Done, String> {
        self.send(func)?;
        self.recv()
    }

    /// One request, waited for at most `timeout`.
    pub fn run_within(&mut self, func: u32, timeout: Duration) -> Result<Done, String> {
        self.send(func)?;
        self.recv_within(timeout)
    }

    /// Tells the worker to quit and waits for it (at most 10 s, then kills it).
    pub fn quit(mut self) {
        let _ = send_line(&mut self.stdin, &Request::Quit);
        if crate::wait_for(&mut self.child, Duration::from_secs(10)).is_none() {
            self.kill();
        }
    }
}

fn read(out: &mut BufReader<ChildStdout>) -> Result<Reply, String> {
    let mut l = String::new();
    let n = out.read_line(&mut l).map_err(|e| format!("reading a worker: {e}"))?;
    if n == 0 {
        return Err("a worker exited".into());
    }
    serde_json::from_str(&l).map_err(|e| format!("a worker wrote `{}`: {e}", l.trim()))
}
