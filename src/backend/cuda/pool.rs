//! Launches of `kernels/pool.cu`.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, MaxPoolBwd, MaxPoolFwd, MaxPoolParams};

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

/// x (batch, channels, len) → y (batch, channels, out_len).
pub(crate) fn maxpool_fwd<D: KernelDevice>(d: &D, p: &MaxPoolParams, b: MaxPoolFwd<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let n = p.output_len();
    let args = [&[KArg::Ptr(d.ptr(b.x)), KArg::Ptr(d.ptr_mut(b.y))][..], &shape_args(p)?[..]].concat();
    // SAFETY: maxpool_fwd_f32(const float*, float*, long long rows, int L, int Lo, int pool,
    // int pad_left); lengths checked above; grid-stride over rows·Lo outputs, inputs read
    // within their row.
    unsafe { d.launch("pool", "maxpool_fwd_f32", Geometry::linear(grid_stride_blocks(d, n), THREADS), &args) }
}

/// dx (batch, channels, len) from x and dy (batch, channels, out_len).
pub(crate) fn maxpool_bwd<D: KernelDevice>(d: &D, p: &MaxPoolParams, b: MaxPoolBwd<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let n = p.input_len();
    let args = [&[KArg::Ptr(d.ptr(b.x)), KArg::Ptr(d.ptr(b.dy)), KArg::Ptr(d.ptr_mut(b.dx))][..], &shape_args(p)?[..]]
        .concat();
    // SAFETY: maxpool_bwd_f32(const float*, const float*, float*, long long, int × 4);
    // lengths checked above; grid-stride over rows·L inputs.
    unsafe { d.launch("pool", "maxpool_bwd_f32", Geometry::linear(grid_stride_blocks(d, n), THREADS), &args) }
}
