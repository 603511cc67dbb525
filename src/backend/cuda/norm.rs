//! Launches of `kernels/norm.cu`: batch normalisation.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams};

fn dims(p: &BatchNormParams) -> BackendResult<[KArg; 3]> {
    const OP: &str = "batchnorm";
    as_i32(OP, "batch × channels × len", p.batch * p.channels * p.len)?;
    Ok([
        KArg::I32(as_i32(OP, "batch", p.batch)?),
        KArg::I32(as_i32(OP, "channels", p.channels)?),
        KArg::I32(as_i32(OP, "len", p.len)?),
    ])
}

fn per_channel(p: &BatchNormParams) -> Geometry {
    Geometry::linear(p.channels as u32, THREADS)
}

fn elementwise(d: &impl KernelDevice, p: &BatchNormParams) -> Geometry {
    Geometry::linear(grid_stride_blocks(d, p.batch * p.channels * p.len), THREADS)
}

/// Training mode: the statistics per channel, then the normalisation.
pub(crate) fn fwd_train<D: KernelDevice>(
    d: &D,
    p: &BatchNormParams,
    b: BatchNormFwdTrain<'_, D::Buf>,
) -> BackendResult<()> {
    b.check(p)?;
    let (x, gamma, beta, y) = (d.ptr(b.x), d.ptr(b.gamma), d.ptr(b.beta), d.ptr_mut(b.y));
    let (mean, invstd) = (d.ptr_mut(b.mean), d.ptr_mut(b.invstd));
    let (running_mean, running_var) = (d.ptr_mut(b.running_mean), d.ptr_mut(b.running_var));
    let dims = dims(p)?;
    let stats = [
        &[KArg::Ptr(x), KArg::Ptr(mean), KArg::Ptr(invstd), KArg::Ptr(running_mean), KArg::Ptr(running_var)][..],
        &dims[..],
        &[KArg::F32(p.eps), KArg::F32(p.momentum)][..],
    ]
    .concat();
    // SAFETY (both launches): argument lists in the kernels' order; lengths checked above;
    // one block per channel for the statistics, grid-stride over the activations for the
    // normalisation.
    unsafe {
        d.launch("norm", "batchnorm_stats_f32", per_channel(p), &stats)?;
        let norm = [
            &[KArg::Ptr(x), KArg::Ptr(gamma), KArg::Ptr(beta), KArg::Ptr(mean), KArg::Ptr(invstd), KArg::Ptr(y)][..],
            &dims[..],
        ]
        .concat();
        d.launch("norm", "batchnorm_normalize_f32", elementwise(d, p), &norm)
    }
}

/// Inference mode: normalised by the running statistics.
pub(crate) fn fwd_infer<D: KernelDevice>(
    d: &D,
    p: &BatchNormParams,
    b: BatchNormFwdInfer<'_, D::Buf>,
) -> BackendResult<()> {
    b.check(p)?;
    let (x, gamma, beta, y) = (d.ptr(b.x), d.ptr(b.gamma), d.ptr(b.beta), d.ptr_mut(b.y));
    let (running_mean, running_var) = (d.ptr(b.running_mean), d.ptr(b.running_var));
    let args = [
        &[
            KArg::Ptr(x),
            KArg::Ptr(gamma),
            KArg::Ptr(beta),
            KArg::Ptr(running_mean),
            KArg::Ptr(running_var),
            KArg::Ptr(y),
        ][..],
        &dims(p)?[..],
        &[KArg::F32(p.eps)][..],
    ]
    .concat();
    // SAFETY: batchnorm_infer_f32's argument list; lengths checked above; grid-stride over the
    // activations.
    unsafe { d.launch("norm", "batchnorm_infer_f32", elementwise(d, p), &args) }
}

/// Backward: the per-channel sums dγ, dβ, then dx.
pub(crate) fn bwd<D: KernelDevice>(d: &D, p: &BatchNormParams, b: BatchNormBwd<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let (x, dy, gamma, mean, invstd) = (d.ptr(b.x), d.ptr(b.dy), d.ptr(b.gamma), d.ptr(b.mean), d.ptr(b.invstd));
    let (dx, dgamma, dbeta) = (d.ptr_mut(b.dx), d.ptr_mut(b.dgamma), d.ptr_mut(b.dbeta));
    let dims = dims(p)?;
    // SAFETY (both launches): argument lists in the kernels' order; lengths checked above;
    // the sums finish (same stream) before the dx kernel reads them.
    unsafe {
        let sums = [
            &[KArg::Ptr(x), KArg::Ptr(dy), KArg::Ptr(mean), KArg::Ptr(invstd), KArg::Ptr(dgamma), KArg::Ptr(dbeta)][..],
            &dims[..],
        ]
        .concat();
        d.launch("norm", "batchnorm_bwd_sums_f32", per_channel(p), &sums)?;
        let dxa = [
            &[
                KArg::Ptr(x),
                KArg::Ptr(dy),
                KArg::Ptr(gamma),
                KArg::Ptr(mean),
                KArg::Ptr(invstd),
                KArg::Ptr(dgamma),
                KArg::Ptr(dbeta),
                KArg::Ptr(dx),
            ][..],
            &dims[..],
        ]
        .concat();
        d.launch("norm", "batchnorm_bwd_dx_f32", elementwise(d, p), &dxa)
    }
}
