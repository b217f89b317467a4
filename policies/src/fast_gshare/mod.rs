//! `fast-gshare`: FaaS-oriented spatio-temporal GPU sharing (Gu, Zhu, Wang, Chadha, Gerndt,
//! "FaaS-oriented Spatio-Temporal GPU Sharing", ICPP '23; PAPERS.md §4).
//!
//! **Mechanism.** Every function instance is a client with an SM partition (its MPS
//! active-thread percentage) and a time quota. On each GPU the FaST-Manager ([`manager`]) hands
//! out time tokens: clients run only while holding one, several at once as long as their SM
//! partitions fit in 100 %. Admission per GPU: Σ quota × SM ≤ 1 and Σ memory ≤ capacity. Node
//! selection packs (SM × quota) rectangles into each GPU with Maximal Rectangles ([`maxrects`]),
//! best short side fit across GPUs. Model sharing stores a function's weights once per GPU
//! (zero-copy): later instances of the function on that GPU take only context and activations.
//! Each function's configuration (SM partition, quota) is given, or chosen from its
//! FaST-Profiler table (run in simulation, [`crate::profiler`]) as the most efficient cell —
//! the highest throughput per unit of (SM × quota). Queueing, scaling and keep-alive are the
//! shared [`crate::pool`] core.
//!
//! **Parameters** (`[policy]`), besides the pool's: `configs = { function = { sm = 12, quota =
//! 0.4, quota_limit = 1.0 } }` (SM in percent; quota limit defaults to the quota),
//! `model_sharing = true`, `autoscale = true`.
//!
//! **Autoscaling** (the FaST-Scheduler, `autoscale = true`, the default): every second each
//! function's rate over 10 s, raised by its rise over the 30 s rate, is covered by instances of
//! its most efficient profiled configuration, the residual by the cheapest configuration whose
//! throughput covers it; idle instances are removed greedily, largest first, while the rest still
//! cover the rate. The rate decides, not `keep_alive_s`: an idle instance goes at the first tick
//! at which the rest cover the predicted rate — for a sparse function, about 10 s after its last
//! arrival — so functions invoked less often than that start cold each time (on
//! `scenarios/azure_gpu_day.toml` this churns through thousands of instances an hour). With
//! `autoscale = false`, instances scale with the queue (the pool's rule) in each function's one
//! configuration and the keep-alive applies.
//!
//! **Simplifications** (beyond the manager's): an instance's capacity is its profiled throughput
//! alone (co-location slows it, which the next tick sees as backlog but not as lower capacity);
//! weights stay with the instance that loaded them (if it is reclaimed first, its co-located
//! siblings do not take the weights over in the accounting).

pub mod manager;
pub mod maxrects;

use crate::placement::{Fit, Placement, ordered};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled, param_path};
use crate::profiler;
use gpushare_sim::policy::{Ctx, InstanceSpec, Policy, Sharing};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{NS_PER_S, Nanos};
use gpushare_sim::world::InstState;
use gpushare_sim::{FuncId, GpuId, InstId, InvId, Scenario};
use maxrects::{MaxRects, Rect};
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// SM partition, percent.
    sm: f64,
    /// Time quota (request), a fraction.
    quota: f64,
    quota_limit: Option<f64>,
}

impl crate::params::ShowDefault for Config {
    fn show(&self) -> Option<String> {
        let limit = self
            .quota_limit
            .map_or(String::new(), |l| format!(", quota_limit = {l}"));
        Some(format!("{{ sm = {}, quota = {}{limit} }}", self.sm, self.quota))
    }
}

crate::params! {
    /// `fast-gshare`'s own parameters.
    pub(crate) struct FastParams {
        /// Per-function configurations, `{ function = { sm = 12, quota = 0.4, quota_limit = 1.0 } }` (SM partition in percent, time quota request and limit as fractions); unset: the profiler's most efficient cell.
        configs: BTreeMap<String, Config> = BTreeMap::new(),
        /// Instances of a function on one GPU share its weights.
        model_sharing: bool = true,
        /// The FaST-Scheduler starts and stops instances (10 s rate + 30 s trend, most efficient cell first, cheapest residual, greedy scale-down); off: instances start as queues grow.
        autoscale: bool = true,
    }
}

/// Rectangle packing with FaST's admission and model sharing.
pub struct FastPlacement {
    /// Per function: (SM partition, quota request, quota limit).
    configs: Vec<(f64, f64, f64)>,
    model_sharing: bool,
    /// Per GPU: the rectangles of its instances.
    used: Vec<Vec<(InstId, Rect)>>,
    /// Per (GPU, function): instances there (for model sharing).
    siblings: BTreeMap<(u32, u32), u32>,
    pending: Option<(usize, Rect, FuncId)>,
    /// A configuration for the next placement only (set by the autoscaler).
    next_config: Option<(f64, f64, f64)>,
    /// Each instance's configuration.
    inst_config: BTreeMap<InstId, (f64, f64, f64)>,
    /// Quota limits by instance, shared with the manager.
    limits: std::rc::Rc<std::cell::RefCell<BTreeMap<InstId, f64>>>,
    pending_limit: f64,
}

impl FastPlacement {
    fn config(&self, func: FuncId) -> (f64, f64, f64) {
        self.next_config.unwrap_or(self.configs[func.ix()])
    }

    fn spec(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> InstanceSpec {
        let (sm, quota, _) = self.config(func);
        let base = ctx.default_instance(func, gpu);
        let shared = self.model_sharing && self.siblings.get(&(gpu.0, func.0)).is_some_and(|&n| n > 0);
        let weights = if shared {
            ctx.profile(func, gpu).weights_bytes
        } else {
            0
        };
        InstanceSpec {
            memory: base.memory - weights,
            sm_cap: sm,
            time_quota: quota,
            gpu_fraction: sm * quota,
            ..base
        }
    }

    /// The best rectangle for `func` on GPU `g` (Maximal Rectangles' best short side fit) once
    /// `skip` is gone, if its memory and partition fit.
    fn rect_on(&self, ctx: &Ctx<'_>, func: FuncId, g: usize, skip: Option<InstId>) -> Option<((f64, f64), Rect)> {
        let (sm, quota, _) = self.config(func);
        let freed: u64 = skip
            .filter(|&v| ctx.instance(v).gpu.ix() == g)
            .map_or(0, |v| ctx.instance(v).memory);
        if self.spec(ctx, func, GpuId(g as u32)).memory > ctx.gpus()[g].mem_free() + freed {
            return None;
        }
        let rects: Vec<Rect> = self.used[g]
            .iter()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, r)| *r)
            .collect();
        MaxRects::from_used(&rects).find(sm, quota)
    }
}

impl Placement for FastPlacement {
    /// The mechanism's preference is the rectangle's fit: the tightest GPU first.
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        let (score, _) = self.rect_on(ctx, func, gpu.ix(), None)?;
        Some(Fit {
            spec: self.spec(ctx, func, gpu),
            preference: (ordered(score.0), ordered(score.1)),
        })
    }

    fn take(&mut self, ctx: &mut Ctx<'_>, func: FuncId, gpu: GpuId, fit: Fit) -> InstanceSpec {
        let (_, r) = self.rect_on(ctx, func, gpu.ix(), None).expect("it fitted");
        self.pending = Some((gpu.ix(), r, func));
        self.pending_limit = self.config(func).2;
        fit.spec
    }

    /// Only the victim's own GPU can gain room from it.
    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let g = ctx.instance(victim).gpu.ix();
        let best_elsewhere = |score: (f64, f64)| {
            (0..self.used.len()).any(|o| {
                self.rect_on(ctx, func, o, Some(victim))
                    .is_some_and(|(s, _)| if o < g { s <= score } else { s < score })
            })
        };
        self.rect_on(ctx, func, g, Some(victim))
            .is_some_and(|(s, _)| !best_elsewhere(s))
    }

    fn placed(&mut self, inst: InstId) {
        if let Some((g, r, func)) = self.pending.take() {
            self.used[g].push((inst, r));
            *self.siblings.entry((g as u32, func.0)).or_default() += 1;
            self.limits.borrow_mut().insert(inst, self.pending_limit);
            self.inst_config.insert(inst, self.config(func));
        }
    }

    fn released(&mut self, ctx: &Ctx<'_>, inst: InstId) {
        let i = ctx.instance(inst);
        let g = i.gpu.ix();
        self.used[g].retain(|(x, _)| *x != inst);
        if let Some(n) = self.siblings.get_mut(&(g as u32, i.func.0)) {
            *n -= 1;
        }
        self.limits.borrow_mut().remove(&inst);
        self.inst_config.remove(&inst);
    }
}

/// A configuration: (SM partition, quota, throughput alone in requests/s).
type Cell = (f64, f64, f64);

/// The FaST-Scheduler's autoscaler: every second, each function's request rate over the last
/// 10 s, raised by its rise over the 30 s rate (the trend), is covered by instances of the most
/// efficient configuration, the residual by the cheapest configuration that covers it; idle
/// instances are removed greedily (largest first) while the rest still cover the rate.
struct Autoscaler {
    /// Per function: arrivals in each of the last 30 seconds (ring indexed by second).
    buckets: Vec<[u32; 30]>,
    second: u64,
    /// Per function: its profiled cells by area (cheapest first), and the most efficient one.
    cells: Vec<Vec<Cell>>,
    efficient: Vec<Cell>,
    ticking: bool,
}

impl Autoscaler {
    fn advance(&mut self, now: Nanos) {
        let sec = now / NS_PER_S;
        while self.second < sec {
            self.second += 1;
            let k = (self.second % 30) as usize;
            for b in &mut self.buckets {
                b[k] = 0;
            }
        }
    }

    /// Predicted rate of `f` from the complete seconds before now.
    fn predicted(&self, f: usize) -> f64 {
        let b = &self.buckets[f];
        let last = |n: u64| {
            (1..=n)
                .map(|d| f64::from(b[((self.second + 30 - d) % 30) as usize]))
                .sum::<f64>()
                / n as f64
        };
        let (r10, r30) = (last(10), last(29));
        r10 + (r10 - r30).max(0.0)
    }
}

/// The FaST-GShare policy.
pub struct FastGShare {
    scaler: Option<Autoscaler>,
}

impl FastGShare {
    fn tick(&mut self, pool: &mut Pool<FastPlacement>, ctx: &mut Ctx<'_>) {
        let Some(sc) = self.scaler.as_mut() else { return };
        sc.advance(ctx.now());
        let mut any = false;
        for f in 0..sc.buckets.len() {
            let func = FuncId(f as u32);
            let predicted = sc.predicted(f);
            let mine: Vec<(InstId, Cell)> = pool
                .placement
                .inst_config
                .iter()
                .filter(|(i, _)| ctx.instance(**i).func == func)
                .map(|(i, c)| (*i, *c))
                .collect();
            let mut capacity: f64 = mine.iter().map(|(_, c)| c.2).sum();
            any |= predicted > 0.0 || !mine.is_empty() || pool.queue_len(func) > 0;
            let eff = sc.efficient[f];
            if predicted > capacity || (mine.is_empty() && pool.queue_len(func) > 0) {
                let deficit = (predicted - capacity).max(1e-9);
                let n = (deficit / eff.2).floor() as usize;
                let residual = deficit - n as f64 * eff.2;
                let mut plan = vec![eff; n];
                if residual > 1e-9 {
                    plan.push(*sc.cells[f].iter().find(|c| c.2 >= residual).unwrap_or(&eff));
                }
                for c in plan {
                    pool.placement.next_config = Some((c.0, c.1, c.1));
                    let ok = pool.start_now(ctx, func);
                    pool.placement.next_config = None;
                    if !ok {
                        break;
                    }
                    capacity += c.2;
                }
            } else {
                // Greedy scale-down: largest idle instances first, while the rest cover the rate.
                let mut idle: Vec<(InstId, Cell)> = mine
                    .into_iter()
                    .filter(|(i, _)| ctx.instance(*i).state == InstState::Idle)
                    .collect();
                idle.sort_by(|a, b| (b.1.0 * b.1.1).total_cmp(&(a.1.0 * a.1.1)).then(a.0.cmp(&b.0)));
                for (inst, c) in idle {
                    if capacity - c.2 >= predicted && pool.queue_len(func) == 0 {
                        pool.reclaim(ctx, inst);
                        capacity -= c.2;
                    }
                }
            }
        }
        let sc = self.scaler.as_mut().expect("checked");
        sc.ticking = any;
        if any {
            ctx.set_timer(ctx.now() + NS_PER_S, 0);
        }
    }
}

impl FastGShare {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, FastParams) = crate::pool::split_params(spec)?;
        crate::pool::check_function_keys(scenario, &p.configs, "configs")?;
        let mut configs = Vec::with_capacity(scenario.functions.len());
        // Profiles are profiled once each, however many functions share them.
        let mut chosen: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (i, f) in scenario.functions.iter().enumerate() {
            let c = match p.configs.get(&f.name) {
                Some(c) => {
                    let at = param_path("configs").key(&f.name);
                    if !(c.sm > 0.0 && c.sm <= 100.0) {
                        return Err(ConfigError::at(
                            at.key("sm"),
                            format!("must be a percentage in (0, 100], got {}", c.sm),
                        ));
                    }
                    if !(c.quota > 0.0 && c.quota <= 1.0) {
                        return Err(ConfigError::at(
                            at.key("quota"),
                            format!("must be in (0, 1], got {}", c.quota),
                        ));
                    }
                    let limit = c.quota_limit.unwrap_or(c.quota);
                    if !(limit >= c.quota && limit <= 1.0) {
                        return Err(ConfigError::at(
                            at.key("quota_limit"),
                            format!("must be in [quota, 1], got {limit}"),
                        ));
                    }
                    (c.sm / 100.0, c.quota, limit)
                }
                None => {
                    let key = format!("{:?}", f.profile);
                    let (sm, quota) = match chosen.get(&key) {
                        Some(&v) => v,
                        None => {
                            let grid = profiler::profile(scenario, i, &profiler::QUOTAS, &profiler::SM_SHARES, 20.0)
                                .map_err(|e| {
                                    ConfigError::at(
                                        param_path("configs"),
                                        format!("profiling `{}` failed: {e}", f.name),
                                    )
                                })?;
                            let best = grid
                                .iter()
                                .max_by(|a, b| (a.qps / (a.sm * a.quota)).total_cmp(&(b.qps / (b.sm * b.quota))))
                                .expect("a non-empty grid");
                            chosen.insert(key, (best.sm, best.quota));
                            (best.sm, best.quota)
                        }
                    };
                    (sm, quota, quota)
                }
            };
            configs.push(c);
        }
        let limits = std::rc::Rc::new(std::cell::RefCell::new(BTreeMap::new()));
        let placement = FastPlacement {
            configs,
            model_sharing: p.model_sharing,
            used: vec![Vec::new(); scenario.gpus.len()],
            siblings: BTreeMap::new(),
            pending: None,
            next_config: None,
            inst_config: BTreeMap::new(),
            limits,
            pending_limit: 1.0,
        };
        let pool = Pool::new(&pool, placement, scenario)?;
        let scaler = if p.autoscale {
            Some(Autoscaler::new(scenario)?)
        } else {
            None
        };
        Ok(Pooled::boxed(&spec.name, pool, FastGShare { scaler }))
    }
}

impl Autoscaler {
    /// Profiles each function's cells (once per profile) for the autoscaler.
    fn new(scenario: &Scenario) -> Result<Self, ConfigError> {
        let mut cells = Vec::new();
        let mut efficient = Vec::new();
        let mut by_profile: BTreeMap<String, (Vec<Cell>, Cell)> = BTreeMap::new();
        for (i, f) in scenario.functions.iter().enumerate() {
            let key = format!("{:?}", f.profile);
            if !by_profile.contains_key(&key) {
                let grid =
                    profiler::profile(scenario, i, &profiler::QUOTAS, &profiler::SM_SHARES, 20.0).map_err(|e| {
                        ConfigError::at(param_path("autoscale"), format!("profiling `{}` failed: {e}", f.name))
                    })?;
                let mut c: Vec<Cell> = grid.iter().map(|p| (p.sm, p.quota, p.qps)).collect();
                c.sort_by(|a, b| (a.0 * a.1).total_cmp(&(b.0 * b.1)).then(b.2.total_cmp(&a.2)));
                let eff = *c
                    .iter()
                    .max_by(|a, b| (a.2 / (a.0 * a.1)).total_cmp(&(b.2 / (b.0 * b.1))))
                    .expect("non-empty");
                by_profile.insert(key.clone(), (c, eff));
            }
            let (c, eff) = &by_profile[&key];
            cells.push(c.clone());
            efficient.push(*eff);
        }
        Ok(Autoscaler {
            buckets: vec![[0; 30]; scenario.functions.len()],
            second: 0,
            cells,
            efficient,
            ticking: false,
        })
    }
}
impl PoolPolicy for FastGShare {
    type Placement = FastPlacement;
    fn sharing(&self, pool: &Pool<FastPlacement>) -> Box<dyn Sharing> {
        Box::new(manager::FastManager::with_limits(pool.placement.limits.clone()))
    }
    fn on_arrival(&mut self, pool: &mut Pool<FastPlacement>, ctx: &mut Ctx<'_>, inv: InvId) {
        let Some(sc) = self.scaler.as_mut() else {
            pool.arrive(ctx, inv);
            return;
        };
        sc.advance(ctx.now());
        let f = ctx.invocation(inv).func.ix();
        sc.buckets[f][(sc.second % 30) as usize] += 1;
        if !sc.ticking {
            sc.ticking = true;
            ctx.set_timer(ctx.now() + NS_PER_S, 0);
        }
        // The FaST-Scheduler starts instances, not the queue.
        pool.enqueue(ctx, inv);
    }
    fn on_timer(&mut self, pool: &mut Pool<FastPlacement>, ctx: &mut Ctx<'_>, _token: u64) {
        self.tick(pool, ctx);
    }
}
