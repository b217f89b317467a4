//! Whether the machine has what the replay needs, checked before any CUDA call: cudarc loads
//! the driver library lazily and panics when it is missing, so every entry point asks here
//! first. Also the replay's error type, with the exit code each kind of failure gets.

/// What `gpushare replay` and `gpushare calibrate` say on a machine without the driver.
pub const NO_DRIVER: &str =
    "no NVIDIA driver found: replay needs an NVIDIA GPU; `gpushare run` simulates the same scenario";

/// True when the CUDA driver library (`libcuda.so`) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library by its usual names; calls nothing in it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// True when NVRTC can be loaded (a CUDA toolkit, or its PyPI wheel, on the library path).
pub fn nvrtc_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// True when cuBLAS can be loaded.
pub fn cublas_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// Why a replay or a calibration did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The machine cannot run it at all (no driver, mechanism unavailable): exit 2.
    #[error("{0}")]
    Unavailable(String),
    /// The scenario or the arguments ask for something the harness cannot do: exit 2.
    #[error("{0}")]
    Input(String),
    /// The GPU, a worker or the file system failed on the way: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl ReplayError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ReplayError::Unavailable(_) | ReplayError::Input(_) => 2,
            ReplayError::Failed(_) => 1,
        }
    }
}
