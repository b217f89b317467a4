//! The GPU execution model: phases advance at their rates, the sharing discipline and the speed
//! model set new rates whenever a GPU's phase set changes, and only the earliest completion per
//! GPU is in the event queue.

use super::*;

impl ActivePhase {
    /// Brings the phase's remaining work and busy time from its anchor to `now` at its current
    /// rate. Phases are advanced lazily: when their rate changes (every recomputation of their
    /// GPU) and when something reads them, not at every event of their GPU.
    fn advance_to(&mut self, now: Nanos) {
        let dt = now - self.anchor;
        if dt > 0 {
            // Through i64: one instruction to convert where u64 takes several.
            self.remaining -= self.rate * (dt as i64) as f64;
            // Copies count it too, but only kernels' is read (`kernel_busy`).
            if self.rate > 0.0 {
                self.busy += dt;
            }
            self.anchor = now;
        }
    }
}

impl World {
    /// Brings a GPU's integrals (busy time, ∫ SMs used) up to `now` at its current occupancy.
    fn integrate_gpu(&mut self, gpu: GpuId) {
        let now = self.now;
        let g = &mut self.gpus[gpu.ix()];
        let dt = now - g.last_update;
        // Over the whole run; the measured window's share is this minus the warm-up snapshot.
        if dt > 0 && g.sm_used_now > 0.0 {
            g.busy_ns += dt;
            g.sm_used_ns += dt as f64 * g.sm_used_now;
        }
        g.last_update = now;
    }

    /// Brings a GPU's phases and integrals up to `now` at their current rates (for readers of
    /// busy time and the end of the run).
    pub(super) fn touch_gpu(&mut self, gpu: GpuId) {
        self.integrate_gpu(gpu);
        let now = self.now;
        for p in &mut self.gpus[gpu.ix()].phases {
            p.advance_to(now);
        }
    }

    pub(super) fn mark_dirty(&mut self, gpu: GpuId) {
        let g = &mut self.gpus[gpu.ix()];
        if !g.dirty {
            g.dirty = true;
            self.dirty.push(gpu);
        }
    }

    /// Handles a `GpuPhaseDone` event: removes the finished phases and advances their
    /// instances. Returns the instances whose invocations finished, each with its state_version as it
    /// became idle (see [`World::unchanged_since`]).
    pub(crate) fn gpu_phase_done(&mut self, gpu: GpuId, rates_version: u32, finished: &mut Vec<(InstId, u32)>) {
        if self.gpus[gpu.ix()].rates_version != rates_version {
            return;
        }
        if self.timeline.is_some() {
            self.trace_ended_phases(gpu);
        }
        let mut done_phases = std::mem::take(&mut self.scratch);
        let now = self.now;
        let phases = &mut self.gpus[gpu.ix()].phases;
        let mut i = 0;
        while i < phases.len() {
            // A phase is done at its completion time, rounded up from its remaining work.
            if phases[i].eta <= now {
                // The last phase takes its place: order does not matter (disciplines and the
                // model see a set), and nothing moves but one phase.
                let mut p = phases.swap_remove(i);
                p.advance_to(now);
                done_phases.push(p.inst);
                self.instances[p.inst.ix()].kernel_busy_ns += p.kernel_busy();
            } else {
                i += 1;
            }
        }
        self.mark_dirty(gpu);
        for inst in done_phases.drain(..) {
            if self.advance(inst) {
                self.finish(inst);
                finished.push((inst, self.instances[inst.ix()].state_version));
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
            .filter(|p| p.eta <= self.now)
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
            self.integrate_gpu(gpu);
            let g = &mut self.gpus[gpu.ix()];
            g.dirty = false;
            g.rates_version = g.rates_version.wrapping_add(1);
            if g.phases.is_empty() {
                // Nothing runs: no shares to assign and no completion to schedule.
                g.sm_used_now = 0.0;
                continue;
            }
            let (mut next, recheck) = match self.set_rates(gpu) {
                Ok(r) => r,
                Err(msg) => {
                    self.fail(msg);
                    return;
                }
            };
            let g = &mut self.gpus[gpu.ix()];
            if let Some(at) = recheck.filter(|&t| t > now) {
                next = next.min(at - now);
            }
            if next != Nanos::MAX {
                let rates_version = g.rates_version;
                self.events.push(now + next, Event::GpuPhaseDone { gpu, rates_version });
            } else {
                self.fail(format!(
                    "the sharing discipline left every phase on GPU {} without SMs",
                    gpu.0
                ));
            }
        }
    }

    /// Sets every phase's share (through the discipline) and rate on `gpu`: kernels through
    /// the contention model, one partition at a time; copies share each direction of the host
    /// link equally. Returns the time to the earliest completion (`Nanos::MAX` when nothing
    /// progresses) and when the discipline wants to be asked again. Checks that the discipline
    /// kept within the SMs and that the model kept within the partition's SMs and bandwidth (an
    /// error names the breach).
    fn set_rates(&mut self, gpu: GpuId) -> Result<(Nanos, Option<Nanos>), String> {
        let g = &mut self.gpus[gpu.ix()];
        let dev = &self.devices[g.device];
        let (concurrent, bounds) = (self.concurrent, self.shares_are_bounds);
        let (mut h2d, mut d2h, mut granted, mut partitions, mut kernels) = (0u32, 0u32, 0.0, 0u64, 0u32);
        let now = self.now;
        let rebound = bounds && g.rebound;
        for p in &mut g.phases {
            // Up to now at the old rate, before the new one is set.
            p.advance_to(now);
            match p.kind {
                PhaseKind::Kernel => {
                    if rebound {
                        // What the discipline gives while the bounds fit (see `Sharing`); new
                        // phases start with it.
                        p.share = p.bound();
                        p.time_share = p.time_quota;
                    }
                    granted += p.share * p.time_share;
                    partitions |= 1u64 << (p.partition.id & 63);
                    kernels += 1;
                }
                PhaseKind::H2d => h2d += 1,
                PhaseKind::D2h => d2h += 1,
            }
        }
        let mut recheck = None;
        g.rebound = false;
        if !bounds || granted > 1.0 + 1e-9 {
            g.rebound = bounds;
            recheck = self.sharing.assign_shares(gpu, now, &mut g.phases);
            granted = g
                .phases
                .iter()
                .filter(|p| p.is_kernel())
                .map(|p| p.share * p.time_share)
                .sum();
        }
        if granted > 1.0 + 1e-9 {
            return Err(format!(
                "the sharing discipline gave GPU {} SM shares × time shares summing to {granted:.4} (> 1)",
                gpu.0
            ));
        }
        let mut used = 0.0;
        let mut next = Nanos::MAX;
        // Each phase's completion time at its new rate, and the earliest.
        let mut earliest = |p: &mut ActivePhase| {
            p.eta = Nanos::MAX;
            if p.rate > 0.0 {
                let left = if p.remaining > 0.0 { p.remaining } else { 0.0 };
                let t = ceil_ns(left / p.rate);
                p.eta = now.saturating_add(t);
                if t < next {
                    next = t;
                }
            }
        };
        if kernels == 1 {
            // The common case, kept short: one kernel alone in its partition (no cache or queue
            // to share), its rate from its grant and the partition's bandwidth.
            let p = g.phases.iter_mut().find(|p| p.is_kernel()).expect("one kernel");
            let k = contention::alone(&p.demand, p.share, p.time_share, p.partition.share.bandwidth);
            p.rate = k.0;
            used = k.1;
            earliest(p);
            partitions = 0;
        }
        let (l2, coefficients) = (dev.l2_mib, dev.coefficients());
        if partitions.count_ones() == 1 {
            // One partition (no MIG): every kernel, and the grants of the counting pass.
            let share = g
                .phases
                .iter()
                .find(|p| p.is_kernel())
                .expect("a kernel")
                .partition
                .share;
            let model = Model {
                l2,
                coefficients,
                concurrent,
            };
            let only_kernels = h2d + d2h == 0;
            let usage = solve_whole(
                &mut g.phases,
                only_kernels,
                share,
                model,
                &mut self.solver,
                &mut earliest,
            );
            check_usage(gpu, partitions.trailing_zeros(), usage, granted, share)?;
            used = usage.sms;
            partitions = 0;
        }
        // MIG: each partition on its own; together they hold no more bandwidth than the GPU.
        let mut dram = 0.0;
        while partitions != 0 {
            let id = partitions.trailing_zeros() as u8;
            partitions &= partitions - 1;
            let member = |p: &ActivePhase| p.is_kernel() && p.partition.id & 63 == id;
            let (share, part_granted) = partition_grants(&g.phases, &member);
            let usage = contention::solve(
                &mut g.phases,
                member,
                share,
                l2,
                coefficients,
                concurrent,
                &mut self.solver,
                &mut earliest,
            );
            check_usage(gpu, u32::from(id), usage, part_granted, share)?;
            used += usage.sms;
            dram += usage.dram;
        }
        if dram > 1.0 + 1e-9 {
            return Err(format!(
                "the partitions of GPU {} moved {dram:.6} of its DRAM bandwidth (> 1): their slices overlap",
                gpu.0
            ));
        }
        if h2d + d2h > 0 {
            for p in &mut g.phases {
                match p.kind {
                    PhaseKind::Kernel => continue,
                    // Copies in one direction share that direction of the host link equally.
                    PhaseKind::H2d => p.rate = 1.0 / f64::from(h2d),
                    PhaseKind::D2h => p.rate = 1.0 / f64::from(d2h),
                }
                earliest(p);
            }
        }
        g.sm_used_now = used.min(1.0);
        Ok((next, recheck))
    }
}

/// The device's side of a solve: its L2, its coefficients, and whether contexts run at once.
#[derive(Clone, Copy)]
struct Model {
    l2: f64,
    coefficients: contention::Coefficients,
    concurrent: bool,
}

/// Solves the kernels of a GPU that is one partition; `only_kernels` when no copy runs, so that
/// the model's passes need not tell the kinds of phase apart.
fn solve_whole(
    phases: &mut [ActivePhase],
    only_kernels: bool,
    share: PartitionShare,
    m: Model,
    solver: &mut contention::Scratch,
    earliest: impl FnMut(&mut ActivePhase),
) -> contention::Usage {
    let (l2, c, concurrent) = (m.l2, m.coefficients, m.concurrent);
    if only_kernels {
        contention::solve(phases, |_| true, share, l2, c, concurrent, solver, earliest)
    } else {
        contention::solve(
            phases,
            ActivePhase::is_kernel,
            share,
            l2,
            c,
            concurrent,
            solver,
            earliest,
        )
    }
}

/// The engine's own check of the model: a partition's SMs in use within its grants and its
/// SMs, its DRAM traffic within its bandwidth.
fn check_usage(
    gpu: GpuId,
    id: u32,
    usage: contention::Usage,
    granted: f64,
    share: PartitionShare,
) -> Result<(), String> {
    if usage.sms > granted.min(share.sms) + 1e-9 || usage.dram > share.bandwidth + 1e-9 {
        return Err(format!(
            "the contention model overspent GPU {} partition {id}: SMs {:.6} of {granted:.6} granted and {:.6} in the partition, DRAM {:.6} of {:.6}",
            gpu.0, usage.sms, share.sms, usage.dram, share.bandwidth
        ));
    }
    Ok(())
}

/// A partition's resources (MIG: several partitions on one GPU) and the SMs granted in it.
fn partition_grants(phases: &[ActivePhase], member: &impl Fn(&ActivePhase) -> bool) -> (PartitionShare, f64) {
    let mut share = PartitionShare::WHOLE;
    let mut granted = 0.0;
    for p in phases.iter().filter(|p| member(p)) {
        share = p.partition.share;
        granted += p.share * p.time_share;
    }
    (share, granted)
}

/// `x` ns (non-negative) rounded up, without the library call `f64::ceil` makes; beyond 2⁶²
/// ns (146 years), never.
fn ceil_ns(x: f64) -> Nanos {
    // One comparison for NaN and too large (hence the negation).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(x < 4.6e18) {
        return Nanos::MAX;
    }
    // SAFETY: 0 ≤ x < 2⁶² (NaN and larger values returned above), so it fits an i64: the
    // unchecked conversion is one instruction where the saturating `as` takes several.
    let t: i64 = unsafe { x.to_int_unchecked() };
    (if (t as f64) < x { t + 1 } else { t }) as Nanos
}

impl contention::KernelState for ActivePhase {
    contention::kernel_state_fields!(demand, share, time_share, rate, ask);
    fn compute_bound(&mut self) -> f64 {
        // Bitwise equality (integer compares, cheaper than floating ones): the cache holds
        // exactly what the model would compute.
        if self.share.to_bits() != self.rc_for.0.to_bits() || self.time_share.to_bits() != self.rc_for.1.to_bits() {
            self.rc_for = (self.share, self.time_share);
            self.rc = self.time_share * contention::compute_rate(&self.demand, self.share);
        }
        self.rc
    }
}
