//! How `gpushare replay` runs a policy on a real GPU, declared by the policy's registry entry:
//! which mechanism stands for it (processes on GPUs of their own, time-sliced or under MPS with
//! caps, a kernel server per GPU, a shared context per function) and how its parameters map
//! onto it (instances per function, MPS percentages). The replay reads only this; a policy it
//! cannot express says why in one sentence.

use crate::mps::MpsParams;
use crate::params::Params;
use crate::pool::{MaxInstances, PoolParams, split_params};
use gpushare_sim::Scenario;
use gpushare_sim::scenario::PolicySpec;

/// The real-GPU mechanism a policy is replayed with.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayMechanism {
    /// One process per instance, each on a GPU of its own.
    ProcessPerGpu,
    /// Processes sharing GPUs by CUDA's time slicing.
    TimeSlicing,
    /// Processes under an MPS control daemon, each function's at its active-thread percentage.
    Mps { percent: Vec<f64> },
    /// One worker process per GPU serving every function (KaaS).
    KernelServer,
    /// One process and context per function, its instances as streams (SAGE).
    SharedContext,
}

/// What the replay runs for a scenario's policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayMapping {
    pub mechanism: ReplayMechanism,
    /// Instances per function (scenario order).
    pub instances: Vec<u32>,
    /// For policies on the pool: whether `prewarm` is set (the replay's instances start set up,
    /// so a simulation set against it should too). `None` for the others.
    pub prewarm: Option<bool>,
}

/// Maps a policy's `[policy]` table onto the replay (or says what in it is invalid).
pub type ReplayMapper = fn(&PolicySpec, &Scenario) -> Result<ReplayMapping, String>;

/// How a registered policy is replayed.
#[derive(Clone, Copy)]
pub enum Replay {
    /// With the mechanism and parameters this gives.
    Mapped(ReplayMapper),
    /// Not at all, for this reason (the end of "`name` is not replayed: …").
    Unsupported(&'static str),
}

/// The replay of `scenario`'s policy, from its registry entry.
pub fn replay_mapping(scenario: &Scenario) -> Result<ReplayMapping, String> {
    let spec = &scenario.policy;
    let info = crate::registry()
        .iter()
        .find(|p| p.name == spec.name)
        .ok_or_else(|| format!("`{}` is not a policy", spec.name))?;
    match info.replay {
        Replay::Mapped(map) => map(&info.with_defaults(spec), scenario),
        Replay::Unsupported(why) => Err(format!("`{}` is not replayed: {why}", spec.name)),
    }
}

/// Each function's `max_instances` (1 where unset).
fn instances(pool: &PoolParams, scenario: &Scenario) -> Vec<u32> {
    scenario
        .functions
        .iter()
        .map(|f| match &pool.max_instances {
            Some(MaxInstances::All(n)) => *n,
            Some(MaxInstances::Each(map)) => map.get(&f.name).copied().unwrap_or(1),
            None => 1,
        })
        .collect()
}

/// A pool policy replayed with `mechanism`, its own parameters `T` read only for validity.
fn pooled<T: Params>(
    spec: &PolicySpec,
    scenario: &Scenario,
    mechanism: ReplayMechanism,
) -> Result<ReplayMapping, String> {
    let (pool, _): (PoolParams, T) = split_params(spec).map_err(|e| e.message)?;
    Ok(ReplayMapping {
        mechanism,
        instances: instances(&pool, scenario),
        prewarm: Some(pool.prewarm),
    })
}

/// `exclusive`: a process per instance on a GPU of its own.
pub fn exclusive(spec: &PolicySpec, scenario: &Scenario) -> Result<ReplayMapping, String> {
    pooled::<crate::exclusive::ExclusiveParams>(spec, scenario, ReplayMechanism::ProcessPerGpu)
}

/// `static`: `instances` processes per function, each on a GPU of its own.
pub fn fixed_instances(spec: &PolicySpec, scenario: &Scenario) -> Result<ReplayMapping, String> {
    let (pool, own): (PoolParams, crate::kaas_static::StaticParams) = split_params(spec).map_err(|e| e.message)?;
    Ok(ReplayMapping {
        mechanism: ReplayMechanism::ProcessPerGpu,
        instances: vec![own.instances; scenario.functions.len()],
        prewarm: Some(pool.prewarm),
    })
}

/// `time-sharing`: processes sharing GPUs, time-sliced.
pub fn time_sliced(spec: &PolicySpec, scenario: &Scenario) -> Result<ReplayMapping, String> {
    pooled::<crate::time_sharing::TsParams>(spec, scenario, ReplayMechanism::TimeSlicing)
}

/// `mps`, `fractional`: MPS clients at each function's cap.
pub fn mps(spec: &PolicySpec, scenario: &Scenario) -> Result<ReplayMapping, String> {
    let (pool, own): (PoolParams, MpsParams) = split_params(spec).map_err(|e| e.message)?;
    let percent = scenario
        .functions
        .iter()
        .map(|f| own.caps.get(&f.name).copied().unwrap_or(own.active_thread_percentage))
        .collect();
    Ok(ReplayMapping {
        mechanism: ReplayMechanism::Mps { percent },
        instances: instances(&pool, scenario),
        prewarm: Some(pool.prewarm),
    })
}

/// `sage`: a shared context per function, its instances as streams.
pub fn shared_context(spec: &PolicySpec, scenario: &Scenario) -> Result<ReplayMapping, String> {
    pooled::<crate::sage::SageParams>(spec, scenario, ReplayMechanism::SharedContext)
}

/// `kaas`: one kernel server per GPU.
pub fn kernel_server(_spec: &PolicySpec, scenario: &Scenario) -> Result<ReplayMapping, String> {
    Ok(ReplayMapping {
        mechanism: ReplayMechanism::KernelServer,
        instances: vec![1; scenario.functions.len()],
        prewarm: None,
    })
}
