//! `sage`: setup-aware GPU function execution with shared memory (Zhao et al., "SAGE", arXiv
//! 2404.14691, 2024; PAPERS.md §3).
//!
//! **Mechanisms**, each with its own switch so an experiment can show what each contributes:
//! - `parallel_setup`: a GPU function's data is known before it runs, so data preparation (the
//!   model load) runs in parallel with CUDA context creation and runtime start-up: setup =
//!   container start + max(context + framework, model load) instead of their sum;
//! - `share_weights`: read-only memory (weights) is shared by the invocations of a function on a
//!   GPU and stays resident after its instances are gone: later instances there skip the model
//!   load and take no weight memory;
//! - `share_context`: the function's CUDA context (and its runtime) is shared the same way: later
//!   instances skip context creation and framework start-up and take no context memory.
//!
//! Resident shared state is evicted least recently used, only when no instance uses it, when
//! memory is needed; reclaiming a function's last idle instance on a GPU to make room counts its
//! shared state as freed (else, at a long keep-alive, other functions would starve behind idle
//! instances). Queueing, scaling and keep-alive are the shared [`crate::pool`] core;
//! instances go first to a GPU where their function is resident, else best fit by memory. The
//! policy reports function density: the most instances any GPU held at once.
//!
//! **Simplifications.** Instances on a GPU run concurrently with equal SM shares (functions'
//! separate contexts would time-slice in reality); the container start is always paid; SAGE's own
//! numbers (11.3× shorter durations, 1.22× density) come with setup breakdowns that were not
//! available, so `scenarios/sage_setup.toml` states the breakdown it assumes.

use crate::placement::{Fit, Placement};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled};
use gpushare_sim::policy::{Ctx, InstanceSpec, Policy};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::Nanos;
use gpushare_sim::{FuncId, GpuId, InstId, Scenario};
use std::collections::BTreeMap;

crate::params! {
    /// `sage`'s own parameters: its three mechanisms, each of which can be turned off.
    pub(crate) struct SageParams {
        /// Load the model while the context and runtime start (setup = container + max(context, load)).
        parallel_setup: bool = true,
        /// A function's weights are shared by its instances on a GPU and kept resident.
        share_weights: bool = true,
        /// A function's context is shared by its instances on a GPU and kept resident.
        share_context: bool = true,
    }
}

#[derive(Clone, Copy, Debug)]
struct Resident {
    bytes: u64,
    live: u32,
    last_used: Nanos,
}

/// Where the last [`Placement::take`] put which function, for [`Placement::placed`].
struct Plan {
    gpu: usize,
    func: FuncId,
}

/// Placement with resident shared state per (GPU, function).
pub struct SagePlacement {
    parallel: bool,
    share_weights: bool,
    share_context: bool,
    residents: Vec<BTreeMap<FuncId, Resident>>,
    live: Vec<u32>,
    pending: Option<Plan>,
    pub peak_per_gpu: u32,
}

impl SagePlacement {
    /// (instance spec, new resident bytes) for `func` on `gpu`.
    fn spec(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> (InstanceSpec, u64) {
        let c = ctx.profile(func, gpu);
        let resident = self.residents[gpu.ix()].contains_key(&func);
        let shared =
            if self.share_weights { c.weights_bytes } else { 0 } + if self.share_context { c.context_bytes } else { 0 };
        let p = c.setup;
        let (mut context, mut load) = (p.context + p.framework, p.model_load);
        if resident && self.share_context {
            context = 0;
        }
        if resident && self.share_weights {
            load = 0;
        }
        let setup = if self.parallel {
            p.container + context.max(load)
        } else {
            p.container + context + load
        };
        let base = ctx.default_instance(func, gpu);
        (
            InstanceSpec {
                memory: c.footprint() - shared,
                setup,
                ..base
            },
            if resident { 0 } else { shared },
        )
    }

    /// Memory that evicting unused residents (other than `func`'s) on `gpu` would free.
    fn evictable(&self, gpu: usize, func: FuncId) -> u64 {
        self.residents[gpu]
            .iter()
            .filter(|(f, r)| **f != func && r.live == 0)
            .map(|(_, r)| r.bytes)
            .sum()
    }

    fn fits(&self, ctx: &Ctx<'_>, func: FuncId, gpu: usize, freed: u64) -> Option<(InstanceSpec, u64)> {
        let (spec, new_resident) = self.spec(ctx, func, GpuId(gpu as u32));
        let free = ctx.gpus()[gpu].mem_free() + freed + self.evictable(gpu, func);
        (spec.memory + new_resident <= free).then_some((spec, new_resident))
    }
}

impl Placement for SagePlacement {
    /// Resident GPUs first (the cheapest setup); the ranking orders the rest.
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        let (spec, _) = self.fits(ctx, func, gpu.ix(), 0)?;
        let resident = self.residents[gpu.ix()].contains_key(&func);
        Some(Fit {
            spec,
            preference: (u64::from(!resident), 0),
        })
    }

    fn take(&mut self, ctx: &mut Ctx<'_>, func: FuncId, gpu: GpuId, fit: Fit) -> InstanceSpec {
        let g = gpu.ix();
        let (_, new_resident) = self.spec(ctx, func, gpu);
        let room = fit.spec.memory + new_resident;
        // Evict unused residents, least recently used first, until the room is there.
        while ctx.gpus()[g].mem_free() < room {
            let victim = self.residents[g]
                .iter()
                .filter(|(f, r)| **f != func && r.live == 0)
                .min_by_key(|(f, r)| (r.last_used, **f))
                .map(|(f, r)| (*f, r.bytes));
            let Some((f, bytes)) = victim else { break };
            self.residents[g].remove(&f);
            ctx.release(gpu, bytes);
        }
        if new_resident > 0 && ctx.reserve(gpu, new_resident).is_ok() {
            self.residents[g].insert(
                func,
                Resident {
                    bytes: new_resident,
                    live: 0,
                    last_used: ctx.now(),
                },
            );
        }
        self.pending = Some(Plan { gpu: g, func });
        fit.spec
    }

    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let v = ctx.instance(victim);
        // The victim's shared state becomes evictable with it when it is its function's last
        // instance on that GPU: reclaiming an idle instance must be able to free its weights and
        // context too, or other functions wait for its keep-alive to run out.
        let resident = self.residents[v.gpu.ix()]
            .get(&v.func)
            .filter(|r| r.live == 1 && v.func != func)
            .map_or(0, |r| r.bytes);
        self.fits(ctx, func, v.gpu.ix(), v.memory + resident).is_some()
    }

    fn placed(&mut self, _inst: InstId) {
        if let Some(plan) = self.pending.take() {
            if let Some(r) = self.residents[plan.gpu].get_mut(&plan.func) {
                r.live += 1;
            }
            self.live[plan.gpu] += 1;
            self.peak_per_gpu = self.peak_per_gpu.max(self.live[plan.gpu]);
        }
    }

    fn released(&mut self, ctx: &Ctx<'_>, inst: InstId) {
        let i = ctx.instance(inst);
        let g = i.gpu.ix();
        if let Some(r) = self.residents[g].get_mut(&i.func) {
            r.live = r.live.saturating_sub(1);
            r.last_used = ctx.now();
        }
        self.live[g] -= 1;
    }
}

/// The SAGE policy.
pub struct Sage;

impl Sage {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, SageParams) = crate::pool::split_params(spec)?;
        let n = scenario.gpus.len();
        let placement = SagePlacement {
            parallel: p.parallel_setup,
            share_weights: p.share_weights,
            share_context: p.share_context,
            residents: vec![BTreeMap::new(); n],
            live: vec![0; n],
            pending: None,
            peak_per_gpu: 0,
        };
        Ok(Pooled::boxed(&spec.name, Pool::new(&pool, placement, scenario)?, Sage))
    }
}

impl PoolPolicy for Sage {
    type Placement = SagePlacement;
    fn report(&self, pool: &Pool<SagePlacement>) -> Vec<String> {
        vec![format!(
            "density: at most {} instances on one GPU at once",
            pool.placement.peak_per_gpu
        )]
    }
}
