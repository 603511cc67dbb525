// conv1d_mma.cu — dilated 1-D convolution of few channels (DenoiseNet's 15 → 15, width 51,
// dilation 8) on the tensor cores: bf16 operands, f32 accumulation (mma.sync m16n8k16 through
// warp.cuh). CPU twin: src/backend/cpu/conv1d.rs on bf16-rounded operands; the host op is
// src/backend/cuda/conv1d_mma.rs. Same contract as conv1d.cu's f32 kernels:
//   y[b,co,l] = bias[co] + sum_{ci,k} w[co,ci,k] * x[b,ci,l + k*d - pad_left]   (x = 0 outside 0..L)
// with x, y, dy f32 (B, C, L) in global memory. Channels are padded to 16 and held
// channels-last in shared memory (a row = one position's 16 channels, 32 bytes), so the
// reduction is tap-major: per tap one 16 (positions) x 16 (channels) A tile times a
// 16 (channels) x 16 (outputs) B tile.
//
// Shared rows are 32 bytes, two 16-byte halves; half h of row r sits at half h ^ ((r >> 2) & 1),
// so the 8 rows an ldmatrix phase reads (any 8 consecutive rows) fall in 8 different 16-byte
// bank groups.
//
// conv1d_mma_prep_weights: w (C_out, C_in, K) f32 -> wh (K, 16, 16) bf16 rows [k][n][c] in the
//   swizzled row layout: n the pass's output channel, c its input channel. flip = 0: n = co,
//   c = ci (forward); flip = 1: n = ci, c = co, tap K-1-k (the input gradient: the forward
//   convolution of dy with the flipped, transposed weights and pad_right on the left).
//
// conv1d_mma_fwd: one block of MMA_WARPS warps per (MMA_TILE positions, batch item); warp w
//   owns M-tiles of 16 positions w*MMA_MT .. +MMA_MT, each 16 positions x 16 outputs (two
//   n-tiles of 8). The weights of all taps come in by cp.async while the threads convert the
//   input span (MMA_TILE + (K-1)*d positions) to bf16 rows. Where d == 8 (DenoiseNet's
//   dilation equals half an M-tile), tap k+1's A tile is tap k's shifted by 8 rows: its upper
//   half is loaded (ldmatrix .x2) and the lower half taken from tap k's registers.
//   Dynamic shared memory: K * 512 bytes of weights + (MMA_TILE + (K-1)*d) * 32 bytes of input.
//
// Packed activations (a residual trunk's activations between its convolutions, inference):
// (B, L, 16) bf16, one 32-byte row per position, channels padded with zeros to 16, the layout
// of the shared rows above without the swizzle. Half the bytes of f32 15-channel (B, C, L)
// activations, and a row is two 16-byte cp.async copies, no conversion on load.
//   conv1d_mma_pack: f32 (B, C, L) -> packed (rounded to bf16, channels C..15 zero).
//   conv1d_mma_unpack: packed -> f32 (B, C, L).
//   conv1d_mma_fwd_packed: conv1d_mma_fwd from packed x into packed y: the same reduction;
//     the epilogue adds a packed residual, applies ReLU, rounds to bf16 and stores the 16
//     channels of each position (channels nout..15 as zeros, so the next layer reads zeros).
//   conv1d_mma_wgrad_partial_packed: conv1d_mma_wgrad_partial with x packed (training keeps
//     the activations it saves for backward packed); dy stays f32 (B, C, L).
//
// conv1d_mma_wgrad_partial: dw[co,ci,k] = sum_{b,l} dy[b,co,l] * x[b,ci,l + k*d - pad_left], one
//   block per (chunk of chunk_len positions, batch item), MMA_WG_WARPS warps; warp w owns the
//   taps k = w, w + MMA_WG_WARPS, ... (at most MMA_WG_TAPS). The chunk runs in steps of
//   MMA_WG_STEP positions: dy rows (A = dy^T through ldmatrix .trans) and the x span (B through
//   .trans). Each block writes its partial[(b * n_chunks + chunk), co, ci, k]; conv1d.cu's
//   conv1d_bwd_weight_reduce_f32 sums them in a fixed order (deterministic).
//   Dynamic shared memory: (MMA_WG_STEP + MMA_WG_STEP + (K-1)*d) * 32 bytes.

#define MMA_WARPS 4
#define MMA_MT 4
#define MMA_TILE (MMA_WARPS * MMA_MT * 16)
#define MMA_WG_WARPS 8
#define MMA_WG_TAPS 7
#define MMA_WG_STEP 128

// Byte offset of half h (0, 1) of shared row r.
__device__ __forceinline__ int mma_row_half(int r, int h) { return r * 32 + ((h ^ ((r >> 2) & 1)) << 4); }

// Writes 16 bf16 (channels 0..15 of one position) as shared row r.
__device__ __forceinline__ void mma_store_row(unsigned char* base, int r, const unsigned (&v)[8]) {
    uint4* lo = reinterpret_cast<uint4*>(base + mma_row_half(r, 0));
    uint4* hi = reinterpret_cast<uint4*>(base + mma_row_half(r, 1));
    *lo = make_uint4(v[0], v[1], v[2], v[3]);
    *hi = make_uint4(v[4], v[5], v[6], v[7]);
}

// Converts positions [p0, p0 + rows) of one batch item's x (nc rows of L; channels c < nc,
// zero elsewhere and outside 0..end) into shared rows 0..rows.
__device__ __forceinline__ void mma_load_rows(unsigned char* base, const float* __restrict__ xb, int nc, int L,
                                              int end, int p0, int rows) {
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        const int pos = p0 + r;
        const bool in = pos >= 0 && pos < end;
        unsigned v[8];
#pragma unroll
        for (int c = 0; c < 16; c += 2) {
            const float lo = (in && c < nc) ? xb[(size_t)c * L + pos] : 0.0f;
            const float hi = (in && c + 1 < nc) ? xb[(size_t)(c + 1) * L + pos] : 0.0f;
            v[c / 2] = pack_bf16x2(f32_to_bf16(lo), f32_to_bf16(hi));
        }
        mma_store_row(base, r, v);
    }
}

// The forward's reduction over taps for one warp's MMA_MT M-tiles. Weight rows of tap k are
// rows 16k.., so their swizzle ((row >> 2) & 1) is the same for every tap: the lane's
// address moves by 512 bytes a tap. With D8 (dilation 8 = half an M-tile) tap k's A rows are
// tap k-1's shifted by 8: rows 0-7 are taken from the last tap's registers, rows 8-15 loaded
// (ldmatrix .x2) at an address that moves by 8 rows = 256 bytes a tap with the same swizzle.
template <bool D8>
__device__ __forceinline__ void mma_fwd_taps(float (&acc)[MMA_MT][2][4], unsigned (&a)[MMA_MT][4],
                                             const unsigned char* ws, const unsigned char* xs, int K, int d, int base,
                                             int j, int r8) {
    const unsigned char* wrow = ws + mma_row_half((j >> 1) * 8 + r8, j & 1);
    // D8: tap 0 loads rows 0-15 whole, from then on rows 8-15; the lane's byte offset of tap
    // 0's rows 8-15 in M-tile m is xrow + 512 m (16 rows: the swizzle repeats).
    const int xrow = mma_row_half(base + 8 + r8, j & 1);
    if (D8) {
#pragma unroll
        for (int m = 0; m < MMA_MT; ++m) ldmatrix_x4(a[m], xs + mma_row_half(base + m * 16 + (j & 1) * 8 + r8, j >> 1));
    }
    for (int k = 0; k < K; ++k) {
        // B: rows n of tap k; matrices (n 0-7, c 0-7), (n 0-7, c 8-15), (n 8-15, c 0-7), (n 8-15, c 8-15).
        unsigned bw[4];
        ldmatrix_x4(bw, wrow + k * 512);
        const unsigned b0[2] = {bw[0], bw[1]}, b1[2] = {bw[2], bw[3]};
        // Other dilations: this tap's A rows of M-tile 0; M-tile m is 16 m rows on (same swizzle).
        const int tap_off = D8 ? 0 : mma_row_half(base + k * d + (j & 1) * 8 + r8, j >> 1);
#pragma unroll
        for (int m = 0; m < MMA_MT; ++m) {
            if (D8) {
                if (k > 0) {
                    // Rows 0-7 of this tap are rows 8-15 of the last one.
                    a[m][0] = a[m][1];
                    a[m][2] = a[m][3];
                    unsigned hi[2];
                    ldmatrix_x2(hi, xs + xrow + m * 512 + k * 256);
                    a[m][1] = hi[0];
                    a[m][3] = hi[1];
                }
            } else {
                // Matrices (rows 0-7, c 0-7), (rows 8-15, c 0-7), (rows 0-7, c 8-15), (rows 8-15, c 8-15).
                ldmatrix_x4(a[m], xs + tap_off + m * 512);
            }
            mma_bf16_16816(acc[m][0], a[m], b0, acc[m][0]);
            mma_bf16_16816(acc[m][1], a[m], b1, acc[m][1]);
        }
    }
}

extern "C" __global__ void conv1d_mma_prep_weights(const float* __restrict__ w, unsigned short* __restrict__ wh,
                                                   int cin, int cout, int K, int flip) {
    GRID_STRIDE_LOOP(i, (long long)K * 256) {
        const int k = (int)(i / 256), n = (int)(i / 16) % 16, c = (int)(i % 16);
        float v = 0.0f;
        if (!flip && n < cout && c < cin) v = w[((size_t)n * cin + c) * K + k];
        if (flip && n < cin && c < cout) v = w[((size_t)c * cin + n) * K + (K - 1 - k)];
        const int r = k * 16 + n;
        wh[(mma_row_half(r, c / 8) >> 1) + c % 8] = f32_to_bf16(v);
    }
}

// Copies positions [p0, p0 + rows) of one batch item's packed rows (L rows of two uint4; zero
// outside 0..L) into shared rows 0..rows by cp.async (the caller commits and waits).
__device__ __forceinline__ void mma_copy_rows(unsigned char* base, const uint4* __restrict__ xb, int L, int p0,
                                              int rows) {
    for (int i = threadIdx.x; i < rows * 2; i += blockDim.x) {
        const int r = i >> 1, h = i & 1;
        const int pos = p0 + r;
        const bool in = pos >= 0 && pos < L;
        cp_async_16(base + mma_row_half(r, h), in ? xb + (size_t)pos * 2 + h : xb, in);
    }
}

// The forward's sums for one block's tile (positions l0 .. l0 + MMA_TILE of batch item b):
// acc[m][nt] is warp's M-tile m (positions base + 16 m + g, + 8) by outputs nt*8 + 2t (+1), as
// the mma C fragment. x: f32 (B, nin, L), or with PACKED packed rows (B, L, 16).
template <bool PACKED>
__device__ __forceinline__ void mma_fwd_sums(float (&acc)[MMA_MT][2][4], const void* x,
                                             const unsigned short* __restrict__ wh, int nin, int L, int K, int d,
                                             int pad, int l0, int b, unsigned char* ws, unsigned char* xs) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int i = threadIdx.x; i < K * 32; i += blockDim.x) cp_async_16(ws + i * 16, wh + i * 8, true);
    if (PACKED) {
        mma_copy_rows(xs, reinterpret_cast<const uint4*>(x) + (size_t)b * L * 2, L, l0 - pad, MMA_TILE + (K - 1) * d);
        cp_async_commit();
    } else {
        cp_async_commit();
        mma_load_rows(xs, reinterpret_cast<const float*>(x) + (size_t)b * nin * L, nin, L, L, l0 - pad,
                      MMA_TILE + (K - 1) * d);
    }
    cp_async_wait<0>();
    __syncthreads();

    unsigned a[MMA_MT][4];
#pragma unroll
    for (int m = 0; m < MMA_MT; ++m)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[m][0][i] = acc[m][1][i] = 0.0f;

    const int j = lane / 8, r8 = lane % 8;  // the matrix and row this lane addresses
    const int base = warp * MMA_MT * 16;
    if (d == 8) {
        mma_fwd_taps<true>(acc, a, ws, xs, K, d, base, j, r8);
    } else {
        mma_fwd_taps<false>(acc, a, ws, xs, K, d, base, j, r8);
    }
}

// y (B, nout, L) = conv of x (B, nin, L) with the prepared weights wh; pad: zeros on the left;
// then the epilogue: + residual (B, nout, L; may be null), ReLU if relu != 0.
extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)
    conv1d_mma_fwd(const float* __restrict__ x, const unsigned short* __restrict__ wh, const float* __restrict__ bias,
                   float* __restrict__ y, const float* __restrict__ residual, int relu, int nin, int nout, int L, int K,
                   int d, int pad) {
    extern __shared__ __align__(16) float smem[];
    unsigned char* ws = reinterpret_cast<unsigned char*>(smem);  // K * 16 rows
    unsigned char* xs = ws + K * 512;                             // MMA_TILE + (K-1)*d rows
    const int l0 = blockIdx.x * MMA_TILE;
    const int b = blockIdx.y;
    float acc[MMA_MT][2][4];
    mma_fwd_sums<false>(acc, x, wh, nin, L, K, d, pad, l0, b, ws, xs);

    const int lane = threadIdx.x % 32, base = (threadIdx.x / 32) * MMA_MT * 16;
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int m = 0; m < MMA_MT; ++m)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int n = nt * 8 + 2 * t + (i & 1);
                const int l = l0 + base + m * 16 + g + 8 * (i / 2);
                if (n < nout && l < L) {
                    const size_t at = ((size_t)b * nout + n) * L + l;
                    y[at] = conv_epilogue(acc[m][nt][i] + (bias != nullptr ? bias[n] : 0.0f), residual, at, relu);
                }
            }
}

// y = conv of x, both packed (B, L, 16): conv1d_mma_fwd's sums; the epilogue adds the packed
// residual (may be null) and applies ReLU if relu != 0 (conv_epilogue's order), then rounds to
// bf16. Each lane stores two channels (one 32-bit word) per value pair of its C fragment;
// channels nout..15 are stored as zeros.
extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)
    conv1d_mma_fwd_packed(const uint4* __restrict__ x, const unsigned short* __restrict__ wh,
                          const float* __restrict__ bias, unsigned* __restrict__ y,
                          const unsigned* __restrict__ residual, int relu, int nout, int L, int K, int d, int pad) {
    extern __shared__ __align__(16) float smem[];
    unsigned char* ws = reinterpret_cast<unsigned char*>(smem);
    unsigned char* xs = ws + K * 512;
    const int l0 = blockIdx.x * MMA_TILE;
    const int b = blockIdx.y;
    float acc[MMA_MT][2][4];
    mma_fwd_sums<true>(acc, x, wh, 16, L, K, d, pad, l0, b, ws, xs);

    const int lane = threadIdx.x % 32, base = (threadIdx.x / 32) * MMA_MT * 16;
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int m = 0; m < MMA_MT; ++m)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int l = l0 + base + m * 16 + g + 8 * h;
                if (l >= L) continue;
                const int n = nt * 8 + 2 * t;
                const size_t word = ((size_t)b * L + l) * 8 + n / 2;  // channels n, n + 1
                const unsigned r = residual != nullptr ? residual[word] : 0u;
                unsigned short v[2];
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float s = 0.0f;
                    if (n + e < nout) {
                        s = acc[m][nt][2 * h + e] + (bias != nullptr ? bias[n + e] : 0.0f);
                        if (residual != nullptr) s = s + bf16_to_f32((unsigned short)(r >> (16 * e)));
                        if (relu) s = s > 0.0f ? s : 0.0f;
                    }
                    v[e] = f32_to_bf16(s);
                }
                y[word] = pack_bf16x2(v[0], v[1]);
            }
}

// packed (B, L, 16) bf16 = x (B, C, L) rounded to bf16, channels C..15 zero. One thread a
// position: a warp reads 32 consecutive positions of each channel (128 bytes) and writes 32
// consecutive 32-byte rows.
extern "C" __global__ void conv1d_mma_pack(const float* __restrict__ x, uint4* __restrict__ packed, int C, int L,
                                           long long positions) {
    GRID_STRIDE_LOOP(pos, positions) {
        const long long b = pos / L, l = pos % L;
        const float* xp = x + (size_t)b * C * L + l;
        unsigned w[8];
#pragma unroll
        for (int c = 0; c < 16; c += 2) {
            const float lo = c < C ? xp[(size_t)c * L] : 0.0f;
            const float hi = c + 1 < C ? xp[(size_t)(c + 1) * L] : 0.0f;
            w[c / 2] = pack_bf16x2(f32_to_bf16(lo), f32_to_bf16(hi));
        }
        packed[pos * 2] = make_uint4(w[0], w[1], w[2], w[3]);
        packed[pos * 2 + 1] = make_uint4(w[4], w[5], w[6], w[7]);
    }
}

// x (B, C, L) = channels 0..C of packed (B, L, 16). One thread a position: a warp reads 32
// consecutive rows and writes 32 consecutive positions of each channel.
extern "C" __global__ void conv1d_mma_unpack(const uint4* __restrict__ packed, float* __restrict__ x, int C, int L,
                                             long long positions) {
    GRID_STRIDE_LOOP(pos, positions) {
        const long long b = pos / L, l = pos % L;
        const uint4 lo = packed[pos * 2], hi = packed[pos * 2 + 1];
        const unsigned w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
        float* xp = x + (size_t)b * C * L + l;
#pragma unroll
        for (int c = 0; c < 16; ++c) {
            if (c < C) xp[(size_t)c * L] = bf16_to_f32((unsigned short)(w[c / 2] >> (16 * (c % 2))));
        }
    }
}

// The weight gradient's partial sums; x f32 (B, cin, L), or with PACKED packed rows (B, L, 16),
// copied into the shared rows by cp.async.
template <bool PACKED>
__device__ __forceinline__ void mma_wgrad_partial(const void* x, const float* __restrict__ dy,
                                                  float* __restrict__ partial, int cin, int cout, int L, int K, int d,
                                                  int pad_left, int chunk_len) {
    extern __shared__ __align__(16) float smem[];
    unsigned char* dys = reinterpret_cast<unsigned char*>(smem);  // MMA_WG_STEP rows
    unsigned char* xs = dys + MMA_WG_STEP * 32;                    // MMA_WG_STEP + (K-1)*d rows
    const int chunk = blockIdx.x, b = blockIdx.y;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int j = lane / 8, r8 = lane % 8;
    const int c0 = chunk * chunk_len, c1 = min(c0 + chunk_len, L);

    float acc[MMA_WG_TAPS][2][4];
#pragma unroll
    for (int q = 0; q < MMA_WG_TAPS; ++q)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[q][0][i] = acc[q][1][i] = 0.0f;

    // The lane's ldmatrix offsets at step position 0: steps move by 16 rows, which keeps the
    // swizzle ((row >> 2) & 1), so a step adds p * 32 bytes.
    const smem_ptr_t dys_sm = to_smem(dys), xs_sm = to_smem(xs);
    const int a_off = mma_row_half((j >> 1) * 8 + r8, j & 1);
    int x_off[MMA_WG_TAPS];
#pragma unroll
    for (int q = 0; q < MMA_WG_TAPS; ++q) x_off[q] = mma_row_half((warp + q * MMA_WG_WARPS) * d + (j & 1) * 8 + r8, j >> 1);

    for (int s0 = c0; s0 < c1; s0 += MMA_WG_STEP) {
        __syncthreads();  // the last step's rows have been read
        // dy rows past the chunk's end are zero, so x there adds nothing.
        if (PACKED) {
            mma_copy_rows(xs, reinterpret_cast<const uint4*>(x) + (size_t)b * L * 2, L, s0 - pad_left,
                          MMA_WG_STEP + (K - 1) * d);
            cp_async_commit();
        } else {
            mma_load_rows(xs, reinterpret_cast<const float*>(x) + (size_t)b * cin * L, cin, L, L, s0 - pad_left,
                          MMA_WG_STEP + (K - 1) * d);
        }
        mma_load_rows(dys, dy + (size_t)b * cout * L, cout, L, c1, s0, MMA_WG_STEP);
        if (PACKED) cp_async_wait<0>();
        __syncthreads();
        for (int p = 0; p < MMA_WG_STEP; p += 16) {
            // A = dy^T (outputs x positions): matrices (co 0-7, pos 0-7), (co 8-15, pos 0-7),
            // (co 0-7, pos 8-15), (co 8-15, pos 8-15), each the transpose of stored rows.
            unsigned a[4];
            ldmatrix_x4_trans(a, dys_sm + a_off + p * 32);
#pragma unroll
            for (int q = 0; q < MMA_WG_TAPS; ++q) {
                if (warp + q * MMA_WG_WARPS < K) {
                    // B = x (positions x inputs): (pos 0-7, ci 0-7), (pos 8-15, ci 0-7),
                    // (pos 0-7, ci 8-15), (pos 8-15, ci 8-15), transposed from stored rows.
                    unsigned bx[4];
                    ldmatrix_x4_trans(bx, xs_sm + x_off[q] + p * 32);
                    const unsigned b0[2] = {bx[0], bx[1]}, b1[2] = {bx[2], bx[3]};
                    mma_bf16_16816(acc[q][0], a, b0, acc[q][0]);
                    mma_bf16_16816(acc[q][1], a, b1, acc[q][1]);
                }
            }
        }
    }

    const int g = lane / 4, t = lane % 4;
    float* part = partial + ((size_t)b * gridDim.x + chunk) * cout * cin * K;
#pragma unroll
    for (int q = 0; q < MMA_WG_TAPS; ++q) {
        const int k = warp + q * MMA_WG_WARPS;
        if (k >= K) continue;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int co = g + 8 * (i / 2), ci = nt * 8 + 2 * t + (i & 1);
                if (co < cout && ci < cin) part[((size_t)co * cin + ci) * K + k] = acc[q][nt][i];
            }
    }
}

extern "C" __global__ void __launch_bounds__(MMA_WG_WARPS * 32)
    conv1d_mma_wgrad_partial(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ partial,
                             int cin, int cout, int L, int K, int d, int pad_left, int chunk_len) {
    mma_wgrad_partial<false>(x, dy, partial, cin, cout, L, K, d, pad_left, chunk_len);
}

// conv1d_mma_wgrad_partial with x packed (B, L, 16).
extern "C" __global__ void __launch_bounds__(MMA_WG_WARPS * 32)
    conv1d_mma_wgrad_partial_packed(const uint4* __restrict__ x, const float* __restrict__ dy,
                                    float* __restrict__ partial, int cin, int cout, int L, int K, int d,
                                    int pad_left, int chunk_len) {
    mma_wgrad_partial<true>(x, dy, partial, cin, cout, L, K, d, pad_left, chunk_len);
}
