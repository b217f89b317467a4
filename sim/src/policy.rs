//! The traits a policy implements, and reusable pieces policies share.
//!
//! The engine never names a policy. A policy decides, through a [`Ctx`], where each arriving
//! invocation runs (an idle instance, a new instance on some GPU, or its own queue), when idle
//! instances are reclaimed, and how each GPU's SMs are shared between co-running phases (its
//! [`Sharing`] discipline). The engine enforces the rules — memory capacity, SM shares summing to
//! at most 100 %, every invocation ending in exactly one outcome — and records everything.
//!
//! Callbacks never nest: an operation on [`Ctx`] schedules events but never calls back into the
//! policy, so a policy always sees a consistent world.

use crate::ids::{FuncId, GpuId, InstId, InvId};
pub use crate::plan::{ExtraWork, RunPlan};
use crate::time::Nanos;
pub use crate::world::{ActivePhase, Ctx, InstanceSpec, Partition, Refusal};

/// A placement-and-scaling policy.
pub trait Policy {
    /// The registry name.
    fn name(&self) -> &str;

    /// The SM-sharing discipline for every GPU; called once, before the run.
    fn sharing(&self) -> Box<dyn Sharing> {
        Box::new(CappedShares)
    }

    /// The run begins (time 0, before the first arrival): start what must exist from the
    /// beginning, such as a static pool or a kernel server's workers.
    fn on_start(&mut self, _ctx: &mut Ctx<'_>) {}

    /// An invocation arrived. The policy must eventually run it (`ctx.run`) or reject it
    /// (`ctx.reject`); until then it is the policy's to hold. Whatever is still held when the run
    /// stops is reported as unfinished.
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId);

    /// An instance finished its setup and is idle.
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId);

    /// An instance finished an invocation and is idle.
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId);

    /// An idle instance's keep-alive (set with `ctx.keep_alive`) ran out. Default: reclaim it.
    fn on_idle_expired(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        ctx.reclaim(inst);
    }

    /// The host code of an invocation, run on the CPU with `ctx.run_host_first`, ended; the
    /// invocation waits for the policy again (to run its GPU part with `ctx.run_plan`). Policies
    /// that never call `run_host_first` never receive it.
    fn on_host_done(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        ctx.error(format!(
            "invocation {} finished its host code, but the policy does not handle on_host_done",
            ctx.invocation(inv).id
        ));
    }

    /// A timer set with `ctx.set_timer` fired.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _token: u64) {}

    /// Lines describing decisions worth reporting (chosen configurations, estimates), written to
    /// `summary.json` as `policy_report`. Must be deterministic.
    fn report(&self) -> Vec<String> {
        Vec::new()
    }
}

/// How a GPU's SMs are divided among the phases active on it.
///
/// The engine calls `assign_shares` whenever the set of active phases on a GPU changes; the
/// discipline sets `share` (a fraction of the GPU's SMs) for every kernel phase. The engine then
/// turns shares into progress rates with the contention model ([`crate::contention`]) and checks
/// that the shares sum to at most 1.
pub trait Sharing {
    /// Sets `share` (and, for disciplines that take turns, `time_share`) of every kernel phase in
    /// `phases`, all on `gpu`, at time `now`. Σ share × time_share must not exceed 1. Returns when
    /// the discipline wants to be asked again even if no phase starts or ends (a time slice's
    /// end), or `None`.
    fn assign_shares(&mut self, gpu: GpuId, now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos>;

    /// True when kernels of different contexts run at the same time (and so share L2 and slow
    /// each other through memory queueing); false for disciplines whose contexts take turns.
    /// Read once, when the run starts.
    fn concurrent(&self) -> bool {
        true
    }

    /// True for a discipline that, as long as its kernels' bounds fit the GPU together, gives
    /// each kernel its bound — its instance's SM cap or the most SMs it can use
    /// ([`ActivePhase::sm_max`]), whichever is smaller, at its instance's time quota — and
    /// divides the SMs otherwise. The engine then sets the bounds itself and calls
    /// `assign_shares` only when they do not fit (which keeps busy GPUs cheap). Read once, when
    /// the run starts.
    fn shares_are_bounds(&self) -> bool {
        false
    }
}

/// Divides a GPU's SMs max-min fairly among its kernel phases, each weighted by its time share
/// and bounded by `bound` (a cap, and the most SMs it can use): no phase gets more than its
/// bound, and none gets less than an equal share unless its bound is smaller (water-filling).
/// Σ share × time share ≤ 1. Allocates nothing; one pass when the bounds fit.
pub fn fair_shares(phases: &mut [ActivePhase], bound: impl Fn(&ActivePhase) -> f64) {
    let mut weight = 0.0;
    let mut wanted = 0.0;
    for p in phases.iter_mut().filter(|p| p.is_kernel()) {
        let b = bound(p);
        let b = if b < 1.0 { b } else { 1.0 };
        p.share = b;
        weight += p.time_share;
        wanted += b * p.time_share;
    }
    if wanted <= 1.0 {
        return;
    }
    // Oversubscribed: water-fill. A phase is settled once its bound is below the level; the
    // others share what is left equally.
    // Unsettled phases carry a negative share until the end.
    for p in phases.iter_mut().filter(|p| p.is_kernel()) {
        p.share = -1.0;
    }
    let mut room = 1.0;
    loop {
        let level = if weight > 0.0 { room / weight } else { 0.0 };
        let mut any = false;
        for p in phases.iter_mut().filter(|p| p.is_kernel() && p.share < 0.0) {
            let b = bound(p).min(1.0);
            if b <= level {
                p.share = b;
                room -= b * p.time_share;
                weight -= p.time_share;
                any = true;
            }
        }
        if !any {
            for p in phases.iter_mut().filter(|p| p.is_kernel() && p.share < 0.0) {
                p.share = level;
            }
            return;
        }
    }
}

/// Kernels run concurrently (as under MPS), each limited to its instance's SM cap; when the caps
/// of the running kernels add up to more than the GPU, the SMs are shared max-min fairly under
/// the caps and under what each kernel can use ([`fair_shares`]: a kernel whose blocks fill only
/// part of its cap leaves the rest to the others). Each kernel's time share is its instance's
/// time quota. With uncapped instances (the default) it is plain fair sharing: the whole GPU for
/// a single kernel that can fill it, as under exclusive placement.
pub struct CappedShares;

impl Sharing for CappedShares {
    fn assign_shares(&mut self, _gpu: GpuId, _now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        // A phase's time share is its instance's quota from the moment it starts.
        fair_shares(phases, ActivePhase::bound);
        None
    }
    fn shares_are_bounds(&self) -> bool {
        true
    }
}

/// What to do with an instance that became idle with nothing to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleAction {
    /// Keep it warm this long (`None`: forever), then reclaim it.
    KeepFor(Option<Nanos>),
    /// Reclaim it now; start a new instance `prewarm_after` from now and keep that one warm for
    /// `keep_for`.
    UnloadThenPrewarm { prewarm_after: Nanos, keep_for: Nanos },
}

/// What a keep-alive sees of an instance that became idle with nothing queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleInstance {
    pub func: FuncId,
    pub inst: InstId,
    /// When it became idle.
    pub now: Nanos,
    /// What its setup (cold start) took: from its creation to being ready.
    pub setup: Nanos,
    /// Invocations it has completed.
    pub served: u64,
}

/// When idle instances are reclaimed (and re-warmed): reusable by every policy; the pool's
/// keep-alive plug-ins (`policies/src/keep_alive.rs`) implement it.
pub trait KeepAlive {
    /// An invocation of `func` arrived at `now` (lets a policy learn idle times).
    fn arrived(&mut self, _func: FuncId, _now: Nanos) {}

    /// An instance became idle with nothing queued: keep it, or unload it and pre-warm later.
    fn idle(&mut self, idle: &IdleInstance) -> IdleAction;

    /// Lines for the run's `policy_report` (what it decided, how often).
    fn report(&self, _lines: &mut Vec<String>) {}
}

/// A fixed keep-alive (time-to-live) after the last use, as in OpenWhisk and most platforms.
pub struct FixedTtl(pub Option<Nanos>);

impl KeepAlive for FixedTtl {
    fn idle(&mut self, _idle: &IdleInstance) -> IdleAction {
        IdleAction::KeepFor(self.0)
    }
}
