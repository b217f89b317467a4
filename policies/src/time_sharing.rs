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
//! **Two modes.** `fluid` (default, fast): each of the n contexts with kernels progresses at
//! `1/n × slice / (slice + switch)` of its full-GPU speed, continuously. `exact`: slice by slice —
//! one context runs for `slice_ms` (or until it has no kernel left), the GPU is idle for
//! `switch_us`, the next context in round-robin order runs. `tests/time_sharing.rs` shows the two
//! agree on mean latency within 5 % on a stated workload.
//!
//! **Parameters** (`[policy]`), besides the pool's: `mode = "fluid" | "exact"`, `slice_ms`
//! (default 2 ms) and `switch_us` (default 50 µs) — the slice length is not documented by NVIDIA
//! and must be measured (`gpushare calibrate`); 2 ms and 50 µs are typical of published
//! measurements of Volta-class GPUs and are placeholders until then; `max_contexts` (default
//! unlimited).
//!
//! **Simplifications.** The slice is the same for every context; copies proceed regardless of
//! whose slice it is (copy engines are separate); a context that runs out of kernels mid-slice
//! yields at once.

use crate::pool::{Placement, Pool, PoolParams, param_path};
use gpushare_sim::policy::{ActivePhase, Ctx, InstanceSpec, Policy, Sharing};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{Nanos, ms_to_ns};
use gpushare_sim::{FuncId, GpuId, InstId, Scenario};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Fluid,
    Exact,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TsParams {
    #[serde(default)]
    mode: Mode,
    #[serde(default = "slice_ms")]
    slice_ms: f64,
    #[serde(default = "switch_us")]
    switch_us: f64,
    max_contexts: Option<u32>,
}

fn slice_ms() -> f64 {
    2.0
}
fn switch_us() -> f64 {
    50.0
}

const TS_KEYS: [&str; 4] = ["mode", "slice_ms", "switch_us", "max_contexts"];

/// Packs instances best-fit by memory, up to a number of contexts per GPU.
pub struct MemoryPacking {
    pub max_contexts: u32,
}

impl MemoryPacking {
    fn fits(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId, freed: (u64, u32)) -> bool {
        let g = &ctx.gpus()[gpu.ix()];
        g.instances - freed.1 < self.max_contexts && ctx.default_instance(func, gpu).memory <= g.mem_free() + freed.0
    }
}

impl Placement for MemoryPacking {
    fn place(&mut self, ctx: &Ctx<'_>, func: FuncId) -> Option<(GpuId, InstanceSpec)> {
        let best = (0..ctx.gpus().len() as u32)
            .map(GpuId)
            .filter(|&g| self.fits(ctx, func, g, (0, 0)))
            .min_by_key(|&g| (ctx.gpus()[g.ix()].mem_free(), g))?;
        Some((best, ctx.default_instance(func, best)))
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

/// The time-slicing discipline.
pub struct TimeSlice {
    exact: bool,
    slice: Nanos,
    switch: Nanos,
    slots: Vec<Slot>,
}

impl TimeSlice {
    fn fluid(&self, phases: &mut [ActivePhase]) {
        let mut contexts: Vec<InstId> = phases.iter().filter(|p| p.is_kernel()).map(|p| p.inst).collect();
        contexts.sort_unstable();
        contexts.dedup();
        let n = contexts.len() as f64;
        let efficiency = if contexts.len() > 1 {
            self.slice as f64 / (self.slice + self.switch) as f64
        } else {
            1.0
        };
        for p in phases.iter_mut().filter(|p| p.is_kernel()) {
            p.share = 1.0;
            p.time_share = efficiency / n;
        }
    }

    /// Slice by slice. A running context keeps the GPU until its slice ends (while others wait)
    /// or it has no kernel left; then the GPU switches (idle for `switch`) to the next context
    /// with kernels, in round-robin order of instance.
    fn exact(&mut self, gpu: GpuId, now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        if self.slots.len() <= gpu.ix() {
            self.slots.resize(gpu.ix() + 1, Slot::default());
        }
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
                slot.until = now + self.slice;
            } else if !has_work || now >= slot.until {
                slot.last = Some(r);
                slot.running = None;
                slot.until = now + self.switch;
            }
        }
        if slot.running.is_none() && now >= slot.until {
            let after = slot.last.and_then(|l| contexts.iter().find(|&&c| c > l).copied());
            slot.running = after.or(contexts.first().copied());
            slot.until = now + self.slice;
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
            self.fluid(phases);
            None
        }
    }

    fn concurrent(&self) -> bool {
        false
    }
}

/// The time-sharing policy.
pub struct TimeSharing {
    pool: Pool<MemoryPacking>,
    exact: bool,
    slice: Nanos,
    switch: Nanos,
}

impl TimeSharing {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, TsParams) = crate::pool::split_params(spec, &TS_KEYS)?;
        if !(p.slice_ms.is_finite() && p.slice_ms > 0.0) {
            return Err(ConfigError::at(
                param_path("slice_ms"),
                format!("must be a positive number of ms, got {}", p.slice_ms),
            ));
        }
        if !(p.switch_us.is_finite() && p.switch_us >= 0.0) {
            return Err(ConfigError::at(
                param_path("switch_us"),
                format!("must be a non-negative number of µs, got {}", p.switch_us),
            ));
        }
        if p.max_contexts == Some(0) {
            return Err(ConfigError::at(param_path("max_contexts"), "must be at least 1"));
        }
        let placement = MemoryPacking {
            max_contexts: p.max_contexts.unwrap_or(u32::MAX),
        };
        Ok(Box::new(TimeSharing {
            pool: Pool::new(&pool, placement, scenario.functions.len())?,
            exact: p.mode == Mode::Exact,
            slice: ms_to_ns(p.slice_ms),
            switch: (p.switch_us * 1e3).round() as Nanos,
        }))
    }
}

impl Policy for TimeSharing {
    fn name(&self) -> &str {
        "time-sharing"
    }
    fn sharing(&self) -> Box<dyn Sharing> {
        Box::new(TimeSlice {
            exact: self.exact,
            slice: self.slice,
            switch: self.switch,
            slots: Vec::new(),
        })
    }
    crate::pool_callbacks!(pool);
}
