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
// What it cannot show: timing, warp-level behaviour, memory-model effects across blocks.
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
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

inline void __syncthreads() { emu_barrier->arrive_and_wait(); }

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
    if (threads == 0 || threads > 1024 || gridDim.x == 0 || gridDim.y == 0 || gridDim.z == 0) return 1;
    // Poisoned (reads before writes show) and 16-byte aligned, as a GPU's dynamic shared memory.
    std::vector<float4> smem((smem_bytes + 15) / 16 + 1, float4{NAN, NAN, NAN, NAN});
    emu_dynamic_smem = reinterpret_cast<unsigned char*>(smem.data());
    std::barrier<> bar(threads);
    emu_barrier = &bar;
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
            for (unsigned z = 0; z < gridDim.z; ++z)
                for (unsigned y = 0; y < gridDim.y; ++y)
                    for (unsigned x = 0; x < gridDim.x; ++x) {
                        blockIdx = {x, y, z};
                        body();
                        bar.arrive_and_wait();  // the next block reuses the shared memory
                    }
        });
    }
    for (auto& th : pool) th.join();
    emu_barrier = nullptr;
    return 0;
}
