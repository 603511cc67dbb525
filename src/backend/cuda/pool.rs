//! Launches of `kernels/pool.cu`.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, MaxPoolParams};

fn shape_args(p: &MaxPoolParams) -> BackendResult<[KArg; 5]> {
    const OP: &str = "maxpool";
    Ok([
        KArg::I64((p.batch * p.channels) as i64),
        KArg::I32(as_i32(OP, "len", p.len)?),
        KArg::I32(as_i32(OP, "out_len", p.out_len())?),
        KArg::I32(as_i32(OP, "pool", p.pool)?),
        KArg::I32(p.pad_left() as i32),
    ])
}

/// # Safety
/// x holds batch·channels·len floats and y batch·channels·out_len.
pub(crate) unsafe fn maxpool_fwd(d: &impl KernelDevice, p: &MaxPoolParams, x: u64, y: u64) -> BackendResult<()> {
    let n = p.batch * p.channels * p.out_len();
    let args = [&[KArg::Ptr(x), KArg::Ptr(y)][..], &shape_args(p)?[..]].concat();
    // SAFETY: maxpool_fwd_f32(const float*, float*, long long rows, int L, int Lo, int pool,
    // int pad_left); grid-stride over rows·Lo outputs, inputs read within their row.
    unsafe { d.launch("pool", "maxpool_fwd_f32", Geometry::linear(grid_stride_blocks(d, n), THREADS), &args) }
}

/// # Safety
/// x and dx hold batch·channels·len floats, dy batch·channels·out_len.
pub(crate) unsafe fn maxpool_bwd(
    d: &impl KernelDevice,
    p: &MaxPoolParams,
    x: u64,
    dy: u64,
    dx: u64,
) -> BackendResult<()> {
    let n = p.batch * p.channels * p.len;
    let args = [&[KArg::Ptr(x), KArg::Ptr(dy), KArg::Ptr(dx)][..], &shape_args(p)?[..]].concat();
    // SAFETY: maxpool_bwd_f32(const float*, const float*, float*, long long, int × 4);
    // grid-stride over rows·L inputs.
    unsafe { d.launch("pool", "maxpool_bwd_f32", Geometry::linear(grid_stride_blocks(d, n), THREADS), &args) }
}
