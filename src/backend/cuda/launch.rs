//! The raw launch layer: what an op needs from a device, in CUDA's launch ABI.
//!
//! The op functions of `cuda/<stem>.rs` are written against [`KernelDevice`]: device
//! addresses as `u64`, arguments as [`KArg`], launches as (kernel, [`Geometry`], arguments).
//! [`super::CudaBackend`] implements it with the driver; the kernel-emulation test implements
//! it by running the same kernel sources as C++ threads on the host, so the launch geometry,
//! the argument lists and the kernels are all exercised on machines without a GPU.

use crate::backend::BackendResult;
use std::ffi::c_void;

/// One kernel argument, as the kernel's parameter list declares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KArg {
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
pub(crate) struct Geometry {
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

/// What the CUDA ops need from a device.
pub(crate) trait KernelDevice {
    /// Owned, zero-filled device memory for an op's intermediate results.
    type Scratch;

    fn scratch(&self, bytes: usize) -> BackendResult<Self::Scratch>;
    /// The device address of a scratch allocation.
    fn scratch_ptr(&self, scratch: &Self::Scratch) -> u64;
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

/// Threads per block of the 1-D kernels (`CHROMAX_THREADS` in kernels/common.cuh).
pub(crate) const THREADS: u32 = 256;

/// Blocks for a 1-D grid-stride launch over `n` elements: enough to fill the device.
pub(crate) fn grid_stride_blocks(device: &impl KernelDevice, n: usize) -> u32 {
    let wanted = n.div_ceil(THREADS as usize).max(1);
    wanted.min(32 * device.multiprocessors().max(1)) as u32
}
