//! Launch of `kernels/optim.cu`: Adam.

use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{AdamParams, AdamStep, BackendResult, BufLen};

/// One Adam step over the parameters, in place.
pub(crate) fn adam_step<D: KernelDevice>(d: &D, p: &AdamParams, b: AdamStep<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let n = b.param.buf_len();
    let (bc1, bc2) = p.bias_corrections();
    let args = [
        KArg::Ptr(d.ptr_mut(b.param)),
        KArg::Ptr(d.ptr(b.grad)),
        KArg::Ptr(d.ptr_mut(b.m)),
        KArg::Ptr(d.ptr_mut(b.v)),
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
    // declared; the four buffers hold n floats (checked above); grid-stride over n.
    unsafe { d.launch("optim", "adam_step_f32", g, &args) }
}
