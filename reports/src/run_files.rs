//! One run into one directory: simulates a scenario and writes everything it asks for —
//! `summary.json`, `summary.csv`, `latency_cdf.csv`, and as `[output]` says `invocations.csv`,
//! `timeseries.csv` and `timeline.json`. `gpushare run` and every point of a sweep go through
//! here, so their files are the same. A file this run does not write is removed if an earlier
//! run left it, so a directory never mixes two runs.

use crate::invocations::InvocationCsv;
use crate::series::{TimeseriesCsv, write_cdf};
use crate::summary_files::write_summary;
use crate::timeline::ChromeTrace;
use gpushare_sim::policy::Policy;
use gpushare_sim::record::{NullSink, RecordSink};
use gpushare_sim::time::secs_to_ns;
use gpushare_sim::{Scenario, SimError, Simulation};
use std::io;
use std::path::Path;

/// Why a run did not produce its files.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error(transparent)]
    Sim(#[from] SimError),
    /// (The error is not a `source`: printed with its chain, it would appear twice.)
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
}

fn io_at(what: impl Into<String>) -> impl FnOnce(io::Error) -> RunFailure {
    let what = what.into();
    move |error| RunFailure::Io { what, error }
}

/// Removes `path` if it exists.
fn remove_stale(path: &Path) -> Result<(), RunFailure> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io_at(format!("removing {}", path.display())))?;
    }
    Ok(())
}

/// What [`simulate_into`] returns: the run's output and how long building and running the
/// simulation took (wall time, without writing the summary files).
pub struct Simulated {
    pub output: gpushare_sim::RunOutput,
    pub wall: std::time::Duration,
}

/// Simulates `scenario` under `policy` and writes its files into `dir` (created if needed);
/// `invocations` may switch `invocations.csv` off whatever the scenario says.
pub fn simulate_into(
    dir: &Path,
    scenario: &Scenario,
    policy: Box<dyn Policy>,
    invocations: bool,
) -> Result<Simulated, RunFailure> {
    std::fs::create_dir_all(dir).map_err(io_at(format!("creating {}", dir.display())))?;
    let inv_path = dir.join("invocations.csv");
    let sink: Box<dyn RecordSink> = if scenario.output.invocations && invocations {
        Box::new(InvocationCsv::create(&inv_path).map_err(io_at(format!("creating {}", inv_path.display())))?)
    } else {
        remove_stale(&inv_path)?;
        Box::new(NullSink)
    };
    let started = std::time::Instant::now();
    let mut sim = Simulation::new(scenario, policy, sink)?;
    let timeline_path = dir.join("timeline.json");
    if scenario.output.timeline {
        let window = scenario
            .output
            .timeline_window_s
            .map(|[a, b]| (secs_to_ns(a), secs_to_ns(b)));
        let trace = ChromeTrace::create(&timeline_path, window)
            .map_err(io_at(format!("creating {}", timeline_path.display())))?;
        sim = sim
            .with_timeline(Box::new(trace))
            .map_err(io_at(format!("writing {}", timeline_path.display())))?;
    } else {
        remove_stale(&timeline_path)?;
    }
    let ts_path = dir.join("timeseries.csv");
    if scenario.output.timeseries_s.is_some() {
        let samples = TimeseriesCsv::create(dir).map_err(io_at(format!("creating {}", ts_path.display())))?;
        sim = sim.with_sample_sink(Box::new(samples));
    } else {
        remove_stale(&ts_path)?;
    }
    let mut output = sim.run()?;
    let wall = started.elapsed();
    output
        .sink
        .finish()
        .map_err(io_at(format!("writing {}", inv_path.display())))?;
    write_summary(dir, &output.summary).map_err(io_at(format!("writing the summary into {}", dir.display())))?;
    write_cdf(dir, &output.latency_cdf).map_err(io_at(format!("writing {}/latency_cdf.csv", dir.display())))?;
    Ok(Simulated { output, wall })
}
