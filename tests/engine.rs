//! Engine rules seen through small custom policies: GPU sharing arithmetic, memory refusal,
//! policy faults reported as errors, trace duration overrides, drain mode.

mod common;

use gpushare_sim::policy::{Ctx, Policy, Refusal};
use gpushare_sim::record::{NullSink, VecSink};
use gpushare_sim::{FuncId, GpuId, InstId, InvId, ScenarioSource, SimError, Simulation};
use std::collections::VecDeque;
use std::path::Path;

/// Starts an instance of `func` on GPU 0 with the function's default spec.
fn start_on_gpu0(ctx: &mut Ctx<'_>, func: FuncId) -> Result<InstId, Refusal> {
    let spec = ctx.default_instance(func, GpuId(0));
    ctx.start_instance(func, GpuId(0), spec)
}

/// Starts an instance of `inv`'s function on GPU 0 (for the invocation to run on once ready).
fn start_for(ctx: &mut Ctx<'_>, inv: InvId) -> Result<InstId, Refusal> {
    let func = ctx.invocation(inv).func;
    start_on_gpu0(ctx, func)
}

/// Packs every instance onto GPU 0 (no isolation at all) and runs each invocation on a new
/// instance; records refusals. `reclaim_busy` makes it break an engine rule on purpose.
struct PackOnGpu0 {
    refusals: std::rc::Rc<std::cell::Cell<u32>>,
    reclaim_busy: bool,
    waiting: VecDeque<InvId>,
}

impl Policy for PackOnGpu0 {
    fn name(&self) -> &str {
        "pack-on-gpu0"
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        match start_for(ctx, inv) {
            Ok(_) => self.waiting.push_back(inv),
            Err(Refusal::Memory { .. }) => self.refusals.set(self.refusals.get() + 1),
        }
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let inv = self.waiting.pop_front().expect("one instance per invocation");
        ctx.run(inv, inst);
        if self.reclaim_busy {
            ctx.reclaim(inst);
        }
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        ctx.reclaim(inst);
    }
}

/// Two functions with one 100 ms kernel each (demand 1.0, no bandwidth), arriving from a CSV.
fn scenario(csv: &str, extra: &str) -> gpushare_sim::Scenario {
    let dir = common::temp_dir(&format!("engine-{:x}", csv.len() * 31 + extra.len()));
    std::fs::write(dir.join("w.csv"), csv).unwrap();
    let text = format!(
        r#"
[simulation]
horizon_s = 100.0
{extra}
[gpu_types.g]
base = "a100-80gb"
context_create_s = 0.0
memory_mib = 3000.0
context_memory_mib = 500.0

[cluster]
nodes = 1
gpus_per_node = 2
gpu = "g"

[[functions]]
name = "f"
count = 2
[functions.profile]
reference_gpu = "g"
weights_mib = 0.0
activation_mib = 500.0
container_start_s = 0.0
framework_init_s = 0.0
phases = [{{ kind = "kernel", solo_ms = 100.0, sm_pct = 100, dram_pct = 0 }}]

[workload]
kind = "csv"
path = "w.csv"

[policy]
name = "exclusive"
"#
    );
    let src = ScenarioSource::from_text(&dir.join("s.toml"), &text);
    src.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn run_packed(csv: &str, reclaim_busy: bool) -> (Result<gpushare_sim::RunOutput, SimError>, u32) {
    let refusals = std::rc::Rc::new(std::cell::Cell::new(0));
    let policy = PackOnGpu0 {
        refusals: refusals.clone(),
        reclaim_busy,
        waiting: VecDeque::new(),
    };
    let sc = scenario(csv, "");
    let out = Simulation::new(&sc, Box::new(policy), Box::new(VecSink::default()))
        .unwrap()
        .run();
    (out, refusals.get())
}

/// [`run_packed`] without rule breaking: the summary, and the refusals.
fn packed(csv: &str) -> (gpushare_sim::Summary, u32) {
    let (out, refusals) = run_packed(csv, false);
    (out.unwrap().summary, refusals)
}

#[test]
fn co_running_kernels_share_the_gpu_equally() {
    // Two 100 ms kernels of demand 1.0 start together on one GPU with a hard-knee speed curve:
    // each gets half the SMs, runs at half speed, and both end at 200 ms.
    let (s, _) = packed("time,func\n0,f-0\n0,f-1\n");
    let execution = &s.latency_s.execution;
    assert_eq!((execution.max, execution.mean), (0.2, 0.2));
    // SM occupancy: the GPU was fully used for 0.2 s of the 100 s window, GPU 1 never.
    assert!(
        (s.gpus[0].sm_occupancy - 0.002).abs() < 1e-12,
        "{}",
        s.gpus[0].sm_occupancy
    );
    assert_eq!(s.gpus[1].utilisation, 0.0);
}

#[test]
fn a_kernel_joining_midway_slows_the_others() {
    // f-0 runs alone for 50 ms (half done), then f-1 joins: both at half speed, f-0 finishes its
    // remaining 50 ms of work in 100 ms (at 150 ms), f-1 then runs alone and ends at 200 ms.
    let (s, _) = packed("time,func\n0,f-0\n0.05,f-1\n");
    let execution = &s.latency_s.execution;
    assert_eq!((execution.max, execution.mean, s.end_s), (0.15, 0.15, 100.0));
    assert!((s.gpus[0].utilisation - 0.002).abs() < 1e-12);
}

#[test]
fn memory_overcommit_is_refused() {
    // Each instance takes 500 MiB context + 500 MiB activations; the GPU has 3000 MiB: three fit,
    // the fourth is refused.
    let (s, refusals) = packed("time,func\n0,f-0\n0,f-1\n0,f-0\n0,f-1\n");
    assert_eq!(refusals, 1);
    assert_eq!(s.gpus[0].peak_memory_mib, 3000.0);
    // The refused invocation was never run or rejected: it is reported unfinished, not lost.
    assert_eq!(s.counts.arrivals, 4);
    assert_eq!(s.counts.completed, 3);
    assert_eq!(s.counts.unfinished, 1);
}

#[test]
fn a_policy_breaking_a_rule_gets_an_error_not_a_panic() {
    let (out, _) = run_packed("time,func\n0,f-0\n", true);
    match out {
        Err(SimError::Fault { policy, message, .. }) => {
            assert_eq!(policy, "pack-on-gpu0");
            assert!(message.contains("reclaimed instance 0 while it was Busy"), "{message}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("the rule violation went unnoticed"),
    }
}

fn run_exclusive(csv: &str, extra: &str) -> gpushare_sim::Summary {
    let sc = scenario(csv, extra);
    let policy = gpushare_policies::build(&sc).unwrap();
    Simulation::new(&sc, policy, Box::new(NullSink))
        .unwrap()
        .run()
        .unwrap()
        .summary
}

#[test]
fn trace_duration_overrides_execution_time() {
    let s = run_exclusive("time,func,duration\n0,f-0,0.25\n1,f-0,\n", "");
    assert_eq!(s.latency_s.execution.max, 0.25);
    assert_eq!(s.latency_s.execution.mean, (0.25 + 0.1) / 2.0);
}

#[test]
fn horizon_cuts_and_drain_finishes() {
    // An invocation arriving at 99.95 s with 100 ms of work is unfinished at the 100 s horizon …
    let s = run_exclusive("time,func\n99.95,f-0\n", "");
    assert_eq!((s.counts.completed, s.counts.unfinished), (0, 1));
    // … and completes when the run drains; arrivals after the horizon are not taken.
    let s = run_exclusive("time,func\n99.95,f-0\n100.5,f-1\n", "drain = true");
    assert_eq!((s.counts.arrivals, s.counts.completed, s.counts.unfinished), (1, 1, 0));
    assert!((s.end_s - 100.05).abs() < 1e-9, "{}", s.end_s);
}

#[test]
fn scenario_text_round_trip_via_file() {
    // The same scenario loaded from a file and from text gives the same result.
    let p = common::repo_root().join("scenarios/quickstart.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let a = ScenarioSource::load(&p).unwrap().parse().unwrap();
    let b = ScenarioSource::from_text(Path::new("x.toml"), &text).parse().unwrap();
    assert_eq!(a.functions.len(), b.functions.len());
    assert_eq!(a.gpus, b.gpus);
}

/// On every completion, reclaims every idle instance and starts one new instance (which reuses
/// a freed slot); records any callback about an instance that is not idle.
struct ReclaimOthers {
    stale: std::rc::Rc<std::cell::Cell<u32>>,
    waiting: VecDeque<InvId>,
}

impl Policy for ReclaimOthers {
    fn name(&self) -> &str {
        "reclaim-others"
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        start_for(ctx, inv).unwrap();
        self.waiting.push_back(inv);
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        if let Some(inv) = self.waiting.pop_front() {
            ctx.run(inv, inst);
        }
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        if ctx.instance(inst).state != gpushare_sim::world::InstState::Idle {
            self.stale.set(self.stale.get() + 1);
            return;
        }
        let idle: Vec<InstId> = ctx.idle_lru().collect();
        for i in idle {
            ctx.reclaim(i);
        }
        start_on_gpu0(ctx, FuncId(0)).unwrap();
    }
}

#[test]
fn a_callback_never_sees_an_instance_an_earlier_callback_reclaimed() {
    // f-0 and f-1 share GPU 0 and both finish at 200 ms, in one GPU event. The first
    // completion's callback reclaims the other (idle already) and starts a new instance in its
    // slot; the engine must not then report that slot as completed.
    let stale = std::rc::Rc::new(std::cell::Cell::new(0));
    let policy = ReclaimOthers {
        stale: stale.clone(),
        waiting: VecDeque::new(),
    };
    let sc = scenario("time,func\n0,f-0\n0,f-1\n", "");
    let s = Simulation::new(&sc, Box::new(policy), Box::new(NullSink))
        .unwrap()
        .run()
        .unwrap()
        .summary;
    assert_eq!(s.counts.completed, 2);
    assert_eq!(stale.get(), 0);
}
