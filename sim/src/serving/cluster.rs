//! The serving cluster: GPUs divided into engine slots, instances of each deployment's model
//! started (cold: container, runtime, weights from a storage tier) and stopped (keep-alive),
//! requests routed to the least-loaded ready instance, and every instance's iterations run on
//! its GPU as [`super::share`] divides it. One event loop, ordered by (time, scheduling order):
//! the same scenario gives the same run.

use super::batcher::{BatchLimits, Batcher, Finished, Seq};
use super::cost::{CostModel, IterationWork, Resources};
use super::report::{Record, Stats};
use super::share::{self, Mechanism, Running};
use super::source::Requests;
use super::spec::{ColdStartSpec, ServingFile};
use crate::ids::{FuncId, InstId};
use crate::policy::{IdleAction, IdleInstance, KeepAlive};
use crate::time::Nanos;
use gpushare_traces::llm::LlmModel;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Something that happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Deployment `d`'s next request arrives.
    Arrival(usize),
    /// Instance `i` finished starting.
    Ready(usize),
    /// Instance `i`'s iteration finished its host part.
    HostDone(usize),
    /// The earliest iteration on GPU (or slice) `g` ends, if its rates are still `version`.
    GpuDone(usize, u32),
    /// Instance `i` may have been idle for its keep-alive, if still at `version`.
    Expire(usize, u32),
    /// Deployment `d`'s keep-alive asked for an instance to be pre-warmed, kept `keep` once
    /// ready and idle.
    Prewarm(usize, Nanos),
    /// Instance `i` got a request: it plans its next iteration after everything else of this
    /// instant (so that requests arriving together start together, as an engine's step sees
    /// its whole queue).
    Kick(usize),
}

impl Ev {
    /// Order among events of the same instant: kicks last.
    fn class(self) -> u8 {
        u8::from(matches!(self, Ev::Kick(_)))
    }
}

/// A GPU or MIG slice: the iterations running on it.
pub(super) struct Processor {
    pub node: u32,
    pub resources: Resources,
    running: Vec<Running>,
    version: u32,
    anchor: Nanos,
    /// Time slicing: the instance whose context held it last, and the switch cost.
    last_inst: Option<usize>,
    switch_ns: f64,
    pub busy_ns: u64,
}

/// Where an engine can run: a processor and a share of its memory.
pub(super) struct Slot {
    pub processor: usize,
    pub memory_bytes: f64,
    pub taken: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Starting,
    Ready,
    Stopped,
}

pub(super) struct Instance {
    pub deployment: usize,
    pub slot: usize,
    pub state: State,
    pub batcher: Batcher,
    cost: CostModel,
    work: IterationWork,
    in_iteration: bool,
    version: u32,
    pub iterations: u64,
    pub batched: u64,
    created: Nanos,
    ready_at: Nanos,
    served: u64,
    /// A pre-warmed instance's keep-alive for its first idle spell, before it served anything.
    prewarm_keep: Option<Nanos>,
}

pub(super) struct Deployment {
    pub name: String,
    pub model: LlmModel,
    pub min_instances: u32,
    pub max_instances: u32,
    pub scale_up_waiting: usize,
    pub keep_alive: Box<dyn KeepAlive>,
    pub requests: Requests,
    pub arrival_pending: bool,
    pub instances: Vec<usize>,
    pub stats: Stats,
    /// Instances started (warm and cold).
    pub started: u64,
    /// Instances started ahead of requests by the keep-alive.
    pub prewarms: u64,
}

/// The run's state.
pub struct Cluster {
    pub(super) file: ServingFile,
    pub(super) mechanism: Mechanism,
    pub(super) processors: Vec<Processor>,
    pub(super) slots: Vec<Slot>,
    pub(super) instances: Vec<Instance>,
    pub(super) deployments: Vec<Deployment>,
    pub(super) limits: BatchLimits,
    /// Per node, checkpoints held in host memory and on SSD: (model, GB), least recent first.
    pub(super) dram_cache: Vec<Vec<(String, f64)>>,
    pub(super) ssd_cache: Vec<Vec<(String, f64)>>,
    pub(super) cold_starts: u64,
    /// Their durations summed.
    pub(super) cold_start_total_ns: u64,
    queue: BinaryHeap<Reverse<(Nanos, u8, u64, Ev)>>,
    seq: u64,
    pub(super) now: Nanos,
    pub(super) horizon: Nanos,
    pub(super) events: u64,
    pub(super) records: Vec<Record>,
    pub(super) keep_records: bool,
    /// Every deployment's requests together.
    pub(super) total: Stats,
    /// When the last request ended (completed or refused): the run's end.
    pub(super) last_activity: Nanos,
    /// The instances whose iteration just ended on a GPU (kept to reuse its allocation).
    done: Vec<usize>,
}

impl Cluster {
    pub(super) fn new(
        file: ServingFile,
        processors: Vec<Processor>,
        slots: Vec<Slot>,
        deployments: Vec<Deployment>,
        limits: BatchLimits,
        keep_records: bool,
    ) -> Cluster {
        let nodes = file.cluster.nodes as usize;
        Cluster {
            mechanism: file.serving.sharing,
            horizon: crate::time::secs_to_ns(file.simulation.horizon_s),
            file,
            processors,
            slots,
            instances: Vec::new(),
            deployments,
            limits,
            dram_cache: vec![Vec::new(); nodes],
            ssd_cache: vec![Vec::new(); nodes],
            cold_starts: 0,
            cold_start_total_ns: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            events: 0,
            records: Vec::new(),
            keep_records,
            total: Stats::default(),
            last_activity: 0,
            done: Vec::new(),
        }
    }

    fn push(&mut self, at: Nanos, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, ev.class(), self.seq, ev)));
    }

    /// Runs to the end: every request taken before the horizon served or refused.
    pub fn run(&mut self) -> Result<(), String> {
        for d in 0..self.deployments.len() {
            for _ in 0..self.deployments[d].min_instances {
                let i = self.start_instance(d, true).ok_or_else(|| {
                    format!(
                        "deployment `{}`: no free GPU slot for its min_instances ({})",
                        self.deployments[d].name, self.deployments[d].min_instances
                    )
                })?;
                self.instances[i].state = State::Ready;
            }
            self.schedule_arrival(d)?;
        }
        self.serve()?;
        let t = &self.total;
        if t.arrived != t.completed + t.rejected {
            return Err(format!(
                "{} requests arrived but {} completed and {} were refused: {} unaccounted for (a defect of the serving engine)",
                t.arrived,
                t.completed,
                t.rejected,
                t.arrived.abs_diff(t.completed + t.rejected)
            ));
        }
        Ok(())
    }

    /// The event loop.
    fn serve(&mut self) -> Result<(), String> {
        while let Some(Reverse((t, _, _, ev))) = self.queue.pop() {
            self.now = t;
            self.events += 1;
            match ev {
                Ev::Arrival(d) => self.arrive(d)?,
                Ev::Ready(i) => {
                    self.instances[i].state = State::Ready;
                    self.instances[i].ready_at = t;
                    self.kick(i);
                }
                Ev::HostDone(i) => self.submit(i),
                Ev::GpuDone(g, v) => {
                    if self.processors[g].version == v {
                        self.gpu_done(g)?;
                    }
                }
                Ev::Expire(i, v) => self.expire(i, v),
                Ev::Kick(i) => self.kick(i),
                Ev::Prewarm(d, keep) => self.prewarm(d, keep),
            }
        }
        Ok(())
    }

    /// Schedules deployment `d`'s next request if it comes before the horizon and none is
    /// scheduled (a closed loop's next one waits for a client).
    fn schedule_arrival(&mut self, d: usize) -> Result<(), String> {
        if self.deployments[d].arrival_pending {
            return Ok(());
        }
        if let Some(t) = self.deployments[d].requests.peek_time().map_err(|e| e.to_string())? {
            // A closed loop's client sends now: its request's time is the time it is sent.
            let t = t.max(self.now);
            if t < self.horizon {
                self.deployments[d].arrival_pending = true;
                self.push(t, Ev::Arrival(d));
            }
        }
        Ok(())
    }

    fn arrive(&mut self, d: usize) -> Result<(), String> {
        self.deployments[d].arrival_pending = false;
        let r = self.deployments[d].requests.take().map_err(|e| e.to_string())?;
        self.deployments[d].keep_alive.arrived(FuncId(0), self.now);
        self.deployments[d].stats.arrived += 1;
        self.total.arrived += 1;
        let id = self.total.arrived - 1;
        match self.route(d) {
            Some(i) => {
                let cold = self.instances[i].state == State::Starting;
                self.instances[i]
                    .batcher
                    .enqueue(Seq::new(id, self.now, r.context, r.generated, cold));
                self.take_refused(i);
                self.push(self.now, Ev::Kick(i));
            }
            None => {
                let seq = Seq::new(id, self.now, r.context, r.generated, false);
                self.record(d, usize::MAX, &seq, None);
            }
        }
        self.schedule_arrival(d)
    }

    /// The instance a request of `d` goes to: the least-loaded ready one (a starting one if
    /// none is ready), starting another when all are busy enough and a slot is free.
    fn route(&mut self, d: usize) -> Option<usize> {
        let dep = &self.deployments[d];
        let least = |ready: bool| {
            dep.instances
                .iter()
                .copied()
                .filter(|&i| (self.instances[i].state == State::Ready) == ready)
                .min_by_key(|&i| (self.instances[i].batcher.load(), i))
        };
        let best = least(true).or_else(|| least(false));
        let busy = best.is_none_or(|i| self.instances[i].batcher.waiting.len() >= dep.scale_up_waiting);
        if busy && dep.instances.len() < dep.max_instances as usize {
            if let Some(i) = self.start_instance(d, false) {
                return Some(best.unwrap_or(i));
            }
        }
        best
    }

    /// Moves requests instance `i` refused (they can never fit) to the records.
    fn take_refused(&mut self, i: usize) {
        let refused = std::mem::take(&mut self.instances[i].batcher.refused);
        let d = self.instances[i].deployment;
        for s in refused {
            self.record(d, i, &s, None);
        }
    }

    /// Starts an instance of `d` on a free slot (ready at once when `warm`), or `None`.
    fn start_instance(&mut self, d: usize, warm: bool) -> Option<usize> {
        let slot = self.pick_slot(d)?;
        self.slots[slot].taken = true;
        let model = self.deployments[d].model.clone();
        let resources = self.processors[self.slots[slot].processor].resources;
        let cost = CostModel {
            model: model.clone(),
            params: self.file.serving.cost,
            resources,
        };
        let mut limits = self.limits;
        limits.blocks = kv_blocks(&self.file, &model, self.slots[slot].memory_bytes, limits.block_tokens);
        // vLLM: int(watermark × blocks).
        limits.watermark = (limits.blocks as f64 * self.file.serving.scheduler.watermark).floor() as u64;
        let i = self.instances.len();
        self.instances.push(Instance {
            deployment: d,
            slot,
            state: State::Starting,
            batcher: Batcher::new(limits),
            cost,
            work: IterationWork::default(),
            in_iteration: false,
            version: 0,
            iterations: 0,
            batched: 0,
            created: self.now,
            ready_at: self.now,
            served: 0,
            prewarm_keep: None,
        });
        self.deployments[d].instances.push(i);
        self.deployments[d].started += 1;
        let node = self.processors[self.slots[slot].processor].node;
        let ns = self.load_time(d, node);
        if !warm {
            self.cold_starts += 1;
            self.cold_start_total_ns += ns;
            self.push(self.now.saturating_add(ns), Ev::Ready(i));
        }
        Some(i)
    }

    /// A free slot for `d`: with checkpoint caching, one on a node holding its checkpoint in
    /// host memory, else on SSD, else any; the lowest-numbered among equals.
    fn pick_slot(&self, d: usize) -> Option<usize> {
        let name = self.deployments[d].model.name;
        let holds = |cache: &Vec<Vec<(String, f64)>>, node: u32| cache[node as usize].iter().any(|(m, _)| m == name);
        let tier = |s: &Slot| {
            let node = self.processors[s.processor].node;
            if !self.file.serving.cold_start.checkpoint_cache || holds(&self.dram_cache, node) {
                0
            } else if holds(&self.ssd_cache, node) {
                1
            } else {
                2
            }
        };
        (0..self.slots.len())
            .filter(|&s| !self.slots[s].taken)
            .min_by_key(|&s| (tier(&self.slots[s]), s))
    }

    /// How long starting `d` on `node` takes, and what the node caches afterwards (a hit
    /// refreshes the checkpoint in both tiers: least recently used goes first).
    fn load_time(&mut self, d: usize, node: u32) -> Nanos {
        let c: ColdStartSpec = self.file.serving.cold_start;
        let model = &self.deployments[d].model;
        let gb = model.weights_bytes() / 1e9;
        let name = model.name.to_string();
        let n = node as usize;
        let start = |gbps: f64| crate::time::secs_to_ns(c.container_s + c.runtime_s + gb / gbps);
        if !c.checkpoint_cache {
            return start(c.remote_gbps);
        }
        let holds = |cache: &Vec<(String, f64)>| cache.iter().any(|(m, _)| *m == name);
        let bandwidth = if holds(&self.dram_cache[n]) {
            c.dram_gbps
        } else if holds(&self.ssd_cache[n]) {
            c.ssd_gbps
        } else {
            c.remote_gbps
        };
        cache_insert(&mut self.dram_cache[n], &name, gb, c.dram_cache_gb);
        cache_insert(&mut self.ssd_cache[n], &name, gb, c.ssd_cache_gb);
        start(bandwidth)
    }

    /// Starts instance `i`'s next iteration if it is ready and not in one; an idle instance
    /// waits for its keep-alive.
    fn kick(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        if inst.state != State::Ready || inst.in_iteration {
            return;
        }
        inst.work = inst.batcher.plan();
        let (work, planned, idle) = (inst.work, inst.batcher.planned(), inst.batcher.is_idle());
        self.take_refused(i);
        if work.is_empty() {
            if idle {
                self.became_idle(i);
            }
            return;
        }
        let inst = &mut self.instances[i];
        inst.in_iteration = true;
        inst.iterations += 1;
        inst.batched += planned as u64;
        let host = inst.cost.host_ns();
        if host > 0 {
            self.push(self.now.saturating_add(host), Ev::HostDone(i));
        } else {
            self.submit(i);
        }
    }

    /// Instance `i` has nothing to do: its deployment's keep-alive says how long it stays.
    fn became_idle(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        inst.version += 1;
        let (v, d) = (inst.version, inst.deployment);
        let action = match inst.prewarm_keep.filter(|_| inst.served == 0) {
            Some(keep) => IdleAction::KeepFor(Some(keep)),
            None => self.deployments[d].keep_alive.idle(&IdleInstance {
                func: FuncId(0),
                inst: InstId(i as u32),
                now: self.now,
                setup: inst.ready_at - inst.created,
                served: inst.served,
            }),
        };
        match action {
            IdleAction::KeepFor(Some(keep)) => self.push(self.now.saturating_add(keep), Ev::Expire(i, v)),
            IdleAction::KeepFor(None) => {}
            IdleAction::UnloadThenPrewarm {
                prewarm_after,
                keep_for,
            } => {
                if self.stop_if_allowed(i) {
                    self.push(self.now.saturating_add(prewarm_after), Ev::Prewarm(d, keep_for));
                }
            }
        }
    }

    /// Starts an instance of `d` ahead of its next request if it has none ready or starting
    /// and a request is still to come before the horizon.
    fn prewarm(&mut self, d: usize, keep: Nanos) {
        let dep = &self.deployments[d];
        if !dep.instances.is_empty() || dep.max_instances == 0 || !dep.arrival_pending {
            return;
        }
        if let Some(i) = self.start_instance(d, false) {
            self.instances[i].prewarm_keep = Some(keep);
            self.deployments[d].prewarms += 1;
        }
    }

    /// Puts instance `i`'s iteration on its GPU.
    fn submit(&mut self, i: usize) {
        let inst = &self.instances[i];
        let g = self.slots[inst.slot].processor;
        let w = inst.cost.gpu_work(&inst.work);
        let cap = if self.mechanism == Mechanism::Mps {
            self.file.serving.mps_cap
        } else {
            1.0
        };
        self.advance(g);
        self.processors[g].running.push(Running {
            inst: i,
            left: w.alone_ns,
            compute: w.compute,
            memory: w.memory,
            cap,
            rate: 0.0,
        });
        self.reschedule(g);
    }

    /// Brings the iterations on `g` up to now at their rates.
    fn advance(&mut self, g: usize) {
        let p = &mut self.processors[g];
        let dt = (self.now - p.anchor) as f64;
        if !p.running.is_empty() {
            p.busy_ns += self.now - p.anchor;
        }
        for r in &mut p.running {
            r.left -= r.rate * dt;
        }
        p.anchor = self.now;
    }

    /// Sets the rates on `g` and schedules its earliest completion.
    fn reschedule(&mut self, g: usize) {
        let mechanism = self.mechanism;
        let p = &mut self.processors[g];
        p.version = p.version.wrapping_add(1);
        if p.running.is_empty() {
            return;
        }
        if mechanism == Mechanism::TimeSlicing {
            let head = p.running[0].inst;
            if p.last_inst.is_some_and(|l| l != head) {
                p.running[0].left += p.switch_ns;
            }
            p.last_inst = Some(head);
        }
        share::set_rates(mechanism, &mut p.running);
        let next = p
            .running
            .iter()
            .filter(|r| r.rate > 0.0)
            .map(|r| (r.left.max(0.0) / r.rate).ceil() as Nanos)
            .min()
            .expect("something runs");
        let v = p.version;
        self.push(self.now.saturating_add(next), Ev::GpuDone(g, v));
    }

    /// Ends the iterations on `g` that are done and starts what follows.
    fn gpu_done(&mut self, g: usize) -> Result<(), String> {
        self.advance(g);
        let mut done = std::mem::take(&mut self.done);
        // Within half a nanosecond of done: the completion was scheduled at the ceiling.
        self.processors[g].running.retain(|r| {
            let finished = r.left <= 0.5;
            if finished {
                done.push(r.inst);
            }
            !finished
        });
        self.reschedule(g);
        let result = done.drain(..).try_for_each(|i| self.end_iteration(i));
        self.done = done;
        result
    }

    fn end_iteration(&mut self, i: usize) -> Result<(), String> {
        let mut out = Finished::default();
        let inst = &mut self.instances[i];
        inst.in_iteration = false;
        inst.batcher.finish(self.now, &mut out);
        let d = inst.deployment;
        inst.served += out.done.len() as u64;
        for s in &out.done {
            self.record(d, i, s, Some(self.now));
        }
        self.kick(i);
        self.schedule_arrival(d)
    }

    /// Stops idle instance `i` if its keep-alive passed (it is still at `version`).
    fn expire(&mut self, i: usize, v: u32) {
        if self.instances[i].version == v {
            self.stop_if_allowed(i);
        }
    }

    /// Stops instance `i` if it is ready, idle, and its deployment keeps more than
    /// `min_instances`; whether it did.
    fn stop_if_allowed(&mut self, i: usize) -> bool {
        let inst = &self.instances[i];
        let d = inst.deployment;
        let dep = &self.deployments[d];
        if inst.state != State::Ready || !inst.batcher.is_idle() || inst.in_iteration {
            return false;
        }
        if dep.instances.len() <= dep.min_instances as usize {
            return false;
        }
        self.instances[i].state = State::Stopped;
        let slot = self.instances[i].slot;
        self.slots[slot].taken = false;
        self.deployments[d].instances.retain(|&x| x != i);
        true
    }

    /// Accounts one request that ended (completed at `end`, or refused).
    fn record(&mut self, d: usize, inst: usize, s: &Seq, end: Option<Nanos>) {
        let slo = (
            crate::time::secs_to_ns(self.file.simulation.slo_ttft_s),
            crate::time::secs_to_ns(self.file.simulation.slo_tpot_s),
        );
        self.last_activity = self.now;
        let rec = Record::of(d, inst, s, end, slo);
        self.deployments[d].stats.add(&rec);
        self.total.add(&rec);
        self.deployments[d].requests.ended();
        if self.keep_records {
            self.records.push(rec);
        }
    }
}

/// Puts `model` at the recent end of `cache`, evicting the least recent beyond `capacity` GB.
fn cache_insert(cache: &mut Vec<(String, f64)>, model: &str, gb: f64, capacity: f64) {
    if gb > capacity {
        return;
    }
    cache.retain(|(m, _)| m != model);
    cache.push((model.to_string(), gb));
    while cache.iter().map(|(_, g)| g).sum::<f64>() > capacity {
        cache.remove(0);
    }
}

/// KV blocks of an engine with `memory_bytes` of GPU memory: what `memory_utilization` of it
/// leaves after the weights and the activations.
pub(super) fn kv_blocks(file: &ServingFile, model: &LlmModel, memory_bytes: f64, block_tokens: u64) -> u64 {
    let s = &file.serving.scheduler;
    let free = memory_bytes * (s.memory_utilization - s.activation_fraction) - model.weights_bytes();
    let block = model.kv_bytes_per_token() * block_tokens as f64;
    if free <= 0.0 { 0 } else { (free / block).floor() as u64 }
}

impl Processor {
    pub(super) fn new(node: u32, resources: Resources, switch_ns: f64) -> Processor {
        Processor {
            node,
            resources,
            running: Vec::new(),
            version: 0,
            anchor: 0,
            last_inst: None,
            switch_ns,
            busy_ns: 0,
        }
    }
}
