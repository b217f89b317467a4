//! What happened when, for looking at a policy's decisions: the engine reports spans of time
//! on tracks (a GPU and an instance slot) to a [`Timeline`], which `gpushare-reports` writes as
//! a Chrome / Perfetto trace.
//!
//! Spans nest by time on a track: an instance's life holds its setup and its invocations, an
//! invocation its phases. Each span is reported once, when it ends (the order of spans in the
//! output is therefore by end time). A slot is reused after its instance is reclaimed, so one
//! track can show several instances one after another.

use crate::time::Nanos;
use std::io;

/// What a span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// An instance from its start to its reclaim (or the end of the run).
    Instance,
    /// Its setup (cold start).
    Setup,
    /// An invocation's part on the instance.
    Invocation,
    /// A kernel phase.
    Kernel,
    /// A host→device copy.
    H2d,
    /// A device→host copy.
    D2h,
    /// Host time the instance spends on an invocation without using the GPU.
    Host,
}

impl SpanKind {
    /// Category name in the trace.
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Instance => "instance",
            SpanKind::Setup => "setup",
            SpanKind::Invocation => "invocation",
            SpanKind::Kernel => "kernel",
            SpanKind::H2d => "h2d",
            SpanKind::D2h => "d2h",
            SpanKind::Host => "host",
        }
    }
}

/// One span on the track of (`gpu`, instance slot `slot`).
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    pub kind: SpanKind,
    pub gpu: u32,
    pub slot: u32,
    /// The function (or "worker" for a worker that serves any).
    pub function: &'a str,
    pub start: Nanos,
    pub end: Nanos,
}

/// Where spans go.
pub trait Timeline {
    /// Names a GPU's track group; called once per GPU before any span.
    fn gpu(&mut self, gpu: u32, node: u32, device: &str) -> io::Result<()>;
    /// Reports a span that just ended.
    fn span(&mut self, span: &Span<'_>) -> io::Result<()>;
    /// The run ended: write what is left.
    fn finish(&mut self) -> io::Result<()>;
}
