//! The queueing and scaling core shared by instance-per-function policies (`exclusive`, `mps`).
//!
//! Invocations of a function wait in one FIFO queue; an idle instance of the function takes the
//! head. When the queue is longer than the instances already starting, a new instance is placed
//! by the policy's [`Placement`] — and, with `evict_idle`, idle instances of any function are
//! reclaimed, least recently used first, until it fits. An instance left idle with nothing queued
//! first makes room for a function waiting for capacity (with `evict_idle`), else stays warm for
//! the keep-alive and is then reclaimed. With `prewarm`, every function's instances
//! (`max_instances`, default 1) exist from time 0 with their setup done — the state a real-GPU
//! replay starts in, so that a simulation compared with one starts alike.

use gpushare_sim::keepalive::{HybridConfig, HybridHistogram};
use gpushare_sim::policy::{Ctx, FixedTtl, IdleAction, InstanceSpec, KeepAlive};
use gpushare_sim::record::RejectReason;
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec, Seg};
use gpushare_sim::time::{Nanos, secs_to_ns};
use gpushare_sim::{FuncId, GpuId, InstId, InvId};
use serde::Deserialize;
use std::collections::VecDeque;

/// Where a new instance goes.
pub trait Placement {
    /// A GPU and instance spec for a new instance of `func` that fits now, if any.
    fn place(&mut self, ctx: &Ctx<'_>, func: FuncId) -> Option<(GpuId, InstanceSpec)>;

    /// Whether reclaiming idle instance `victim` would let an instance of `func` fit.
    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool;

    /// Called right after [`Placement::place`] and before the instance starts: make the room
    /// the placement counted on (evict resident state, reserve shared memory).
    fn prepare(&mut self, _ctx: &mut Ctx<'_>) {}

    /// The instance just started where [`Placement::place`] said.
    fn placed(&mut self, _inst: InstId) {}

    /// The instance is about to be reclaimed.
    fn released(&mut self, _ctx: &Ctx<'_>, _inst: InstId) {}
}

/// Timer tokens with this bit set belong to the pool (pre-warming); policies forward them to
/// [`Pool::on_timer`].
pub const POOL_TIMER: u64 = 1 << 63;

/// Which keep-alive policy the pool uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepAliveKind {
    #[default]
    Fixed,
    Hybrid,
}

/// `[policy] hybrid = { … }`: the hybrid histogram's parameters (defaults: the paper's).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HybridParams {
    pub bin_s: Option<f64>,
    pub bins: Option<usize>,
    pub head: Option<f64>,
    pub tail: Option<f64>,
    pub margin: Option<f64>,
    pub min_samples: Option<u32>,
    pub min_cv: Option<f64>,
}

/// The pool parameters every instance-based policy shares (`[policy]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolParams {
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: f64,
    /// `fixed` (keep `keep_alive_s`) or `hybrid` (the histogram policy, falling back to
    /// `keep_alive_s`).
    #[serde(default)]
    pub keep_alive_policy: KeepAliveKind,
    #[serde(default)]
    pub hybrid: HybridParams,
    /// Instances per function: one limit for all, or `{ function = n, … }` (the others
    /// unlimited).
    pub max_instances: Option<MaxInstances>,
    pub max_queue: Option<u64>,
    #[serde(default = "yes")]
    pub evict_idle: bool,
    /// Start every function's instances (`max_instances`, default 1) at time 0 with their
    /// setup already done — the state `gpushare replay` starts in, so that a simulation set
    /// against a replay starts where the replay does.
    #[serde(default)]
    pub prewarm: bool,
}

/// `max_instances`: one limit for every function, or one per function.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MaxInstances {
    All(u32),
    Each(std::collections::BTreeMap<String, u32>),
}

fn default_keep_alive() -> f64 {
    600.0
}
fn yes() -> bool {
    true
}

/// Splits `[policy]` into the pool's parameters and a policy's own (the keys in `own_keys`),
/// each deserialised with errors located under `policy.`.
pub fn split_params<T: serde::de::DeserializeOwned>(
    spec: &PolicySpec,
    own_keys: &[&str],
) -> Result<(PoolParams, T), ConfigError> {
    let mut pool_table = spec.params.clone();
    let mut own = toml::Table::new();
    for k in own_keys {
        if let Some(v) = pool_table.remove(*k) {
            own.insert(k.to_string(), v);
        }
    }
    let pool = PolicySpec {
        name: spec.name.clone(),
        params: pool_table,
    }
    .params()
    .map_err(|mut e: ConfigError| {
        // The pool's list of valid keys lacks the policy's own.
        if e.message.starts_with("unknown field") && !own_keys.is_empty() {
            let own: Vec<String> = own_keys.iter().map(|k| format!("`{k}`")).collect();
            e.message = format!("{}, or {}'s own {}", e.message, spec.name, own.join(", "));
        }
        e
    })?;
    let mine = PolicySpec {
        name: spec.name.clone(),
        params: own,
    }
    .params()?;
    Ok((pool, mine))
}

/// Implements a policy's callbacks by handing them to its pool (`$pool` is the field path).
#[macro_export]
macro_rules! pool_callbacks {
    ($($pool:tt).+) => {
        fn on_start(&mut self, ctx: &mut gpushare_sim::policy::Ctx<'_>) {
            self.$($pool).+.start_prewarmed(ctx);
        }
        fn on_arrival(&mut self, ctx: &mut gpushare_sim::policy::Ctx<'_>, inv: gpushare_sim::InvId) {
            self.$($pool).+.arrive(ctx, inv);
        }
        fn on_instance_ready(&mut self, ctx: &mut gpushare_sim::policy::Ctx<'_>, inst: gpushare_sim::InstId) {
            self.$($pool).+.idle(ctx, inst);
        }
        fn on_complete(&mut self, ctx: &mut gpushare_sim::policy::Ctx<'_>, inst: gpushare_sim::InstId) {
            self.$($pool).+.idle(ctx, inst);
        }
        fn on_idle_expired(&mut self, ctx: &mut gpushare_sim::policy::Ctx<'_>, inst: gpushare_sim::InstId) {
            self.$($pool).+.expired(ctx, inst);
        }
        fn on_timer(&mut self, ctx: &mut gpushare_sim::policy::Ctx<'_>, token: u64) {
            self.$($pool).+.on_timer(ctx, token);
        }
    };
}

/// Per-function fractions from a default percentage (`default_field`) and a `{ function =
/// percent }` table (`table_field`), each in (0, 100].
pub fn per_function_percent(
    scenario: &gpushare_sim::Scenario,
    default: f64,
    default_field: &str,
    table: &std::collections::BTreeMap<String, f64>,
    table_field: &str,
) -> Result<Vec<f64>, ConfigError> {
    let pct = |v: f64, at: DocPath| {
        if v > 0.0 && v <= 100.0 {
            Ok(v / 100.0)
        } else {
            Err(ConfigError::at(
                at,
                format!("must be a percentage in (0, 100], got {v}"),
            ))
        }
    };
    let mut out = vec![pct(default, param_path(default_field))?; scenario.functions.len()];
    for (name, v) in table {
        let at = param_path(table_field).key(name);
        let i = scenario
            .functions
            .iter()
            .position(|f| &f.name == name)
            .ok_or_else(|| ConfigError::at(at.clone(), format!("no function `{name}` in the scenario")))?;
        out[i] = pct(*v, at)?;
    }
    Ok(out)
}

/// The path of a `[policy]` field, for errors.
pub fn param_path(field: &str) -> DocPath {
    DocPath(vec![Seg::Key("policy".into()), Seg::Key(field.into())])
}

/// FIFO queues per function, scale-up, keep-alive and idle eviction over a placement.
pub struct Pool<P> {
    pub placement: P,
    keep_alive: Box<dyn KeepAlive>,
    /// Per function: the keep-alive of its pending pre-warm, and whether an instance is being
    /// pre-warmed.
    prewarm_keep: Vec<Option<Nanos>>,
    /// Per function.
    max_instances: Vec<u32>,
    max_queue: u64,
    prewarm: bool,
    evict_idle: bool,
    queues: Vec<VecDeque<InvId>>,
    /// Instances are started by an autoscaler ([`Pool::start_now`]), not by queue length.
    pub autoscaled: bool,
    /// KaaS's `exclusive` eviction: a function with no instance takes the room of the largest
    /// group's instance as soon as that instance finishes its invocation ([`Pool::idle`]).
    pub kill_largest: bool,
    /// Functions that need an instance but found no room, in the order they asked.
    waiting: VecDeque<FuncId>,
    is_waiting: Vec<bool>,
}

/// Each function's instance limit from `max_instances` (`u32::MAX`: none).
fn instance_limits(limit: Option<&MaxInstances>, scenario: &gpushare_sim::Scenario) -> Result<Vec<u32>, ConfigError> {
    let at_least_one = |n: u32, at: gpushare_sim::scenario::DocPath| {
        if n == 0 {
            Err(ConfigError::at(at, "must be at least 1 (omit it for no limit)"))
        } else {
            Ok(n)
        }
    };
    let n = scenario.functions.len();
    match limit {
        None => Ok(vec![u32::MAX; n]),
        Some(MaxInstances::All(k)) => Ok(vec![at_least_one(*k, param_path("max_instances"))?; n]),
        Some(MaxInstances::Each(map)) => {
            for (name, &k) in map {
                at_least_one(k, param_path("max_instances").key(name))?;
                if !scenario.functions.iter().any(|f| &f.name == name) {
                    return Err(ConfigError::at(
                        param_path("max_instances").key(name),
                        format!("no function `{name}` in the scenario"),
                    ));
                }
            }
            Ok(scenario
                .functions
                .iter()
                .map(|f| map.get(&f.name).copied().unwrap_or(u32::MAX))
                .collect())
        }
    }
}

impl<P: Placement> Pool<P> {
    /// Checks the shared parameters and builds the pool for `scenario`'s functions.
    pub fn new(p: &PoolParams, placement: P, scenario: &gpushare_sim::Scenario) -> Result<Self, ConfigError> {
        let functions = scenario.functions.len();
        let max_instances = instance_limits(p.max_instances.as_ref(), scenario)?;
        if p.keep_alive_s.is_nan() || p.keep_alive_s < 0.0 {
            return Err(ConfigError::at(
                param_path("keep_alive_s"),
                format!("must be ≥ 0 seconds (or inf), got {}", p.keep_alive_s),
            ));
        }
        let fixed = p.keep_alive_s.is_finite().then(|| secs_to_ns(p.keep_alive_s));
        let keep_alive: Box<dyn KeepAlive> = match p.keep_alive_policy {
            KeepAliveKind::Fixed => Box::new(FixedTtl(fixed)),
            KeepAliveKind::Hybrid => {
                let h = &p.hybrid;
                let d = HybridConfig::default();
                let fraction = |v: Option<f64>, f: &str, dv: f64| -> Result<f64, ConfigError> {
                    match v {
                        Some(x) if !(0.0..=1.0).contains(&x) => Err(ConfigError::at(
                            param_path("hybrid").key(f),
                            format!("must be in [0, 1], got {x}"),
                        )),
                        Some(x) => Ok(x),
                        None => Ok(dv),
                    }
                };
                let bin = match h.bin_s {
                    Some(b) if !(b.is_finite() && b > 0.0) => {
                        return Err(ConfigError::at(
                            param_path("hybrid").key("bin_s"),
                            format!("must be a positive number of seconds, got {b}"),
                        ));
                    }
                    Some(b) => secs_to_ns(b),
                    None => d.bin,
                };
                let cfg = HybridConfig {
                    bin,
                    bins: h.bins.unwrap_or(d.bins).max(1),
                    head: fraction(h.head, "head", d.head)?,
                    tail: fraction(h.tail, "tail", d.tail)?,
                    margin: fraction(h.margin, "margin", d.margin)?,
                    min_samples: h.min_samples.unwrap_or(d.min_samples),
                    max_out_of_bounds: d.max_out_of_bounds,
                    min_cv: h.min_cv.unwrap_or(d.min_cv),
                    fallback: fixed,
                };
                Box::new(HybridHistogram::new(cfg, functions))
            }
        };
        Ok(Pool {
            placement,
            keep_alive,
            prewarm_keep: vec![None; functions],
            max_instances,
            max_queue: p.max_queue.unwrap_or(u64::MAX),
            evict_idle: p.evict_idle,
            prewarm: p.prewarm,
            queues: vec![VecDeque::new(); functions],
            autoscaled: false,
            kill_largest: false,
            waiting: VecDeque::new(),
            is_waiting: vec![false; functions],
        })
    }

    /// True when `func` has more queued invocations than instances starting for them, and may
    /// start another instance.
    fn needs_instance(&self, ctx: &Ctx<'_>, func: FuncId) -> bool {
        !self.autoscaled
            && self.queues[func.ix()].len() > ctx.starting(func) as usize
            && ctx.alive(func) < self.max_instances[func.ix()]
    }

    /// Starts one instance of `func` now (for autoscalers), evicting idle instances if allowed.
    pub fn start_now(&mut self, ctx: &mut Ctx<'_>, func: FuncId) -> bool {
        ctx.alive(func) < self.max_instances[func.ix()] && self.start(ctx, func)
    }

    /// Invocations of `func` waiting in its queue.
    pub fn queue_len(&self, func: FuncId) -> usize {
        self.queues[func.ix()].len()
    }

    /// Reclaims an idle instance now (for autoscalers).
    pub fn scale_down(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.reclaim(ctx, inst);
    }

    /// With `prewarm`, starts every function's instances (`max_instances`, default 1), set up
    /// already, at time 0 (from `Policy::on_start`).
    pub fn start_prewarmed(&mut self, ctx: &mut Ctx<'_>) {
        if !self.prewarm {
            return;
        }
        let per = |limit: u32| if limit == u32::MAX { 1 } else { limit };
        let rounds = self.max_instances.iter().map(|&m| per(m)).max().unwrap_or(0);
        // Round by round, so that functions share the room fairly.
        for round in 0..rounds {
            for f in 0..self.queues.len() {
                if round < per(self.max_instances[f]) {
                    self.start_with(ctx, FuncId(f as u32), true);
                }
            }
        }
    }

    /// Whether instances start set up at time 0 (`prewarm`).
    pub fn prewarmed(&self) -> bool {
        self.prewarm
    }

    /// Places and starts an instance of `func`, evicting idle instances if allowed.
    fn start(&mut self, ctx: &mut Ctx<'_>, func: FuncId) -> bool {
        self.start_with(ctx, func, false)
    }

    /// `Pool::start`; `warm` skips the setup.
    pub fn start_with(&mut self, ctx: &mut Ctx<'_>, func: FuncId, warm: bool) -> bool {
        loop {
            if let Some((gpu, mut spec)) = self.placement.place(ctx, func) {
                if warm {
                    spec.setup = 0;
                }
                self.placement.prepare(ctx);
                return match ctx.start_instance(func, gpu, spec) {
                    Ok(inst) => {
                        self.placement.placed(inst);
                        true
                    }
                    Err(_) => false,
                };
            }
            if !self.evict_idle {
                return false;
            }
            // Never another instance of the same function: that would trade a warm instance for
            // a cold one.
            let victim = ctx
                .idle_lru()
                .find(|&i| ctx.instance(i).func != func && self.placement.fits_after_reclaiming(ctx, func, i));
            let Some(victim) = victim else {
                return false;
            };
            self.reclaim(ctx, victim);
        }
    }

    fn wait_for_capacity(&mut self, func: FuncId) {
        if !self.is_waiting[func.ix()] {
            self.is_waiting[func.ix()] = true;
            self.waiting.push_back(func);
        }
    }

    /// Starts instances for `func` while its queue needs them and room can be had.
    pub fn scale_up(&mut self, ctx: &mut Ctx<'_>, func: FuncId) {
        while self.needs_instance(ctx, func) {
            if !self.start(ctx, func) {
                self.wait_for_capacity(func);
                return;
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

    /// An invocation arrived.
    pub fn arrive(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        let func = ctx.invocation(inv).func;
        self.keep_alive.arrived(func, ctx.now());
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

    /// An instance is idle: its own queue first, then a function waiting for room, else
    /// keep-alive.
    pub fn idle(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let func = ctx.instance(inst).func;
        if self.kill_largest && self.yield_to_starved(ctx, inst) {
            return;
        }
        if let Some(inv) = self.queues[func.ix()].pop_front() {
            ctx.run(inv, inst);
            return;
        }
        if self.evict_idle {
            for _ in 0..self.waiting.len() {
                let Some(other) = self.waiting.pop_front() else { break };
                self.is_waiting[other.ix()] = false;
                if self.needs_instance(ctx, other) && self.placement.fits_after_reclaiming(ctx, other, inst) {
                    self.reclaim(ctx, inst);
                    // It may need more; it rejoins the queue at the back.
                    self.scale_up(ctx, other);
                    return;
                }
                if self.needs_instance(ctx, other) {
                    self.wait_for_capacity(other);
                }
            }
        }
        // A pre-warmed instance just became ready: it stays for the window it was warmed for.
        if ctx.instance(inst).served == 0 {
            if let Some(keep) = self.prewarm_keep[func.ix()].take() {
                ctx.keep_alive(inst, Some(keep));
                return;
            }
        }
        match self.keep_alive.idle(func, ctx.now()) {
            IdleAction::KeepFor(ttl) => ctx.keep_alive(inst, ttl),
            IdleAction::UnloadThenPrewarm {
                prewarm_after,
                keep_for,
            } => {
                self.reclaim(ctx, inst);
                self.prewarm_keep[func.ix()] = Some(keep_for);
                ctx.set_timer(ctx.now() + prewarm_after, POOL_TIMER | u64::from(func.0));
            }
        }
    }

    /// With `kill_largest`: if a function with no instance is waiting for room and `inst` (which
    /// has served at least once) belongs to a group with the most instances, `inst` is reclaimed
    /// even though its own function may have work queued, and the starved function starts in its
    /// room; the victim's queue then waits for room in turn. With more clients than GPUs this
    /// thrashes: every switch is a cold start, as KaaS reports for its `exclusive` baseline. It
    /// is not a livelock: a new instance always serves its first request before it can be
    /// chosen, so each GPU completes one request per cold start — GPUs / (setup + request) per
    /// second (`tests/kaas_baselines.rs`).
    fn yield_to_starved(&mut self, ctx: &mut Ctx<'_>, inst: InstId) -> bool {
        if self.waiting.is_empty() || ctx.instance(inst).served == 0 {
            return false;
        }
        let func = ctx.instance(inst).func;
        let largest = (0..self.queues.len() as u32)
            .map(|f| ctx.alive(FuncId(f)))
            .max()
            .unwrap_or(0);
        if ctx.alive(func) < largest {
            return false;
        }
        let starved = self.waiting.iter().position(|&w| {
            ctx.alive(w) == 0 && self.needs_instance(ctx, w) && self.placement.fits_after_reclaiming(ctx, w, inst)
        });
        let Some(starved) = starved.and_then(|i| self.waiting.remove(i)) else {
            return false;
        };
        self.is_waiting[starved.ix()] = false;
        self.reclaim(ctx, inst);
        self.scale_up(ctx, starved);
        self.scale_up(ctx, func);
        true
    }

    /// A pool timer fired: pre-warm its function unless an instance is already there.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        let func = FuncId((token & !POOL_TIMER) as u32);
        if self.prewarm_keep[func.ix()].is_some() && ctx.alive(func) == 0 && !self.start(ctx, func) {
            self.prewarm_keep[func.ix()] = None;
        }
    }

    /// An idle instance's keep-alive ran out.
    pub fn expired(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.reclaim(ctx, inst);
        self.serve_waiting(ctx);
    }

    fn reclaim(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.placement.released(ctx, inst);
        ctx.reclaim(inst);
    }
}
