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
            let recheck = self.sharing.assign_shares(gpu, now, &mut g.phases);
            if let Err(msg) = self.set_rates(gpu) {
                self.fail(msg);
                return;
            }
            let g = &mut self.gpus[gpu.ix()];
            let mut next: Option<Nanos> = None;
            for p in &g.phases {
                if p.rate > 0.0 {
                    let dt = (p.remaining.max(0.0) / p.rate).ceil() as Nanos;
                    next = Some(next.map_or(dt, |n| n.min(dt)));
                }
            }
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

    /// Sets every phase's rate on `gpu` from the shares its discipline assigned: kernels through
    /// the contention model, one partition at a time; copies share each direction of the host
    /// link equally. Checks that the discipline kept within the SMs and that the model kept
    /// within the partition's SMs and bandwidth (an error names the breach).
    fn set_rates(&mut self, gpu: GpuId) -> Result<(), String> {
        let g = &mut self.gpus[gpu.ix()];
        let dev = &self.devices[g.device];
        let concurrent = self.sharing.concurrent();
        let (mut h2d, mut d2h, mut granted, mut partitions) = (0u32, 0u32, 0.0, 0u64);
        for p in &g.phases {
            match p.kind {
                PhaseKind::Kernel => {
                    granted += p.share * p.time_share;
                    partitions |= 1u64 << (p.partition.id & 63);
                }
                PhaseKind::H2d => h2d += 1,
                PhaseKind::D2h => d2h += 1,
            }
        }
        if granted > 1.0 + 1e-9 {
            return Err(format!(
                "the sharing discipline gave GPU {} SM shares × time shares summing to {granted:.4} (> 1)",
                gpu.0
            ));
        }
        let mut used = 0.0;
        while partitions != 0 {
            let id = partitions.trailing_zeros() as u8;
            partitions &= partitions - 1;
            self.kernels.clear();
            self.kernel_ix.clear();
            let mut share = PartitionShare::WHOLE;
            for (i, p) in g.phases.iter().enumerate() {
                if p.is_kernel() && p.partition.id & 63 == id {
                    share = p.partition.share;
                    self.kernel_ix.push(i);
                    self.kernels.push(contention::Running {
                        demand: p.demand,
                        grant: p.share,
                        time_share: p.time_share,
                        rate: 0.0,
                    });
                }
            }
            let usage = contention::solve(
                &mut self.kernels,
                share,
                dev.l2_mib,
                dev.coefficients(),
                concurrent,
                &mut self.solver,
            );
            let part_granted: f64 = self.kernels.iter().map(|k| k.grant * k.time_share).sum();
            if usage.sms > part_granted + 1e-9 || usage.dram > share.bandwidth + 1e-9 {
                return Err(format!(
                    "the contention model overspent GPU {} partition {id}: SMs {:.6} of {part_granted:.6} granted, DRAM {:.6} of {:.6}",
                    gpu.0, usage.sms, usage.dram, share.bandwidth
                ));
            }
            for (&i, k) in self.kernel_ix.iter().zip(&self.kernels) {
                g.phases[i].rate = k.rate;
            }
            used += usage.sms;
        }
        for p in &mut g.phases {
            match p.kind {
                PhaseKind::Kernel => {}
                // Copies in one direction share that direction of the host link equally.
                PhaseKind::H2d => p.rate = 1.0 / f64::from(h2d),
                PhaseKind::D2h => p.rate = 1.0 / f64::from(d2h),
            }
        }
        g.sm_used_now = used.min(1.0);
        Ok(())
    }
}
