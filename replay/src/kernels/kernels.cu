// The replay harness's kernels. At run time they are compiled with NVRTC where the machine has
// it; otherwise the pre-generated kernels.ptx beside this file (scripts/gen-ptx.py, for
// compute_70, which the driver compiles for any later GPU) is loaded instead.

// Compute-bound: each thread runs `iters` steps of two dependent fused multiply-add chains. A
// phase that may use a fraction of the SMs launches one block per SM it may use; `iters`, set
// from the device's calibration, gives the phase its duration. The store is guarded by a
// condition the compiler cannot decide, so the loop is never removed.
extern "C" __global__ void spin(unsigned long long iters, float* sink) {
    float a = 1.0f + threadIdx.x * 1.0e-6f;
    float b = 0.9999f;
    for (unsigned long long i = 0; i < iters; ++i) {
        a = fmaf(a, b, 1.0e-7f);
        b = fmaf(b, 0.99999f, a * 1.0e-9f);
    }
    if (a == -1.0f) {
        sink[blockIdx.x] = a + b;
    }
}

// Memory-bound: `passes` sweeps over `n` float4 elements, reading one buffer and writing the
// other, grid-strided.
extern "C" __global__ void stream(const float4* __restrict__ in, float4* __restrict__ out,
                                  unsigned long long n, unsigned int passes) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned int p = 0; p < passes; ++p) {
        for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += stride) {
            float4 v = in[i];
            v.x += 1.0f;
            out[i] = v;
        }
    }
}

// Nothing: launch overhead.
extern "C" __global__ void empty() {}
