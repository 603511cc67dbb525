//! Launches of `kernels/elementwise.cu`: ReLU, residual add, sigmoid.

use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::BackendResult;

/// `y = f(x)` over n elements, for a kernel `f(const float* x, float* y, long long n)`.
///
/// # Safety
/// `x` and `y` are device addresses of at least `n` floats.
pub(crate) unsafe fn unary(d: &impl KernelDevice, name: &'static str, x: u64, y: u64, n: usize) -> BackendResult<()> {
    let g = Geometry::linear(grid_stride_blocks(d, n), THREADS);
    // SAFETY: (const float*, float*, long long) as declared; both cover n floats (caller).
    unsafe { d.launch("elementwise", name, g, &[KArg::Ptr(x), KArg::Ptr(y), KArg::I64(n as i64)]) }
}

/// `out = f(a, b)` over n elements, for a kernel `f(const float*, const float*, float*, long long)`.
///
/// # Safety
/// `a`, `b` and `out` are device addresses of at least `n` floats.
pub(crate) unsafe fn binary(
    d: &impl KernelDevice,
    name: &'static str,
    a: u64,
    b: u64,
    out: u64,
    n: usize,
) -> BackendResult<()> {
    let g = Geometry::linear(grid_stride_blocks(d, n), THREADS);
    // SAFETY: (const float*, const float*, float*, long long) as declared; all cover n floats.
    unsafe { d.launch("elementwise", name, g, &[KArg::Ptr(a), KArg::Ptr(b), KArg::Ptr(out), KArg::I64(n as i64)]) }
}
