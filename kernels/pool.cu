// pool.cu — max pooling over the length with Keras/TensorFlow "same" padding, window = stride.
// CPU twin: src/backend/cpu/pool.rs.
//
// x (B, C, L), y (B, C, Lo) with Lo = ceil(L / pool); output j covers inputs
// [j*pool - pad_left, j*pool - pad_left + pool) within [0, L), pad_left = (Lo*pool - L) / 2.
// Backward: dx[i] = dy[j] if i is the first maximum of its window j, else 0 (windows do not
// overlap: one thread per input, no atomics). Launch: 1-D grid-stride over outputs / inputs.

__device__ __forceinline__ int pool_argmax(const float* __restrict__ row, int j, int L, int pool, int pad_left) {
    const int start = max(j * pool - pad_left, 0);
    const int end = min(j * pool - pad_left + pool, L);
    int best = start;
    for (int i = start + 1; i < end; ++i)
        if (row[i] > row[best]) best = i;
    return best;
}

extern "C" __global__ void maxpool_fwd_f32(const float* __restrict__ x, float* __restrict__ y, long long rows, int L,
                                           int Lo, int pool, int pad_left) {
    GRID_STRIDE_LOOP(o, rows * Lo) {
        const long long r = o / Lo;
        const int j = (int)(o - r * Lo);
        const float* row = x + r * L;
        y[o] = row[pool_argmax(row, j, L, pool, pad_left)];
    }
}

extern "C" __global__ void maxpool_bwd_f32(const float* __restrict__ x, const float* __restrict__ dy,
                                           float* __restrict__ dx, long long rows, int L, int Lo, int pool, int pad_left) {
    GRID_STRIDE_LOOP(k, rows * L) {
        const long long r = k / L;
        const int i = (int)(k - r * L);
        const int j = (i + pad_left) / pool;
        dx[k] = pool_argmax(x + r * L, j, L, pool, pad_left) == i ? dy[r * Lo + j] : 0.0f;
    }
}
