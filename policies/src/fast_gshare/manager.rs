//! The FaST-Manager: time tokens per GPU (Gu et al., ICPP '23; PAPERS.md §4).
//!
//! A client (a function instance with an SM partition and a time quota) may run kernels only
//! while it holds a token. Over a sliding window of W = 10 s, a client's `usage` is the token time
//! it held; `limit = quota_limit · W`, `require = quota_request · W`, `missing = require − usage`;
//! it is eligible while `limit − usage > 0`. Eligible clients are ordered: those with
//! `missing > 0` first, by `missing / (missing + usage)` descending, then the rest by lowest
//! usage; they are admitted in that order while the SM partitions of the token holders sum to
//! at most 100 %, so several tokens are live at once. A token lasts
//! `q = 0.5 · burst + 0.5 · q_prev`, clamped to [100 ms, quota_request · W] (250 ms at first),
//! where `burst` is how long the client's last token was used before it ran out of kernels; each
//! grant costs 2 ms of scheduling before the client's kernels may start. A holder with no kernel
//! left gives its token back at once.
//!
//! **Simplifications.** Kernels stop exactly at a token's end (FaST cannot preempt a running
//! kernel and charges the overrun to the client's history; here there is no overrun to charge).

use gpushare_sim::policy::{ActivePhase, Sharing};
use gpushare_sim::time::{NS_PER_S, Nanos};
use gpushare_sim::{GpuId, InstId};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// The sliding window.
pub const WINDOW: Nanos = 10 * NS_PER_S;
/// Scheduling overhead per token grant.
pub const OVERHEAD: Nanos = 2_000_000;
/// First token length, and its bounds.
pub const TOKEN_DEFAULT: Nanos = 250_000_000;
pub const TOKEN_MIN: Nanos = 100_000_000;

#[derive(Debug, Default)]
struct Client {
    /// Token intervals held, oldest first (only those overlapping the window are kept).
    held: VecDeque<(Nanos, Nanos)>,
    q_prev: Nanos,
}

impl Client {
    fn usage(&mut self, now: Nanos) -> Nanos {
        let from = now.saturating_sub(WINDOW);
        while self.held.front().is_some_and(|&(_, end)| end <= from) {
            self.held.pop_front();
        }
        self.held.iter().map(|&(s, e)| e.min(now) - s.max(from)).sum()
    }
}

#[derive(Clone, Copy, Debug)]
struct Token {
    inst: InstId,
    /// Kernels may run from here (grant time + overhead) …
    from: Nanos,
    /// … to here.
    until: Nanos,
    granted: Nanos,
}

/// Per-GPU token scheduling.
#[derive(Default)]
pub struct FastManager {
    clients: BTreeMap<InstId, Client>,
    holders: Vec<Vec<Token>>,
    /// Quota limits by instance (default: the quota request), set by the placement.
    limits: Rc<RefCell<BTreeMap<InstId, f64>>>,
}

impl FastManager {
    /// A manager reading quota limits from `limits`.
    pub fn with_limits(limits: Rc<RefCell<BTreeMap<InstId, f64>>>) -> Self {
        FastManager {
            limits,
            ..Default::default()
        }
    }

    fn end_token(&mut self, t: Token, at: Nanos) {
        let c = self.clients.entry(t.inst).or_default();
        let start = t.from.min(at);
        c.held.push_back((t.granted, at.max(start)));
        let burst = at.saturating_sub(t.from);
        let q = if c.q_prev == 0 { TOKEN_DEFAULT } else { c.q_prev };
        c.q_prev = (burst / 2 + q / 2).max(TOKEN_MIN);
    }
}

impl Sharing for FastManager {
    fn assign_shares(&mut self, gpu: GpuId, now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        if self.holders.len() <= gpu.ix() {
            self.holders.resize_with(gpu.ix() + 1, Vec::new);
        }
        // Clients with kernels to run, with their partition and quota.
        let mut active: BTreeMap<InstId, (f64, f64)> = BTreeMap::new();
        for p in phases.iter().filter(|p| p.is_kernel()) {
            active.insert(p.inst, (p.sm_cap, p.time_quota));
        }
        // Tokens that ended, or whose holder has nothing left to run, go back.
        let holders = std::mem::take(&mut self.holders[gpu.ix()]);
        let mut kept = Vec::new();
        for t in holders {
            if now >= t.until || !active.contains_key(&t.inst) {
                self.end_token(t, now.min(t.until));
            } else {
                kept.push(t);
            }
        }
        // Grant tokens in priority order while the partitions fit.
        let mut sm_sum: f64 = kept.iter().map(|t| active[&t.inst].0).sum();
        let mut candidates: Vec<(InstId, f64, f64, f64)> = Vec::new();
        for (&inst, &(sm, quota)) in &active {
            if kept.iter().any(|t| t.inst == inst) {
                continue;
            }
            let usage = self.clients.entry(inst).or_default().usage(now) as f64;
            let w = WINDOW as f64;
            let limit_q = self.limits.borrow().get(&inst).copied().unwrap_or(quota).max(quota);
            let (limit, require) = (limit_q * w, quota * w);
            if limit - usage <= 0.0 {
                continue;
            }
            let missing = require - usage;
            let key = if missing > 0.0 {
                2.0 + missing / (missing + usage)
            } else {
                1.0 - usage / w
            };
            candidates.push((inst, key, sm, quota));
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (inst, _, sm, quota) in candidates {
            if sm_sum + sm > 1.0 + 1e-9 {
                continue;
            }
            sm_sum += sm;
            let c = self.clients.entry(inst).or_default();
            let q = if c.q_prev == 0 { TOKEN_DEFAULT } else { c.q_prev };
            let cap = ((quota * WINDOW as f64) as Nanos).max(TOKEN_MIN);
            let q = q.clamp(TOKEN_MIN, cap);
            kept.push(Token {
                inst,
                from: now + OVERHEAD,
                until: now + OVERHEAD + q,
                granted: now,
            });
        }
        for p in phases.iter_mut().filter(|p| p.is_kernel()) {
            let running = kept.iter().any(|t| t.inst == p.inst && now >= t.from);
            p.share = p.sm_cap;
            p.time_share = if running { 1.0 } else { 0.0 };
        }
        // Ask again when a token starts or ends, or, if clients wait on their window, soon.
        let mut next = kept.iter().map(|t| if t.from > now { t.from } else { t.until }).min();
        if kept.len() < active.len() {
            let poll = now + TOKEN_MIN / 10;
            next = Some(next.map_or(poll, |n| n.min(poll)));
        }
        self.holders[gpu.ix()] = kept;
        next
    }
}
