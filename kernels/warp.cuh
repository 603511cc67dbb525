// warp.cuh — warp-level tensor-core building blocks: bf16 mma, ldmatrix, cp.async.
//
// On the device these are inline PTX (no CUDA headers: WMMA's mma.h needs crt/mma.h, which
// the PyPI headers lack, and its fragment layout is undocumented). The host kernel emulator
// (src/backend/cuda/cuda_emu.h) defines the same functions with the lane <-> fragment maps
// of the PTX ISA, exchanging registers between the 32 lanes of a warp, so a kernel that gives
// a lane the wrong fragment computes a wrong result there too; tests/warp_ops.rs holds both
// to tables written from the ISA.
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"):
// g = lane / 4 (groupID), t = lane % 4 (threadID_in_group); a .b32 register holds two bf16,
// the lower-indexed element in its low 16 bits.
//   A (16 x 16, row-major) a[4]: a[0] = A[g][2t..2t+1],   a[1] = A[g+8][2t..2t+1],
//                                a[2] = A[g][2t+8..+9],   a[3] = A[g+8][2t+8..+9]
//   B (16 x 8, K x N)      b[2]: b[0] = B[2t..2t+1][g],   b[1] = B[2t+8..2t+9][g]
//   C, D (16 x 8, f32)     c[4]: c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
// ldmatrix (.x1/.x2/.x4: 1, 2 or 4 matrices of 8 x 8 16-bit elements): lanes 8j..8j+7 give
// the addresses of matrix j's 8 rows (16 bytes each, 16-byte aligned, in shared memory);
// lane l receives r[j] = M_j[l/4][2(l%4)..2(l%4)+1], or with .trans M_j[2(l%4)..+1][l/4].
// So a row-major A tile is one ldmatrix.x4 (matrices: rows 0-7 / 8-15 x cols 0-7 / 8-15 in
// the order of a[]), and a B tile stored N-major (each n's 16 k contiguous) is one .x2.
//
// cp.async copies 16 bytes global -> shared without passing through registers; copies are
// grouped by cp_async_commit() and cp_async_wait<N>() waits until at most N groups are
// pending. The data is only defined after the wait (and, for other threads, a barrier); the
// emulator fills the destination with NaN at issue time and copies at the wait, so an
// early or missing wait reads NaN there.

#ifdef __CUDA_ARCH__

// The 32-bit shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 s; cvta.to.shared.u64 s, %1; cvt.u32.u64 %0, s; }" : "=r"(a) : "l"(p));
    return a;
}

// A shared-memory address as the warp operations take it: 32 bits on the device (what
// ldmatrix and cp.async want: no generic-to-shared conversion in a hot loop), a host pointer in
// the emulator. Take one with to_smem() outside the loop and add byte offsets to it.
typedef unsigned smem_ptr_t;
__device__ __forceinline__ smem_ptr_t to_smem(const void* p) { return smem_addr(p); }

// d = A * B + c, A 16 x 16 bf16, B 16 x 8 bf16, c and d 16 x 8 f32 (fragments above).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                               const float (&c)[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

// ldmatrix carries no "memory" clobber: the kernels separate shared-memory stores from the
// ldmatrix that reads them by __syncthreads() (a compiler barrier too) or by cp.async waits.
__device__ __forceinline__ void ldmatrix_x1(unsigned (&r)[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x2(unsigned (&r)[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(unsigned (&r)[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned (&r)[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}

// The same on 32-bit shared addresses (smem_ptr_t).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], smem_ptr_t row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], smem_ptr_t row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row));
}

// 16 bytes global -> shared; with valid == false the destination is zero-filled instead
// (src-size 0). The ISA does not promise that src is then left unread, so callers pass a
// valid address either way (a buffer's base).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_16(smem_ptr_t dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

#endif  // __CUDA_ARCH__

// bf16 <-> f32 on bit patterns (the same on the device and in the emulator): round to
// nearest even; NaN stays NaN. CPU twin: backend::cpu::gemm::bf16_bits.
__device__ __forceinline__ unsigned short f32_to_bf16(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ float bf16_to_f32(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
// Two bf16 in one register, lo in the low half (the lower-indexed element of a fragment).
__device__ __forceinline__ unsigned pack_bf16x2(unsigned short lo, unsigned short hi) {
    return (unsigned)lo | ((unsigned)hi << 16);
}
