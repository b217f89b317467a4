//! Invocations through the world: arrival, rejection, running on an instance step by step,
//! completion, failure, and the report of those still in flight at the end.

use super::*;

impl World {
    pub(crate) fn arrive(&mut self, func: FuncId, arrival: Nanos, duration: Option<Nanos>) -> InvId {
        let inv = Invocation {
            id: self.next_inv_id,
            func,
            arrival,
            duration,
            state: InvState::Waiting,
            start: 0,
            ready_since: arrival,
            waited: 0,
            setup: 0,
            cold: false,
            host_first: false,
            host_after: 0,
            scale: 1.0,
            gpu: NIL,
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

    pub(super) fn end_invocation(&mut self, inv: InvId) {
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
            self.output_failed(format!("writing invocation records failed: {e}"));
        }
        self.end_invocation(inv);
    }

    /// Starts `inv` on idle instance `inst`, running every step of its profile.
    pub(crate) fn run(&mut self, inv: InvId, inst: InstId) {
        self.run_on(inv, inst, None);
    }

    /// Starts `inv` on idle instance `inst` as `plan` lays it out.
    pub(crate) fn run_plan(&mut self, inv: InvId, inst: InstId, plan: RunPlan) {
        self.run_on(inv, inst, Some(&plan));
    }

    fn run_on(&mut self, inv: InvId, inst: InstId, plan: Option<&RunPlan>) {
        let (i, v) = (&self.instances[inst.ix()], &self.invocations[inv.ix()]);
        let ok_func = i.serves_any() || i.func == v.func;
        if i.state != InstState::Idle || v.state != InvState::Waiting || !ok_func {
            let msg = format!(
                "the policy ran invocation {} ({:?}, function {}) on instance {} ({:?}, function {}); \
                 an invocation must be waiting and the instance idle and of the same function (or a worker)",
                v.id,
                v.state,
                v.func.0,
                inst.0,
                i.state,
                if i.serves_any() {
                    "any".to_string()
                } else {
                    i.func.0.to_string()
                }
            );
            self.fail(msg);
            return;
        }
        let gpu_part_only = plan.is_some_and(|p| p.gpu_part_only);
        if gpu_part_only != v.host_first {
            let msg = if v.host_first {
                format!(
                    "the policy ran invocation {} on an instance with its whole profile after its host code had \
                     already run on the CPU; run it with a plan whose gpu_part_only is true",
                    v.id
                )
            } else {
                format!(
                    "the policy ran only the GPU part of invocation {} without running its host code first \
                     (Ctx::run_host_first)",
                    v.id
                )
            };
            self.fail(msg);
            return;
        }
        let (gpu, created, ready_at, first) = (i.gpu, i.created, i.ready_at, i.served == 0);
        let (func, duration, host_first, scale) = (v.func, v.duration, v.host_first, v.scale);
        self.leave_idle(inst);
        let now = self.now;
        let scale = match duration {
            _ if host_first => scale,
            Some(d) => duration_scale(Some(d), self.compiled(func, gpu).solo_exec),
            None => 1.0,
        };
        let v = &mut self.invocations[inv.ix()];
        v.state = InvState::Running;
        v.gpu = gpu.0;
        if !host_first {
            v.start = now;
        }
        // Cold: the invocation waited on this instance's setup.
        v.cold = first && v.ready_since < ready_at;
        v.setup = if v.cold {
            ready_at - v.ready_since.max(created)
        } else {
            0
        };
        v.waited += now - v.ready_since - v.setup;
        let i = &mut self.instances[inst.ix()];
        i.state = InstState::Busy;
        i.state_version = i.state_version.wrapping_add(1);
        i.current = inv;
        i.exec_func = func;
        i.scale = scale;
        i.busy_since = now;
        i.step_since = now;
        i.step = u32::MAX;
        i.planned = plan.is_some();
        if let Some(p) = plan {
            let c = &self.functions[func.ix()].compiled[self.gpus[gpu.ix()].device];
            let (lo, hi) = if p.gpu_part_only {
                c.kernel_span().unwrap_or((0, 0))
            } else {
                (0, c.steps.len())
            };
            let i = &mut self.instances[inst.ix()];
            i.plan = *p;
            i.span = (lo as u32, hi as u32);
        }
        if self.advance(inst) {
            // Nothing to execute: complete through the event loop, never inside a callback.
            let state_version = self.instances[inst.ix()].state_version;
            self.events.push(now, Event::HostStepDone { inst, state_version });
        }
    }

    /// Runs the host code before `inv`'s first kernel on the CPU, holding no instance; then
    /// `Policy::on_host_done`. Its host code after the last kernel runs on the CPU too, after
    /// the instance part that [`RunPlan::gpu_part_only`] gives it.
    pub(crate) fn run_host_first(&mut self, inv: InvId) {
        let v = &self.invocations[inv.ix()];
        if v.state != InvState::Waiting || v.host_first {
            let msg = format!(
                "the policy ran the host code of invocation {} ({:?}) first, but it had already started",
                v.id, v.state
            );
            self.fail(msg);
            return;
        }
        // The host code is the same on every device; a traced duration scales it against the
        // first device type's solo time.
        let c = &self.functions[v.func.ix()].compiled[0];
        let scale = duration_scale(v.duration, c.solo_exec);
        let (before, after) = c.host_around_kernels();
        let now = self.now;
        let v = &mut self.invocations[inv.ix()];
        v.state = InvState::HostBefore;
        v.host_first = true;
        v.start = now;
        v.waited += now - v.ready_since;
        v.scale = scale;
        v.host_after = scale_ns(after, scale);
        self.events
            .push(now + scale_ns(before, scale), Event::InvHostDone { inv });
    }

    /// Handles an `InvHostDone` event: returns the invocation if its leading host code ended
    /// (it waits for the policy again); an invocation whose trailing host code ended completes.
    pub(crate) fn inv_host_done(&mut self, inv: InvId) -> Option<InvId> {
        let now = self.now;
        let v = &mut self.invocations[inv.ix()];
        match v.state {
            InvState::HostBefore => {
                v.state = InvState::Waiting;
                v.ready_since = now;
                Some(inv)
            }
            InvState::HostAfter => {
                self.complete(inv);
                None
            }
            _ => None,
        }
    }

    /// The step at cursor position `step` of `inst`'s current run, and whether a traced
    /// duration scales it; `None` past the end.
    fn step_at(&self, inst: InstId, step: u32) -> Option<(Step, bool)> {
        let i = &self.instances[inst.ix()];
        if !i.planned {
            return self
                .compiled(i.exec_func, i.gpu)
                .steps
                .get(step as usize)
                .map(|&s| (s, true));
        }
        let copy = |kind, bytes: u64| {
            let dev = &self.devices[self.gpus[i.gpu.ix()].device];
            Step::Gpu(GpuPhase::copy(kind, copy_ns(bytes, dev.host_link_gbps)))
        };
        if step < BEFORE {
            let b = i.plan.before;
            return Some(match step {
                0 => (copy(PhaseKind::D2h, b.d2h_bytes), false),
                1 => (copy(PhaseKind::H2d, b.h2d_bytes), false),
                _ => (Step::Host(b.host), false),
            });
        }
        let (lo, hi) = i.span;
        let k = (step - BEFORE).saturating_add(lo);
        if k < hi {
            let s = self.compiled(i.exec_func, i.gpu).steps[k as usize];
            if i.plan.gpu_part_only && matches!(s, Step::Gpu(p) if p.kind != PhaseKind::Kernel) {
                // The policy moves this data itself.
                return Some((Step::Host(0), false));
            }
            return Some((s, true));
        }
        let a = i.plan.after;
        match k - hi {
            0 => Some((Step::Host(a.host), false)),
            1 => Some((copy(PhaseKind::D2h, a.d2h_bytes), false)),
            2 => Some((copy(PhaseKind::H2d, a.h2d_bytes), false)),
            _ => None,
        }
    }

    /// Moves `inst` to its next non-empty step; true when its invocation has no steps left.
    pub(super) fn advance(&mut self, inst: InstId) -> bool {
        loop {
            let i = &mut self.instances[inst.ix()];
            i.step = i.step.wrapping_add(1);
            let (gpu, step, scale, state_version, sm_cap, time_quota, planned, func, partition) = (
                i.gpu,
                i.step,
                i.scale,
                i.state_version,
                i.sm_cap,
                i.time_quota,
                i.planned,
                i.exec_func,
                i.partition,
            );
            let (s, scale) = if planned {
                match self.step_at(inst, step) {
                    Some((s, scalable)) => (s, if scalable { scale } else { 1.0 }),
                    None => return true,
                }
            } else {
                // The common case, kept short: the profile's steps in order.
                match self.compiled(func, gpu).steps.get(step as usize) {
                    Some(&s) => (s, scale),
                    None => return true,
                }
            };
            match s {
                Step::Host(ns) => {
                    let ns = scale_ns(ns, scale);
                    if ns > 0 {
                        self.instances[inst.ix()].step_since = self.now;
                        self.events
                            .push(self.now + ns, Event::HostStepDone { inst, state_version });
                        return false;
                    }
                }
                Step::Gpu(p) => {
                    let work = scale_ns(p.work, scale);
                    if work > 0 {
                        // The other phases are brought up to date when their GPU is next
                        // recomputed (at this same instant).
                        let bounds = self.shares_are_bounds;
                        let g = &mut self.gpus[gpu.ix()];
                        g.phases.push(ActivePhase {
                            inst,
                            kind: p.kind,
                            demand: p.demand,
                            partition,
                            sm_cap,
                            time_quota,
                            // Its bound where shares are bounds (it is then reset only when the
                            // discipline divided the SMs), else the discipline's to set.
                            share: 0.0,
                            // Disciplines that take turns set it; the others keep the quota.
                            time_share: time_quota,
                            rate: 0.0,
                            remaining: work as f64,
                            anchor: self.now,
                            eta: Nanos::MAX,
                            ask: 0.0,
                            rc: 0.0,
                            rc_for: (f64::NAN, f64::NAN),
                            busy: 0,
                            started: self.now,
                        });
                        if bounds {
                            let p = g.phases.last_mut().expect("just pushed");
                            p.share = p.bound();
                        }
                        self.mark_dirty(gpu);
                        return false;
                    }
                }
            }
        }
    }

    /// Handles a `HostStepDone` event; returns the instance if its invocation just finished.
    pub(crate) fn host_step_done(&mut self, inst: InstId, state_version: u32) -> Option<InstId> {
        let i = &self.instances[inst.ix()];
        if i.state != InstState::Busy || i.state_version != state_version {
            return None;
        }
        if self.timeline.is_some() && i.step_since < self.now {
            let (gpu, func, since) = (i.gpu, i.exec_func, i.step_since);
            self.emit(SpanKind::Host, inst, gpu, func, since, self.now);
        }
        if self.advance(inst) {
            self.finish(inst);
            return Some(inst);
        }
        None
    }

    /// The instance's part of its invocation ended: the instance becomes idle, and the
    /// invocation completes — or, with host code left to run on the CPU, goes on without it.
    pub(super) fn finish(&mut self, inst: InstId) {
        let now = self.now;
        let i = &mut self.instances[inst.ix()];
        let inv = i.current;
        i.served += 1;
        i.current = InvId(NIL);
        if self.timeline.is_some() {
            let i = &self.instances[inst.ix()];
            let (gpu, func, since) = (i.gpu, i.exec_func, i.busy_since);
            self.emit(SpanKind::Invocation, inst, gpu, func, since, now);
        }
        self.become_idle(inst);
        let v = &mut self.invocations[inv.ix()];
        if v.host_first && v.host_after > 0 {
            v.state = InvState::HostAfter;
            let at = now + v.host_after;
            self.events.push(at, Event::InvHostDone { inv });
        } else {
            self.complete(inv);
        }
    }

    /// Records `inv` as completed now and ends it.
    fn complete(&mut self, inv: InvId) {
        let now = self.now;
        let v = &self.invocations[inv.ix()];
        let (id, func, arrival, start, setup, cold, queue, gpu) =
            (v.id, v.func, v.arrival, v.start, v.setup, v.cold, v.waited, v.gpu);
        let exec = now - arrival - queue - setup;
        self.metrics.completion(func.ix(), arrival, queue, setup, exec, cold);
        self.end_invocation(inv);
        if !self.records {
            return;
        }
        let gpu = (gpu != NIL).then_some(GpuId(gpu));
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
            node: gpu.map(|g| self.gpus[g.ix()].node),
            gpu: gpu.map(|g| g.0),
            outcome: Outcome::Completed,
        };
        if let Err(e) = self.sink.record(&rec) {
            self.output_failed(format!("writing invocation records failed: {e}"));
        }
    }

    /// Crashes an instance (a fatal fault in its process): the invocation it was running, if
    /// any, fails; its phases leave the GPU; it is reclaimed.
    pub(crate) fn crash(&mut self, inst: InstId) {
        let state = self.instances[inst.ix()].state;
        match state {
            InstState::Free => return,
            InstState::Starting => {
                let i = &self.instances[inst.ix()];
                if !i.serves_any() {
                    self.func_starting[i.func.ix()] -= 1;
                }
            }
            InstState::Idle => self.leave_idle(inst),
            InstState::Busy => {
                let (gpu, inv) = {
                    let i = &self.instances[inst.ix()];
                    (i.gpu, i.current)
                };
                let (func, since) = (
                    self.instances[inst.ix()].exec_func,
                    self.instances[inst.ix()].busy_since,
                );
                self.emit(SpanKind::Invocation, inst, gpu, func, since, self.now);
                self.touch_gpu(gpu);
                self.gpus[gpu.ix()].phases.retain(|p| p.inst != inst);
                self.mark_dirty(gpu);
                // (Its busy time dies with it: the instance is reclaimed below.)
                let v = &self.invocations[inv.ix()];
                let (id, func, arrival, start, setup, cold, queue) =
                    (v.id, v.func, v.arrival, v.start, v.setup, v.cold, v.waited);
                self.metrics.failed += 1;
                self.metrics.per_func[func.ix()].failed += 1;
                if self.records {
                    let rec = InvocationRecord {
                        id,
                        function: &self.functions[func.ix()].name,
                        arrival,
                        start: Some(start),
                        end: Some(self.now),
                        queue: Some(queue),
                        setup: Some(setup),
                        exec: Some(self.now - arrival - queue - setup),
                        cold,
                        node: Some(self.gpus[gpu.ix()].node),
                        gpu: Some(gpu.0),
                        outcome: Outcome::Failed,
                    };
                    if let Err(e) = self.sink.record(&rec) {
                        self.output_failed(format!("writing invocation records failed: {e}"));
                    }
                }
                self.end_invocation(inv);
                self.instances[inst.ix()].current = InvId(NIL);
            }
        }
        // Reclaim through the usual path (memory, counts, GPU-seconds): as an idle instance.
        self.become_idle(inst);
        self.reclaim(inst);
    }

    /// Reports every invocation still in flight as unfinished, in arrival order.
    pub(crate) fn report_unfinished(&mut self) {
        let mut live: Vec<u32> = (0..self.invocations.len() as u32)
            .filter(|&s| self.invocations[s as usize].state != InvState::Free)
            .collect();
        live.sort_by_key(|&s| self.invocations[s as usize].id);
        for s in live {
            let v = &self.invocations[s as usize];
            let running = v.state != InvState::Waiting || v.host_first;
            let gpu = (v.gpu != NIL).then_some(GpuId(v.gpu));
            let rec = InvocationRecord {
                id: v.id,
                function: &self.functions[v.func.ix()].name,
                arrival: v.arrival,
                start: running.then_some(v.start),
                end: None,
                queue: running.then_some(v.waited),
                setup: running.then_some(v.setup),
                exec: None,
                cold: v.cold,
                node: gpu.map(|g| self.gpus[g.ix()].node),
                gpu: gpu.map(|g| g.0),
                outcome: Outcome::Unfinished,
            };
            if let Err(e) = self.sink.record(&rec) {
                self.output_failed(format!("writing invocation records failed: {e}"));
                return;
            }
        }
    }
}

/// Where a run's cursor enters the profile's steps: positions before it hold the plan's extra
/// work before the invocation.
pub(super) const BEFORE: u32 = 3;

/// Factor by which a traced duration stretches a profile whose solo time is `solo`.
fn duration_scale(duration: Option<Nanos>, solo: Nanos) -> f64 {
    match duration {
        Some(d) if solo > 0 => d as f64 / solo as f64,
        _ => 1.0,
    }
}

fn scale_ns(ns: Nanos, scale: f64) -> Nanos {
    if scale == 1.0 {
        ns
    } else {
        (ns as f64 * scale).round() as Nanos
    }
}
