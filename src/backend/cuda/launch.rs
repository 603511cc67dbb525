//! The raw launch layer: what an op needs from a device, in CUDA's launch ABI.
//!
//! The op functions of `cuda/<stem>.rs` are written against [`KernelDevice`]: buffers and
//! their device addresses as `u64`, arguments as [`KArg`], launches as (kernel,
//! [`Geometry`], arguments). [`super::CudaDevice`] implements it with the driver;
//! [`super::emulator`] by running the same kernel sources as C++ threads on the host, so the
//! op code, the launch geometry, the argument lists and the kernels are all exercised on
//! machines without a GPU.

use crate::backend::{BackendResult, BufLen, HostBuffer};
use std::ffi::c_void;

/// One kernel argument, as the kernel's parameter list declares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KArg {
    /// A device address (`float*`, `const double*`, …); 0 is `nullptr`.
    Ptr(u64),
    I32(i32),
    I64(i64),
    /// `unsigned long long`.
    U64(u64),
    F32(f32),
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

impl Geometry {
    /// A 1-D launch of `blocks` blocks of `threads` threads, no dynamic shared memory.
    pub fn linear(blocks: u32, threads: u32) -> Self {
        Geometry { grid: (blocks, 1, 1), block: (threads, 1, 1), shared_bytes: 0 }
    }
}

/// What the CUDA ops need from a device: f32 buffers, raw scratch memory, and launches.
pub trait KernelDevice: Send + Sync {
    /// A buffer of f32 values on the device.
    type Buf: Send + BufLen;
    /// Owned, zero-filled raw device memory for an op's intermediate results and the small
    /// host arrays (base codes, CSR rows) an op copies over.
    type Scratch;

    /// A one-line description, e.g. `cuda:0 NVIDIA H200 (sm_90)`.
    fn describe(&self) -> String;
    /// A zero-filled buffer of `len` values.
    fn zeros(&self, len: usize) -> BackendResult<Self::Buf>;
    /// A buffer holding a copy of `host`.
    fn upload(&self, host: &[f32]) -> BackendResult<Self::Buf>;
    /// Copies `buf` into `host` (same length, checked by the caller), waiting for pending work.
    fn download(&self, buf: &Self::Buf, host: &mut [f32]) -> BackendResult<()>;
    /// Overwrites `buf` with `host` (same length, checked by the caller).
    fn copy_from_host(&self, host: &[f32], buf: &mut Self::Buf) -> BackendResult<()>;
    /// Waits until all queued work has finished.
    fn synchronize(&self) -> BackendResult<()>;
    /// Free device memory in bytes, where the device reports it.
    fn free_memory(&self) -> Option<usize>;
    /// Host memory of `len` values to assemble batches in.
    fn host_buffer(&self, len: usize) -> BackendResult<HostBuffer>;
    /// The device address of a buffer the kernel reads.
    fn ptr(&self, buf: &Self::Buf) -> u64;
    /// The device address of a buffer the kernel writes.
    fn ptr_mut(&self, buf: &mut Self::Buf) -> u64;

    /// `bytes` of zeroed scratch memory (at least one word, so it always has an address).
    fn scratch(&self, bytes: usize) -> BackendResult<Self::Scratch>;
    /// Scratch memory holding a copy of `bytes` (zeros when empty).
    fn scratch_from(&self, bytes: &[u8]) -> BackendResult<Self::Scratch>;
    /// The device address of a scratch allocation (kernels may write it, so it is borrowed
    /// mutably).
    fn scratch_ptr(&self, scratch: &mut Self::Scratch) -> u64;
    /// Copies the first `out.len()` doubles of a scratch allocation to the host, waiting for
    /// the work queued before.
    fn read_f64(&self, scratch: &Self::Scratch, out: &mut [f64]) -> BackendResult<()>;
    /// Copies the first `out.len()` 64-bit unsigned integers of a scratch allocation to the
    /// host, waiting for the work queued before.
    fn read_u64(&self, scratch: &Self::Scratch, out: &mut [u64]) -> BackendResult<()>;
    /// Queues kernel `name` of `kernels/<stem>.cu`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in number, order and type, and every
    /// address must cover what the kernel touches under `geometry`.
    unsafe fn launch(
        &self,
        stem: &'static str,
        name: &'static str,
        geometry: Geometry,
        args: &[KArg],
    ) -> BackendResult<()>;
    /// Streaming multiprocessors, to size grids.
    fn multiprocessors(&self) -> usize;
}

/// Calls `f` with CUDA's `void** kernelParams`: one pointer per argument, each to a copy of
/// the argument's value that lives until `f` returns.
pub(crate) fn with_kernel_params<R>(args: &[KArg], f: impl FnOnce(&mut [*mut c_void]) -> R) -> R {
    let mut slots: Vec<[u8; 8]> = args
        .iter()
        .map(|a| {
            let mut slot = [0u8; 8];
            match *a {
                KArg::Ptr(v) => slot.copy_from_slice(&v.to_ne_bytes()),
                KArg::I64(v) => slot.copy_from_slice(&v.to_ne_bytes()),
                KArg::U64(v) => slot.copy_from_slice(&v.to_ne_bytes()),
                KArg::I32(v) => slot[..4].copy_from_slice(&v.to_ne_bytes()),
                KArg::F32(v) => slot[..4].copy_from_slice(&v.to_ne_bytes()),
            }
            slot
        })
        .collect();
    let mut params: Vec<*mut c_void> = slots.iter_mut().map(|s| s.as_mut_ptr().cast::<c_void>()).collect();
    f(&mut params)
}

/// Threads per block each kernel entry is launched with (for occupancy reports): the tiled
/// kernels' own block sizes, [`THREADS`] for the rest.
pub fn launch_threads(entry: &str) -> u32 {
    match entry {
        "conv1d_fwd_f32" | "conv1d_bwd_input_f32" => super::conv1d::CONV_THREADS,
        "conv1d_mma_fwd" | "conv1d_mma_fwd_packed" => super::conv1d_mma::MMA_WARPS * 32,
        "conv1d_igemm_fwd" | "conv1d_igemm_wgrad_partial" => super::conv1d_igemm::IG_THREADS,
        "conv1d_mma_wgrad_partial" | "conv1d_mma_wgrad_partial_packed" => super::conv1d_mma::MMA_WG_WARPS * 32,
        "warp_probe_mma_bf16" | "warp_probe_ldmatrix" | "warp_probe_cp_async" => 32,
        "conv1d_bwd_weight_partial_f32" => super::conv1d::WG_THREADS,
        "sparse_head_f32" => super::sparse_head::HEAD_CELLS as u32,
        "head_roc_histogram_f32" => super::sparse_head::ROC_CELLS as u32,
        _ => THREADS,
    }
}

/// Threads per block of the 1-D kernels (`CHROMAX_THREADS` in kernels/common.cuh).
pub(crate) const THREADS: u32 = 256;

/// Blocks for a 1-D grid-stride launch over `n` elements: enough to fill the device.
pub(crate) fn grid_stride_blocks(device: &impl KernelDevice, n: usize) -> u32 {
    let wanted = n.div_ceil(THREADS as usize).max(1);
    wanted.min(32 * device.multiprocessors().max(1)) as u32
}
