//! Launches of `kernels/dropout.cu`: seeded inverted dropout, forward and backward.

use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::BufLen;
use crate::backend::{BackendResult, DropoutBwd, DropoutFwd, DropoutParams};

/// `out = mask ⊙ input / (1 − rate)` over n elements with `name` `dropout_fwd_f32` or
/// `dropout_bwd_f32` (the same arithmetic; the names keep forward and backward apart in
/// profiles).
///
/// # Safety
/// `input` and `out` are device addresses of at least `n` floats.
unsafe fn dropout<D: KernelDevice>(
    d: &D,
    name: &'static str,
    p: &DropoutParams,
    input: u64,
    out: u64,
    n: usize,
) -> BackendResult<()> {
    let g = Geometry::linear(grid_stride_blocks(d, n), THREADS);
    let args = [KArg::Ptr(input), KArg::Ptr(out), KArg::I64(n as i64), KArg::U64(p.seed), KArg::F32(p.rate)];
    // SAFETY: (const float*, float*, long long, unsigned long long, float) as declared; both
    // buffers cover n floats (caller), the grid-stride loop stops at n.
    unsafe { d.launch("dropout", name, g, &args) }
}

pub(crate) fn dropout_fwd<D: KernelDevice>(d: &D, p: &DropoutParams, b: DropoutFwd<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let n = b.x.buf_len();
    // SAFETY: both buffers hold n floats (checked above).
    unsafe { dropout(d, "dropout_fwd_f32", p, d.ptr(b.x), d.ptr_mut(b.y), n) }
}

pub(crate) fn dropout_bwd<D: KernelDevice>(d: &D, p: &DropoutParams, b: DropoutBwd<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let n = b.dy.buf_len();
    // SAFETY: both buffers hold n floats (checked above).
    unsafe { dropout(d, "dropout_bwd_f32", p, d.ptr(b.dy), d.ptr_mut(b.dx), n) }
}
