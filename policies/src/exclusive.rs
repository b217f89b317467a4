//! `exclusive`: every instance owns a whole GPU.
//!
//! **Mechanism.** The coarse-grained baseline every GPU-sharing paper compares against
//! (KaaS's `exclusive`, FaST-GShare's and SAGE's "one function per GPU"): a function instance
//! is a container holding one CUDA context on a GPU no other instance uses. Invocations of a
//! function wait in one FIFO queue; an idle instance of the function takes the head. When the
//! queue is longer than the instances already starting, a new instance is cold-started on an
//! empty GPU — or, with `evict_idle`, on the GPU of the least recently used idle instance of any
//! function, which is reclaimed (what OpenWhisk-style platforms do under memory pressure, and the
//! thrashing KaaS reports when clients outnumber GPUs). An instance left idle with nothing queued
//! first serves a function waiting for capacity (with `evict_idle`), else stays warm for the
//! keep-alive and is then reclaimed.
//!
//! **Parameters** (`[policy]`):
//! - `keep_alive_s` (default 600; `inf` keeps instances forever): fixed keep-alive after last use.
//!   600 s is the common platform default studied in "Serverless in the Wild" (Shahrad et al.,
//!   ATC '20), whose 10-minute fixed policy is its baseline.
//! - `max_instances` (default unlimited): instances per function; further invocations queue.
//! - `max_queue` (default unlimited): queued invocations per function; further ones are rejected
//!   (`queue_full`).
//! - `evict_idle` (default true): reclaim idle instances of other functions to make room.
//!
//! **Simplifications.** Setup is sequential (container, context, framework, model load) and does
//! not use SMs; the instance's memory (context + weights + activations) is reserved for its whole
//! life; placement takes the lowest-numbered empty GPU where the function fits.

use gpushare_sim::policy::{Ctx, FixedTtl, KeepAlive, Policy};
use gpushare_sim::record::RejectReason;
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec, Seg};
use gpushare_sim::time::secs_to_ns;
use gpushare_sim::{FuncId, GpuId, InstId, InvId, Scenario};
use serde::Deserialize;
use std::collections::VecDeque;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_keep_alive")]
    keep_alive_s: f64,
    max_instances: Option<u32>,
    max_queue: Option<u64>,
    #[serde(default = "yes")]
    evict_idle: bool,
}

fn default_keep_alive() -> f64 {
    600.0
}
fn yes() -> bool {
    true
}

/// The exclusive policy.
pub struct Exclusive {
    keep_alive: FixedTtl,
    max_instances: u32,
    max_queue: u64,
    evict_idle: bool,
    queues: Vec<VecDeque<InvId>>,
    /// Functions that need an instance but found no GPU, in the order they asked.
    waiting: VecDeque<FuncId>,
    is_waiting: Vec<bool>,
}

fn param_path(field: &str) -> DocPath {
    DocPath(vec![Seg::Key("policy".into()), Seg::Key(field.into())])
}

impl Exclusive {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let p: Params = spec.params()?;
        if p.keep_alive_s.is_nan() || p.keep_alive_s < 0.0 {
            return Err(ConfigError::at(
                param_path("keep_alive_s"),
                format!("must be ≥ 0 seconds (or inf), got {}", p.keep_alive_s),
            ));
        }
        if p.max_instances == Some(0) {
            return Err(ConfigError::at(
                param_path("max_instances"),
                "must be at least 1 (omit it for no limit)",
            ));
        }
        let n = scenario.functions.len();
        Ok(Box::new(Exclusive {
            keep_alive: FixedTtl(p.keep_alive_s.is_finite().then(|| secs_to_ns(p.keep_alive_s))),
            max_instances: p.max_instances.unwrap_or(u32::MAX),
            max_queue: p.max_queue.unwrap_or(u64::MAX),
            evict_idle: p.evict_idle,
            queues: vec![VecDeque::new(); n],
            waiting: VecDeque::new(),
            is_waiting: vec![false; n],
        }))
    }

    /// True when `func` has more queued invocations than instances starting for them, and may
    /// start another instance.
    fn needs_instance(&self, ctx: &Ctx<'_>, func: FuncId) -> bool {
        self.queues[func.ix()].len() > ctx.starting(func) as usize && ctx.alive(func) < self.max_instances
    }

    fn fits(ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> bool {
        ctx.default_instance(func, gpu).memory <= ctx.gpus()[gpu.ix()].mem_capacity
    }

    /// An empty GPU for `func`, evicting the least recently used idle instance if allowed.
    fn acquire_gpu(&self, ctx: &mut Ctx<'_>, func: FuncId) -> Option<GpuId> {
        if let Some(g) = ctx.empty_gpus().find(|&g| Self::fits(ctx, func, g)) {
            return Some(g);
        }
        if !self.evict_idle {
            return None;
        }
        let victim = ctx.idle_lru().find(|&i| Self::fits(ctx, func, ctx.instance(i).gpu))?;
        let gpu = ctx.instance(victim).gpu;
        ctx.reclaim(victim);
        Some(gpu)
    }

    fn start_on(ctx: &mut Ctx<'_>, func: FuncId, gpu: GpuId) -> bool {
        let spec = ctx.default_instance(func, gpu);
        ctx.start_instance(func, gpu, spec).is_ok()
    }

    fn wait_for_capacity(&mut self, func: FuncId) {
        if !self.is_waiting[func.ix()] {
            self.is_waiting[func.ix()] = true;
            self.waiting.push_back(func);
        }
    }

    /// Starts instances for `func` while its queue needs them and GPUs can be had.
    fn scale_up(&mut self, ctx: &mut Ctx<'_>, func: FuncId) {
        while self.needs_instance(ctx, func) {
            match self.acquire_gpu(ctx, func) {
                Some(gpu) if Self::start_on(ctx, func, gpu) => {}
                _ => {
                    self.wait_for_capacity(func);
                    return;
                }
            }
        }
    }

    /// Gives capacity to functions waiting for it, in the order they asked.
    fn serve_waiting(&mut self, ctx: &mut Ctx<'_>) {
        for _ in 0..self.waiting.len() {
            let Some(func) = self.waiting.pop_front() else { break };
            self.is_waiting[func.ix()] = false;
            self.scale_up(ctx, func);
        }
    }

    /// An instance is idle: its own queue first, then a function waiting for a GPU, else
    /// keep-alive.
    fn on_idle(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let func = ctx.instance(inst).func;
        if let Some(inv) = self.queues[func.ix()].pop_front() {
            ctx.run(inv, inst);
            return;
        }
        if self.evict_idle {
            let gpu = ctx.instance(inst).gpu;
            for _ in 0..self.waiting.len() {
                let Some(other) = self.waiting.pop_front() else { break };
                self.is_waiting[other.ix()] = false;
                if self.needs_instance(ctx, other) && Self::fits(ctx, other, gpu) {
                    ctx.reclaim(inst);
                    Self::start_on(ctx, other, gpu);
                    // It may need more; it rejoins the queue at the back.
                    self.scale_up(ctx, other);
                    return;
                }
                if self.needs_instance(ctx, other) {
                    self.wait_for_capacity(other);
                }
            }
        }
        let ttl = self.keep_alive.ttl(func, ctx.now());
        ctx.keep_alive(inst, ttl);
    }
}

impl Policy for Exclusive {
    fn name(&self) -> &str {
        "exclusive"
    }

    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        let func = ctx.invocation(inv).func;
        let queue = &mut self.queues[func.ix()];
        if queue.is_empty() {
            if let Some(inst) = ctx.idle_instance(func) {
                ctx.run(inv, inst);
                return;
            }
        }
        if queue.len() as u64 >= self.max_queue {
            ctx.reject(inv, RejectReason::QueueFull);
            return;
        }
        queue.push_back(inv);
        self.scale_up(ctx, func);
    }

    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.on_idle(ctx, inst);
    }

    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.on_idle(ctx, inst);
    }

    fn on_idle_expired(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        ctx.reclaim(inst);
        self.serve_waiting(ctx);
    }
}
