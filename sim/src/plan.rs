//! Run plans: how an invocation's work is laid out on an instance, for policies that move data
//! themselves or run host code off the GPU.
//!
//! By default ([`crate::policy::Ctx::run`]) an instance runs every step of the invocation's
//! profile: host time, copies, kernels, host time. A [`RunPlan`] (`Ctx::run_plan`) changes that:
//! the instance may run only the GPU part — kernels and the host steps between them — while the
//! invocation's leading and trailing host code runs on the CPU without holding the instance, and
//! the policy may add copies and host time of its own around the function's steps (a kernel
//! server's cache misses, write-backs, module loads). KaaS is built on it.

use crate::time::Nanos;

/// Work an instance does around an invocation's own steps: copies of data the policy manages
/// and time holding the instance without using SMs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraWork {
    /// Device→host bytes (e.g. dirty buffers written back).
    pub d2h_bytes: u64,
    /// Host→device bytes (e.g. buffers missing from a device cache).
    pub h2d_bytes: u64,
    /// Time on the instance without SMs (module loads, dispatch overhead).
    pub host: Nanos,
}

impl ExtraWork {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.d2h_bytes == 0 && self.h2d_bytes == 0 && self.host == 0
    }
}

/// How an invocation runs on an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunPlan {
    /// Run only the invocation's GPU part on the instance: its kernels and the host steps
    /// between its first and last kernel. Its own copies are left out (the policy moves its data
    /// through `before` and `after`). Its host code before the first kernel must already have run
    /// on the CPU (`Ctx::run_host_first`); its host code after the last kernel runs on the CPU
    /// once the instance's part ends, and the instance is free meanwhile.
    pub gpu_part_only: bool,
    /// Before the invocation's steps, in this order: device→host, host→device, host time.
    pub before: ExtraWork,
    /// After them, in this order: host time, device→host, host→device.
    pub after: ExtraWork,
}
