//! The FaST-Profiler, run in simulation: each function's throughput over a grid of time quota ×
//! SM partition (Gu et al., ICPP '23, §FaST-Profiler; PAPERS.md §4).
//!
//! For every grid cell, one instance of the function runs alone on one GPU of the scenario's
//! first device type, capped at that SM share (as an MPS active-thread percentage) and that time
//! quota, with requests always queued (a saturating Poisson stream): the cell's throughput is the
//! completions per second after the first, and its latency the mean time per request. The
//! engine, the speed model and the [`CappedShares`] discipline do the work; nothing here computes
//! a rate by formula.

use gpushare_sim::policy::{CappedShares, Ctx, Policy, Sharing};
use gpushare_sim::record::NullSink;
use gpushare_sim::scenario::{Scenario, Workload};
use gpushare_sim::time::{NS_PER_S, Nanos};
use gpushare_sim::{GpuId, InstId, InvId, SimError, Simulation};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// FaST's time-quota grid.
pub const QUOTAS: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];
/// SM partitions: FaST's published points (6, 12, 24, 50, 100 %) and a few between.
pub const SM_SHARES: [f64; 9] = [0.06, 0.12, 0.18, 0.24, 0.36, 0.50, 0.64, 0.80, 1.00];

/// One cell of a function's profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfilePoint {
    pub function: String,
    pub quota: f64,
    pub sm: f64,
    /// Requests per second.
    pub qps: f64,
    /// Mean time per request, ms.
    pub latency_ms: f64,
}

#[derive(Default)]
struct Tally {
    completions: u64,
    first: Option<Nanos>,
    last: Nanos,
}

/// One instance, always busy, with a fixed SM cap and time quota.
struct ClosedLoop {
    sm: f64,
    quota: f64,
    queue: VecDeque<InvId>,
    started: bool,
    tally: Rc<RefCell<Tally>>,
}

impl ClosedLoop {
    fn next(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        if let Some(inv) = self.queue.pop_front() {
            ctx.run(inv, inst);
        } else {
            ctx.keep_alive(inst, None);
        }
    }
}

impl Policy for ClosedLoop {
    fn name(&self) -> &str {
        "fast-profiler"
    }
    fn sharing(&self) -> Box<dyn Sharing> {
        Box::new(CappedShares)
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        self.queue.push_back(inv);
        let func = ctx.invocation(inv).func;
        if !self.started {
            self.started = true;
            let mut spec = ctx.default_instance(func, GpuId(0));
            spec.sm_cap = self.sm;
            spec.time_quota = self.quota;
            // Validation guarantees the function fits an empty GPU.
            let _ = ctx.start_instance(func, GpuId(0), spec);
        } else if let Some(inst) = ctx.idle_instance(func) {
            self.next(ctx, inst);
        }
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.next(ctx, inst);
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let mut t = self.tally.borrow_mut();
        t.completions += 1;
        t.first.get_or_insert(ctx.now());
        t.last = ctx.now();
        drop(t);
        self.next(ctx, inst);
    }
}

/// Profiles function `func` of `scenario` over `quotas` × `sms`, each cell simulated for
/// `seconds` of steady state.
pub fn profile(
    scenario: &Scenario,
    func: usize,
    quotas: &[f64],
    sms: &[f64],
    seconds: f64,
) -> Result<Vec<ProfilePoint>, SimError> {
    let f = &scenario.functions[func];
    let device = scenario.gpus[0].1;
    let dev = &scenario.devices[device];
    let compiled = f.profile.compile(&f.reference, dev, scenario.storage_gbps);
    let solo_qps = NS_PER_S as f64 / compiled.solo_exec.max(1) as f64;
    let setup = compiled.setup.sequential();
    let mut out = Vec::new();
    for &quota in quotas {
        for &sm in sms {
            let mut sc = scenario.clone();
            sc.gpus = vec![(0, device)];
            sc.functions = vec![gpushare_sim::scenario::Function {
                rate_per_s: 2.0 * solo_qps,
                ..f.clone()
            }];
            sc.workload = Workload::Poisson;
            sc.warmup = 0;
            sc.drain = false;
            sc.horizon = setup + (seconds * NS_PER_S as f64) as Nanos;
            let tally = Rc::new(RefCell::new(Tally::default()));
            let policy = ClosedLoop {
                sm,
                quota,
                queue: VecDeque::new(),
                started: false,
                tally: tally.clone(),
            };
            Simulation::new(&sc, Box::new(policy), Box::new(NullSink))?.run()?;
            let t = tally.borrow();
            let span = (t.last - t.first.unwrap_or(t.last)) as f64 / NS_PER_S as f64;
            let qps = if t.completions > 1 && span > 0.0 {
                (t.completions - 1) as f64 / span
            } else {
                0.0
            };
            out.push(ProfilePoint {
                function: f.name.clone(),
                quota,
                sm,
                qps,
                latency_ms: if qps > 0.0 { 1e3 / qps } else { f64::INFINITY },
            });
        }
    }
    Ok(out)
}
