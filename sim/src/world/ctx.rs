//! [`Ctx`], the policy's handle on the world during a callback: queries and actions, each
//! checked by the engine.

use super::*;

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
            partition: Partition::WHOLE,
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
    /// Runs a waiting invocation on an idle instance (of its function, or a worker) as `plan`
    /// lays it out: only its GPU part, and extra copies and host time around it.
    pub fn run_plan(&mut self, inv: InvId, inst: InstId, plan: RunPlan) {
        self.w.run_plan(inv, inst, plan)
    }
    /// Runs a waiting invocation's host code before its first kernel on the CPU, holding no
    /// instance; `Policy::on_host_done` follows, after which the policy runs its GPU part with
    /// a [`RunPlan`] whose `gpu_part_only` is set. Its host code after the last kernel then runs
    /// on the CPU too, once the instance is released.
    pub fn run_host_first(&mut self, inv: InvId) {
        self.w.run_host_first(inv)
    }
    /// Starts a worker on `gpu`: an instance that runs invocations of any function (with
    /// [`Ctx::run_plan`] or [`Ctx::run`]), ready after `spec.setup`; it is in no function's idle
    /// list. Refused when the GPU lacks the memory.
    pub fn start_worker(&mut self, gpu: GpuId, spec: InstanceSpec) -> Result<InstId, Refusal> {
        self.w.start_instance(FuncId::NONE, gpu, spec)
    }
    /// Ends the run with an error: the policy found a rule of its own broken.
    pub fn error(&mut self, message: String) {
        self.w.fail(message)
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
            .map(ActivePhase::kernel_busy)
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
        g.rebound = true;
        w.mark_dirty(gpu);
    }

    /// Calls `Policy::on_timer(token)` at time `at` (not before now).
    pub fn set_timer(&mut self, at: Nanos, token: u64) {
        let at = at.max(self.w.now);
        self.w.events.push(at, Event::PolicyTimer { token });
    }
}
