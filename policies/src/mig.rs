//! `mig`: Multi-Instance GPU slices (A100, H100, H200).
//!
//! **Mechanism** (NVIDIA MIG user guide; PAPERS.md, "NVIDIA mechanisms"). A GPU is split into up
//! to 7 isolated GPU instances with dedicated SMs, L2 and memory, in fixed profiles (`Ng.Mgb`: N
//! of 7 compute slices, a fixed share of the 8 memory slices). Each function instance runs in a
//! free slice of its function's profile, with that slice's SMs and memory to itself: no
//! interference from other slices. A GPU's layout can change only while the GPU is idle, and the
//! change costs `reconfigure_s`, added to the setup of the instance that caused it. Queueing,
//! scaling and keep-alive are the shared [`crate::pool`] core.
//!
//! **Placement.** A free slice of the profile on the lowest-numbered GPU that has one; else an
//! idle GPU is reconfigured: its slices are kept if the profile fits beside them (else cleared),
//! and as many slices of the profile as fit are added. `layout` gives every GPU an initial
//! layout.
//!
//! **Parameters** (`[policy]`), besides the pool's: `profiles = { function = "3g.40gb", … }`
//! (default: the smallest profile whose memory holds the function), `layout = ["3g.40gb",
//! "4g.40gb"]` (default: none, configured on demand), `reconfigure_s` (default
//! 2 s: *assumed*, MIG reconfiguration takes seconds; to be measured by calibration).
//!
//! **Profiles** (NVIDIA MIG user guide, supported profiles tables): H100 80 GB 1g.10gb, 1g.20gb,
//! 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb; A100 80 GB 1g.10gb, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb,
//! 7g.80gb; A100 40 GB 1g.5gb, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb; H200 141 GB 1g.18gb,
//! 1g.35gb, 2g.35gb, 3g.71gb, 4g.71gb, 7g.141gb.
//!
//! **Geometry** ([`profiles_for`]). A slice has its profile's SMs (real counts, not N/7: an A100
//! 7g slice has 98 of the 108 SMs, an H100 1g.20gb 26), and owns its memory slices' share (of
//! 8) of the DRAM bandwidth and of the L2: each slice is its own partition of the contention
//! model ([`gpushare_sim::contention`]), so a memory-bound kernel on a one-memory-slice profile
//! gets an eighth of the bandwidth.
//!
//! **Simplifications.** The placement rules of the hardware (which start slices each profile may
//! occupy) are reduced to the sums of compute (≤ 7) and memory (≤ 8) slices; GPU-seconds are
//! charged by compute slices (N/7).

use crate::placement::{Fit, Placement};
use crate::pool::{Pool, PoolParams, PoolPolicy, Pooled, param_path};
use gpushare_sim::contention::PartitionShare;
use gpushare_sim::policy::{ActivePhase, Ctx, InstanceSpec, Partition, Policy, Sharing};
use gpushare_sim::scenario::{ConfigError, PolicySpec};
use gpushare_sim::time::{Nanos, secs_to_ns};
use gpushare_sim::{FuncId, GpuId, InstId, Scenario};
use std::collections::BTreeMap;

/// One MIG profile: name, compute slices (of 7), memory slices (of 8), its SMs, memory in MiB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MigProfile {
    pub name: &'static str,
    pub compute: u32,
    pub memory_slices: u32,
    pub sms: u32,
    pub memory_mib: f64,
}

/// The index of MIG profile `name` in `table` (the profiles of `device`), or an error that
/// lists the valid ones.
pub fn find_profile(table: &[MigProfile], name: &str, device: &str) -> Result<usize, String> {
    table.iter().position(|p| p.name == name).ok_or_else(|| {
        let valid: Vec<&str> = table.iter().map(|p| p.name).collect();
        format!("unknown MIG profile `{name}` on {device}; valid: {}", valid.join(", "))
    })
}

/// A GPU's 7 compute and 8 memory slices as a layout takes them.
#[derive(Debug, Default)]
pub struct SliceBudget {
    compute: u32,
    memory: u32,
}

impl SliceBudget {
    /// Takes `profile`'s slices; false when the layout no longer fits the GPU.
    pub fn take(&mut self, profile: &MigProfile) -> bool {
        self.compute += profile.compute;
        self.memory += profile.memory_slices;
        self.compute <= 7 && self.memory <= 8
    }
}

impl MigProfile {
    /// Its partition of a device with `device_sms` SMs: its SMs, and its memory slices' share
    /// of the bandwidth and the L2.
    pub fn share(&self, device_sms: u32) -> PartitionShare {
        let memory = f64::from(self.memory_slices) / 8.0;
        PartitionShare {
            sms: f64::from(self.sms) / f64::from(device_sms),
            bandwidth: memory,
            l2: memory,
        }
    }
}

const fn p(name: &'static str, compute: u32, memory_slices: u32, sms: u32, memory_gib: f64) -> MigProfile {
    MigProfile {
        name,
        compute,
        memory_slices,
        sms,
        memory_mib: memory_gib * 1024.0,
    }
}

/// The MIG profiles of a MIG geometry (a built-in device's name, [`DeviceSpec::mig`]), smallest
/// first; empty for devices without MIG. SM counts as `nvidia-smi mig -lgip` lists them (the MIG
/// user guide gives fractions only): A100 1g = 14 of 108 SMs and 7g = 98 (10 SMs unused under
/// MIG), H100/H200 1g = 16, 1g with two memory slices = 26, 2g = 32, 3g = 60, 4g = 64, 7g = 132.
pub fn profiles_for(geometry: &str) -> &'static [MigProfile] {
    const H100: [MigProfile; 6] = [
        p("1g.10gb", 1, 1, 16, 9.75),
        p("1g.20gb", 1, 2, 26, 19.5),
        p("2g.20gb", 2, 2, 32, 19.5),
        p("3g.40gb", 3, 4, 60, 39.25),
        p("4g.40gb", 4, 4, 64, 39.25),
        p("7g.80gb", 7, 8, 132, 79.25),
    ];
    const A100_80: [MigProfile; 6] = [
        p("1g.10gb", 1, 1, 14, 9.75),
        p("1g.20gb", 1, 2, 14, 19.5),
        p("2g.20gb", 2, 2, 28, 19.5),
        p("3g.40gb", 3, 4, 42, 39.25),
        p("4g.40gb", 4, 4, 56, 39.25),
        p("7g.80gb", 7, 8, 98, 79.25),
    ];
    const A100_40: [MigProfile; 6] = [
        p("1g.5gb", 1, 1, 14, 4.75),
        p("1g.10gb", 1, 2, 14, 9.75),
        p("2g.10gb", 2, 2, 28, 9.75),
        p("3g.20gb", 3, 4, 42, 19.62),
        p("4g.20gb", 4, 4, 56, 19.62),
        p("7g.40gb", 7, 8, 98, 39.38),
    ];
    const H200: [MigProfile; 6] = [
        p("1g.18gb", 1, 1, 16, 16.5),
        p("1g.35gb", 1, 2, 26, 32.5),
        p("2g.35gb", 2, 2, 32, 32.5),
        p("3g.71gb", 3, 4, 60, 65.5),
        p("4g.71gb", 4, 4, 64, 65.5),
        p("7g.141gb", 7, 8, 132, 131.0),
    ];
    match geometry {
        "h100-80gb" => &H100,
        "a100-80gb" => &A100_80,
        "a100-40gb" => &A100_40,
        "h200-141gb" => &H200,
        _ => &[],
    }
}

crate::params! {
    /// `mig`'s own parameters.
    pub(crate) struct MigParams {
        /// Each function's slice profile, `{ function = "3g.40gb" }` (unset: the smallest that fits).
        profiles: BTreeMap<String, String> = BTreeMap::new(),
        /// What a layout change costs, s; added to the setup of the instance that caused it.
        reconfigure_s: f64 = 2.0,
        /// Every GPU's initial layout, e.g. `["3g.40gb", "3g.40gb"]` (unset: none until placements create one).
        layout: Vec<String> = Vec::new(),
    }
}

#[derive(Clone, Debug)]
struct Slice {
    profile: usize,
    occupant: Option<InstId>,
}

/// Slices per GPU and which instance holds each.
pub struct MigSlices {
    /// Per function: its profile index (all GPUs share one device type).
    profile_of: Vec<usize>,
    table: &'static [MigProfile],
    layouts: Vec<Vec<Slice>>,
    reconfigure: Nanos,
    /// Per GPU: when its current reconfiguration ends (its slices exist from then on).
    ready_at: Vec<Nanos>,
    /// The slice chosen by the last `place`, to record the occupant in `placed`.
    pending: Option<(usize, usize)>,
    reconfigurations: u64,
}

impl MigSlices {
    /// The instance's spec in slice `slot` of `gpu`'s layout; its setup waits for the GPU's
    /// reconfiguration, if one is under way.
    fn spec(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId, slot: usize) -> InstanceSpec {
        let prof = &self.table[self.profile_of[func.ix()]];
        let base = ctx.default_instance(func, gpu);
        let share = prof.share(ctx.device(gpu).sms);
        InstanceSpec {
            memory: (prof.memory_mib * (1u64 << 20) as f64) as u64,
            setup: base.setup + self.ready_at[gpu.ix()].saturating_sub(ctx.now()),
            sm_cap: share.sms,
            time_quota: 1.0,
            gpu_fraction: f64::from(prof.compute) / 7.0,
            partition: Partition {
                id: slot as u8 + 1,
                share,
            },
        }
    }

    fn used(&self, g: usize) -> (u32, u32) {
        self.layouts[g].iter().fold((0, 0), |(c, m), s| {
            (
                c + self.table[s.profile].compute,
                m + self.table[s.profile].memory_slices,
            )
        })
    }
}

impl MigSlices {
    /// A free slice of `func`'s profile on GPU `g`.
    fn free_slice(&self, func: FuncId, g: usize) -> Option<usize> {
        let want = self.profile_of[func.ix()];
        self.layouts[g]
            .iter()
            .position(|s| s.profile == want && s.occupant.is_none())
    }

    /// Reconfigures idle GPU `g` for `func`'s profile: keeps its slices if the profile still
    /// fits beside them, else starts over; then adds as many slices of the profile as fit.
    /// Returns the first new slice.
    fn reconfigure(&mut self, now: Nanos, func: FuncId, g: usize) -> usize {
        let want = self.profile_of[func.ix()];
        let prof = self.table[want];
        let (c, m) = self.used(g);
        if c + prof.compute > 7 || m + prof.memory_slices > 8 {
            self.layouts[g].clear();
        }
        let first = self.layouts[g].len();
        loop {
            let (c, m) = self.used(g);
            if c + prof.compute > 7 || m + prof.memory_slices > 8 {
                break;
            }
            self.layouts[g].push(Slice {
                profile: want,
                occupant: None,
            });
        }
        self.reconfigurations += 1;
        self.ready_at[g] = now + self.reconfigure;
        first
    }
}

impl Placement for MigSlices {
    /// A free slice of the profile first; else an idle GPU, reconfigured.
    fn fit(&self, ctx: &Ctx<'_>, func: FuncId, gpu: GpuId) -> Option<Fit> {
        if let Some(k) = self.free_slice(func, gpu.ix()) {
            return Some(Fit::plain(self.spec(ctx, func, gpu, k)));
        }
        (ctx.gpus()[gpu.ix()].instance_count == 0).then(|| Fit {
            spec: self.spec(ctx, func, gpu, 0),
            preference: (1, 0),
        })
    }

    fn take(&mut self, ctx: &mut Ctx<'_>, func: FuncId, gpu: GpuId, fit: Fit) -> InstanceSpec {
        let g = gpu.ix();
        if let Some(k) = self.free_slice(func, g) {
            self.pending = Some((g, k));
            return fit.spec;
        }
        let first = self.reconfigure(ctx.now(), func, g);
        self.pending = Some((g, first));
        self.spec(ctx, func, gpu, first)
    }

    fn fits_after_reclaiming(&self, ctx: &Ctx<'_>, func: FuncId, victim: InstId) -> bool {
        let want = self.profile_of[func.ix()];
        let g = ctx.instance(victim).gpu.ix();
        // Its slice frees a slice of the wanted profile, or empties the GPU for reconfiguration.
        self.layouts[g]
            .iter()
            .any(|s| s.occupant == Some(victim) && s.profile == want)
            || ctx.gpus()[g].instance_count == 1
    }

    fn placed(&mut self, inst: InstId) {
        if let Some((g, k)) = self.pending.take() {
            self.layouts[g][k].occupant = Some(inst);
        }
    }

    fn released(&mut self, ctx: &Ctx<'_>, inst: InstId) {
        let g = ctx.instance(inst).gpu.ix();
        for s in &mut self.layouts[g] {
            if s.occupant == Some(inst) {
                s.occupant = None;
            }
        }
    }
}

/// Isolated slices: each kernel gets its slice's SMs; its slice's bandwidth and L2 are its
/// partition's ([`Partition`]), so slices do not interfere.
pub struct Isolated;

impl Sharing for Isolated {
    fn assign_shares(&mut self, _gpu: GpuId, _now: Nanos, phases: &mut [ActivePhase]) -> Option<Nanos> {
        for p in phases.iter_mut().filter(|p| p.is_kernel()) {
            p.share = p.sm_cap;
        }
        None
    }
    fn concurrent(&self) -> bool {
        false
    }
}

/// The MIG policy.
pub struct Mig;

impl Mig {
    /// Builds it from `[policy]`.
    pub fn build(spec: &PolicySpec, scenario: &Scenario) -> Result<Box<dyn Policy>, ConfigError> {
        let (pool, p): (PoolParams, MigParams) = crate::pool::split_params(spec)?;
        if scenario.devices.len() != 1 {
            return Err(ConfigError::at(
                param_path("name"),
                "mig needs a cluster of one GPU type",
            ));
        }
        let dev = &scenario.devices[0];
        let table = profiles_for(dev.mig.as_deref().unwrap_or(""));
        if table.is_empty() {
            return Err(ConfigError::at(
                param_path("name"),
                format!(
                    "{} has no MIG; use a100-40gb, a100-80gb, h100-80gb or h200-141gb",
                    dev.name
                ),
            ));
        }
        if !(p.reconfigure_s.is_finite() && p.reconfigure_s >= 0.0) {
            return Err(ConfigError::at(
                param_path("reconfigure_s"),
                format!("must be ≥ 0 seconds, got {}", p.reconfigure_s),
            ));
        }
        let mut profile_of = Vec::with_capacity(scenario.functions.len());
        for f in &scenario.functions {
            let need =
                f.profile.compile(&f.reference, dev, scenario.storage_gbps).footprint() as f64 / (1u64 << 20) as f64;
            let i = match p.profiles.get(&f.name) {
                Some(name) => {
                    let at = param_path("profiles").key(&f.name);
                    let i = find_profile(table, name, &dev.name).map_err(|e| ConfigError::at(at.clone(), e))?;
                    if table[i].memory_mib < need {
                        return Err(ConfigError::at(
                            at,
                            format!(
                                "`{name}` has {:.0} MiB; `{}` needs {need:.0} MiB",
                                table[i].memory_mib, f.name
                            ),
                        ));
                    }
                    i
                }
                None => table.iter().position(|p| p.memory_mib >= need).ok_or_else(|| {
                    ConfigError::at(
                        param_path("profiles"),
                        format!(
                            "`{}` needs {need:.0} MiB, more than any MIG slice of {}",
                            f.name, dev.name
                        ),
                    )
                })?,
            };
            profile_of.push(i);
        }
        crate::pool::check_function_keys(scenario, &p.profiles, "profiles")?;
        let mut initial = Vec::new();
        let mut budget = SliceBudget::default();
        for (k, name) in p.layout.iter().enumerate() {
            let at = param_path("layout").index(k);
            let i = find_profile(table, name, &dev.name).map_err(|e| ConfigError::at(at.clone(), e))?;
            if !budget.take(&table[i]) {
                return Err(ConfigError::at(
                    at,
                    format!("the layout needs more than the GPU's 7 compute and 8 memory slices by `{name}`"),
                ));
            }
            initial.push(Slice {
                profile: i,
                occupant: None,
            });
        }
        let slices = MigSlices {
            profile_of,
            table,
            layouts: vec![initial; scenario.gpus.len()],
            ready_at: vec![0; scenario.gpus.len()],
            reconfigure: secs_to_ns(p.reconfigure_s),
            pending: None,
            reconfigurations: 0,
        };
        Ok(Pooled::boxed(&spec.name, Pool::new(&pool, slices, scenario)?, Mig))
    }
}

impl PoolPolicy for Mig {
    type Placement = MigSlices;
    fn sharing(&self, _pool: &Pool<MigSlices>) -> Box<dyn Sharing> {
        Box::new(Isolated)
    }
    fn report(&self, pool: &Pool<MigSlices>) -> Vec<String> {
        vec![format!("MIG reconfigurations: {}", pool.placement.reconfigurations)]
    }
}
