//! Workers, run plans and host code off the instance (the engine support KaaS is built on),
//! checked to the nanosecond through a small custom policy.

mod common;

use gpushare_sim::policy::{Ctx, ExtraWork, InstanceSpec, Partition, Policy, RunPlan};
use gpushare_sim::record::{InvocationRecord, RecordSink};
use gpushare_sim::time::ms_to_ns;
use gpushare_sim::{GpuId, InstId, InvId, ScenarioSource, SimError, Simulation};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Keeps (function, record) pairs where the test can read them after the run.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<(String, InvocationRecord<'static>)>>>);

impl RecordSink for Shared {
    fn record(&mut self, rec: &InvocationRecord<'_>) -> std::io::Result<()> {
        let owned = InvocationRecord { function: "", ..*rec };
        self.0.borrow_mut().push((rec.function.to_string(), owned));
        Ok(())
    }
}

/// What the test policy does with each invocation.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Host code first; the first GPU part gets extra copies and host time.
    Kaas,
    /// The whole profile on the worker.
    Whole,
    /// Breaks a rule: the GPU part only, without running the host code first.
    GpuPartWithoutHost,
    /// Breaks a rule: the whole profile after the host code already ran.
    WholeAfterHost,
}

/// One worker on GPU 0 (100 ms setup), started at time 0, serving every function in FIFO order.
struct OneWorker {
    mode: Mode,
    worker: Option<InstId>,
    ready: bool,
    queue: VecDeque<InvId>,
    first: bool,
}

impl OneWorker {
    fn new(mode: Mode) -> Self {
        OneWorker {
            mode,
            worker: None,
            ready: false,
            queue: VecDeque::new(),
            first: true,
        }
    }
    fn dispatch(&mut self, ctx: &mut Ctx<'_>) {
        let Some(w) = self.worker else { return };
        if !self.ready || ctx.instance(w).state != gpushare_sim::world::InstState::Idle {
            return;
        }
        let Some(inv) = self.queue.pop_front() else { return };
        match self.mode {
            Mode::Whole | Mode::WholeAfterHost => ctx.run(inv, w),
            Mode::Kaas | Mode::GpuPartWithoutHost => {
                let mut plan = RunPlan {
                    gpu_part_only: true,
                    ..RunPlan::default()
                };
                if std::mem::take(&mut self.first) {
                    // 2 ms in, 1 ms of host time, then 1 ms out (1 GB/s link: 1 byte per ns).
                    plan.before = ExtraWork {
                        h2d_bytes: 2_000_000,
                        host: ms_to_ns(1.0),
                        d2h_bytes: 0,
                    };
                    plan.after = ExtraWork {
                        d2h_bytes: 1_000_000,
                        ..ExtraWork::default()
                    };
                }
                ctx.run_plan(inv, w, plan);
            }
        }
    }
}

impl Policy for OneWorker {
    fn name(&self) -> &str {
        "one-worker"
    }
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        let spec = InstanceSpec {
            memory: 1 << 20,
            setup: ms_to_ns(100.0),
            sm_cap: 1.0,
            time_quota: 1.0,
            gpu_fraction: 1.0,
            partition: Partition::WHOLE,
        };
        self.worker = Some(ctx.start_worker(GpuId(0), spec).expect("fits"));
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        match self.mode {
            Mode::Kaas | Mode::WholeAfterHost => ctx.run_host_first(inv),
            Mode::Whole | Mode::GpuPartWithoutHost => {
                self.queue.push_back(inv);
                self.dispatch(ctx);
            }
        }
    }
    fn on_host_done(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        self.queue.push_back(inv);
        self.dispatch(ctx);
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, _inst: InstId) {
        self.ready = true;
        self.dispatch(ctx);
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, _inst: InstId) {
        self.dispatch(ctx);
    }
}

/// Functions `a`, `b`, `c`, `d`: 10 ms of host code, a 1 MiB input, a 5 ms kernel, a 0.5 MiB
/// output, 3 ms of host code; a 1 GB/s host link; arrivals from `csv`.
fn simulate(
    csv: &str,
    mode: Mode,
) -> (
    Result<gpushare_sim::Summary, SimError>,
    Vec<(String, InvocationRecord<'static>)>,
) {
    let dir = common::temp_dir(&format!("run-plans-{}", csv.len()));
    std::fs::write(dir.join("w.csv"), csv).unwrap();
    let text = r#"
[simulation]
horizon_s = 10.0
[gpu_types.g]
base = "a100-80gb"
host_link_gbps = 1.0
[cluster]
nodes = 1
gpus_per_node = 1
gpu = "g"
[profiles.p]
reference_gpu = "g"
weights_mib = 0.0
activation_mib = 0.0
container_start_s = 0.0
framework_init_s = 0.0
host_pre_ms = 10.0
host_post_ms = 3.0
phases = [
  { kind = "h2d", mib = 1.0 },
  { kind = "kernel", solo_ms = 5.0, sm_pct = 100, dram_pct = 0 },
  { kind = "d2h", mib = 0.5 },
]
[[functions]]
name = "a"
profile = "p"
[[functions]]
name = "b"
profile = "p"
[[functions]]
name = "c"
profile = "p"
[[functions]]
name = "d"
profile = "p"
[workload]
kind = "csv"
path = "w.csv"
[policy]
name = "exclusive"
"#;
    let sc = ScenarioSource::from_text(&dir.join("s.toml"), text).parse().unwrap();
    let sink = Shared::default();
    let out = Simulation::new(&sc, Box::new(OneWorker::new(mode)), Box::new(sink.clone()))
        .unwrap()
        .run()
        .map(|o| o.summary);
    let recs = sink.0.borrow().clone();
    (out, recs)
}

fn ms(ns: Option<u64>) -> f64 {
    ns.expect("set") as f64 / 1e6
}

#[test]
fn host_code_runs_off_the_worker_and_plans_add_their_copies() {
    let (out, recs) = simulate("time,func\n0,a\n0.099,c\n0.105,b\n", Mode::Kaas);
    let s = out.unwrap();
    assert_eq!((s.counts.completed, s.counts.unfinished), (3, 0));
    let rec = |f: &str| recs.iter().find(|(n, _)| n == f).expect("recorded").1;
    // a: host code 0–10 ms on the CPU; the worker is ready at 100 ms (a waited 90 ms on its
    // setup: cold); 2 ms in, 1 ms host, 5 ms kernel, 1 ms out: the worker is free at 109 ms;
    // host code 109–112 ms. Its own 1 MiB / 0.5 MiB copies are the policy's to make: left out.
    let a = rec("a");
    assert!(a.cold);
    assert_eq!((ms(a.setup), ms(a.queue), ms(a.end)), (90.0, 0.0, 112.0));
    assert_eq!(ms(a.exec), 10.0 + 2.0 + 1.0 + 5.0 + 1.0 + 3.0);
    // c: host code 99–109 ms, then the worker the moment a's part ends (a is still in its host
    // code): kernel 109–114, host code 114–117.
    let c = rec("c");
    assert_eq!((ms(c.queue), ms(c.end), c.cold), (0.0, 117.0, false));
    // b: host code 105–115 ms, the worker idle since 114: kernel 115–120, host code to 123.
    let b = rec("b");
    assert_eq!((ms(b.queue), ms(b.end), ms(b.exec)), (0.0, 123.0, 18.0));
    assert_eq!((b.gpu, b.node), (Some(0), Some(0)));
    // The worker counts as one instance, ready once.
    assert_eq!(s.instances.created, 1);
}

#[test]
fn a_worker_runs_any_function_whole() {
    // d arrives at 200 ms (the worker is warm): the whole profile on the worker — host 10 ms,
    // 1 MiB in at 1 GB/s, 5 ms kernel, 0.5 MiB out, host 3 ms.
    let (out, recs) = simulate("time,func\n0.2,d\n0.3,a\n", Mode::Whole);
    assert_eq!(out.unwrap().counts.completed, 2);
    let d = recs.iter().find(|(n, _)| n == "d").unwrap().1;
    let copies = (1_048_576 + 524_288) as f64 / 1e6;
    assert!((ms(d.exec) - (18.0 + copies)).abs() < 1e-9, "{}", ms(d.exec));
    assert_eq!(ms(d.queue), 0.0);
}

#[test]
fn mixing_host_first_and_whole_runs_is_an_error() {
    for (mode, says) in [
        (Mode::GpuPartWithoutHost, "without running its host code first"),
        (Mode::WholeAfterHost, "after its host code had already run"),
    ] {
        match simulate("time,func\n0.2,a\n", mode).0 {
            Err(SimError::Fault { message, .. }) => assert!(message.contains(says), "{message}"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("the rule violation went unnoticed"),
        }
    }
}
