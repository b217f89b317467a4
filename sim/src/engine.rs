//! The engine loop: merges the workload's arrivals with the event queue and dispatches each
//! event to the world's mechanics and the policy's callbacks.
//!
//! Arrivals are pulled from the workload stream one at a time and compared with the head of the
//! event heap, so a whole trace never sits in memory. At equal times, queued events go before
//! the arrival (an instance freed at `t` serves an invocation arriving at `t`). The run covers
//! `[0, horizon)`; with `drain`, no arrivals are taken after the horizon but the run continues
//! until every invocation has ended.

use crate::events::Event;
use crate::ids::{FuncId, InstId};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::record::RecordSink;
use crate::scenario::Scenario;
use crate::summary::Summary;
use crate::time::Nanos;
use crate::timeline::Timeline;
use crate::world::{Ctx, FunctionInfo, GpuSample, World};
use gpushare_traces::{Arrival, ArrivalSource, TraceError};

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The workload could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The policy broke a rule of the engine, or records could not be written.
    #[error("policy `{policy}` at t = {time_s:.9} s: {message}")]
    Fault {
        policy: String,
        time_s: f64,
        message: String,
    },
    /// An output could not be written (a full disk, say): the message names it.
    #[error("{message}")]
    Output { message: String },
}

/// What a finished run returns.
pub struct RunOutput {
    pub summary: Summary,
    /// The record sink, handed back so its owner can finish writing.
    pub sink: Box<dyn RecordSink>,
    /// End-to-end latency at each of [`crate::summary::cdf_quantiles`] (measured completions,
    /// seconds); empty without completions.
    pub latency_cdf: Vec<(f64, f64)>,
    /// GPU samples over time (`[output] timeseries_s`), by time then GPU; empty when a
    /// [`crate::record::SampleSink`] took them.
    pub timeseries: Vec<GpuSample>,
}

/// One simulation, ready to run.
pub struct Simulation {
    world: World,
    policy: Box<dyn Policy>,
    source: Box<dyn ArrivalSource>,
    scenario_name: String,
    seed: u64,
    horizon: Nanos,
    drain: bool,
    last_arrival: Nanos,
    /// Interval of GPU samples, if wanted.
    sample_every: Option<Nanos>,
    /// Which GPUs the summary lists one by one.
    gpu_detail: crate::scenario::GpuDetail,
}

impl Simulation {
    /// Builds the world for `scenario` with `policy`; records go to `sink`.
    pub fn new(scenario: &Scenario, policy: Box<dyn Policy>, sink: Box<dyn RecordSink>) -> Result<Self, SimError> {
        let functions = scenario
            .functions
            .iter()
            .map(|f| FunctionInfo {
                name: f.name.clone(),
                compiled: scenario
                    .devices
                    .iter()
                    .map(|dev| f.profile.compile(&f.reference, dev, scenario.storage_gbps))
                    .collect(),
            })
            .collect::<Vec<_>>();
        let mut metrics = Metrics::new(functions.len(), scenario.warmup);
        metrics.slo = scenario.slo;
        let world = World::new(
            functions,
            scenario.devices.clone(),
            &scenario.gpus,
            policy.sharing(),
            metrics,
            sink,
        );
        Ok(Simulation {
            world,
            source: scenario.open_workload()?,
            policy,
            scenario_name: scenario.name.clone(),
            gpu_detail: scenario.output.gpu_detail,
            seed: scenario.seed,
            horizon: scenario.horizon,
            drain: scenario.drain,
            last_arrival: 0,
            sample_every: scenario
                .output
                .timeseries_s
                .map(crate::time::secs_to_ns)
                .filter(|&n| n > 0),
        })
    }

    /// Reports the run's spans to `timeline` (a Chrome / Perfetto trace writer, say).
    pub fn with_timeline(mut self, mut timeline: Box<dyn Timeline>) -> Result<Self, std::io::Error> {
        for (i, g) in self.world.gpus.iter().enumerate() {
            timeline.gpu(i as u32, g.node, &self.world.devices[g.device].name)?;
        }
        self.world.timeline = Some(timeline);
        Ok(self)
    }

    /// Streams the GPU samples to `sink` as they are taken instead of keeping them; `run`
    /// finishes it.
    pub fn with_sample_sink(mut self, sink: Box<dyn crate::record::SampleSink>) -> Self {
        self.world.sample_sink = Some(sink);
        self
    }

    /// The first broken rule or unwritable output, as the run's error.
    fn check_faults(&mut self) -> Result<(), SimError> {
        if let Some(message) = self.world.output_fault.take() {
            return Err(SimError::Output { message });
        }
        match self.world.fault.take() {
            Some(message) => Err(self.fault(message)),
            None => Ok(()),
        }
    }

    fn pull(&mut self) -> Result<Option<Arrival>, SimError> {
        let Some(a) = self.source.next_arrival()? else {
            return Ok(None);
        };
        if a.time >= self.horizon {
            return Ok(None);
        }
        if a.time < self.last_arrival || a.func as usize >= self.world.functions.len() {
            return Err(self.fault(format!(
                "the workload produced an arrival out of order or for an unknown function ({a:?})"
            )));
        }
        self.last_arrival = a.time;
        Ok(Some(a))
    }

    fn fault(&self, message: String) -> SimError {
        SimError::Fault {
            policy: self.policy.name().to_string(),
            time_s: crate::time::ns_to_secs(self.world.now),
            message,
        }
    }

    /// Runs to the end and returns the summary.
    pub fn run(mut self) -> Result<RunOutput, SimError> {
        if let Some(every) = self.sample_every {
            self.world.events.push(every, Event::Sample);
        }
        let warmup = self.world.metrics.warmup;
        if warmup > 0 {
            self.world.events.push(warmup, Event::WarmupEnd);
        }
        self.policy.on_start(&mut Ctx { w: &mut self.world });
        self.world.flush_gpus();
        self.check_faults()?;
        let mut next_arrival = self.pull()?;
        let mut finished: Vec<(InstId, u32)> = Vec::new();
        loop {
            let event_time = self.world.events.peek_time();
            let mut counted = true;
            let take_event = match (event_time, next_arrival) {
                (Some(t), Some(a)) => t <= a.time,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_event {
                let t = event_time.expect("peeked");
                if t >= self.horizon && !(self.drain && self.world.live_invocations > 0) {
                    break;
                }
                let (t, event) = self.world.events.pop().expect("peeked");
                self.world.now = t;
                // Samples and the warm-up mark observe; they are not events of the system.
                counted = !matches!(event, Event::Sample | Event::WarmupEnd);
                self.dispatch(event, &mut finished);
            } else {
                let a = next_arrival.take().expect("checked");
                self.world.now = a.time;
                let inv = self.world.arrive(FuncId(a.func), a.time, a.duration);
                self.policy.on_arrival(&mut Ctx { w: &mut self.world }, inv);
                next_arrival = self.pull()?;
            }
            self.world.flush_gpus();
            self.world.metrics.events += u64::from(counted);
            self.check_faults()?;
        }
        let end = if self.drain {
            self.world.now.max(self.horizon)
        } else {
            self.horizon
        };
        self.world.now = end;
        self.world.settle();
        if self.sample_every.is_some() {
            // The last, possibly shorter, interval.
            self.world.sample();
        }
        self.world.report_unfinished();
        if let Some(t) = self.world.timeline.as_mut() {
            if let Err(e) = t.finish() {
                self.world.output_failed(format!("writing the timeline failed: {e}"));
            }
        }
        if let Some(sink) = self.world.sample_sink.as_mut() {
            if let Err(e) = sink.finish() {
                self.world.output_failed(format!("writing GPU samples failed: {e}"));
            }
        }
        self.check_faults()?;
        let mut summary = Summary::build(
            &self.world,
            &self.scenario_name,
            self.policy.name(),
            self.seed,
            self.horizon,
            end,
        );
        if !self.gpu_detail.lists(summary.gpus.len()) {
            summary.gpus = Vec::new();
        }
        summary.policy_report = self.policy.report();
        if let Some(skipped) = self.source.skipped_rows().filter(|s| s.count > 0) {
            summary.workload_report = skipped.to_string().lines().map(|l| l.trim().to_string()).collect();
        }
        let quantiles = crate::summary::cdf_quantiles();
        let values = self.world.metrics.e2e.quantiles_s(&quantiles);
        Ok(RunOutput {
            summary,
            sink: self.world.sink,
            latency_cdf: quantiles.into_iter().zip(values).collect(),
            timeseries: std::mem::take(&mut self.world.samples),
        })
    }

    fn dispatch(&mut self, event: Event, finished: &mut Vec<(InstId, u32)>) {
        let ctx = &mut Ctx { w: &mut self.world };
        match event {
            Event::SetupDone { inst, state_version } => {
                if let Some(i) = ctx.w.setup_done(inst, state_version) {
                    self.policy.on_instance_ready(ctx, i);
                }
            }
            Event::HostStepDone { inst, state_version } => {
                if let Some(i) = ctx.w.host_step_done(inst, state_version) {
                    self.policy.on_complete(ctx, i);
                }
            }
            Event::GpuPhaseDone { gpu, rates_version } => {
                ctx.w.gpu_phase_done(gpu, rates_version, finished);
                for (i, state_version) in finished.drain(..) {
                    // An earlier callback of this event may have reclaimed or reused it.
                    if ctx.w.unchanged_since(i, state_version) {
                        self.policy.on_complete(ctx, i);
                    }
                }
            }
            Event::IdleExpired { inst, life_version } => {
                if let Some(i) = ctx.w.idle_expired(inst, life_version) {
                    self.policy.on_idle_expired(ctx, i);
                }
            }
            Event::InvHostDone { inv } => {
                if let Some(v) = ctx.w.inv_host_done(inv) {
                    self.policy.on_host_done(ctx, v);
                }
            }
            Event::PolicyTimer { token } => self.policy.on_timer(ctx, token),
            Event::WarmupEnd => ctx.w.mark_warmup(),
            Event::Sample => {
                ctx.w.sample();
                let every = self.sample_every.expect("samples are scheduled only when wanted");
                let next = ctx.w.now + every;
                // Past the horizon only while a drained run still has other work pending.
                if next < self.horizon || (self.drain && !ctx.w.events.is_empty()) {
                    ctx.w.events.push(next, Event::Sample);
                }
            }
        }
    }
}
