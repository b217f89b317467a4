//! `exclusive`: every instance owns a whole GPU.
//!
//! **Mechanism.** The coarse-grained baseline every GPU-sharing paper compares against
//! (KaaS's `exclusive`, FaST-GShare's and SAGE's "one function per GPU"): a function instance
//! is a container holding one CUDA context on a GPU no other instance uses. Queueing and scaling
//! are the shared [`crate::pool`] core: a FIFO queue per function, a new instance when the queue
//! outgrows the instances starting, placed on an empty GPU — or, with `evict_idle`, on the GPU of
//! the least recently used idle instance of any function, which is reclaimed (what OpenWhisk-style
//! platforms do under memory pressure, and the thrashing KaaS reports when clients outnumber
//! GPUs); idle instances make room for waiting functions, else stay warm for the keep-alive.
//!
//! **Parameters** (`[policy]`):
//! - `keep_alive_s` (default 600; `inf` keeps instances forever): fixed keep-alive after last use.
//!   600 s is the common platform default studied in "Serverless in the Wild" (Shahrad et al.,
//!   ATC '20), whose 10-minute fixed policy is its baseline.
//! - `max_instances` (default unlimited): instances per function; further invocations queue.
//! - `max_queue` (default unlimited): queued invocations per function; further ones are rejected
//!   (`queue_full`).
//! - `evict_idle` (default true): reclaim idle instances of other functions to make room.
//! - `kill_largest` (default false): KaaS's `exclusive` baseline (Pemberton et al., "Kernel-as-a-
//!   Service", arXiv 2212.08146, and its artifact): when a client has no instance and no GPU is
//!   free, an instance of the group holding the most GPUs gives its GPU up — even with its own
//!   requests queued — so with more clients than GPUs requests thrash into cold starts.
//!
//! **Simplifications.** Setup is sequential (container, context, framework, model load) and does
//! not use SMs; the instance's memory (context + weights + activations) is reserved for its whole
//! life; placement takes the lowest-numbered empty GPU where the function fits. With
//! `kill_largest`, the artifact kills the victim actor at once (its running request fails and is
//! retried); here the victim finishes its running invocation first, and an instance that has not
//! yet served one is never a victim — the same cold start per switch, without losing requests.

use crate::placement::{Fit, Placement};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled};
use gpushare_sim::policy::{Ctx, Policy};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::{FuncId, GpuId, InstId, Scenario};

/// Whole GPUs: an instance fits an empty GPU with the memory it needs.
pub struct WholeGpu;

fn fits(ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> bool {
    ctx.default_instance(func, gpu).memory <= ctx.gpus()[gpu.ix()].mem_capacity
}

impl Placement for WholeGpu {
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        let empty = ctx.gpus()[gpu.ix()].instance_count == 0;
        (empty && fits(ctx, func, gpu)).then(|| Fit::plain(ctx.default_instance(func, gpu)))
    }

    fn only_empty_gpus(&self) -> bool {
        true
    }

    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let gpu = ctx.instance(victim).gpu;
        ctx.gpus()[gpu.ix()].instance_count == 1 && fits(ctx, func, gpu)
    }
}

crate::params! {
    /// `exclusive`'s own parameter.
    pub struct ExclusiveParams {
        /// KaaS's `exclusive` eviction: a client with no instance takes the GPU of the largest group's instance once it finishes its invocation, so with more clients than GPUs requests thrash into cold starts.
        kill_largest: bool = false,
    }
}

/// The exclusive policy: the pool, and KaaS's eviction when asked for.
pub struct Exclusive {
    kill_largest: bool,
}

impl Exclusive {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (p, own): (PoolParams, ExclusiveParams) = crate::pool::split_params(spec)?;
        let pool = Pool::new(&p, WholeGpu, scenario)?;
        Ok(Pooled::boxed(
            &spec.name,
            pool,
            Exclusive {
                kill_largest: own.kill_largest,
            },
        ))
    }

    /// With `kill_largest`: if a function with no instance is waiting for room and `inst` (which
    /// has served at least once) belongs to a group with the most instances, `inst` is reclaimed
    /// even though its own function may have work queued, and the starved function starts in its
    /// room; the victim's queue then waits for room in turn. With more clients than GPUs this
    /// thrashes: every switch is a cold start, as KaaS reports for its `exclusive` baseline. It
    /// is not a livelock: a new instance always serves its first request before it can be
    /// chosen, so each GPU completes one request per cold start — GPUs / (setup + request) per
    /// second (`tests/kaas_baselines.rs`).
    fn yield_to_starved(pool: &mut Pool<WholeGpu>, ctx: &mut Ctx<'_>, inst: InstId) -> bool {
        if pool.waiting().next().is_none() || ctx.instance(inst).served == 0 {
            return false;
        }
        let func = ctx.instance(inst).func;
        let largest = (0..pool.functions() as u32)
            .map(|f| ctx.alive(FuncId(f)))
            .max()
            .unwrap_or(0);
        if ctx.alive(func) < largest {
            return false;
        }
        let starved = pool.waiting().find(|&w| {
            ctx.alive(w) == 0 && pool.needs_instance(ctx, w) && pool.placement.fits_after_reclaiming(ctx, w, inst)
        });
        let Some(starved) = starved else {
            return false;
        };
        pool.stop_waiting(starved);
        pool.reclaim(ctx, inst);
        pool.scale_up(ctx, starved);
        pool.scale_up(ctx, func);
        true
    }

    /// An instance is idle: it may yield to a starved function first.
    #[inline]
    fn idle(&self, pool: &mut Pool<WholeGpu>, ctx: &mut Ctx<'_>, inst: InstId) {
        if !(self.kill_largest && Self::yield_to_starved(pool, ctx, inst)) {
            pool.idle(ctx, inst);
        }
    }
}

impl PoolPolicy for Exclusive {
    type Placement = WholeGpu;
    fn on_instance_ready(&mut self, pool: &mut Pool<WholeGpu>, ctx: &mut Ctx<'_>, inst: InstId) {
        self.idle(pool, ctx, inst);
    }
    fn on_complete(&mut self, pool: &mut Pool<WholeGpu>, ctx: &mut Ctx<'_>, inst: InstId) {
        self.idle(pool, ctx, inst);
    }
}
