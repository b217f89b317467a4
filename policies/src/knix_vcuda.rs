//! `knix-vcuda`: container-level GPU sharing with utilisation caps, as in KNIX (Satzke et al.,
//! "Efficient GPU Sharing for Serverless Workflows", HiPS '21; PAPERS.md §1).
//!
//! **Mechanism.** Each sandbox declares a core percentage (`gpu_usage`) and GPU memory. Sharing is
//! not MPS: Tencent's vCUDA hooks kernel launches with a token bucket — a launch spends tokens, an
//! empty bucket makes it sleep in 10 ms ticks — so sandboxes time-share the GPU (contexts take
//! turns, as under `time-sharing`) and each is held near its core percentage. Memory is granted in
//! 256 MB units and is a hard limit. Sandboxes scale like Knative services: concurrency target 20
//! requests per sandbox, at least 1 sandbox (no scale to zero), at most 5.
//!
//! **The model.** A sandbox's bucket holds up to `cap × 100 ms` of GPU time (*assumed*; vCUDA's
//! watcher tunes the tokens from NVML utilisation, which a fluid bucket of this depth reproduces
//! on average) and refills at its cap. Sandboxes whose bucket is not empty share the GPU's time
//! equally; one whose bucket runs dry stops until the next 10 ms tick at which it has tokens.
//! Knative's autoscaler is evaluated every 2 s: sandboxes wanted = ⌈(queued + running requests)
//! / 20⌉ within [1, 5] per function.
//!
//! **Parameters** (`[policy]`): `gpu_usage` (default 100: percent), `usage = { function =
//! percent }`, `concurrency_target = 20`, `min_scale = 1`, `max_scale = 5` (Knative values from
//! the paper), `bucket_ms = 100`, plus `keep_alive_s` etc. of the pool (idle sandboxes above
//! `min_scale` are still reclaimed by keep-alive).
//!
//! **Simplifications.** A sandbox serves one request at a time (the engine's instances are
//! single-concurrency); the concurrency target counts queued and running requests per sandbox.
//! The paper measured framework-specific overheads of vCUDA that were not available to us.

use crate::placement::{Fit, Placement};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled, param_path};
use crate::time_sharing::TimeSlicedContexts;
use gpushare_sim::policy::{ActivePhase, Ctx, InstanceSpec, Policy, Sharing};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{NS_PER_S, Nanos, ms_to_ns};
use gpushare_sim::{FuncId, GpuId, InstId, InvId, Scenario};
use std::collections::BTreeMap;

/// vCUDA's launch retry tick.
pub const TICK: Nanos = 10_000_000;
/// Knative's autoscaler period used here.
const SCALE_PERIOD: Nanos = 2 * NS_PER_S;
/// Memory is granted in 256 MB units.
const MEMORY_UNIT: u64 = 256 << 20;

crate::params! {
    /// `knix-vcuda`'s own parameters (Knative's values from the paper).
    pub(crate) struct KnixParams {
        /// Every sandbox's core percentage (vCUDA's cap).
        gpu_usage: f64 = 100.0,
        /// Per-function core percentages, `{ function = percent }`.
        usage: BTreeMap<String, f64> = BTreeMap::new(),
        /// Knative's concurrency target: queued and running requests per sandbox.
        concurrency_target: u32 = 20,
        /// Sandboxes always kept per function (no scale to zero).
        min_scale: u32 = 1,
        /// The most sandboxes per function.
        max_scale: u32 = 5,
        /// The token bucket's depth at a 100 % cap, ms (assumed).
        bucket_ms: f64 = 100.0,
    }
}

/// Memory packing with memory rounded up to 256 MB units and the sandbox's core cap.
pub struct SandboxPlacement {
    inner: TimeSlicedContexts,
    caps: Vec<f64>,
}

impl SandboxPlacement {
    fn spec(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> InstanceSpec {
        let base = ctx.default_instance(func, gpu);
        let memory = base.memory.div_ceil(MEMORY_UNIT) * MEMORY_UNIT;
        let cap = self.caps[func.ix()];
        InstanceSpec {
            memory,
            sm_cap: 1.0,
            time_quota: cap,
            gpu_fraction: cap,
            ..base
        }
    }
}

impl Placement for SandboxPlacement {
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        self.inner.fit(ctx, func, gpu)?;
        let spec = self.spec(ctx, func, gpu);
        (spec.memory <= ctx.gpus()[gpu.ix()].mem_free()).then(|| Fit::plain(spec))
    }
    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        self.inner.fits_after_reclaiming(ctx, func, victim)
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    level: f64,
    updated: Nanos,
    /// Time share it was consuming since `updated`.
    using: f64,
}

/// Time sharing among sandboxes, each held to its core percentage by a token bucket.
pub struct VcudaCaps {
    depth: Nanos,
    buckets: BTreeMap<InstId, Bucket>,
}

impl Sharing for VcudaCaps {
    fn assign_shares(&mut self, _gpu: GpuId, now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        let mut ctxs: Vec<(InstId, f64)> = phases
            .iter()
            .filter(|p| p.is_kernel())
            .map(|p| (p.inst, p.time_quota))
            .collect();
        ctxs.sort_by_key(|c| c.0);
        ctxs.dedup_by_key(|c| c.0);
        // Bring buckets up to now: refill at the cap, drain at the share used.
        let mut ready = Vec::new();
        let mut next: Option<Nanos> = None;
        let at = |t: Nanos, next: &mut Option<Nanos>| *next = Some(next.map_or(t, |n| n.min(t)));
        for &(inst, cap) in &ctxs {
            let depth = cap * self.depth as f64;
            let b = self.buckets.entry(inst).or_insert(Bucket {
                level: depth,
                updated: now,
                using: 0.0,
            });
            let dt = (now - b.updated) as f64;
            b.level = (b.level + (cap - b.using) * dt).min(depth);
            b.updated = now;
            if b.level > 0.5 {
                ready.push(inst);
            } else {
                // Sleep to the first 10 ms tick with tokens again.
                let wait = ((-b.level + 1.0) / cap).ceil() as Nanos;
                at((now + wait).div_ceil(TICK) * TICK, &mut next);
                b.using = 0.0;
            }
        }
        let share = if ready.is_empty() {
            0.0
        } else {
            1.0 / ready.len() as f64
        };
        for &(inst, cap) in &ctxs {
            if let Some(b) = self.buckets.get_mut(&inst) {
                if ready.contains(&inst) {
                    b.using = share;
                    if share > cap {
                        // Runs dry at this rate after level / (share − cap).
                        at(now + (b.level / (share - cap)).ceil() as Nanos, &mut next);
                    }
                }
            }
        }
        for p in phases.iter_mut().filter(|p| p.is_kernel()) {
            p.share = 1.0;
            p.time_share = if ready.contains(&p.inst) { share } else { 0.0 };
        }
        self.buckets.retain(|i, _| ctxs.iter().any(|c| c.0 == *i));
        next
    }

    fn concurrent(&self) -> bool {
        false
    }
}

/// The KNIX vCUDA policy.
pub struct KnixVcuda {
    target: u32,
    min: u32,
    max: u32,
    depth: Nanos,
    ticking: bool,
    functions: usize,
}

impl KnixVcuda {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, KnixParams) = crate::pool::split_params(spec)?;
        let caps = crate::pool::per_function_percent(scenario, p.gpu_usage, "gpu_usage", &p.usage, "usage")?;
        if p.concurrency_target == 0 {
            return Err(ConfigError::at(param_path("concurrency_target"), "must be at least 1"));
        }
        if p.min_scale > p.max_scale || p.max_scale == 0 {
            return Err(ConfigError::at(
                param_path("max_scale"),
                format!("must be at least 1 and at least min_scale ({})", p.min_scale),
            ));
        }
        if !(p.bucket_ms.is_finite() && p.bucket_ms > 0.0) {
            return Err(ConfigError::at(
                param_path("bucket_ms"),
                format!("must be a positive number of ms, got {}", p.bucket_ms),
            ));
        }
        let placement = SandboxPlacement {
            inner: TimeSlicedContexts { max_contexts: u32::MAX },
            caps,
        };
        let pool = Pool::new(&pool, placement, scenario)?;
        let policy = KnixVcuda {
            target: p.concurrency_target,
            min: p.min_scale,
            max: p.max_scale,
            depth: ms_to_ns(p.bucket_ms),
            ticking: false,
            functions: scenario.functions.len(),
        };
        Ok(Pooled::boxed(&spec.name, pool, policy))
    }

    /// Knative's rule: ⌈(queued + running) / target⌉ sandboxes within [min, max].
    fn scale(&self, pool: &mut Pool<SandboxPlacement>, ctx: &mut Ctx<'_>) {
        for f in 0..self.functions {
            let func = FuncId(f as u32);
            let alive = ctx.alive(func);
            let starting = ctx.starting(func);
            let busy = alive - starting - idle_count(ctx, func);
            let demand = pool.queue_len(func) as u32 + busy;
            let wanted = demand.div_ceil(self.target).clamp(self.min, self.max);
            for _ in alive..wanted {
                if !pool.start_now(ctx, func) {
                    break;
                }
            }
        }
        ctx.set_timer(ctx.now() + SCALE_PERIOD, 0);
    }
}

fn idle_count(ctx: &Ctx<'_>, func: FuncId) -> u32 {
    ctx.idle_lru().filter(|&i| ctx.instance(i).func == func).count() as u32
}

impl PoolPolicy for KnixVcuda {
    type Placement = SandboxPlacement;
    fn sharing(&self, _pool: &Pool<SandboxPlacement>) -> Box<dyn Sharing> {
        Box::new(VcudaCaps {
            depth: self.depth,
            buckets: BTreeMap::new(),
        })
    }
    fn on_arrival(&mut self, pool: &mut Pool<SandboxPlacement>, ctx: &mut Ctx<'_>, inv: InvId) {
        if !self.ticking {
            self.ticking = true;
            self.scale(pool, ctx);
        }
        // Knative's autoscaler starts sandboxes, not the queue.
        pool.enqueue(ctx, inv);
    }
    fn on_idle_expired(&mut self, pool: &mut Pool<SandboxPlacement>, ctx: &mut Ctx<'_>, inst: InstId) {
        // minScale: the last sandboxes stay.
        let func = ctx.instance(inst).func;
        if ctx.alive(func) > self.min {
            pool.expired(ctx, inst);
        } else {
            ctx.keep_alive(inst, None);
        }
    }
    fn on_timer(&mut self, pool: &mut Pool<SandboxPlacement>, ctx: &mut Ctx<'_>, _token: u64) {
        self.scale(pool, ctx);
    }
}
