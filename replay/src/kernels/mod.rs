//! The harness's kernels: the CUDA source shipped with the crate (`kernels.cu`: `spin`,
//! `stream`, `empty`) and its pre-generated PTX (`kernels.ptx`, by `scripts/gen-ptx.py`).
//! [`load`] compiles the source with NVRTC for the device when NVRTC is present and loads the
//! embedded PTX otherwise — a driver-only machine has no NVRTC — or when the NVRTC build does
//! not load (an NVRTC newer than the driver writes PTX the driver refuses).

use crate::driver;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::sync::Arc;

/// `kernels.cu`.
pub const SOURCE: &str = include_str!("kernels.cu");
/// `kernels.ptx`: `SOURCE` compiled for compute_70, PTX ISA 7.0.
pub const EMBEDDED_PTX: &str = include_str!("kernels.ptx");
/// The kernels' names in both.
pub const NAMES: [&str; 3] = ["spin", "stream", "empty"];

/// The loaded kernels and where they came from.
pub struct Kernels {
    pub spin: CudaFunction,
    pub stream: CudaFunction,
    pub empty: CudaFunction,
    /// `nvrtc` or `embedded ptx`.
    pub origin: &'static str,
    /// Why NVRTC was not used, when it was present but failed.
    pub nvrtc_failure: Option<String>,
    _module: Arc<CudaModule>,
}

/// Compiles `SOURCE` with NVRTC for `arch` (e.g. `compute_90`).
pub fn compile(arch: &str) -> Result<Ptx, String> {
    let opts = CompileOptions {
        // NVRTC wants a 'static name; one small string per process.
        arch: Some(Box::leak(arch.to_string().into_boxed_str())),
        options: vec!["--std=c++14".into()],
        name: Some("kernels.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts).map_err(|e| format!("NVRTC: {e:?}"))
}

fn functions(module: Arc<CudaModule>, origin: &'static str, nvrtc_failure: Option<String>) -> Result<Kernels, String> {
    let f = |name: &str| {
        module
            .load_function(name)
            .map_err(|e| format!("kernel `{name}` ({origin}): {e}"))
    };
    Ok(Kernels {
        spin: f("spin")?,
        stream: f("stream")?,
        empty: f("empty")?,
        origin,
        nvrtc_failure,
        _module: module,
    })
}

/// Loads the kernels into `ctx`.
pub fn load(ctx: &Arc<CudaContext>) -> Result<Kernels, String> {
    let mut failure = None;
    if driver::nvrtc_present() {
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| format!("compute capability: {e}"))?;
        match compile(&format!("compute_{major}{minor}")) {
            Ok(ptx) => match ctx.load_module(ptx) {
                Ok(m) => return functions(m, "nvrtc", None),
                Err(e) => failure = Some(format!("the driver refused NVRTC's PTX ({e}); using the embedded PTX")),
            },
            Err(e) => failure = Some(format!("{e}; using the embedded PTX")),
        }
    }
    let module = ctx
        .load_module(Ptx::from_src(EMBEDDED_PTX))
        .map_err(|e| format!("loading the embedded PTX: {e}"))?;
    functions(module, "embedded ptx", failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_ptx_has_every_kernel_at_isa_7() {
        assert!(
            EMBEDDED_PTX.contains(".version 7.0"),
            "ISA version lowered for older drivers"
        );
        assert!(EMBEDDED_PTX.contains(".target sm_70"));
        for name in NAMES {
            assert!(EMBEDDED_PTX.contains(&format!(".entry {name}(")), "{name}");
            assert!(SOURCE.contains(&format!("__global__ void {name}(")), "{name}");
        }
    }

    /// Runs where NVRTC can be loaded (a CUDA toolkit, or `LD_LIBRARY_PATH` at the PyPI wheel's
    /// `cuda_nvrtc/lib`); needs no GPU.
    #[test]
    fn nvrtc_compiles_the_source_when_present() {
        if !driver::nvrtc_present() {
            eprintln!("skipped: NVRTC not found");
            return;
        }
        // compute_75: the oldest architecture NVRTC 13 still accepts (it dropped Volta), and one
        // every NVRTC from CUDA 10 on knows.
        let ptx = compile("compute_75").unwrap().to_src();
        for name in NAMES {
            assert!(ptx.contains(&format!(".entry {name}(")), "{name}");
        }
    }
}
