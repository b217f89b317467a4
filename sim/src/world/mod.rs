//! The simulated world: GPUs, instances, in-flight invocations, and the mechanics that move them.
//!
//! This module owns the state the engine advances and the rules it enforces: an instance's
//! lifecycle (starting → idle ↔ busy → reclaimed), per-GPU memory accounting that refuses
//! overcommit, and the GPU execution model — phases progress at rates set by the policy's
//! [`Sharing`] discipline and the speed model, and only the earliest completion per GPU is in the
//! event queue, cancelled by a version counter (`rates_version`) when rates change. Policies reach it only
//! through [`Ctx`].

use crate::contention::{self, KernelDemand, PartitionShare};
use crate::device::DeviceSpec;
use crate::events::{Event, EventQueue};
use crate::ids::{FuncId, GpuId, InstId, InvId};
use crate::metrics::Metrics;
use crate::plan::RunPlan;
use crate::policy::Sharing;
use crate::profile::{CompiledProfile, GpuPhase, PhaseKind, SetupParts, Step, copy_ns};
use crate::record::{InvocationRecord, Outcome, RecordSink, RejectReason};
use crate::time::Nanos;
use crate::timeline::{Span, SpanKind, Timeline};
use std::collections::BTreeSet;

mod ctx;
mod gpu;
mod invocations;

pub use ctx::Ctx;

const NIL: u32 = u32::MAX;

/// A function as the engine sees it: its name and its profile compiled for each device type.
pub struct FunctionInfo {
    pub name: String,
    /// Indexed by device type (position in `World::devices`).
    pub compiled: Vec<CompiledProfile>,
}

/// A phase running on a GPU.
#[derive(Clone, Copy, Debug)]
pub struct ActivePhase {
    pub inst: InstId,
    pub kind: PhaseKind,
    /// Its demands on the device ([`KernelDemand::NONE`] for copies).
    pub demand: KernelDemand,
    /// The partition (whole GPU or MIG slice) its instance runs in.
    pub partition: Partition,
    /// The instance's SM cap (e.g. an MPS active-thread percentage), a fraction.
    pub sm_cap: f64,
    /// The instance's time quota, a fraction.
    pub time_quota: f64,
    /// Fraction of the GPU's SMs while the phase runs, set by the [`Sharing`] discipline.
    pub share: f64,
    /// Fraction of time the phase's context holds the GPU (time slicing, time quotas), set by
    /// the discipline; 1 when contexts run concurrently.
    pub time_share: f64,
    rate: f64,
    /// Solo work left as of `anchor`, in ns of the phase running alone.
    remaining: f64,
    /// When `remaining` and `busy` were last brought up to date.
    anchor: Nanos,
    /// When it completes at its current rate (`Nanos::MAX` while it makes no progress).
    eta: Nanos,
    /// The contention model's bandwidth ask (kept here between its passes).
    ask: f64,
    /// Its compute-bound rate and the (share, time share) it was computed for (NaN: never).
    rc: f64,
    rc_for: (f64, f64),
    /// Time this phase ran as of `anchor` (kernels only), added to its instance when it ends.
    busy: u64,
    /// When it started (for the timeline).
    started: Nanos,
}

impl ActivePhase {
    /// True for kernel phases (the ones that use SMs).
    pub fn is_kernel(&self) -> bool {
        self.kind == PhaseKind::Kernel
    }
    /// The SMs a discipline whose shares are bounds gives it ([`Sharing::shares_are_bounds`]):
    /// its cap or the most it can use, whichever is smaller.
    pub fn bound(&self) -> f64 {
        let most = self.sm_max();
        let b = if self.sm_cap < most { self.sm_cap } else { most };
        if b < 1.0 { b } else { 1.0 }
    }
    /// Time it has run (rate above zero) as of its last update, if it is a kernel.
    fn kernel_busy(&self) -> u64 {
        if self.is_kernel() { self.busy } else { 0 }
    }
    /// Current progress rate relative to running alone.
    pub fn rate(&self) -> f64 {
        self.rate
    }
    /// The most SMs (a fraction of the device's) that can still speed the phase up: the largest
    /// footprint among its kernels. A demand-aware discipline gives it no more.
    pub fn sm_max(&self) -> f64 {
        self.demand.hi
    }
}

/// A partition of a GPU: the whole device (id 0) or a MIG slice, with its share of the device's
/// SMs, DRAM bandwidth and L2. Kernels in different partitions never contend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partition {
    /// Distinguishes the partitions of one GPU (below 64).
    pub id: u8,
    pub share: PartitionShare,
}

impl Partition {
    /// The whole GPU.
    pub const WHOLE: Partition = Partition {
        id: 0,
        share: PartitionShare::WHOLE,
    };
}

/// One GPU and its accounting.
pub struct Gpu {
    pub node: u32,
    /// Device type: index into `World::devices`.
    pub device: usize,
    pub mem_capacity: u64,
    pub mem_used: u64,
    pub mem_peak: u64,
    /// How many instances are placed on this GPU (any state but reclaimed).
    pub instance_count: u32,
    /// Σ SM cap of those instances (MPS packing).
    pub sm_cap_sum: f64,
    /// Σ SM cap × time quota of those instances (FaST-GShare admission).
    pub quota_sm_sum: f64,
    phases: Vec<ActivePhase>,
    /// Counts changes of its phases' rates, so a pending phase-completion event computed at old
    /// rates is ignored.
    rates_version: u32,
    last_update: Nanos,
    dirty: bool,
    /// Some phase's share may differ from its bound (the discipline divided the SMs, or a cap
    /// changed): with a discipline whose shares are bounds, the next recomputation resets them.
    rebound: bool,
    /// Time with at least one kernel active, and ∫ SMs used dt, over the whole run.
    pub(crate) busy_ns: u64,
    pub(crate) sm_used_ns: f64,
    /// Both at the end of the warm-up: the measured window's share is the difference.
    pub(crate) at_warmup: (u64, f64),
    sm_used_now: f64,
    /// Σ GPU fraction of its instances (all, and idle ones), and since when they hold: the GPU
    /// is allocated `min(1, all)` of the time, idle for the idle instances' part of that.
    alloc_all: f64,
    alloc_idle: f64,
    alloc_since: Nanos,
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

/// A function instance (a sandbox with its CUDA context) on one GPU, or a worker that serves
/// any function (`Ctx::start_worker`; its `func` is [`FuncId::NONE`]).
#[derive(Clone, Debug)]
pub struct Instance {
    pub func: FuncId,
    pub gpu: GpuId,
    pub state: InstState,
    pub created: Nanos,
    pub ready_at: Nanos,
    /// Invocations completed on this instance.
    pub served: u64,
    pub memory: u64,
    pub sm_cap: f64,
    pub time_quota: f64,
    pub gpu_fraction: f64,
    /// The partition it runs in (the whole GPU unless a MIG slice).
    pub partition: Partition,
    /// Time during which one of its kernels ran (time share > 0), ns, up to its last finished
    /// kernel phase; [`Ctx::kernel_busy_ns`] includes the one running now.
    pub kernel_busy_ns: u64,
    /// Counts its state changes (ready, run, reclaimed), so a pending setup or host-step event
    /// fires only on the state it was scheduled for.
    state_version: u32,
    /// Counts the lives of this slot, so events of a reclaimed instance never touch its successor.
    life_version: u32,
    /// Keep-alive deadline of the current idle period, if the policy set one.
    expiry: Option<Nanos>,
    /// Time of the earliest `IdleExpired` event pending for this instance, if any.
    expiry_event_at: Option<Nanos>,
    current: InvId,
    /// The function whose steps it runs now: its own, or for a worker its invocation's.
    exec_func: FuncId,
    /// How the current invocation is laid out, and its cursor: positions below `BEFORE` are the
    /// plan's work before, then the profile's steps `span.0..span.1`, then the plan's work after.
    plan: RunPlan,
    span: (u32, u32),
    /// The current run follows `plan`; otherwise `step` indexes the profile's steps directly.
    planned: bool,
    step: u32,
    scale: f64,
    /// When its current invocation and its current host step started (for the timeline).
    busy_since: Nanos,
    step_since: Nanos,
    /// Intrusive links: [0] in its function's idle list, [1] in the global idle list.
    links: [Links; 2],
}

impl Instance {
    /// True for a worker, which runs invocations of any function.
    pub fn serves_any(&self) -> bool {
        self.func == FuncId::NONE
    }
}

/// Lifecycle state of an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvState {
    /// Held by the policy, waiting for an instance.
    Waiting,
    /// Running on an instance.
    Running,
    /// Running its host code on the CPU before its GPU part (`Ctx::run_host_first`).
    HostBefore,
    /// Running its host code on the CPU after its GPU part.
    HostAfter,
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
    /// When it began executing (host code or instance).
    start: Nanos,
    /// Since when it has been waiting for the policy: its arrival, or the end of its host code.
    ready_since: Nanos,
    /// Time spent waiting for an instance, setup excluded.
    waited: Nanos,
    setup: Nanos,
    cold: bool,
    /// Its host code runs on the CPU, apart from its instance.
    host_first: bool,
    /// Host time left for the CPU after its instance part.
    host_after: Nanos,
    /// Traced-duration factor fixed when its host code ran first.
    scale: f64,
    /// The GPU it ran on, or NIL.
    gpu: u32,
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
    /// The partition it runs in: [`Partition::WHOLE`], or a MIG slice with its own SMs,
    /// bandwidth and L2.
    pub partition: Partition,
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
    /// Reused buffers of the contention model.
    solver: contention::Scratch,

    sharing: Box<dyn Sharing>,
    /// `sharing.shares_are_bounds()` and `sharing.concurrent()`, read once.
    shares_are_bounds: bool,
    concurrent: bool,
    pub(crate) metrics: Metrics,
    pub(crate) sink: Box<dyn RecordSink>,
    /// `sink.wants_records()`, read once.
    records: bool,
    /// A rule the policy broke: ends the run with an error.
    pub(crate) fault: Option<String>,
    /// An output that could not be written (records, timeline, samples): ends the run with an
    /// error that names the output, not the policy.
    pub(crate) output_fault: Option<String>,
    /// Where spans go, if a timeline is wanted.
    pub(crate) timeline: Option<Box<dyn Timeline>>,
    /// GPU samples over time, kept here unless a sink streams them out.
    pub(crate) samples: Vec<GpuSample>,
    /// Where samples go as they are taken (`timeseries.csv`), if anywhere.
    pub(crate) sample_sink: Option<Box<dyn crate::record::SampleSink>>,
    last_sample: (Nanos, Vec<(u64, f64)>),
}

/// One GPU over one sampling interval (`[output] timeseries_s`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuSample {
    /// End of the interval.
    pub time: Nanos,
    pub gpu: u32,
    /// Fraction of the interval with a kernel running.
    pub utilisation: f64,
    /// Time-averaged fraction of SMs in use over the interval.
    pub sm_occupancy: f64,
    /// Device memory in use at the end of the interval, bytes.
    pub memory: u64,
    /// Instances on the GPU at the end of the interval.
    pub instances: u32,
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
                instance_count: 0,
                sm_cap_sum: 0.0,
                quota_sm_sum: 0.0,
                phases: Vec::new(),
                rates_version: 0,
                last_update: 0,
                dirty: false,
                rebound: false,
                busy_ns: 0,
                sm_used_ns: 0.0,
                sm_used_now: 0.0,
                at_warmup: (0, 0.0),
                alloc_all: 0.0,
                alloc_idle: 0.0,
                alloc_since: 0,
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
            solver: contention::Scratch::default(),

            shares_are_bounds: sharing.shares_are_bounds(),
            concurrent: sharing.concurrent(),
            sharing,
            metrics,
            records: sink.wants_records(),
            sink,
            fault: None,
            output_fault: None,
            timeline: None,
            samples: Vec::new(),
            sample_sink: None,
            last_sample: (0, Vec::new()),
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

    /// Notes an output that could not be written (the first one).
    pub(crate) fn output_failed(&mut self, msg: String) {
        if self.output_fault.is_none() {
            self.output_fault = Some(msg);
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
        if func == FuncId::NONE {
            // Workers are in no idle list: they are not reclaimed for room.
            return;
        }
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
        if func == FuncId::NONE {
            return;
        }
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
        i.state_version = i.state_version.wrapping_add(1);
        let (gpu, fraction) = (i.gpu, i.gpu_fraction);
        self.list_push_front(0, inst);
        self.list_push_front(1, inst);
        self.allocation_changes(gpu, 0.0, fraction);
    }

    fn leave_idle(&mut self, inst: InstId) {
        self.list_remove(0, inst);
        self.list_remove(1, inst);
        let i = &self.instances[inst.ix()];
        let (gpu, fraction) = (i.gpu, i.gpu_fraction);
        self.allocation_changes(gpu, 0.0, -fraction);
    }

    /// Counts `gpu`'s allocated and idle GPU time since its last change, then applies a change
    /// of the fractions its instances hold (`all`) and its idle instances hold (`idle`). A GPU
    /// is allocated at most whole: several instances that each claim it (time-sharing
    /// contexts) allocate it once, so GPU-seconds never exceed GPUs × time.
    pub(super) fn allocation_changes(&mut self, gpu: GpuId, all: f64, idle: f64) {
        let now = self.now;
        let g = &mut self.gpus[gpu.ix()];
        let from = g.alloc_since.max(self.metrics.warmup);
        if now > from && g.alloc_all > 0.0 {
            let dt = (now - from) as f64;
            let allocated = g.alloc_all.min(1.0);
            self.metrics.gpu_ns_allocated += dt * allocated;
            self.metrics.gpu_ns_idle += dt * allocated * (g.alloc_idle / g.alloc_all).clamp(0.0, 1.0);
        }
        g.alloc_since = now;
        g.alloc_all += all;
        g.alloc_idle += idle;
        if g.instance_count == 0 {
            // Exact zero, so that float residue never lingers on an empty GPU.
            g.alloc_all = 0.0;
            g.alloc_idle = 0.0;
        }
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
        g.instance_count += 1;
        g.sm_cap_sum += spec.sm_cap;
        g.quota_sm_sum += spec.sm_cap * spec.time_quota;
        self.empty_gpus.remove(&gpu.0);
        self.allocation_changes(gpu, spec.gpu_fraction, 0.0);
        let inst = Instance {
            func,
            gpu,
            state: InstState::Starting,
            created: self.now,
            ready_at: self.now,
            served: 0,
            memory: spec.memory,
            sm_cap: spec.sm_cap,
            time_quota: spec.time_quota,
            gpu_fraction: spec.gpu_fraction,
            partition: spec.partition,
            kernel_busy_ns: 0,
            state_version: 0,
            life_version: 0,
            expiry: None,
            expiry_event_at: None,
            current: InvId(NIL),
            exec_func: func,
            plan: RunPlan::default(),
            span: (0, 0),
            planned: false,
            step: 0,
            scale: 1.0,
            busy_since: 0,
            step_since: 0,
            links: [UNLINKED; 2],
        };
        let id = match self.free_instances.pop() {
            Some(slot) => {
                let old = &self.instances[slot as usize];
                let (state_version, life_version) =
                    (old.state_version.wrapping_add(1), old.life_version.wrapping_add(1));
                self.instances[slot as usize] = Instance {
                    state_version,
                    life_version,
                    ..inst
                };
                InstId(slot)
            }
            None => {
                self.instances.push(inst);
                InstId(self.instances.len() as u32 - 1)
            }
        };
        if func != FuncId::NONE {
            self.func_alive[func.ix()] += 1;
            self.func_starting[func.ix()] += 1;
        }
        self.metrics.instance_created();
        let state_version = self.instances[id.ix()].state_version;
        self.events.push(
            self.now + spec.setup,
            Event::SetupDone {
                inst: id,
                state_version,
            },
        );
        Ok(id)
    }

    /// True when `inst` is still in the state it had at `state_version`: not run, reclaimed or reused
    /// since. Several instances can finish in one GPU event; the policy's callback for the first
    /// may reclaim the second (already idle) and start a new instance in its slot, and the
    /// second's callback must then not be delivered.
    pub(crate) fn unchanged_since(&self, inst: InstId, state_version: u32) -> bool {
        let i = &self.instances[inst.ix()];
        i.state == InstState::Idle && i.state_version == state_version
    }

    /// Handles a `SetupDone` event; returns the instance if the event was current.
    /// Reports a span to the timeline, if there is one.
    pub(super) fn emit(&mut self, kind: SpanKind, inst: InstId, gpu: GpuId, func: FuncId, start: Nanos, end: Nanos) {
        let Some(t) = self.timeline.as_mut() else { return };
        let function = if func == FuncId::NONE {
            "worker"
        } else {
            self.functions[func.ix()].name.as_str()
        };
        let span = Span {
            kind,
            gpu: gpu.0,
            slot: inst.0,
            function,
            start,
            end,
        };
        if let Err(e) = t.span(&span) {
            self.output_failed(format!("writing the timeline failed: {e}"));
        }
    }

    /// A GPU's busy time and ∫ SMs used dt as of now, read without touching it: touching would
    /// advance its phases in other float steps, and observing must not change a run.
    fn integrals_now(&self, g: &Gpu) -> (u64, f64) {
        let pending = self.now - g.last_update;
        if g.sm_used_now > 0.0 && !g.phases.is_empty() {
            (g.busy_ns + pending, g.sm_used_ns + pending as f64 * g.sm_used_now)
        } else {
            (g.busy_ns, g.sm_used_ns)
        }
    }

    /// The warm-up ends: every GPU's integrals so far are left out of the measured window.
    pub(crate) fn mark_warmup(&mut self) {
        for g in 0..self.gpus.len() {
            let now = self.integrals_now(&self.gpus[g]);
            self.gpus[g].at_warmup = now;
        }
    }

    /// Records one sample per GPU for the interval since the last one.
    pub(crate) fn sample(&mut self) {
        let now = self.now;
        let current: Vec<(u64, f64)> = self.gpus.iter().map(|g| self.integrals_now(g)).collect();
        let (since, last) = &mut self.last_sample;
        last.resize(self.gpus.len(), (0, 0.0));
        let dt = now.saturating_sub(*since);
        if dt == 0 {
            return;
        }
        let mut failed = None;
        for (g, ((gpu, prev), (busy, sm))) in self.gpus.iter().zip(last.iter_mut()).zip(current).enumerate() {
            let sample = GpuSample {
                time: now,
                gpu: g as u32,
                utilisation: (busy - prev.0) as f64 / dt as f64,
                sm_occupancy: (sm - prev.1) / dt as f64,
                memory: gpu.mem_used,
                instances: gpu.instance_count,
            };
            match self.sample_sink.as_mut() {
                Some(sink) => {
                    if let Err(e) = sink.sample(&sample) {
                        failed.get_or_insert(e);
                    }
                }
                None => self.samples.push(sample),
            }
            *prev = (busy, sm);
        }
        *since = now;
        if let Some(e) = failed {
            self.output_failed(format!("writing GPU samples failed: {e}"));
        }
    }

    pub(crate) fn setup_done(&mut self, inst: InstId, state_version: u32) -> Option<InstId> {
        let i = &mut self.instances[inst.ix()];
        if i.state != InstState::Starting || i.state_version != state_version {
            return None;
        }
        i.ready_at = self.now;
        let (func, gpu, created) = (i.func, i.gpu, i.created);
        self.emit(SpanKind::Setup, inst, gpu, func, created, self.now);
        if func != FuncId::NONE {
            self.func_starting[func.ix()] -= 1;
        }
        self.become_idle(inst);
        Some(inst)
    }

    /// Handles an `IdleExpired` event; returns the instance if its keep-alive has run out.
    ///
    /// Keep-alive is lazy: an instance has at most one pending expiry event, armed at the
    /// earliest deadline set. When it fires, a later deadline (the instance was used meanwhile and
    /// idled again) re-arms it instead of expiring. This keeps the heap at O(instances) instead of
    /// one stale event per completion.
    pub(crate) fn idle_expired(&mut self, inst: InstId, life_version: u32) -> Option<InstId> {
        let now = self.now;
        let i = &mut self.instances[inst.ix()];
        if i.life_version != life_version || i.state == InstState::Free {
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
                self.events.push(deadline, Event::IdleExpired { inst, life_version });
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
        i.state_version = i.state_version.wrapping_add(1);
        let (func, gpu, memory, created, fraction) = (i.func, i.gpu, i.memory, i.created, i.gpu_fraction);
        let (cap, quota) = (i.sm_cap, i.time_quota);
        self.free_instances.push(inst.0);
        if func != FuncId::NONE {
            self.func_alive[func.ix()] -= 1;
        }
        let g = &mut self.gpus[gpu.ix()];
        g.mem_used -= memory;
        g.instance_count -= 1;
        g.sm_cap_sum -= cap;
        g.quota_sm_sum -= cap * quota;
        if g.instance_count == 0 {
            self.empty_gpus.insert(gpu.0);
            // Exact zero, so that float residue never blocks an empty GPU.
            g.sm_cap_sum = 0.0;
            g.quota_sm_sum = 0.0;
        }
        self.allocation_changes(gpu, -fraction, 0.0);
        self.metrics.instance_reclaimed();
        self.emit(SpanKind::Instance, inst, gpu, func, created, self.now);
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
                let life_version = i.life_version;
                self.events.push(deadline, Event::IdleExpired { inst, life_version });
            }
        }
    }

    /// Brings every GPU's integrals to `now` (end of run).
    pub(crate) fn settle(&mut self) {
        for g in 0..self.gpus.len() {
            self.touch_gpu(GpuId(g as u32));
        }
        let now = self.now;
        let mut alive = Vec::new();
        for (slot, i) in self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.state != InstState::Free)
        {
            alive.push((InstId(slot as u32), i.gpu, i.func, i.created));
        }
        for g in 0..self.gpus.len() {
            self.allocation_changes(GpuId(g as u32), 0.0, 0.0);
        }
        for (inst, gpu, func, created) in alive {
            self.emit(SpanKind::Instance, inst, gpu, func, created, now);
        }
    }
}
