// sparse_head.cu — the per-cell sigmoid head fused with its BCE against sparse binary rows.
// CPU twin: src/backend/cpu/sparse_head.rs (the formulas are written out there).
//
// z (B, D), w (N, D), bias (N), indptr (B + 1) and indices (nnz, sorted within a row): the
// batch's binary CSR rows. Outputs: dw (N, D) and dbias (N), each cell owned by one thread;
// dz_partial (grid, B, D), one slice per block, summed by sparse_head_reduce_f32; and
// loss_partial (grid) of sum(softplus(logit) - y * logit), in f64.
//
// Launch: grid G ≤ ceil(N / HEAD_CELLS) blocks (each takes cell tiles blockIdx.x, +G, ...),
// block HEAD_CELLS threads, one cell each; D ≤ HEAD_MAX_DIM. Rows go through in tiles of
// HEAD_ROWS: the tile's z rows and 0/1 labels for the block's cells go to shared memory, each
// thread computes its logits, loss, dw and db; then the block turns its g = (σ − y)/N values
// into dz contributions for the tile's rows. Nothing of size B × N is ever stored.
//
// head_roc_histogram_f32 evaluates the same logits for the AUROC and counts them per bin
// (CPU twin: head_roc_histogram in the same Rust file); see its own comment below.

#define HEAD_CELLS 128
#define HEAD_ROWS 16
#define HEAD_MAX_DIM 64
// Row stride of the cell-embedding tile in shared memory: one float of padding, so the 32
// lanes of a warp reading ws[t][k] (32 consecutive cells, one k) hit 32 different banks; at
// a stride of 64 they all hit one bank (a 32-way conflict on every load of the logit loop).
#define HEAD_WS_STRIDE (HEAD_MAX_DIM + 1)

// First position in indices[a, e) whose value is >= key.
__device__ __forceinline__ unsigned lower_bound_u32(const unsigned* __restrict__ indices, unsigned a, unsigned e, unsigned key) {
    while (a < e) {
        const unsigned mid = a + (e - a) / 2;
        if (indices[mid] < key) a = mid + 1; else e = mid;
    }
    return a;
}

extern "C" __global__ void __launch_bounds__(HEAD_CELLS)
sparse_head_f32(const float* __restrict__ z, const float* __restrict__ w, const float* __restrict__ bias,
                const unsigned* __restrict__ indptr, const unsigned* __restrict__ indices,
                float* __restrict__ dz_partial, float* __restrict__ dw, float* __restrict__ dbias,
                double* __restrict__ loss_partial, int B, int N, int D, float inv_n) {
    __shared__ __align__(16) float zs[HEAD_ROWS][HEAD_MAX_DIM];  // the tile's z rows, zero past D
    __shared__ float ws[HEAD_CELLS][HEAD_WS_STRIDE];  // the block's cell embeddings
    __shared__ float gs[HEAD_ROWS][HEAD_CELLS];       // g for (row, cell)
    __shared__ unsigned char ys[HEAD_ROWS][HEAD_CELLS];
    __shared__ unsigned lo_s[HEAD_ROWS], hi_s[HEAD_ROWS];
    __shared__ double red[HEAD_CELLS];
    const int t = threadIdx.x;
    double loss = 0.0;
    float* dzp = dz_partial + (size_t)blockIdx.x * B * D;
    for (int k = t; k < B * D; k += blockDim.x) dzp[k] = 0.0f;

    for (int c0 = blockIdx.x * HEAD_CELLS; c0 < N; c0 += gridDim.x * HEAD_CELLS) {
        const int c = c0 + t;
        const bool live = c < N;
        __syncthreads();  // the previous cell tile's ws is no longer read
        // The thread's own cell embedding stays in registers for every row (zero past D);
        // the tile in shared memory serves the block's dz sums.
        float wr[HEAD_MAX_DIM];
#pragma unroll
        for (int k = 0; k < HEAD_MAX_DIM; ++k) wr[k] = (live && k < D) ? w[(size_t)c * D + k] : 0.0f;
        for (int k = 0; k < D; ++k) ws[t][k] = wr[k];
        float dw_acc[HEAD_MAX_DIM];
#pragma unroll
        for (int k = 0; k < HEAD_MAX_DIM; ++k) dw_acc[k] = 0.0f;
        float db_acc = 0.0f;
        const float b_c = live ? bias[c] : 0.0f;

        for (int r0 = 0; r0 < B; r0 += HEAD_ROWS) {
            const int nr = min(HEAD_ROWS, B - r0);
            __syncthreads();  // the previous row tile's zs, ys and gs are no longer read
            // z rows padded with zeros to a multiple of 4, read below as 16-byte loads.
            const int d4 = (D + 3) & ~3;
            for (int k = t; k < nr * d4; k += blockDim.x) {
                const int r = k / d4, j = k - r * d4;
                zs[r][j] = j < D ? z[(size_t)(r0 + r) * D + j] : 0.0f;
            }
            for (int k = t; k < HEAD_ROWS * HEAD_CELLS; k += blockDim.x) ys[k / HEAD_CELLS][k % HEAD_CELLS] = 0;
            if (t < nr) {
                const unsigned a = indptr[r0 + t], e = indptr[r0 + t + 1];
                lo_s[t] = lower_bound_u32(indices, a, e, (unsigned)c0);
                hi_s[t] = lower_bound_u32(indices, a, e, (unsigned)(c0 + HEAD_CELLS));
            }
            __syncthreads();
            for (int r = 0; r < nr; ++r)
                for (unsigned k = lo_s[r] + t; k < hi_s[r]; k += blockDim.x) ys[r][indices[k] - c0] = 1;
            __syncthreads();

            for (int r = 0; r < nr; ++r) {
                float g = 0.0f;
                const float4* z4 = reinterpret_cast<const float4*>(zs[r]);
                if (live) {
                    float logit = b_c;
#pragma unroll
                    for (int q = 0; q < HEAD_MAX_DIM / 4; ++q) {
                        if (4 * q < D) {
                            const float4 zv = z4[q];
                            logit = fmaf(zv.x, wr[4 * q], logit);
                            logit = fmaf(zv.y, wr[4 * q + 1], logit);
                            logit = fmaf(zv.z, wr[4 * q + 2], logit);
                            logit = fmaf(zv.w, wr[4 * q + 3], logit);
                        }
                    }
                    const float y = (float)ys[r][t];
                    // softplus(l) − y·l in f32 (each term within a few ulp), summed in f64.
                    loss += (double)(fmaxf(logit, 0.0f) + log1pf(expf(-fabsf(logit))) - y * logit);
                    g = (sigmoid_f32(logit) - y) * inv_n;
                    db_acc += g;
#pragma unroll
                    for (int q = 0; q < HEAD_MAX_DIM / 4; ++q) {
                        if (4 * q < D) {
                            const float4 zv = z4[q];
                            dw_acc[4 * q] = fmaf(g, zv.x, dw_acc[4 * q]);
                            dw_acc[4 * q + 1] = fmaf(g, zv.y, dw_acc[4 * q + 1]);
                            dw_acc[4 * q + 2] = fmaf(g, zv.z, dw_acc[4 * q + 2]);
                            dw_acc[4 * q + 3] = fmaf(g, zv.w, dw_acc[4 * q + 3]);
                        }
                    }
                }
                gs[r][t] = g;
            }
            __syncthreads();
            // dz[r0 + r, k] += sum over the block's cells of g[r, j] * w[j, k]; the same thread
            // owns the same (r, k) in every tile, so the read-modify-write needs no atomics.
            for (int o = t; o < nr * D; o += blockDim.x) {
                const int r = o / D, k = o % D;
                float s = 0.0f;
                for (int j = 0; j < HEAD_CELLS; ++j) s = fmaf(gs[r][j], ws[j][k], s);
                dzp[(size_t)(r0 + r) * D + k] += s;
            }
        }
        if (live) {
#pragma unroll
            for (int k = 0; k < HEAD_MAX_DIM; ++k)
                if (k < D) dw[(size_t)c * D + k] = dw_acc[k];
            dbias[c] = db_acc;
        }
    }
    double v[1] = {loss};
    block_sum_f64<1>(v, red);
    if (t == 0) loss_partial[blockIdx.x] = v[0];
}

// dz[o] = sum_p dz_partial[p, o] in f64, p in order. Launch: 1-D grid-stride over n.
extern "C" __global__ void sparse_head_reduce_f32(const float* __restrict__ dz_partial, float* __restrict__ dz,
                                                  int parts, long long n) {
    GRID_STRIDE_LOOP(o, n) {
        double s = 0.0;
        for (int p = 0; p < parts; ++p) s += (double)dz_partial[(size_t)p * n + o];
        dz[o] = (float)s;
    }
}

// out[0] = sum of partial[0, parts) in a fixed order. Launch: one block of CHROMAX_THREADS.
extern "C" __global__ void __launch_bounds__(CHROMAX_THREADS)
sparse_head_loss_f64(const double* __restrict__ partial, double* __restrict__ out, int parts) {
    __shared__ double red[CHROMAX_THREADS];
    double v[1] = {0.0};
    for (int p = threadIdx.x; p < parts; p += blockDim.x) v[0] += partial[p];
    block_sum_f64<1>(v, red);
    if (threadIdx.x == 0) out[0] = v[0];
}

// ---- head_roc_histogram_f32 ----
// Counts logit[i, c] = z[i]·w[c] + bias[c] per bin floor((logit + 16)·16) clamped to
// [0, ROC_BINS) (roc_bin_f32, CPU twin chromax::backend::roc_bin), positives (c in row i) and
// negatives apart. hist (unsigned long long, zeroed by the caller): per_row == 0 → (2, ROC_BINS)
// positives then negatives; per_row != 0 → (B, 2, ROC_BINS).
//
// The dot product is summed in f64 in k order and the bias added last, then rounded to f32,
// exactly as the CPU twin does (products of two floats are exact in f64, so fma contraction
// changes nothing): the bins agree with the CPU's.
//
// Launch: grid (ceil(B / ROC_ROWS), S), block ROC_CELLS threads, D ≤ HEAD_MAX_DIM. Block
// (x, y) takes rows [x·ROC_ROWS, +ROC_ROWS) and cell tiles y, y + S, ... of ROC_CELLS cells, one
// cell per thread; each thread keeps its cell's embedding in registers and bins its ROC_ROWS
// logits into a shared histogram (one per row with per_row) with shared atomics; the block
// flushes its non-zero bins to hist with global atomics at the end. A block handles at most
// ROC_ROWS · 2^28 logits (the caller sizes S), so the 32-bit shared counts cannot overflow.
// Napkin math at scBasset's size (B 128, N 10^5, D 32): 4·10^8 f64 multiply-adds and
// 16 reads of the 12.8 MB w (L2-resident): tens of microseconds on an H100/H200.

#define ROC_BINS 512
#define ROC_CELLS 256
#define ROC_ROWS 8

__device__ __forceinline__ int roc_bin_f32(float logit) {
    const float v = floorf((logit + 16.0f) * 16.0f);
    if (!(v >= 0.0f)) return 0;  // also NaN
    if (v >= (float)(ROC_BINS - 1)) return ROC_BINS - 1;
    return (int)v;
}

extern "C" __global__ void __launch_bounds__(ROC_CELLS)
head_roc_histogram_f32(const float* __restrict__ z, const float* __restrict__ w, const float* __restrict__ bias,
                       const unsigned* __restrict__ indptr, const unsigned* __restrict__ indices,
                       unsigned long long* __restrict__ hist, int B, int N, int D, int per_row) {
    __shared__ double zs[ROC_ROWS][HEAD_MAX_DIM];             // the block's z rows, in f64 once
    __shared__ unsigned char ys[ROC_ROWS][ROC_CELLS];         // labels of the current cell tile
    __shared__ unsigned lo_s[ROC_ROWS], hi_s[ROC_ROWS];
    __shared__ unsigned hs[ROC_ROWS][2 * ROC_BINS];           // slot 0 only unless per_row
    const int t = threadIdx.x;
    const int r0 = blockIdx.x * ROC_ROWS;
    const int nr = min(ROC_ROWS, B - r0);
    for (int k = t; k < ROC_ROWS * 2 * ROC_BINS; k += blockDim.x) hs[k / (2 * ROC_BINS)][k % (2 * ROC_BINS)] = 0;
    for (int k = t; k < nr * D; k += blockDim.x) zs[k / D][k % D] = (double)z[(size_t)(r0 + k / D) * D + k % D];

    for (long long c0 = (long long)blockIdx.y * ROC_CELLS; c0 < N; c0 += (long long)gridDim.y * ROC_CELLS) {
        const long long c = c0 + t;
        __syncthreads();  // the previous tile's labels are no longer read
        for (int k = t; k < ROC_ROWS * ROC_CELLS; k += blockDim.x) ys[k / ROC_CELLS][k % ROC_CELLS] = 0;
        if (t < nr) {
            const unsigned a = indptr[r0 + t], e = indptr[r0 + t + 1];
            lo_s[t] = lower_bound_u32(indices, a, e, (unsigned)c0);
            hi_s[t] = lower_bound_u32(indices, a, e, (unsigned)c0 + ROC_CELLS);
        }
        __syncthreads();
        for (int r = 0; r < nr; ++r)
            for (unsigned k = lo_s[r] + t; k < hi_s[r]; k += blockDim.x) ys[r][indices[k] - (unsigned)c0] = 1;
        __syncthreads();
        if (c < N) {
            float wr[HEAD_MAX_DIM];
#pragma unroll
            for (int k = 0; k < HEAD_MAX_DIM; ++k) wr[k] = k < D ? w[(size_t)c * D + k] : 0.0f;
            const double b_c = (double)bias[c];
            for (int r = 0; r < nr; ++r) {
                double s = 0.0;
#pragma unroll
                for (int k = 0; k < HEAD_MAX_DIM; ++k)
                    if (k < D) s += zs[r][k] * (double)wr[k];
                const float logit = (float)(b_c + s);
                atomicAdd(&hs[per_row ? r : 0][(ys[r][t] ? 0 : ROC_BINS) + roc_bin_f32(logit)], 1u);
            }
        }
    }
    __syncthreads();
    const int slots = per_row ? nr : 1;
    for (int k = t; k < slots * 2 * ROC_BINS; k += blockDim.x) {
        const int slot = k / (2 * ROC_BINS), bin = k % (2 * ROC_BINS);
        const unsigned v = hs[slot][bin];
        if (v != 0) {
            const size_t at = (per_row ? (size_t)(r0 + slot) * 2 * ROC_BINS : 0) + bin;
            atomicAdd(&hist[at], (unsigned long long)v);
        }
    }
}
