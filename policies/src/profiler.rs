//! The FaST-Profiler, run in simulation: each function's throughput over a grid of time quota ×
//! SM partition (Gu et al., ICPP '23, §FaST-Profiler; PAPERS.md §4).
//!
//! For every grid cell, one instance of the function runs alone on one GPU of the scenario's
//! first device type, capped at that SM share (as an MPS active-thread percentage) and that time
//! quota, with requests always queued: a closed loop of one client ([`closed_loop`]). The cell's
//! throughput is its completions per second once steady, and its latency the time per request.

use crate::closed_loop::{self, Client, Mechanism};
use gpushare_sim::scenario::Scenario;
use gpushare_sim::time::NS_PER_S;

/// FaST's time-quota grid.
pub const QUOTAS: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];
/// SM partitions: FaST's published points (6, 12, 24, 50, 100 %) and a few between.
pub const SM_SHARES: [f64; 9] = [0.06, 0.12, 0.18, 0.24, 0.36, 0.50, 0.64, 0.80, 1.00];

/// One cell of a function's profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfilePoint {
    pub function: String,
    pub quota: f64,
    pub sm: f64,
    /// Requests per second.
    pub qps: f64,
    /// Mean time per request, ms.
    pub latency_ms: f64,
}

/// Profiles function `func` of `scenario` over `quotas` × `sms`, each cell a closed loop of one
/// client ([`closed_loop`]) measured over `seconds`.
pub fn profile(
    scenario: &Scenario,
    func: usize,
    quotas: &[f64],
    sms: &[f64],
    seconds: f64,
) -> Result<Vec<ProfilePoint>, String> {
    let f = &scenario.functions[func];
    let dev = &scenario.devices[scenario.gpus[0].1];
    let window = (seconds * NS_PER_S as f64) as u64;
    let mut out = Vec::new();
    for &quota in quotas {
        for &sm in sms {
            let client = Client {
                sm_cap: sm,
                time_quota: quota,
                ..Client::whole(f.profile.clone(), f.reference.clone())
            };
            let m = closed_loop::run_window(dev, &[client], Mechanism::Mps, window)?;
            let c = m.clients[0];
            out.push(ProfilePoint {
                function: f.name.clone(),
                quota,
                sm,
                qps: c.qps,
                latency_ms: if c.qps > 0.0 { 1e3 / c.qps } else { f64::INFINITY },
            });
        }
    }
    Ok(out)
}
