//! Per-invocation records and where they go.
//!
//! The engine hands every ended invocation — completed, rejected or unfinished at the end of the
//! run — to a [`RecordSink`]. The replay harness produces the same records, so one comparison
//! tool reads both. Writing them is optional: [`NullSink`] drops them at no cost.

use crate::time::Nanos;
use std::io;

/// Why an invocation was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    /// The function's queue was at its configured maximum length.
    QueueFull,
    /// No GPU of the cluster could ever hold the function.
    NoFit,
    /// Refused by the policy for a reason of its own (admission control).
    Admission,
}

impl RejectReason {
    /// Every reason, in reporting order.
    pub const ALL: [RejectReason; 3] = [RejectReason::QueueFull, RejectReason::NoFit, RejectReason::Admission];

    /// Name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::QueueFull => "queue_full",
            RejectReason::NoFit => "no_fit",
            RejectReason::Admission => "admission",
        }
    }
}

/// How an invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Rejected(RejectReason),
    /// Its instance crashed while running it (a fatal GPU fault).
    Failed,
    /// Still queued or running when the simulation stopped.
    Unfinished,
}

impl Outcome {
    /// Name used in outputs: `completed`, `rejected:<reason>`, `unfinished`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Rejected(RejectReason::QueueFull) => "rejected:queue_full",
            Outcome::Rejected(RejectReason::NoFit) => "rejected:no_fit",
            Outcome::Rejected(RejectReason::Admission) => "rejected:admission",
            Outcome::Failed => "failed",
            Outcome::Unfinished => "unfinished",
        }
    }
}

/// One invocation's record. Times are absolute simulated times; durations are `None` where the
/// invocation never reached that stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvocationRecord<'a> {
    /// Arrival order, from 0.
    pub id: u64,
    pub function: &'a str,
    pub arrival: Nanos,
    /// When execution began.
    pub start: Option<Nanos>,
    pub end: Option<Nanos>,
    /// Waiting for an instance, setup excluded.
    pub queue: Option<Nanos>,
    /// Waiting on the setup (cold start) of the instance that served it.
    pub setup: Option<Nanos>,
    pub exec: Option<Nanos>,
    /// True when the invocation waited for its instance's setup.
    pub cold: bool,
    pub node: Option<u32>,
    pub gpu: Option<u32>,
    pub outcome: Outcome,
}

/// Receives invocation records as invocations end.
pub trait RecordSink {
    /// Takes one record.
    fn record(&mut self, rec: &InvocationRecord<'_>) -> io::Result<()>;

    /// False when records are discarded, so the engine need not build them.
    fn wants_records(&self) -> bool {
        true
    }

    /// Called once after the last record: flush, and make the output visible.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Takes the GPU samples of `[output] timeseries_s` as they are taken, so that they need not be
/// held until the run ends (a day at 1 s samples is billions of bytes).
pub trait SampleSink {
    /// Takes one sample (of one GPU over one interval).
    fn sample(&mut self, s: &crate::world::GpuSample) -> io::Result<()>;

    /// Called once after the last sample: flush, and make the output visible.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Drops every record.
pub struct NullSink;

impl RecordSink for NullSink {
    fn record(&mut self, _: &InvocationRecord<'_>) -> io::Result<()> {
        Ok(())
    }
    fn wants_records(&self) -> bool {
        false
    }
}

/// Keeps records in memory (for tests and small runs), with the function name owned.
#[derive(Default)]
pub struct VecSink(pub Vec<(String, InvocationRecord<'static>)>);

impl RecordSink for VecSink {
    fn record(&mut self, rec: &InvocationRecord<'_>) -> io::Result<()> {
        let owned = InvocationRecord { function: "", ..*rec };
        self.0.push((rec.function.to_string(), owned));
        Ok(())
    }
}
