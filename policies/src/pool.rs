//! The queueing and scaling core shared by the instance-per-function policies.
//!
//! Invocations of a function wait in one FIFO queue; an idle instance of the function takes the
//! head. When the queue is longer than the instances already starting, a new instance is placed
//! where the policy's [`Placement`] fits it, on the GPU its [`Ranking`] prefers — and, with
//! `evict_idle`, idle instances of any function are reclaimed, least recently used first, until
//! it fits. An instance left idle with nothing queued first makes room for a function waiting
//! for capacity (with `evict_idle`), else goes to the keep-alive plug-in
//! ([`crate::keep_alive`]), which keeps it for a while or unloads it and pre-warms later. With
//! `prewarm`, every function's instances (`max_instances`, default 1) exist from time 0 with
//! their setup done — the state a real-GPU replay starts in. A policy on the pool is a
//! [`PoolPolicy`]: its callbacks forward to the pool unless it overrides them.

use crate::params::Params;
pub use crate::placement::{Fit, Placement, Ranking};
use gpushare_sim::policy::{Ctx, IdleAction, IdleInstance, KeepAlive, Policy, Sharing};
use gpushare_sim::record::RejectReason;
use gpushare_sim::scenario::{ConfigError, DocPath, PolicySpec, Seg};
use gpushare_sim::time::{Nanos, secs_to_ns};
use gpushare_sim::{FuncId, InstId, InvId};
use serde::Deserialize;
use std::collections::VecDeque;

/// Timer tokens with this bit set belong to the pool (pre-warming); [`Pooled`] hands them to
/// [`Pool::on_timer`], the others to the policy.
pub const POOL_TIMER: u64 = 1 << 63;

crate::params! {
    /// The pool parameters every instance-based policy shares (`[policy]`).
    pub struct PoolParams {
        /// Keep an idle instance this long after its last use, s (`inf`: forever); the `fixed` keep-alive, and every other's fallback. 600 s is the platform default studied in "Serverless in the Wild" (ATC '20).
        keep_alive_s: f64 = 600.0,
        /// The keep-alive plug-in: `fixed` or `hybrid` (`gpushare policies` lists them).
        keep_alive_policy: String = "fixed".into(),
        /// The keep-alive plug-in's own parameters, e.g. `{ head = 0.05, tail = 0.99 }` for `hybrid`.
        keep_alive_params: toml::Table = toml::Table::new(),
        /// The `hybrid` keep-alive's parameters (the same as `keep_alive_params`, kept for older scenarios).
        hybrid: toml::Table = toml::Table::new(),
        /// Where a new instance goes among the GPUs it fits: `first`, `best-fit`, `least-loaded`, `most-loaded`, `spread` or `random` (`gpushare policies` lists them); each policy has its own default.
        placement: String = "first".into(),
        /// Instances per function: one limit for all, or `{ function = n, … }` (the others unlimited).
        max_instances: Option<MaxInstances> = None,
        /// Invocations queued per function; beyond it they are rejected (`queue_full`). Unset: unlimited.
        max_queue: Option<u64> = None,
        /// Reclaim idle instances of other functions, least recently used first, to make room.
        evict_idle: bool = true,
        /// Start every function's instances (`max_instances`, default 1) at time 0 with their setup done: the state `gpushare replay` starts in.
        prewarm: bool = false,
    }
}

impl crate::params::ShowDefault for toml::Table {
    fn show(&self) -> Option<String> {
        Some(toml::Value::Table(self.clone()).to_string())
    }
}

/// `max_instances`: one limit for every function, or one per function.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MaxInstances {
    All(u32),
    Each(std::collections::BTreeMap<String, u32>),
}

impl crate::params::ShowDefault for MaxInstances {
    fn show(&self) -> Option<String> {
        match self {
            MaxInstances::All(n) => n.show(),
            MaxInstances::Each(map) => map.show(),
        }
    }
}

/// Splits `[policy]` into the pool's parameters and a policy's own (`T`'s keys), each
/// deserialised with errors located under `policy.`.
pub fn split_params<T: Params>(spec: &PolicySpec) -> Result<(PoolParams, T), ConfigError> {
    let own_keys = T::keys();
    let mut pool_table = spec.params.clone();
    let mut own = toml::Table::new();
    for k in &own_keys {
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

/// A policy built on the [`Pool`]: it overrides only the callbacks it changes; the others hand
/// the event to the pool, which each callback receives. [`Pooled`] pairs it with its pool as
/// a [`Policy`].
pub trait PoolPolicy {
    /// Its placement mechanism.
    type Placement: Placement;

    /// How concurrent kernels share a GPU's SMs (see [`Policy::sharing`]).
    fn sharing(&self, _pool: &Pool<Self::Placement>) -> Box<dyn Sharing> {
        Box::new(gpushare_sim::policy::CappedShares)
    }
    /// The run starts: pre-warmed instances, with `prewarm`.
    fn on_start(&mut self, pool: &mut Pool<Self::Placement>, ctx: &mut Ctx<'_>) {
        pool.start_prewarmed(ctx);
    }
    /// An invocation arrived: to its function's queue (or an idle instance).
    fn on_arrival(&mut self, pool: &mut Pool<Self::Placement>, ctx: &mut Ctx<'_>, inv: InvId) {
        pool.arrive(ctx, inv);
    }
    /// An instance finished its setup.
    fn on_instance_ready(&mut self, pool: &mut Pool<Self::Placement>, ctx: &mut Ctx<'_>, inst: InstId) {
        pool.idle(ctx, inst);
    }
    /// An instance finished its invocation.
    fn on_complete(&mut self, pool: &mut Pool<Self::Placement>, ctx: &mut Ctx<'_>, inst: InstId) {
        pool.idle(ctx, inst);
    }
    /// An idle instance's keep-alive ran out.
    fn on_idle_expired(&mut self, pool: &mut Pool<Self::Placement>, ctx: &mut Ctx<'_>, inst: InstId) {
        pool.expired(ctx, inst);
    }
    /// One of the policy's own timers fired (the pool's own never reach it).
    fn on_timer(&mut self, _pool: &mut Pool<Self::Placement>, _ctx: &mut Ctx<'_>, _token: u64) {}
    /// The policy's lines for `policy_report` (the pool adds its keep-alive's after them).
    fn report(&self, _pool: &Pool<Self::Placement>) -> Vec<String> {
        Vec::new()
    }
}

/// A pool policy with nothing of its own: the pool alone ([`Pool::into_policy`]).
pub struct PoolOnly<P>(std::marker::PhantomData<P>);

impl<P: Placement> PoolPolicy for PoolOnly<P> {
    type Placement = P;
}

/// A [`PoolPolicy`] with its pool, under the name scenarios use: the engine's [`Policy`].
pub struct Pooled<T: PoolPolicy> {
    pub name: String,
    pub pool: Pool<T::Placement>,
    pub policy: T,
}

impl<T: PoolPolicy + 'static> Pooled<T> {
    /// `policy` on `pool`, called `name`, boxed for the engine.
    pub fn boxed(name: &str, pool: Pool<T::Placement>, policy: T) -> Box<dyn Policy>
    where
        T::Placement: 'static,
    {
        Box::new(Pooled {
            name: name.to_string(),
            pool,
            policy,
        })
    }
}

impl<P: Placement + 'static> Pool<P> {
    /// This pool alone as a policy called `name`: every event handled by the pool.
    pub fn into_policy(self, name: &str) -> Box<dyn Policy> {
        Pooled::boxed(name, self, PoolOnly(std::marker::PhantomData))
    }
}

impl<T: PoolPolicy> Policy for Pooled<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn sharing(&self) -> Box<dyn Sharing> {
        self.policy.sharing(&self.pool)
    }
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.policy.on_start(&mut self.pool, ctx);
    }
    fn on_arrival(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        self.policy.on_arrival(&mut self.pool, ctx, inv);
    }
    fn on_instance_ready(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.policy.on_instance_ready(&mut self.pool, ctx, inst);
    }
    fn on_complete(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.policy.on_complete(&mut self.pool, ctx, inst);
    }
    fn on_idle_expired(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.policy.on_idle_expired(&mut self.pool, ctx, inst);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        if token & POOL_TIMER != 0 {
            self.pool.on_timer(ctx, token);
        } else {
            self.policy.on_timer(&mut self.pool, ctx, token);
        }
    }
    fn report(&self) -> Vec<String> {
        let mut lines = self.policy.report(&self.pool);
        self.pool.keep_alive.report(&mut lines);
        lines
    }
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
        let i = function_index(scenario, name, at.clone())?;
        out[i] = pct(*v, at)?;
    }
    Ok(out)
}

/// The index of the function called `name`, or an error at `at` saying there is none.
pub fn function_index(scenario: &gpushare_sim::Scenario, name: &str, at: DocPath) -> Result<usize, ConfigError> {
    scenario
        .functions
        .iter()
        .position(|f| f.name == name)
        .ok_or_else(|| ConfigError::at(at, format!("no function `{name}` in the scenario")))
}

/// Every key of `table` (`[policy] field = { function = … }`) names a function of the scenario.
pub fn check_function_keys<V>(
    scenario: &gpushare_sim::Scenario,
    table: &std::collections::BTreeMap<String, V>,
    field: &str,
) -> Result<(), ConfigError> {
    for name in table.keys() {
        function_index(scenario, name, param_path(field).key(name))?;
    }
    Ok(())
}

/// The path of a `[policy]` field, for errors.
pub fn param_path(field: &str) -> DocPath {
    DocPath(vec![Seg::Key("policy".into()), Seg::Key(field.into())])
}

/// FIFO queues per function, scale-up, keep-alive and idle eviction over a placement.
pub struct Pool<P> {
    pub placement: P,
    ranking: Box<dyn Ranking>,
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
                function_index(scenario, name, param_path("max_instances").key(name))?;
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
        let (table, table_key) =
            crate::keep_alive::params_table(&p.keep_alive_policy, &p.keep_alive_params, &p.hybrid)?;
        let args = crate::keep_alive::KeepAliveArgs {
            fixed,
            functions,
            table,
            table_key,
        };
        let keep_alive = crate::keep_alive::keep_alive(&p.keep_alive_policy, &args)?;
        let ranking = crate::placement::ranking(&p.placement, scenario.seed)?;
        Ok(Pool {
            placement,
            ranking,
            keep_alive,
            prewarm_keep: vec![None; functions],
            max_instances,
            max_queue: p.max_queue.unwrap_or(u64::MAX),
            evict_idle: p.evict_idle,
            prewarm: p.prewarm,
            queues: vec![VecDeque::new(); functions],
            waiting: VecDeque::new(),
            is_waiting: vec![false; functions],
        })
    }

    /// The pool with `ranking` instead of the one `placement` names (a ranking of one's own,
    /// not in [`crate::placement::rankings`]).
    pub fn with_ranking(mut self, ranking: Box<dyn Ranking>) -> Self {
        self.ranking = ranking;
        self
    }

    /// The pool with `keep_alive` instead of the one `keep_alive_policy` names (a plug-in of
    /// one's own, not in [`crate::keep_alive::keep_alives`]).
    pub fn with_keep_alive(mut self, keep_alive: Box<dyn KeepAlive>) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// True when `func` has more queued invocations than instances starting for them, and may
    /// start another instance.
    pub fn needs_instance(&self, ctx: &Ctx<'_>, func: FuncId) -> bool {
        self.queues[func.ix()].len() > ctx.starting(func) as usize && ctx.alive(func) < self.max_instances[func.ix()]
    }

    /// Starts one instance of `func` now (for autoscalers), evicting idle instances if allowed.
    pub fn start_now(&mut self, ctx: &mut Ctx<'_>, func: FuncId) -> bool {
        ctx.alive(func) < self.max_instances[func.ix()] && self.start(ctx, func)
    }

    /// Invocations of `func` waiting in its queue.
    pub fn queue_len(&self, func: FuncId) -> usize {
        self.queues[func.ix()].len()
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
            if let Some((gpu, fit)) = crate::placement::choose(&self.placement, self.ranking.as_mut(), ctx, func) {
                let mut spec = self.placement.take(ctx, func, gpu, fit);
                if warm {
                    spec.setup = 0;
                }
                return match ctx.start_instance(func, gpu, spec) {
                    Ok(inst) => {
                        self.placement.placed(inst);
                        self.ranking.placed(ctx, inst);
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

    /// An invocation arrived: an idle instance runs it, else it queues and instances start
    /// for the queue.
    pub fn arrive(&mut self, ctx: &mut Ctx<'_>, inv: InvId) {
        if self.enqueue(ctx, inv) {
            self.scale_up(ctx, ctx.invocation(inv).func);
        }
    }

    /// An invocation arrived under a policy that starts instances itself (an autoscaler, with
    /// [`Pool::start_now`]): an idle instance runs it, else it queues (or is rejected when the
    /// queue is full). True when it queued.
    #[inline]
    pub fn enqueue(&mut self, ctx: &mut Ctx<'_>, inv: InvId) -> bool {
        let func = ctx.invocation(inv).func;
        self.keep_alive.arrived(func, ctx.now());
        let queue = &mut self.queues[func.ix()];
        if queue.is_empty() {
            if let Some(inst) = ctx.idle_instance(func) {
                ctx.run(inv, inst);
                return false;
            }
        }
        if queue.len() as u64 >= self.max_queue {
            ctx.reject(inv, RejectReason::QueueFull);
            return false;
        }
        queue.push_back(inv);
        true
    }

    /// An instance is idle: its own queue first, then a function waiting for room, else
    /// keep-alive.
    pub fn idle(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let func = ctx.instance(inst).func;
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
        let i = ctx.instance(inst);
        let idle = IdleInstance {
            func,
            inst,
            now: ctx.now(),
            setup: i.ready_at.saturating_sub(i.created),
            served: i.served,
        };
        match self.keep_alive.idle(&idle) {
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

    /// The functions waiting for room, in the order they asked.
    pub fn waiting(&self) -> impl Iterator<Item = FuncId> + '_ {
        self.waiting.iter().copied()
    }

    /// `func` no longer waits for room (it was given some).
    pub fn stop_waiting(&mut self, func: FuncId) {
        if self.is_waiting[func.ix()] {
            self.is_waiting[func.ix()] = false;
            self.waiting.retain(|&f| f != func);
        }
    }

    /// How many functions there are.
    pub fn functions(&self) -> usize {
        self.queues.len()
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

    /// Reclaims instance `inst` (idle), telling the placement and the ranking.
    pub fn reclaim(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        self.forget(ctx, inst);
        ctx.reclaim(inst);
    }

    /// Tells the placement and the ranking that `inst` is going (reclaimed, or crashed by the
    /// policy with `Ctx::crash`), so that what they count of it goes with it.
    pub fn forget(&mut self, ctx: &Ctx<'_>, inst: InstId) {
        self.placement.released(ctx, inst);
        self.ranking.released(ctx, inst);
    }
}
