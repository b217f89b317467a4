//! KaaS's scheduler: Completely Fair Scheduling over client groups, shared by every worker of
//! the pool (the artifact's `CfsQueue`).
//!
//! Each group (a client: here, a function) has a FIFO queue of requests and a virtual time.
//! When a worker is free it takes the first request of the group with the lowest *standing* on
//! its GPU: the group's virtual time, plus `penalty × weight` on a GPU outside the group's
//! affinity. Running a request adds its weight — the request's expected GPU time on that
//! worker's device — to the group's virtual time. A group that was idle gets the *base*
//! virtual time when a request arrives (the lowest virtual time among groups with queued
//! requests at the last pick), so idling never banks priority. Ties go to the group served
//! least recently, then to the lower index. Virtual times are integer nanoseconds: exact.

use gpushare_sim::InvId;
use std::collections::VecDeque;

#[derive(Default)]
struct Group {
    vtime: u64,
    queue: VecDeque<InvId>,
    /// Serial number of its last pick (0: never).
    last_served: u64,
    /// Position in `Cfs::active` while it has queued requests.
    active_at: Option<usize>,
}

/// The shared queue.
pub struct Cfs {
    groups: Vec<Group>,
    /// Groups with queued requests (any order: ties are broken explicitly).
    active: Vec<u32>,
    base: u64,
    serial: u64,
}

/// A candidate pick: lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Standing {
    pub standing: u64,
    pub last_served: u64,
    pub group: u32,
}

impl Cfs {
    pub fn new(groups: usize) -> Self {
        Cfs {
            groups: (0..groups).map(|_| Group::default()).collect(),
            active: Vec::new(),
            base: 0,
            serial: 0,
        }
    }

    /// Queues a request of `group`.
    pub fn push(&mut self, group: u32, inv: InvId) {
        let g = &mut self.groups[group as usize];
        if g.queue.is_empty() {
            g.vtime = self.base;
            g.active_at = Some(self.active.len());
            self.active.push(group);
        }
        g.queue.push_back(inv);
    }

    /// True when no request is queued.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Requests queued for `group`.
    pub fn queued(&self, group: u32) -> usize {
        self.groups[group as usize].queue.len()
    }

    /// The best group for a worker: among groups with queued requests that `eligible` accepts,
    /// the lowest standing, where `penalty(group)` is what running off its affinity adds
    /// (0 on an affine GPU).
    pub fn best(&self, eligible: impl Fn(u32) -> bool, penalty: impl Fn(u32) -> u64) -> Option<Standing> {
        self.active
            .iter()
            .filter(|&&g| eligible(g))
            .map(|&g| {
                let grp = &self.groups[g as usize];
                Standing {
                    standing: grp.vtime.saturating_add(penalty(g)),
                    last_served: grp.last_served,
                    group: g,
                }
            })
            .min()
    }

    /// Takes `group`'s first request, charging it `weight`.
    pub fn pop(&mut self, group: u32, weight: u64) -> InvId {
        // The base is the lowest virtual time among waiting groups before this charge.
        self.base = self
            .active
            .iter()
            .map(|&g| self.groups[g as usize].vtime)
            .min()
            .unwrap_or(self.base);
        self.serial += 1;
        let g = &mut self.groups[group as usize];
        g.vtime = g.vtime.saturating_add(weight);
        g.last_served = self.serial;
        let inv = g.queue.pop_front().expect("pop from a group with queued requests");
        if g.queue.is_empty() {
            let at = g.active_at.take().expect("active");
            self.active.swap_remove(at);
            if let Some(&moved) = self.active.get(at) {
                self.groups[moved as usize].active_at = Some(at);
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(cfs: &Cfs, affine: u32) -> u32 {
        cfs.best(|_| true, |g| if g == affine { 0 } else { 100 }).unwrap().group
    }

    #[test]
    fn the_group_behind_goes_first_and_pays_its_weight() {
        let mut cfs = Cfs::new(2);
        for k in 0..4 {
            cfs.push(0, InvId(k));
            cfs.push(1, InvId(10 + k));
        }
        // Both at the base: a tie goes to the group never served, then the lower index.
        let order: Vec<u32> = (0..6)
            .map(|_| {
                let g = cfs.best(|_| true, |_| 0).unwrap().group;
                // Group 0's requests cost 10, group 1's 30: group 0 runs three times as often.
                cfs.pop(g, if g == 0 { 10 } else { 30 });
                g
            })
            .collect();
        assert_eq!(order, [0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn off_affinity_costs_standing_and_idle_groups_restart_at_the_base() {
        let mut cfs = Cfs::new(2);
        cfs.push(0, InvId(0));
        cfs.push(1, InvId(1));
        // On GPU "1" group 1 is affine; group 0 would stand 100 higher.
        assert_eq!(pick(&cfs, 1), 1);
        cfs.pop(1, 500);
        // Group 1 is idle now; group 0 still waits at 0 and is the base at the next pick.
        assert_eq!(pick(&cfs, 1), 0);
        cfs.pop(0, 10);
        cfs.push(1, InvId(2));
        // Group 1 returns at the base (0), not at its old 500.
        assert_eq!(cfs.best(|_| true, |_| 0).unwrap().standing, 0);
        assert!(cfs.best(|g| g == 0, |_| 0).is_none());
    }
}
