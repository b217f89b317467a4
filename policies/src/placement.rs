//! Where the pool puts a new instance, in two separate decisions.
//!
//! - A [`Placement`] is the mechanism: whether an instance of a function fits a GPU now and what
//!   it looks like there (a whole GPU, an MPS client under its cap, a MIG slice, a FaST-GShare
//!   rectangle), plus the mechanism's own preference among GPUs, if it has one (SAGE prefers
//!   GPUs where the function's weights are resident; MIG a free slice over a reconfiguration).
//! - A [`Ranking`] orders the GPUs that fit and share the best preference: best fit by memory,
//!   least loaded, most loaded, spread, random, or lowest-numbered first. Every pool policy
//!   takes one by name, `[policy] placement = "least-loaded"`, from [`rankings`].
//!
//! Ties go to the lowest-numbered GPU, so a ranking never makes a run depend on anything but
//! the scenario and its seed. A new ranking is a function from what it sees of a GPU to a
//! [`Score`] (smaller is better) and one line in [`rankings`].

use gpushare_sim::policy::{Ctx, InstanceSpec};
use gpushare_sim::scenario::ConfigError;
use gpushare_sim::{FuncId, GpuId, InstId};
use std::collections::HashMap;

/// A GPU's rank: smaller is better; ties go to the lowest-numbered GPU.
pub type Score = (u64, u64);

/// An instance that fits a GPU: its spec there, and the mechanism's own preference (smaller is
/// better, compared before the ranking; `(0, 0)` when the mechanism has none).
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    pub spec: InstanceSpec,
    pub preference: Score,
}

impl Fit {
    /// A fit with no preference of the mechanism's own.
    pub fn plain(spec: InstanceSpec) -> Self {
        Fit {
            spec,
            preference: (0, 0),
        }
    }
}

/// The mechanism that decides whether and how an instance fits a GPU.
pub trait Placement {
    /// How an instance of `func` would sit on `gpu` now, if it fits.
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit>;

    /// Whether reclaiming idle instance `victim` would let an instance of `func` fit on its GPU.
    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool;

    /// Only empty GPUs can fit (whole-GPU instances): the pool then looks at those alone.
    fn only_empty_gpus(&self) -> bool {
        false
    }

    /// The pool chose `gpu` for `func`: make the room `fit` counted on (reconfigure, evict
    /// resident state, reserve shared memory) and give the instance's final spec.
    fn take(&mut self, _ctx: &mut Ctx<'_>, _func: FuncId, _gpu: GpuId, fit: Fit) -> InstanceSpec {
        fit.spec
    }

    /// The instance started where [`Placement::take`] prepared.
    fn placed(&mut self, _inst: InstId) {}

    /// The instance is about to be reclaimed.
    fn released(&mut self, _ctx: &Ctx<'_>, _inst: InstId) {}
}

/// Orders the GPUs an instance fits.
pub trait Ranking {
    /// `gpu`'s rank for a new instance of `func`; smaller is better.
    fn score(&mut self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Score;

    /// An instance started on the GPU the ranking chose (for rankings that count).
    fn placed(&mut self, _ctx: &Ctx<'_>, _inst: InstId) {}

    /// An instance is about to be reclaimed.
    fn released(&mut self, _ctx: &Ctx<'_>, _inst: InstId) {}

    /// A score no GPU can rank below, that only a GPU without instances can have, if the
    /// ranking knows one (and its scores have no side effects): [`choose`] then looks first
    /// among the GPUs without instances and stops at one with it, instead of ranking every
    /// GPU of the cluster.
    fn least_possible(&mut self, _ctx: &Ctx<'_>) -> Option<Score> {
        None
    }
}

/// A plain function is a ranking.
impl<F: FnMut(&Ctx<'_>, FuncId, GpuId) -> Score> Ranking for F {
    fn score(&mut self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Score {
        self(ctx, func, gpu)
    }
}

/// A registered ranking.
pub struct RankingInfo {
    /// The name `[policy] placement` takes.
    pub name: &'static str,
    /// One line: which GPU it prefers.
    pub summary: &'static str,
    /// Builds it for a run with `seed` (the scenario's).
    pub build: fn(seed: u64) -> Box<dyn Ranking>,
}

/// Every ranking `placement` can name.
pub fn rankings() -> &'static [RankingInfo] {
    &RANKINGS
}

static RANKINGS: [RankingInfo; 6] = [
    RankingInfo::new("first", "the lowest-numbered GPU that fits (first fit)", |_| {
        Box::new(first)
    }),
    RankingInfo::new(
        "best-fit",
        "the least free memory that fits (packing by memory)",
        |_| Box::new(best_fit),
    ),
    RankingInfo::new(
        "least-loaded",
        "the fewest instances, then the most free memory",
        |_| Box::new(LeastLoaded::default()),
    ),
    RankingInfo::new("most-loaded", "the most instances, then the least free memory", |_| {
        Box::new(most_loaded)
    }),
    RankingInfo::new(
        "spread",
        "the fewest of the function's instances, then the fewest",
        Spread::boxed,
    ),
    RankingInfo::new(
        "random",
        "a random GPU that fits, drawn from the run's seed",
        RandomRanking::boxed,
    ),
];

impl RankingInfo {
    /// A registry line.
    pub const fn new(name: &'static str, summary: &'static str, build: fn(u64) -> Box<dyn Ranking>) -> Self {
        RankingInfo { name, summary, build }
    }
}

/// The ranking called `name`, or an error at `[policy] placement` naming the valid ones.
pub fn ranking(name: &str, seed: u64) -> Result<Box<dyn Ranking>, ConfigError> {
    match rankings().iter().find(|r| r.name == name) {
        Some(r) => Ok((r.build)(seed)),
        None => Err(ConfigError::at(
            crate::pool::param_path("placement"),
            format!(
                "unknown placement `{name}`; valid: {}",
                rankings().iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn first(_: &Ctx<'_>, _: FuncId, _: GpuId) -> Score {
    (0, 0)
}

fn best_fit(ctx: &Ctx<'_>, _: FuncId, gpu: GpuId) -> Score {
    (ctx.gpus()[gpu.ix()].mem_free(), 0)
}

/// The fewest instances, then the most free memory.
#[derive(Default)]
struct LeastLoaded {
    /// The largest memory of any GPU of the cluster, once known.
    largest: Option<u64>,
}

impl Ranking for LeastLoaded {
    fn score(&mut self, ctx: &Ctx<'_>, _: FuncId, gpu: GpuId) -> Score {
        let g = &ctx.gpus()[gpu.ix()];
        (u64::from(g.instance_count), u64::MAX - g.mem_free())
    }

    /// An empty GPU with the largest memory of the cluster all free.
    fn least_possible(&mut self, ctx: &Ctx<'_>) -> Option<Score> {
        let largest = *self
            .largest
            .get_or_insert_with(|| ctx.gpus().iter().map(|g| g.mem_capacity).max().unwrap_or(0));
        Some((0, u64::MAX - largest))
    }
}

fn most_loaded(ctx: &Ctx<'_>, _: FuncId, gpu: GpuId) -> Score {
    let g = &ctx.gpus()[gpu.ix()];
    (u64::from(u32::MAX - g.instance_count), g.mem_free())
}

/// Counts each function's instances per GPU, and prefers the GPU with the fewest of the new
/// instance's function (as Kubernetes' topology spread does for replicas).
#[derive(Default)]
struct Spread {
    per_gpu: HashMap<(GpuId, FuncId), u32>,
}

impl Spread {
    fn boxed(_seed: u64) -> Box<dyn Ranking> {
        Box::new(Spread::default())
    }
}

impl Ranking for Spread {
    fn score(&mut self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Score {
        let same = self.per_gpu.get(&(gpu, func)).copied().unwrap_or(0);
        (u64::from(same), u64::from(ctx.gpus()[gpu.ix()].instance_count))
    }
    fn placed(&mut self, ctx: &Ctx<'_>, inst: InstId) {
        let i = ctx.instance(inst);
        *self.per_gpu.entry((i.gpu, i.func)).or_default() += 1;
    }
    fn released(&mut self, ctx: &Ctx<'_>, inst: InstId) {
        let i = ctx.instance(inst);
        if let Some(n) = self.per_gpu.get_mut(&(i.gpu, i.func)) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A uniformly random GPU among those that fit: each gets a random score.
struct RandomRanking(gpushare_sim::rng::Xoshiro256PlusPlus);

impl RandomRanking {
    fn boxed(seed: u64) -> Box<dyn Ranking> {
        Box::new(RandomRanking(gpushare_sim::rng::stream(seed, "placement", 0)))
    }
}

impl Ranking for RandomRanking {
    fn score(&mut self, _: &Ctx<'_>, _: FuncId, _: GpuId) -> Score {
        use rand::RngExt;
        (self.0.random::<u64>(), 0)
    }
}

/// The GPU for a new instance of `func`: among those `placement` fits, the best preference,
/// then the best rank, then the lowest number.
pub fn choose<P: Placement + ?Sized>(
    placement: &P,
    ranking: &mut dyn Ranking,
    ctx: &Ctx<'_>,
    func: FuncId,
) -> Option<(GpuId, Fit)> {
    if !placement.only_empty_gpus() {
        if let Some(least) = ranking.least_possible(ctx) {
            // Nothing ranks below this key, only GPUs without instances can have it, and
            // those are visited in GPU order: the first one found is the one the whole scan
            // below would choose. Without one, the scan decides.
            for gpu in ctx.empty_gpus() {
                if let Some(fit) = placement.fit(ctx, func, gpu) {
                    if fit.preference == (0, 0) && ranking.score(ctx, func, gpu) == least {
                        return Some((gpu, fit));
                    }
                }
            }
        }
    }
    let mut best: Option<((Score, Score), GpuId, Fit)> = None;
    let mut consider = |gpu: GpuId| {
        let Some(fit) = placement.fit(ctx, func, gpu) else {
            return false;
        };
        let key = (fit.preference, ranking.score(ctx, func, gpu));
        if best.as_ref().is_none_or(|b| key < b.0) {
            best = Some((key, gpu, fit));
        }
        // Nothing ranks below the least key, and later GPUs lose ties.
        key == ((0, 0), (0, 0))
    };
    if placement.only_empty_gpus() {
        for gpu in ctx.empty_gpus() {
            if consider(gpu) {
                break;
            }
        }
    } else {
        for gpu in (0..ctx.gpus().len() as u32).map(GpuId) {
            if consider(gpu) {
                break;
            }
        }
    }
    best.map(|(_, gpu, fit)| (gpu, fit))
}

/// `x` as a `u64` in the same order (for scores and preferences measured in floats); `-0.0`
/// ranks as `0.0`. NaN has no place in an order and must not be passed.
pub fn ordered(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}
