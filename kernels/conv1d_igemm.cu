// conv1d_igemm.cu — wide convolutions (SeqNet's 4 → 288 stem and 288–512-channel towers,
// dilation 1) as implicit GEMMs on the tensor cores: bf16 operands, f32 sums, a 3-stage
// cp.async pipeline; forward and input gradient (conv1d_igemm_fwd), weight gradient
// (conv1d_igemm_wgrad_partial + _reduce, below). CPU twin: src/backend/cpu/conv1d.rs on bf16-rounded operands; the host
// op is src/backend/cuda/conv1d_igemm.rs.
//
// The input is first converted to bf16 channels-last, xh (B, L, cp) with cp = C_in rounded up
// to a multiple of 8 (conv1d_igemm_to_rows). With dilation 1 the im2col row of output
// position l of item b, kk = k * cp + c for k < K, c < cp, is then the contiguous stretch
// xh[b, l - pad .. l - pad + K, 0 .. cp): the GEMM
//   y[m = (b, l), n] = sum_kk A[m, kk] * W[n, kk],   M = B * L, N = C_out, K = K * cp (padded to kp)
// reads its A tiles straight from xh, 16 bytes (8 channels of one position) per cp.async, a
// position outside 0..L (or kk beyond K * cp) zero-filled by the src-size 0 form. W is
// prepared as wh (np, kp) bf16, zero beyond C_out and K * cp (conv1d_igemm_prep_weights; flip
// for the input gradient, the forward convolution of dy with flipped, transposed weights).
//
// Block: IG_BM positions x IG_BN outputs, 4 warps (2 x 2), each 32 x 32 (2 M-tiles x 4
// n-tiles of m16n8k16); K in slices of IG_BK = 32 through IG_STAGES shared stages. A shared
// row is 64 bytes (4 chunks of 16); chunk c of row r is stored at chunk c ^ ((r >> 1) & 3), so
// the 8 rows an ldmatrix phase reads fall in 8 different 16-byte bank groups.

#define IG_BM 64
#define IG_BN 64
#define IG_BK 32
#define IG_STAGES 3
#define IG_THREADS 128

__device__ __forceinline__ int ig_chunk(int r, int c) { return r * 64 + ((c ^ ((r >> 1) & 3)) << 4); }

// A warp's 32 x 32 step of k16: a[mt] the A fragments of its two M-tiles, q[p] two ldmatrix
// .x4 results each holding the B fragments of n-tiles 2p and 2p + 1.
__device__ __forceinline__ void ig_warp_mma(float (&acc)[2][4][4], const unsigned (&a)[2][4],
                                            const unsigned (&q)[2][4]) {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
            const unsigned b[2] = {q[nt / 2][(nt % 2) * 2], q[nt / 2][(nt % 2) * 2 + 1]};
            mma_bf16_16816(acc[mt][nt], a[mt], b, acc[mt][nt]);
        }
}

// xh (B, L, cp) bf16 <- x (B, C, L) f32, channels c >= C zero.
extern "C" __global__ void conv1d_igemm_to_rows(const float* __restrict__ x, unsigned short* __restrict__ xh, int B,
                                                int C, int L, int cp) {
    GRID_STRIDE_LOOP(i, (long long)B * L * cp) {
        const int c = (int)(i % cp);
        const long long bl = i / cp;
        const int l = (int)(bl % L), b = (int)(bl / L);
        xh[i] = f32_to_bf16(c < C ? x[((size_t)b * C + c) * L + l] : 0.0f);
    }
}

// wh (np, kp): wh[n, k * cp + c] = w[n, c, k] (flip = 0) or w[c, n, K - 1 - k] (flip = 1:
// n an input channel, c an output channel); zero outside the real channels and taps.
extern "C" __global__ void conv1d_igemm_prep_weights(const float* __restrict__ w, unsigned short* __restrict__ wh,
                                                     int cin, int cout, int K, int cp, int kp, int np, int flip) {
    GRID_STRIDE_LOOP(i, (long long)np * kp) {
        const int n = (int)(i / kp), kk = (int)(i % kp);
        const int k = kk / cp, c = kk % cp;
        float v = 0.0f;
        if (k < K) {
            if (!flip && n < cout && c < cin) v = w[((size_t)n * cin + c) * K + k];
            if (flip && n < cin && c < cout) v = w[((size_t)c * cin + n) * K + (K - 1 - k)];
        }
        wh[i] = f32_to_bf16(v);
    }
}

// y (B, nout, L) = the implicit GEMM of xh (B, L, cp) with wh (np, kp), pad zeros on the left.
extern "C" __global__ void __launch_bounds__(IG_THREADS)
    conv1d_igemm_fwd(const unsigned short* __restrict__ xh, const unsigned short* __restrict__ wh,
                     const float* __restrict__ bias, float* __restrict__ y, int B, int L, int cp, int kcp, int kp,
                     int nout, int pad, int slices_per_split, float* __restrict__ part) {
    __shared__ __align__(16) unsigned char as[IG_STAGES][IG_BM * 64];
    __shared__ __align__(16) unsigned char bs[IG_STAGES][IG_BN * 64];
    const int m0 = blockIdx.x * IG_BM, n0 = blockIdx.y * IG_BN;
    const int M = B * L;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wm = warp / 2, wn = warp % 2;
    const int j = lane / 8, r8 = lane % 8;
    // Split-K (grid.z > 1, short layers): this block sums slices [s0, s0 + slices) into
    // part[z, m, n] (M x nout) instead of y; conv1d_igemm_splitk_reduce adds the splits.
    const int s0 = blockIdx.z * slices_per_split;
    const int slices = max(0, min(slices_per_split, kp / IG_BK - s0));

    // Each thread loads 2 of the 256 A chunks and 2 of the 256 B chunks of a slice: rows
    // r = threadIdx.x / 4 + 32 i, chunk c = threadIdx.x % 4 for both. Its rows' positions are
    // fixed for the whole loop and slices are loaded in order, so the chunk's (tap, channel)
    // advances by 32 channels a slice without a division.
    const int c = threadIdx.x % 4, K = kcp / cp;
    const smem_ptr_t a_sm = to_smem(&as[0][0]), b_sm = to_smem(&bs[0][0]);
    int row_b[2], row_l[2];
    bool row_in[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int m = m0 + threadIdx.x / 4 + 32 * i;
        row_in[i] = m < M;
        row_b[i] = m / L;
        row_l[i] = m % L;
    }
    int tap = (s0 * IG_BK + c * 8) / cp, ci = (s0 * IG_BK + c * 8) % cp;
    auto load = [&](int s, int stage) {
        const int kk0 = (s0 + s) * IG_BK;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int r = threadIdx.x / 4 + 32 * i;
            const int pos = row_l[i] - pad + tap;
            const bool valid = row_in[i] && tap < K && pos >= 0 && pos < L;
            const unsigned short* src = valid ? xh + ((size_t)row_b[i] * L + pos) * cp + ci : xh;
            cp_async_16(a_sm + stage * (IG_BM * 64) + ig_chunk(r, c), src, valid);
            cp_async_16(b_sm + stage * (IG_BN * 64) + ig_chunk(r, c), wh + (size_t)(n0 + r) * kp + kk0 + c * 8, true);
        }
        ci += IG_BK;
        while (ci >= cp) {
            ci -= cp;
            ++tap;
        }
    };

    float acc[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;

#pragma unroll
    for (int s = 0; s < IG_STAGES - 1; ++s) {
        if (s < slices) load(s, s);
        cp_async_commit();
    }
    int stage = 0;  // s % IG_STAGES, kept without a division
    for (int s = 0; s < slices; ++s) {
        cp_async_wait<IG_STAGES - 2>();  // slice s has landed (this thread's copies) ...
        __syncthreads();                 // ... every thread's, and slice s - 1 has been read
        const int next = s + IG_STAGES - 1;
        if (next < slices) load(next, stage == 0 ? IG_STAGES - 1 : stage - 1);
        cp_async_commit();
        const smem_ptr_t a_st = a_sm + stage * (IG_BM * 64);
        const smem_ptr_t b_st = b_sm + stage * (IG_BN * 64);
        stage = stage == IG_STAGES - 1 ? 0 : stage + 1;
#pragma unroll
        for (int k16 = 0; k16 < 2; ++k16) {
            unsigned a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                // (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
                const int r = wm * 32 + mt * 16 + (j & 1) * 8 + r8;
                ldmatrix_x4(a[mt], a_st + ig_chunk(r, k16 * 2 + (j >> 1)));
            }
            unsigned q[2][4];
#pragma unroll
            for (int np2 = 0; np2 < 2; ++np2) {
                // (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
                const int r = wn * 32 + np2 * 16 + (j >> 1) * 8 + r8;
                ldmatrix_x4(q[np2], b_st + ig_chunk(r, k16 * 2 + (j & 1)));
            }
            ig_warp_mma(acc, a, q);
        }
    }
    cp_async_wait<0>();

    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int m = m0 + wm * 32 + mt * 16 + g + 8 * (i / 2);
                const int n = n0 + wn * 32 + nt * 8 + 2 * t + (i & 1);
                if (m < M && n < nout) {
                    if (part != nullptr) {
                        part[((size_t)blockIdx.z * M + m) * nout + n] = acc[mt][nt][i];
                    } else {
                        const int b = m / L, l = m % L;
                        y[((size_t)b * nout + n) * L + l] = acc[mt][nt][i] + (bias != nullptr ? bias[n] : 0.0f);
                    }
                }
            }
}

// y[b, n, l] = bias[n] + the splits' partials of row m = (b, l), summed in split order.
extern "C" __global__ void conv1d_igemm_splitk_reduce(const float* __restrict__ part, const float* __restrict__ bias,
                                                      float* __restrict__ y, int splits, int B, int L, int nout) {
    const long long M = (long long)B * L;
    GRID_STRIDE_LOOP(i, M * nout) {
        // i runs over y's layout (b, n, l), so the writes are coalesced.
        const int l = (int)(i % L), n = (int)((i / L) % nout), b = (int)(i / ((long long)L * nout));
        const long long m = (long long)b * L + l;
        float sum = 0.0f;
        for (int z = 0; z < splits; ++z) sum += part[((size_t)z * M + m) * nout + n];
        y[i] = sum + (bias != nullptr ? bias[n] : 0.0f);
    }
}

// ---- weight gradient ----------------------------------------------------------------------
//   dW[n, kk] = sum_m dy[m, n] * A[m, kk]   (m = (b, l) over B * L, A the im2col rows of xh)
// a GEMM of M' = outputs, N' = kk, K' = positions: A' = dy^T from dyh (B, L, cop) bf16 rows and
// B' = the im2col rows, both through ldmatrix .trans from tiles stored position by position.
// Block: IG_BN outputs x IG_WN kk, 4 warps (2 x 2) of 32 x 32; positions in slices of IG_WK
// through IG_STAGES stages; grid.z splits the positions, each split writing its partial
// part[z, n, kk] (np x kp2); conv1d_igemm_wgrad_reduce sums the splits in order (f64) into
// dw (C_out, C_in, K). Tiles are 128-byte rows (8 chunks), chunk c of row r stored at c ^ (r & 7).
#define IG_WN 64
#define IG_WK 32

__device__ __forceinline__ int ig_chunk128(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

extern "C" __global__ void __launch_bounds__(IG_THREADS, 1)
    conv1d_igemm_wgrad_partial(const unsigned short* __restrict__ xh, const unsigned short* __restrict__ dyh,
                               float* __restrict__ part, int B, int L, int cp, int kcp, int kp2, int cop, int np,
                               int pad, int slices_per_split) {
    __shared__ __align__(16) unsigned char ds[IG_STAGES][IG_WK * 128];
    __shared__ __align__(16) unsigned char xs[IG_STAGES][IG_WK * 128];
    const int n0 = blockIdx.x * IG_BN, kk0 = blockIdx.y * IG_WN, split = blockIdx.z;
    const int M = B * L;
    const int first = split * slices_per_split * IG_WK;
    const int slices = max(0, min(slices_per_split, (M - first + IG_WK - 1) / IG_WK));
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wm = warp / 2, wn = warp % 2;
    const int j = lane / 8, r8 = lane % 8;

    // Each thread loads 2 of the 256 dy chunks and 2 of the 256 im2col chunks of a slice:
    // rows r = threadIdx.x / 8 + 16 i, chunk c = threadIdx.x % 8. Its chunk's output channels
    // and (tap, channel) are fixed for the block; its rows' (item, position) advance by IG_WK a
    // slice (slices are loaded in order) without a division.
    const int c = threadIdx.x % 8;
    const smem_ptr_t d_sm = to_smem(&ds[0][0]), x_sm = to_smem(&xs[0][0]);
    const int n = n0 + c * 8, kk = kk0 + c * 8;
    const bool n_in = n < cop, kk_in = kk < kcp;
    const int tap = kk / cp, ci = kk % cp;
    int row_m[2], row_b[2], row_l[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        row_m[i] = first + threadIdx.x / 8 + 16 * i;
        row_b[i] = row_m[i] / L;
        row_l[i] = row_m[i] % L;
    }
    auto load = [&](int stage) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int r = threadIdx.x / 8 + 16 * i;
            const bool in = row_m[i] < M;
            const bool dv = in && n_in;
            cp_async_16(d_sm + stage * (IG_WK * 128) + ig_chunk128(r, c), dv ? dyh + (size_t)row_m[i] * cop + n : dyh, dv);
            const int pos = row_l[i] - pad + tap;
            const bool xv = in && kk_in && pos >= 0 && pos < L;
            cp_async_16(x_sm + stage * (IG_WK * 128) + ig_chunk128(r, c), xv ? xh + ((size_t)row_b[i] * L + pos) * cp + ci : xh,
                        xv);
            row_m[i] += IG_WK;
            row_l[i] += IG_WK;
            while (row_l[i] >= L) {
                row_l[i] -= L;
                ++row_b[i];
            }
        }
    };

    float acc[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;

#pragma unroll
    for (int s = 0; s < IG_STAGES - 1; ++s) {
        if (s < slices) load(s);
        cp_async_commit();
    }
    int stage = 0;  // s % IG_STAGES, kept without a division
    for (int s = 0; s < slices; ++s) {
        cp_async_wait<IG_STAGES - 2>();
        __syncthreads();
        const int next = s + IG_STAGES - 1;
        if (next < slices) load(stage == 0 ? IG_STAGES - 1 : stage - 1);
        cp_async_commit();
        const smem_ptr_t d_st = d_sm + stage * (IG_WK * 128);
        const smem_ptr_t x_st = x_sm + stage * (IG_WK * 128);
        stage = stage == IG_STAGES - 1 ? 0 : stage + 1;
#pragma unroll
        for (int k16 = 0; k16 < IG_WK / 16; ++k16) {
            unsigned a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                // A' = dy^T: (n 0-7, pos 0-7), (n 8-15, pos 0-7), (n 0-7, pos 8-15), (n 8-15, pos 8-15)
                const int r = k16 * 16 + (j >> 1) * 8 + r8;
                ldmatrix_x4_trans(a[mt], d_st + ig_chunk128(r, (wm * 32 + mt * 16) / 8 + (j & 1)));
            }
            unsigned q[2][4];
#pragma unroll
            for (int np2 = 0; np2 < 2; ++np2) {
                // B' = im2col: (pos 0-7, kk 0-7), (pos 8-15, kk 0-7), (pos 0-7, kk 8-15), (pos 8-15, kk 8-15)
                const int r = k16 * 16 + (j & 1) * 8 + r8;
                ldmatrix_x4_trans(q[np2], x_st + ig_chunk128(r, (wn * 32 + np2 * 16) / 8 + (j >> 1)));
            }
            ig_warp_mma(acc, a, q);
        }
    }
    cp_async_wait<0>();

    const int g = lane / 4, t = lane % 4;
    float* out = part + (size_t)split * np * kp2;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int n = n0 + wm * 32 + mt * 16 + g + 8 * (i / 2);
                const int kk = kk0 + wn * 32 + nt * 8 + 2 * t + (i & 1);
                out[(size_t)n * kp2 + kk] = acc[mt][nt][i];
            }
}

// dw[co, ci, k] = sum over the splits (in order, f64) of part[z, co, k * cp + ci].
extern "C" __global__ void conv1d_igemm_wgrad_reduce(const float* __restrict__ part, float* __restrict__ dw, int splits,
                                                     int cin, int cout, int K, int cp, int np, int kp2) {
    GRID_STRIDE_LOOP(i, (long long)cout * cin * K) {
        const int k = (int)(i % K), ci = (int)((i / K) % cin), co = (int)(i / ((long long)K * cin));
        double sum = 0.0;
        for (int z = 0; z < splits; ++z) sum += part[((size_t)z * np + co) * kp2 + (size_t)k * cp + ci];
        dw[i] = (float)sum;
    }
}
