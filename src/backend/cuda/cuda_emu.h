// cuda_emu.h — runs chromax's CUDA kernel sources as plain C++ on the host: the kernel
// emulator (src/backend/cuda/emulator.rs) for machines without a GPU.
//
// The execution model is CUDA's: a launch runs every block of the grid; a block's threads
// are real OS threads that meet at __syncthreads() (a std::barrier), so missing barriers,
// wrong indexing and out-of-range tiles show up as wrong results. Blocks run one after
// another, so a function-level `static` (what __shared__ becomes) is the block's shared
// memory; dynamic shared memory (extern __shared__) is a per-launch buffer. The emulator
// rewrites `extern __shared__ __align__(16) float smem[];` (the one form kernels declare it in) into
// a pointer to that buffer, which is 16-byte aligned as on a GPU.
//
// Warp-level operations (kernels/warp.cuh: mma, ldmatrix, cp.async) are emulated exactly: the
// 32 lanes of a warp meet at a warp barrier, publish their registers into the warp's exchange
// and each lane computes what the PTX ISA assigns it. A warp operation in a warp of fewer than
// 32 threads, or an ldmatrix / cp.async address that is not 16-byte aligned, fails the launch.
// cp.async writes NaN into its destination when issued and copies at cp_async_wait, so data
// read before its wait shows.
//
// What it cannot show: timing, memory-model effects across blocks, or races inside a warp's
// lock-step (lanes run as threads, so it is stricter than a GPU there: a kernel that relies on
// implicit warp synchrony outside the warp operations can fail here).
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline std::barrier<>* emu_barrier = nullptr;
inline unsigned char* emu_dynamic_smem = nullptr;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

// CUDA's vector type for 16-byte loads; the kernels read it through reinterpret_cast of
// 16-byte aligned shared memory.
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

inline void __syncthreads() { emu_barrier->arrive_and_wait(); }

inline unsigned __float_as_uint(float x) {
    unsigned u;
    std::memcpy(&u, &x, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}

// ---- warps -------------------------------------------------------------------------------

// Launch failures a kernel can cause (emu_run's return value).
enum EmuFault : int { EMU_OK = 0, EMU_BAD_GEOMETRY = 1, EMU_PARTIAL_WARP = 2, EMU_MISALIGNED = 3 };
inline std::atomic<int> emu_fault{EMU_OK};

// The lanes of one warp: a barrier among them and an exchange of up to 16 words per lane.
struct EmuWarp {
    explicit EmuWarp(unsigned n) : lanes(n), bar(n) {}
    unsigned lanes;
    std::barrier<> bar;
    uint32_t words[32][16];
    const void* addr[32];
};
inline thread_local EmuWarp* emu_warp = nullptr;
inline thread_local unsigned emu_lane = 0;

// True where the calling warp can run a warp operation; records the fault otherwise. Every lane
// of a partial warp sees the same answer, so none of them waits at the warp barrier.
inline bool emu_full_warp() {
    if (emu_warp->lanes == 32) return true;
    emu_fault = EMU_PARTIAL_WARP;
    return false;
}

inline bool emu_aligned16(const void* p) {
    if (reinterpret_cast<uintptr_t>(p) % 16 == 0) return true;
    emu_fault = EMU_MISALIGNED;
    return false;
}

inline float emu_bf16(uint32_t word, unsigned half) { return __uint_as_float(half ? (word & 0xffff0000u) : (word << 16)); }

// PTX ISA fragment maps for m16n8k16 (see kernels/warp.cuh): where element (row, col) lives.
struct EmuSlot {
    unsigned lane, reg, half;
};
inline EmuSlot emu_a_slot(unsigned row, unsigned k) {  // A: 16 x 16
    return {(row % 8) * 4 + (k % 8) / 2, (row / 8) + 2 * (k / 8), k % 2};
}
inline EmuSlot emu_b_slot(unsigned k, unsigned n) {  // B: 16 x 8
    return {n * 4 + (k % 8) / 2, k / 8, k % 2};
}
inline EmuSlot emu_c_slot(unsigned row, unsigned n) {  // C, D: 16 x 8 (half: which of the pair)
    return {(row % 8) * 4 + n / 2, 2 * (row / 8) + n % 2, 0};
}

inline void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
    if (!emu_full_warp()) return;
    EmuWarp& w = *emu_warp;
    uint32_t* mine = w.words[emu_lane];
    for (int i = 0; i < 4; ++i) mine[i] = a[i];
    for (int i = 0; i < 2; ++i) mine[4 + i] = b[i];
    for (int i = 0; i < 4; ++i) mine[6 + i] = __float_as_uint(c[i]);
    w.bar.arrive_and_wait();
    float out[4];
    for (unsigned i = 0; i < 4; ++i) {
        const unsigned row = emu_lane / 4 + 8 * (i / 2), n = 2 * (emu_lane % 4) + i % 2;
        const EmuSlot cs = emu_c_slot(row, n);
        // bf16 x bf16 products are exact in f32; the sum runs in k order in f32.
        float acc = __uint_as_float(w.words[cs.lane][6 + cs.reg]);
        for (unsigned k = 0; k < 16; ++k) {
            const EmuSlot as = emu_a_slot(row, k), bs = emu_b_slot(k, n);
            acc = std::fma(emu_bf16(w.words[as.lane][as.reg], as.half), emu_bf16(w.words[bs.lane][4 + bs.reg], bs.half),
                           acc);
        }
        out[i] = acc;
    }
    w.bar.arrive_and_wait();  // every lane has read the exchange before it is reused
    for (int i = 0; i < 4; ++i) d[i] = out[i];
}

// ldmatrix: N matrices; lanes 8j..8j+7 give matrix j's row addresses.
template <int N, bool TRANS>
inline void emu_ldmatrix(unsigned (&r)[N], const void* row) {
    if (!emu_full_warp()) return;
    EmuWarp& w = *emu_warp;
    w.addr[emu_lane] = row;
    w.bar.arrive_and_wait();
    const unsigned l = emu_lane;
    unsigned out[N];
    bool ok = true;
    for (int j = 0; j < N; ++j) {
        uint16_t e[2];
        for (unsigned h = 0; h < 2; ++h) {
            const unsigned rr = TRANS ? 2 * (l % 4) + h : l / 4;  // which row (address) of matrix j
            const unsigned cc = TRANS ? l / 4 : 2 * (l % 4) + h;  // which element of that row
            const void* p = w.addr[8 * j + rr];
            ok = ok && emu_aligned16(p);
            e[h] = ok ? static_cast<const uint16_t*>(p)[cc] : 0;
        }
        out[j] = (unsigned)e[0] | ((unsigned)e[1] << 16);
    }
    w.bar.arrive_and_wait();
    for (int j = 0; j < N; ++j) r[j] = out[j];
}
inline void ldmatrix_x1(unsigned (&r)[1], const void* row) { emu_ldmatrix<1, false>(r, row); }
inline void ldmatrix_x2(unsigned (&r)[2], const void* row) { emu_ldmatrix<2, false>(r, row); }
inline void ldmatrix_x4(unsigned (&r)[4], const void* row) { emu_ldmatrix<4, false>(r, row); }
inline void ldmatrix_x1_trans(unsigned (&r)[1], const void* row) { emu_ldmatrix<1, true>(r, row); }
inline void ldmatrix_x2_trans(unsigned (&r)[2], const void* row) { emu_ldmatrix<2, true>(r, row); }
inline void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) { emu_ldmatrix<4, true>(r, row); }

// Shared-memory addresses as the kernels pass them to the warp operations (32-bit on the
// device): host pointers here.
typedef unsigned char* smem_ptr_t;
inline smem_ptr_t to_smem(const void* p) { return static_cast<unsigned char*>(const_cast<void*>(p)); }

// cp.async: each thread's copies, in groups. Issued copies poison their destination (NaN as
// f32 and as bf16: all bits set) until a wait lets them land.
struct EmuCopy {
    void* dst;
    const void* src;
    bool valid;
};
inline thread_local std::vector<EmuCopy> emu_open_group;
inline thread_local std::deque<std::vector<EmuCopy>> emu_committed;

inline void cp_async_16(void* dst, const void* src, bool valid) {
    if (!emu_aligned16(dst) || (valid && !emu_aligned16(src))) return;
    std::memset(dst, 0xff, 16);
    emu_open_group.push_back({dst, src, valid});
}
inline void cp_async_commit() {
    emu_committed.push_back(std::move(emu_open_group));
    emu_open_group.clear();
}
template <int N>
inline void cp_async_wait() {
    while (emu_committed.size() > (size_t)N) {
        for (const EmuCopy& c : emu_committed.front()) {
            if (c.valid) {
                std::memcpy(c.dst, c.src, 16);
            } else {
                std::memset(c.dst, 0, 16);
            }
        }
        emu_committed.pop_front();
    }
}
// A block's copies never waited for are dropped with it.
inline void emu_forget_copies() {
    emu_open_group.clear();
    emu_committed.clear();
}

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// The threads of a block are real threads, so atomics must be real atomics (std::atomic_ref
// works on the plain arrays the kernels declare).
inline unsigned atomicAdd(unsigned* address, unsigned v) {
    return std::atomic_ref<unsigned>(*address).fetch_add(v);
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long v) {
    return std::atomic_ref<unsigned long long>(*address).fetch_add(v);
}

// Runs body() as a launch of grid × block threads with `smem` bytes of dynamic shared memory.
// Launches are serialised: the grid, block and barrier are process-wide, as on one stream.
inline int emu_run(const unsigned* geometry, const std::function<void()>& body) {
    static std::mutex one_launch_at_a_time;
    std::lock_guard<std::mutex> lock(one_launch_at_a_time);
    gridDim = {geometry[0], geometry[1], geometry[2]};
    blockDim = {geometry[3], geometry[4], geometry[5]};
    const size_t smem_bytes = geometry[6];
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
    if (threads == 0 || threads > 1024 || gridDim.x == 0 || gridDim.y == 0 || gridDim.z == 0) return EMU_BAD_GEOMETRY;
    emu_fault = EMU_OK;
    // Poisoned (reads before writes show) and 16-byte aligned, as a GPU's dynamic shared memory.
    std::vector<float4> smem((smem_bytes + 15) / 16 + 1, float4{NAN, NAN, NAN, NAN});
    emu_dynamic_smem = reinterpret_cast<unsigned char*>(smem.data());
    std::barrier<> bar(threads);
    emu_barrier = &bar;
    std::vector<std::unique_ptr<EmuWarp>> warps;
    for (unsigned first = 0; first < threads; first += 32)
        warps.push_back(std::make_unique<EmuWarp>(std::min(32u, threads - first)));
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
            emu_warp = warps[t / 32].get();
            emu_lane = t % 32;
            for (unsigned z = 0; z < gridDim.z; ++z)
                for (unsigned y = 0; y < gridDim.y; ++y)
                    for (unsigned x = 0; x < gridDim.x; ++x) {
                        blockIdx = {x, y, z};
                        body();
                        emu_forget_copies();
                        bar.arrive_and_wait();  // the next block reuses the shared memory
                    }
        });
    }
    for (auto& th : pool) th.join();
    emu_barrier = nullptr;
    return emu_fault.load();
}
