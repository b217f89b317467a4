//! The replay's results: the records and NVML samples summarised in the simulator's schema
//! ([`crate::measured`]), the report (`replay.json`), and every file written into the output
//! folder.

use super::dispatch::{Inv, Tally, unfinished};
use super::prepare::Prepared;
use super::workers::Workers;
use super::{Delays, ReplayOptions, ReplayReport, ReplayRun, WorkerReport};
use crate::driver::ReplayError;
use crate::measured::{self, Inputs, Record, Summarised, WorkerUse};
use crate::nvml::{self, DeviceInfo};
use crate::protocol::Backend;
use gpushare_sim::Scenario;
use gpushare_sim::summary::{RunId, Summary};
use std::collections::HashMap;
use std::path::Path;

/// How the replay ended, for its results.
pub(super) struct Ended {
    pub tally: Tally,
    pub samples: Option<nvml::Samples>,
    /// The replay's time 0, on the clock of [`crate::protocol::now_ns`].
    pub origin: u64,
    /// The end of the measured window: the horizon, or when the replay stopped (drained or
    /// aborted).
    pub end: u64,
    pub wall_s: f64,
}

/// Summarises the replay, writes its results into `opts.out`, and says how it went: an error
/// if it stopped early.
pub(super) fn finish(
    p: Prepared,
    opts: &ReplayOptions,
    device: Option<DeviceInfo>,
    workers: &Workers,
    ended: Ended,
    mut notes: Vec<String>,
) -> Result<ReplayRun, ReplayError> {
    let Ended {
        tally,
        samples,
        origin,
        end,
        wall_s,
    } = ended;
    let s = &p.scenario;
    let records = with_unfinished(tally.records, tally.live);
    let nvml = nvml_since(samples.as_ref(), origin);
    if let Some(s) = &samples {
        notes.extend(s.notes.iter().cloned());
    }
    let busy_clocks = nvml::busy_clocks(&nvml.iter().map(|(_, x)| *x).collect::<Vec<_>>());
    let clock_sag = nvml::clock_sag(&nvml.iter().map(|(_, x)| *x).collect::<Vec<_>>(), p.reference_clock);
    notes.extend(clock_sag.clone());
    let functions: Vec<&str> = s.functions.iter().map(|f| f.name.as_str()).collect();
    let measured = Measured {
        functions: &functions,
        records: &records,
        nvml: &nvml,
        end,
        replies: tally.replies,
    };
    let out = summarise(&p, opts, device.as_ref(), &measured);
    let report = ReplayReport {
        backend: opts.backend.name(),
        measurement: opts.backend == Backend::Cuda,
        scenario: s.name.clone(),
        policy: s.policy.name.clone(),
        mechanism: p.lay.mechanism,
        gpus: opts.gpus.clone(),
        device,
        libraries: p.libraries,
        calibration: p.cal_path,
        time_scale: opts.time_scale,
        prediction_command: prediction_command(opts, &p.overrides),
        workers: worker_reports(workers, &functions),
        arrival_lag: Delays::of(tally.lags),
        handoff: Delays::of(tally.handoffs),
        nvml_samples: nvml.len(),
        sm_clock_busy_mhz: busy_clocks,
        clock_sagged: clock_sag.is_some(),
        wall_s,
        aborted: tally.aborted.clone(),
        notes,
    };
    let summary = out.summary;
    write_outputs(
        &opts.out,
        s,
        &summary,
        &out.latency_cdf,
        &records,
        &functions,
        samples.as_ref(),
        &nvml,
        &report,
        workers,
        origin,
    )
    .map_err(|e| ReplayError::Failed(format!("writing into {}: {e}", opts.out.display())))?;
    if let Some(why) = tally.aborted {
        return Err(ReplayError::Failed(format!(
            "the replay stopped early: {why}; what it recorded is in {}",
            opts.out.display()
        )));
    }
    Ok(ReplayRun { summary, report })
}

/// `records` and, after them, whatever is still `live`, which did not finish (by id).
fn with_unfinished(mut records: Vec<Record>, live: HashMap<u64, Inv>) -> Vec<Record> {
    let mut rest: Vec<(u64, Inv)> = live.into_iter().collect();
    rest.sort_by_key(|(id, _)| *id);
    records.extend(rest.iter().map(|(id, inv)| unfinished(*id, inv)));
    records
}

/// The NVML samples from `origin` on, each at its time since then.
fn nvml_since(samples: Option<&nvml::Samples>, origin: u64) -> Vec<(u64, nvml::Sample)> {
    samples
        .map(|s| {
            s.devices
                .iter()
                .filter(|x| x.t_ns >= origin)
                .map(|x| (x.t_ns.saturating_sub(origin), *x))
                .collect()
        })
        .unwrap_or_default()
}

/// What the replay measured, for its summary.
struct Measured<'a> {
    functions: &'a [&'a str],
    records: &'a [Record],
    nvml: &'a [(u64, nvml::Sample)],
    end: u64,
    replies: u64,
}

/// The summary in the simulator's schema, with a line that says how the replay ran.
fn summarise(p: &Prepared, opts: &ReplayOptions, device: Option<&DeviceInfo>, m: &Measured<'_>) -> Summarised {
    let (s, dev, lay) = (&p.scenario, &p.dev, &p.lay);
    let memory_mib = device.filter(|d| d.memory_total_bytes > 0).map_or(dev.memory_mib, |d| {
        d.memory_total_bytes as f64 / gpushare_sim::device::MIB as f64
    });
    let inputs = Inputs {
        run: RunId {
            scenario: &s.name,
            policy: &s.policy.name,
            seed: s.seed,
            horizon: s.horizon,
            end: m.end,
        },
        warmup: s.warmup,
        slo: s.slo,
        functions: m.functions.to_vec(),
        gpus: opts.gpus.iter().map(|&g| (g, dev.name.clone(), memory_mib)).collect(),
        workers: lay
            .workers
            .iter()
            .map(|w| WorkerUse {
                fraction: w.mps_percentage.map_or(1.0, |p| p / 100.0),
                gpu: w.gpu,
            })
            .collect(),
        records: m.records,
        nvml: m.nvml,
        replies: m.replies,
    };
    let mut out = measured::summarise(&inputs);
    out.summary.policy_report.push(format!(
        "replay ({}): {} workers, {:?} mechanism{}",
        opts.backend.name(),
        lay.workers.len(),
        lay.mechanism,
        if opts.backend == Backend::Emulated {
            "; emulated: no GPU was used, these are not measurements"
        } else {
            ""
        }
    ));
    out
}

/// The `gpushare run` command whose simulation this replay measures.
fn prediction_command(opts: &ReplayOptions, overrides: &[String]) -> String {
    let mut c = vec!["gpushare".to_string(), "run".to_string()];
    c.extend(opts.scenario_args.iter().cloned());
    for o in overrides {
        c.push("--set".into());
        c.push(o.clone());
    }
    c.join(" ")
}

/// Each worker as the report has it.
fn worker_reports(workers: &Workers, functions: &[&str]) -> Vec<WorkerReport> {
    workers
        .0
        .iter()
        .map(|w| {
            let r = w.ready.clone().expect("ready");
            WorkerReport {
                id: w.spec.id,
                gpu: w.spec.gpu,
                functions: w
                    .spec
                    .functions
                    .iter()
                    .map(|&f| functions[f as usize].to_string())
                    .collect(),
                lanes: w.spec.lanes,
                mps_percentage: w.spec.mps_percentage,
                sms_seen: r.sms,
                pid: r.pid,
                context_s: r.context_s,
                kernels: r.kernels,
                resident_mib: r.resident_bytes as f64 / gpushare_sim::device::MIB as f64,
                extra_mib: r.extra_bytes as f64 / gpushare_sim::device::MIB as f64,
                cublas: r.cublas,
                completed: w.completed,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    dir: &Path,
    s: &Scenario,
    summary: &Summary,
    cdf: &[(f64, f64)],
    records: &[Record],
    functions: &[&str],
    samples: Option<&nvml::Samples>,
    nvml: &[(u64, nvml::Sample)],
    report: &ReplayReport,
    workers: &Workers,
    origin: u64,
) -> std::io::Result<()> {
    use gpushare_reports::atomic::write_atomic;
    use std::fmt::Write as _;
    measured::write_invocations(dir, records, functions)?;
    gpushare_reports::write_summary(dir, summary)?;
    gpushare_reports::series::write_cdf(dir, cdf)?;
    let mut text = String::from("t_s,gpu,util_pct,mem_util_pct,mem_used_mib,sm_clock_mhz,mem_clock_mhz\n");
    for (t, x) in nvml {
        let _ = writeln!(
            text,
            "{:.6},{},{},{},{:.1},{},{}",
            *t as f64 / 1e9,
            x.gpu,
            x.util_pct,
            x.mem_util_pct,
            x.mem_used_bytes as f64 / gpushare_sim::device::MIB as f64,
            x.sm_clock_mhz,
            x.mem_clock_mhz
        );
    }
    write_atomic(&dir.join("nvml.csv"), text.as_bytes())?;
    let mut text = String::from("t_s,gpu,pid,worker,sm_util_pct,mem_util_pct\n");
    let worker_of = |pid: u32| {
        workers
            .0
            .iter()
            .find(|w| w.ready.as_ref().is_some_and(|r| r.pid == pid))
            .map(|w| w.spec.id.to_string())
            .unwrap_or_default()
    };
    if let Some(smp) = samples {
        for p in smp.processes.iter().filter(|p| p.t_ns >= origin) {
            let _ = writeln!(
                text,
                "{:.6},{},{},{},{},{}",
                (p.t_ns - origin) as f64 / 1e9,
                p.gpu,
                p.pid,
                worker_of(p.pid),
                p.sm_util_pct,
                p.mem_util_pct
            );
        }
    }
    write_atomic(&dir.join("nvml_processes.csv"), text.as_bytes())?;
    let ts = dir.join("timeseries.csv");
    if let Some(every) = s.output.timeseries_s {
        let gpus: Vec<u32> = report.gpus.clone();
        let per_gpu: Vec<u32> = gpus
            .iter()
            .map(|g| report.workers.iter().filter(|w| w.gpu == *g).count() as u32)
            .collect();
        let every = gpushare_sim::time::secs_to_ns(every);
        let series = measured::timeseries(nvml, &gpus, &per_gpu, every, summary.end_s as u64 * 1_000_000_000);
        gpushare_reports::series::write_timeseries(dir, &series)?;
    } else if ts.exists() {
        std::fs::remove_file(ts)?;
    }
    let json = serde_json::to_string_pretty(report).expect("reports serialise");
    write_atomic(&dir.join("replay.json"), (json + "\n").as_bytes())
}
