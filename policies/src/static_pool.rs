//! `static`: KaaS's static baseline (Pemberton et al., arXiv 2212.08146; PAPERS.md §2) — a fixed
//! pool of instances per client, started when the run begins and never scaled or reclaimed.
//!
//! **Mechanism.** Every function gets `instances` whole-GPU instances at time 0 (placed like
//! `exclusive`: one per empty GPU, in function order, while GPUs last); its invocations queue
//! FIFO for them. A function that found no GPU keeps its invocations queued (they are reported
//! unfinished) — the cost of static provisioning when clients outnumber GPUs.
//!
//! **Parameters** (`[policy]`): `instances` (default 1) per function, and the pool's
//! `max_queue` and `prewarm` (instances start set up). Keep-alive does not apply: instances live for the whole run.

use crate::exclusive::WholeGpu;
use crate::pool::{Pool, PoolParams};
use gpushare_sim::FuncId;
use gpushare_sim::policy::{Ctx, Policy};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::{InstId, InvId, Scenario};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticParams {
    #[serde(default = "one")]
    instances: u32,
}

fn one() -> u32 {
    1
}

/// The static policy.
pub struct Static {
    pool: Pool<WholeGpu>,
    instances: u32,
    functions: usize,
}

impl Static {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (mut pool, p): (PoolParams, StaticParams) = crate::pool::split_params(spec, &["instances"])?;
        if p.instances == 0 {
            return Err(ConfigError::at(
                crate::pool::param_path("instances"),
                "must be at least 1",
            ));
        }
        pool.keep_alive_s = f64::INFINITY;
        pool.evict_idle = false;
        let mut pool = Pool::new(&pool, WholeGpu, scenario)?;
        pool.autoscaled = true;
        Ok(Box::new(Static {
            pool,
            instances: p.instances,
            functions: scenario.functions.len(),
        }))
    }
}

impl Policy for Static {
    fn name(&self) -> &str {
        "static"
    }
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        for _ in 0..self.instances {
            for f in 0..self.functions {
                if self.pool.prewarmed() {
                    self.pool.start_with(ctx, FuncId(f as u32), true);
                } else {
                    self.pool.start_now(ctx, FuncId(f as u32));
                }
            }
        }
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        self.pool.arrive(ctx, inv);
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.pool.idle(ctx, inst);
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.pool.idle(ctx, inst);
    }
}
