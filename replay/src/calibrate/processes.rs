//! The measurements that need several processes, made with the replay's own workers: context
//! creation (time and memory) in fresh processes, two processes time-slicing the GPU, and the
//! spin kernel under MPS active-thread percentages.

use super::CalibrateOptions;
use crate::calibration::{Measured, ReplayCalibration};
use crate::client::WorkerClient;
use crate::mps::MpsDaemon;
use crate::plan::{FunctionPlan, Op, PlannedOp};
use crate::protocol::{Backend, Setup};
use crate::quantile;

/// A worker serving one spin kernel per entry of `spins` (blocks, iterations), as functions
/// 0, 1, …, started with `env` and waited for.
fn spin_worker(
    opts: &CalibrateOptions,
    threads: u32,
    spins: &[(u32, u64)],
    env: &[(String, String)],
    pct: Option<f64>,
) -> Result<WorkerClient, String> {
    crate::signals::check_interrupted()?;
    let plans: Vec<FunctionPlan> = spins
        .iter()
        .enumerate()
        .map(|(i, &(blocks, iters))| FunctionPlan {
            name: format!("spin{i}"),
            ops: vec![PlannedOp {
                op: Op::Spin { blocks, iters },
                ns: 0,
            }],
            resident_bytes: 0,
            activation_bytes: 0,
            planned_ns: 0,
        })
        .collect();
    let setup = Setup::one_lane(0, opts.gpu, Backend::Cuda, plans, pct, threads);
    WorkerClient::start(&opts.worker_exe, &setup, env)
}

fn memory_used_mib(gpu: u32) -> Option<f64> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let d = nvml.device_by_index(gpu).ok()?;
    Some(d.memory_info().ok()?.used as f64 / (1u64 << 20) as f64)
}

/// Iterations of the spin kernel for `ms` on every SM.
fn iters_for(cal: &ReplayCalibration, ms: f64) -> u64 {
    (cal.spin_iters_per_us * ms * 1e3).round().max(1.0) as u64
}

/// Fills the multi-process measurements into `m`.
pub fn measure(opts: &CalibrateOptions, cal: &ReplayCalibration, m: &mut Measured) -> Result<(), String> {
    let threads = cal.threads_per_block;

    // Context creation, five fresh processes; memory from NVML before and after.
    let mut mem = Vec::new();
    for _ in 0..5 {
        let before = memory_used_mib(opts.gpu);
        let p = spin_worker(opts, threads, &[], &[], None)?;
        if let (Some(b), Some(a)) = (before, memory_used_mib(opts.gpu)) {
            mem.push(a - b);
        }
        m.context_create_s.push(p.ready.context_s);
        p.quit();
    }
    if !mem.is_empty() {
        m.context_memory_mib = Some(quantile(&mut mem, 0.5));
    }
    eprintln!(
        "  context creation {:.3} s (median of {}), {:.0} MiB",
        quantile(&mut m.context_create_s.clone(), 0.5),
        m.context_create_s.len(),
        m.context_memory_mib.unwrap_or(f64::NAN)
    );

    // Time slicing: a 1 ms kernel of one process while another keeps 25 ms kernels queued.
    if crate::probe::processes_allowed(&m.compute_mode).is_some_and(|n| n < 2) {
        m.notes.push(format!(
            "compute mode {}: two processes cannot share the GPU, time slicing not measured",
            m.compute_mode
        ));
    } else {
        time_slicing(opts, cal, m)?;
    }
    mps_curve(opts, cal, m)
}

/// Two processes time-slicing: a short kernel's latency beside another process's long ones.
fn time_slicing(opts: &CalibrateOptions, cal: &ReplayCalibration, m: &mut Measured) -> Result<(), String> {
    let (sms, threads) = (m.sms, cal.threads_per_block);
    let short = (sms, iters_for(cal, 1.0));
    let long = (sms, iters_for(cal, 25.0));
    let mut a = spin_worker(opts, threads, &[short], &[], None)?;
    let mut b = spin_worker(opts, threads, &[long], &[], None)?;
    let mut alone = Vec::new();
    for _ in 0..30 {
        let d = a.run(0)?;
        alone.push((d.end_ns - d.start_ns) as f64 / 1e6);
    }
    let queued = 80;
    for _ in 0..queued {
        b.send(0)?;
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut shared = Vec::new();
    for i in 0..40 {
        let d = a.run(0)?;
        shared.push((d.end_ns - d.start_ns) as f64 / 1e6);
        // Spread the probes over the other process's kernels.
        std::thread::sleep(std::time::Duration::from_micros(3_000 + 1_700 * (i % 7)));
    }
    for _ in 0..queued {
        b.recv()?;
    }
    a.quit();
    b.quit();
    let probe = (
        quantile(&mut shared, 0.5),
        quantile(&mut shared, 0.99),
        quantile(&mut alone, 0.5),
    );
    eprintln!(
        "  time slicing: a 1 ms kernel takes {:.2} ms (p50), {:.2} ms (p99) beside 25 ms kernels of another process; {:.2} ms alone",
        probe.0, probe.1, probe.2
    );
    m.time_slice_probe_ms = Some(probe);
    Ok(())
}

/// The spin kernel over every SM under MPS active-thread percentages.
fn mps_curve(opts: &CalibrateOptions, cal: &ReplayCalibration, m: &mut Measured) -> Result<(), String> {
    let (sms, threads) = (m.sms, cal.threads_per_block);
    if opts.no_mps {
        m.notes.push("MPS not measured (--no-mps)".into());
        return Ok(());
    }
    let daemon = match MpsDaemon::start() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("  {e}: MPS curve skipped");
            m.notes.push(format!("{e}: MPS curve not measured"));
            return Ok(());
        }
    };
    let work = (sms, iters_for(cal, 20.0));
    let mut full = None;
    for pct in [100.0, 87.5, 75.0, 50.0, 25.0, 12.5] {
        let mut p = spin_worker(opts, threads, &[work], &daemon.client_env(Some(pct)), Some(pct))?;
        if full.is_none()
            && let Err(e) = daemon.check_clients_joined()
        {
            p.quit();
            m.notes.push(format!("{e}: MPS curve not measured"));
            return Ok(());
        }
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(p.run(0)?.gpu_ns as f64);
        }
        p.quit();
        let t100 = *full.get_or_insert(best);
        m.spin_speed_by_mps_share.push((pct / 100.0, t100 / best));
    }
    drop(daemon);
    eprintln!(
        "  MPS: spin speed by active-thread share {:?}",
        m.spin_speed_by_mps_share
    );
    Ok(())
}
