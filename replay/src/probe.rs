//! `gpushare probe`: what this machine can replay, found out in seconds before anything long
//! runs — the driver, the GPU and its compute mode, which cuBLAS and NVRTC load, whether a
//! worker's context comes up, whether two processes may share the GPU (time slicing), and
//! whether an MPS client joins a private daemon. Each check that can hang runs under a timeout,
//! so a broken MPS setup costs a minute, not a run; the device script turns what fails into
//! skipped steps with a note.
//!
//! Also the compute-mode rule the replay applies ([`check_compute_mode`]): the harness leaves
//! the GPU's mode alone and skips what the mode forbids.

use crate::client::WorkerClient;
use crate::libs::LibrariesReport;
use crate::mps::MpsDaemon;
use crate::nvml::DeviceInfo;
use crate::plan::{FunctionPlan, Mechanism, Op, PlannedOp};
use crate::protocol::{Backend, Setup};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What to probe.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub gpu: u32,
    pub backend: Backend,
    pub worker_exe: PathBuf,
    /// How long a worker may take to come up, and to run the probe's request.
    pub timeout: Duration,
    /// Skip the MPS check (no daemon is started).
    pub no_mps: bool,
}

/// One capability: whether it works, and why not.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn yes(detail: impl Into<String>) -> Check {
        Check {
            ok: true,
            detail: detail.into(),
        }
    }

    fn no(detail: impl Into<String>) -> Check {
        Check {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// `probe.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Probe {
    pub backend: String,
    pub device: Option<DeviceInfo>,
    pub libraries: Option<LibrariesReport>,
    /// A worker process created its context and loaded its kernels.
    pub context: Check,
    /// The SM count that worker saw, and where its kernels came from.
    pub sms: u32,
    pub kernels: String,
    /// Several processes may share the GPU (CUDA's time slicing).
    pub time_slicing: Check,
    /// A client at 50 % active threads joined a private MPS daemon.
    pub mps: Check,
    /// The SM count that client was told (MPS reports its share).
    pub mps_sms_seen_at_50_pct: Option<u32>,
    /// cuBLAS loads (GEMM-like phases need it).
    pub cublas: Check,
}

impl Probe {
    /// The probe as shell assignments (`PROBE_MPS=1` …), for scripts to `source`.
    pub fn shell(&self) -> String {
        let flag = |c: &Check| u8::from(c.ok);
        format!(
            "PROBE_CONTEXT={}\nPROBE_TIME_SLICING={}\nPROBE_MPS={}\nPROBE_CUBLAS={}\nPROBE_SMS={}\n",
            flag(&self.context),
            flag(&self.time_slicing),
            flag(&self.mps),
            flag(&self.cublas),
            self.sms
        )
    }
}

/// How many processes the compute mode lets share one GPU: `None` for any number.
pub fn processes_allowed(compute_mode: &str) -> Option<usize> {
    match compute_mode {
        "Prohibited" => Some(0),
        "ExclusiveProcess" | "ExclusiveThread" => Some(1),
        _ => None,
    }
}

/// Whether `mechanism` with `processes` worker processes on one GPU can run under
/// `compute_mode` (NVML's name). Under an exclusive mode MPS still runs: its server is the one
/// process holding the GPU.
pub fn check_compute_mode(compute_mode: &str, mechanism: Mechanism, processes: usize) -> Result<(), String> {
    match processes_allowed(compute_mode) {
        Some(0) => Err(format!(
            "the GPU's compute mode is {compute_mode}: no process may create a context on it (the harness leaves modes alone)"
        )),
        Some(n) if mechanism != Mechanism::Mps && processes > n => Err(format!(
            "the GPU's compute mode is {compute_mode}: one process at a time, but the {mechanism:?} layout puts {processes} \
             worker processes on one GPU; replay it on a GPU in the Default mode (the harness leaves modes alone)"
        )),
        _ => Ok(()),
    }
}

/// A worker with one small spin kernel and no memory of note.
fn probe_setup(opts: &ProbeOptions, pct: Option<f64>) -> Setup {
    let spin = FunctionPlan {
        name: "probe".into(),
        ops: vec![PlannedOp {
            op: Op::Spin { blocks: 1, iters: 1000 },
            ns: 1_000,
        }],
        resident_bytes: 1 << 20,
        activation_bytes: 0,
        planned_ns: 1_000,
    };
    Setup::one_lane(0, opts.gpu, opts.backend, vec![spin], pct, 128)
}

/// Starts a probe worker, runs one request on it, asks `while_up` (as long as it is up), and
/// quits it: the SM count it saw and where its kernels came from.
fn worker_comes_up(
    opts: &ProbeOptions,
    env: &[(String, String)],
    pct: Option<f64>,
    while_up: impl FnOnce() -> Result<(), String>,
) -> Result<(u32, String), String> {
    let mut w = WorkerClient::start_within(&opts.worker_exe, &probe_setup(opts, pct), env, opts.timeout)?;
    let checked = w.run_within(0, opts.timeout).map(|_| ()).and_then(|_| while_up());
    let seen = (w.ready.sms, w.ready.kernels.clone());
    w.quit();
    checked.map(|_| seen)
}

fn probe_mps(opts: &ProbeOptions, p: &mut Probe) {
    if opts.no_mps {
        p.mps = Check::no("not probed (--no-mps)");
        return;
    }
    if opts.backend == Backend::Emulated {
        p.mps = Check::yes("emulated: no daemon; MPS layouts run on the emulated backend");
        return;
    }
    let mode = p.device.as_ref().map_or("", |d| d.compute_mode.as_str());
    if processes_allowed(mode) == Some(0) {
        p.mps = Check::no(format!("compute mode {mode}"));
        return;
    }
    let daemon = match MpsDaemon::start() {
        Ok(d) => d,
        Err(e) => {
            p.mps = Check::no(e);
            return;
        }
    };
    // The client must have joined while it runs: MPS falls back to a plain context silently.
    let joined = || daemon.check_clients_joined();
    p.mps = match worker_comes_up(opts, &daemon.client_env(Some(50.0)), Some(50.0), joined) {
        Err(e) => Check::no(format!(
            "a client at 50 % did not come up or did not join: {e}{}",
            daemon.log_tail()
        )),
        Ok((sms, _)) => {
            p.mps_sms_seen_at_50_pct = Some(sms);
            Check::yes(format!("a client at 50 % joined and was told {sms} SMs"))
        }
    };
}

/// Probes GPU `opts.gpu` (or, emulated, the harness alone).
pub fn probe(opts: &ProbeOptions) -> Probe {
    let mut p = Probe {
        backend: opts.backend.name().to_string(),
        ..Probe::default()
    };
    if opts.backend == Backend::Cuda {
        if !crate::driver::driver_present() {
            p.context = Check::no(crate::NO_DRIVER);
            p.time_slicing = Check::no("no driver");
            p.mps = Check::no("no driver");
            p.cublas = Check::no("no driver");
            return p;
        }
        // SAFETY: the command line calls this before any thread or CUDA call of its own.
        unsafe { crate::protocol::pin_device_order() };
        crate::signals::install();
        p.device = crate::nvml::device_info(opts.gpu).ok();
        let libs = crate::libs::report();
        p.cublas = match &libs.cublas {
            Some(path) => Check::yes(path.clone()),
            None => Check::no(crate::libs::searched()),
        };
        p.libraries = Some(libs);
    } else {
        p.cublas = Check::yes("emulated: GEMM-like phases are sleeps");
    }
    p.context = match worker_comes_up(opts, &[], None, || Ok(())) {
        Ok((sms, kernels)) => {
            (p.sms, p.kernels) = (sms, kernels.clone());
            Check::yes(format!("context up, {sms} SMs, kernels from {kernels}"))
        }
        Err(e) => Check::no(e),
    };
    let mode = p
        .device
        .as_ref()
        .map_or("Default".to_string(), |d| d.compute_mode.clone());
    p.time_slicing = match check_compute_mode(&mode, Mechanism::TimeSlicing, 2) {
        Ok(()) if p.context.ok => Check::yes(format!("compute mode {mode}")),
        Ok(()) => Check::no("no context comes up"),
        Err(e) => Check::no(e),
    };
    if p.context.ok {
        probe_mps(opts, &mut p);
    } else {
        p.mps = Check::no("no context comes up");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compute_mode_decides_what_can_share_a_gpu() {
        assert!(check_compute_mode("Default", Mechanism::TimeSlicing, 4).is_ok());
        let e = check_compute_mode("ExclusiveProcess", Mechanism::TimeSlicing, 4).unwrap_err();
        assert!(
            e.contains("ExclusiveProcess") && e.contains("4 worker processes"),
            "{e}"
        );
        assert!(check_compute_mode("ExclusiveProcess", Mechanism::Exclusive, 1).is_ok());
        assert!(
            check_compute_mode("ExclusiveProcess", Mechanism::Mps, 4).is_ok(),
            "MPS's server is the one process"
        );
        assert!(check_compute_mode("Prohibited", Mechanism::Exclusive, 1).is_err());
        assert!(check_compute_mode("Prohibited", Mechanism::Mps, 1).is_err());
    }

    #[test]
    fn the_shell_form_has_one_flag_per_capability() {
        let p = Probe {
            context: Check::yes("up"),
            time_slicing: Check::yes("Default"),
            mps: Check::no("no daemon"),
            cublas: Check::yes("/x/libcublas.so.13"),
            sms: 132,
            ..Probe::default()
        };
        assert_eq!(
            p.shell(),
            "PROBE_CONTEXT=1\nPROBE_TIME_SLICING=1\nPROBE_MPS=0\nPROBE_CUBLAS=1\nPROBE_SMS=132\n"
        );
    }
}
