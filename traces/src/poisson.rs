//! Poisson arrivals: one independent exponential inter-arrival stream per function, merged in
//! time order.
//!
//! Each function draws from its own random stream (see [`crate::rng`]), so changing one
//! function's rate leaves every other function's arrival times unchanged. The merge keeps one
//! pending arrival per function in a small heap: memory is O(functions), not O(invocations).

use crate::{Arrival, ArrivalSource, Nanos, TraceError, rng};
use rand_distr::{Distribution, Exp1};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

fn key(time: Nanos, func: u32) -> u128 {
    (u128::from(time) << 32) | u128::from(func)
}

/// Merged Poisson arrival streams, one per function, up to a horizon.
pub struct PoissonSource {
    /// Per function: (mean gap in ns, its stream); `None` for a function with rate 0.
    streams: Vec<Option<(f64, rng::Xoshiro256PlusPlus)>>,
    /// Next arrival of each active function, keyed `time << 32 | function` so that one integer
    /// comparison orders by time, then function.
    pending: BinaryHeap<Reverse<u128>>,
    horizon: Nanos,
}

impl PoissonSource {
    /// Arrivals at `rates_per_s[f]` requests per second for each function `f`, strictly before
    /// `horizon`. Rates must be finite and non-negative (the scenario loader checks this).
    pub fn new(rates_per_s: &[f64], seed: u64, horizon: Nanos) -> Self {
        let mut src = PoissonSource {
            streams: Vec::with_capacity(rates_per_s.len()),
            pending: BinaryHeap::with_capacity(rates_per_s.len()),
            horizon,
        };
        for (f, &rate) in rates_per_s.iter().enumerate() {
            if rate > 0.0 && rate.is_finite() {
                let mean_gap_ns = 1e9 / rate;
                src.streams
                    .push(Some((mean_gap_ns, rng::stream(seed, "arrivals", f as u64))));
                src.schedule(f as u32, 0);
            } else {
                src.streams.push(None);
            }
        }
        src
    }

    fn schedule(&mut self, func: u32, after: Nanos) {
        if let Some((mean_gap_ns, rng)) = &mut self.streams[func as usize] {
            let gap: f64 = Exp1.sample(rng);
            let t = after.saturating_add((gap * *mean_gap_ns).round() as Nanos);
            if t < self.horizon {
                self.pending.push(Reverse(key(t, func)));
            }
        }
    }
}

impl ArrivalSource for PoissonSource {
    fn next_arrival(&mut self) -> Result<Option<Arrival>, TraceError> {
        // Replace the head in place: one sift-down instead of a pop and a push.
        let Some(mut head) = self.pending.peek_mut() else {
            return Ok(None);
        };
        let Reverse(k) = *head;
        let (time, func) = ((k >> 32) as Nanos, k as u32);
        let (mean_gap_ns, rng) = self.streams[func as usize]
            .as_mut()
            .expect("only active functions are pending");
        let gap: f64 = Exp1.sample(rng);
        let next = time.saturating_add((gap * *mean_gap_ns).round() as Nanos);
        if next < self.horizon {
            *head = Reverse(key(next, func));
        } else {
            std::collections::binary_heap::PeekMut::pop(head);
        }
        Ok(Some(Arrival {
            time,
            func,
            duration: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NS_PER_S;

    fn collect(src: &mut PoissonSource) -> Vec<Arrival> {
        std::iter::from_fn(|| src.next_arrival().unwrap()).collect()
    }

    #[test]
    fn sorted_within_horizon_and_rates_match() {
        let horizon = 2000 * NS_PER_S;
        let mut src = PoissonSource::new(&[1.0, 5.0, 0.0], 11, horizon);
        let all = collect(&mut src);
        assert!(all.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(all.iter().all(|a| a.time < horizon && a.func < 2));
        let n0 = all.iter().filter(|a| a.func == 0).count() as f64;
        let n1 = all.iter().filter(|a| a.func == 1).count() as f64;
        // Expected 2000 and 10000; 4 standard deviations.
        assert!((n0 - 2000.0).abs() < 4.0 * 2000f64.sqrt(), "n0 = {n0}");
        assert!((n1 - 10000.0).abs() < 4.0 * 10000f64.sqrt(), "n1 = {n1}");
    }

    #[test]
    fn functions_have_independent_streams() {
        let horizon = 100 * NS_PER_S;
        let f0 = |rates: &[f64]| -> Vec<Nanos> {
            let mut s = PoissonSource::new(rates, 3, horizon);
            collect(&mut s)
                .into_iter()
                .filter(|a| a.func == 0)
                .map(|a| a.time)
                .collect()
        };
        assert_eq!(f0(&[2.0]), f0(&[2.0, 7.0, 1.0]));
    }
}
