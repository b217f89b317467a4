//! `gpushare colocate`: a measured co-location matrix. Synthetic kernels of known makeup —
//! compute-bound (the spin kernel), memory-bound (the stream kernel), mixed (one after the
//! other), over the whole GPU or a quarter of its SMs — run alone and in pairs, each in a
//! closed loop (one request in flight, the next sent when the last returns, as the published
//! co-location numbers are measured and as the simulator's closed loops run), under CUDA's time
//! slicing (two processes, no MPS) and under MPS at active-thread caps 100/100, 50/50 and 25/75.
//! The GPU's clocks, modes and MIG layout are left alone.
//!
//! It writes `colocation.csv` (one row per kernel alone under each cap, one per pair under each
//! sharing) and `colocation-kernels.csv` (each kernel's planned makeup and its measured solo
//! bandwidth), the inputs of the validation rows built from them
//! (`gpushare_reports::fidelity::colocation`).

use crate::calibration::{Calibration, ReplayCalibration};
use crate::client::WorkerClient;
use crate::mps::MpsDaemon;
use crate::plan::{FunctionPlan, Op, PlannedOp, stream_shape};
use crate::protocol::{Backend, Setup};
use crate::{ReplayError, quantile};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct ColocateOptions {
    pub gpu: u32,
    pub backend: Backend,
    pub calibration: Option<PathBuf>,
    pub worker_exe: PathBuf,
    /// Seconds each pair runs (each kernel alone runs half of it).
    pub cell_s: f64,
    /// Skip the MPS sharings (no daemon is started).
    pub no_mps: bool,
    /// The folder the two files are written into.
    pub out: PathBuf,
}

/// One synthetic kernel: its grid's share of the SMs and the time it spends in the spin and in
/// the stream kernel alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelKind {
    pub name: &'static str,
    pub sm_share: f64,
    pub spin_ms: f64,
    pub stream_ms: f64,
}

/// The grid: every kernel lasts about 5 ms alone (more than two time slices).
pub const KERNELS: [KernelKind; 5] = [
    KernelKind {
        name: "compute-full",
        sm_share: 1.0,
        spin_ms: 5.0,
        stream_ms: 0.0,
    },
    KernelKind {
        name: "compute-quarter",
        sm_share: 0.25,
        spin_ms: 5.0,
        stream_ms: 0.0,
    },
    KernelKind {
        name: "memory-full",
        sm_share: 1.0,
        spin_ms: 0.0,
        stream_ms: 5.0,
    },
    KernelKind {
        name: "memory-quarter",
        sm_share: 0.25,
        spin_ms: 0.0,
        stream_ms: 5.0,
    },
    KernelKind {
        name: "mixed-full",
        sm_share: 1.0,
        spin_ms: 2.5,
        stream_ms: 2.5,
    },
];

/// How the two processes share the GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sharing {
    TimeSlicing,
    /// MPS with the two clients' active-thread percentages.
    Mps(f64, f64),
}

/// The sharings measured, in order.
pub const SHARINGS: [Sharing; 4] = [
    Sharing::TimeSlicing,
    Sharing::Mps(100.0, 100.0),
    Sharing::Mps(50.0, 50.0),
    Sharing::Mps(25.0, 75.0),
];

impl Sharing {
    fn name(self) -> &'static str {
        match self {
            Sharing::TimeSlicing => "time-sharing",
            Sharing::Mps(..) => "mps",
        }
    }

    fn caps(self) -> (f64, f64) {
        match self {
            Sharing::TimeSlicing => (100.0, 100.0),
            Sharing::Mps(a, b) => (a, b),
        }
    }

    /// The pairs measured: unordered when both sides are alike, ordered otherwise.
    fn pairs(self) -> Vec<(usize, usize)> {
        let n = KERNELS.len();
        let (a, b) = self.caps();
        (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| a != b || i <= j)
            .collect()
    }
}

/// `kind` as the harness's operations on a device with `sms` SMs, sized by `cal`.
pub fn kernel_plan(kind: &KernelKind, sms: u32, cal: &ReplayCalibration) -> FunctionPlan {
    let blocks = ((kind.sm_share * f64::from(sms)).round() as u32).clamp(1, sms.max(1));
    let mut ops = Vec::new();
    if kind.spin_ms > 0.0 {
        let ns = (kind.spin_ms * 1e6).round() as u64;
        let iters = (kind.spin_ms * 1e3 * cal.spin_iters_per_us).round().max(1.0) as u64;
        ops.push(PlannedOp {
            op: Op::Spin { blocks, iters },
            ns,
        });
    }
    if kind.stream_ms > 0.0 {
        let gbps = cal.stream_gbps_at(f64::from(blocks) / f64::from(sms.max(1)));
        let (bytes, passes) = stream_shape(kind.stream_ms * 1e6 * gbps);
        ops.push(PlannedOp {
            op: Op::Stream { blocks, bytes, passes },
            ns: (kind.stream_ms * 1e6).round() as u64,
        });
    }
    FunctionPlan {
        name: kind.name.to_string(),
        planned_ns: ops.iter().map(|o| o.ns).sum(),
        ops,
        resident_bytes: 0,
        activation_bytes: 0,
    }
}

/// Bytes one request of `plan` moves through device memory (read plus written).
fn moved_bytes(plan: &FunctionPlan) -> u64 {
    plan.ops
        .iter()
        .map(|o| match o.op {
            Op::Stream { bytes, passes, .. } => 2 * bytes * u64::from(passes),
            _ => 0,
        })
        .sum()
}

/// A closed loop on `w` running function `func` until `until`: each request's time on the
/// worker, ms, the first two (warm-up) left out.
fn closed_loop(w: &mut WorkerClient, func: u32, until: Instant) -> Result<Vec<f64>, String> {
    let mut ms = Vec::new();
    while Instant::now() < until || ms.len() < 4 {
        crate::signals::check_interrupted()?;
        let d = w.run(func)?;
        ms.push((d.end_ns - d.start_ns) as f64 / 1e6);
    }
    Ok(ms.split_off(2))
}

/// Mean and count of a loop's times.
fn mean(v: &[f64]) -> (f64, usize) {
    (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
}

/// One measured figure: mean and median request time, ms, and how many requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub n: usize,
}

fn figure(mut v: Vec<f64>) -> Figure {
    let (m, n) = mean(&v);
    Figure {
        mean_ms: m,
        p50_ms: quantile(&mut v, 0.5),
        n,
    }
}

/// One row of `colocation.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub sharing: Sharing,
    pub kernel_a: usize,
    /// `None`: kernel a alone (under cap a).
    pub kernel_b: Option<usize>,
    pub a: Figure,
    pub b: Option<Figure>,
    pub sm_clock_mhz: Option<u32>,
}

/// The two workers of one sharing, each serving every kernel (functions 0, 1, …).
fn start_pair(
    opts: &ColocateOptions,
    plans: &[FunctionPlan],
    threads: u32,
    sharing: Sharing,
    daemon: Option<&MpsDaemon>,
) -> Result<(WorkerClient, WorkerClient), String> {
    let (cap_a, cap_b) = sharing.caps();
    let start = |id: usize, cap: f64| {
        let pct = matches!(sharing, Sharing::Mps(..)).then_some(cap);
        let setup = Setup::one_lane(id, opts.gpu, opts.backend, plans.to_vec(), pct, threads);
        let env = daemon.map(|d| d.client_env(pct)).unwrap_or_default();
        WorkerClient::start(&opts.worker_exe, &setup, &env)
    };
    let a = start(0, cap_a)?;
    let b = start(1, cap_b)?;
    if let Some(d) = daemon {
        d.check_clients_joined()?;
    }
    Ok((a, b))
}

/// Measures one sharing: every kernel alone on each side, then every pair.
fn measure_sharing(
    opts: &ColocateOptions,
    plans: &[FunctionPlan],
    threads: u32,
    sharing: Sharing,
    clock: &dyn Fn() -> Option<u32>,
) -> Result<Vec<Cell>, String> {
    let daemon = match sharing {
        Sharing::Mps(..) if opts.backend == Backend::Cuda => Some(MpsDaemon::start()?),
        _ => None,
    };
    let (mut a, mut b) = start_pair(opts, plans, threads, sharing, daemon.as_ref())?;
    let cell = Duration::from_secs_f64(opts.cell_s);
    let mut cells = Vec::new();
    let (cap_a, cap_b) = sharing.caps();
    let sides: &[(usize, f64)] = if cap_a == cap_b {
        &[(0, cap_a)]
    } else {
        &[(0, cap_a), (1, cap_b)]
    };
    for &(side, cap) in sides {
        for k in 0..plans.len() {
            let w = if side == 0 { &mut a } else { &mut b };
            let alone = closed_loop(w, k as u32, Instant::now() + cell / 2)?;
            // Alone under cap b is recorded as side a of the mirrored sharing.
            let as_side_a = match sharing {
                Sharing::Mps(..) if side == 1 => Sharing::Mps(cap, cap_a),
                other => other,
            };
            cells.push(Cell {
                sharing: as_side_a,
                kernel_a: k,
                kernel_b: None,
                a: figure(alone),
                b: None,
                sm_clock_mhz: clock(),
            });
        }
    }
    for (i, j) in sharing.pairs() {
        let until = Instant::now() + cell;
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| closed_loop(&mut a, i as u32, until));
            let hb = s.spawn(|| closed_loop(&mut b, j as u32, until));
            (ha.join(), hb.join())
        });
        let ra = ra.map_err(|_| "a measuring thread panicked".to_string())??;
        let rb = rb.map_err(|_| "a measuring thread panicked".to_string())??;
        cells.push(Cell {
            sharing,
            kernel_a: i,
            kernel_b: Some(j),
            a: figure(ra),
            b: Some(figure(rb)),
            sm_clock_mhz: clock(),
        });
    }
    a.quit();
    b.quit();
    drop(daemon);
    Ok(cells)
}

/// The alone figure of `kernel` under cap `cap` among `cells`.
fn alone_of(cells: &[Cell], kernel: usize, cap: f64, mps: bool) -> Option<Figure> {
    cells
        .iter()
        .find(|c| {
            c.kernel_b.is_none()
                && c.kernel_a == kernel
                && matches!(c.sharing, Sharing::Mps(..)) == mps
                && c.sharing.caps().0 == cap
        })
        .map(|c| c.a)
}

/// `colocation.csv`'s text.
pub fn csv(gpu: &str, backend: Backend, cells: &[Cell]) -> String {
    let mut t = String::from(
        "gpu,backend,kind,mechanism,cap_a_pct,cap_b_pct,kernel_a,kernel_b,alone_a_ms,alone_b_ms,\
         mean_a_ms,mean_b_ms,p50_a_ms,p50_b_ms,slowdown_a,slowdown_b,n_a,n_b,sm_clock_mhz\n",
    );
    let num = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
    for c in cells {
        let (cap_a, cap_b) = c.sharing.caps();
        let mps = matches!(c.sharing, Sharing::Mps(..));
        let alone_a = alone_of(cells, c.kernel_a, cap_a, mps).map(|f| f.mean_ms);
        let alone_b = c
            .kernel_b
            .and_then(|k| alone_of(cells, k, cap_b, mps))
            .map(|f| f.mean_ms);
        let _ = writeln!(
            t,
            "{gpu},{},{},{},{cap_a},{},{},{},{},{},{:.4},{},{:.4},{},{},{},{},{},{}",
            backend.name(),
            if c.kernel_b.is_some() { "pair" } else { "alone" },
            c.sharing.name(),
            if c.kernel_b.is_some() {
                cap_b.to_string()
            } else {
                String::new()
            },
            KERNELS[c.kernel_a].name,
            c.kernel_b.map_or("", |k| KERNELS[k].name),
            num(alone_a),
            num(alone_b),
            c.a.mean_ms,
            num(c.b.map(|f| f.mean_ms)),
            c.a.p50_ms,
            num(c.b.map(|f| f.p50_ms)),
            num(c.kernel_b.and(alone_a).map(|x| c.a.mean_ms / x)),
            num(c.b.zip(alone_b).map(|(f, x)| f.mean_ms / x)),
            c.a.n,
            c.b.map_or(String::new(), |f| f.n.to_string()),
            c.sm_clock_mhz.map_or(String::new(), |m| m.to_string()),
        );
    }
    t
}

/// `colocation-kernels.csv`'s text: each kernel's grid, planned times, bytes moved per
/// request, and the bandwidth it reached alone on the whole GPU (moved / measured time).
pub fn kernels_csv(gpu: &str, backend: Backend, cal: &Calibration, plans: &[FunctionPlan], cells: &[Cell]) -> String {
    // The built-in device the calibrated one was measured as (its datasheet peaks).
    let device = cal.device.name.trim_end_matches("-measured");
    let mut t = String::from(
        "gpu,backend,device,kernel,blocks,threads_per_block,sm_share,spin_ms,stream_ms,moved_mib,alone_ms,alone_gbps,peak_gbps,dram_pct\n",
    );
    for (k, (kind, plan)) in KERNELS.iter().zip(plans).enumerate() {
        let blocks = plan
            .ops
            .iter()
            .find_map(|o| match o.op {
                Op::Spin { blocks, .. } | Op::Stream { blocks, .. } => Some(blocks),
                _ => None,
            })
            .unwrap_or(0);
        let moved = moved_bytes(plan);
        let alone = alone_of(cells, k, 100.0, false).or_else(|| alone_of(cells, k, 100.0, true));
        let gbps = alone.map(|f| moved as f64 / (f.mean_ms * 1e-3) / 1e9);
        let peak = cal.device.mem_bandwidth_gbps;
        let _ = writeln!(
            t,
            "{gpu},{},{device},{},{blocks},{},{},{},{},{:.1},{},{},{peak},{}",
            backend.name(),
            kind.name,
            cal.replay.threads_per_block,
            kind.sm_share,
            kind.spin_ms,
            kind.stream_ms,
            moved as f64 / (1u64 << 20) as f64,
            alone.map_or(String::new(), |f| format!("{:.4}", f.mean_ms)),
            gbps.map_or(String::new(), |g| format!("{g:.1}")),
            gbps.map_or(String::new(), |g| format!("{:.1}", 100.0 * g / peak)),
        );
    }
    t
}

/// What `colocate` wrote.
pub struct Written {
    pub cells: usize,
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// Measures the matrix and writes the two files into `opts.out`.
pub fn colocate(opts: &ColocateOptions, label: &str) -> Result<Written, ReplayError> {
    if opts.backend == Backend::Cuda && !crate::driver::driver_present() {
        return Err(ReplayError::Unavailable(crate::NO_DRIVER.into()));
    }
    if !(opts.cell_s.is_finite() && opts.cell_s > 0.0 && opts.cell_s <= 60.0) {
        return Err(ReplayError::Input(format!(
            "--cell-s {}: expected seconds in (0, 60]",
            opts.cell_s
        )));
    }
    if opts.backend == Backend::Cuda {
        // SAFETY: called from the command line before any thread or CUDA call.
        unsafe { crate::protocol::pin_device_order() };
    }
    crate::signals::install();
    let cal = crate::calibration::load_or_nominal(opts.calibration.as_deref(), opts.backend)?;
    let sms = cal.device.sms;
    let plans: Vec<FunctionPlan> = KERNELS.iter().map(|k| kernel_plan(k, sms, &cal.replay)).collect();
    let mut notes = Vec::new();
    let device = (opts.backend == Backend::Cuda)
        .then(|| crate::nvml::device_info(opts.gpu).ok())
        .flatten();
    let mode = device
        .as_ref()
        .map_or("Default".to_string(), |d| d.compute_mode.clone());
    let clocks = (opts.backend == Backend::Cuda)
        .then(|| crate::nvml::ClockReader::new(opts.gpu).ok())
        .flatten();
    let clock = || clocks.as_ref().and_then(|c| c.sm_mhz());
    let mut cells = Vec::new();
    for sharing in SHARINGS {
        let mechanism = match sharing {
            Sharing::TimeSlicing => crate::plan::Mechanism::TimeSlicing,
            Sharing::Mps(..) => crate::plan::Mechanism::Mps,
        };
        if matches!(sharing, Sharing::Mps(..)) && opts.no_mps {
            notes.push(format!("{sharing:?} skipped (--no-mps)"));
            continue;
        }
        if let Err(e) = crate::probe::check_compute_mode(&mode, mechanism, 2) {
            notes.push(format!("{sharing:?} skipped: {e}"));
            continue;
        }
        eprintln!("  {sharing:?} …");
        match measure_sharing(opts, &plans, cal.replay.threads_per_block, sharing, &clock) {
            Ok(c) => {
                cells.extend(c);
                // Written after each sharing: a run stopped by its time limit keeps what it measured.
                write(opts, label, &cal, &plans, &cells)?;
            }
            // MPS may be missing or broken here (a client the daemon never serves): the other
            // sharings still stand.
            Err(e) if matches!(sharing, Sharing::Mps(..)) => {
                notes.push(format!("{sharing:?} not measured: {e}"));
            }
            Err(e) => return Err(ReplayError::Failed(format!("{sharing:?}: {e}"))),
        }
    }
    if cells.is_empty() {
        return Err(ReplayError::Unavailable(format!(
            "nothing could be measured: {}",
            notes.join("; ")
        )));
    }
    write(opts, label, &cal, &plans, &cells).map(|files| Written {
        cells: cells.len(),
        files,
        notes,
    })
}

fn write(
    opts: &ColocateOptions,
    label: &str,
    cal: &Calibration,
    plans: &[FunctionPlan],
    cells: &[Cell],
) -> Result<Vec<PathBuf>, ReplayError> {
    let failed = |p: &Path, e: std::io::Error| ReplayError::Failed(format!("writing {}: {e}", p.display()));
    std::fs::create_dir_all(&opts.out).map_err(|e| failed(&opts.out, e))?;
    let main = opts.out.join("colocation.csv");
    let kernels = opts.out.join("colocation-kernels.csv");
    gpushare_reports::atomic::write_atomic(&main, csv(label, opts.backend, cells).as_bytes())
        .map_err(|e| failed(&main, e))?;
    gpushare_reports::atomic::write_atomic(&kernels, kernels_csv(label, opts.backend, cal, plans, cells).as_bytes())
        .map_err(|e| failed(&kernels, e))?;
    Ok(vec![main, kernels])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_pairs_alike_sides_once_and_unlike_sides_both_ways() {
        assert_eq!(Sharing::TimeSlicing.pairs().len(), 15);
        assert_eq!(Sharing::Mps(50.0, 50.0).pairs().len(), 15);
        assert_eq!(Sharing::Mps(25.0, 75.0).pairs().len(), 25);
    }

    #[test]
    fn kernels_are_sized_to_their_planned_time() {
        let cal = crate::calibration::nominal_sizing(2000.0);
        let p = kernel_plan(&KERNELS[4], 132, &cal);
        assert_eq!(p.planned_ns, 5_000_000);
        let Op::Spin { blocks, iters } = p.ops[0].op else {
            panic!()
        };
        assert_eq!((blocks, iters), (132, 2_500_000));
        // 2.5 ms at 2000 GB/s moves 5 GB.
        assert!((moved_bytes(&p) as f64 / 5e9 - 1.0).abs() < 1e-3, "{}", moved_bytes(&p));
        let q = kernel_plan(&KERNELS[1], 132, &cal);
        assert!(matches!(q.ops[0].op, Op::Spin { blocks: 33, .. }));
    }

    #[test]
    fn the_csv_puts_each_pair_beside_its_kernels_alone() {
        let f = |mean_ms| Figure {
            mean_ms,
            p50_ms: mean_ms,
            n: 10,
        };
        let cells = vec![
            Cell {
                sharing: Sharing::Mps(50.0, 50.0),
                kernel_a: 0,
                kernel_b: None,
                a: f(5.0),
                b: None,
                sm_clock_mhz: Some(1980),
            },
            Cell {
                sharing: Sharing::Mps(50.0, 50.0),
                kernel_a: 2,
                kernel_b: None,
                a: f(4.0),
                b: None,
                sm_clock_mhz: None,
            },
            Cell {
                sharing: Sharing::Mps(50.0, 50.0),
                kernel_a: 0,
                kernel_b: Some(2),
                a: f(6.0),
                b: Some(f(8.0)),
                sm_clock_mhz: None,
            },
        ];
        let text = csv("h200", Backend::Cuda, &cells);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].starts_with("h200,cuda,alone,mps,50,,compute-full,,5.0000,,5.0000,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[3].starts_with("h200,cuda,pair,mps,50,50,compute-full,memory-full,5.0000,4.0000,6.0000,8.0000,6.0000,8.0000,1.2000,2.0000,10,10,"),
            "{}",
            lines[3]
        );
    }
}
