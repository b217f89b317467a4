//! `time-sharing`: CUDA's default sharing between processes — contexts take turns.
//!
//! **Mechanism** (NVIDIA's time-slicing of contexts; PAPERS.md, "NVIDIA mechanisms"): several
//! instances (each its own process and CUDA context) live on one GPU; the kernels of different
//! contexts never overlap; the GPU switches between contexts with kernels to run, giving each an
//! equal share of time; a context switch is not free. While a context runs it has the whole GPU,
//! so a small kernel leaves most SMs idle (low SM occupancy) — what spatial sharing improves on.
//! Queueing, scaling and keep-alive are the shared [`crate::pool`] core; instances are packed
//! best-fit by memory, up to `max_contexts` per GPU.
//!
//! **Two modes.** `fluid` (default, fast): each of the n contexts with kernels holds the whole
//! GPU for `1/n × slice / (slice + switch)` of the time, continuously. `exact`: slice by slice —
//! one context runs for the slice (or until it has no kernel left), the GPU is idle for the
//! switch, the next context in round-robin order runs. `tests/time_sharing.rs` shows the two
//! agree on mean latency within 5 % on a stated workload.
//!
//! **Parameters** (`[policy]`), besides the pool's: `mode = "fluid" | "exact"`, `slice_ms` and
//! `switch_us` (default: each GPU's device values `time_slice_ms` and `context_switch_us`, whose
//! sources `validation/fitted.toml` states — the slice length is not documented by NVIDIA),
//! `max_contexts` (default unlimited).
//!
//! **Simplifications.** The slice is the same for every context; copies proceed regardless of
//! whose slice it is (copy engines are separate); a context that runs out of kernels mid-slice
//! yields at once.

use crate::placement::{Fit, Placement};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled, param_path};
use gpushare_sim::device::DeviceSpec;
use gpushare_sim::policy::{ActivePhase, Ctx, Policy, Sharing};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{Nanos, ms_to_ns};
use gpushare_sim::{FuncId, GpuId, InstId, Scenario};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Fluid,
    Exact,
}

impl crate::params::ShowDefault for Mode {
    fn show(&self) -> Option<String> {
        Some(if *self == Mode::Fluid { "\"fluid\"" } else { "\"exact\"" }.into())
    }
}

crate::params! {
    /// `time-sharing`'s own parameters.
    pub struct TsParams {
        /// `fluid` (each of n contexts holds the GPU 1/n of the time, less switches) or `exact` (slice by slice, round robin).
        mode: Mode = Mode::Fluid,
        /// The time slice, ms (unset: each device's `time_slice_ms`).
        slice_ms: Option<f64> = None,
        /// A context switch, µs (unset: each device's `context_switch_us`).
        switch_us: Option<f64> = None,
        /// Contexts per GPU (unset: as many as memory holds).
        max_contexts: Option<u32> = None,
    }
}

/// Contexts by memory, up to a number of contexts per GPU.
pub struct TimeSlicedContexts {
    pub max_contexts: u32,
}

impl TimeSlicedContexts {
    fn fits(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId, freed: (u64, u32)) -> bool {
        let g = &ctx.gpus()[gpu.ix()];
        g.instance_count - freed.1 < self.max_contexts
            && ctx.default_instance(func, gpu).memory <= g.mem_free() + freed.0
    }
}

impl Placement for TimeSlicedContexts {
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        self.fits(ctx, func, gpu, (0, 0))
            .then(|| Fit::plain(ctx.default_instance(func, gpu)))
    }

    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let v = ctx.instance(victim);
        self.fits(ctx, func, v.gpu, (v.memory, 1))
    }
}

/// Per-GPU state of exact slicing.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The context holding the GPU, or `None` while switching or idle.
    running: Option<InstId>,
    /// The last context that ran (round-robin continues after it).
    last: Option<InstId>,
    /// End of the current slice or switch.
    until: Nanos,
}

/// A GPU's slice and switch lengths.
#[derive(Clone, Copy, Debug)]
struct Slicing {
    slice: Nanos,
    switch: Nanos,
}

impl Slicing {
    /// A device's slice and switch cost, or the ones given in place of them.
    fn of(device: &DeviceSpec, slice_ms: Option<f64>, switch_us: Option<f64>) -> Self {
        Slicing {
            slice: ms_to_ns(slice_ms.unwrap_or(device.time_slice_ms)),
            switch: (switch_us.unwrap_or(device.context_switch_us) * 1e3).round() as Nanos,
        }
    }
}

/// The time-slicing discipline.
pub struct TimeSlice {
    exact: bool,
    /// Per GPU.
    slicing: Vec<Slicing>,
    slots: Vec<Slot>,
}

impl TimeSlice {
    /// Fluid time slicing on GPUs of these devices (one entry per GPU), with each device's own
    /// slice and switch cost.
    pub fn fluid_on(devices: &[DeviceSpec]) -> Self {
        TimeSlice {
            exact: false,
            slicing: devices.iter().map(|d| Slicing::of(d, None, None)).collect(),
            slots: Vec::new(),
        }
    }

    /// Each context with kernels holds the whole GPU an equal share of the time, less switches.
    /// An instance has at most one kernel phase at a time, so contexts are kernel phases.
    fn fluid(&self, gpu: GpuId, phases: &mut [ActivePhase]) {
        let Slicing { slice, switch } = self.slicing[gpu.ix()];
        let n = phases.iter().filter(|p| p.is_kernel()).count();
        let efficiency = if n > 1 {
            slice as f64 / (slice + switch) as f64
        } else {
            1.0
        };
        for p in phases.iter_mut().filter(|p| p.is_kernel()) {
            p.share = 1.0;
            p.time_share = efficiency / n as f64;
        }
    }

    /// Slice by slice. A running context keeps the GPU until its slice ends (while others wait)
    /// or it has no kernel left; then the GPU switches (idle for `switch`) to the next context
    /// with kernels, in round-robin order of instance.
    fn exact(&mut self, gpu: GpuId, now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        if self.slots.len() <= gpu.ix() {
            self.slots.resize(gpu.ix() + 1, Slot::default());
        }
        let Slicing { slice, switch } = self.slicing[gpu.ix()];
        let mut contexts: Vec<InstId> = phases.iter().filter(|p| p.is_kernel()).map(|p| p.inst).collect();
        contexts.sort_unstable();
        contexts.dedup();
        let slot = &mut self.slots[gpu.ix()];
        if contexts.is_empty() {
            slot.running = None;
            slot.until = now;
            return None;
        }
        if let Some(r) = slot.running {
            let has_work = contexts.contains(&r);
            if has_work && contexts.len() == 1 {
                // Alone: no slicing; its slice restarts whenever others appear.
                slot.until = now + slice;
            } else if !has_work || now >= slot.until {
                slot.last = Some(r);
                slot.running = None;
                slot.until = now + switch;
            }
        }
        if slot.running.is_none() && now >= slot.until {
            let after = slot.last.and_then(|l| contexts.iter().find(|&&c| c > l).copied());
            slot.running = after.or(contexts.first().copied());
            slot.until = now + slice;
        }
        let running = slot.running;
        for p in phases.iter_mut().filter(|p| p.is_kernel()) {
            p.share = 1.0;
            p.time_share = if Some(p.inst) == running { 1.0 } else { 0.0 };
        }
        (contexts.len() > 1 || running.is_none()).then_some(slot.until)
    }
}

impl Sharing for TimeSlice {
    fn assign_shares(&mut self, gpu: GpuId, now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        if self.exact {
            self.exact(gpu, now, phases)
        } else {
            self.fluid(gpu, phases);
            None
        }
    }

    fn concurrent(&self) -> bool {
        false
    }
}

/// The time-sharing policy.
pub struct TimeSharing {
    exact: bool,
    slicing: Vec<Slicing>,
}

impl TimeSharing {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, TsParams) = crate::pool::split_params(spec)?;
        if let Some(v) = p.slice_ms.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(ConfigError::at(
                param_path("slice_ms"),
                format!("must be a positive number of ms, got {v}"),
            ));
        }
        if let Some(v) = p.switch_us.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(ConfigError::at(
                param_path("switch_us"),
                format!("must be a non-negative number of µs, got {v}"),
            ));
        }
        if p.max_contexts == Some(0) {
            return Err(ConfigError::at(param_path("max_contexts"), "must be at least 1"));
        }
        let placement = TimeSlicedContexts {
            max_contexts: p.max_contexts.unwrap_or(u32::MAX),
        };
        let slicing = scenario
            .gpus
            .iter()
            .map(|&(_, device)| Slicing::of(&scenario.devices[device], p.slice_ms, p.switch_us))
            .collect();
        Ok(Pooled::boxed(
            &spec.name,
            Pool::new(&pool, placement, scenario)?,
            TimeSharing {
                exact: p.mode == Mode::Exact,
                slicing,
            },
        ))
    }
}

impl PoolPolicy for TimeSharing {
    type Placement = TimeSlicedContexts;
    fn sharing(&self, _pool: &Pool<TimeSlicedContexts>) -> Box<dyn Sharing> {
        Box::new(TimeSlice {
            exact: self.exact,
            slicing: self.slicing.clone(),
            slots: Vec::new(),
        })
    }
}
