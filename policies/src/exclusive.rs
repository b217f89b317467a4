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

use crate::pool::{Placement, Pool, PoolParams};
use gpushare_sim::policy::{Ctx, InstanceSpec, Policy};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::{FuncId, GpuId, InstId, Scenario};
use serde::Deserialize;

/// Whole GPUs: the lowest-numbered empty GPU where the function fits.
pub struct WholeGpu;

fn fits(ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> bool {
    ctx.default_instance(func, gpu).memory <= ctx.gpus()[gpu.ix()].mem_capacity
}

impl Placement for WholeGpu {
    fn place(&mut self, ctx: &Ctx<'_>, func: FuncId) -> Option<(GpuId, InstanceSpec)> {
        let gpu = ctx.empty_gpus().find(|&g| fits(ctx, func, g))?;
        Some((gpu, ctx.default_instance(func, gpu)))
    }

    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let gpu = ctx.instance(victim).gpu;
        ctx.gpus()[gpu.ix()].instance_count == 1 && fits(ctx, func, gpu)
    }
}

/// `exclusive`'s own parameter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExclusiveParams {
    #[serde(default)]
    kill_largest: bool,
}

/// The exclusive policy.
pub struct Exclusive(Pool<WholeGpu>);

impl Exclusive {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (p, own): (PoolParams, ExclusiveParams) = crate::pool::split_params(spec, &["kill_largest"])?;
        let mut pool = Pool::new(&p, WholeGpu, scenario)?;
        pool.kill_largest = own.kill_largest;
        Ok(Box::new(Exclusive(pool)))
    }
}

impl Policy for Exclusive {
    fn name(&self) -> &str {
        "exclusive"
    }
    crate::pool_callbacks!(0);
}
