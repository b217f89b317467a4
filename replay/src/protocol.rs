//! What the orchestrator and its worker processes say to each other: one JSON object per line,
//! requests on the worker's stdin, replies on its stdout. Times are `CLOCK_MONOTONIC`
//! nanoseconds ([`now_ns`]), one clock for every process of the machine, so a worker's start
//! and end times need no conversion.

use crate::plan::{FunctionPlan, WorkerSpec};
use serde::{Deserialize, Serialize};

/// Which backend a worker runs its operations on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Real kernels and copies on the GPU.
    Cuda,
    /// No GPU: each operation is a sleep of its planned duration. Exercises the harness
    /// (processes, dispatch, records) on any machine; never a measurement.
    Emulated,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cuda => "cuda",
            Backend::Emulated => "emulated",
        }
    }
}

/// The first line a worker reads: who it is and what it serves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    pub worker: WorkerSpec,
    pub backend: Backend,
    /// Plans of the functions it serves, with their scenario indices.
    pub functions: Vec<(u32, FunctionPlan)>,
    /// Threads per block of the spin and stream kernels.
    pub threads_per_block: u32,
}

impl Setup {
    /// A worker with one lane on GPU `gpu` serving `plans` as functions 0, 1, … (the probes, the
    /// calibration, the co-location matrix and the overhead benchmark start such workers).
    pub fn one_lane(
        id: usize,
        gpu: u32,
        backend: Backend,
        plans: Vec<FunctionPlan>,
        mps_percentage: Option<f64>,
        threads_per_block: u32,
    ) -> Setup {
        Setup {
            worker: WorkerSpec {
                id,
                gpu,
                functions: (0..plans.len() as u32).collect(),
                mps_percentage,
                lanes: 1,
            },
            backend,
            functions: plans.into_iter().enumerate().map(|(i, p)| (i as u32, p)).collect(),
            threads_per_block,
        }
    }
}

/// A request to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Run one invocation of function `func` (scenario index), its operations stretched by
    /// `scale` (a traced duration against the profile's; 1 otherwise).
    Run { id: u64, func: u32, scale: f64 },
    /// Finish the work in hand and exit.
    Quit,
}

/// A worker's line back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Set up and waiting for requests.
    Ready(Ready),
    /// Could not set up; the worker exits.
    SetupFailed { error: String },
    /// One invocation done.
    Done(Done),
    /// One invocation failed (a CUDA error); the worker exits after it.
    Failed { id: u64, error: String },
}

/// What a worker reports once set up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub pid: u32,
    /// The device's SM count (0 for the emulated backend), to check against the calibration.
    #[serde(default)]
    pub sms: u32,
    /// Context creation, seconds (0 for the emulated backend).
    pub context_s: f64,
    /// Where its kernels came from: `nvrtc`, `embedded ptx`, or `none` (emulated).
    pub kernels: String,
    /// Device memory it allocated for the functions' weights and activations, bytes.
    pub resident_bytes: u64,
    /// Device memory it needed beyond that (kernel buffers larger than the profile's
    /// activations), bytes.
    pub extra_bytes: u64,
    /// Whether GEMM-like phases run through cuBLAS.
    pub cublas: bool,
}

/// One invocation as the worker timed it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub id: u64,
    /// Host clock when the worker began and finished it.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Host clock after its last GPU operation completed, and the GPU time from its first
    /// GPU operation to its last by CUDA events (the emulated backend: planned times).
    pub gpu_end_ns: u64,
    pub gpu_ns: u64,
    /// The lane (stream) that ran it.
    pub lane: u32,
}

/// The environment every CUDA process of the harness gets: device ordinals in PCI order, the
/// order NVML numbers devices in, so that `--gpu N` is the same board for CUDA and NVML.
pub const CUDA_ENV: [(&str, &str); 1] = [("CUDA_DEVICE_ORDER", "PCI_BUS_ID")];

/// Puts [`CUDA_ENV`] into this process's environment, for the CUDA calls it makes itself.
///
/// # Safety
/// Call it before this process starts threads or touches CUDA (environment writes race with
/// reads on other threads).
pub unsafe fn pin_device_order() {
    for (k, v) in CUDA_ENV {
        // SAFETY: the caller's promise.
        unsafe { std::env::set_var(k, v) };
    }
}

/// `CLOCK_MONOTONIC` now, ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC always exists on
    // Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One line of JSON for `msg`.
pub fn line<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).expect("protocol messages serialise");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_single_lines() {
        let r = Reply::Done(Done {
            id: 7,
            start_ns: 1,
            end_ns: 5,
            gpu_end_ns: 4,
            gpu_ns: 2,
            lane: 0,
        });
        let l = line(&r);
        assert_eq!(l.matches('\n').count(), 1);
        assert_eq!(serde_json::from_str::<Reply>(&l).unwrap(), r);
        let q = Request::Run {
            id: 3,
            func: 1,
            scale: 1.0,
        };
        assert_eq!(serde_json::from_str::<Request>(&line(&q)).unwrap(), q);
    }

    #[test]
    fn the_clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
