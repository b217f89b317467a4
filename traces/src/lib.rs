//! Workload sources for gpushare.
//!
//! This crate owns everything that turns a workload description into a time-ordered stream of
//! [`Arrival`]s: trace readers, synthetic generators, and the seeded random streams they draw
//! from. It depends on nothing else of gpushare, so readers can be tested and reused alone.
//!
//! A source is pulled one arrival at a time through [`ArrivalSource`]; no source holds a whole
//! trace in memory, so a day of invocations streams through the simulator in bounded memory.

pub mod any;
pub mod atomic;
pub mod azure2019;
pub mod azure2021;
pub mod error;
pub mod generate;
pub mod line_rows;
pub mod llm;
pub mod plain_csv;
pub mod poisson;
pub mod rng;
pub mod rows;
pub mod stats;
pub mod tempdir;
pub mod write;

pub use error::TraceError;
pub use plain_csv::PlainCsvSource;
pub use poisson::PoissonSource;

/// Simulated time: an integer count of nanoseconds since the start of the run.
pub type Nanos = u64;

/// Nanoseconds in one second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Converts seconds to nanoseconds, rounding to the nearest nanosecond.
///
/// The caller guarantees `secs` is finite and non-negative (readers check this per row).
/// The longest time or duration any trace may give, seconds: about 31 years, far inside the
/// nanosecond clock's 584 (a value beyond would saturate and end requests before they start).
pub const MAX_SECONDS: f64 = 1e9;
/// The most tokens one LLM request may have (prompt or output): a hundred times today's
/// longest contexts.
pub const MAX_TOKENS: u64 = 100_000_000;

pub fn secs_to_ns(secs: f64) -> Nanos {
    (secs * NS_PER_S as f64).round() as Nanos
}

/// One invocation entering the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Arrival time.
    pub time: Nanos,
    /// Index of the function in the scenario's function list.
    pub func: u32,
    /// Execution time given by the trace, overriding the profile's own (uncontended) time.
    pub duration: Option<Nanos>,
}

/// A time-ordered stream of arrivals.
///
/// Implementations yield arrivals in non-decreasing time order and report malformed input as a
/// [`TraceError`] naming the file, line and field.
pub trait ArrivalSource {
    /// The next arrival, `Ok(None)` at the end of the stream.
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError>;

    /// The malformed rows skipped so far (`skip_bad_rows`), for a reader that streams a file;
    /// `None` for sources that read nothing or reported while loading.
    fn skipped_rows(&self) -> Option<&rows::SkippedRows> {
        None
    }
}

impl<S: ArrivalSource + ?Sized> ArrivalSource for Box<S> {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        (**self).next_arrival()
    }
    fn skipped_rows(&self) -> Option<&rows::SkippedRows> {
        (**self).skipped_rows()
    }
}

/// A source read one arrival ahead: refuses a trace file with no arrival at all (a header and
/// nothing else is a mistake, never a workload) and then hands out the same arrivals.
pub struct NonEmpty<S> {
    first: Option<Arrival>,
    rest: S,
}

impl<S: ArrivalSource> NonEmpty<S> {
    /// Reads `source`'s first arrival; `Err` naming `path` when there is none.
    pub fn new(mut source: S, path: &std::path::Path) -> Result<Self, TraceError> {
        match source.next_arrival()? {
            Some(first) => Ok(NonEmpty {
                first: Some(first),
                rest: source,
            }),
            None => Err(TraceError::Row {
                path: path.to_owned(),
                line: 1,
                field: "header".into(),
                message: "no invocation follows the header; workload.path must name a trace with at least one row"
                    .into(),
            }),
        }
    }
}

impl<S: ArrivalSource> ArrivalSource for NonEmpty<S> {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        match self.first.take() {
            Some(a) => Ok(Some(a)),
            None => self.rest.next_arrival(),
        }
    }
    fn skipped_rows(&self) -> Option<&rows::SkippedRows> {
        self.rest.skipped_rows()
    }
}

/// A source whose arrival times are divided by `factor`: the same arrivals, `factor` times
/// closer together (the offered load scaled by `factor`); durations are unchanged.
pub struct Compressed<S> {
    inner: S,
    factor: f64,
}

impl<S: ArrivalSource> Compressed<S> {
    /// Wraps `inner`; `factor` must be positive.
    pub fn new(inner: S, factor: f64) -> Self {
        Compressed { inner, factor }
    }
}

impl<S: ArrivalSource> ArrivalSource for Compressed<S> {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        Ok(self.inner.next_arrival()?.map(|a| Arrival {
            time: (a.time as f64 / self.factor).round() as Nanos,
            ..a
        }))
    }
    fn skipped_rows(&self) -> Option<&rows::SkippedRows> {
        self.inner.skipped_rows()
    }
}
