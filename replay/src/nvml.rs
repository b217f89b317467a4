//! NVML: the device's identity for reports, and a sampler thread that reads every GPU of a
//! replay each period (10 ms by default) — utilisation, memory-controller utilisation, memory
//! used, SM clock — and the per-process SM and memory utilisation NVML keeps.
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
                    match (&util, &mem) {
                        (Ok(u), Ok(m)) => out.devices.push(Sample {
                            t_ns,
                            gpu: *g,
                            util_pct: u.gpu,
                            mem_util_pct: u.memory,
                            mem_used_bytes: m.used,
                            sm_clock_mhz: clock.unwrap_or(0),
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
