//! The hybrid histogram keep-alive policy of Shahrad et al., "Serverless in the Wild" (ATC '20).
//!
//! Per function, a histogram of idle times — from an instance becoming idle to the function's
//! next arrival — in 1-minute bins up to 4 hours (longer ones are out of bounds). When the
//! histogram is representative, the function's instance is unloaded right after use and
//! pre-warmed at the head of the distribution, then kept warm until its tail:
//! `prewarm = head percentile × (1 − margin)`, `keep = tail percentile × (1 + margin) − prewarm`;
//! a head under one bin means no unloading, just a keep-alive of the tail. When it is not
//! representative — too few idle times, too many out of bounds, or counts spread too evenly
//! over the bins (coefficient of variation below the threshold) — the fixed keep-alive applies.
//!
//! **Parameters** (paper's values as defaults): bins of 1 minute, 240 bins (4 h), head the 5th
//! and tail the 99th percentile, 10 % margins, representative from 10 idle times with at most
//! half out of bounds and a bin-count CV of at least 2. Its ARIMA fallback for functions whose
//! idle times exceed the range is not modelled (the fixed keep-alive is used instead).

use crate::ids::FuncId;
use crate::policy::{IdleAction, IdleInstance, KeepAlive};
use crate::time::{NS_PER_S, Nanos};

/// Parameters of the hybrid histogram policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HybridConfig {
    pub bin: Nanos,
    pub bins: usize,
    pub head: f64,
    pub tail: f64,
    pub margin: f64,
    pub min_samples: u32,
    pub max_out_of_bounds: f64,
    pub min_cv: f64,
    /// Keep-alive when the histogram is not representative.
    pub fallback: Option<Nanos>,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            bin: 60 * NS_PER_S,
            bins: 240,
            head: 0.05,
            tail: 0.99,
            margin: 0.1,
            min_samples: 10,
            max_out_of_bounds: 0.5,
            min_cv: 2.0,
            fallback: Some(600 * NS_PER_S),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct FnHistory {
    counts: Vec<u32>,
    samples: u32,
    out_of_bounds: u32,
    idle_since: Option<Nanos>,
}

/// The hybrid histogram keep-alive.
pub struct HybridHistogram {
    cfg: HybridConfig,
    funcs: Vec<FnHistory>,
}

impl HybridHistogram {
    pub fn new(cfg: HybridConfig, functions: usize) -> Self {
        HybridHistogram {
            cfg,
            funcs: vec![
                FnHistory {
                    counts: vec![0; cfg.bins],
                    ..Default::default()
                };
                functions
            ],
        }
    }

    /// The (prewarm, keep-alive) windows of `func`, if its histogram is representative.
    pub fn windows(&self, func: FuncId) -> Option<(Nanos, Nanos)> {
        let h = &self.funcs[func.ix()];
        let inside = h.samples - h.out_of_bounds;
        if h.samples < self.cfg.min_samples
            || f64::from(h.out_of_bounds) > self.cfg.max_out_of_bounds * f64::from(h.samples)
            || inside == 0
        {
            return None;
        }
        let n = self.cfg.bins as f64;
        let mean = f64::from(inside) / n;
        let var = h.counts.iter().map(|&c| (f64::from(c) - mean).powi(2)).sum::<f64>() / n;
        if var.sqrt() / mean < self.cfg.min_cv {
            return None;
        }
        let percentile = |q: f64| -> f64 {
            let target = q * f64::from(inside);
            let mut acc = 0.0;
            for (i, &c) in h.counts.iter().enumerate() {
                acc += f64::from(c);
                if acc >= target {
                    return i as f64;
                }
            }
            (self.cfg.bins - 1) as f64
        };
        let bin = self.cfg.bin as f64;
        let prewarm = (percentile(self.cfg.head) * bin * (1.0 - self.cfg.margin)) as Nanos;
        let keep_end = ((percentile(self.cfg.tail) + 1.0) * bin * (1.0 + self.cfg.margin)) as Nanos;
        Some((if prewarm < self.cfg.bin { 0 } else { prewarm }, keep_end))
    }
}

impl KeepAlive for HybridHistogram {
    fn arrived(&mut self, func: FuncId, now: Nanos) {
        let bin = self.cfg.bin;
        let h = &mut self.funcs[func.ix()];
        if let Some(since) = h.idle_since.take() {
            let b = ((now - since) / bin) as usize;
            h.samples += 1;
            match h.counts.get_mut(b) {
                Some(c) => *c += 1,
                None => h.out_of_bounds += 1,
            }
        }
    }

    fn idle(&mut self, idle: &IdleInstance) -> IdleAction {
        let func = idle.func;
        self.funcs[func.ix()].idle_since.get_or_insert(idle.now);
        match self.windows(func) {
            None => IdleAction::KeepFor(self.cfg.fallback),
            Some((0, keep_end)) => IdleAction::KeepFor(Some(keep_end)),
            Some((prewarm, keep_end)) => IdleAction::UnloadThenPrewarm {
                prewarm_after: prewarm,
                keep_for: keep_end - prewarm,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstId;

    fn idle_at(func: FuncId, now: Nanos) -> IdleInstance {
        IdleInstance {
            func,
            inst: InstId(0),
            now,
            setup: 0,
            served: 1,
        }
    }

    #[test]
    fn learns_a_periodic_function_and_falls_back_before() {
        let mut k = HybridHistogram::new(HybridConfig::default(), 1);
        let f = FuncId(0);
        let min = 60 * NS_PER_S;
        let mut t = 0;
        for i in 0..12 {
            let a = k.idle(&idle_at(f, t));
            if i < 10 {
                assert_eq!(a, IdleAction::KeepFor(Some(600 * NS_PER_S)), "not representative yet");
            }
            t += 20 * min;
            k.arrived(f, t);
        }
        // Idle times all in the 20-minute bin: prewarm at 18 min, keep until 23.1 min.
        let a = k.idle(&idle_at(f, t));
        assert_eq!(
            a,
            IdleAction::UnloadThenPrewarm {
                prewarm_after: 18 * min,
                keep_for: (23.1 * 60.0 * 1e9) as Nanos - 18 * min
            }
        );
    }

    #[test]
    fn spread_out_idle_times_are_not_representative() {
        let mut k = HybridHistogram::new(HybridConfig::default(), 1);
        let f = FuncId(0);
        let mut t = 0;
        for i in 0..240u64 {
            k.idle(&idle_at(f, t));
            t += i * 60 * NS_PER_S + 1;
            k.arrived(f, t);
        }
        assert_eq!(k.windows(f), None);
    }
}
