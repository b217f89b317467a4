//! The simulated world: GPUs, instances, in-flight invocations, and the mechanics that move them.
//!
//! This module owns the state the engine advances and the rules it enforces: an instance's
//! lifecycle (starting → idle ↔ busy → reclaimed), per-GPU memory accounting that refuses
//! overcommit, and the GPU execution model — phases progress at rates set by the policy's
//! [`Sharing`] discipline and the speed model, and only the earliest completion per GPU is in the
//! event queue, cancelled by a generation counter when rates change. Policies reach it only
//! through [`Ctx`].

use crate::device::DeviceSpec;
use crate::events::{Event, EventQueue};
use crate::ids::{FuncId, GpuId, InstId, InvId};
use crate::metrics::Metrics;
use crate::policy::Sharing;
use crate::profile::{CompiledProfile, PhaseKind, SetupParts, Step};
use crate::record::{InvocationRecord, Outcome, RecordSink, RejectReason};
use crate::speed;
use crate::time::Nanos;
use std::collections::BTreeSet;

const NIL: u32 = u32::MAX;

/// A function as the engine sees it: its name and its profile compiled for each device type.
pub struct FunctionInfo {
    pub name: String,
    /// Indexed by device type (position in [`World::devices`]).
    pub compiled: Vec<CompiledProfile>,
}

/// A phase running on a GPU.
#[derive(Clone, Copy, Debug)]
pub struct ActivePhase {
    pub inst: InstId,
    pub kind: PhaseKind,
    pub sm_demand: f64,
    pub bw_intensity: f64,
    /// The instance's SM cap (e.g. an MPS active-thread percentage), a fraction.
    pub sm_cap: f64,
    /// The instance's time quota, a fraction.
    pub time_quota: f64,
    /// Fraction of the GPU's SMs while the phase runs, set by the [`Sharing`] discipline.
    pub share: f64,
    /// Fraction of time the phase's context holds the GPU (time slicing, time quotas), set by
    /// the discipline; 1 when contexts run concurrently.
    pub time_share: f64,
    /// Speed-curve sharpness of this phase.
    pub knee: f64,
    rate: f64,
    /// Solo work left, in ns of the phase running alone.
    remaining: f64,
    /// Time this phase ran (kernels only), added to its instance when it ends.
    busy: u64,
}

impl ActivePhase {
    /// True for kernel phases (the ones that use SMs).
    pub fn is_kernel(&self) -> bool {
        self.kind == PhaseKind::Kernel
    }
    /// Current progress rate relative to running alone.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// One GPU and its accounting.
pub struct Gpu {
    pub node: u32,
    /// Device type: index into [`World::devices`].
    pub device: usize,
    pub mem_capacity: u64,
    pub mem_used: u64,
    pub mem_peak: u64,
    /// Instances placed on this GPU (any state but reclaimed).
    pub instances: u32,
    /// Σ SM cap of those instances (MPS packing).
    pub sm_cap_sum: f64,
    /// Σ SM cap × time quota of those instances (FaST-GShare admission).
    pub quota_sm_sum: f64,
    phases: Vec<ActivePhase>,
    generation: u32,
    last_update: Nanos,
    dirty: bool,
    /// Measured-window time with at least one kernel active, and ∫ SMs used dt.
    pub(crate) busy_ns: u64,
    pub(crate) sm_used_ns: f64,
    sm_used_now: f64,
}

impl Gpu {
    /// The phases active now.
    pub fn phases(&self) -> &[ActivePhase] {
        &self.phases
    }
    /// Free memory in bytes.
    pub fn mem_free(&self) -> u64 {
        self.mem_capacity - self.mem_used
    }
}

/// Lifecycle state of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstState {
    /// Cold-starting (setup in progress).
    Starting,
    /// Warm and idle.
    Idle,
    /// Running an invocation.
    Busy,
    /// Reclaimed; the slot is free for reuse.
    Free,
}

#[derive(Clone, Copy, Debug)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links { prev: NIL, next: NIL };

#[derive(Clone, Copy, Debug)]
struct ListHead {
    head: u32,
    tail: u32,
}

const EMPTY_LIST: ListHead = ListHead { head: NIL, tail: NIL };

/// A function instance (a sandbox with its CUDA context) on one GPU.
#[derive(Clone, Debug)]
pub struct Instance {
    pub func: FuncId,
    pub gpu: GpuId,
    pub state: InstState,
    pub created: Nanos,
    pub ready_at: Nanos,
    pub idle_since: Nanos,
    /// Invocations completed on this instance.
    pub served: u64,
    pub memory: u64,
    pub sm_cap: f64,
    pub time_quota: f64,
    pub gpu_fraction: f64,
    /// Time during which one of its kernels ran (time share > 0), ns, up to its last finished
    /// kernel phase; [`Ctx::kernel_busy_ns`] includes the one running now.
    pub kernel_busy_ns: u64,
    epoch: u32,
    /// Counts the lives of this slot, so events of a reclaimed instance never touch its successor.
    incarnation: u32,
    /// Keep-alive deadline of the current idle period, if the policy set one.
    expiry: Option<Nanos>,
    /// Time of the earliest `IdleExpired` event pending for this instance, if any.
    expiry_event_at: Option<Nanos>,
    current: InvId,
    step: u32,
    scale: f64,
    /// Intrusive links: [0] in its function's idle list, [1] in the global idle list.
    links: [Links; 2],
}

/// Lifecycle state of an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvState {
    Waiting,
    Running,
    Free,
}

/// An invocation in flight (arrived, not yet ended).
#[derive(Clone, Debug)]
pub struct Invocation {
    /// Arrival order, from 0.
    pub id: u64,
    pub func: FuncId,
    pub arrival: Nanos,
    /// Execution time given by the trace, if any.
    pub duration: Option<Nanos>,
    state: InvState,
    start: Nanos,
    setup: Nanos,
    cold: bool,
}

/// What a new instance takes and costs; see [`Ctx::default_instance`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceSpec {
    /// Device memory reserved for the instance's whole life, bytes.
    pub memory: u64,
    /// Setup (cold-start) duration.
    pub setup: Nanos,
    /// Cap on the SM share of its kernels (1.0 = none).
    pub sm_cap: f64,
    /// Fraction of time its kernels may hold the GPU (a time quota; 1.0 = none).
    pub time_quota: f64,
    /// Fraction of the GPU it is charged for in GPU-seconds allocated.
    pub gpu_fraction: f64,
}

/// Why the engine refused an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not enough free device memory on that GPU.
    Memory { needed: u64, free: u64 },
}

/// The state of a simulation.
pub struct World {
    pub(crate) now: Nanos,
    pub(crate) events: EventQueue,
    pub(crate) functions: Vec<FunctionInfo>,
    pub(crate) devices: Vec<DeviceSpec>,
    pub(crate) gpus: Vec<Gpu>,
    instances: Vec<Instance>,
    free_instances: Vec<u32>,
    invocations: Vec<Invocation>,
    free_invocations: Vec<u32>,
    pub(crate) live_invocations: u64,
    next_inv_id: u64,
    func_idle: Vec<ListHead>,
    global_idle: ListHead,
    empty_gpus: BTreeSet<u32>,
    func_alive: Vec<u32>,
    func_starting: Vec<u32>,
    dirty: Vec<GpuId>,
    /// Reused buffer for the instances whose phases finished in one GPU event.
    scratch: Vec<InstId>,
    sharing: Box<dyn Sharing>,
    pub(crate) metrics: Metrics,
    pub(crate) sink: Box<dyn RecordSink>,
    /// `sink.wants_records()`, read once.
    records: bool,
    /// A rule the policy broke, or an output error: ends the run with an error.
    pub(crate) fault: Option<String>,
}

impl World {
    pub(crate) fn new(
        functions: Vec<FunctionInfo>,
        devices: Vec<DeviceSpec>,
        gpu_layout: &[(u32, usize)],
        sharing: Box<dyn Sharing>,
        metrics: Metrics,
        sink: Box<dyn RecordSink>,
    ) -> Self {
        let gpus: Vec<Gpu> = gpu_layout
            .iter()
            .map(|&(node, device)| Gpu {
                node,
                device,
                mem_capacity: devices[device].memory_bytes(),
                mem_used: 0,
                mem_peak: 0,
                instances: 0,
                sm_cap_sum: 0.0,
                quota_sm_sum: 0.0,
                phases: Vec::new(),
                generation: 0,
                last_update: 0,
                dirty: false,
                busy_ns: 0,
                sm_used_ns: 0.0,
                sm_used_now: 0.0,
            })
            .collect();
        let n = functions.len();
        World {
            now: 0,
            events: EventQueue::default(),
            empty_gpus: (0..gpus.len() as u32).collect(),
            functions,
            devices,
            gpus,
            instances: Vec::new(),
            free_instances: Vec::new(),
            invocations: Vec::new(),
            free_invocations: Vec::new(),
            live_invocations: 0,
            next_inv_id: 0,
            func_idle: vec![EMPTY_LIST; n],
            global_idle: EMPTY_LIST,
            func_alive: vec![0; n],
            func_starting: vec![0; n],
            dirty: Vec::new(),
            scratch: Vec::new(),
            sharing,
            metrics,
            records: sink.wants_records(),
            sink,
            fault: None,
        }
    }

    fn compiled(&self, func: FuncId, gpu: GpuId) -> &CompiledProfile {
        &self.functions[func.ix()].compiled[self.gpus[gpu.ix()].device]
    }

    fn fail(&mut self, msg: String) {
        if self.fault.is_none() {
            self.fault = Some(msg);
        }
    }

    // ---- idle lists (intrusive, O(1)) -------------------------------------------------------

    fn list_head(&mut self, which: usize, func: FuncId) -> &mut ListHead {
        if which == 0 {
            &mut self.func_idle[func.ix()]
        } else {
            &mut self.global_idle
        }
    }

    fn list_push_front(&mut self, which: usize, inst: InstId) {
        let func = self.instances[inst.ix()].func;
        let old_head = self.list_head(which, func).head;
        self.instances[inst.ix()].links[which] = Links {
            prev: NIL,
            next: old_head,
        };
        if old_head != NIL {
            self.instances[old_head as usize].links[which].prev = inst.0;
        }
        let h = self.list_head(which, func);
        h.head = inst.0;
        if h.tail == NIL {
            h.tail = inst.0;
        }
    }

    fn list_remove(&mut self, which: usize, inst: InstId) {
        let Links { prev, next } = self.instances[inst.ix()].links[which];
        let func = self.instances[inst.ix()].func;
        if prev != NIL {
            self.instances[prev as usize].links[which].next = next;
        } else {
            self.list_head(which, func).head = next;
        }
        if next != NIL {
            self.instances[next as usize].links[which].prev = prev;
        } else {
            self.list_head(which, func).tail = prev;
        }
        self.instances[inst.ix()].links[which] = UNLINKED;
    }

    fn become_idle(&mut self, inst: InstId) {
        let i = &mut self.instances[inst.ix()];
        i.state = InstState::Idle;
        i.expiry = None;
        i.epoch = i.epoch.wrapping_add(1);
        i.idle_since = self.now;
        self.list_push_front(0, inst);
        self.list_push_front(1, inst);
    }

    fn leave_idle(&mut self, inst: InstId) {
        self.list_remove(0, inst);
        self.list_remove(1, inst);
        let i = &self.instances[inst.ix()];
        self.metrics.idle_ended(i.idle_since, self.now, i.gpu_fraction);
    }

    // ---- instances ---------------------------------------------------------------------------

    pub(crate) fn start_instance(&mut self, func: FuncId, gpu: GpuId, spec: InstanceSpec) -> Result<InstId, Refusal> {
        let g = &mut self.gpus[gpu.ix()];
        if spec.memory > g.mem_free() {
            return Err(Refusal::Memory {
                needed: spec.memory,
                free: g.mem_free(),
            });
        }
        g.mem_used += spec.memory;
        g.mem_peak = g.mem_peak.max(g.mem_used);
        g.instances += 1;
        g.sm_cap_sum += spec.sm_cap;
        g.quota_sm_sum += spec.sm_cap * spec.time_quota;
        self.empty_gpus.remove(&gpu.0);
        let inst = Instance {
            func,
            gpu,
            state: InstState::Starting,
            created: self.now,
            ready_at: self.now,
            idle_since: self.now,
            served: 0,
            memory: spec.memory,
            sm_cap: spec.sm_cap,
            time_quota: spec.time_quota,
            gpu_fraction: spec.gpu_fraction,
            kernel_busy_ns: 0,
            epoch: 0,
            incarnation: 0,
            expiry: None,
            expiry_event_at: None,
            current: InvId(NIL),
            step: 0,
            scale: 1.0,
            links: [UNLINKED; 2],
        };
        let id = match self.free_instances.pop() {
            Some(slot) => {
                let old = &self.instances[slot as usize];
                let (epoch, incarnation) = (old.epoch.wrapping_add(1), old.incarnation.wrapping_add(1));
                self.instances[slot as usize] = Instance {
                    epoch,
                    incarnation,
                    ..inst
                };
                InstId(slot)
            }
            None => {
                self.instances.push(inst);
                InstId(self.instances.len() as u32 - 1)
            }
        };
        self.func_alive[func.ix()] += 1;
        self.func_starting[func.ix()] += 1;
        self.metrics.instance_created();
        let epoch = self.instances[id.ix()].epoch;
        self.events
            .push(self.now + spec.setup, Event::SetupDone { inst: id, epoch });
        Ok(id)
    }

    /// Handles a `SetupDone` event; returns the instance if the event was current.
    pub(crate) fn setup_done(&mut self, inst: InstId, epoch: u32) -> Option<InstId> {
        let i = &mut self.instances[inst.ix()];
        if i.state != InstState::Starting || i.epoch != epoch {
            return None;
        }
        i.ready_at = self.now;
        let func = i.func;
        self.func_starting[func.ix()] -= 1;
        self.become_idle(inst);
        Some(inst)
    }

    /// Handles an `IdleExpired` event; returns the instance if its keep-alive has run out.
    ///
    /// Keep-alive is lazy: an instance has at most one pending expiry event, armed at the
    /// earliest deadline set. When it fires, a later deadline (the instance was used meanwhile and
    /// idled again) re-arms it instead of expiring. This keeps the heap at O(instances) instead of
    /// one stale event per completion.
    pub(crate) fn idle_expired(&mut self, inst: InstId, incarnation: u32) -> Option<InstId> {
        let now = self.now;
        let i = &mut self.instances[inst.ix()];
        if i.incarnation != incarnation || i.state == InstState::Free {
            return None;
        }
        if i.expiry_event_at == Some(now) {
            i.expiry_event_at = None;
        }
        match (i.state, i.expiry) {
            (InstState::Idle, Some(deadline)) if deadline <= now => {
                i.expiry = None;
                Some(inst)
            }
            (InstState::Idle, Some(deadline)) if i.expiry_event_at.is_none() => {
                i.expiry_event_at = Some(deadline);
                self.events.push(deadline, Event::IdleExpired { inst, incarnation });
                None
            }
            _ => None,
        }
    }

    pub(crate) fn reclaim(&mut self, inst: InstId) {
        if self.instances[inst.ix()].state != InstState::Idle {
            let s = self.instances[inst.ix()].state;
            self.fail(format!(
                "the policy reclaimed instance {} while it was {s:?}; only idle instances can be reclaimed",
                inst.0
            ));
            return;
        }
        self.leave_idle(inst);
        let i = &mut self.instances[inst.ix()];
        i.state = InstState::Free;
        i.epoch = i.epoch.wrapping_add(1);
        let (func, gpu, memory, created, fraction) = (i.func, i.gpu, i.memory, i.created, i.gpu_fraction);
        let (cap, quota) = (i.sm_cap, i.time_quota);
        self.free_instances.push(inst.0);
        self.func_alive[func.ix()] -= 1;
        let g = &mut self.gpus[gpu.ix()];
        g.mem_used -= memory;
        g.instances -= 1;
        g.sm_cap_sum -= cap;
        g.quota_sm_sum -= cap * quota;
        if g.instances == 0 {
            self.empty_gpus.insert(gpu.0);
            // Exact zero, so that float residue never blocks an empty GPU.
            g.sm_cap_sum = 0.0;
            g.quota_sm_sum = 0.0;
        }
        self.metrics.instance_ended(created, self.now, fraction, true);
    }

    pub(crate) fn keep_alive(&mut self, inst: InstId, ttl: Option<Nanos>) {
        let now = self.now;
        let i = &mut self.instances[inst.ix()];
        if i.state != InstState::Idle {
            let s = i.state;
            self.fail(format!(
                "the policy set a keep-alive on instance {} while it was {s:?}",
                inst.0
            ));
            return;
        }
        i.expiry = ttl.map(|t| now.saturating_add(t));
        if let Some(deadline) = i.expiry {
            if i.expiry_event_at.is_none_or(|at| at > deadline) {
                i.expiry_event_at = Some(deadline);
                let incarnation = i.incarnation;
                self.events.push(deadline, Event::IdleExpired { inst, incarnation });
            }
        }
    }

    // ---- invocations -------------------------------------------------------------------------

    pub(crate) fn arrive(&mut self, func: FuncId, arrival: Nanos, duration: Option<Nanos>) -> InvId {
        let inv = Invocation {
            id: self.next_inv_id,
            func,
            arrival,
            duration,
            state: InvState::Waiting,
            start: 0,
            setup: 0,
            cold: false,
        };
        self.next_inv_id += 1;
        self.live_invocations += 1;
        self.metrics.arrival(func.ix(), arrival);
        match self.free_invocations.pop() {
            Some(slot) => {
                self.invocations[slot as usize] = inv;
                InvId(slot)
            }
            None => {
                self.invocations.push(inv);
                InvId(self.invocations.len() as u32 - 1)
            }
        }
    }

    fn end_invocation(&mut self, inv: InvId) {
        self.invocations[inv.ix()].state = InvState::Free;
        self.free_invocations.push(inv.0);
        self.live_invocations -= 1;
    }

    pub(crate) fn reject(&mut self, inv: InvId, reason: RejectReason) {
        let v = &self.invocations[inv.ix()];
        if v.state != InvState::Waiting {
            self.fail(format!("the policy rejected invocation {} after it had started", v.id));
            return;
        }
        let (id, func, arrival) = (v.id, v.func, v.arrival);
        self.metrics.rejection(func.ix(), reason);
        if let Err(e) = self.sink.record(&InvocationRecord {
            id,
            function: &self.functions[func.ix()].name,
            arrival,
            start: None,
            end: None,
            queue: None,
            setup: None,
            exec: None,
            cold: false,
            node: None,
            gpu: None,
            outcome: Outcome::Rejected(reason),
        }) {
            self.fail(format!("writing invocation records failed: {e}"));
        }
        self.end_invocation(inv);
    }

    /// Starts `inv` on idle instance `inst`.
    pub(crate) fn run(&mut self, inv: InvId, inst: InstId) {
        let (i, v) = (&self.instances[inst.ix()], &self.invocations[inv.ix()]);
        if i.state != InstState::Idle || v.state != InvState::Waiting || i.func != v.func {
            let msg = format!(
                "the policy ran invocation {} ({:?}, function {}) on instance {} ({:?}, function {}); \
                 an invocation must be waiting and the instance idle and of the same function",
                v.id, v.state, v.func.0, inst.0, i.state, i.func.0
            );
            self.fail(msg);
            return;
        }
        let (func, gpu, created, ready_at, first) = (i.func, i.gpu, i.created, i.ready_at, i.served == 0);
        self.leave_idle(inst);
        let now = self.now;
        let v = &mut self.invocations[inv.ix()];
        v.state = InvState::Running;
        v.start = now;
        // Cold: the invocation waited on this instance's setup.
        v.cold = first && v.arrival < ready_at;
        v.setup = if v.cold { ready_at - v.arrival.max(created) } else { 0 };
        let scale = match v.duration {
            Some(d) => {
                let solo = self.compiled(func, gpu).solo_exec;
                if solo == 0 { 1.0 } else { d as f64 / solo as f64 }
            }
            None => 1.0,
        };
        let i = &mut self.instances[inst.ix()];
        i.state = InstState::Busy;
        i.epoch = i.epoch.wrapping_add(1);
        i.current = inv;
        i.step = u32::MAX;
        i.scale = scale;
        if self.advance(inst) {
            // Nothing to execute: complete through the event loop, never inside a callback.
            let epoch = self.instances[inst.ix()].epoch;
            self.events.push(now, Event::HostStepDone { inst, epoch });
        }
    }

    /// Moves `inst` to its next non-empty step; true when its invocation has no steps left.
    fn advance(&mut self, inst: InstId) -> bool {
        loop {
            let i = &mut self.instances[inst.ix()];
            i.step = i.step.wrapping_add(1);
            let (func, gpu, step, scale, epoch, sm_cap, time_quota) =
                (i.func, i.gpu, i.step, i.scale, i.epoch, i.sm_cap, i.time_quota);
            let Some(&s) = self.compiled(func, gpu).steps.get(step as usize) else {
                return true;
            };
            let scaled = |ns: Nanos| {
                if scale == 1.0 {
                    ns
                } else {
                    (ns as f64 * scale).round() as Nanos
                }
            };
            match s {
                Step::Host(ns) => {
                    let ns = scaled(ns);
                    if ns > 0 {
                        self.events.push(self.now + ns, Event::HostStepDone { inst, epoch });
                        return false;
                    }
                }
                Step::Gpu(p) => {
                    let work = scaled(p.work);
                    if work > 0 {
                        self.touch_gpu(gpu);
                        let g = &mut self.gpus[gpu.ix()];
                        g.phases.push(ActivePhase {
                            inst,
                            kind: p.kind,
                            sm_demand: p.sm_demand,
                            bw_intensity: p.bw_intensity,
                            sm_cap,
                            time_quota,
                            share: 0.0,
                            time_share: 1.0,
                            knee: p.knee,
                            rate: 0.0,
                            remaining: work as f64,
                            busy: 0,
                        });
                        self.mark_dirty(gpu);
                        return false;
                    }
                }
            }
        }
    }

    /// Handles a `HostStepDone` event; returns the instance if its invocation just finished.
    pub(crate) fn host_step_done(&mut self, inst: InstId, epoch: u32) -> Option<InstId> {
        let i = &self.instances[inst.ix()];
        if i.state != InstState::Busy || i.epoch != epoch {
            return None;
        }
        if self.advance(inst) {
            self.finish(inst);
            return Some(inst);
        }
        None
    }

    /// Completes the invocation running on `inst`; the instance becomes idle.
    fn finish(&mut self, inst: InstId) {
        let now = self.now;
        let i = &mut self.instances[inst.ix()];
        let (inv, func, gpu) = (i.current, i.func, i.gpu);
        i.served += 1;
        i.current = InvId(NIL);
        let v = &self.invocations[inv.ix()];
        let (id, arrival, start, setup, cold) = (v.id, v.arrival, v.start, v.setup, v.cold);
        let queue = start - arrival - setup;
        let exec = now - start;
        self.metrics.completion(func.ix(), arrival, queue, setup, exec, cold);
        self.end_invocation(inv);
        self.become_idle(inst);
        if !self.records {
            return;
        }
        let rec = InvocationRecord {
            id,
            function: &self.functions[func.ix()].name,
            arrival,
            start: Some(start),
            end: Some(now),
            queue: Some(queue),
            setup: Some(setup),
            exec: Some(exec),
            cold,
            node: Some(self.gpus[gpu.ix()].node),
            gpu: Some(gpu.0),
            outcome: Outcome::Completed,
        };
        if let Err(e) = self.sink.record(&rec) {
            self.fail(format!("writing invocation records failed: {e}"));
        }
    }

    /// Crashes an instance (a fatal fault in its process): the invocation it was running, if
    /// any, fails; its phases leave the GPU; it is reclaimed.
    pub(crate) fn crash(&mut self, inst: InstId) {
        let state = self.instances[inst.ix()].state;
        match state {
            InstState::Free => return,
            InstState::Starting => {
                let func = self.instances[inst.ix()].func;
                self.func_starting[func.ix()] -= 1;
            }
            InstState::Idle => self.leave_idle(inst),
            InstState::Busy => {
                let (gpu, inv, func) = {
                    let i = &self.instances[inst.ix()];
                    (i.gpu, i.current, i.func)
                };
                self.touch_gpu(gpu);
                self.gpus[gpu.ix()].phases.retain(|p| p.inst != inst);
                self.mark_dirty(gpu);
                // (Its busy time dies with it: the instance is reclaimed below.)
                let v = &self.invocations[inv.ix()];
                let (id, arrival, start, setup, cold) = (v.id, v.arrival, v.start, v.setup, v.cold);
                self.metrics.failed += 1;
                self.metrics.per_func[func.ix()].failed += 1;
                if self.records {
                    let rec = InvocationRecord {
                        id,
                        function: &self.functions[func.ix()].name,
                        arrival,
                        start: Some(start),
                        end: Some(self.now),
                        queue: Some(start - arrival - setup),
                        setup: Some(setup),
                        exec: Some(self.now - start),
                        cold,
                        node: Some(self.gpus[gpu.ix()].node),
                        gpu: Some(gpu.0),
                        outcome: Outcome::Failed,
                    };
                    if let Err(e) = self.sink.record(&rec) {
                        self.fail(format!("writing invocation records failed: {e}"));
                    }
                }
                self.end_invocation(inv);
                self.instances[inst.ix()].current = InvId(NIL);
            }
        }
        // Reclaim through the usual path (memory, counts, GPU-seconds).
        let i = &mut self.instances[inst.ix()];
        i.state = InstState::Idle;
        self.list_push_front(0, inst);
        self.list_push_front(1, inst);
        self.reclaim(inst);
    }

    // ---- GPU execution -----------------------------------------------------------------------

    /// Brings a GPU's phases and integrals up to `now` at their current rates.
    fn touch_gpu(&mut self, gpu: GpuId) {
        let (now, warmup) = (self.now, self.metrics.warmup);
        let g = &mut self.gpus[gpu.ix()];
        let dt = now - g.last_update;
        if dt == 0 {
            return;
        }
        let from = g.last_update.max(warmup);
        if now > from && !g.phases.is_empty() {
            let m = now - from;
            if g.sm_used_now > 0.0 {
                g.busy_ns += m;
                g.sm_used_ns += m as f64 * g.sm_used_now;
            }
        }
        for p in &mut g.phases {
            p.remaining -= p.rate * dt as f64;
            if p.rate > 0.0 && p.is_kernel() {
                p.busy += dt;
            }
        }
        g.last_update = now;
    }

    fn mark_dirty(&mut self, gpu: GpuId) {
        let g = &mut self.gpus[gpu.ix()];
        if !g.dirty {
            g.dirty = true;
            self.dirty.push(gpu);
        }
    }

    /// Handles a `GpuPhaseDone` event: removes the finished phases and advances their
    /// instances. Returns the instances whose invocations finished.
    pub(crate) fn gpu_phase_done(&mut self, gpu: GpuId, generation: u32, finished: &mut Vec<InstId>) {
        if self.gpus[gpu.ix()].generation != generation {
            return;
        }
        self.touch_gpu(gpu);
        let mut done_phases = std::mem::take(&mut self.scratch);
        let instances = &mut self.instances;
        self.gpus[gpu.ix()].phases.retain(|p| {
            // Completion times are rounded up, so a finished phase has at most rounding noise left.
            let done = p.remaining < 0.5;
            if done {
                done_phases.push(p.inst);
                instances[p.inst.ix()].kernel_busy_ns += p.busy;
            }
            !done
        });
        self.mark_dirty(gpu);
        for inst in done_phases.drain(..) {
            if self.advance(inst) {
                self.finish(inst);
                finished.push(inst);
            }
        }
        self.scratch = done_phases;
    }

    /// Re-assigns shares and rates on every GPU whose phase set changed, and schedules each one's
    /// next completion.
    pub(crate) fn flush_gpus(&mut self) {
        while let Some(gpu) = self.dirty.pop() {
            let now = self.now;
            let g = &mut self.gpus[gpu.ix()];
            g.dirty = false;
            g.generation = g.generation.wrapping_add(1);
            if g.phases.is_empty() {
                // Nothing runs: no shares to assign and no completion to schedule.
                g.sm_used_now = 0.0;
                continue;
            }
            let dev = &self.devices[g.device];
            let recheck = self.sharing.assign_shares(gpu, now, &mut g.phases);
            // Contexts that take turns never co-run, so they cannot interfere.
            let kappa = if self.sharing.concurrent() {
                dev.interference
            } else {
                0.0
            };
            let (mut h2d, mut d2h, mut share_sum, mut used, mut pressure) = (0u32, 0u32, 0.0, 0.0, 0.0);
            for p in &g.phases {
                match p.kind {
                    PhaseKind::Kernel => {
                        share_sum += p.share * p.time_share;
                        let u = p.time_share * speed::sm_used(p.share, p.sm_demand);
                        used += u;
                        pressure += p.bw_intensity * u;
                    }
                    PhaseKind::H2d => h2d += 1,
                    PhaseKind::D2h => d2h += 1,
                }
            }
            if share_sum > 1.0 + 1e-9 {
                let msg = format!(
                    "the sharing discipline gave GPU {} SM shares × time shares summing to {share_sum:.4} (> 1)",
                    gpu.0
                );
                self.fail(msg);
                return;
            }
            let mut next: Option<Nanos> = None;
            for p in &mut g.phases {
                p.rate = match p.kind {
                    PhaseKind::Kernel => {
                        let u = p.time_share * speed::sm_used(p.share, p.sm_demand);
                        let others = pressure - p.bw_intensity * u;
                        p.time_share * speed::kernel_rate(p.share, p.sm_demand, p.knee)
                            / speed::interference_divisor(kappa, p.bw_intensity, others)
                    }
                    // Copies in one direction share that direction of the host link equally.
                    PhaseKind::H2d => 1.0 / f64::from(h2d),
                    PhaseKind::D2h => 1.0 / f64::from(d2h),
                };
                if p.rate > 0.0 {
                    let dt = (p.remaining.max(0.0) / p.rate).ceil() as Nanos;
                    next = Some(next.map_or(dt, |n| n.min(dt)));
                }
            }
            g.sm_used_now = used.min(1.0);
            if let Some(at) = recheck.filter(|&t| t > now) {
                next = Some(next.map_or(at - now, |n| n.min(at - now)));
            }
            if let Some(dt) = next {
                let generation = g.generation;
                self.events.push(now + dt, Event::GpuPhaseDone { gpu, generation });
            } else {
                self.fail(format!(
                    "the sharing discipline left every phase on GPU {} without SMs",
                    gpu.0
                ));
            }
        }
    }

    /// Brings every GPU's integrals to `now` (end of run).
    pub(crate) fn settle(&mut self) {
        for g in 0..self.gpus.len() {
            self.touch_gpu(GpuId(g as u32));
        }
        let now = self.now;
        for i in self.instances.iter().filter(|i| i.state != InstState::Free) {
            self.metrics.instance_ended(i.created, now, i.gpu_fraction, false);
            if i.state == InstState::Idle {
                self.metrics.idle_ended(i.idle_since, now, i.gpu_fraction);
            }
        }
    }

    /// Reports every invocation still in flight as unfinished, in arrival order.
    pub(crate) fn report_unfinished(&mut self) {
        let mut live: Vec<u32> = (0..self.invocations.len() as u32)
            .filter(|&s| self.invocations[s as usize].state != InvState::Free)
            .collect();
        live.sort_by_key(|&s| self.invocations[s as usize].id);
        for s in live {
            let v = &self.invocations[s as usize];
            let running = v.state == InvState::Running;
            let gpu = running.then(|| {
                let inst = self
                    .instances
                    .iter()
                    .find(|i| i.current == InvId(s) && i.state == InstState::Busy);
                inst.map(|i| i.gpu)
            });
            let gpu = gpu.flatten();
            let rec = InvocationRecord {
                id: v.id,
                function: &self.functions[v.func.ix()].name,
                arrival: v.arrival,
                start: running.then_some(v.start),
                end: None,
                queue: running.then(|| v.start - v.arrival - v.setup),
                setup: running.then_some(v.setup),
                exec: None,
                cold: v.cold,
                node: gpu.map(|g| self.gpus[g.ix()].node),
                gpu: gpu.map(|g| g.0),
                outcome: Outcome::Unfinished,
            };
            if let Err(e) = self.sink.record(&rec) {
                self.fail(format!("writing invocation records failed: {e}"));
                return;
            }
        }
    }
}

/// The policy's handle on the world during a callback.
pub struct Ctx<'a> {
    pub(crate) w: &'a mut World,
}

impl Ctx<'_> {
    /// Current simulated time.
    pub fn now(&self) -> Nanos {
        self.w.now
    }

    // ---- queries -----------------------------------------------------------------------------

    /// An in-flight invocation.
    pub fn invocation(&self, inv: InvId) -> &Invocation {
        &self.w.invocations[inv.ix()]
    }
    /// Number of functions.
    pub fn num_functions(&self) -> usize {
        self.w.functions.len()
    }
    /// A function's name.
    pub fn function_name(&self, func: FuncId) -> &str {
        &self.w.functions[func.ix()].name
    }
    /// All GPUs, indexed by [`GpuId`].
    pub fn gpus(&self) -> &[Gpu] {
        &self.w.gpus
    }
    /// The device spec of a GPU.
    pub fn device(&self, gpu: GpuId) -> &DeviceSpec {
        &self.w.devices[self.w.gpus[gpu.ix()].device]
    }
    /// An instance.
    pub fn instance(&self, inst: InstId) -> &Instance {
        &self.w.instances[inst.ix()]
    }
    /// The most recently idled instance of `func`, if any is idle.
    pub fn idle_instance(&self, func: FuncId) -> Option<InstId> {
        let h = self.w.func_idle[func.ix()].head;
        (h != NIL).then_some(InstId(h))
    }
    /// Idle instances of every function, least recently used first.
    pub fn idle_lru(&self) -> impl Iterator<Item = InstId> + '_ {
        let mut cur = self.w.global_idle.tail;
        std::iter::from_fn(move || {
            (cur != NIL).then(|| {
                let id = InstId(cur);
                cur = self.w.instances[cur as usize].links[1].prev;
                id
            })
        })
    }
    /// Instances of `func` not yet reclaimed (starting, idle or busy).
    pub fn alive(&self, func: FuncId) -> u32 {
        self.w.func_alive[func.ix()]
    }
    /// Instances of `func` still in setup.
    pub fn starting(&self, func: FuncId) -> u32 {
        self.w.func_starting[func.ix()]
    }
    /// GPUs with no instance, in index order.
    pub fn empty_gpus(&self) -> impl Iterator<Item = GpuId> + '_ {
        self.w.empty_gpus.iter().map(|&g| GpuId(g))
    }
    /// The profile of `func` compiled for `gpu`'s device.
    pub fn profile(&self, func: FuncId, gpu: GpuId) -> &CompiledProfile {
        self.w.compiled(func, gpu)
    }
    /// Setup cost parts of `func` on `gpu`.
    pub fn setup_parts(&self, func: FuncId, gpu: GpuId) -> SetupParts {
        self.w.compiled(func, gpu).setup
    }
    /// A whole-GPU instance without sharing: full footprint, sequential setup, no SM cap.
    pub fn default_instance(&self, func: FuncId, gpu: GpuId) -> InstanceSpec {
        let c = self.w.compiled(func, gpu);
        InstanceSpec {
            memory: c.footprint(),
            setup: c.setup.sequential(),
            sm_cap: 1.0,
            time_quota: 1.0,
            gpu_fraction: 1.0,
        }
    }

    // ---- actions -----------------------------------------------------------------------------

    /// Starts a new instance of `func` on `gpu`; it becomes ready after `spec.setup`
    /// (`Policy::on_instance_ready`). Refused when the GPU lacks the memory.
    pub fn start_instance(&mut self, func: FuncId, gpu: GpuId, spec: InstanceSpec) -> Result<InstId, Refusal> {
        self.w.start_instance(func, gpu, spec)
    }
    /// Runs a waiting invocation on an idle instance of its function.
    pub fn run(&mut self, inv: InvId, inst: InstId) {
        self.w.run(inv, inst)
    }
    /// Rejects a waiting invocation.
    pub fn reject(&mut self, inv: InvId, reason: RejectReason) {
        self.w.reject(inv, reason)
    }
    /// Reclaims an idle instance, freeing its memory.
    pub fn reclaim(&mut self, inst: InstId) {
        self.w.reclaim(inst)
    }
    /// Keeps an idle instance for `ttl` (forever with `None`), then calls
    /// `Policy::on_idle_expired` unless it was used or reclaimed meanwhile.
    pub fn keep_alive(&mut self, inst: InstId, ttl: Option<Nanos>) {
        self.w.keep_alive(inst, ttl)
    }
    /// Reserves `bytes` of `gpu`'s memory outside any instance (state a policy keeps resident,
    /// such as shared weights); refused if it does not fit.
    pub fn reserve(&mut self, gpu: GpuId, bytes: u64) -> Result<(), Refusal> {
        let g = &mut self.w.gpus[gpu.ix()];
        if bytes > g.mem_free() {
            return Err(Refusal::Memory {
                needed: bytes,
                free: g.mem_free(),
            });
        }
        g.mem_used += bytes;
        g.mem_peak = g.mem_peak.max(g.mem_used);
        Ok(())
    }

    /// Gives back memory taken with [`Ctx::reserve`].
    pub fn release(&mut self, gpu: GpuId, bytes: u64) {
        let g = &mut self.w.gpus[gpu.ix()];
        g.mem_used = g.mem_used.saturating_sub(bytes);
    }

    /// Kernel-busy time of an instance up to now (its GPU's accounting is brought up to date).
    pub fn kernel_busy_ns(&mut self, inst: InstId) -> u64 {
        let gpu = self.w.instances[inst.ix()].gpu;
        self.w.touch_gpu(gpu);
        let running: u64 = self.w.gpus[gpu.ix()]
            .phases
            .iter()
            .filter(|p| p.inst == inst)
            .map(|p| p.busy)
            .sum();
        self.w.instances[inst.ix()].kernel_busy_ns + running
    }

    /// Crashes an instance: its running invocation fails and it is reclaimed.
    pub fn crash(&mut self, inst: InstId) {
        self.w.crash(inst)
    }

    /// Changes a live instance's SM cap (e.g. a new MPS active-thread percentage); its running
    /// kernels are re-shared at once.
    pub fn set_sm_cap(&mut self, inst: InstId, cap: f64) {
        let w = &mut *self.w;
        let i = &mut w.instances[inst.ix()];
        let (gpu, old) = (i.gpu, i.sm_cap);
        i.sm_cap = cap;
        let quota = i.time_quota;
        w.touch_gpu(gpu);
        let g = &mut w.gpus[gpu.ix()];
        g.sm_cap_sum += cap - old;
        g.quota_sm_sum += (cap - old) * quota;
        for p in g.phases.iter_mut().filter(|p| p.inst == inst) {
            p.sm_cap = cap;
        }
        w.mark_dirty(gpu);
    }

    /// Calls `Policy::on_timer(token)` at time `at` (not before now).
    pub fn set_timer(&mut self, at: Nanos, token: u64) {
        let at = at.max(self.w.now);
        self.w.events.push(at, Event::PolicyTimer { token });
    }
}
