//! Replays gpushare scenarios on a real GPU and checks the simulator against it.
//!
//! This crate owns the real-hardware side: what a scenario becomes on a GPU ([`plan`]: each
//! function's work as kernels and copies, each policy's process layout), the harness's kernels
//! ([`kernels`]) and CUDA operations ([`cuda`]), the worker processes ([`worker`]) and what they
//! say to the orchestrator ([`protocol`]), the mechanisms' set-up — a private MPS daemon
//! ([`mps`]) — NVML sampling ([`nvml`]), the replay itself ([`replay`]) with its records and
//! summary ([`measured`]), the device calibration ([`calibrate`], [`calibration`]), and what the
//! harness adds to an invocation ([`overhead`]).
//!
//! Every entry point checks for the driver first ([`driver`]): a machine without an NVIDIA GPU
//! gets a plain error, never a panic from a missing library.

pub mod calibrate;
pub mod calibration;
pub mod cuda;
pub mod driver;
pub mod kernels;
pub mod measured;
pub mod mps;
pub mod nvml;
pub mod overhead;
pub mod plan;
pub mod protocol;
pub mod replay;
pub mod worker;

pub use driver::{NO_DRIVER, ReplayError};
