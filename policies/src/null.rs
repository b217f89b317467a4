//! `null`: rejects every invocation on arrival (reason `admission`).
//!
//! Not a sharing policy: it exists to measure the workload and the engine's arrival path alone
//! (BENCHMARKS.md), with nothing started on any GPU. It takes no parameters.

use gpushare_sim::policy::{Ctx, Policy};
use gpushare_sim::record::RejectReason;
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::{InstId, InvId, Scenario};

/// The null policy.
pub struct Null;

impl Null {
    /// Builds it; `[policy]` may hold nothing but `name`.
    pub fn build(spec: &PolicySpec, _scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let _: crate::params::NoParams = spec.params()?;
        Ok(Box::new(Null))
    }
}

impl Policy for Null {
    fn name(&self) -> &str {
        "null"
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        ctx.reject(inv, RejectReason::Admission);
    }
    fn on_instance_ready(&mut self, _ctx: &mut Ctx<'_>, _inst: InstId) {}
    fn on_complete(&mut self, _ctx: &mut Ctx<'_>, _inst: InstId) {}
}
