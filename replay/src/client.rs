//! Starting worker processes and talking to one synchronously: the command every worker is
//! started with ([`command`]), and [`WorkerClient`], which the calibration's probes and the
//! overhead benchmark drive request by request. (The replay itself reads its workers' replies
//! on threads of its own, from processes started with the same [`command`].)

use crate::protocol::{CUDA_ENV, Done, Ready, Reply, Request, Setup, line};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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

/// One worker process, driven request by request.
pub struct WorkerClient {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    pub ready: Ready,
    next_id: u64,
}

impl WorkerClient {
    /// Starts a worker with `setup` (its stderr is this process's) and waits until it is ready.
    pub fn start(exe: &Path, setup: &Setup, env: &[(String, String)]) -> Result<WorkerClient, String> {
        let mut child = command(exe)
            .envs(env.iter().cloned())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting a worker ({}): {e}", exe.display()))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        send_line(&mut stdin, setup)?;
        let ready = match read(&mut out)? {
            Reply::Ready(r) => r,
            Reply::SetupFailed { error } => return Err(format!("a worker could not set up: {error}")),
            other => return Err(format!("a worker answered {other:?}")),
        };
        Ok(WorkerClient {
            child,
            stdin,
            out,
            ready,
            next_id: 0,
        })
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

    /// The next reply, which must be a completion.
    pub fn recv(&mut self) -> Result<Done, String> {
        match read(&mut self.out)? {
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

    /// Tells the worker to quit and waits for it.
    pub fn quit(mut self) {
        let _ = send_line(&mut self.stdin, &Request::Quit);
        drop(self.stdin);
        let _ = self.child.wait();
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
