//! The measurements one context can make: launch overhead, the spin kernel's rate and speed
//! against its grid's share of the SMs, the stream kernel's bandwidth against the same, two
//! stream kernels co-running, pinned copies, cuBLAS SGEMM. Each timed by CUDA events, after a
//! warm-up, sized to run tens of milliseconds.

use crate::calibration::{Measured, ReplayCalibration};
use crate::cuda::{self, DeviceBuffer, PinnedBuffer, err, time_on_gpu};
use crate::driver;
use crate::kernels::{self, Kernels};
use crate::plan::STREAM_BUFFER_BYTES;
use cudarc::driver::sys::{CUdevice_attribute, CUdeviceptr};
use cudarc::driver::{CudaContext, CudaStream};
use std::sync::Arc;

/// The SM shares the curves are measured at.
pub const SHARES: [f64; 6] = [0.125, 0.25, 0.5, 0.75, 0.875, 1.0];
/// Timed kernels should run about this long, ms.
const TARGET_MS: f64 = 25.0;

fn blocks_for(share: f64, sms: u32) -> u32 {
    ((share * f64::from(sms)).round() as u32).clamp(1, sms)
}

fn min_of(n: usize, mut f: impl FnMut() -> Result<f64, String>) -> Result<f64, String> {
    let mut best = f64::INFINITY;
    for _ in 0..n {
        best = best.min(f()?);
    }
    Ok(best)
}

/// Measures GPU `gpu` in this process; fills `m` and returns the replay's sizing.
pub fn measure(gpu: u32, m: &mut Measured) -> Result<ReplayCalibration, String> {
    let rig = Rig::open(gpu, m)?;
    let clocks = crate::nvml::ClockReader::new(gpu);
    warm_up(&rig, &clocks, m)?;
    let launch_overhead_us = launch_overhead(&rig)?;
    let (iters, t1, spin_iters_per_us) = spin_rate(&rig, m)?;
    eprintln!(
        "  launch {launch_overhead_us:.2} µs; spin {spin_iters_per_us:.1} iterations/µs (two blocks per SM: ×{:.2})",
        m.spin_two_blocks_per_sm_ratio
    );

    crate::signals::check_interrupted()?;
    // Speed against the grid's share of SMs, same total work.
    for share in SHARES {
        let b = blocks_for(share, rig.sms);
        let it = (iters as f64 * f64::from(rig.sms) / f64::from(b)).round() as u64;
        let t = min_of(2, || rig.spin_ms(b, it))?;
        m.spin_speed_by_share.push((share, t1 / t));
    }

    crate::signals::check_interrupted()?;
    let buffers = StreamBuffers::new(&rig.ctx)?;
    let stream_gbps = stream_bandwidth(&rig, &buffers)?;
    crate::signals::check_interrupted()?;
    co_run(&rig, &buffers, m)?;
    drop(buffers);

    crate::signals::check_interrupted()?;
    pinned_copies(&rig, m)?;

    crate::signals::check_interrupted()?;
    let sgemm_tflops = sgemm_rate(&rig, m)?;

    Ok(ReplayCalibration {
        threads_per_block: rig.threads,
        spin_iters_per_us,
        stream_gbps,
        sgemm_tflops,
        launch_overhead_us,
    })
}

/// What every measurement uses: the context, its kernels and stream, a sink for the spin
/// kernel, the SM count and the block size. (Fields drop in the reverse order of their making.)
struct Rig {
    sink: DeviceBuffer,
    stream: Arc<CudaStream>,
    k: Kernels,
    ctx: Arc<CudaContext>,
    sms: u32,
    threads: u32,
}

impl Rig {
    /// Creates the context on GPU `gpu` and loads the kernels; notes the SM count and memory in
    /// `m`.
    fn open(gpu: u32, m: &mut Measured) -> Result<Rig, String> {
        let ctx = CudaContext::new(gpu as usize).map_err(err("creating the CUDA context"))?;
        // SAFETY: before any allocation or launch in this context.
        unsafe { ctx.disable_event_tracking() };
        let k = kernels::load(&ctx)?;
        if let Some(why) = &k.nvrtc_failure {
            m.notes.push(why.clone());
        }
        if m.gpu_name.is_empty() {
            m.gpu_name = ctx.name().unwrap_or_default();
        }
        let sms = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(err("reading the SM count"))? as u32;
        let max_threads = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
            .map_err(err("reading the block size limit"))? as u32;
        m.sms = sms;
        m.memory_total_mib = ctx.total_mem().map_err(err("reading the memory size"))? as f64 / (1u64 << 20) as f64;
        let threads = max_threads.min(1024);
        let stream = ctx.new_stream().map_err(err("creating a stream"))?;
        let sink = DeviceBuffer::new(&ctx, 64 << 10)?;
        eprintln!("  {sms} SMs, {:.0} MiB, kernels from {}", m.memory_total_mib, k.origin);
        Ok(Rig {
            sink,
            stream,
            k,
            ctx,
            sms,
            threads,
        })
    }

    /// The spin kernel's GPU time over `blocks` blocks, `iters` iterations each, ms.
    fn spin_ms(&self, blocks: u32, iters: u64) -> Result<f64, String> {
        time_on_gpu(&self.ctx, &self.stream, || {
            cuda::spin(&self.stream, &self.k, blocks, self.threads, iters, self.sink.ptr)
        })
    }

    /// The stream kernel's GPU time over `blocks` blocks, `passes` sweeps of buffer `a`, ms.
    fn stream_ms(&self, b: &StreamBuffers, blocks: u32, passes: u32) -> Result<f64, String> {
        time_on_gpu(&self.ctx, &self.stream, || {
            cuda::stream_kernel(
                &self.stream,
                &self.k,
                cuda::Grid {
                    blocks,
                    threads: self.threads,
                },
                b.a,
                b.bytes,
                passes,
            )
        })
    }
}

/// Warm-up: module load, then bursts of every SM's spin kernel until the SM clock settles
/// (a cold GPU idles at a few hundred MHz and boosts over seconds).
fn warm_up(rig: &Rig, clocks: &Result<crate::nvml::ClockReader, String>, m: &mut Measured) -> Result<(), String> {
    if let Err(e) = clocks {
        m.notes
            .push(format!("clocks not read ({e}): warmed up for a fixed 2 s"));
    }
    let burst = || {
        for _ in 0..20 {
            cuda::spin(&rig.stream, &rig.k, rig.sms, rig.threads, 20_000, rig.sink.ptr)?;
        }
        rig.stream.synchronize().map_err(err("warm-up"))
    };
    let w = crate::nvml::warm_up(
        burst,
        || clocks.as_ref().ok().and_then(|c| c.sm_mhz()),
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(30),
    )?;
    m.warm_up_s = w.seconds;
    m.clock_settled = w.stable;
    m.sm_clock_mhz = w.sm_clock_mhz;
    m.mem_clock_mhz = clocks.as_ref().ok().and_then(|c| c.mem_mhz());
    if clocks.is_ok() && !w.stable {
        m.notes.push(format!(
            "the SM clock did not settle within {:.0} s of warm-up (last {} MHz): the measurements may drift",
            w.seconds,
            w.sm_clock_mhz.unwrap_or(0)
        ));
    }
    eprintln!(
        "  warmed up {:.1} s: SM clock {} MHz{}",
        w.seconds,
        w.sm_clock_mhz.map_or("unread".to_string(), |c| c.to_string()),
        if w.stable { ", settled" } else { "" }
    );
    Ok(())
}

/// Launch overhead: back-to-back empty kernels, host time per launch, µs.
fn launch_overhead(rig: &Rig) -> Result<f64, String> {
    let n = 5000;
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        cuda::empty(&rig.stream, &rig.k)?;
    }
    rig.stream.synchronize().map_err(err("launch overhead"))?;
    Ok(t0.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

/// Spin rate: grow the iterations to the target time, then take the slope between two sizes
/// (which cancels launch costs). The iterations and the time they take on every SM (ms), and the
/// rate (iterations/µs); the two-blocks-per-SM ratio goes to `m`.
fn spin_rate(rig: &Rig, m: &mut Measured) -> Result<(u64, f64, f64), String> {
    let sms = rig.sms;
    let mut iters: u64 = 10_000;
    loop {
        let t = rig.spin_ms(sms, iters)?;
        if t >= TARGET_MS / 2.0 || iters > 1 << 40 {
            break;
        }
        iters = (iters as f64 * (TARGET_MS / t.max(0.01))).ceil() as u64;
    }
    let t1 = min_of(3, || rig.spin_ms(sms, iters))?;
    let t2 = min_of(3, || rig.spin_ms(sms, 2 * iters))?;
    let spin_iters_per_us = iters as f64 / ((t2 - t1).max(1e-6) * 1e3);
    m.spin_two_blocks_per_sm_ratio = min_of(3, || rig.spin_ms(2 * sms, iters))? / t1;
    Ok((iters, t1, spin_iters_per_us))
}

/// The stream kernel's buffers: `a` and `b`, each an input and an output of `bytes`.
struct StreamBuffers {
    a: (CUdeviceptr, CUdeviceptr),
    b: (CUdeviceptr, CUdeviceptr),
    bytes: u64,
    _buffers: DeviceBuffer,
}

impl StreamBuffers {
    fn new(ctx: &Arc<CudaContext>) -> Result<StreamBuffers, String> {
        let bytes = STREAM_BUFFER_BYTES;
        let buffers = DeviceBuffer::new(ctx, 4 * bytes)?;
        let (a_in, a_out, b_in, b_out) = (
            buffers.ptr,
            buffers.ptr + bytes,
            buffers.ptr + 2 * bytes,
            buffers.ptr + 3 * bytes,
        );
        Ok(StreamBuffers {
            a: (a_in, a_out),
            b: (b_in, b_out),
            bytes,
            _buffers: buffers,
        })
    }
}

/// Stream bandwidth against the share of SMs, GB/s.
fn stream_bandwidth(rig: &Rig, buffers: &StreamBuffers) -> Result<Vec<(f64, f64)>, String> {
    let bytes = buffers.bytes;
    let stream_ms = |blocks: u32, passes: u32| rig.stream_ms(buffers, blocks, passes);
    let mut stream_gbps = Vec::new();
    for share in SHARES {
        let b = blocks_for(share, rig.sms);
        let mut passes = 1u32;
        let mut t = stream_ms(b, passes)?;
        while t < TARGET_MS / 2.0 && passes < 1 << 16 {
            passes = ((f64::from(passes) * TARGET_MS / t.max(0.01)).ceil() as u32).max(passes + 1);
            t = stream_ms(b, passes)?;
        }
        let t = min_of(2, || stream_ms(b, passes))?.min(t);
        stream_gbps.push((share, 2.0 * bytes as f64 * f64::from(passes) / (t * 1e-3) / 1e9));
    }
    eprintln!(
        "  stream bandwidth {:.0} GB/s with every SM, {:.0} GB/s with an eighth",
        stream_gbps.last().map_or(0.0, |p| p.1),
        stream_gbps[0].1
    );
    Ok(stream_gbps)
}

/// Two stream kernels on half the SMs each, on two streams, against one alone.
fn co_run(rig: &Rig, buffers: &StreamBuffers, m: &mut Measured) -> Result<(), String> {
    let (ctx, stream, k, threads, bytes) = (&rig.ctx, &rig.stream, &rig.k, rig.threads, buffers.bytes);
    let half = (rig.sms / 2).max(1);
    let other = ctx.new_stream().map_err(err("creating a stream"))?;
    let mut passes = 1u32;
    while rig.stream_ms(buffers, half, passes)? < TARGET_MS / 2.0 && passes < 1 << 16 {
        passes *= 2;
    }
    let alone = min_of(2, || rig.stream_ms(buffers, half, passes))?;
    let together = min_of(2, || {
        let (s0, e0) = (cuda::timing_event(ctx)?, cuda::timing_event(ctx)?);
        let (s1, e1) = (cuda::timing_event(ctx)?, cuda::timing_event(ctx)?);
        s0.record(stream).map_err(err("recording an event"))?;
        s1.record(&other).map_err(err("recording an event"))?;
        cuda::stream_kernel(
            stream,
            k,
            cuda::Grid { blocks: half, threads },
            buffers.a,
            bytes,
            passes,
        )?;
        cuda::stream_kernel(
            &other,
            k,
            cuda::Grid { blocks: half, threads },
            buffers.b,
            bytes,
            passes,
        )?;
        e0.record(stream).map_err(err("recording an event"))?;
        e1.record(&other).map_err(err("recording an event"))?;
        let t0 = f64::from(s0.elapsed_ms(&e0).map_err(err("reading events"))?);
        let t1 = f64::from(s1.elapsed_ms(&e1).map_err(err("reading events"))?);
        Ok(t0.max(t1))
    })?;
    m.co_run_slowdown = Some(together / alone);
    eprintln!(
        "  two half-GPU stream kernels together: ×{:.2} their time alone",
        together / alone
    );
    Ok(())
}

/// Pinned copies both ways.
fn pinned_copies(rig: &Rig, m: &mut Measured) -> Result<(), String> {
    let (ctx, stream) = (&rig.ctx, &rig.stream);
    let copy_bytes: u64 = 256 << 20;
    let mut host = PinnedBuffer::new(ctx, copy_bytes)?;
    let dev = DeviceBuffer::new(ctx, copy_bytes)?;
    let h2d = min_of(5, || {
        time_on_gpu(ctx, stream, || cuda::copy_h2d(stream, dev.ptr, &host, copy_bytes))
    })?;
    let d2h = min_of(5, || {
        time_on_gpu(ctx, stream, || cuda::copy_d2h(stream, &mut host, dev.ptr, copy_bytes))
    })?;
    m.h2d_gbps = copy_bytes as f64 / (h2d * 1e-3) / 1e9;
    m.d2h_gbps = copy_bytes as f64 / (d2h * 1e-3) / 1e9;
    eprintln!(
        "  pinned copies {:.1} GB/s to the device, {:.1} GB/s back",
        m.h2d_gbps, m.d2h_gbps
    );
    drop((host, dev));
    Ok(())
}

/// SGEMM through cuBLAS, TFLOP/s; `None` (noted) where no cuBLAS loads.
fn sgemm_rate(rig: &Rig, m: &mut Measured) -> Result<Option<f64>, String> {
    let (ctx, stream) = (&rig.ctx, &rig.stream);
    let sgemm_tflops = if driver::cublas_present() {
        let n = crate::plan::GEMM_N;
        let blas =
            cudarc::cublas::CudaBlas::new(stream.clone()).map_err(|e| format!("creating a cuBLAS handle: {e:?}"))?;
        let mats = DeviceBuffer::new(ctx, cuda::gemm_bytes(n))?;
        cuda::sgemm(&blas, n, mats.ptr, 2)?;
        let reps = 10;
        let t = min_of(3, || time_on_gpu(ctx, stream, || cuda::sgemm(&blas, n, mats.ptr, reps)))?;
        let tflops = f64::from(reps) * 2.0 * f64::from(n).powi(3) / (t * 1e-3) / 1e12;
        eprintln!("  cuBLAS SGEMM {n}: {tflops:.1} TFLOP/s");
        Some(tflops)
    } else {
        m.notes.push(format!(
            "no cuBLAS could be loaded: no SGEMM rate, so GEMM-like phases will replay as spin kernels; {}",
            crate::libs::searched()
        ));
        None
    };
    Ok(sgemm_tflops)
}
