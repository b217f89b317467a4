//! `static`: KaaS's static baseline (Pemberton et al., arXiv 2212.08146; PAPERS.md §2) — a fixed
//! pool of instances per client, started when the run begins and never scaled or reclaimed.
//!
//! **Mechanism.** Every function gets `instances` whole-GPU instances at time 0 (placed like
//! `exclusive`: one per empty GPU, in function order, while GPUs last); its invocations queue
//! FIFO for them. A function that found no GPU keeps its invocations queued (they are reported
//! unfinished) — the cost of static provisioning when clients outnumber GPUs; the policy report
//! says how many instances were placed of those asked for.
//!
//! **Parameters** (`[policy]`): `instances` (default 1, at most the number of GPUs) per function, and the pool's
//! `max_queue` and `prewarm` (instances start set up). Keep-alive does not apply: instances live for the whole run.

use crate::exclusive::WholeGpu;
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled};
use gpushare_sim::FuncId;
use gpushare_sim::policy::{Ctx, Policy};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::{InvId, Scenario};

crate::params! {
    /// `static`'s own parameter.
    pub(crate) struct StaticParams {
        /// Whole-GPU instances per function, started at time 0 (at most the number of GPUs); they live for the whole run, whatever `keep_alive_s` and `evict_idle` say.
        instances: u32 = 1,
    }
}

/// The static policy.
pub struct Static {
    instances: u32,
    functions: usize,
    /// Instances placed at the start, of `instances × functions` asked for.
    placed: u64,
}

impl Static {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (mut pool, p): (PoolParams, StaticParams) = crate::pool::split_params(spec)?;
        let gpus = scenario.gpus.len();
        if p.instances == 0 || p.instances as usize > gpus {
            return Err(ConfigError::at(
                crate::pool::param_path("instances"),
                format!(
                    "must be from 1 to the cluster's {gpus} GPU(s): each static instance holds a whole GPU, got {}",
                    p.instances
                ),
            ));
        }
        pool.keep_alive_s = f64::INFINITY;
        pool.evict_idle = false;
        let pool = Pool::new(&pool, WholeGpu, scenario)?;
        let policy = Static {
            instances: p.instances,
            functions: scenario.functions.len(),
            placed: 0,
        };
        Ok(Pooled::boxed(&spec.name, pool, policy))
    }
}

impl PoolPolicy for Static {
    type Placement = WholeGpu;
    fn on_start(&mut self, pool: &mut Pool<WholeGpu>, ctx: &mut Ctx<'_>) {
        for _ in 0..self.instances {
            for f in 0..self.functions {
                let started = if pool.prewarmed() {
                    pool.start_with(ctx, FuncId(f as u32), true)
                } else {
                    pool.start_now(ctx, FuncId(f as u32))
                };
                self.placed += u64::from(started);
            }
        }
    }
    fn on_arrival(&mut self, pool: &mut Pool<WholeGpu>, ctx: &mut Ctx<'_>, inv: InvId) {
        // The instances are fixed: invocations only queue for them.
        pool.enqueue(ctx, inv);
    }
    fn report(&self, _pool: &Pool<WholeGpu>) -> Vec<String> {
        let asked = u64::from(self.instances) * self.functions as u64;
        vec![format!(
            "instances placed at the start: {} of {asked} ({} per function × {} functions; one per GPU)",
            self.placed, self.instances, self.functions
        )]
    }
}
