//! Launch of `kernels/onehot.cu`.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::BackendResult;

/// # Safety
/// codes holds batch·len bytes, reverse batch bytes, shift batch i32 values with |shift| < len,
/// out batch·4·len floats (device).
pub(crate) unsafe fn one_hot(
    d: &impl KernelDevice,
    batch: usize,
    len: usize,
    codes: u64,
    reverse: u64,
    shift: u64,
    out: u64,
) -> BackendResult<()> {
    let args = [
        KArg::Ptr(codes),
        KArg::Ptr(reverse),
        KArg::Ptr(shift),
        KArg::Ptr(out),
        KArg::I64(batch as i64),
        KArg::I32(as_i32("one_hot", "len", len)?),
    ];
    // SAFETY: one_hot_f32(const u8*, const u8*, const int*, float*, long long, int) in order;
    // grid-stride over batch·len positions, each writing its 4 channels.
    unsafe { d.launch("onehot", "one_hot_f32", Geometry::linear(grid_stride_blocks(d, batch * len), THREADS), &args) }
}
