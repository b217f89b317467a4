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
    pub(super) fn advance(&mut self, inst: InstId) -> bool {
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
    pub(super) fn finish(&mut self, inst: InstId) {
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
