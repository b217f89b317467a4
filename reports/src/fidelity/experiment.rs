//! Running a row's experiment: a closed loop of clients on one GPU
//! ([`gpushare_policies::closed_loop`]) or a scenario file run as `gpushare run` would, and
//! reading the measured figure from it.

use super::dataset::{Experiment, Measure, Which};
use super::model::Model;
use gpushare_policies::closed_loop::{self, Client, Measurement};
use gpushare_sim::record::NullSink;
use gpushare_sim::{ScenarioSource, Simulation};
use std::path::Path;

/// Requests the slowest client completes in a closed loop's measured window.
pub const REQUESTS: u32 = 200;

/// What an experiment produced, before one figure is read from it.
pub enum Outcome {
    Loop(Box<Measurement>),
    Summary(serde_json::Value),
}

/// Runs `exp` with `model`; scenario files are found under `root`.
pub fn run(exp: &Experiment, model: &Model, root: &Path) -> Result<Outcome, String> {
    match exp {
        Experiment::ClosedLoop {
            device,
            mechanism,
            clients,
            ..
        } => {
            let dev = model.device(device)?;
            let mut built = Vec::with_capacity(clients.len());
            for c in clients {
                let (profile, reference) = model.profile(&c.workload)?;
                built.push(Client {
                    profile,
                    reference,
                    sm_cap: c.cap_pct / 100.0,
                    time_quota: c.quota,
                    slice: c.slice.clone(),
                });
            }
            closed_loop::run(&dev, &built, *mechanism, REQUESTS).map(|m| Outcome::Loop(Box::new(m)))
        }
        Experiment::Scenario { file, sets, .. } => {
            let path = root.join(file);
            let mut source = ScenarioSource::load(&path).map_err(|e| e.to_string())?;
            for s in sets {
                source.set(s).map_err(|e| e.to_string())?;
            }
            let mut scenario = source.parse().map_err(|e| e.to_string())?;
            // The model's coefficients, whatever the devices were built with.
            for d in &mut scenario.devices {
                model.coefficients().apply_to(d);
            }
            let policy = gpushare_policies::build(&scenario).map_err(|e| source.locate(e).to_string())?;
            let out = Simulation::new(&scenario, policy, Box::new(NullSink))
                .and_then(|s| s.run())
                .map_err(|e| e.to_string())?;
            serde_json::to_value(&out.summary)
                .map(Outcome::Summary)
                .map_err(|e| e.to_string())
        }
    }
}

/// The figure `exp` asks for, from what it produced.
pub fn read(exp: &Experiment, outcome: &Outcome) -> Result<f64, String> {
    let value = match (exp, outcome) {
        (
            Experiment::ClosedLoop {
                measure, which, scale, ..
            },
            Outcome::Loop(m),
        ) => loop_figure(m, *measure, *which) * scale,
        (Experiment::Scenario { measure, scale, .. }, Outcome::Summary(summary)) => {
            let mut v = summary;
            for key in measure.split('.') {
                v = v
                    .get(key)
                    .ok_or_else(|| format!("the summary has no `{measure}` (at `{key}`)"))?;
            }
            v.as_f64()
                .ok_or_else(|| format!("`{measure}` is not a number in the summary"))?
                * scale
        }
        _ => return Err("the outcome is not of this experiment's kind".into()),
    };
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(format!("the experiment predicted {value}"))
    }
}

/// A closed loop's figure. Every client is always busy, so its throughput is exactly the
/// inverse of its time per request.
fn loop_figure(m: &Measurement, measure: Measure, which: Which) -> f64 {
    let per = |i: usize| {
        let c = &m.clients[i];
        match measure {
            Measure::Qps => 1e3 / c.latency_ms,
            Measure::LatencyMs => c.latency_ms,
            Measure::GpuMs => c.latency_ms - c.host_ms,
            Measure::UtilisationPct => m.summary.gpus[0].utilisation * 100.0,
            Measure::SmOccupancyPct => m.summary.gpus[0].sm_occupancy * 100.0,
        }
    };
    match which {
        Which::Client(i) => per(i),
        Which::All => {
            let sum: f64 = (0..m.clients.len()).map(per).sum();
            match measure {
                Measure::Qps => sum,
                _ => sum / m.clients.len() as f64,
            }
        }
    }
}
