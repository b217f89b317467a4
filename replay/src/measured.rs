//! A replay's results in the simulator's own schema: `invocations.csv` (the same columns, one row
//! per arrival), `summary.json` / `summary.csv` (the same [`Summary`], counted with the
//! simulator's [`Metrics`]), `latency_cdf.csv`, and `timeseries.csv` when the scenario asks for
//! it — so `gpushare compare`, `plot` and any notebook read a replay as they read a run. Beside
//! them: `nvml.csv` and `nvml_processes.csv` (every NVML reading) and `replay.json` (how the
//! replay ran: backend, device, layout, worker processes, dispatch delays, notes).
//!
//! Figures the replay cannot measure are `NaN` (`null` in JSON), never a guess: SM occupancy
//! always, GPU utilisation and peak memory without NVML.

use gpushare_sim::Summary;
use gpushare_sim::device::MIB;
use gpushare_sim::metrics::Metrics;
use gpushare_sim::record::{InvocationRecord, Outcome, RecordSink};
use gpushare_sim::summary::{GpuSummary, RunId, SummaryParts, cdf_quantiles};
use gpushare_sim::world::GpuSample;
use std::io;
use std::path::Path;

/// One invocation as the replay saw it; times are ns from the replay's origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: u64,
    pub func: u32,
    pub arrival: u64,
    pub start: Option<u64>,
    pub end: Option<u64>,
    /// Waiting for a worker (a kernel server: after the request's host code).
    pub queue: Option<u64>,
    pub exec: Option<u64>,
    pub gpu: Option<u32>,
    pub worker: Option<usize>,
    /// When its GPU operations ran, by events: `[end − GPU time, end]` of its GPU segment.
    pub gpu_busy: Option<(u64, u64)>,
    /// When its worker was running it.
    pub worker_busy: Option<(u64, u64)>,
    pub outcome: Outcome,
}

/// One worker as the summary needs it.
pub struct WorkerUse {
    /// Its share of the GPU for GPU-seconds (an MPS percentage, else 1).
    pub fraction: f64,
    /// The GPU (device ordinal) it runs on.
    pub gpu: u32,
}

/// Everything the summary is computed from.
pub struct Inputs<'a> {
    pub run: RunId<'a>,
    pub warmup: u64,
    pub slo: Option<u64>,
    pub functions: Vec<&'a str>,
    /// GPU ordinals, in summary order, with their device name and memory (MiB).
    pub gpus: Vec<(u32, String, f64)>,
    pub workers: Vec<WorkerUse>,
    /// In end order.
    pub records: &'a [Record],
    /// NVML device readings (empty without NVML), as (ns from origin, sample).
    pub nvml: &'a [(u64, crate::nvml::Sample)],
    pub replies: u64,
}

/// Length of the union of `intervals` clipped to `[lo, hi)`.
pub fn union_length(intervals: &mut [(u64, u64)], lo: u64, hi: u64) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut cur): (u64, Option<(u64, u64)>) = (0, None);
    for &(a, b) in intervals.iter() {
        let (a, b) = (a.max(lo), b.min(hi));
        if b <= a {
            continue;
        }
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((a, b)) = cur {
        total += b - a;
    }
    total
}

/// The gaps in `[lo, hi)` that `intervals` leave uncovered.
fn gaps(intervals: &mut [(u64, u64)], lo: u64, hi: u64) -> Vec<(u64, u64)> {
    intervals.sort_unstable();
    let mut out = Vec::new();
    let mut at = lo;
    for &(a, b) in intervals.iter() {
        if a > at {
            out.push((at, a.min(hi)));
        }
        at = at.max(b);
        if at >= hi {
            break;
        }
    }
    if at < hi {
        out.push((at, hi));
    }
    out.retain(|(a, b)| b > a);
    out
}

/// The summary and its CDF.
pub struct Summarised {
    pub summary: Summary,
    pub latency_cdf: Vec<(f64, f64)>,
}

/// The summary of a replay, in the simulator's schema, and its latency CDF.
pub fn summarise(i: &Inputs<'_>) -> Summarised {
    let mut m = Metrics::new(i.functions.len(), i.warmup);
    m.slo = i.slo;
    let mut by_arrival: Vec<&Record> = i.records.iter().collect();
    by_arrival.sort_by_key(|r| r.id);
    for r in &by_arrival {
        m.arrival(r.func as usize, r.arrival);
    }
    let mut unfinished = 0;
    for r in i.records {
        match r.outcome {
            Outcome::Completed => m.completion(
                r.func as usize,
                r.arrival,
                r.queue.unwrap_or(0),
                0,
                r.exec.unwrap_or(0),
                false,
            ),
            Outcome::Rejected(reason) => m.rejection(r.func as usize, reason),
            Outcome::Failed => {
                m.failed += 1;
                m.per_func[r.func as usize].failed += 1;
            }
            Outcome::Unfinished => unfinished += 1,
        }
    }
    // Workers are the instances: alive the whole run, idle when none of their requests runs.
    // A GPU is allocated at most whole however many workers claim it (as the simulator counts),
    // idle for its workers' idle share of that.
    let mut per_gpu: Vec<(u32, f64, f64)> = Vec::new(); // (GPU, Σ fraction, Σ fraction × idle ns)
    let window = i.run.end.saturating_sub(i.warmup);
    for (w, use_) in i.workers.iter().enumerate() {
        m.instance_created();
        let mut busy: Vec<(u64, u64)> = i
            .records
            .iter()
            .filter(|r| r.worker == Some(w))
            .filter_map(|r| r.worker_busy)
            .collect();
        let idle_ns: u64 = gaps(&mut busy, 0, i.run.end)
            .into_iter()
            .map(|(a, b)| b.saturating_sub(a.max(i.warmup)))
            .sum();
        match per_gpu.iter_mut().find(|g| g.0 == use_.gpu) {
            Some(g) => {
                g.1 += use_.fraction;
                g.2 += use_.fraction * idle_ns as f64;
            }
            None => per_gpu.push((use_.gpu, use_.fraction, use_.fraction * idle_ns as f64)),
        }
    }
    for (_, all, idle) in per_gpu {
        let allocated = all.min(1.0);
        m.gpu_ns_allocated += window as f64 * allocated;
        m.gpu_ns_idle += if all > 0.0 { idle * allocated / all } else { 0.0 };
    }
    m.events = i.replies;
    let gpus = i
        .gpus
        .iter()
        .enumerate()
        .map(|(k, (ordinal, device, memory_mib))| {
            let readings: Vec<&crate::nvml::Sample> = i
                .nvml
                .iter()
                .filter(|(t, s)| s.gpu == *ordinal && *t >= i.warmup && *t < i.run.end)
                .map(|(_, s)| s)
                .collect();
            let utilisation = if !i.nvml.is_empty() {
                if readings.is_empty() {
                    f64::NAN
                } else {
                    readings.iter().map(|s| f64::from(s.util_pct)).sum::<f64>() / readings.len() as f64 / 100.0
                }
            } else {
                let mut busy: Vec<(u64, u64)> = i
                    .records
                    .iter()
                    .filter(|r| r.gpu == Some(*ordinal))
                    .filter_map(|r| r.gpu_busy)
                    .collect();
                if window == 0 {
                    0.0
                } else {
                    union_length(&mut busy, i.warmup, i.run.end) as f64 / window as f64
                }
            };
            let peak = i
                .nvml
                .iter()
                .filter(|(_, s)| s.gpu == *ordinal)
                .map(|(_, s)| s.mem_used_bytes)
                .max()
                .map_or(f64::NAN, |b| b as f64 / MIB as f64);
            GpuSummary {
                id: k as u32,
                node: 0,
                device: device.clone(),
                utilisation,
                sm_occupancy: f64::NAN,
                peak_memory_mib: peak,
                memory_mib: *memory_mib,
            }
        })
        .collect();
    let summary = Summary::from_parts(
        &m,
        SummaryParts {
            run: i.run,
            gpus,
            functions: i.functions.clone(),
            unfinished,
        },
    );
    let q = cdf_quantiles();
    let v = m.e2e.quantiles_s(&q);
    Summarised {
        summary,
        latency_cdf: q.into_iter().zip(v).collect(),
    }
}

/// Writes `invocations.csv` from `records` (in end order).
pub fn write_invocations(dir: &Path, records: &[Record], functions: &[&str]) -> io::Result<()> {
    let mut sink = gpushare_reports::InvocationCsv::create(&dir.join("invocations.csv"))?;
    for r in records {
        sink.record(&InvocationRecord {
            id: r.id,
            function: functions[r.func as usize],
            arrival: r.arrival,
            start: r.start,
            end: r.end,
            queue: r.queue,
            setup: r.start.map(|_| 0),
            exec: r.exec,
            cold: false,
            node: r.gpu.map(|_| 0),
            gpu: r.gpu,
            outcome: r.outcome,
        })?;
    }
    sink.finish()
}

/// NVML readings binned into the simulator's GPU samples every `every` ns: utilisation is the
/// mean reading, memory the last, SM occupancy not measured.
pub fn timeseries(
    nvml: &[(u64, crate::nvml::Sample)],
    gpus: &[u32],
    workers_per_gpu: &[u32],
    every: u64,
    end: u64,
) -> Vec<GpuSample> {
    let mut out = Vec::new();
    if every == 0 {
        return out;
    }
    let mut t = every;
    while t <= end {
        for (k, g) in gpus.iter().enumerate() {
            let bin: Vec<&crate::nvml::Sample> = nvml
                .iter()
                .filter(|(at, s)| s.gpu == *g && *at + every > t && *at <= t)
                .map(|(_, s)| s)
                .collect();
            out.push(GpuSample {
                time: t,
                gpu: k as u32,
                utilisation: if bin.is_empty() {
                    f64::NAN
                } else {
                    bin.iter().map(|s| f64::from(s.util_pct)).sum::<f64>() / bin.len() as f64 / 100.0
                },
                sm_occupancy: f64::NAN,
                memory: bin.last().map_or(0, |s| s.mem_used_bytes),
                instances: workers_per_gpu[k],
            });
        }
        t += every;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_and_gaps_cover_the_window_exactly() {
        let mut iv = vec![(5, 10), (0, 3), (8, 12), (20, 25)];
        assert_eq!(union_length(&mut iv, 0, 30), 3 + 7 + 5);
        assert_eq!(union_length(&mut iv, 9, 22), 3 + 2);
        let g = gaps(&mut iv, 0, 30);
        assert_eq!(g, [(3, 5), (12, 20), (25, 30)]);
        assert_eq!(gaps(&mut [], 0, 10), [(0, 10)]);
    }

    fn rec(id: u64, arrival: u64, queue: u64, exec: u64, outcome: Outcome) -> Record {
        let done = outcome == Outcome::Completed;
        Record {
            id,
            func: 0,
            arrival,
            start: done.then_some(arrival + queue),
            end: done.then_some(arrival + queue + exec),
            queue: done.then_some(queue),
            exec: done.then_some(exec),
            gpu: done.then_some(0),
            worker: done.then_some(0),
            gpu_busy: done.then_some((arrival + queue, arrival + queue + exec)),
            worker_busy: done.then_some((arrival + queue, arrival + queue + exec)),
            outcome,
        }
    }

    #[test]
    fn the_summary_counts_every_arrival_once() {
        use gpushare_sim::record::RejectReason;
        let s = 1_000_000_000;
        let records = vec![
            rec(0, 0, 0, s / 2, Outcome::Completed),
            rec(1, 2 * s, s / 10, s / 2, Outcome::Completed),
            rec(2, 3 * s, 0, 0, Outcome::Rejected(RejectReason::QueueFull)),
            rec(3, 9 * s, 0, 0, Outcome::Unfinished),
        ];
        let i = Inputs {
            run: RunId {
                scenario: "t",
                policy: "exclusive",
                seed: 1,
                horizon: 10 * s,
                end: 10 * s,
            },
            warmup: s,
            slo: None,
            functions: vec!["f"],
            gpus: vec![(0, "h100".into(), 80_000.0)],
            workers: vec![WorkerUse { fraction: 1.0, gpu: 0 }],
            records: &records,
            nvml: &[],
            replies: 3,
        };
        let out = summarise(&i);
        let sum = &out.summary;
        assert_eq!(
            (
                sum.counts.arrivals,
                sum.counts.completed,
                sum.counts.rejected,
                sum.counts.unfinished
            ),
            (4, 2, 1, 1)
        );
        // Only the invocation after the 1 s warm-up is measured: 0.6 s end to end.
        assert_eq!(sum.counts.measured_completed, 1);
        assert!(
            (sum.latency_s.end_to_end.p50 - 0.6).abs() < 0.01,
            "{}",
            sum.latency_s.end_to_end.p50
        );
        assert!((sum.throughput_per_s - 1.0 / 9.0).abs() < 1e-9);
        // Without NVML, utilisation is the union of GPU segments in the window: 0.5 s of 9 s.
        assert!((sum.gpus[0].utilisation - 0.5 / 9.0).abs() < 1e-9);
        assert!(sum.gpus[0].sm_occupancy.is_nan() && sum.gpus[0].peak_memory_mib.is_nan());
        assert_eq!(sum.instances.created, 1);
        assert_eq!(out.latency_cdf.len(), cdf_quantiles().len());
    }
}
