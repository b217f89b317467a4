//! `mps`: spatial sharing with NVIDIA's Multi-Process Service.
//!
//! **Mechanism** (NVIDIA MPS documentation; PAPERS.md, "NVIDIA mechanisms"). Every instance is an
//! MPS client: the kernels of clients on one GPU run at the same time, each limited to its
//! active-thread percentage (`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`) of the SMs; the caps of the
//! clients on a GPU may add up to more than 100 % (`max_sm_sum` > 1), and then running kernels
//! share the SMs max-min fairly under their caps ([`CappedShares`]). Co-running kernels slow each
//! other through memory bandwidth and its queueing — more for the small client than for the
//! large one, as the published DenseNet-121 measurements show (the contention model,
//! docs/gpu-model.md; `tests/mps.rs` checks the asymmetry). At most 48 clients per GPU. Queueing, scaling and
//! keep-alive are the shared [`crate::pool`] core; placement chooses among the GPUs with room
//! for the client's cap, its memory and another client.
//!
//! **Defaults are an MPS deployment's**: every client at 100 % active threads (MPS's own
//! default), as many clients per GPU as memory and the 48-client limit allow, spread over the
//! GPUs — so functions share GPUs as soon as there are more instances than GPUs, and never
//! while GPUs sit empty.
//!
//! **Parameters** (`[policy]`), besides the pool's (`keep_alive_s`, `max_instances`,
//! `max_queue`, `evict_idle`):
//! - `active_thread_percentage` (default 100): every client's cap, percent;
//! - `caps = { function = percent, … }`: per-function caps;
//! - `max_sm_sum` (default unlimited): the most Σ caps a GPU may hold (above 1 oversubscribes);
//! - `max_clients` (default and limit 48: the MPS server's client limit on Volta and later);
//! - `placement` (the pool's; default here `least-loaded`): the GPU with the fewest clients (then
//!   the most free memory), as a cluster scheduler's default least-allocated scoring spreads
//!   replicas; `best-fit` packs by memory; any ranking of [`crate::placement::rankings`];
//! - `memory_limit_mib` (`CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`): a function whose footprint exceeds
//!   it is refused when the scenario loads;
//! - `estimate = [function, …]`: long-running (training) functions whose clients start at their
//!   cap and, once the ETRI-style usage estimator ([`gpushare_sim::usage_estimator`], sampling the
//!   client's kernel-busy fraction every second) trusts its estimate, get an active-thread
//!   percentage of the estimated usage plus `estimate_headroom` (default 0.1);
//!   `estimate_window` (300 samples) and `estimate_patience` (60) tune the estimator. Each
//!   decision is listed in `summary.json`'s `policy_report`.
//!
//! - `fault_rate_per_hour` (default 0): fatal faults per client per hour of running kernels
//!   (drawn each second from a seeded stream); a faulting client crashes and its in-flight
//!   invocation `failed`; `fault_coupling` (default false): MPS gives no fault isolation, so a
//!   crash takes down every client running kernels on that GPU with it.
//!
//! **Simplifications.** Each client keeps its own context memory (the MPS server's shared
//! context is not modelled); faults are drawn at 1 s granularity; GPU time is charged by cap
//! (`gpu_fraction` = cap).

use crate::placement::{Fit, Placement};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled, param_path};
use gpushare_sim::policy::{CappedShares, Ctx, InstanceSpec, Policy, Sharing};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{NS_PER_S, Nanos};
use gpushare_sim::usage_estimator::{EstimatorConfig, UsageEstimator};
use gpushare_sim::world::InstState;
use gpushare_sim::{FuncId, GpuId, InstId, InvId, Scenario};
use std::collections::BTreeMap;

/// The MPS server's client limit (Volta and later).
pub const MPS_MAX_CLIENTS: u32 = 48;

crate::params! {
    /// `mps`'s own parameters.
    pub struct MpsParams {
        /// Every client's cap, percent (`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`; MPS's own default is 100).
        active_thread_percentage: f64 = 100.0,
        /// Per-function caps, `{ function = percent }`.
        caps: BTreeMap<String, f64> = BTreeMap::new(),
        /// The most Σ caps a GPU may hold (above 1 oversubscribes; `inf`: no limit).
        max_sm_sum: f64 = f64::INFINITY,
        /// Clients per GPU (the MPS server's limit on Volta and later is 48).
        max_clients: u32 = MPS_MAX_CLIENTS,
        /// `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`, MiB: a function whose footprint exceeds it is refused when the scenario loads.
        memory_limit_mib: Option<f64> = None,
        /// Long-running (training) functions whose caps come from the ETRI-style usage estimator.
        estimate: Vec<String> = Vec::new(),
        /// Headroom added to an estimated usage, as a fraction.
        estimate_headroom: f64 = 0.1,
        /// Usage samples (one per second) the estimator keeps.
        estimate_window: usize = 300,
        /// Samples the estimator waits for before trusting its estimate.
        estimate_patience: usize = 60,
        /// Fatal faults per client per hour of running kernels.
        fault_rate_per_hour: f64 = 0.0,
        /// MPS gives no fault isolation: a crash takes down every client running kernels on its GPU.
        fault_coupling: bool = false,
    }
}

/// MPS clients under the SM-cap, client and memory limits.
pub struct MpsClients {
    /// Per function: its cap as a fraction.
    caps: Vec<f64>,
    max_sm_sum: f64,
    max_clients: u32,
}

impl MpsClients {
    /// MPS's defaults for `scenario`: every client at 100 % active threads, no limit on Σ caps,
    /// 48 clients per GPU.
    pub fn new(scenario: &Scenario) -> Self {
        MpsClients {
            caps: vec![1.0; scenario.functions.len()],
            max_sm_sum: f64::INFINITY,
            max_clients: MPS_MAX_CLIENTS,
        }
    }

    fn spec(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> InstanceSpec {
        let cap = self.caps[func.ix()];
        InstanceSpec {
            sm_cap: cap,
            gpu_fraction: cap,
            ..ctx.default_instance(func, gpu)
        }
    }

    /// Whether a client of `func` fits `gpu` once `freed` (memory, cap, clients) is given back.
    fn fits(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId, freed: (u64, f64, u32)) -> bool {
        let g = &ctx.gpus()[gpu.ix()];
        let spec = self.spec(ctx, func, gpu);
        g.instance_count - freed.2 < self.max_clients
            && spec.memory <= g.mem_free() + freed.0
            && g.sm_cap_sum - freed.1 + spec.sm_cap <= self.max_sm_sum + 1e-9
    }
}

impl Placement for MpsClients {
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        self.fits(ctx, func, gpu, (0, 0.0, 0))
            .then(|| Fit::plain(self.spec(ctx, func, gpu)))
    }

    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let v = ctx.instance(victim);
        self.fits(ctx, func, v.gpu, (v.memory, v.sm_cap, 1))
    }
}

/// Usage estimation of one client (ETRI, [`gpushare_sim::usage_estimator`]).
struct Tracked {
    estimator: UsageEstimator,
    created: Nanos,
    busy: u64,
    applied: bool,
}

/// The MPS policy.
pub struct Mps {
    /// Functions whose clients' caps come from usage estimation.
    estimated: Vec<bool>,
    headroom: f64,
    estimator: EstimatorConfig,
    tracked: BTreeMap<InstId, Tracked>,
    ticking: bool,
    report: Vec<String>,
    /// Fatal faults per client per second of running kernels, and whether they take the
    /// client's co-runners on the GPU down too.
    fault_rate: f64,
    fault_coupling: bool,
    rng: gpushare_sim::rng::Xoshiro256PlusPlus,
    crashes: (u64, u64),
}

impl Mps {
    /// Draws this second's fatal faults among clients running kernels.
    fn faults(&mut self, pool: &mut Pool<MpsClients>, ctx: &mut Ctx<'_>) {
        use rand::RngExt;
        let mut victims: Vec<InstId> = Vec::new();
        for g in ctx.gpus() {
            let running: Vec<InstId> = g.phases().iter().filter(|p| p.is_kernel()).map(|p| p.inst).collect();
            let mut hit = false;
            for &inst in &running {
                if self.rng.random::<f64>() < self.fault_rate {
                    hit = true;
                    if !victims.contains(&inst) {
                        victims.push(inst);
                        self.crashes.0 += 1;
                    }
                }
            }
            if hit && self.fault_coupling {
                for inst in running {
                    if !victims.contains(&inst) {
                        victims.push(inst);
                        self.crashes.1 += 1;
                    }
                }
            }
        }
        let mut funcs = Vec::new();
        for inst in victims {
            funcs.push(ctx.instance(inst).func);
            self.tracked.remove(&inst);
            pool.forget(ctx, inst);
            ctx.crash(inst);
        }
        for f in funcs {
            pool.scale_up(ctx, f);
        }
    }

    /// Every second: one usage sample per estimated client; a trusted estimate sets its cap.
    fn tick(&mut self, pool: &mut Pool<MpsClients>, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        let ids: Vec<InstId> = self.tracked.keys().copied().collect();
        for inst in ids {
            let i = ctx.instance(inst);
            let t = self.tracked.get_mut(&inst).expect("tracked");
            if i.state == InstState::Free || i.created != t.created {
                self.tracked.remove(&inst);
                continue;
            }
            if i.state == InstState::Starting {
                continue;
            }
            let func = i.func;
            let busy = ctx.kernel_busy_ns(inst);
            let t = self.tracked.get_mut(&inst).expect("tracked");
            let sample = (busy - t.busy) as f64 / NS_PER_S as f64;
            t.busy = busy;
            let e = t.estimator.observe(sample);
            if e.trusted && !t.applied {
                t.applied = true;
                let pct = e.active_thread_percentage(self.headroom);
                let name = ctx.function_name(func).to_string();
                ctx.set_sm_cap(inst, f64::from(pct) / 100.0);
                self.report.push(format!(
                    "{name}: usage estimated at {:.3} (coverage {:.2}) after {:.0} s; active-thread percentage set to {pct} %",
                    e.usage,
                    e.coverage,
                    (now - t.created) as f64 / 1e9
                ));
            }
        }
        if self.fault_rate > 0.0 {
            self.faults(pool, ctx);
        }
        self.ticking = !self.tracked.is_empty() || self.fault_rate > 0.0;
        if self.ticking {
            ctx.set_timer(now + NS_PER_S, 0);
        }
    }

    fn track(&mut self, ctx: &mut Ctx<'_>, inst: InstId) {
        let i = ctx.instance(inst);
        if self.estimated[i.func.ix()] && !self.tracked.contains_key(&inst) {
            let created = i.created;
            self.tracked.insert(
                inst,
                Tracked {
                    estimator: UsageEstimator::new(self.estimator),
                    created,
                    busy: 0,
                    applied: false,
                },
            );
            if !self.ticking {
                self.ticking = true;
                ctx.set_timer(ctx.now() + NS_PER_S, 0);
            }
        }
    }
}

impl Mps {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, MpsParams) = crate::pool::split_params(spec)?;
        let caps = crate::pool::per_function_percent(
            scenario,
            p.active_thread_percentage,
            "active_thread_percentage",
            &p.caps,
            "caps",
        )?;
        if p.max_sm_sum.is_nan() || p.max_sm_sum < 1.0 {
            return Err(ConfigError::at(
                param_path("max_sm_sum"),
                format!("must be at least 1.0 (or inf), got {}", p.max_sm_sum),
            ));
        }
        if p.max_clients == 0 || p.max_clients > MPS_MAX_CLIENTS {
            return Err(ConfigError::at(
                param_path("max_clients"),
                format!(
                    "must be 1–{MPS_MAX_CLIENTS} (the MPS client limit), got {}",
                    p.max_clients
                ),
            ));
        }
        if let Some(limit) = p.memory_limit_mib {
            for f in &scenario.functions {
                let dev = &scenario.devices[scenario.gpus[0].1];
                let need = f.profile.compile(&f.reference, dev, scenario.storage_gbps).footprint() as f64
                    / (1u64 << 20) as f64;
                if need > limit {
                    return Err(ConfigError::at(
                        param_path("memory_limit_mib"),
                        format!(
                            "function `{}` needs {need:.0} MiB, above the {limit} MiB client limit",
                            f.name
                        ),
                    ));
                }
            }
        }
        let mut estimated = vec![false; scenario.functions.len()];
        for (k, name) in p.estimate.iter().enumerate() {
            let i = crate::pool::function_index(scenario, name, param_path("estimate").index(k))?;
            estimated[i] = true;
        }
        if !(0.0..=1.0).contains(&p.estimate_headroom) {
            return Err(ConfigError::at(
                param_path("estimate_headroom"),
                format!("must be in [0, 1], got {}", p.estimate_headroom),
            ));
        }
        if !(p.fault_rate_per_hour.is_finite() && p.fault_rate_per_hour >= 0.0 && p.fault_rate_per_hour <= 3600.0) {
            return Err(ConfigError::at(
                param_path("fault_rate_per_hour"),
                format!("must be in [0, 3600], got {}", p.fault_rate_per_hour),
            ));
        }
        if p.estimate_window < 4 {
            return Err(ConfigError::at(
                param_path("estimate_window"),
                "must be at least 4 samples",
            ));
        }
        let estimator = EstimatorConfig {
            window: p.estimate_window,
            patience: p.estimate_patience,
            ..EstimatorConfig::default()
        };
        let placement = MpsClients {
            caps,
            max_sm_sum: p.max_sm_sum,
            max_clients: p.max_clients,
        };
        let pool = Pool::new(&pool, placement, scenario)?;
        let policy = Mps {
            estimated,
            headroom: p.estimate_headroom,
            estimator,
            tracked: BTreeMap::new(),
            ticking: false,
            report: Vec::new(),
            fault_rate: p.fault_rate_per_hour / 3600.0,
            fault_coupling: p.fault_coupling,
            rng: gpushare_sim::rng::stream(scenario.seed, "mps-faults", 0),
            crashes: (0, 0),
        };
        Ok(Pooled::boxed(&spec.name, pool, policy))
    }
}

impl PoolPolicy for Mps {
    type Placement = MpsClients;
    fn sharing(&self, _pool: &Pool<MpsClients>) -> Box<dyn Sharing> {
        Box::new(CappedShares)
    }
    fn on_arrival(&mut self, pool: &mut Pool<MpsClients>, ctx: &mut Ctx<'_>, inv: InvId) {
        if self.fault_rate > 0.0 && !self.ticking {
            self.ticking = true;
            ctx.set_timer(ctx.now() + NS_PER_S, 0);
        }
        pool.arrive(ctx, inv);
    }
    fn on_instance_ready(&mut self, pool: &mut Pool<MpsClients>, ctx: &mut Ctx<'_>, inst: InstId) {
        self.track(ctx, inst);
        pool.idle(ctx, inst);
    }
    fn on_idle_expired(&mut self, pool: &mut Pool<MpsClients>, ctx: &mut Ctx<'_>, inst: InstId) {
        self.tracked.remove(&inst);
        pool.expired(ctx, inst);
    }
    fn on_timer(&mut self, pool: &mut Pool<MpsClients>, ctx: &mut Ctx<'_>, _token: u64) {
        self.tick(pool, ctx);
    }
    fn report(&self, _pool: &Pool<MpsClients>) -> Vec<String> {
        let mut r = self.report.clone();
        if self.fault_rate > 0.0 {
            r.push(format!(
                "fatal faults: {} clients crashed, {} more crashed with them (fault coupling)",
                self.crashes.0, self.crashes.1
            ));
        }
        r
    }
}
