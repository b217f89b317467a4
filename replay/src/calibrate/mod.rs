//! `gpushare calibrate`: measures a GPU and writes the device profile the simulator loads
//! (`gpu = { profile = "FILE" }`) and the replay sizes its kernels with.
//!
//! Measured in one process (`in_process`): SM count and memory, kernel launch overhead, the
//! spin kernel's rate and its speed against the share of SMs its grid may use, the stream
//! kernel's bandwidth against the same, two stream kernels co-running, pinned copies both ways,
//! and the cuBLAS SGEMM rate. Measured across processes (`processes`), through the replay's
//! own workers: context creation time and memory in fresh processes, how a short kernel of one
//! process fares against another process's long kernels (CUDA's time slicing), and, where a
//! private MPS daemon starts, the spin kernel's speed against the MPS active-thread
//! percentage.
//!
//! [`assemble`] turns the measurements into the simulator's device: the fields the built-in
//! table calls estimates or typical values — SMs, memory, host-link bandwidth, context memory
//! and creation time — are replaced by measurements; the
//! datasheet peaks (memory bandwidth, FP32 and tensor TFLOP/s) stay those of the matching
//! built-in device, because profiles scale their work between devices by the ratio of those
//! peaks and a measured value on one side only would skew the ratio. The measured bandwidth and
//! SGEMM rate size the replay's kernels instead (`[replay]`).

mod in_process;
mod processes;

use crate::calibration::{Calibration, Measured, ReplayCalibration};
use crate::driver::{self, NO_DRIVER, ReplayError};
use gpushare_sim::device::{DeviceSpec, builtin_devices};
use std::path::PathBuf;

/// How to calibrate.
#[derive(Clone, Debug)]
pub struct CalibrateOptions {
    pub gpu: u32,
    /// The `gpushare` executable (its `replay-worker` command runs the multi-process probes).
    pub worker_exe: PathBuf,
    /// Skip the MPS measurements.
    pub no_mps: bool,
}

/// The built-in device a GPU named `name` (as the driver says) with `memory_mib` is, if any.
pub fn matching_builtin(name: &str, memory_mib: f64) -> Option<DeviceSpec> {
    let n = name.to_ascii_lowercase();
    let pick = |prefix: &str| {
        builtin_devices()
            .into_iter()
            .filter(|d| d.name.starts_with(prefix))
            .min_by(|a, b| {
                (a.memory_mib - memory_mib)
                    .abs()
                    .total_cmp(&(b.memory_mib - memory_mib).abs())
            })
    };
    if n.contains("h200") {
        pick("h200")
    } else if n.contains("h100") {
        pick("h100")
    } else if n.contains("a100") {
        pick("a100")
    } else if n.contains("v100") {
        pick("v100")
    } else if n.contains("t4") {
        pick("t4")
    } else {
        None
    }
}

/// The calibration file from the measurements: the device (see the module's doc for which
/// fields are measured) and the replay's sizing.
pub fn assemble(replay: ReplayCalibration, mut measured: Measured) -> Result<Calibration, String> {
    let base = match matching_builtin(&measured.gpu_name, measured.memory_total_mib) {
        Some(b) => b,
        None => {
            let nearest = builtin_devices()
                .into_iter()
                .min_by_key(|d| d.sms.abs_diff(measured.sms))
                .expect("built-in devices exist");
            measured.notes.push(format!(
                "no built-in device matches `{}`: peak bandwidth and TFLOP/s are {}'s (the nearest SM count); edit [device] if you know better",
                measured.gpu_name, nearest.name
            ));
            nearest
        }
    };
    let mut dev = base.clone();
    dev.name = format!("{}-measured", base.name);
    if measured.sms > 0 {
        dev.sms = measured.sms;
    }
    if measured.memory_total_mib > 0.0 {
        dev.memory_mib = measured.memory_total_mib;
    }
    if measured.h2d_gbps > 0.0 && measured.d2h_gbps > 0.0 {
        dev.host_link_gbps = (measured.h2d_gbps + measured.d2h_gbps) / 2.0;
    }
    if let Some(m) = measured.context_memory_mib.filter(|m| *m > 0.0) {
        dev.context_memory_mib = m;
    }
    if !measured.context_create_s.is_empty() {
        dev.context_create_s = crate::quantile(&mut measured.context_create_s.clone(), 0.5);
    }
    // The two-stream co-run is kept in `measured` for reference: two kernels that each fill the
    // bandwidth are bound by it (the model's max-min share), not by queueing, so it says nothing
    // of `dram_queueing`, which keeps its fitted value.
    dev.check()
        .map_err(|(field, msg)| format!("the measured device is invalid: {field}: {msg}"))?;
    Ok(Calibration {
        device: dev,
        replay,
        measured,
    })
}

/// Measures GPU `opts.gpu`. Sets `CUDA_DEVICE_ORDER=PCI_BUS_ID` in this process's environment
/// (device ordinals as NVML numbers them): call it before starting threads of your own.
pub fn calibrate(opts: &CalibrateOptions) -> Result<Calibration, ReplayError> {
    if !driver::driver_present() {
        return Err(ReplayError::Unavailable(NO_DRIVER.into()));
    }
    // SAFETY: nothing has started a thread (the Ctrl-C handler's comes next) or touched CUDA.
    unsafe { crate::protocol::pin_device_order() };
    crate::signals::install();
    let mut measured = Measured::default();
    match crate::nvml::device_info(opts.gpu) {
        Ok(d) => {
            measured.gpu_name = d.name;
            measured.driver = d.driver;
            measured.compute_mode = d.compute_mode;
        }
        Err(e) => measured.notes.push(format!("device identity not read: {e}")),
    }
    if crate::probe::processes_allowed(&measured.compute_mode) == Some(0) {
        return Err(ReplayError::Unavailable(format!(
            "GPU {}'s compute mode is {}: no context can be created on it (the harness leaves modes alone)",
            opts.gpu, measured.compute_mode
        )));
    }
    let libs = crate::libs::report();
    (measured.cublas, measured.nvrtc) = (libs.cublas, libs.nvrtc);
    eprintln!("calibrating GPU {} ({}) …", opts.gpu, measured.gpu_name);
    let replay = in_process::measure(opts.gpu, &mut measured).map_err(ReplayError::Failed)?;
    processes::measure(opts, &replay, &mut measured).map_err(ReplayError::Failed)?;
    assemble(replay, measured).map_err(ReplayError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(name: &str, memory_mib: f64) -> Measured {
        Measured {
            gpu_name: name.into(),
            sms: 132,
            memory_total_mib: memory_mib,
            h2d_gbps: 50.0,
            d2h_gbps: 54.0,
            context_create_s: vec![0.31, 0.2, 0.25],
            context_memory_mib: Some(520.0),
            co_run_slowdown: Some(1.3),
            ..Measured::default()
        }
    }

    fn replay() -> ReplayCalibration {
        ReplayCalibration {
            threads_per_block: 1024,
            spin_iters_per_us: 500.0,
            stream_gbps: vec![(1.0, 3000.0)],
            sgemm_tflops: Some(50.0),
            launch_overhead_us: 2.5,
        }
    }

    #[test]
    fn driver_names_find_their_builtin_device() {
        assert_eq!(
            matching_builtin("NVIDIA H100 80GB HBM3", 81_559.0).unwrap().name,
            "h100-80gb"
        );
        assert_eq!(matching_builtin("NVIDIA H200", 143_771.0).unwrap().name, "h200-141gb");
        assert_eq!(
            matching_builtin("NVIDIA A100-SXM4-40GB", 40_960.0).unwrap().name,
            "a100-40gb"
        );
        assert_eq!(
            matching_builtin("NVIDIA A100-SXM4-80GB", 81_920.0).unwrap().name,
            "a100-80gb"
        );
        assert_eq!(
            matching_builtin("Tesla V100-SXM2-16GB", 16_160.0).unwrap().name,
            "v100-16gb"
        );
        assert!(matching_builtin("NVIDIA L4", 23_000.0).is_none());
    }

    #[test]
    fn measurements_replace_estimates_and_keep_datasheet_peaks() {
        let c = assemble(replay(), measured("NVIDIA H100 80GB HBM3", 81_559.0)).unwrap();
        let h100 = gpushare_sim::device::builtin_device("h100-80gb").unwrap();
        assert_eq!(c.device.name, "h100-80gb-measured");
        assert_eq!(c.device.host_link_gbps, 52.0);
        assert_eq!(c.device.context_memory_mib, 520.0);
        assert_eq!(c.device.context_create_s, 0.25);
        assert_eq!(c.device.dram_queueing, h100.dram_queueing);
        assert_eq!(
            (
                c.device.mem_bandwidth_gbps,
                c.device.fp32_tflops,
                c.device.tensor_tflops
            ),
            (h100.mem_bandwidth_gbps, h100.fp32_tflops, h100.tensor_tflops)
        );
        assert!(c.measured.notes.is_empty());
        // Round trip through the file format the simulator reads.
        let text = toml::to_string(&c).unwrap();
        let back: Calibration = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn an_unknown_gpu_borrows_the_nearest_peaks_and_says_so() {
        let c = assemble(replay(), measured("NVIDIA L40S", 46_000.0)).unwrap();
        assert!(
            c.measured.notes[0].contains("no built-in device matches `NVIDIA L40S`"),
            "{:?}",
            c.measured.notes
        );
        assert_eq!(c.device.sms, 132);
    }
}
