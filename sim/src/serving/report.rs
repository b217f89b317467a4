//! What a serving run measures: one [`Record`] per request, streamed into [`Stats`]
//! (histograms: nothing grows with the number of requests), and the run's [`ServingSummary`]
//! for `summary.json`.

use super::batcher::Seq;
use crate::metrics::LatencyStat;
use crate::time::{Nanos, ns_to_secs};
use serde::Serialize;

/// One request's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    pub deployment: usize,
    /// The instance that served it (`None`: refused before reaching one).
    pub instance: Option<usize>,
    pub id: u64,
    pub arrival: Nanos,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// When its first token and its last were out (`None`: refused).
    pub first_token: Option<Nanos>,
    pub end: Option<Nanos>,
    pub preemptions: u32,
    pub cold: bool,
    /// Within both latency objectives.
    pub slo_met: bool,
}

impl Record {
    pub fn of(d: usize, inst: usize, s: &Seq, end: Option<Nanos>, (ttft, tpot): (Nanos, Nanos)) -> Record {
        let mut r = Record {
            deployment: d,
            instance: (inst != usize::MAX).then_some(inst),
            id: s.id,
            arrival: s.arrival,
            prompt_tokens: s.prompt,
            output_tokens: s.output,
            first_token: end.and(s.first_token),
            end,
            preemptions: s.preemptions,
            cold: s.cold,
            slo_met: false,
        };
        r.slo_met = r.ttft().is_some_and(|t| t <= ttft) && r.tpot().is_none_or(|t| t <= tpot as f64);
        r
    }

    /// Time to first token.
    pub fn ttft(&self) -> Option<Nanos> {
        Some(self.first_token? - self.arrival)
    }

    /// Mean time per output token after the first (`None` with one token or refused).
    pub fn tpot(&self) -> Option<f64> {
        let (first, end) = (self.first_token?, self.end?);
        (self.output_tokens > 1).then(|| (end - first) as f64 / (self.output_tokens - 1) as f64)
    }

    pub fn e2e(&self) -> Option<Nanos> {
        Some(self.end? - self.arrival)
    }
}

/// Streamed statistics of a set of requests.
#[derive(Default)]
pub struct Stats {
    pub arrived: u64,
    pub completed: u64,
    pub rejected: u64,
    pub ttft: LatencyStat,
    pub tpot: LatencyStat,
    pub e2e: LatencyStat,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub slo_met: u64,
    pub preemptions: u64,
    pub cold: u64,
    pub last_end: Nanos,
}

impl Stats {
    /// Counts a request that ended: completed (with an end) or refused.
    pub fn add(&mut self, r: &Record) {
        // A refused request may have been preempted before (a recompute over the budget).
        self.preemptions += u64::from(r.preemptions);
        let Some(end) = r.end else {
            self.rejected += 1;
            return;
        };
        self.completed += 1;
        self.ttft.record(r.ttft().expect("completed"));
        if let Some(t) = r.tpot() {
            self.tpot.record(t.round() as Nanos);
        }
        self.e2e.record(end - r.arrival);
        self.prompt_tokens += r.prompt_tokens;
        self.output_tokens += r.output_tokens;
        self.slo_met += u64::from(r.slo_met);
        self.cold += u64::from(r.cold);
        self.last_end = self.last_end.max(end);
    }
}

/// A latency distribution in seconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Spread {
    fn of(s: &LatencyStat) -> Spread {
        let q = s.quantiles_s(&[0.5, 0.9, 0.99]);
        let at = |i: usize| q.get(i).copied().unwrap_or(0.0);
        Spread {
            mean: s.mean_ns() / 1e9,
            p50: at(0),
            p90: at(1),
            p99: at(2),
        }
    }
}

/// The figures of a set of requests (a deployment, or the whole run).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figures {
    pub arrived: u64,
    pub completed: u64,
    pub refused: u64,
    pub ttft_s: Spread,
    pub tpot_s: Spread,
    pub e2e_s: Spread,
    /// Completed requests per second, over [0, the last completion].
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
    /// Completed requests within both objectives / completed requests.
    pub slo_attainment: f64,
    pub preemptions: u64,
    /// Requests that waited for their instance to start.
    pub cold_requests: u64,
}

impl Figures {
    pub fn of(s: &Stats) -> Figures {
        let secs = ns_to_secs(s.last_end).max(1e-9);
        Figures {
            arrived: s.arrived,
            completed: s.completed,
            refused: s.rejected,
            ttft_s: Spread::of(&s.ttft),
            tpot_s: Spread::of(&s.tpot),
            e2e_s: Spread::of(&s.e2e),
            requests_per_s: s.completed as f64 / secs,
            output_tokens_per_s: s.output_tokens as f64 / secs,
            slo_attainment: if s.completed == 0 {
                0.0
            } else {
                s.slo_met as f64 / s.completed as f64
            },
            preemptions: s.preemptions,
            cold_requests: s.cold,
        }
    }
}

/// A deployment's figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeploymentSummary {
    pub name: String,
    pub model: String,
    pub instances_started: u64,
    /// Of which started ahead of requests by the hybrid keep-alive.
    pub prewarms: u64,
    #[serde(flatten)]
    pub figures: Figures,
}

/// `summary.json` of a serving run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServingSummary {
    pub scenario: String,
    pub kind: &'static str,
    pub seed: u64,
    pub horizon_s: f64,
    pub end_s: f64,
    pub gpu: String,
    pub gpus: u64,
    pub sharing: String,
    pub engines_per_gpu: u32,
    pub slo_ttft_s: f64,
    pub slo_tpot_s: f64,
    #[serde(flatten)]
    pub figures: Figures,
    pub iterations: u64,
    /// Requests in a batch, averaged over iterations.
    pub mean_batch: f64,
    pub cold_starts: u64,
    pub cold_start_mean_s: f64,
    /// Busy time of the GPUs (or slices) / (their count × the run's end).
    pub gpu_busy_fraction: f64,
    pub events: u64,
    pub deployments: Vec<DeploymentSummary>,
}
