//! One serving engine's scheduler: iteration-level scheduling (continuous batching, Orca's
//! OSDI '22 idea as vLLM implements it) over a paged KV cache (vLLM's PagedAttention, SOSP '23),
//! with chunked prefill (Sarathi-Serve, OSDI '24) as an option.
//!
//! Before every iteration the scheduler picks its batch:
//! - **Without chunked prefill** (vLLM v0's default): if requests wait and the first of them fit
//!   — a free sequence slot (`max_batch`), their whole context within the iteration's token
//!   budget (`max_batched_tokens`) and KV blocks for it above the watermark — the iteration
//!   prefills those requests alone; otherwise every running request decodes one token.
//! - **With chunked prefill**: every running request that has finished its prefill decodes one
//!   token, and what is left of the budget goes to prefill chunks: first of running requests
//!   part-way through their prefill, then of waiting ones admitted in order.
//!
//! A decode that needs a new KV block when none is free preempts the latest-admitted running
//! request (vLLM's recompute preemption): its blocks are freed and it goes back to the head of
//! the queue, to prefill its prompt and the tokens it had generated again. A request whose
//! context can never fit (more blocks than the cache has, or without chunking more tokens than
//! the budget) is refused, as vLLM refuses it.
//!
//! Token accounting: a prefill computes the KV of the request's context and samples its first
//! output token; a decode computes the KV of the last sampled token and samples the next. So
//! after every iteration a request holds `prompt + generated − 1` cached tokens (a recompute
//! treats the tokens generated so far as prompt). A trace row asking for 0 output tokens is
//! served as 1 (the prefill always samples one).

use super::cost::IterationWork;
use crate::time::Nanos;
use std::collections::VecDeque;

/// The scheduler's limits (vLLM's names in brackets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchLimits {
    /// Requests in a batch at most (`max_num_seqs`).
    pub max_batch: usize,
    /// Tokens computed in one iteration at most (`max_num_batched_tokens`).
    pub max_batched_tokens: u64,
    /// Split prefills into chunks that share iterations with decodes.
    pub chunked_prefill: bool,
    /// Tokens per KV block (`block_size`).
    pub block_tokens: u64,
    /// Blocks of the KV cache.
    pub blocks: u64,
    /// Blocks kept free when admitting (vLLM: 1 % of the cache).
    pub watermark: u64,
}

/// A request inside an engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Seq {
    /// Its index in the run (arrival order).
    pub id: u64,
    pub arrival: Nanos,
    pub prompt: u64,
    /// Output tokens wanted (at least 1).
    pub output: u64,
    pub generated: u64,
    /// Tokens whose K and V are in the cache.
    pub cached: u64,
    /// Tokens to prefill before decoding: the prompt, plus what was generated before a
    /// preemption.
    pub target: u64,
    pub blocks: u64,
    pub first_token: Option<Nanos>,
    pub preemptions: u32,
    /// It waited for its instance to start.
    pub cold: bool,
}

impl Seq {
    pub fn new(id: u64, arrival: Nanos, prompt: u64, output: u64, cold: bool) -> Seq {
        Seq {
            id,
            arrival,
            prompt,
            output: output.max(1),
            generated: 0,
            cached: 0,
            target: prompt,
            blocks: 0,
            first_token: None,
            preemptions: 0,
            cold,
        }
    }

    fn prefilled(&self) -> bool {
        self.cached >= self.target
    }
}

/// What an iteration does to one running request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Prefill(u64),
    Decode,
}

/// What finishing an iteration produced.
#[derive(Debug, Default)]
pub struct Finished {
    /// Requests that completed, in batch order.
    pub done: Vec<Seq>,
    /// Requests that got their first token.
    pub first_tokens: u64,
}

/// One engine's queue, batch and KV cache.
#[derive(Debug)]
pub struct Batcher {
    pub limits: BatchLimits,
    pub waiting: VecDeque<Seq>,
    pub running: Vec<Seq>,
    free_blocks: u64,
    /// The iteration under way: a step per running request (None: not in this batch).
    plan: Vec<Option<Step>>,
    pub preemptions: u64,
    /// Requests refused because they can never fit.
    pub refused: Vec<Seq>,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Batcher {
        Batcher {
            limits,
            waiting: VecDeque::new(),
            running: Vec::new(),
            free_blocks: limits.blocks,
            plan: Vec::new(),
            preemptions: 0,
            refused: Vec::new(),
        }
    }

    /// KV blocks free now.
    pub fn free_blocks(&self) -> u64 {
        self.free_blocks
    }

    /// Requests queued or in the batch.
    pub fn load(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.limits.block_tokens)
    }

    /// Queues `seq`, or refuses it if it can never be served.
    pub fn enqueue(&mut self, seq: Seq) {
        let l = self.limits;
        // At most prompt + output − 1 tokens are ever cached (the last one sampled is not).
        let whole = seq.prompt + seq.output - 1;
        let too_long = !l.chunked_prefill && seq.target > l.max_batched_tokens;
        if too_long || self.blocks_for(whole) + l.watermark > l.blocks {
            self.refused.push(seq);
        } else {
            self.waiting.push_back(seq);
        }
    }

    /// Makes room for `tokens` more cached tokens of running request `i`, preempting the
    /// latest-admitted requests as needed; false if `i` itself had to go.
    fn grow(&mut self, i: usize, tokens: u64) -> bool {
        let s = &self.running[i];
        let need = self.blocks_for(s.cached + tokens).saturating_sub(s.blocks);
        while self.free_blocks < need {
            let last = self.running.len() - 1;
            self.preempt(last);
            if last == i {
                return false;
            }
        }
        self.free_blocks -= need;
        self.running[i].blocks += need;
        true
    }

    /// Requests in the iteration planned last.
    pub fn planned(&self) -> usize {
        self.plan.iter().filter(|s| s.is_some()).count()
    }

    /// Sends running request `i` back to the head of the queue, freeing its blocks.
    fn preempt(&mut self, i: usize) {
        let mut s = self.running.remove(i);
        self.plan.truncate(self.running.len());
        self.free_blocks += s.blocks;
        s.blocks = 0;
        s.cached = 0;
        s.target = s.prompt + s.generated;
        s.preemptions += 1;
        self.preemptions += 1;
        self.waiting.push_front(s);
    }

    /// Admits the head of the queue with `tokens` of its prefill if a slot and blocks allow.
    fn admit(&mut self, tokens: u64) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        let need = self.blocks_for(tokens);
        if self.running.len() >= self.limits.max_batch || self.free_blocks < need + self.limits.watermark {
            return false;
        }
        let mut s = self.waiting.pop_front().expect("a head");
        debug_assert_eq!(s.cached, 0, "a queued request holds no cache");
        s.blocks = need;
        self.free_blocks -= need;
        self.running.push(s);
        self.plan.push(Some(Step::Prefill(tokens)));
        true
    }

    /// Picks the next iteration's batch and returns its work (empty when there is nothing to
    /// do).
    pub fn plan(&mut self) -> IterationWork {
        loop {
            let preempted = self.preemptions;
            self.plan.clear();
            self.plan.resize(self.running.len(), None);
            if self.limits.chunked_prefill {
                self.plan_chunked();
            } else if !self.plan_prefills() {
                self.plan_decodes();
            }
            // Nothing running and the head cannot be admitted: nothing will ever free room for
            // it (a recompute longer than the budget, as vLLM ignores a prompt over its limit).
            if !self.running.is_empty() || self.waiting.is_empty() {
                break;
            }
            if self.preemptions == preempted {
                let head = self.waiting.pop_front().expect("not empty");
                self.refused.push(head);
            }
        }
        let mut work = IterationWork::default();
        for (s, step) in self.running.iter().zip(&self.plan) {
            match step {
                Some(Step::Prefill(p)) => work.prefill(*p, s.cached),
                Some(Step::Decode) => work.decode(s.cached),
                None => {}
            }
        }
        work
    }

    /// Without chunking: admits whole prefills while they fit; true if any was admitted.
    fn plan_prefills(&mut self) -> bool {
        let mut tokens = 0;
        while let Some(head) = self.waiting.front() {
            let t = head.target;
            if tokens + t > self.limits.max_batched_tokens || !self.admit(t) {
                break;
            }
            tokens += t;
        }
        tokens > 0
    }

    /// Every running request decodes one token, preempting for blocks as needed.
    fn plan_decodes(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.grow(i, 1) {
                self.plan[i] = Some(Step::Decode);
                i += 1;
            }
        }
    }

    /// Decodes first, then prefill chunks within the budget.
    fn plan_chunked(&mut self) {
        let preempted_before = self.preemptions;
        let mut budget = self.limits.max_batched_tokens;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let s = &self.running[i];
            let (step, tokens) = if s.prefilled() {
                (Step::Decode, 1)
            } else {
                let t = (s.target - s.cached).min(budget);
                (Step::Prefill(t), t)
            };
            if self.grow(i, tokens) {
                self.plan[i] = Some(step);
                budget -= tokens;
                i += 1;
            }
        }
        // A step that preempted admits nothing new (vLLM's schedulers): the preempted request
        // would be taken straight back only to be preempted again.
        while budget > 0 && self.preemptions == preempted_before {
            let Some(head) = self.waiting.front() else { break };
            let t = head.target.min(budget);
            if !self.admit(t) {
                break;
            }
            budget -= t;
        }
    }

    /// Ends the iteration at `now`: advances the batch's requests and takes out the finished.
    pub fn finish(&mut self, now: Nanos, out: &mut Finished) {
        let mut kept = 0;
        for i in 0..self.running.len() {
            let step = self.plan.get(i).copied().flatten();
            let s = &mut self.running[i];
            match step {
                Some(Step::Prefill(p)) => {
                    s.cached += p;
                    if s.prefilled() {
                        s.generated += 1;
                    }
                }
                Some(Step::Decode) => {
                    s.cached += 1;
                    s.generated += 1;
                }
                None => {}
            }
            if step.is_some() && s.generated > 0 && s.first_token.is_none() {
                s.first_token = Some(now);
                out.first_tokens += 1;
            }
            if s.generated >= s.output {
                let done = self.running[i].clone();
                self.free_blocks += done.blocks;
                out.done.push(done);
            } else {
                self.running.swap(kept, i);
                kept += 1;
            }
        }
        self.running.truncate(kept);
        self.plan.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(blocks: u64, chunked: bool) -> BatchLimits {
        BatchLimits {
            max_batch: 8,
            max_batched_tokens: 64,
            chunked_prefill: chunked,
            block_tokens: 4,
            blocks,
            watermark: 0,
        }
    }

    #[test]
    fn prefill_then_decodes_with_exact_tokens_and_blocks() {
        let mut b = Batcher::new(limits(100, false));
        b.enqueue(Seq::new(0, 0, 10, 3, false));
        b.enqueue(Seq::new(1, 0, 6, 1, false));
        let w = b.plan();
        // Both prompts in one prefill iteration: 16 tokens; blocks ⌈10/4⌉ + ⌈6/4⌉ = 5.
        assert_eq!(w.new_tokens, 16);
        assert_eq!(w.prefill_attention_x2, 10 * 11 + 6 * 7);
        assert_eq!(b.free_blocks(), 95);
        let mut out = Finished::default();
        b.finish(10, &mut out);
        // Request 1 wanted one token: done at its prefill; request 0 has 1 of 3.
        assert_eq!(out.done.len(), 1);
        assert_eq!((out.done[0].id, out.done[0].first_token), (1, Some(10)));
        assert_eq!(out.first_tokens, 2);
        assert_eq!(b.free_blocks(), 97);
        let w = b.plan();
        assert_eq!(
            (w.new_tokens, w.decodes, w.cached_read, w.decode_attention),
            (1, 1, 10, 11)
        );
        b.finish(20, &mut Finished::default());
        let mut out = Finished::default();
        b.plan();
        b.finish(30, &mut out);
        let s = &out.done[0];
        assert_eq!((s.id, s.generated, s.cached, s.first_token), (0, 3, 12, Some(10)));
        assert_eq!(b.free_blocks(), 100);
        assert!(b.is_idle());
    }

    #[test]
    fn running_out_of_blocks_preempts_the_latest_admitted_and_recomputes_it() {
        // 6 blocks of 4 tokens: two 8-token prompts take 4; decoding past 12 tokens each needs
        // more than the cache has.
        let mut b = Batcher::new(limits(6, false));
        b.enqueue(Seq::new(0, 0, 8, 10, false));
        b.enqueue(Seq::new(1, 0, 8, 10, false));
        b.plan();
        b.finish(1, &mut Finished::default());
        // Decodes: each request needs a 3rd block at its 9th cached token (the first decode).
        b.plan();
        b.finish(2, &mut Finished::default());
        assert_eq!(b.free_blocks(), 0);
        assert_eq!(b.running.iter().map(|s| s.cached).collect::<Vec<_>>(), vec![9, 9]);
        // Cached 9..12 fit in 3 blocks; the decode to 13 needs a 4th: request 1 goes.
        for t in 3..6 {
            b.plan();
            b.finish(t, &mut Finished::default());
        }
        assert_eq!(b.running.len(), 2);
        let w = b.plan();
        assert_eq!(b.preemptions, 1);
        assert_eq!(w.decodes, 1);
        assert_eq!(b.running.len(), 1);
        let back = b.waiting.front().expect("requeued");
        // It had generated 5 tokens (1 at prefill, 4 decodes): it will prefill 8 + 5.
        assert_eq!((back.id, back.cached, back.blocks, back.target), (1, 0, 0, 13));
        assert_eq!(b.free_blocks(), 3 - 1);
    }

    #[test]
    fn chunked_prefill_shares_iterations_with_decodes_within_the_budget() {
        let mut l = limits(100, true);
        l.max_batched_tokens = 8;
        let mut b = Batcher::new(l);
        b.enqueue(Seq::new(0, 0, 4, 5, false));
        b.plan();
        b.finish(1, &mut Finished::default());
        b.enqueue(Seq::new(1, 0, 20, 2, false));
        // Request 0 decodes (1 token), request 1 prefills 7 of its 20.
        let w = b.plan();
        assert_eq!((w.decodes, w.new_tokens), (1, 8));
        let mut out = Finished::default();
        b.finish(2, &mut out);
        assert_eq!(out.first_tokens, 0);
        assert_eq!(b.running[1].cached, 7);
        b.plan();
        b.finish(3, &mut Finished::default());
        let w = b.plan();
        // 20 − 14 = 6 left: the chunk is 6 and one decode, 7 tokens.
        assert_eq!(w.new_tokens, 7);
        let mut out = Finished::default();
        b.finish(4, &mut out);
        assert_eq!(out.first_tokens, 1);
    }

    #[test]
    fn a_recompute_longer_than_the_budget_is_refused_not_lost() {
        // 6 blocks of 4 tokens, a 10-token budget: prompts of 6 and 4 tokens prefill together;
        // at 13 and 11 cached tokens they need 7 blocks, so request 1 is preempted with
        // 4 + 7 = 11 > 10 tokens to recompute.
        let mut l = limits(6, false);
        l.max_batched_tokens = 10;
        let mut b = Batcher::new(l);
        b.enqueue(Seq::new(0, 0, 6, 14, false));
        b.enqueue(Seq::new(1, 0, 4, 16, false));
        let mut done = Vec::new();
        for t in 0..100 {
            if b.plan().is_empty() {
                break;
            }
            let mut out = Finished::default();
            b.finish(t, &mut out);
            done.extend(out.done.into_iter().map(|s| s.id));
        }
        assert!(b.is_idle(), "{b:?}");
        let refused: Vec<u64> = b.refused.iter().map(|s| s.id).collect();
        assert_eq!((done.as_slice(), refused.as_slice()), (&[0][..], &[1][..]));
        assert_eq!(b.preemptions, 1);
        assert!(b.refused[0].target > 10);
    }

    #[test]
    fn chunked_prefill_admits_nothing_in_a_step_that_preempted() {
        let mut l = limits(5, true);
        l.max_batched_tokens = 16;
        let mut b = Batcher::new(l);
        b.enqueue(Seq::new(0, 0, 8, 8, false));
        b.enqueue(Seq::new(1, 0, 8, 8, false));
        let mut preempting_steps = 0;
        for t in 0..200 {
            let before = b.preemptions;
            let w = b.plan();
            if w.is_empty() {
                break;
            }
            if b.preemptions > before {
                preempting_steps += 1;
                // The preempted request waits for the next step.
                assert!(b.waiting.len() == 1 && b.planned() == b.running.len(), "{b:?}");
            }
            b.finish(t, &mut Finished::default());
        }
        assert!(preempting_steps > 0 && preempting_steps < 4, "{preempting_steps}");
        assert!(b.is_idle());
    }

    #[test]
    fn requests_that_can_never_fit_are_refused() {
        let mut b = Batcher::new(limits(4, false));
        b.enqueue(Seq::new(0, 0, 100, 1, false));
        b.enqueue(Seq::new(1, 0, 14, 4, false));
        b.enqueue(Seq::new(2, 0, 12, 4, false));
        assert_eq!(b.refused.iter().map(|s| s.id).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(b.waiting.len(), 1);
    }
}
