// elementwise.cu — ReLU, residual add and sigmoid, forward and backward.
// CPU twin: src/backend/cpu/elementwise.rs.
//
// All buffers are flat f32 arrays of n elements. Launch: 1-D grid-stride, CHROMAX_THREADS
// threads per block, any number of blocks.

// y = max(x, 0)
extern "C" __global__ void relu_fwd_f32(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE_LOOP(i, n) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
}

// dx = dy * [y > 0], y the forward output
extern "C" __global__ void relu_bwd_f32(const float* __restrict__ y, const float* __restrict__ dy,
                                        float* __restrict__ dx, long long n) {
    GRID_STRIDE_LOOP(i, n) { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
}

// y = a + b
extern "C" __global__ void add_fwd_f32(const float* __restrict__ a, const float* __restrict__ b,
                                       float* __restrict__ y, long long n) {
    GRID_STRIDE_LOOP(i, n) { y[i] = a[i] + b[i]; }
}

// y = sigma(x)
extern "C" __global__ void sigmoid_fwd_f32(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE_LOOP(i, n) { y[i] = sigmoid_f32(x[i]); }
}

// dx = dy * y * (1 - y), y the forward output
extern "C" __global__ void sigmoid_bwd_f32(const float* __restrict__ y, const float* __restrict__ dy,
                                           float* __restrict__ dx, long long n) {
    GRID_STRIDE_LOOP(i, n) { dx[i] = dy[i] * y[i] * (1.0f - y[i]); }
}

// scBasset's GELU: y = x * sigma(1.702 x)
#define GELU_SLOPE 1.702f
extern "C" __global__ void gelu_fwd_f32(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE_LOOP(i, n) { y[i] = x[i] * sigmoid_f32(GELU_SLOPE * x[i]); }
}

// dx = dy * (s + 1.702 x s (1 - s)), s = sigma(1.702 x), x the forward input
extern "C" __global__ void gelu_bwd_f32(const float* __restrict__ x, const float* __restrict__ dy,
                                        float* __restrict__ dx, long long n) {
    GRID_STRIDE_LOOP(i, n) {
        const float s = sigmoid_f32(GELU_SLOPE * x[i]);
        dx[i] = dy[i] * (s + GELU_SLOPE * x[i] * s * (1.0f - s));
    }
}
