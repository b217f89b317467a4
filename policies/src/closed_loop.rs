//! Closed-loop experiments on one GPU: a few clients, each an instance that runs its function's
//! requests back to back (its queue never empties), shared by one mechanism — MPS (SM caps and
//! time quotas), time slicing, or MIG slices. This is how the published co-location numbers are
//! measured (a client in a loop, its latency and throughput once steady), so the fidelity report
//! and the FaST-Profiler ([`crate::profiler`]) measure the simulator the same way.
//!
//! The engine, the contention model and the mechanism's own discipline do the work: nothing here
//! computes a rate by formula.

use crate::mig::{Isolated, SliceBudget, find_profile, profiles_for};
use crate::time_sharing::TimeSlice;
use gpushare_sim::device::DeviceSpec;
use gpushare_sim::policy::{CappedShares, Ctx, InstanceSpec, Partition, Policy, Sharing};
use gpushare_sim::profile::FunctionProfile;
use gpushare_sim::record::{InvocationRecord, Outcome, RecordSink};
use gpushare_sim::scenario::{Function, OutputSpec, PolicySpec, Scenario, Workload};
use gpushare_sim::time::{NS_PER_S, Nanos};
use gpushare_sim::{FuncId, GpuId, InstId, InvId, SimError, Simulation, Summary};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// How the clients share the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// MPS: concurrent kernels under each client's SM cap and time quota.
    Mps,
    /// CUDA's default time slicing between contexts (the device's slice and switch cost).
    TimeSlicing,
    /// Each client in its own MIG slice.
    Mig,
}

/// One client: its function, and how much of the GPU the mechanism gives it.
#[derive(Clone, Debug)]
pub struct Client {
    pub profile: FunctionProfile,
    /// The device its profile was measured on.
    pub reference: DeviceSpec,
    /// MPS active-thread share, a fraction (MPS only).
    pub sm_cap: f64,
    /// Time quota, a fraction (MPS only: FaST's tokens, fluid).
    pub time_quota: f64,
    /// Its MIG slice's profile name (MIG only).
    pub slice: Option<String>,
}

impl Client {
    /// A client with the whole GPU.
    pub fn whole(profile: FunctionProfile, reference: DeviceSpec) -> Self {
        Client {
            profile,
            reference,
            sm_cap: 1.0,
            time_quota: 1.0,
            slice: None,
        }
    }
}

/// What one client achieved in the measured window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientResult {
    /// Completions per second.
    pub qps: f64,
    /// Mean time per request on its instance (start to end), ms.
    pub latency_ms: f64,
    /// Its profile's host time per request alone, ms: `latency_ms` minus this is its GPU part.
    pub host_ms: f64,
    pub completions: u64,
}

/// A closed-loop experiment's outcome: per client, and the run's summary (GPU utilisation and
/// SM occupancy over the measured window).
pub struct Measurement {
    pub clients: Vec<ClientResult>,
    pub summary: Summary,
}

/// Runs `clients` on one `device` under `mechanism` over a window long enough for the slowest
/// client to complete about `requests` requests even if the others slow it n-fold (after a
/// warm-up of a tenth of the window).
pub fn run(
    device: &DeviceSpec,
    clients: &[Client],
    mechanism: Mechanism,
    requests: u32,
) -> Result<Measurement, String> {
    let solo = solo_times(device, clients);
    let slowest = solo.iter().copied().max().unwrap_or(1) as f64;
    let window = (slowest * clients.len() as f64 * f64::from(requests.max(1))).max(1e6) as Nanos;
    run_measured(device, clients, &solo, mechanism, window)
}

/// Each client's execution time alone on `device` (at least 1 ns).
fn solo_times(device: &DeviceSpec, clients: &[Client]) -> Vec<Nanos> {
    clients
        .iter()
        .map(|c| c.profile.compile(&c.reference, device, 2.0).solo_exec.max(1))
        .collect()
}

/// Runs `clients` on one `device` under `mechanism`, measuring over `window` ns after a warm-up
/// of a tenth of it.
pub fn run_window(
    device: &DeviceSpec,
    clients: &[Client],
    mechanism: Mechanism,
    window: Nanos,
) -> Result<Measurement, String> {
    run_measured(device, clients, &solo_times(device, clients), mechanism, window)
}

/// [`run_window`] with the clients' solo times already known.
fn run_measured(
    device: &DeviceSpec,
    clients: &[Client],
    solo: &[Nanos],
    mechanism: Mechanism,
    window: Nanos,
) -> Result<Measurement, String> {
    if clients.is_empty() {
        return Err("a closed-loop experiment needs at least one client".into());
    }
    let partitions = partitions(device, clients, mechanism)?;
    let warmup = window / 10;
    let scenario = scenario(device, clients, solo, warmup, window);
    let tally = Rc::new(RefCell::new(vec![(0u64, 0u64); clients.len()]));
    let policy = ClosedLoop {
        specs: clients
            .iter()
            .zip(&partitions)
            .map(|(c, &(cap, partition))| (cap, c.time_quota, partition))
            .collect(),
        queues: vec![VecDeque::new(); clients.len()],
        mechanism,
        device: device.clone(),
    };
    let sink = Tally {
        per_client: tally.clone(),
        from: warmup,
    };
    let out = Simulation::new(&scenario, Box::new(policy), Box::new(sink))
        .and_then(|s| s.run())
        .map_err(|e: SimError| e.to_string())?;
    let seconds = window as f64 / NS_PER_S as f64;
    let results = tally
        .borrow()
        .iter()
        .zip(clients)
        .map(|(&(count, exec_ns), c)| ClientResult {
            qps: count as f64 / seconds,
            latency_ms: if count > 0 {
                exec_ns as f64 / count as f64 / 1e6
            } else {
                f64::INFINITY
            },
            host_ms: host_ms(&c.profile),
            completions: count,
        })
        .collect();
    Ok(Measurement {
        clients: results,
        summary: out.summary,
    })
}

/// A profile's host time per request, ms.
fn host_ms(p: &FunctionProfile) -> f64 {
    let between: f64 = p
        .phases
        .iter()
        .map(|ph| match ph {
            gpushare_sim::profile::Phase::Host { ms } => *ms,
            _ => 0.0,
        })
        .sum();
    p.host_pre_ms + p.host_post_ms + between
}

/// Each client's SM cap and partition under `mechanism`.
fn partitions(device: &DeviceSpec, clients: &[Client], mechanism: Mechanism) -> Result<Vec<(f64, Partition)>, String> {
    let mut budget = SliceBudget::default();
    clients
        .iter()
        .enumerate()
        .map(|(i, c)| match mechanism {
            Mechanism::Mps => Ok((c.sm_cap, Partition::WHOLE)),
            Mechanism::TimeSlicing => Ok((1.0, Partition::WHOLE)),
            Mechanism::Mig => {
                let table = profiles_for(device.mig.as_deref().unwrap_or(""));
                let name = c.slice.as_deref().ok_or("a MIG client needs its slice profile")?;
                let prof = &table[find_profile(table, name, &device.name)?];
                if !budget.take(prof) {
                    return Err(format!(
                        "the clients' slices need more than {}'s 7 compute and 8 memory slices by `{name}`",
                        device.name
                    ));
                }
                let share = prof.share(device.sms);
                Ok((share.sms, Partition { id: i as u8 + 1, share }))
            }
        })
        .collect()
}

/// One GPU, one function per client arriving faster than it can be served.
fn scenario(device: &DeviceSpec, clients: &[Client], solo: &[Nanos], warmup: Nanos, window: Nanos) -> Scenario {
    Scenario {
        name: "closed-loop".into(),
        description: String::new(),
        seed: 0,
        horizon: warmup + window,
        warmup,
        drain: false,
        load_scale: 1.0,
        slo: None,
        devices: vec![device.clone()],
        device_profiles: Vec::new(),
        gpus: vec![(0, 0)],
        storage_gbps: 2.0,
        functions: clients
            .iter()
            .zip(solo)
            .enumerate()
            .map(|(i, (c, &ns))| Function {
                name: format!("client-{i}"),
                profile: c.profile.clone(),
                reference: c.reference.clone(),
                // Twice its solo rate: no client is ever served faster than alone, so its queue
                // never empties after the first requests.
                rate_per_s: 2.0 * NS_PER_S as f64 / ns as f64,
            })
            .collect(),
        workload: Workload::Poisson,
        policy: PolicySpec {
            name: "closed-loop".into(),
            params: toml::Table::new(),
        },
        output: OutputSpec::default(),
        notes: Vec::new(),
    }
}

/// One instance per client, set up at time 0, always busy.
struct ClosedLoop {
    /// Per client: SM cap, time quota, partition.
    specs: Vec<(f64, f64, Partition)>,
    queues: Vec<VecDeque<InvId>>,
    mechanism: Mechanism,
    device: DeviceSpec,
}

impl ClosedLoop {
    fn next(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let f = ctx.instance(inst).func.ix();
        match self.queues[f].pop_front() {
            Some(inv) => ctx.run(inv, inst),
            None => ctx.keep_alive(inst, None),
        }
    }
}

impl Policy for ClosedLoop {
    fn name(&self) -> &str {
        "closed-loop"
    }
    fn sharing(&self) -> Box<dyn Sharing> {
        match self.mechanism {
            Mechanism::Mps => Box::new(CappedShares),
            Mechanism::TimeSlicing => Box::new(TimeSlice::fluid_on(std::slice::from_ref(&self.device))),
            Mechanism::Mig => Box::new(Isolated),
        }
    }
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        for (f, &(sm_cap, time_quota, partition)) in self.specs.iter().enumerate() {
            let func = FuncId(f as u32);
            let spec = InstanceSpec {
                setup: 0,
                sm_cap,
                time_quota,
                partition,
                ..ctx.default_instance(func, GpuId(0))
            };
            if let Err(refusal) = ctx.start_instance(func, GpuId(0), spec) {
                ctx.error(format!("the clients do not fit on one GPU together: {refusal:?}"));
                return;
            }
        }
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        let f = ctx.invocation(inv).func;
        self.queues[f.ix()].push_back(inv);
        // An idle instance (only before its first request) takes it at once.
        if let Some(inst) = ctx.idle_instance(f) {
            self.next(ctx, inst);
        }
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.next(ctx, inst);
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.next(ctx, inst);
    }
}

/// Counts each client's completions that end in the measured window, and their time on the
/// instance.
struct Tally {
    per_client: Rc<RefCell<Vec<(u64, u64)>>>,
    from: Nanos,
}

impl RecordSink for Tally {
    fn record(&mut self, r: &InvocationRecord<'_>) -> std::io::Result<()> {
        if r.outcome == Outcome::Completed && r.end.is_some_and(|e| e >= self.from) {
            if let (Some(i), Some(exec)) = (r.function.strip_prefix("client-"), r.exec) {
                if let Ok(i) = i.parse::<usize>() {
                    let mut t = self.per_client.borrow_mut();
                    t[i].0 += 1;
                    t[i].1 += exec;
                }
            }
        }
        Ok(())
    }
}
