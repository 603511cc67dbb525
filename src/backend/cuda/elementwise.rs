//! Launches of `kernels/elementwise.cu`: every [`ElementwiseOp`], one kernel each.

use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, Elementwise, ElementwiseOp};

/// `out = op(a[, b])` with the op's kernel: `f(const float* a, float* out, long long n)` for
/// unary ops, `f(const float* a, const float* b, float* out, long long n)` for binary ones.
pub(crate) fn elementwise<D: KernelDevice>(d: &D, op: ElementwiseOp, b: Elementwise<'_, D::Buf>) -> BackendResult<()> {
    let n = b.check(op)?;
    let g = Geometry::linear(grid_stride_blocks(d, n), THREADS);
    let (a, out) = (KArg::Ptr(d.ptr(b.a)), KArg::Ptr(d.ptr_mut(b.out)));
    let args = match b.b {
        None => vec![a, out, KArg::I64(n as i64)],
        Some(second) => vec![a, KArg::Ptr(d.ptr(second)), out, KArg::I64(n as i64)],
    };
    // SAFETY: the argument list matches the op's arity (checked above: one input for unary
    // kernels, two for binary ones) and every buffer holds n floats; grid-stride over n.
    unsafe { d.launch("elementwise", op.kernel(), g, &args) }
}
