//! Stopping in order on a signal. SIGINT, SIGTERM and SIGHUP (a `timeout`, a closed terminal, a
//! job scheduler) all raise one flag that long procedures poll ([`interrupted`],
//! [`check_interrupted`]) so that their guards — private MPS daemons, worker processes — clean
//! up as they return. A second signal means the user (or a `timeout --kill-after`) insists: the
//! process then quits every registered MPS daemon and kills every registered worker's process
//! group itself ([`emergency_cleanup`]) before it exits with 130, because a daemon runs in a
//! process session of its own and would outlive the command, and workers sit in process groups
//! of their own that the terminal's signal does not reach.
//!
//! What may need cleaning up is registered here while it lives: [`register_daemon`] and
//! [`register_worker`] return a guard that unregisters on drop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
static LIVE: Mutex<Vec<(u64, Live)>> = Mutex::new(Vec::new());

/// Something that must not outlive this process.
#[derive(Clone, Debug)]
enum Live {
    /// A private MPS control daemon: its control program and pipe directory.
    Daemon { control: PathBuf, pipe: PathBuf },
    /// A worker process, leader of its own process group.
    Worker { pid: u32 },
}

/// Unregisters what it stands for when dropped.
#[derive(Debug)]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        lock().retain(|(t, _)| *t != self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(u64, Live)>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn register(what: Live) -> Registered {
    let token = NEXT_TOKEN.fetch_add(1, Ordering::SeqCst);
    lock().push((token, what));
    Registered(token)
}

/// Registers a running MPS daemon, reachable through `control` with `pipe`.
pub fn register_daemon(control: PathBuf, pipe: PathBuf) -> Registered {
    register(Live::Daemon { control, pipe })
}

/// Registers a worker process (the leader of its own process group).
pub fn register_worker(pid: u32) -> Registered {
    register(Live::Worker { pid })
}

/// Installs (once) the handler of SIGINT, SIGTERM and SIGHUP.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("signalled again: quitting MPS daemons and killing workers now");
                emergency_cleanup();
                std::process::exit(130);
            }
            eprintln!("signalled: stopping workers and shutting MPS down (signal again to force)");
        });
    });
}

/// True once a signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err` once a signal arrived: for long procedures to stop at their next step.
pub fn check_interrupted() -> Result<(), String> {
    if interrupted() {
        Err("interrupted (a signal: Ctrl-C, SIGTERM or SIGHUP)".into())
    } else {
        Ok(())
    }
}

/// Kills every registered worker's process group and tells every registered MPS daemon to
/// quit (waiting up to 5 s for each answer); returns how many of each it reached.
pub fn emergency_cleanup() -> (usize, usize) {
    let live: Vec<Live> = lock().iter().map(|(_, l)| l.clone()).collect();
    let (mut workers, mut daemons) = (0, 0);
    for l in &live {
        if let Live::Worker { pid } = l {
            // SAFETY: kill(2) on a process group this process created; no memory involved.
            if unsafe { libc::kill(-(*pid as i32), libc::SIGKILL) } == 0 {
                workers += 1;
            }
        }
    }
    for l in &live {
        if let Live::Daemon { control, pipe } = l
            && quit_daemon(control, pipe, Duration::from_secs(5))
        {
            daemons += 1;
        }
    }
    (workers, daemons)
}

/// Sends `quit` to the daemon behind `pipe`; true when the control program accepted it in time.
pub fn quit_daemon(control: &std::path::Path, pipe: &std::path::Path, wait: Duration) -> bool {
    let child = Command::new(control)
        .env("CUDA_MPS_PIPE_DIRECTORY", pipe)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"quit\n");
    }
    match crate::wait_for(&mut child, wait) {
        Some(status) => status.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    #[test]
    fn emergency_cleanup_kills_registered_workers_and_quits_registered_daemons() {
        let dir = std::env::temp_dir().join(format!("gpushare-signals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A stand-in for nvidia-cuda-mps-control that writes down what it was told.
        let control = dir.join("control");
        std::fs::write(
            &control,
            "#!/bin/sh\nread cmd\necho \"$cmd $CUDA_MPS_PIPE_DIRECTORY\" >> \"$(dirname \"$0\")/told\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut worker = Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
        let w = register_worker(worker.id());
        let d = register_daemon(control.clone(), dir.join("pipe"));
        let (workers, daemons) = emergency_cleanup();
        assert!(workers >= 1 && daemons >= 1, "{workers} {daemons}");
        let status = worker.wait().unwrap();
        assert!(!status.success(), "the worker was killed");
        let told = std::fs::read_to_string(dir.join("told")).unwrap();
        assert!(told.contains(&format!("quit {}", dir.join("pipe").display())), "{told}");
        drop((w, d));
        assert!(
            lock()
                .iter()
                .all(|(_, l)| !matches!(l, Live::Worker { pid } if *pid == worker.id())),
            "unregistered on drop"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
