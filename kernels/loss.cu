// loss.cu — the fused denoising loss: mse_w*MSE + pearson_w*(1 - r) + bce_w*BCE over the
// cropped centre of each interval. CPU twin: src/backend/cpu/loss.rs (the formulas and the
// gradient are written out there).
//
// reg, clean, logits, mask, d_reg, d_cls: (B, L) f32. Only l in [pad, L - pad) is scored;
// N = B * (L - 2*pad). stats: 7 doubles on the device,
//   [0] sum p, [1] sum t, [2] sum (p-t)^2, [3] sum bce, [4] S_pt, [5] S_pp, [6] S_tt.
//
// Passes (all sums in f64, block partials reduced in a fixed order, so deterministic):
//   1. denoise_loss_sums_f32      -> partial (grid, 4);  reduce_rows_f64 -> stats[0..4)
//   2. denoise_loss_centred_f32   -> partial (grid, 3);  reduce_rows_f64 -> stats[4..7)
//   3. denoise_loss_grad_f32      -> d_reg, d_cls (zero in the padding)
// Launch: 1-D grid-stride, CHROMAX_THREADS per block; reduce_rows_f64 with one block.

#define PEARSON_EPS 1e-7

__device__ __forceinline__ long long cropped_index(long long i, int L, int pad) {
    const long long lc = L - 2 * pad;
    return (i / lc) * L + pad + (i % lc);
}

__device__ __forceinline__ double bce_with_logit(double z, double y) {
    return fmax(z, 0.0) - z * y + log1p(exp(-fabs(z)));
}

extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
denoise_loss_sums_f32(const float* __restrict__ reg, const float* __restrict__ clean,
                      const float* __restrict__ logits, const float* __restrict__ mask,
                      double* __restrict__ partial, int B, int L, int pad) {
    __shared__ double red[4 * CHROMAX_THREADS];
    const long long n = (long long)B * (L - 2 * pad);
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    GRID_STRIDE_LOOP(i, n) {
        const long long j = cropped_index(i, L, pad);
        const double p = reg[j], t = clean[j];
        s[0] += p;
        s[1] += t;
        s[2] += (p - t) * (p - t);
        s[3] += bce_with_logit(logits[j], mask[j]);
    }
    block_sum_f64<4>(s, red);
    if (threadIdx.x == 0)
        for (int q = 0; q < 4; ++q) partial[blockIdx.x * 4 + q] = s[q];
}

extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
denoise_loss_centred_f32(const float* __restrict__ reg, const float* __restrict__ clean,
                         const double* __restrict__ stats, double* __restrict__ partial, int B, int L, int pad) {
    __shared__ double red[3 * CHROMAX_THREADS];
    const long long n = (long long)B * (L - 2 * pad);
    const double mean_p = stats[0] / (double)n, mean_t = stats[1] / (double)n;
    double s[3] = {0.0, 0.0, 0.0};
    GRID_STRIDE_LOOP(i, n) {
        const long long j = cropped_index(i, L, pad);
        const double dp = reg[j] - mean_p, dt = clean[j] - mean_t;
        s[0] += dp * dt;
        s[1] += dp * dp;
        s[2] += dt * dt;
    }
    block_sum_f64<3>(s, red);
    if (threadIdx.x == 0)
        for (int q = 0; q < 3; ++q) partial[blockIdx.x * 3 + q] = s[q];
}

// out[q] = sum_r partial[r, q]; one block of CHROMAX_THREADS threads, n_cols <= 4.
extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
reduce_rows_f64(const double* __restrict__ partial, double* __restrict__ out, int n_rows, int n_cols) {
    __shared__ double red[4 * CHROMAX_THREADS];
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    for (int r = threadIdx.x; r < n_rows; r += blockDim.x)
        for (int q = 0; q < n_cols; ++q) s[q] += partial[(size_t)r * n_cols + q];
    block_sum_f64<4>(s, red);
    if (threadIdx.x == 0)
        for (int q = 0; q < n_cols; ++q) out[q] = s[q];
}

extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
denoise_loss_grad_f32(const float* __restrict__ reg, const float* __restrict__ clean,
                      const float* __restrict__ logits, const float* __restrict__ mask,
                      const double* __restrict__ stats, float* __restrict__ d_reg, float* __restrict__ d_cls,
                      int B, int L, int pad, float w_mse, float w_r, float w_bce) {
    const double n = (double)B * (L - 2 * pad);
    const double mean_p = stats[0] / n, mean_t = stats[1] / n;
    const double s_pt = stats[4], s_pp = stats[5], s_tt = stats[6];
    const double den = sqrt(s_pp * s_tt) + PEARSON_EPS;
    const double spread = s_pp * s_tt > 0.0 ? s_pt * sqrt(s_tt / s_pp) / (den * den) : 0.0;
    GRID_STRIDE_LOOP(i, (long long)B * L) {
        const int l = (int)(i % L);
        if (l < pad || l >= L - pad) {
            d_reg[i] = 0.0f;
            d_cls[i] = 0.0f;
            continue;
        }
        const double p = reg[i], t = clean[i];
        const double d_r = (t - mean_t) / den - spread * (p - mean_p);
        d_reg[i] = (float)((double)w_mse * 2.0 * (p - t) / n - (double)w_r * d_r);
        d_cls[i] = (float)((double)w_bce * (sigmoid_f64((double)logits[i]) - (double)mask[i]) / n);
    }
}
