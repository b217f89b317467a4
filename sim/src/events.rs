//! The event queue: a binary heap ordered by (time, sequence number).
//!
//! Events are small `Copy` values, never boxed. The sequence number makes the order of events at
//! the same instant the order in which they were scheduled, so runs are deterministic. Events
//! that may be superseded carry a version counter (an instance's `state_version` or `life_version`, a GPU's `rates_version`) checked when they fire; stale ones
//! are dropped instead of being searched for and removed.
//!
//! Timers (keep-alive expiries and policy timers) sit in a heap of their own: there is about one
//! per instance and they rarely fire, so keeping them apart keeps the heap that every GPU
//! completion goes through shallow. Both heaps draw sequence numbers from one counter, so the
//! order of events is exactly that of a single heap.

use crate::ids::{GpuId, InstId, InvId};
use crate::time::Nanos;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Something that happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An instance finished its setup (cold start).
    SetupDone { inst: InstId, state_version: u32 },
    /// An instance finished a host (CPU) step of its current invocation.
    HostStepDone { inst: InstId, state_version: u32 },
    /// The earliest phase completion on a GPU, valid while the GPU's rates have not changed since (`rates_version`).
    GpuPhaseDone { gpu: GpuId, rates_version: u32 },
    /// An instance's keep-alive deadline may have passed (checked when it fires).
    IdleExpired { inst: InstId, life_version: u32 },
    /// An invocation's host code, running on the CPU without an instance, ended.
    InvHostDone { inv: InvId },
    /// A timer a policy set for itself.
    PolicyTimer { token: u64 },
    /// Time to sample every GPU (`[output] timeseries_s`).
    Sample,
    /// The warm-up ends: snapshot what the measured window leaves out.
    WarmupEnd,
}

/// A scheduled event; `key` is `time << 64 | seq`, so one integer comparison orders entries by
/// time, then by scheduling order.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u128,
    event: Event,
}

impl Entry {
    fn time(&self) -> Nanos {
        (self.key >> 64) as Nanos
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest key on top.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Pending events.
#[derive(Default)]
pub struct EventQueue {
    /// Completions of setup, host steps and GPU phases.
    heap: BinaryHeap<Entry>,
    /// Keep-alive expiries and policy timers.
    timers: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    /// Schedules `event` at `time`.
    #[inline]
    pub fn push(&mut self, time: Nanos, event: Event) {
        self.seq += 1;
        let entry = Entry {
            key: (u128::from(time) << 64) | u128::from(self.seq),
            event,
        };
        match event {
            Event::IdleExpired { .. } | Event::PolicyTimer { .. } | Event::Sample | Event::WarmupEnd => {
                self.timers.push(entry)
            }
            _ => self.heap.push(entry),
        }
    }

    /// The heap holding the earliest pending event.
    #[inline]
    fn earliest(&mut self) -> Option<&mut BinaryHeap<Entry>> {
        match (self.heap.peek(), self.timers.peek()) {
            (Some(a), Some(b)) => Some(if a >= b { &mut self.heap } else { &mut self.timers }),
            (Some(_), None) => Some(&mut self.heap),
            (None, Some(_)) => Some(&mut self.timers),
            (None, None) => None,
        }
    }

    /// Time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<Nanos> {
        match (self.heap.peek(), self.timers.peek()) {
            (Some(a), Some(b)) => Some(a.time().min(b.time())),
            (a, b) => a.or(b).map(Entry::time),
        }
    }

    /// Removes and returns the earliest pending event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, Event)> {
        self.earliest()?.pop().map(|e| (e.time(), e.event))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len() + self.timers.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.timers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        // Timers and other events interleave exactly as in one heap.
        let t = |token| Event::PolicyTimer { token };
        let h = |n| Event::HostStepDone {
            inst: InstId(n),
            state_version: 0,
        };
        q.push(5, t(1));
        q.push(3, h(2));
        q.push(5, h(3));
        q.push(3, t(4));
        q.push(0, h(5));
        q.push(5, t(6));
        assert_eq!(q.len(), 6);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![(0, h(5)), (3, h(2)), (3, t(4)), (5, t(1)), (5, h(3)), (5, t(6))]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn pops_what_a_sorted_reference_pops_under_random_scheduling() {
        use std::collections::BTreeSet;
        let mut q = EventQueue::default();
        let mut reference: BTreeSet<(Nanos, u64)> = BTreeSet::new();
        let (mut now, mut seq, mut x) = (0u64, 0u64, 0x2545_f491_4f6c_dd1du64);
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 < 3 || reference.is_empty() {
                // Ahead by 0 to ~2^(x mod 40) ns: same-instant ties, near and far events.
                let ahead = (x >> 8) & ((1u64 << (x % 40)) - 1);
                seq += 1;
                q.push(now + ahead, Event::PolicyTimer { token: seq });
                reference.insert((now + ahead, seq));
            } else {
                let (t, token) = reference.pop_first().expect("not empty");
                assert_eq!(q.peek_time(), Some(t), "step {step}");
                assert_eq!(q.pop(), Some((t, Event::PolicyTimer { token })), "step {step}");
                now = t;
            }
            assert_eq!(q.len(), reference.len());
        }
        while let Some((t, token)) = reference.pop_first() {
            assert_eq!(q.pop(), Some((t, Event::PolicyTimer { token })));
        }
        assert!(q.is_empty() && q.pop().is_none() && q.peek_time().is_none());
    }
}
