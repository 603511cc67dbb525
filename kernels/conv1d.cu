// conv1d.cu — dilated 1-D convolution with "same" zero padding, forward and backward.
// CPU twin: src/backend/cpu/conv1d.rs.
//
// Layouts (row-major): x (B, C_in, L), w (C_out, C_in, K), bias (C_out), y (B, C_out, L).
//   y[b,co,l] = bias[co] + sum_{ci,k} w[co,ci,k] * x[b,ci,l + k*d - pad_left]   (x = 0 outside 0..L)
// pad_left = ((K-1)*d)/2, pad_right = (K-1)*d - pad_left.
//
// conv1d_fwd_f32, conv1d_bwd_input_f32 — direct convolution from shared-memory tiles.
//   grid (ceil(L / tile), ceil(C_out' / CO_TILE), B) with tile = CONV_THREADS * pos, block
//   CONV_THREADS threads; each thread computes `pos` positions (strided by CONV_THREADS, so a
//   warp reads consecutive words) for CO_TILE output channels. The host picks pos (1, 2 or 4)
//   per shape: the smallest tile that holds the row, so short rows (SeqNet's late layers) do
//   not launch mostly idle threads. Dynamic shared memory, in floats:
//   ci_tile * K * CO_TILE weights, laid out (c, k, j) so a thread reads the CO_TILE weights of
//   one tap as CO_TILE/4 16-byte loads, then ci_tile * (tile + (K-1)*d) input values; the host
//   picks ci_tile so that this fits. Per tap: pos + CO_TILE/4 shared loads feed
//   CO_TILE * pos FMAs (8 FMAs per load at pos 4).
//   The backward-input pass is the forward convolution of dy with w'[ci,co,k] = w[co,ci,K-1-k]
//   and pad_right zeros on the left; the flip is index arithmetic (FLIP), no transposed copy.
//
// conv1d_bwd_weight_partial_f32 + conv1d_bwd_weight_reduce_f32 — weight gradient
//   dw[co,ci,k] = sum_{b,l} dy[b,co,l] * x[b,ci,l + k*d - pad_left]
//   Pass 1: grid (n_chunks, n_co_tiles * n_ci_tiles, B), block WG_THREADS; each block sums one
//   chunk of chunk_len positions of one batch item for a WCO x WCI tile of channel pairs, in
//   4 x 4 register tiles per thread, and writes its partial to partial[(b * n_chunks + chunk), co, ci, k].
//   Pass 2: dw = the partials summed in f64, in chunk order (deterministic; no atomics).
//
// conv1d_bwd_bias_f32 + conv1d_bwd_bias_reduce_f64 — dbias[co] = sum_{b,l} dy[b,co,l]: blocks
//   over (channel, slice of positions) sum in f64 trees, the slices then summed in order.

#define CONV_THREADS 128
#define MAX_POS 4
#define CO_TILE 16

template <bool FLIP, int POS>
__device__ __forceinline__ void conv1d_tile(
    const float* __restrict__ x,     // (B, cin, L): the input of this convolution (dy when FLIP)
    const float* __restrict__ w,     // (cout, cin, K) when !FLIP; (cin, cout, K) when FLIP
    const float* __restrict__ bias,  // (cout) or nullptr
    float* __restrict__ y,           // (B, cout, L)
    const float* __restrict__ residual,  // (B, cout, L) added before the ReLU, or nullptr
    int relu,                            // ReLU on the output (conv_epilogue)
    int cin, int cout, int L, int K, int d, int pad_left, int ci_tile) {
    extern __shared__ __align__(16) float smem[];
    const int tile = CONV_THREADS * POS;
    const int span = tile + (K - 1) * d;
    float* ws = smem;                        // (ci_tile, K, CO_TILE), 16-byte aligned rows
    float* xs = smem + ci_tile * K * CO_TILE;  // (ci_tile, span): x[l0 - pad_left + s]

    const int l0 = blockIdx.x * tile;
    const int co0 = blockIdx.y * CO_TILE;
    const int b = blockIdx.z;
    const float* xb = x + (size_t)b * cin * L;

    float acc[CO_TILE][POS];
#pragma unroll
    for (int j = 0; j < CO_TILE; ++j)
#pragma unroll
        for (int p = 0; p < POS; ++p) acc[j][p] = 0.0f;

    for (int c0 = 0; c0 < cin; c0 += ci_tile) {
        const int nc = min(ci_tile, cin - c0);
        __syncthreads();  // the previous channel tile has been read by every thread
        for (int idx = threadIdx.x; idx < nc * span; idx += blockDim.x) {
            const int c = idx / span;
            const int s = idx - c * span;
            const int pos = l0 - pad_left + s;
            xs[c * span + s] = (pos >= 0 && pos < L) ? xb[(size_t)(c0 + c) * L + pos] : 0.0f;
        }
        // Consecutive threads read consecutive taps of w (coalesced) and scatter them to (c, k, j).
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
            ws[(c * K + k) * CO_TILE + j] = v;
        }
        __syncthreads();

        for (int c = 0; c < nc; ++c) {
            const float* xrow = xs + c * span + threadIdx.x;
            const float4* wrow = reinterpret_cast<const float4*>(ws + c * K * CO_TILE);
            for (int k = 0; k < K; ++k) {
                float xv[POS];
#pragma unroll
                for (int p = 0; p < POS; ++p) xv[p] = xrow[p * CONV_THREADS + k * d];
#pragma unroll
                for (int q = 0; q < CO_TILE / 4; ++q) {
                    const float4 wv = wrow[k * (CO_TILE / 4) + q];
#pragma unroll
                    for (int p = 0; p < POS; ++p) {
                        acc[4 * q + 0][p] = fmaf(wv.x, xv[p], acc[4 * q + 0][p]);
                        acc[4 * q + 1][p] = fmaf(wv.y, xv[p], acc[4 * q + 1][p]);
                        acc[4 * q + 2][p] = fmaf(wv.z, xv[p], acc[4 * q + 2][p]);
                        acc[4 * q + 3][p] = fmaf(wv.w, xv[p], acc[4 * q + 3][p]);
                    }
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
            for (int p = 0; p < POS; ++p) {
                const int l = l0 + threadIdx.x + p * CONV_THREADS;
                const size_t at = ((size_t)b * cout + co) * L + l;
                if (l < L) yrow[l] = conv_epilogue(acc[j][p] + bv, residual, at, relu);
            }
        }
    }
}

template <bool FLIP>
__device__ __forceinline__ void conv1d_any(const float* x, const float* w, const float* bias, float* y,
                                           const float* residual, int relu, int cin, int cout, int L, int K, int d,
                                           int pad_left, int ci_tile, int pos) {
    if (pos == 1) {
        conv1d_tile<FLIP, 1>(x, w, bias, y, residual, relu, cin, cout, L, K, d, pad_left, ci_tile);
    } else if (pos == 2) {
        conv1d_tile<FLIP, 2>(x, w, bias, y, residual, relu, cin, cout, L, K, d, pad_left, ci_tile);
    } else {
        conv1d_tile<FLIP, MAX_POS>(x, w, bias, y, residual, relu, cin, cout, L, K, d, pad_left, ci_tile);
    }
}

// y (B, C_out, L) = conv(x (B, C_in, L), w (C_out, C_in, K)) + bias (C_out, may be null), then
// the epilogue: + residual (B, C_out, L; may be null), ReLU if relu != 0.
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
conv1d_fwd_f32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
               float* __restrict__ y, const float* __restrict__ residual, int relu, int c_in, int c_out, int L, int K,
               int d, int pad_left, int ci_tile, int pos) {
    conv1d_any<false>(x, w, bias, y, residual, relu, c_in, c_out, L, K, d, pad_left, ci_tile, pos);
}

// dx (B, C_in, L) from dy (B, C_out, L) and w (C_out, C_in, K); the grid's y dimension tiles C_in.
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
conv1d_bwd_input_f32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                     int c_in, int c_out, int L, int K, int d, int pad_right, int ci_tile, int pos) {
    conv1d_any<true>(dy, w, nullptr, dx, nullptr, 0, c_out, c_in, L, K, d, pad_right, ci_tile, pos);
}

#define WG_THREADS 256
#define WT 128             // positions per shared-memory tile
#define WCO 8              // output channels per block
#define WCI 8              // input channels per block
#define DY_STRIDE (WT + 4)  // dy rows padded: 16-byte aligned, and rows 4 apart fall in other banks

// partial ((B * n_chunks), C_out, C_in, K): per-chunk sums of dy[b,co,l] * x[b,ci,l + k*d - pad_left]
//   A block's WCO x (WCI*K) outputs are a small GEMM (rows j, columns n = c*K + k, summed over
//   positions t). A task is a 4 x 4 register tile of it (4K tasks); when there are fewer tasks
//   than threads, `splits` threads share a task, each taking every splits-th group of 4
//   positions, and their sums are added in shared memory in a fixed order. Per group of 4
//   positions a thread reads 4 rows of dy as 16-byte loads and 4 x 4 x values for 64 FMAs.
//   More tasks than threads (K > 64) run in rounds, each reading the chunk again.
extern "C" __global__ void __launch_bounds__(WG_THREADS)
conv1d_bwd_weight_partial_f32(const float* __restrict__ x, const float* __restrict__ dy,
                              float* __restrict__ partial, int c_in, int c_out, int L, int K, int d,
                              int pad_left, int chunk_len, int n_ci_tiles) {
    extern __shared__ __align__(16) float smem[];
    const int span = WT + (K - 1) * d;
    const int xstride = span | 1;       // odd row stride: rows of different ci fall in different banks
    float* dys = smem;                  // (WCO, DY_STRIDE)
    float* xs = dys + WCO * DY_STRIDE;  // (WCI, xstride): x[t0 - pad_left + s]
    float* red = smem;                  // after a round: (splits, per_round, 16) sums

    const int b = blockIdx.z;
    const int co0 = (blockIdx.y / n_ci_tiles) * WCO;
    const int ci0 = (blockIdx.y % n_ci_tiles) * WCI;
    const int nco = min(WCO, c_out - co0);
    const int nci = min(WCI, c_in - ci0);
    const int lc0 = blockIdx.x * chunk_len;
    const int lc1 = min(L, lc0 + chunk_len);
    const float* xb = x + (size_t)b * c_in * L;
    const float* dyb = dy + (size_t)b * c_out * L;
    float* out = partial + ((size_t)b * gridDim.x + blockIdx.x) * c_out * c_in * K;

    const int tasks = 4 * K;  // (WCO / 4 row groups) x (WCI * K / 4 column groups)
    const int splits = max(1, min(WG_THREADS / tasks, WT / 4));
    const int per_round = WG_THREADS / splits;
    const int s = threadIdx.x / per_round;
    for (int task0 = 0; task0 < tasks; task0 += per_round) {
        const int task = task0 + threadIdx.x % per_round;
        const bool active = s < splits && task < tasks;
        const int jg = task & 1;
        int xoff[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int n = 4 * (task >> 1) + e;
            const int c = n / K;
            xoff[e] = c * xstride + (n - c * K) * d;
        }
        float acc[4][4];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[r][e] = 0.0f;

        for (int t0 = lc0; t0 < lc1; t0 += WT) {
            const int nt = min(WT, lc1 - t0);
            __syncthreads();  // the previous tile (or round's sums) has been read by every thread
            for (int idx = threadIdx.x; idx < WCO * WT; idx += blockDim.x) {
                const int j = idx / WT;
                const int t = idx - j * WT;
                dys[j * DY_STRIDE + t] = (j < nco && t < nt) ? dyb[(size_t)(co0 + j) * L + t0 + t] : 0.0f;
            }
            for (int idx = threadIdx.x; idx < WCI * span; idx += blockDim.x) {
                const int c = idx / span;
                const int sp = idx - c * span;
                const int pos = t0 - pad_left + sp;
                xs[c * xstride + sp] = (c < nci && pos >= 0 && pos < L) ? xb[(size_t)(ci0 + c) * L + pos] : 0.0f;
            }
            __syncthreads();
            if (active) {
                for (int q = s; q < WT / 4; q += splits) {
                    const int t = 4 * q;
                    float4 dv[4];
#pragma unroll
                    for (int r = 0; r < 4; ++r)
                        dv[r] = *reinterpret_cast<const float4*>(dys + (4 * jg + r) * DY_STRIDE + t);
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const float* xp = xs + xoff[e] + t;
                        const float x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
#pragma unroll
                        for (int r = 0; r < 4; ++r) {
                            float a = acc[r][e];
                            a = fmaf(dv[r].x, x0, a);
                            a = fmaf(dv[r].y, x1, a);
                            a = fmaf(dv[r].z, x2, a);
                            a = fmaf(dv[r].w, x3, a);
                            acc[r][e] = a;
                        }
                    }
                }
            }
        }
        // The splits' sums added in split order (deterministic), then written out.
        __syncthreads();
        if (active) {
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int e = 0; e < 4; ++e) red[(s * per_round + (task - task0)) * 16 + r * 4 + e] = acc[r][e];
        }
        __syncthreads();
        for (int o = threadIdx.x; o < per_round * 16; o += blockDim.x) {
            const int tl = o / 16;
            const int re = o - tl * 16;
            const int tk = task0 + tl;
            if (tk >= tasks) continue;
            float v = 0.0f;
            for (int s2 = 0; s2 < splits; ++s2) v += red[(s2 * per_round + tl) * 16 + re];
            const int j = 4 * (tk & 1) + re / 4;
            const int n = 4 * (tk >> 1) + (re & 3);
            const int c = n / K;
            const int k = n - c * K;
            if (j < nco && c < nci) out[((size_t)(co0 + j) * c_in + ci0 + c) * K + k] = v;
        }
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

// dbias partials: block (co, s) of grid (C_out, S), CHROMAX_THREADS threads, sums dy[b, co, l]
// over every b and l in [s * chunk, min((s + 1) * chunk, L)) in f64 (a fixed tree) into
// part[co * S + s]. Splitting the positions fills the device: one block per channel used 15 of
// an H200's 132 SMs for DenoiseNet.
extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
conv1d_bwd_bias_f32(const float* __restrict__ dy, double* __restrict__ part, int B, int c_out, int L, int chunk) {
    __shared__ double red[CHROMAX_THREADS];
    const int co = blockIdx.x;
    const int l0 = blockIdx.y * chunk;
    const int l1 = min(L, l0 + chunk);
    double s[1] = {0.0};
    for (int b = 0; b < B; ++b) {
        const float* row = dy + ((size_t)b * c_out + co) * L;
        for (int l = l0 + threadIdx.x; l < l1; l += blockDim.x) s[0] += (double)row[l];
    }
    block_sum_f64<1>(s, red);
    if (threadIdx.x == 0) part[(size_t)co * gridDim.y + blockIdx.y] = s[0];
}

// dbias[co] = sum_s part[co, s] in f64, s in order. Launch: 1-D grid-stride over C_out.
extern "C" __global__ void conv1d_bwd_bias_reduce_f64(const double* __restrict__ part, float* __restrict__ dbias,
                                                      int n_splits, int c_out) {
    GRID_STRIDE_LOOP(co, c_out) {
        double s = 0.0;
        for (int p = 0; p < n_splits; ++p) s += part[co * n_splits + p];
        dbias[co] = (float)s;
    }
}
