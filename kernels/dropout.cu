// dropout.cu — inverted dropout with a mask drawn from a seed, forward and backward.
// CPU twin: src/backend/cpu/dropout.rs; the mask is chromax::backend::dropout_keep.
//
// x, y, dy, dx: flat f32 arrays of n elements. Element i is kept when
// u = (splitmix64_mix(seed ^ i * 0x9E3779B97F4A7C15) >> 40) / 2^24 >= rate (u64 wrapping
// arithmetic); kept values are multiplied by 1 / (1 - rate), rounded to f32 as the CPU does,
// dropped ones are 0. The backward pass regenerates the mask from the same seed: no mask is
// stored. Launch: 1-D grid-stride, CHROMAX_THREADS threads per block, any number of blocks.

__device__ __forceinline__ unsigned long long splitmix64_mix(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// u has 24 significant bits, so the f32 comparison is exact (the CPU compares in f64).
__device__ __forceinline__ bool dropout_keep(unsigned long long seed, unsigned long long i, float rate) {
    const unsigned long long h = splitmix64_mix(seed ^ (i * 0x9E3779B97F4A7C15ull));
    return (float)(h >> 40) * (1.0f / 16777216.0f) >= rate;
}

// y = keep ? x / (1 - rate) : 0
extern "C" __global__ void dropout_fwd_f32(const float* __restrict__ x, float* __restrict__ y, long long n,
                                           unsigned long long seed, float rate) {
    const float scale = 1.0f / (1.0f - rate);
    GRID_STRIDE_LOOP(i, n) { y[i] = dropout_keep(seed, (unsigned long long)i, rate) ? x[i] * scale : 0.0f; }
}

// dx = keep ? dy / (1 - rate) : 0, the forward's mask
extern "C" __global__ void dropout_bwd_f32(const float* __restrict__ dy, float* __restrict__ dx, long long n,
                                           unsigned long long seed, float rate) {
    const float scale = 1.0f / (1.0f - rate);
    GRID_STRIDE_LOOP(i, n) { dx[i] = dropout_keep(seed, (unsigned long long)i, rate) ? dy[i] * scale : 0.0f; }
}
