// norm.cu — batch normalisation over (B, C, L), statistics per channel over B*L values.
// CPU twin: src/backend/cpu/norm.rs (formulas there).
//
// batchnorm_stats_f32, batchnorm_bwd_sums_f32: grid (C), block CHROMAX_THREADS; f64 sums in a
// fixed order (deterministic). batchnorm_normalize_f32, batchnorm_infer_f32,
// batchnorm_bwd_dx_f32: 1-D grid-stride over B*C*L. Per-channel buffers have C floats.

extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
batchnorm_stats_f32(const float* __restrict__ x, float* __restrict__ mean_out, float* __restrict__ invstd_out,
                    float* __restrict__ running_mean, float* __restrict__ running_var, int B, int C, int L, float eps,
                    float momentum) {
    __shared__ double red[CHROMAX_THREADS];
    __shared__ double shared_mean;
    const int c = blockIdx.x;
    const double m = (double)B * L;
    double s[1] = {0.0};
    for (int b = 0; b < B; ++b)
        for (int i = threadIdx.x; i < L; i += blockDim.x) s[0] += (double)x[((size_t)b * C + c) * L + i];
    block_sum_f64<1>(s, red);
    if (threadIdx.x == 0) shared_mean = s[0] / m;
    __syncthreads();
    const double mean = shared_mean;
    double q[1] = {0.0};
    for (int b = 0; b < B; ++b)
        for (int i = threadIdx.x; i < L; i += blockDim.x) {
            const double d = (double)x[((size_t)b * C + c) * L + i] - mean;
            q[0] += d * d;
        }
    __syncthreads();  // red is reused
    block_sum_f64<1>(q, red);
    if (threadIdx.x == 0) {
        const double var = q[0] / m;
        mean_out[c] = (float)mean;
        invstd_out[c] = (float)(1.0 / sqrt(var + (double)eps));
        running_mean[c] = (float)((double)momentum * running_mean[c] + (1.0 - (double)momentum) * mean);
        running_var[c] = (float)((double)momentum * running_var[c] + (1.0 - (double)momentum) * var);
    }
}

extern "C" __global__ void batchnorm_normalize_f32(const float* __restrict__ x, const float* __restrict__ gamma,
                                                   const float* __restrict__ beta, const float* __restrict__ mean,
                                                   const float* __restrict__ invstd, float* __restrict__ y, int B, int C, int L) {
    GRID_STRIDE_LOOP(k, (long long)B * C * L) {
        const int c = (int)((k / L) % C);
        y[k] = (float)((double)gamma[c] * ((double)x[k] - (double)mean[c]) * (double)invstd[c] + (double)beta[c]);
    }
}

extern "C" __global__ void batchnorm_infer_f32(const float* __restrict__ x, const float* __restrict__ gamma,
                                               const float* __restrict__ beta, const float* __restrict__ running_mean,
                                               const float* __restrict__ running_var, float* __restrict__ y, int B, int C,
                                               int L, float eps) {
    GRID_STRIDE_LOOP(k, (long long)B * C * L) {
        const int c = (int)((k / L) % C);
        const double invstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        y[k] = (float)((double)gamma[c] * ((double)x[k] - (double)running_mean[c]) * invstd + (double)beta[c]);
    }
}

extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
batchnorm_bwd_sums_f32(const float* __restrict__ x, const float* __restrict__ dy, const float* __restrict__ mean,
                       const float* __restrict__ invstd, float* __restrict__ dgamma, float* __restrict__ dbeta, int B, int C,
                       int L) {
    __shared__ double red[2 * CHROMAX_THREADS];
    const int c = blockIdx.x;
    const double mu = mean[c], is = invstd[c];
    double s[2] = {0.0, 0.0};
    for (int b = 0; b < B; ++b)
        for (int i = threadIdx.x; i < L; i += blockDim.x) {
            const size_t k = ((size_t)b * C + c) * L + i;
            const double g = dy[k];
            s[0] += g;
            s[1] += g * ((double)x[k] - mu) * is;
        }
    block_sum_f64<2>(s, red);
    if (threadIdx.x == 0) {
        dbeta[c] = (float)s[0];
        dgamma[c] = (float)s[1];
    }
}

extern "C" __global__ void batchnorm_bwd_dx_f32(const float* __restrict__ x, const float* __restrict__ dy,
                                                const float* __restrict__ gamma, const float* __restrict__ mean,
                                                const float* __restrict__ invstd, const float* __restrict__ dgamma,
                                                const float* __restrict__ dbeta, float* __restrict__ dx, int B, int C, int L) {
    const double m = (double)B * L;
    GRID_STRIDE_LOOP(k, (long long)B * C * L) {
        const int c = (int)((k / L) % C);
        const double is = invstd[c];
        const double xhat = ((double)x[k] - (double)mean[c]) * is;
        dx[k] = (float)((double)gamma[c] * is * ((double)dy[k] - (double)dbeta[c] / m - xhat * (double)dgamma[c] / m));
    }
}
