//! The run summary: the figures `summary.json` and `summary.csv` hold.
//!
//! Counts cover every arrival and add up: `arrivals = completed + rejected + failed + unfinished`.
//! Latencies and the cold-start ratio cover invocations that arrived at or after the warm-up
//! time; throughput counts the completions that ended in `[warmup, end)`, whenever they arrived
//! (a backlog served late still counts: a thrashing policy shows its real, low rate rather than
//! none); GPU utilisation, SM occupancy and GPU-seconds cover `[warmup, end)`.
//! Setup latency is over cold invocations only (a warm invocation has none).

use crate::metrics::{LatencySummary, Metrics};
use crate::record::RejectReason;
use crate::time::{Nanos, ns_to_secs};
use crate::world::World;
use serde::Serialize;
use std::collections::BTreeMap;

/// Invocation counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counts {
    pub arrivals: u64,
    pub completed: u64,
    pub rejected: u64,
    /// Invocations lost to a crash of their instance.
    pub failed: u64,
    /// Rejections by reason (every reason listed, zeros included).
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub unfinished: u64,
    /// Arrivals at or after the warm-up time, and their completions.
    pub measured_arrivals: u64,
    pub measured_completed: u64,
}

/// Latency distributions, seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latencies {
    pub end_to_end: LatencySummary,
    pub queueing: LatencySummary,
    /// Cold invocations only.
    pub setup: LatencySummary,
    pub execution: LatencySummary,
}

/// One GPU's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuSummary {
    pub id: u32,
    pub node: u32,
    pub device: String,
    /// Fraction of the measured window with at least one kernel running.
    pub utilisation: f64,
    /// Time-averaged fraction of SMs in use (Σ min(share, demand) over running kernels).
    pub sm_occupancy: f64,
    pub peak_memory_mib: f64,
    pub memory_mib: f64,
}

/// How a figure spreads over a set of GPUs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (nearest-rank percentiles); zeros when there are none. NaN (not
    /// measured) anywhere makes every figure NaN: a statistic of what is known would pass for a
    /// measurement.
    pub fn of(mut values: Vec<f64>) -> Spread {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            let x = if values.is_empty() { 0.0 } else { f64::NAN };
            return Spread {
                mean: x,
                min: x,
                p10: x,
                p50: x,
                p90: x,
                max: x,
            };
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Spread {
            mean: values.iter().sum::<f64>() / n as f64,
            min: values[0],
            p10: rank(0.1),
            p50: rank(0.5),
            p90: rank(0.9),
            max: values[n - 1],
        }
    }
}

/// The GPUs of one device type, summarised: what `summary.json` keeps of each GPU when it does
/// not list them one by one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuTypeSummary {
    pub device: String,
    pub count: usize,
    pub memory_mib: f64,
    pub utilisation: Spread,
    pub sm_occupancy: Spread,
    pub peak_memory_mib: Spread,
}

/// Per device type, in the order types first appear among `gpus` (one pass over the GPUs).
pub fn gpu_types(gpus: &[GpuSummary]) -> Vec<GpuTypeSummary> {
    // (device, memory, utilisation, SM occupancy, peak memory) per type.
    type Columns<'a> = (&'a str, f64, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut types: Vec<Columns<'_>> = Vec::new();
    for g in gpus {
        let k = match types.iter().position(|t| t.0 == g.device) {
            Some(k) => k,
            None => {
                types.push((&g.device, g.memory_mib, Vec::new(), Vec::new(), Vec::new()));
                types.len() - 1
            }
        };
        let t = &mut types[k];
        t.2.push(g.utilisation);
        t.3.push(g.sm_occupancy);
        t.4.push(g.peak_memory_mib);
    }
    types
        .into_iter()
        .map(|(device, memory_mib, utilisation, sm_occupancy, peak)| GpuTypeSummary {
            device: device.to_string(),
            count: utilisation.len(),
            memory_mib,
            utilisation: Spread::of(utilisation),
            sm_occupancy: Spread::of(sm_occupancy),
            peak_memory_mib: Spread::of(peak),
        })
        .collect()
}

/// The most GPUs `summary.json` lists one by one under `[output] gpu_detail = "auto"`; above
/// it, only the per-type summaries (`gpu_types`), so that writing a summary does not grow with
/// the cluster.
pub const GPU_DETAIL_AUTO_LIMIT: usize = 1024;

/// Cluster-wide GPU figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuTotals {
    pub count: usize,
    pub utilisation_mean: f64,
    pub sm_occupancy_mean: f64,
    /// Largest peak memory of any GPU.
    pub peak_memory_mib: f64,
    /// Σ instance lifetime × its GPU fraction over the measured window.
    pub gpu_seconds_allocated: f64,
    /// The part of it instances spent idle (kept warm or pre-warmed).
    pub gpu_seconds_idle: f64,
}

/// Instance lifecycle counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceCounts {
    pub created: u64,
    pub reclaimed: u64,
    pub alive_at_end: u64,
    pub peak_alive: u64,
}

/// One function's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionSummary {
    pub name: String,
    pub arrivals: u64,
    pub completed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub unfinished: u64,
    pub cold_starts: u64,
    pub cold_start_ratio: f64,
    pub mean_end_to_end_s: f64,
}

/// Everything a run reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub policy: String,
    pub seed: u64,
    pub horizon_s: f64,
    pub warmup_s: f64,
    pub end_s: f64,
    pub counts: Counts,
    /// Measured completions per second of the measured window.
    pub throughput_per_s: f64,
    pub latency_s: Latencies,
    pub cold_starts: u64,
    /// Cold measured completions / measured completions.
    pub cold_start_ratio: f64,
    /// The end-to-end latency objective (`[simulation] slo_s`), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_s: Option<f64>,
    /// Measured completions above it / measured completions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_violation_ratio: Option<f64>,
    pub gpu: GpuTotals,
    /// Per device type: count and the spread of each GPU's figures.
    pub gpu_types: Vec<GpuTypeSummary>,
    pub instances: InstanceCounts,
    /// Every GPU, when listed (`[output] gpu_detail`; by default up to
    /// [`GPU_DETAIL_AUTO_LIMIT`] GPUs); absent from `summary.json` otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSummary>,
    pub functions: Vec<FunctionSummary>,
    pub events: u64,
    /// What the policy reports about its decisions.
    pub policy_report: Vec<String>,
    /// What reading a streamed trace skipped (`skip_bad_rows`): the count, then the first few
    /// rows as `file:line: field: message`. Absent when nothing was skipped or skipping is off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workload_report: Vec<String>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Which run a summary is of: scenario, policy, seed, and the run's horizon and end.
#[derive(Clone, Copy, Debug)]
pub struct RunId<'a> {
    pub scenario: &'a str,
    pub policy: &'a str,
    pub seed: u64,
    pub horizon: Nanos,
    pub end: Nanos,
}

/// What a summary is made of besides the metrics: the run's identity and window, its GPUs'
/// figures, its functions' names (in scenario order) and the invocations still in flight at the
/// end. The engine fills it from its world; the replay harness from its measurements.
pub struct SummaryParts<'a> {
    pub run: RunId<'a>,
    pub gpus: Vec<GpuSummary>,
    pub functions: Vec<&'a str>,
    pub unfinished: u64,
}

impl Summary {
    pub(crate) fn build(w: &World, scenario: &str, policy: &str, seed: u64, horizon: Nanos, end: Nanos) -> Summary {
        let window = end.saturating_sub(w.metrics.warmup);
        let gpus: Vec<GpuSummary> = w
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| GpuSummary {
                id: i as u32,
                node: g.node,
                device: w.devices[g.device].name.clone(),
                utilisation: ratio(g.busy_ns - g.at_warmup.0, window),
                sm_occupancy: if window == 0 {
                    0.0
                } else {
                    (g.sm_used_ns - g.at_warmup.1) / window as f64
                },
                peak_memory_mib: g.mem_peak as f64 / crate::device::MIB as f64,
                memory_mib: g.mem_capacity as f64 / crate::device::MIB as f64,
            })
            .collect();
        let parts = SummaryParts {
            run: RunId {
                scenario,
                policy,
                seed,
                horizon,
                end,
            },
            gpus,
            functions: w.functions.iter().map(|f| f.name.as_str()).collect(),
            unfinished: w.live_invocations,
        };
        Summary::from_parts(&w.metrics, parts)
    }

    /// The summary of a run counted in `m`.
    pub fn from_parts(m: &Metrics, p: SummaryParts<'_>) -> Summary {
        let run = p.run;
        let window = run.end.saturating_sub(m.warmup);
        let window_s = ns_to_secs(window);
        let rejected = m.rejected_total();
        let gpus = p.gpus;
        let mean = |f: fn(&GpuSummary) -> f64| {
            if gpus.is_empty() {
                0.0
            } else {
                gpus.iter().map(f).sum::<f64>() / gpus.len() as f64
            }
        };
        Summary {
            scenario: run.scenario.to_string(),
            policy: run.policy.to_string(),
            seed: run.seed,
            horizon_s: ns_to_secs(run.horizon),
            warmup_s: ns_to_secs(m.warmup),
            end_s: ns_to_secs(run.end),
            counts: Counts {
                arrivals: m.arrivals,
                completed: m.completed,
                rejected,
                failed: m.failed,
                rejected_by_reason: RejectReason::ALL
                    .iter()
                    .map(|r| (r.name().to_string(), m.rejected[*r as usize]))
                    .collect(),
                unfinished: p.unfinished,
                measured_arrivals: m.measured_arrivals,
                measured_completed: m.measured_completed,
            },
            throughput_per_s: if window == 0 {
                0.0
            } else {
                m.ended_in_window as f64 / window_s
            },
            latency_s: Latencies {
                end_to_end: m.e2e.summary(),
                queueing: m.queue.summary(),
                setup: m.setup.summary(),
                execution: m.exec.summary(),
            },
            cold_starts: m.measured_cold,
            cold_start_ratio: ratio(m.measured_cold, m.measured_completed),
            slo_s: m.slo.map(ns_to_secs),
            slo_violation_ratio: m.slo.map(|_| ratio(m.measured_slo_violations, m.measured_completed)),
            gpu: GpuTotals {
                count: gpus.len(),
                utilisation_mean: mean(|g| g.utilisation),
                sm_occupancy_mean: mean(|g| g.sm_occupancy),
                // NaN (not measured, in a replay without NVML) wins: a maximum of what is known
                // would pass for a measurement.
                peak_memory_mib: gpus
                    .iter()
                    .map(|g| g.peak_memory_mib)
                    .fold(0.0, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }),
                gpu_seconds_allocated: m.gpu_ns_allocated / 1e9,
                gpu_seconds_idle: m.gpu_ns_idle / 1e9,
            },
            gpu_types: gpu_types(&gpus),
            instances: InstanceCounts {
                created: m.instances_created,
                reclaimed: m.instances_reclaimed,
                alive_at_end: m.instances_alive,
                peak_alive: m.instances_peak,
            },
            gpus,
            functions: p
                .functions
                .iter()
                .zip(&m.per_func)
                .map(|(name, s)| FunctionSummary {
                    name: name.to_string(),
                    arrivals: s.arrivals,
                    completed: s.completed,
                    rejected: s.rejected,
                    failed: s.failed,
                    unfinished: s.arrivals - s.completed - s.rejected - s.failed,
                    cold_starts: s.measured_cold,
                    cold_start_ratio: ratio(s.measured_cold, s.measured_completed),
                    mean_end_to_end_s: if s.measured_completed == 0 {
                        0.0
                    } else {
                        s.e2e_sum as f64 / s.measured_completed as f64 / 1e9
                    },
                })
                .collect(),
            events: m.events,
            policy_report: Vec::new(),
            workload_report: Vec::new(),
        }
    }
}

/// The quantiles at which `latency_cdf.csv` gives the end-to-end latency: every percent, then
/// finer into the tail (0.1 % steps to 99.9 %, 0.01 % steps to 99.99 %), and the maximum.
pub fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..100).map(|k| f64::from(k) / 100.0).collect();
    q.extend((991..1000).map(|k| f64::from(k) / 1000.0));
    q.extend((9991..10000).map(|k| f64::from(k) / 10000.0));
    q.push(1.0);
    q
}
