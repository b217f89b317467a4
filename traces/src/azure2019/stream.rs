//! Turning per-minute counts into a time-ordered arrival stream.
//!
//! Minute by minute, every function with invocations in that minute places them inside it (by
//! the chosen [`Spread`]), shifted by its own random offset if asked — cyclically within the
//! minute, so that every minute keeps exactly its traced count and no invocation of the window
//! falls outside it; the minute's points are sorted once by (time, function) and emitted. Each
//! function's points form a sorted run, so this is a k-way merge of the per-function streams
//! done one minute at a time: memory is bounded by the function table plus the invocations of
//! one minute, never by the trace's length.

use super::parse::Azure2019;
use super::sample::{DurationModel, Sampler};
use crate::{Arrival, ArrivalSource, NS_PER_S, Nanos, TraceError, rng};
use rand::RngExt;
use rand_distr::{Distribution, Exp1};
use serde::Deserialize;

const MINUTE_NS: Nanos = 60 * NS_PER_S;
/// Bits of a pending key that hold the function index (up to 134 M functions).
const FUNC_BITS: u32 = 27;
const FUNC_MASK: u64 = (1 << FUNC_BITS) - 1;

/// How one minute's n invocations are placed inside the minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// n exponential gaps rescaled to fill the minute (vHive's loader default).
    #[default]
    Exponential,
    /// n independent uniform draws.
    Uniform,
    /// Evenly, 60/n apart, from the start of the minute.
    Equidistant,
    /// Ignore the minute structure: a Poisson process at the function's mean rate over the
    /// whole window.
    PoissonFit,
}

impl Spread {
    /// Parses `exponential`, `uniform`, `equidistant` or `poisson-fit`.
    pub fn parse(name: &str) -> Option<Spread> {
        Some(match name {
            "exponential" => Spread::Exponential,
            "uniform" => Spread::Uniform,
            "equidistant" => Spread::Equidistant,
            "poisson-fit" => Spread::PoissonFit,
            _ => return None,
        })
    }
}

/// How to stream a read trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamOptions {
    pub spread: Spread,
    /// Shift each function's arrivals by its own random offset in [0, 60 s), cyclically within
    /// each minute (a minute keeps its count). `PoissonFit` has no minutes to desynchronise
    /// and ignores it.
    pub shift: bool,
    pub durations: DurationModel,
    /// Multiply every count by this (≥ 0): rescaling to a target rate. Fractions are resolved
    /// per minute by a Bernoulli draw, so the expected count is exact.
    pub scale: f64,
    pub seed: u64,
}

struct FnState {
    minutes: Vec<(u32, u32)>,
    next: usize,
    shift: Nanos,
    rng: rng::Xoshiro256PlusPlus,
    sampler: Sampler,
    /// Poisson-fit: mean gap in ns and the next arrival (relative to the window start).
    mean_gap: f64,
    next_time: Nanos,
}

/// A read trace as an [`ArrivalSource`].
pub struct Azure2019Stream {
    fns: Vec<FnState>,
    /// Next minute to generate, relative to the window start.
    minute: u32,
    minutes: u32,
    opts: StreamOptions,
    /// The minute's arrivals, sorted: (offset from `base` << FUNC_BITS | function, duration or
    /// u64::MAX for none). Every time lies in [base, base + 60 s) (spreading and cyclic shifts
    /// stay within the minute), so the offset fits in 36 bits and the whole key in one u64
    /// (16-byte entries sort fast).
    pending: Vec<(u64, Nanos)>,
    /// Start of the minute they belong to.
    base: Nanos,
    /// The next of them to emit.
    pos: usize,
    scratch: Vec<f64>,
}

impl Azure2019Stream {
    /// Streams `trace` (its functions in order are the function indices of the arrivals).
    ///
    /// # Panics
    /// If the trace has 2^27 (134 M) functions or more; the real dataset has about 46,000.
    pub fn new(trace: Azure2019, opts: StreamOptions) -> Self {
        assert!(
            (trace.functions.len() as u64) < (1 << FUNC_BITS),
            "too many functions for one stream"
        );
        let (w_start, w_end) = trace.window;
        let window_ns = (w_end - w_start) as f64 * MINUTE_NS as f64;
        let fns = trace
            .functions
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let mut rng = rng::stream(opts.seed, "azure2019", i as u64);
                let shift = if opts.shift { rng.random_range(0..MINUTE_NS) } else { 0 };
                let sampler = Sampler::new(opts.durations, f.durations.as_ref());
                let expected = f.total as f64 * opts.scale;
                let mean_gap = if expected > 0.0 {
                    window_ns / expected
                } else {
                    f64::INFINITY
                };
                let minutes = f.minutes.into_iter().map(|(m, c)| (m - w_start, c)).collect();
                let mut s = FnState {
                    minutes,
                    next: 0,
                    shift,
                    rng,
                    sampler,
                    mean_gap,
                    next_time: 0,
                };
                if opts.spread == Spread::PoissonFit {
                    s.next_time = s.draw_gap();
                }
                s
            })
            .collect();
        Azure2019Stream {
            fns,
            minute: 0,
            minutes: w_end - w_start,
            opts,
            pending: Vec::new(),
            base: 0,
            pos: 0,
            scratch: Vec::new(),
        }
    }

    /// Generates minute `self.minute`, in order.
    fn advance_minute(&mut self) {
        self.pending.clear();
        self.pos = 0;
        let m = self.minute;
        let minute_start = u64::from(m) * MINUTE_NS;
        let minute_end = minute_start + MINUTE_NS;
        self.base = minute_start;
        for (func, f) in self.fns.iter_mut().enumerate() {
            let key = |t: Nanos| ((t - minute_start) << FUNC_BITS) | func as u64;
            if self.opts.spread == Spread::PoissonFit {
                while f.next_time < minute_end {
                    let t = f.next_time;
                    let d = f.sampler.draw(&mut f.rng).unwrap_or(u64::MAX);
                    self.pending.push((key(t), d));
                    let gap = f.draw_gap();
                    f.next_time = f.next_time.saturating_add(gap);
                }
                continue;
            }
            let Some(&(fm, count)) = f.minutes.get(f.next) else {
                continue;
            };
            if fm != m {
                continue;
            }
            f.next += 1;
            let n = scaled(count, self.opts.scale, &mut f.rng);
            if n == 0 {
                continue;
            }
            let offsets = &mut self.scratch;
            offsets.clear();
            match self.opts.spread {
                Spread::Exponential => {
                    let mut sum = 0.0;
                    for _ in 0..n {
                        let g: f64 = Exp1.sample(&mut f.rng);
                        sum += g;
                        offsets.push(sum);
                    }
                    let last: f64 = Exp1.sample(&mut f.rng);
                    let total = sum + last;
                    for o in offsets.iter_mut() {
                        *o /= total;
                    }
                }
                Spread::Uniform => offsets.extend((0..n).map(|_| f.rng.random::<f64>())),
                Spread::Equidistant => offsets.extend((0..n).map(|i| f64::from(i) / f64::from(n))),
                Spread::PoissonFit => unreachable!("handled above"),
            }
            for &o in offsets.iter() {
                let t = minute_start + ((o * MINUTE_NS as f64) as Nanos + f.shift) % MINUTE_NS;
                let d = f.sampler.draw(&mut f.rng).unwrap_or(u64::MAX);
                self.pending.push((key(t), d));
            }
        }
        self.minute += 1;
        self.pending.sort_unstable_by_key(|e| e.0);
    }
}

impl FnState {
    fn draw_gap(&mut self) -> Nanos {
        if !self.mean_gap.is_finite() {
            return Nanos::MAX;
        }
        let g: f64 = Exp1.sample(&mut self.rng);
        (g * self.mean_gap).round() as Nanos
    }
}

/// `count × scale`, the fraction resolved by a Bernoulli draw.
fn scaled<R: rand::Rng>(count: u32, scale: f64, rng: &mut R) -> u32 {
    if scale == 1.0 {
        return count;
    }
    let x = f64::from(count) * scale;
    let whole = x.floor();
    let extra = rng.random::<f64>() < x - whole;
    whole as u32 + u32::from(extra)
}

impl ArrivalSource for Azure2019Stream {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        while self.pos >= self.pending.len() {
            if self.minute >= self.minutes {
                return Ok(None);
            }
            self.advance_minute();
        }
        let (k, d) = self.pending[self.pos];
        self.pos += 1;
        Ok(Some(Arrival {
            time: self.base + (k >> FUNC_BITS),
            func: (k & FUNC_MASK) as u32,
            duration: (d != u64::MAX).then_some(d),
        }))
    }
}
