// warp_probe.cu — one-warp kernels that expose the warp operations of warp.cuh lane by lane,
// so tests/warp_ops.rs can hold the emulator (and, on a GPU, the hardware) to the PTX ISA's
// fragment tables. Launch each with one block of 32 threads (the partial-warp probe with
// fewer). Registers travel as 32-bit words in the f32 buffers of the backends.

// d[lane][0..4] = mma(a[lane][0..4], b[lane][0..2], c[lane][0..4]).
extern "C" __global__ void warp_probe_mma_bf16(const unsigned* __restrict__ a, const unsigned* __restrict__ b,
                                               const float* __restrict__ c, float* __restrict__ d) {
    const int l = threadIdx.x;
    unsigned ra[4], rb[2];
    float rc[4], rd[4];
    for (int i = 0; i < 4; ++i) ra[i] = a[l * 4 + i];
    for (int i = 0; i < 2; ++i) rb[i] = b[l * 2 + i];
    for (int i = 0; i < 4; ++i) rc[i] = c[l * 4 + i];
    mma_bf16_16816(rd, ra, rb, rc);
    for (int i = 0; i < 4; ++i) d[l * 4 + i] = rd[i];
}

// tile: 32 rows of 8 bf16 (16 bytes each) copied to shared memory; lane l points at row
// rows[l]. mode: matrices (1, 2 or 4) + 8 for .trans. out[lane][0..4]: the registers (unused
// ones zero).
extern "C" __global__ void warp_probe_ldmatrix(const unsigned* __restrict__ tile, const int* __restrict__ rows,
                                               int mode, unsigned* __restrict__ out) {
    __shared__ __align__(16) unsigned s[32 * 4];
    const int l = threadIdx.x;
    for (int i = 0; i < 4; ++i) s[l * 4 + i] = tile[l * 4 + i];
    __syncthreads();
    const void* row = &s[rows[l] * 4];
    unsigned r[4] = {0u, 0u, 0u, 0u};
    switch (mode) {
        case 1: {
            unsigned q[1];
            ldmatrix_x1(q, row);
            r[0] = q[0];
        } break;
        case 2: {
            unsigned q[2];
            ldmatrix_x2(q, row);
            r[0] = q[0], r[1] = q[1];
        } break;
        case 4:
            ldmatrix_x4(r, row);
            break;
        case 9: {
            unsigned q[1];
            ldmatrix_x1_trans(q, row);
            r[0] = q[0];
        } break;
        case 10: {
            unsigned q[2];
            ldmatrix_x2_trans(q, row);
            r[0] = q[0], r[1] = q[1];
        } break;
        case 12:
            ldmatrix_x4_trans(r, row);
            break;
        default:
            break;
    }
    for (int i = 0; i < 4; ++i) out[l * 4 + i] = r[i];
}

// Two groups of copies: group 0 fills stage 0 from src[0..128), group 1 stage 1 from
// src[128..256) (lanes with l % 4 == 3 zero-fill instead: the src-size 0 form). Then
// wait_newest == 0 waits for both, 1 for the older only, 2 for none; a barrier; out = both
// stages.
extern "C" __global__ void warp_probe_cp_async(const float* __restrict__ src, float* __restrict__ out,
                                               int wait_newest) {
    __shared__ __align__(16) float stage[2][128];
    const int l = threadIdx.x;
    cp_async_16(&stage[0][l * 4], src + l * 4, true);
    cp_async_commit();
    cp_async_16(&stage[1][l * 4], src + 128 + l * 4, l % 4 != 3);
    cp_async_commit();
    if (wait_newest == 0) {
        cp_async_wait<0>();
    } else if (wait_newest == 1) {
        cp_async_wait<1>();
    }
    __syncthreads();
    for (int i = 0; i < 4; ++i) {
        out[l * 4 + i] = stage[0][l * 4 + i];
        out[128 + l * 4 + i] = stage[1][l * 4 + i];
    }
    if (wait_newest == 2) cp_async_wait<0>();  // the copies land before the block ends
}
