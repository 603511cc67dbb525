// conv1d.cu — dilated 1-D convolution with "same" zero padding, forward and backward.
// CPU twin: src/backend/cpu/conv1d.rs.
//
// Layouts (row-major): x (B, C_in, L), w (C_out, C_in, K), bias (C_out), y (B, C_out, L).
//   y[b,co,l] = bias[co] + sum_{ci,k} w[co,ci,k] * x[b,ci,l + k*d - pad_left]   (x = 0 outside 0..L)
// pad_left = ((K-1)*d)/2, pad_right = (K-1)*d - pad_left.
//
// conv1d_fwd_f32, conv1d_bwd_input_f32 — direct convolution from shared-memory tiles.
//   grid (ceil(L / TILE_L), ceil(C_out' / CO_TILE), B), block CONV_THREADS threads; each thread
//   computes POS_PER_THREAD positions (strided by CONV_THREADS, so a warp reads consecutive
//   words) for CO_TILE output channels. Dynamic shared memory, in floats:
//   ci_tile * (TILE_L + (K-1)*d) input values + CO_TILE * ci_tile * K weights; the host picks
//   ci_tile so that this fits.
//   The backward-input pass is the forward convolution of dy with w'[ci,co,k] = w[co,ci,K-1-k]
//   and pad_right zeros on the left; the flip is index arithmetic (FLIP), no transposed copy.
//
// conv1d_bwd_weight_partial_f32 + conv1d_bwd_weight_reduce_f32 — weight gradient
//   dw[co,ci,k] = sum_{b,l} dy[b,co,l] * x[b,ci,l + k*d - pad_left]
//   Pass 1: grid (n_chunks, n_co_tiles * n_ci_tiles, B), block WG_THREADS; each block sums one
//   chunk of chunk_len positions of one batch item for a WCO x WCI tile of channel pairs, in
//   shared-memory accumulators, and writes its partial to partial[(b * n_chunks + chunk), co, ci, k].
//   Pass 2: dw = the partials summed in f64, in chunk order (deterministic; no atomics).
//
// conv1d_bwd_bias_f32 — dbias[co] = sum_{b,l} dy[b,co,l]; one block per channel, f64 tree sum.

#define CONV_THREADS 128
#define POS_PER_THREAD 4
#define TILE_L (CONV_THREADS * POS_PER_THREAD)
#define CO_TILE 8

template <bool FLIP>
__device__ __forceinline__ void conv1d_tile(
    const float* __restrict__ x,     // (B, cin, L): the input of this convolution (dy when FLIP)
    const float* __restrict__ w,     // (cout, cin, K) when !FLIP; (cin, cout, K) when FLIP
    const float* __restrict__ bias,  // (cout) or nullptr
    float* __restrict__ y,           // (B, cout, L)
    int cin, int cout, int L, int K, int d, int pad_left, int ci_tile) {
    extern __shared__ float smem[];
    const int span = TILE_L + (K - 1) * d;
    float* xs = smem;                   // (ci_tile, span): x[l0 - pad_left + s]
    float* ws = smem + ci_tile * span;  // (CO_TILE, ci_tile, K)

    const int l0 = blockIdx.x * TILE_L;
    const int co0 = blockIdx.y * CO_TILE;
    const int b = blockIdx.z;
    const float* xb = x + (size_t)b * cin * L;

    float acc[CO_TILE][POS_PER_THREAD];
#pragma unroll
    for (int j = 0; j < CO_TILE; ++j)
#pragma unroll
        for (int p = 0; p < POS_PER_THREAD; ++p) acc[j][p] = 0.0f;

    for (int c0 = 0; c0 < cin; c0 += ci_tile) {
        const int nc = min(ci_tile, cin - c0);
        __syncthreads();  // the previous channel tile has been read by every thread
        for (int idx = threadIdx.x; idx < nc * span; idx += blockDim.x) {
            const int c = idx / span;
            const int s = idx - c * span;
            const int pos = l0 - pad_left + s;
            xs[c * span + s] = (pos >= 0 && pos < L) ? xb[(size_t)(c0 + c) * L + pos] : 0.0f;
        }
        for (int idx = threadIdx.x; idx < CO_TILE * nc * K; idx += blockDim.x) {
            const int j = idx / (nc * K);
            const int rem = idx - j * nc * K;
            const int c = rem / K;
            const int k = rem - c * K;
            const int co = co0 + j;
            float v = 0.0f;
            if (co < cout) {
                v = FLIP ? w[((size_t)(c0 + c) * cout + co) * K + (K - 1 - k)]
                         : w[((size_t)co * cin + (c0 + c)) * K + k];
            }
            ws[(j * ci_tile + c) * K + k] = v;
        }
        __syncthreads();

        for (int c = 0; c < nc; ++c) {
            const float* xrow = xs + c * span + threadIdx.x;
            const float* wrow = ws + c * K;
            for (int k = 0; k < K; ++k) {
                float xv[POS_PER_THREAD];
#pragma unroll
                for (int p = 0; p < POS_PER_THREAD; ++p) xv[p] = xrow[p * CONV_THREADS + k * d];
#pragma unroll
                for (int j = 0; j < CO_TILE; ++j) {
                    const float wv = wrow[j * ci_tile * K + k];
#pragma unroll
                    for (int p = 0; p < POS_PER_THREAD; ++p) acc[j][p] = fmaf(wv, xv[p], acc[j][p]);
                }
            }
        }
    }

#pragma unroll
    for (int j = 0; j < CO_TILE; ++j) {
        const int co = co0 + j;
        if (co < cout) {
            const float bv = bias != nullptr ? bias[co] : 0.0f;
            float* yrow = y + ((size_t)b * cout + co) * L;
#pragma unroll
            for (int p = 0; p < POS_PER_THREAD; ++p) {
                const int l = l0 + threadIdx.x + p * CONV_THREADS;
                if (l < L) yrow[l] = acc[j][p] + bv;
            }
        }
    }
}

// y (B, C_out, L) = conv(x (B, C_in, L), w (C_out, C_in, K)) + bias (C_out, may be null)
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
conv1d_fwd_f32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
               float* __restrict__ y, int c_in, int c_out, int L, int K, int d, int pad_left, int ci_tile) {
    conv1d_tile<false>(x, w, bias, y, c_in, c_out, L, K, d, pad_left, ci_tile);
}

// dx (B, C_in, L) from dy (B, C_out, L) and w (C_out, C_in, K); the grid's y dimension tiles C_in.
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
conv1d_bwd_input_f32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                     int c_in, int c_out, int L, int K, int d, int pad_right, int ci_tile) {
    conv1d_tile<true>(dy, w, nullptr, dx, c_out, c_in, L, K, d, pad_right, ci_tile);
}

#define WG_THREADS 256
#define WT 128  // positions per shared-memory tile
#define WCO 8   // output channels per block
#define WCI 8   // input channels per block

// partial ((B * n_chunks), C_out, C_in, K): per-chunk sums of dy[b,co,l] * x[b,ci,l + k*d - pad_left]
extern "C" __global__ void __launch_bounds__(WG_THREADS)
conv1d_bwd_weight_partial_f32(const float* __restrict__ x, const float* __restrict__ dy,
                              float* __restrict__ partial, int c_in, int c_out, int L, int K, int d,
                              int pad_left, int chunk_len, int n_ci_tiles) {
    extern __shared__ float smem[];
    const int span = WT + (K - 1) * d;
    const int xstride = span | 1;        // odd row stride: rows of different ci fall in different banks
    float* dys = smem;                   // (WCO, WT)
    float* xs = dys + WCO * WT;          // (WCI, xstride): x[t0 - pad_left + s]
    float* acc = xs + WCI * xstride;     // (K, WCO, WCI): each entry owned by one thread

    const int b = blockIdx.z;
    const int co0 = (blockIdx.y / n_ci_tiles) * WCO;
    const int ci0 = (blockIdx.y % n_ci_tiles) * WCI;
    const int nco = min(WCO, c_out - co0);
    const int nci = min(WCI, c_in - ci0);
    const int lc0 = blockIdx.x * chunk_len;
    const int lc1 = min(L, lc0 + chunk_len);
    const int n_out = WCO * WCI * K;
    const float* xb = x + (size_t)b * c_in * L;
    const float* dyb = dy + (size_t)b * c_out * L;

    for (int o = threadIdx.x; o < n_out; o += blockDim.x) acc[o] = 0.0f;

    for (int t0 = lc0; t0 < lc1; t0 += WT) {
        const int nt = min(WT, lc1 - t0);
        __syncthreads();  // the previous tile has been read by every thread
        for (int idx = threadIdx.x; idx < WCO * WT; idx += blockDim.x) {
            const int j = idx / WT;
            const int t = idx - j * WT;
            dys[idx] = (j < nco && t < nt) ? dyb[(size_t)(co0 + j) * L + t0 + t] : 0.0f;
        }
        for (int idx = threadIdx.x; idx < WCI * span; idx += blockDim.x) {
            const int c = idx / span;
            const int s = idx - c * span;
            const int pos = t0 - pad_left + s;
            xs[c * xstride + s] = (c < nci && pos >= 0 && pos < L) ? xb[(size_t)(ci0 + c) * L + pos] : 0.0f;
        }
        __syncthreads();
        for (int o = threadIdx.x; o < n_out; o += blockDim.x) {
            const int c = o % WCI;
            const int j = (o / WCI) % WCO;
            const int k = o / (WCI * WCO);
            const float* dyr = dys + j * WT;
            const float* xr = xs + c * xstride + k * d;
            float s = 0.0f;
            for (int t = 0; t < nt; ++t) s = fmaf(dyr[t], xr[t], s);
            acc[o] += s;
        }
    }
    __syncthreads();

    float* out = partial + ((size_t)b * gridDim.x + blockIdx.x) * c_out * c_in * K;
    for (int o = threadIdx.x; o < n_out; o += blockDim.x) {
        const int c = o % WCI;
        const int j = (o / WCI) % WCO;
        const int k = o / (WCI * WCO);
        if (j < nco && c < nci) out[((size_t)(co0 + j) * c_in + ci0 + c) * K + k] = acc[o];
    }
}

// dw[o] = sum_p partial[p, o] in f64, p in order. Launch: 1-D grid-stride over n_weights.
extern "C" __global__ void conv1d_bwd_weight_reduce_f32(const float* __restrict__ partial, float* __restrict__ dw,
                                                        int n_parts, long long n_weights) {
    GRID_STRIDE_LOOP(o, n_weights) {
        double s = 0.0;
        for (int p = 0; p < n_parts; ++p) s += (double)partial[(size_t)p * n_weights + o];
        dw[o] = (float)s;
    }
}

// dbias[co] = sum_{b,l} dy[b,co,l]. Launch: grid (C_out), block CHROMAX_THREADS.
extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
conv1d_bwd_bias_f32(const float* __restrict__ dy, float* __restrict__ dbias, int B, int c_out, int L) {
    __shared__ double red[CHROMAX_THREADS];
    const int co = blockIdx.x;
    double s[1] = {0.0};
    for (int b = 0; b < B; ++b) {
        const float* row = dy + ((size_t)b * c_out + co) * L;
        for (int l = threadIdx.x; l < L; l += blockDim.x) s[0] += (double)row[l];
    }
    block_sum_f64<1>(s, red);
    if (threadIdx.x == 0) dbias[co] = (float)s[0];
}
