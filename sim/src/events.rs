//! The event queue: a binary heap ordered by (time, sequence number).
//!
//! Events are small `Copy` values, never boxed. The sequence number makes the order of events at
//! the same instant the order in which they were scheduled, so runs are deterministic. Events
//! that may be superseded carry a generation (`epoch` or `generation`) checked when they fire; stale ones
//! are dropped instead of being searched for and removed.

use crate::ids::{GpuId, InstId};
use crate::time::Nanos;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Something that happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An instance finished its setup (cold start).
    SetupDone { inst: InstId, epoch: u32 },
    /// An instance finished a host (CPU) step of its current invocation.
    HostStepDone { inst: InstId, epoch: u32 },
    /// The earliest phase completion on a GPU, valid while the GPU's generation is `generation`.
    GpuPhaseDone { gpu: GpuId, generation: u32 },
    /// An instance's keep-alive deadline may have passed (checked when it fires).
    IdleExpired { inst: InstId, incarnation: u32 },
    /// A timer a policy set for itself.
    PolicyTimer { token: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    time: Nanos,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (time, seq) on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// Pending events.
#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    /// Schedules `event` at `time`.
    #[inline]
    pub fn push(&mut self, time: Nanos, event: Event) {
        self.seq += 1;
        self.heap.push(Entry {
            time,
            seq: self.seq,
            event,
        });
    }

    /// Time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<Nanos> {
        self.heap.peek().map(|e| e.time)
    }

    /// Removes and returns the earliest pending event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, Event)> {
        self.heap.pop().map(|e| (e.time, e.event))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        let t = |token| Event::PolicyTimer { token };
        q.push(5, t(1));
        q.push(3, t(2));
        q.push(5, t(3));
        q.push(3, t(4));
        q.push(0, t(5));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(0, t(5)), (3, t(2)), (3, t(4)), (5, t(1)), (5, t(3))]);
    }
}
