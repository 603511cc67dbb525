// common.cuh — helpers shared by every kernel file.
//
// NVRTC gets no in-memory headers, so chromax prepends this file as text to each kernel
// file before compiling it (src/kernels.rs, kernel_program). Kernel files therefore do not
// #include it. Only plain CUDA C++ is used here (no CUDA headers), so NVRTC needs no
// include path for these kernels.

// Threads per block of the element-wise and reduction kernels (a power of two).
#define CHROMAX_THREADS 256

// Grid-stride loop over n elements, with 64-bit indices.
#define GRID_STRIDE_LOOP(i, n)                                                           \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)blockDim.x * gridDim.x)

// sigma(x) = 1 / (1 + e^-x), written so that neither branch overflows. CPU twin: cpu::sigmoid.
__device__ __forceinline__ float sigmoid_f32(float x) {
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    const float e = expf(x);
    return e / (1.0f + e);
}

// A convolution's epilogue on its output value v (sum plus bias) at y's index i: the residual
// added when one is given, then ReLU when asked: add_fwd_f32 and relu_fwd_f32 of
// elementwise.cu in the same order, so a fused epilogue gives their bits. CPU twin:
// backend::ops::epilogue_value.
__device__ __forceinline__ float conv_epilogue(float v, const float* __restrict__ residual, size_t i, int relu) {
    if (residual != nullptr) v = v + residual[i];
    if (relu) v = v > 0.0f ? v : 0.0f;
    return v;
}

__device__ __forceinline__ double sigmoid_f64(double x) {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    const double e = exp(x);
    return e / (1.0 + e);
}

// Sums vals[0..N) over the block, in a fixed order (deterministic for a given blockDim).
// red: shared scratch of N * blockDim.x doubles; blockDim.x must be a power of two.
// Every thread of the block must call it; the result is valid in thread 0.
template <int N>
__device__ void block_sum_f64(double (&vals)[N], double* red) {
    const int t = threadIdx.x;
    for (int q = 0; q < N; ++q) {
        red[q * blockDim.x + t] = vals[q];
    }
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) {
            for (int q = 0; q < N; ++q) {
                red[q * blockDim.x + t] += red[q * blockDim.x + t + stride];
            }
        }
        __syncthreads();
    }
    for (int q = 0; q < N; ++q) {
        vals[q] = red[q * blockDim.x];
    }
}
