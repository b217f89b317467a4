//! The CUDA operations the worker and the calibration share, on cudarc's driver API: raw device
//! and pinned host buffers (addressed by pointer, so one allocation serves many kernels and
//! lanes), the spin and stream kernels' launches, cuBLAS SGEMM, and timing by events.
//!
//! Nothing here may run before [`crate::driver::driver_present`] said yes.

use crate::kernels::Kernels;
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::{CUdeviceptr, CUevent_flags};
use cudarc::driver::{CudaContext, CudaEvent, CudaStream, LaunchConfig, PushKernelArg, result};
use std::sync::Arc;

/// A CUDA failure as text, naming what was being done.
pub fn err(what: &str) -> impl Fn(result::DriverError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Device memory from `cuMemAlloc`, freed on drop.
pub struct DeviceBuffer {
    pub ptr: CUdeviceptr,
    pub bytes: u64,
    ctx: Arc<CudaContext>,
}

impl DeviceBuffer {
    /// Allocates `bytes` (at least 1) and zeroes them, so the memory is resident.
    pub fn new(ctx: &Arc<CudaContext>, bytes: u64) -> Result<Self, String> {
        let bytes = bytes.max(1);
        ctx.bind_to_thread().map_err(err("binding the context"))?;
        // SAFETY: a plain allocation in the bound context; freed once, in drop.
        let ptr = unsafe { result::malloc_sync(bytes as usize) }
            .map_err(|e| format!("allocating {bytes} bytes on the device: {e}"))?;
        // SAFETY: ptr is `bytes` long.
        unsafe { result::memset_d8_sync(ptr, 0, bytes as usize) }.map_err(err("zeroing device memory"))?;
        Ok(DeviceBuffer {
            ptr,
            bytes,
            ctx: ctx.clone(),
        })
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by malloc_sync in this context, freed only here.
        let _ = unsafe { result::free_sync(self.ptr) };
    }
}

/// Page-locked host memory from `cuMemHostAlloc`, freed on drop.
pub struct PinnedBuffer {
    ptr: *mut u8,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer is plain host memory owned by this value; the context handle is thread-safe.
unsafe impl Send for PinnedBuffer {}

impl PinnedBuffer {
    pub fn new(ctx: &Arc<CudaContext>, bytes: u64) -> Result<Self, String> {
        let bytes = bytes.max(1) as usize;
        ctx.bind_to_thread().map_err(err("binding the context"))?;
        // SAFETY: a plain pinned allocation; freed once, in drop.
        let ptr = unsafe { result::malloc_host(bytes, 0) }
            .map_err(|e| format!("allocating {bytes} bytes of pinned host memory: {e}"))?;
        // SAFETY: ptr is `bytes` long; zeroing makes every page resident.
        unsafe { std::ptr::write_bytes(ptr as *mut u8, 0, bytes) };
        Ok(PinnedBuffer {
            ptr: ptr as *mut u8,
            bytes,
            ctx: ctx.clone(),
        })
    }

    /// The first `n` bytes (at most the whole buffer).
    pub fn slice(&self, n: u64) -> &[u8] {
        // SAFETY: ptr is valid for `bytes` bytes for the life of self.
        unsafe { std::slice::from_raw_parts(self.ptr, (n as usize).min(self.bytes)) }
    }

    pub fn slice_mut(&mut self, n: u64) -> &mut [u8] {
        // SAFETY: as above, and borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, (n as usize).min(self.bytes)) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by malloc_host, freed only here.
        let _ = unsafe { result::free_host(self.ptr as *mut std::ffi::c_void) };
    }
}

/// Host → device copy of `bytes` from `src` to `dst`, queued on `stream`.
pub fn copy_h2d(stream: &CudaStream, dst: CUdeviceptr, src: &PinnedBuffer, bytes: u64) -> Result<(), String> {
    // SAFETY: dst has room for `bytes` (the caller sized it from the same plan); src is pinned
    // and outlives the stream's synchronisation, which the caller does before reusing it.
    unsafe { result::memcpy_htod_async(dst, src.slice(bytes), stream.cu_stream()) }.map_err(err("host-to-device copy"))
}

/// Device → host copy of `bytes` from `src` into `dst`, queued on `stream`.
pub fn copy_d2h(stream: &CudaStream, dst: &mut PinnedBuffer, src: CUdeviceptr, bytes: u64) -> Result<(), String> {
    // SAFETY: as for copy_h2d.
    unsafe { result::memcpy_dtoh_async(dst.slice_mut(bytes), src, stream.cu_stream()) }
        .map_err(err("device-to-host copy"))
}

/// The spin kernel over `blocks` blocks of `threads`, `iters` iterations each; `sink` is a
/// device buffer of at least `blocks` floats (never written in practice).
pub fn spin(
    stream: &CudaStream,
    k: &Kernels,
    blocks: u32,
    threads: u32,
    iters: u64,
    sink: CUdeviceptr,
) -> Result<(), String> {
    let cfg = LaunchConfig {
        grid_dim: (blocks.max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: `spin(unsigned long long, float*)`; the pointer is a device address with room
    // for one float per block.
    unsafe { stream.launch_builder(&k.spin).arg(&iters).arg(&sink).launch(cfg) }
        .map(|_| ())
        .map_err(err("launching spin"))
}

/// A launch grid: blocks of threads.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub blocks: u32,
    pub threads: u32,
}

/// The stream kernel over `grid`: `passes` sweeps reading `bytes` at `io.0` and writing them at
/// `io.1`.
pub fn stream_kernel(
    stream: &CudaStream,
    k: &Kernels,
    grid: Grid,
    io: (CUdeviceptr, CUdeviceptr),
    bytes: u64,
    passes: u32,
) -> Result<(), String> {
    let cfg = LaunchConfig {
        grid_dim: (grid.blocks.max(1), 1, 1),
        block_dim: (grid.threads, 1, 1),
        shared_mem_bytes: 0,
    };
    let (input, output) = io;
    let n: u64 = bytes / 16; // float4 elements
    // SAFETY: `stream(const float4*, float4*, unsigned long long, unsigned int)`; both buffers
    // hold `bytes` bytes.
    unsafe {
        stream
            .launch_builder(&k.stream)
            .arg(&input)
            .arg(&output)
            .arg(&n)
            .arg(&passes)
            .launch(cfg)
    }
    .map(|_| ())
    .map_err(err("launching stream"))
}

/// The empty kernel, one block of one thread.
pub fn empty(stream: &CudaStream, k: &Kernels) -> Result<(), String> {
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: `empty()` takes no arguments.
    unsafe { stream.launch_builder(&k.empty).launch(cfg) }
        .map(|_| ())
        .map_err(err("launching empty"))
}

/// Bytes the SGEMM path needs: A, B and C of n × n floats.
pub fn gemm_bytes(n: u32) -> u64 {
    3 * 4 * u64::from(n) * u64::from(n)
}

/// `reps` SGEMMs C = A·B of n × n, with A, B, C laid out one after another at `base`.
pub fn sgemm(blas: &CudaBlas, n: u32, base: CUdeviceptr, reps: u32) -> Result<(), String> {
    use cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N;
    let matrix = 4 * u64::from(n) * u64::from(n);
    let (a, b, c) = (base, base + matrix, base + 2 * matrix);
    let (alpha, beta) = (1.0f32, 0.0f32);
    let n = n as i32;
    for _ in 0..reps {
        // SAFETY: the three matrices lie inside one allocation of gemm_bytes(n); cuBLAS runs on
        // the handle's stream.
        unsafe {
            cudarc::cublas::result::sgemm(
                *blas.handle(),
                CUBLAS_OP_N,
                CUBLAS_OP_N,
                n,
                n,
                n,
                &alpha,
                a as *const f32,
                n,
                b as *const f32,
                n,
                &beta,
                c as *mut f32,
                n,
            )
        }
        .map_err(|e| format!("cuBLAS SGEMM: {e:?}"))?;
    }
    Ok(())
}

/// A timing event (timing enabled).
pub fn timing_event(ctx: &Arc<CudaContext>) -> Result<CudaEvent, String> {
    ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(err("creating an event"))
}

/// Runs `work` on `stream` between two events and returns the GPU time it took, ms.
pub fn time_on_gpu(
    ctx: &Arc<CudaContext>,
    stream: &CudaStream,
    work: impl FnOnce() -> Result<(), String>,
) -> Result<f64, String> {
    let (a, b) = (timing_event(ctx)?, timing_event(ctx)?);
    a.record(stream).map_err(err("recording an event"))?;
    work()?;
    b.record(stream).map_err(err("recording an event"))?;
    b.synchronize().map_err(err("waiting for the GPU"))?;
    Ok(f64::from(a.elapsed_ms(&b).map_err(err("reading events"))?))
}
