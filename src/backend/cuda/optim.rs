//! Launch of `kernels/optim.cu`: Adam.

use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{AdamParams, BackendResult};

/// One Adam step over n parameters.
///
/// # Safety
/// `theta`, `grad`, `m` and `v` are device addresses of at least `n` floats.
pub(crate) unsafe fn adam_step(
    d: &impl KernelDevice,
    p: &AdamParams,
    theta: u64,
    grad: u64,
    m: u64,
    v: u64,
    n: usize,
) -> BackendResult<()> {
    let (bc1, bc2) = p.bias_corrections();
    let args = [
        KArg::Ptr(theta),
        KArg::Ptr(grad),
        KArg::Ptr(m),
        KArg::Ptr(v),
        KArg::I64(n as i64),
        KArg::F32(p.lr),
        KArg::F32(p.beta1),
        KArg::F32(p.beta2),
        KArg::F32(p.eps),
        KArg::F32(p.weight_decay),
        KArg::F32(bc1 as f32),
        KArg::F32(bc2 as f32),
    ];
    let g = Geometry::linear(grid_stride_blocks(d, n), THREADS);
    // SAFETY: adam_step_f32(float*, const float*, float*, float*, long long, float × 7) as
    // declared; the four buffers cover n floats (caller); grid-stride over n.
    unsafe { d.launch("optim", "adam_step_f32", g, &args) }
}
