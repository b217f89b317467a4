//! A private MPS control daemon: its own pipe and log directories under a fresh temporary
//! folder, so it never meets a system-wide daemon or another user's; started with
//! `nvidia-cuda-mps-control -d` and always told to `quit` when the guard is dropped — at the end
//! of a replay, on an error, or after a signal (the orchestrator turns SIGINT, SIGTERM and
//! SIGHUP into an orderly stop, and a second signal quits every registered daemon itself: see
//! [`crate::signals`]). Worker processes join it through [`MpsDaemon::client_env`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The control program's usual name; `GPUSHARE_MPS_CONTROL` names another (a path).
pub const CONTROL: &str = "nvidia-cuda-mps-control";

/// How long the control program may take to answer one command.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for `child` at most `timeout`, then kills it.
fn wait_within(mut child: std::process::Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    crate::wait_for(&mut child, timeout).ok_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        format!("no answer within {} s", timeout.as_secs())
    })
}

/// The control program this process uses.
pub fn control_program() -> PathBuf {
    std::env::var_os("GPUSHARE_MPS_CONTROL").map_or_else(|| PathBuf::from(CONTROL), PathBuf::from)
}

/// A running private MPS control daemon.
pub struct MpsDaemon {
    root: PathBuf,
    pipe: PathBuf,
    log: PathBuf,
    running: bool,
    /// Lets a second signal quit the daemon even if this guard never drops.
    _registered: Option<crate::signals::Registered>,
}

fn control(pipe: &Path, log: &Path) -> Command {
    let mut c = Command::new(control_program());
    c.env("CUDA_MPS_PIPE_DIRECTORY", pipe)
        .env("CUDA_MPS_LOG_DIRECTORY", log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

impl MpsDaemon {
    /// Starts a daemon; `Err` says why MPS is unavailable on this machine.
    pub fn start() -> Result<MpsDaemon, String> {
        let root = std::env::temp_dir().join(format!(
            "gpushare-mps-{}-{}",
            std::process::id(),
            crate::protocol::now_ns()
        ));
        let (pipe, log) = (root.join("pipe"), root.join("log"));
        for d in [&pipe, &log] {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let mut daemon = MpsDaemon {
            root,
            pipe,
            log,
            running: false,
            _registered: None,
        };
        // The daemon forks away from the program started here and may keep the descriptors it
        // inherited: give it files, not pipes, or waiting for the program would wait for the
        // daemon.
        let err_path = daemon.root.join("start.stderr");
        let err_file = std::fs::File::create(&err_path).map_err(|e| format!("creating {}: {e}", err_path.display()))?;
        let child = control(&daemon.pipe, &daemon.log)
            .arg("-d")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err_file))
            .spawn()
            .map_err(|e| format!("MPS unavailable: cannot run `{CONTROL} -d` ({e}); is the CUDA MPS control program installed and on PATH?"))?;
        let status = wait_within(child, QUERY_TIMEOUT).map_err(|e| format!("MPS unavailable: `{CONTROL} -d`: {e}"))?;
        if !status.success() {
            return Err(format!(
                "MPS unavailable: `{CONTROL} -d` failed ({status}): {}{}",
                std::fs::read_to_string(&err_path).unwrap_or_default().trim(),
                daemon.log_tail()
            ));
        }
        daemon.running = true;
        daemon._registered = Some(crate::signals::register_daemon(control_program(), daemon.pipe.clone()));
        // The daemon answers once it listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(e) = daemon.query("get_server_list") {
            if Instant::now() > deadline {
                return Err(format!(
                    "MPS unavailable: the daemon did not answer in 10 s ({e}){}",
                    daemon.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    /// Sends one command to the daemon; its answer, or why there was none (the control program
    /// gets [`QUERY_TIMEOUT`] to answer, then is killed).
    pub fn query(&self, command: &str) -> Result<String, String> {
        let mut child = control(&self.pipe, &self.log)
            .spawn()
            .map_err(|e| format!("running `{CONTROL}`: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(format!("{command}\n").as_bytes());
        }
        if crate::wait_for(&mut child, QUERY_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{command}`: `{CONTROL}` did not answer within {} s",
                QUERY_TIMEOUT.as_secs()
            ));
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("running `{CONTROL}`: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "`{command}` failed ({}): {text} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Checks that clients really joined: MPS falls back to plain contexts, silently, when a
    /// client cannot reach the daemon, and a replay would then measure time sharing under
    /// MPS's name.
    pub fn check_clients_joined(&self) -> Result<(), String> {
        match self.query("get_server_list") {
            Ok(list) if list.lines().any(|l| l.trim().parse::<u32>().is_ok()) => Ok(()),
            Ok(_) => Err(format!(
                "MPS unavailable: the workers started without an MPS server (they fell back to ordinary contexts){}",
                self.log_tail()
            )),
            Err(e) => Err(format!("MPS unavailable: {e}{}", self.log_tail())),
        }
    }

    /// The environment of a client process, with its active-thread percentage.
    pub fn client_env(&self, active_thread_percentage: Option<f64>) -> Vec<(String, String)> {
        let mut env = vec![
            ("CUDA_MPS_PIPE_DIRECTORY".to_string(), self.pipe.display().to_string()),
            ("CUDA_MPS_LOG_DIRECTORY".to_string(), self.log.display().to_string()),
        ];
        if let Some(p) = active_thread_percentage {
            env.push(("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE".to_string(), format!("{p}")));
        }
        env
    }

    /// The end of the daemon's control log, for error messages.
    pub fn log_tail(&self) -> String {
        crate::last_lines(&self.log.join("control.log"), 5).map_or(String::new(), |l| format!("; MPS control log: {l}"))
    }

    /// Tells the daemon to quit and waits for it to go (up to 10 s).
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let _ = self.query("quit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.query("get_server_list").is_ok() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the MPS daemon under {} did not quit within 10 s; stop it with `echo quit | CUDA_MPS_PIPE_DIRECTORY={} {CONTROL}`",
                    self.root.display(),
                    self.pipe.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.root);
        Ok(())
    }
}

impl Drop for MpsDaemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("warning: {e}");
        }
    }
}
