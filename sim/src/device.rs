//! GPU device specifications: the built-in table, with the datasheet values and the few fitted
//! coefficients the contention model ([`crate::contention`]) needs.
//!
//! A scenario names a built-in device (`gpu = "a100-80gb"`) or defines its own under
//! `[gpu_types.NAME]`, optionally starting from a built-in one with `base = "…"`.

use crate::contention::Coefficients;
use crate::fitted;
use serde::{Deserialize, Serialize};

/// Bytes in one MiB.
pub const MIB: u64 = 1 << 20;

/// One GPU model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name used in scenario files.
    #[serde(default)]
    pub name: String,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Boost SM clock, MHz: with `sms`, the compute throughput kernels scale by between devices.
    pub sm_clock_mhz: f64,
    /// Device memory usable by applications, MiB (as `nvidia-smi` reports the total).
    pub memory_mib: f64,
    /// Peak device-memory bandwidth, GB/s.
    pub mem_bandwidth_gbps: f64,
    /// L2 cache, MiB.
    pub l2_mib: f64,
    /// Most threads resident on one SM (2,048 from Volta on, 1,024 on Turing).
    #[serde(default = "default_threads_per_sm")]
    pub max_threads_per_sm: u32,
    /// Effective host↔device bandwidth per direction (pinned memory), GB/s.
    pub host_link_gbps: f64,
    /// Device memory taken by one CUDA context, MiB.
    pub context_memory_mib: f64,
    /// Time to create one CUDA context, seconds.
    pub context_create_s: f64,
    /// Peak FP32 throughput, TFLOP/s (reported; kernels scale by SMs × clock).
    pub fp32_tflops: f64,
    /// Peak dense FP16 tensor-core throughput, TFLOP/s: the LLM prefill cost model uses it.
    pub tensor_tflops: f64,
    /// `κ_q`: how much a memory-sensitive kernel slows as other kernels fill the DRAM bandwidth
    /// ([`crate::contention`]); fitted on calibration rows (`validation/fitted.toml`).
    #[serde(default = "fitted_dram_queueing")]
    pub dram_queueing: f64,
    /// `κ_L2`: extra DRAM traffic when co-runners evict a kernel's L2 working set
    /// ([`crate::contention`]); see `validation/fitted.toml` for its status.
    #[serde(default = "fitted_l2_contention")]
    pub l2_contention: f64,
    /// Time-slice length between contexts under time slicing, ms.
    #[serde(default = "fitted_time_slice_ms")]
    pub time_slice_ms: f64,
    /// Cost of one context switch under time slicing, µs.
    #[serde(default = "fitted_context_switch_us")]
    pub context_switch_us: f64,
    /// Its MIG geometry: the built-in device whose MIG profiles it has (`mig` policy), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig: Option<String>,
}

fn default_threads_per_sm() -> u32 {
    2048
}
fn fitted_dram_queueing() -> f64 {
    fitted::device().dram_queueing
}
fn fitted_l2_contention() -> f64 {
    fitted::device().l2_contention
}
fn fitted_time_slice_ms() -> f64 {
    fitted::device().time_slice_ms
}
fn fitted_context_switch_us() -> f64 {
    fitted::device().context_switch_us
}

impl DeviceSpec {
    /// Usable memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        (self.memory_mib * MIB as f64) as u64
    }
    /// Context memory in bytes.
    pub fn context_bytes(&self) -> u64 {
        (self.context_memory_mib * MIB as f64) as u64
    }
    /// Compute throughput in SM-MHz: what compute-bound work scales by between devices.
    pub fn sm_mhz(&self) -> f64 {
        f64::from(self.sms) * self.sm_clock_mhz
    }
    /// The contention model's device coefficients.
    pub fn coefficients(&self) -> Coefficients {
        Coefficients {
            dram_queueing: self.dram_queueing,
            l2_contention: self.l2_contention,
        }
    }

    /// Checks that every field is in range; returns (field, message) for the first that is not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("sms", self.sms as f64),
            ("sm_clock_mhz", self.sm_clock_mhz),
            ("memory_mib", self.memory_mib),
            ("mem_bandwidth_gbps", self.mem_bandwidth_gbps),
            ("l2_mib", self.l2_mib),
            ("max_threads_per_sm", f64::from(self.max_threads_per_sm)),
            ("host_link_gbps", self.host_link_gbps),
            ("fp32_tflops", self.fp32_tflops),
            ("tensor_tflops", self.tensor_tflops),
            ("time_slice_ms", self.time_slice_ms),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err((field, format!("must be a positive number, got {v}")));
            }
        }
        for (field, v) in [
            ("context_memory_mib", self.context_memory_mib),
            ("context_create_s", self.context_create_s),
            ("dram_queueing", self.dram_queueing),
            ("l2_contention", self.l2_contention),
            ("context_switch_us", self.context_switch_us),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((field, format!("must be a non-negative number, got {v}")));
            }
        }
        if self.context_memory_mib >= self.memory_mib {
            return Err(("context_memory_mib", "must be smaller than memory_mib".into()));
        }
        Ok(())
    }
}

/// The built-in devices.
///
/// Sources: SM counts, boost clocks, L2 sizes, memory bandwidth, FP32 and dense FP16 tensor peaks
/// (V100 125, T4 65, A100 312, H100/H200 SXM 989 TFLOP/s) from NVIDIA's datasheets and
/// architecture whitepapers (Tesla V100 SXM2, T4, A100 SXM4 40/80 GB, H100 SXM5, H200 SXM);
/// threads per SM from the CUDA C Programming Guide's compute-capability table.
/// `memory_mib` is the total `nvidia-smi` reports for each board. `host_link_gbps` is a typical
/// measured pinned-memory bandwidth for the board's PCIe generation (Gen3 x16 ≈ 12, Gen4 ≈ 25,
/// Gen5 ≈ 50 GB/s), below the theoretical 16 / 32 / 64 GB/s. Context memory and creation time are
/// typical values for recent drivers (KaaS reserves 300 MiB per V100 context, PAPERS.md §2); they
/// are estimates until `gpushare calibrate` measures them on a real board. The contention
/// coefficients and time-slicing costs come from `validation/fitted.toml` (fitted on the
/// calibration rows of `validation/measurements.csv`, or marked assumed there); they apply to
/// every device until a calibration on that device replaces them.
pub fn builtin_devices() -> Vec<DeviceSpec> {
    let fit = fitted::device();
    let d = |name: &str, (sms, clock, l2, threads), memory_mib, bw, link, ctx_mib, tflops, tensor| DeviceSpec {
        name: name.to_string(),
        sms,
        sm_clock_mhz: clock,
        memory_mib,
        mem_bandwidth_gbps: bw,
        l2_mib: l2,
        max_threads_per_sm: threads,
        host_link_gbps: link,
        context_memory_mib: ctx_mib,
        context_create_s: 0.25,
        fp32_tflops: tflops,
        tensor_tflops: tensor,
        dram_queueing: fit.dram_queueing,
        l2_contention: fit.l2_contention,
        time_slice_ms: fit.time_slice_ms,
        context_switch_us: fit.context_switch_us,
        mig: ["a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb"]
            .contains(&name)
            .then(|| name.to_string()),
    };
    vec![
        // Tesla V100 SXM2 16 GB: 80 SMs at 1,530 MHz, 6 MiB L2, 900 GB/s HBM2, 15.7 TFLOP/s FP32,
        // 125 FP16 tensor, PCIe Gen3.
        d(
            "v100-16gb",
            (80, 1530.0, 6.0, 2048),
            16_160.0,
            900.0,
            12.0,
            300.0,
            15.7,
            125.0,
        ),
        // Tesla V100 SXM2 32 GB: as above with 32 GB.
        d(
            "v100-32gb",
            (80, 1530.0, 6.0, 2048),
            32_510.0,
            900.0,
            12.0,
            300.0,
            15.7,
            125.0,
        ),
        // T4: 40 SMs at 1,590 MHz, 4 MiB L2, 1,024 threads per SM, 320 GB/s GDDR6, 8.1 TFLOP/s
        // FP32, PCIe Gen3.
        d("t4", (40, 1590.0, 4.0, 1024), 15_360.0, 320.0, 12.0, 300.0, 8.1, 65.0),
        // A100 SXM4 40 GB: 108 SMs at 1,410 MHz, 40 MiB L2, 1,555 GB/s HBM2, 19.5 TFLOP/s FP32,
        // PCIe Gen4.
        d(
            "a100-40gb",
            (108, 1410.0, 40.0, 2048),
            40_960.0,
            1555.0,
            25.0,
            450.0,
            19.5,
            312.0,
        ),
        // A100 SXM4 80 GB: as above with 2,039 GB/s HBM2e.
        d(
            "a100-80gb",
            (108, 1410.0, 40.0, 2048),
            81_920.0,
            2039.0,
            25.0,
            450.0,
            19.5,
            312.0,
        ),
        // H100 SXM5 80 GB: 132 SMs at 1,980 MHz, 50 MiB L2, 3,350 GB/s HBM3, 67 TFLOP/s FP32,
        // PCIe Gen5.
        d(
            "h100-80gb",
            (132, 1980.0, 50.0, 2048),
            81_559.0,
            3350.0,
            50.0,
            500.0,
            67.0,
            989.0,
        ),
        // H200 SXM 141 GB: as H100 with 4,800 GB/s HBM3e.
        d(
            "h200-141gb",
            (132, 1980.0, 50.0, 2048),
            143_771.0,
            4800.0,
            50.0,
            500.0,
            67.0,
            989.0,
        ),
    ]
}

/// Looks a built-in device up by name.
pub fn builtin_device(name: &str) -> Option<DeviceSpec> {
    builtin_devices().into_iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_unique() {
        let all = builtin_devices();
        for d in &all {
            d.check().unwrap_or_else(|e| panic!("{}: {e:?}", d.name));
        }
        let mut names: Vec<_> = all.iter().map(|d| &d.name).collect();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(builtin_device("h100-80gb").unwrap().sms, 132);
    }
}
