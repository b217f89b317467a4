//! The CUDA backend: one context (the device's primary context: under MPS, an MPS client),
//! the harness's kernels, the functions' device memory allocated once (weights and
//! activations; a kernel server's buffer cache), and per lane a stream, two timing events,
//! pinned host buffers for the copies and, for GEMM-like phases, a cuBLAS handle.
//!
//! The kernels' scratch buffers (stream buffers, GEMM matrices, copy targets) are carved out of
//! the functions' own allocation where it is large enough, so the device memory a worker holds
//! is what the profile says; where it is not, the rest is allocated too and reported as
//! `extra_bytes`.

use super::{Executor, Timing, host_wait};
use crate::cuda::{self, DeviceBuffer, PinnedBuffer, err};
use crate::kernels::{self, Kernels};
use crate::plan::{Op, STREAM_BUFFER_BYTES};
use crate::protocol::{Ready, Setup};
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};
use std::sync::{Arc, Mutex};

/// Alignment of every carved buffer.
const ALIGN: u64 = 256;
/// Bytes of the spin kernel's sink (one float per block; far more blocks than any GPU has SMs).
const SINK_BYTES: u64 = 64 << 10;

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

struct Lane {
    stream: Arc<CudaStream>,
    blas: Option<CudaBlas>,
    start: CudaEvent,
    end: CudaEvent,
    sink: CUdeviceptr,
    stream_in: CUdeviceptr,
    stream_out: CUdeviceptr,
    stream_len: u64,
    /// Where the next stream launch starts in its buffers: launches move along them so that a
    /// short phase never finds the previous one's data in L2.
    stream_cursor: u64,
    gemm: CUdeviceptr,
    h2d_dev: CUdeviceptr,
    d2h_dev: CUdeviceptr,
    h2d_host: PinnedBuffer,
    d2h_host: PinnedBuffer,
}

pub(super) struct CudaExecutor {
    kernels: Kernels,
    threads: u32,
    lanes: Vec<Mutex<Lane>>,
    _memory: DeviceBuffer,
    ctx: Arc<CudaContext>,
}

/// What one lane's scratch needs, bytes, by the operations of every function served.
#[derive(Default)]
struct Scratch {
    stream: u64,
    gemm: u64,
    h2d: u64,
    d2h: u64,
}

impl Scratch {
    fn of(setup: &Setup) -> Scratch {
        let mut s = Scratch::default();
        for (_, plan) in &setup.functions {
            for p in &plan.ops {
                match p.op {
                    Op::Stream { bytes, .. } => s.stream = s.stream.max(bytes).max(STREAM_BUFFER_BYTES),
                    Op::Gemm { n, .. } => s.gemm = s.gemm.max(cuda::gemm_bytes(n)),
                    Op::H2d { bytes } => s.h2d = s.h2d.max(bytes),
                    Op::D2h { bytes } => s.d2h = s.d2h.max(bytes),
                    Op::Host { .. } | Op::Spin { .. } => {}
                }
            }
        }
        s
    }

    fn per_lane(&self) -> u64 {
        align(SINK_BYTES) + 2 * align(self.stream) + align(self.gemm) + align(self.h2d) + align(self.d2h)
    }
}

pub(super) fn build(setup: &Setup) -> Result<(CudaExecutor, Ready), String> {
    let started = std::time::Instant::now();
    let ctx = CudaContext::new(setup.worker.gpu as usize).map_err(err("creating the CUDA context"))?;
    let context_s = started.elapsed().as_secs_f64();
    // Each lane has buffers of its own and is synchronised before they are reused: cudarc's
    // per-buffer event tracking would only add work.
    // SAFETY: called before any allocation or launch in this context.
    unsafe { ctx.disable_event_tracking() };
    let kernels = kernels::load(&ctx)?;
    let lanes_n = setup.worker.lanes.max(1);
    let resident: u64 = setup
        .functions
        .iter()
        .map(|(_, p)| p.resident_bytes + u64::from(lanes_n - 1) * p.activation_bytes)
        .sum();
    let scratch = Scratch::of(setup);
    let per_lane = scratch.per_lane();
    let needed = per_lane * u64::from(lanes_n);
    let memory = DeviceBuffer::new(&ctx, resident.max(needed))?;
    let wants_gemm = scratch.gemm > 0;
    if wants_gemm && !crate::driver::cublas_present() {
        return Err("a GEMM-like phase is planned for cuBLAS, but libcublas cannot be loaded on this machine".into());
    }
    let mut lanes = Vec::new();
    for l in 0..u64::from(lanes_n) {
        let mut at = memory.ptr + l * per_lane;
        let mut carve = |bytes: u64| {
            let p = at;
            at += align(bytes);
            p
        };
        let stream = ctx.new_stream().map_err(err("creating a stream"))?;
        let blas = if wants_gemm {
            Some(CudaBlas::new(stream.clone()).map_err(|e| format!("creating a cuBLAS handle: {e:?}"))?)
        } else {
            None
        };
        lanes.push(Mutex::new(Lane {
            blas,
            start: cuda::timing_event(&ctx)?,
            end: cuda::timing_event(&ctx)?,
            sink: carve(SINK_BYTES),
            stream_in: carve(scratch.stream),
            stream_out: carve(scratch.stream),
            stream_len: scratch.stream,
            stream_cursor: 0,
            gemm: carve(scratch.gemm),
            h2d_dev: carve(scratch.h2d),
            d2h_dev: carve(scratch.d2h),
            h2d_host: PinnedBuffer::new(&ctx, scratch.h2d)?,
            d2h_host: PinnedBuffer::new(&ctx, scratch.d2h)?,
            stream,
        }));
    }
    ctx.synchronize().map_err(err("setting the worker up"))?;
    let sms = ctx
        .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(err("reading the SM count"))? as u32;
    let ready = Ready {
        pid: std::process::id(),
        sms,
        context_s,
        kernels: match &kernels.nvrtc_failure {
            None => kernels.origin.to_string(),
            Some(why) => format!("{} ({why})", kernels.origin),
        },
        resident_bytes: resident,
        extra_bytes: needed.saturating_sub(resident),
        cublas: wants_gemm,
    };
    Ok((
        CudaExecutor {
            kernels,
            threads: setup.threads_per_block,
            lanes,
            _memory: memory,
            ctx,
        },
        ready,
    ))
}

impl CudaExecutor {
    fn enqueue(&self, l: &mut Lane, op: Op) -> Result<(), String> {
        match op {
            Op::Host { .. } => unreachable!("host steps are not enqueued"),
            Op::H2d { bytes } => cuda::copy_h2d(&l.stream, l.h2d_dev, &l.h2d_host, bytes),
            Op::D2h { bytes } => cuda::copy_d2h(&l.stream, &mut l.d2h_host, l.d2h_dev, bytes),
            Op::Spin { blocks, iters } => cuda::spin(&l.stream, &self.kernels, blocks, self.threads, iters, l.sink),
            Op::Stream { blocks, bytes, passes } => {
                if l.stream_cursor + bytes > l.stream_len {
                    l.stream_cursor = 0;
                }
                let at = l.stream_cursor;
                l.stream_cursor += bytes;
                cuda::stream_kernel(
                    &l.stream,
                    &self.kernels,
                    cuda::Grid {
                        blocks,
                        threads: self.threads,
                    },
                    (l.stream_in + at, l.stream_out + at),
                    bytes,
                    passes,
                )
            }
            Op::Gemm { n, reps } => match &l.blas {
                Some(blas) => cuda::sgemm(blas, n, l.gemm, reps),
                None => Err("a GEMM operation on a worker without cuBLAS".into()),
            },
        }
    }

    /// Waits for the lane's GPU segment; its GPU time by events, ns.
    fn close_segment(l: &Lane) -> Result<u64, String> {
        l.end.record(&l.stream).map_err(err("recording an event"))?;
        l.end.synchronize().map_err(err("waiting for the GPU"))?;
        let ms = l.start.elapsed_ms(&l.end).map_err(err("reading events"))?;
        Ok((f64::from(ms) * 1e6).round() as u64)
    }
}

impl Executor for CudaExecutor {
    fn run(&self, lane: u32, ops: &[(Op, u32, u64)]) -> Result<Timing, String> {
        // Lanes run on threads of their own; raw copies and cuBLAS need the context current.
        self.ctx.bind_to_thread().map_err(err("binding the context"))?;
        let mut guard = self.lanes[lane as usize].lock().unwrap_or_else(|p| p.into_inner());
        let l = &mut *guard;
        let (mut t, mut open) = (Timing::start(), false);
        for &(op, repeat, _) in ops {
            if let Op::Host { ns } = op {
                if open {
                    t.gpu_segment(Self::close_segment(l)?);
                    open = false;
                }
                host_wait(ns);
                continue;
            }
            if !open {
                l.start.record(&l.stream).map_err(err("recording an event"))?;
                open = true;
            }
            for _ in 0..repeat {
                self.enqueue(l, op)?;
            }
        }
        if open {
            t.gpu_segment(Self::close_segment(l)?);
        }
        Ok(t.end())
    }
}
