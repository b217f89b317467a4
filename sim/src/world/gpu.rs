//! The GPU execution model: phases advance at their rates, the sharing discipline and the speed
//! model set new rates whenever a GPU's phase set changes, and only the earliest completion per
//! GPU is in the event queue.

use super::*;

impl World {
    /// Brings a GPU's phases and integrals up to `now` at their current rates.
    pub(super) fn touch_gpu(&mut self, gpu: GpuId) {
        let now = self.now;
        let g = &mut self.gpus[gpu.ix()];
        let dt = now - g.last_update;
        if dt == 0 {
            return;
        }
        // Over the whole run; the measured window's share is this minus the warm-up snapshot.
        if g.sm_used_now > 0.0 && !g.phases.is_empty() {
            g.busy_ns += dt;
            g.sm_used_ns += dt as f64 * g.sm_used_now;
        }
        for p in &mut g.phases {
            p.remaining -= p.rate * dt as f64;
            if p.rate > 0.0 && p.is_kernel() {
                p.busy += dt;
            }
        }
        g.last_update = now;
    }

    pub(super) fn mark_dirty(&mut self, gpu: GpuId) {
        let g = &mut self.gpus[gpu.ix()];
        if !g.dirty {
            g.dirty = true;
            self.dirty.push(gpu);
        }
    }

    /// Handles a `GpuPhaseDone` event: removes the finished phases and advances their
    /// instances. Returns the instances whose invocations finished, each with its epoch as it
    /// became idle (see [`World::unchanged_since`]).
    pub(crate) fn gpu_phase_done(&mut self, gpu: GpuId, generation: u32, finished: &mut Vec<(InstId, u32)>) {
        if self.gpus[gpu.ix()].generation != generation {
            return;
        }
        self.touch_gpu(gpu);
        if self.timeline.is_some() {
            self.trace_ended_phases(gpu);
        }
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
                finished.push((inst, self.instances[inst.ix()].epoch));
            }
        }
        self.scratch = done_phases;
    }

    /// Reports the phases of `gpu` that end now to the timeline (kept off the common path).
    #[cold]
    fn trace_ended_phases(&mut self, gpu: GpuId) {
        let ended: Vec<(InstId, PhaseKind, Nanos)> = self.gpus[gpu.ix()]
            .phases
            .iter()
            .filter(|p| p.remaining < 0.5)
            .map(|p| (p.inst, p.kind, p.started))
            .collect();
        for (inst, kind, started) in ended {
            let kind = match kind {
                PhaseKind::Kernel => SpanKind::Kernel,
                PhaseKind::H2d => SpanKind::H2d,
                PhaseKind::D2h => SpanKind::D2h,
            };
            let func = self.instances[inst.ix()].exec_func;
            self.emit(kind, inst, gpu, func, started, self.now);
        }
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
}
