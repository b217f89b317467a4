//! GPU device specifications: the built-in table and the parameters of the kernel speed model.
//!
//! A scenario names a built-in device (`gpu = "a100-80gb"`) or defines its own under
//! `[gpu_types.NAME]`, optionally starting from a built-in one with `base = "…"`.

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
    /// Device memory usable by applications, MiB (as `nvidia-smi` reports the total).
    pub memory_mib: f64,
    /// Peak device-memory bandwidth, GB/s.
    pub mem_bandwidth_gbps: f64,
    /// Effective host↔device bandwidth per direction (pinned memory), GB/s.
    pub host_link_gbps: f64,
    /// Device memory taken by one CUDA context, MiB.
    pub context_memory_mib: f64,
    /// Time to create one CUDA context, seconds.
    pub context_create_s: f64,
    /// Peak FP32 throughput, TFLOP/s: scales compute-bound kernel work between devices.
    pub fp32_tflops: f64,
    /// Peak dense FP16 tensor-core throughput, TFLOP/s: the LLM prefill cost model uses it.
    pub tensor_tflops: f64,
    /// Sharpness `p` of the saturating speed curve (see [`crate::speed`]); `inf` = a hard knee.
    #[serde(default = "default_knee")]
    pub speed_knee: f64,
    /// Bandwidth-interference coefficient `κ` between co-running kernels (see [`crate::speed`]).
    #[serde(default = "default_interference")]
    pub interference: f64,
}

fn default_knee() -> f64 {
    4.0
}
/// Fitted to DenseNet-121 co-running under MPS (PAPERS.md, "NVIDIA mechanisms": 10 % → 90 %
/// and 20 % → 80 % splits) by `scripts/fit_fast_profiles.py`, every latency within 4.1 %. The
/// source does not name the GPU, so every built-in device uses it until calibrated on hardware.
fn default_interference() -> f64 {
    0.82
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

    /// Checks that every field is in range; returns (field, message) for the first that is not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("sms", self.sms as f64),
            ("memory_mib", self.memory_mib),
            ("mem_bandwidth_gbps", self.mem_bandwidth_gbps),
            ("host_link_gbps", self.host_link_gbps),
            ("fp32_tflops", self.fp32_tflops),
            ("tensor_tflops", self.tensor_tflops),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err((field, format!("must be a positive number, got {v}")));
            }
        }
        if self.speed_knee.is_nan() || self.speed_knee <= 0.0 {
            return Err((
                "speed_knee",
                format!("must be a positive number or inf, got {}", self.speed_knee),
            ));
        }
        for (field, v) in [
            ("context_memory_mib", self.context_memory_mib),
            ("context_create_s", self.context_create_s),
            ("interference", self.interference),
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
/// Sources: SM counts, memory bandwidth, FP32 and dense FP16 tensor peaks (V100 125, T4 65,
/// A100 312, H100/H200 SXM 989 TFLOP/s) from NVIDIA's datasheets and
/// architecture whitepapers (Tesla V100 SXM2, T4, A100 SXM4 40/80 GB, H100 SXM5, H200 SXM).
/// `memory_mib` is the total `nvidia-smi` reports for each board. `host_link_gbps` is a typical
/// measured pinned-memory bandwidth for the board's PCIe generation (Gen3 x16 ≈ 12, Gen4 ≈ 25,
/// Gen5 ≈ 50 GB/s), below the theoretical 16 / 32 / 64 GB/s. Context memory and creation time are
/// typical values for recent drivers (KaaS reserves 300 MiB per V100 context, PAPERS.md §2); they
/// are estimates until `gpushare calibrate` measures them on a real board. The knee is the
/// default of [`crate::speed`] (profiles fitted to published curves carry their own) and the
/// interference coefficient is fitted to published MPS co-runs (see `default_interference`).
pub fn builtin_devices() -> Vec<DeviceSpec> {
    let d = |name: &str, sms, memory_mib, bw, link, ctx_mib, tflops, tensor| DeviceSpec {
        name: name.to_string(),
        sms,
        memory_mib,
        mem_bandwidth_gbps: bw,
        host_link_gbps: link,
        context_memory_mib: ctx_mib,
        context_create_s: 0.25,
        fp32_tflops: tflops,
        tensor_tflops: tensor,
        speed_knee: default_knee(),
        interference: default_interference(),
    };
    vec![
        // Tesla V100 SXM2 16 GB: 80 SMs, 900 GB/s HBM2, 15.7 TFLOP/s FP32, 125 FP16 tensor, PCIe Gen3.
        d("v100-16gb", 80, 16_160.0, 900.0, 12.0, 300.0, 15.7, 125.0),
        // Tesla V100 SXM2 32 GB: as above with 32 GB.
        d("v100-32gb", 80, 32_510.0, 900.0, 12.0, 300.0, 15.7, 125.0),
        // T4: 40 SMs, 320 GB/s GDDR6, 8.1 TFLOP/s FP32, PCIe Gen3.
        d("t4", 40, 15_360.0, 320.0, 12.0, 300.0, 8.1, 65.0),
        // A100 SXM4 40 GB: 108 SMs, 1,555 GB/s HBM2, 19.5 TFLOP/s FP32, PCIe Gen4.
        d("a100-40gb", 108, 40_960.0, 1555.0, 25.0, 450.0, 19.5, 312.0),
        // A100 SXM4 80 GB: 108 SMs, 2,039 GB/s HBM2e, 19.5 TFLOP/s FP32, PCIe Gen4.
        d("a100-80gb", 108, 81_920.0, 2039.0, 25.0, 450.0, 19.5, 312.0),
        // H100 SXM5 80 GB: 132 SMs, 3,350 GB/s HBM3, 67 TFLOP/s FP32, PCIe Gen5.
        d("h100-80gb", 132, 81_559.0, 3350.0, 50.0, 500.0, 67.0, 989.0),
        // H200 SXM 141 GB: 132 SMs, 4,800 GB/s HBM3e, 67 TFLOP/s FP32, PCIe Gen5.
        d("h200-141gb", 132, 143_771.0, 4800.0, 50.0, 500.0, 67.0, 989.0),
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
