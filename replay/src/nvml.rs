//! NVML: the device's identity for reports, and a sampler thread that reads every GPU of a
//! replay each period (10 ms by default) — utilisation, memory-controller utilisation, memory
//! used, SM and memory clocks — and the per-process SM and memory utilisation NVML keeps; the
//! clock helpers: a warm-up that waits for the SM clock to settle ([`warm_up`]) and the check
//! that flags a run whose clock sagged ([`clock_sag`]).
//!
//! nvml-wrapper loads `libnvidia-ml` at run time and reports a missing library as an error, so
//! a machine without it gets a note in the replay's report, not a failure.

use crate::protocol::now_ns;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Clock;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// One device reading.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Host clock, ns.
    pub t_ns: u64,
    pub gpu: u32,
    /// Percent of the last sample period with a kernel running (NVML's `gpu` utilisation).
    pub util_pct: u32,
    /// Percent of it with device memory being read or written.
    pub mem_util_pct: u32,
    pub mem_used_bytes: u64,
    pub sm_clock_mhz: u32,
    pub mem_clock_mhz: u32,
}

/// One per-process reading.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProcessSample {
    pub t_ns: u64,
    pub gpu: u32,
    pub pid: u32,
    pub sm_util_pct: u32,
    pub mem_util_pct: u32,
}

/// What a sampler collected.
#[derive(Debug, Default)]
pub struct Samples {
    pub devices: Vec<Sample>,
    pub processes: Vec<ProcessSample>,
    /// Readings NVML refused (per-process utilisation is unsupported on some boards), once each.
    pub notes: Vec<String>,
}

/// A device as NVML names it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeviceInfo {
    pub name: String,
    pub driver: String,
    pub memory_total_bytes: u64,
    pub compute_mode: String,
    pub mig_enabled: Option<bool>,
}

/// The identity of GPU `index`.
pub fn device_info(index: u32) -> Result<DeviceInfo, String> {
    let nvml = Nvml::init().map_err(|e| format!("NVML: {e}"))?;
    let d = nvml
        .device_by_index(index)
        .map_err(|e| format!("NVML device {index}: {e}"))?;
    Ok(DeviceInfo {
        name: d.name().unwrap_or_default(),
        driver: nvml.sys_driver_version().unwrap_or_default(),
        memory_total_bytes: d.memory_info().map(|m| m.total).unwrap_or(0),
        compute_mode: d.compute_mode().map(|m| format!("{m:?}")).unwrap_or_default(),
        mig_enabled: d.mig_mode().ok().map(|m| m.current == 1), // NVML_DEVICE_MIG_ENABLE
    })
}

/// A running sampler.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Samples>,
}

impl Sampler {
    /// Starts sampling `gpus` every `period`; `Err` when NVML cannot be initialised.
    pub fn start(gpus: Vec<u32>, period: Duration) -> Result<Sampler, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Samples::default();
            let nvml = match Nvml::init() {
                Ok(n) => n,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("NVML: {e}")));
                    return out;
                }
            };
            let mut devices = Vec::new();
            for &g in &gpus {
                match nvml.device_by_index(g) {
                    Ok(d) => devices.push((g, d)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("NVML device {g}: {e}")));
                        return out;
                    }
                }
            }
            let _ = ready_tx.send(Ok(()));
            let mut last_seen = vec![0u64; devices.len()];
            let mut refused: Vec<String> = Vec::new();
            let mut note = |what: String, out: &mut Samples| {
                if !refused.contains(&what) {
                    refused.push(what.clone());
                    out.notes.push(what);
                }
            };
            let mut next = now_ns();
            while !flag.load(Ordering::SeqCst) {
                let t_ns = now_ns();
                for (k, (g, d)) in devices.iter().enumerate() {
                    let util = d.utilization_rates();
                    let mem = d.memory_info();
                    let clock = d.clock_info(Clock::SM);
                    let mem_clock = d.clock_info(Clock::Memory);
                    match (&util, &mem) {
                        (Ok(u), Ok(m)) => out.devices.push(Sample {
                            t_ns,
                            gpu: *g,
                            util_pct: u.gpu,
                            mem_util_pct: u.memory,
                            mem_used_bytes: m.used,
                            sm_clock_mhz: clock.unwrap_or(0),
                            mem_clock_mhz: mem_clock.unwrap_or(0),
                        }),
                        (Err(e), _) | (_, Err(e)) => {
                            note(format!("NVML utilisation or memory of GPU {g}: {e}"), &mut out)
                        }
                    }
                    match d.process_utilization_stats(last_seen[k]) {
                        Ok(ps) => {
                            for p in ps {
                                last_seen[k] = last_seen[k].max(p.timestamp);
                                out.processes.push(ProcessSample {
                                    t_ns,
                                    gpu: *g,
                                    pid: p.pid,
                                    sm_util_pct: p.sm_util,
                                    mem_util_pct: p.mem_util,
                                });
                            }
                        }
                        // No process ran since the last reading.
                        Err(nvml_wrapper::error::NvmlError::NotFound) => {}
                        Err(e) => note(format!("NVML per-process utilisation of GPU {g}: {e}"), &mut out),
                    }
                }
                next += period.as_nanos() as u64;
                let now = now_ns();
                if next > now {
                    std::thread::sleep(Duration::from_nanos(next - now));
                } else {
                    next = now;
                }
            }
            out
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Sampler { stop, handle }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err("the NVML sampler thread ended before it started".into()),
        }
    }

    /// Stops sampling and returns what was read.
    pub fn finish(self) -> Samples {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
}

/// Reads GPU `index`'s clocks through NVML.
pub struct ClockReader {
    nvml: Nvml,
    index: u32,
}

impl ClockReader {
    /// `Err` when NVML cannot be initialised or has no such device.
    pub fn new(index: u32) -> Result<ClockReader, String> {
        let nvml = Nvml::init().map_err(|e| format!("NVML: {e}"))?;
        nvml.device_by_index(index)
            .map_err(|e| format!("NVML device {index}: {e}"))?;
        Ok(ClockReader { nvml, index })
    }

    /// The SM clock now, MHz.
    pub fn sm_mhz(&self) -> Option<u32> {
        self.nvml.device_by_index(self.index).ok()?.clock_info(Clock::SM).ok()
    }

    /// The memory clock now, MHz.
    pub fn mem_mhz(&self) -> Option<u32> {
        self.nvml
            .device_by_index(self.index)
            .ok()?
            .clock_info(Clock::Memory)
            .ok()
    }
}

/// How a warm-up ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WarmUp {
    /// Steps run and seconds spent.
    pub steps: u32,
    pub seconds: f64,
    /// The SM clock it settled at (the last reading), MHz; `None`: no clock could be read.
    pub sm_clock_mhz: Option<u32>,
    /// Whether the clock settled before the time ran out.
    pub stable: bool,
}

/// Consecutive readings within this fraction of each other count as a settled clock.
pub const CLOCK_TOLERANCE: f64 = 0.01;
/// How many consecutive readings must agree.
pub const CLOCK_READINGS: usize = 5;

/// Runs `step` (a burst of GPU work) until the SM clock that `read` reports has settled —
/// [`CLOCK_READINGS`] consecutive readings within [`CLOCK_TOLERANCE`], after at least
/// `min` — or until `max` has passed. Without clock readings it runs for `min`.
pub fn warm_up(
    mut step: impl FnMut() -> Result<(), String>,
    read: impl Fn() -> Option<u32>,
    min: Duration,
    max: Duration,
) -> Result<WarmUp, String> {
    let started = std::time::Instant::now();
    let mut readings: Vec<u32> = Vec::new();
    let mut steps = 0;
    loop {
        crate::signals::check_interrupted()?;
        step()?;
        steps += 1;
        let clock = read();
        if let Some(c) = clock {
            readings.push(c);
        }
        let elapsed = started.elapsed();
        let tail = &readings[readings.len().saturating_sub(CLOCK_READINGS)..];
        let settled = tail.len() == CLOCK_READINGS && {
            let (lo, hi) = (
                tail.iter().min().copied().unwrap_or(0),
                tail.iter().max().copied().unwrap_or(0),
            );
            f64::from(hi - lo) <= CLOCK_TOLERANCE * f64::from(hi)
        };
        let no_clock = readings.is_empty();
        if (elapsed >= min && (settled || no_clock)) || elapsed >= max {
            return Ok(WarmUp {
                steps,
                seconds: elapsed.as_secs_f64(),
                sm_clock_mhz: readings.last().copied(),
                stable: settled,
            });
        }
    }
}

/// Samples count as busy from this utilisation on: NVML's utilisation is a trailing average,
/// so a sample just after idle time can read low clocks at some utilisation.
pub const BUSY_UTIL_PCT: u32 = 50;

/// The SM clocks of samples taken while the GPU was busy: (10th percentile, median, highest),
/// MHz.
pub fn busy_clocks(samples: &[Sample]) -> Option<(u32, u32, u32)> {
    let mut c: Vec<u32> = samples
        .iter()
        .filter(|s| s.util_pct >= BUSY_UTIL_PCT && s.sm_clock_mhz > 0)
        .map(|s| s.sm_clock_mhz)
        .collect();
    if c.is_empty() {
        return None;
    }
    c.sort_unstable();
    Some((c[c.len() / 10], c[c.len() / 2], c[c.len() - 1]))
}

/// A run's clock sagged when a tenth of its busy readings fell more than this fraction below
/// the reference (the clock the calibration settled at, or else the run's own highest busy
/// reading).
pub const SAG_TOLERANCE: f64 = 0.05;

/// Why a run's clock counts as sagged, if it does.
pub fn clock_sag(samples: &[Sample], reference_mhz: Option<u32>) -> Option<String> {
    let (p10, median, hi) = busy_clocks(samples)?;
    let reference = reference_mhz.unwrap_or(hi);
    (f64::from(p10) < (1.0 - SAG_TOLERANCE) * f64::from(reference)).then(|| {
        format!(
            "the SM clock sagged: a tenth of the busy readings at or below {p10} MHz (median {median}, highest {hi}) against \
             {reference} MHz{}; times measured then are slower than the calibration assumes",
            if reference_mhz.is_some() { " at calibration" } else { " (the run's highest)" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn sample(util: u32, mhz: u32) -> Sample {
        Sample {
            t_ns: 0,
            gpu: 0,
            util_pct: util,
            mem_util_pct: 0,
            mem_used_bytes: 0,
            sm_clock_mhz: mhz,
            mem_clock_mhz: 3201,
        }
    }

    #[test]
    fn the_warm_up_waits_for_the_clock_to_settle() {
        // A clock that ramps up for ten readings, then holds.
        let k = Cell::new(0u32);
        let w = warm_up(
            || {
                k.set(k.get() + 1);
                Ok(())
            },
            || Some(1980u32.min(1000 + 100 * k.get())),
            Duration::ZERO,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(w.stable && w.sm_clock_mhz == Some(1980), "{w:?}");
        assert!(w.steps >= 10 + CLOCK_READINGS as u32 - 1, "{w:?}");
        // Without a clock it runs its minimum and says the clock was not seen to settle.
        let w = warm_up(|| Ok(()), || None, Duration::from_millis(5), Duration::from_secs(1)).unwrap();
        assert!(!w.stable && w.sm_clock_mhz.is_none() && w.seconds >= 0.005, "{w:?}");
        // A clock that never settles stops at the maximum.
        let k = Cell::new(0u32);
        let w = warm_up(
            || {
                k.set(k.get() + 1);
                Ok(())
            },
            || Some(if k.get() % 2 == 0 { 1000 } else { 2000 }),
            Duration::ZERO,
            Duration::from_millis(20),
        )
        .unwrap();
        assert!(!w.stable && w.seconds >= 0.02, "{w:?}");
    }

    #[test]
    fn a_busy_clock_below_the_reference_is_flagged() {
        let steady = [sample(90, 1980), sample(95, 1975), sample(0, 345), sample(20, 400)];
        assert_eq!(busy_clocks(&steady), Some((1975, 1980, 1980)));
        assert!(
            clock_sag(&steady, Some(1980)).is_none(),
            "idle and barely busy readings do not count"
        );
        // One low reading in twenty is not a sag; a fifth of them is.
        let mut one_low: Vec<Sample> = (0..19).map(|_| sample(90, 1980)).collect();
        one_low.push(sample(90, 1500));
        assert!(clock_sag(&one_low, Some(1980)).is_none());
        let mut sagging: Vec<Sample> = (0..8).map(|_| sample(90, 1980)).collect();
        sagging.extend([sample(95, 1700), sample(95, 1700)]);
        let why = clock_sag(&sagging, Some(1980)).unwrap();
        assert!(why.contains("1700 MHz") && why.contains("at calibration"), "{why}");
        assert!(clock_sag(&sagging, None).unwrap().contains("run's highest"));
        assert!(clock_sag(&[sample(0, 345)], None).is_none());
    }
}
