//! Launches of `kernels/norm.cu`: batch normalisation.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, BatchNormParams};

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

/// # Safety
/// x and y hold batch·channels·len floats; the other six buffers channels floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn fwd_train(
    d: &impl KernelDevice,
    p: &BatchNormParams,
    x: u64,
    gamma: u64,
    beta: u64,
    y: u64,
    mean: u64,
    invstd: u64,
    running_mean: u64,
    running_var: u64,
) -> BackendResult<()> {
    let dims = dims(p)?;
    let stats = [
        &[KArg::Ptr(x), KArg::Ptr(mean), KArg::Ptr(invstd), KArg::Ptr(running_mean), KArg::Ptr(running_var)][..],
        &dims[..],
        &[KArg::F32(p.eps), KArg::F32(p.momentum)][..],
    ]
    .concat();
    // SAFETY (both launches): argument lists in the kernels' order; one block per channel
    // for the statistics, grid-stride over the activations for the normalisation.
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

/// # Safety
/// x and y hold batch·channels·len floats; the four per-channel buffers channels floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn fwd_infer(
    d: &impl KernelDevice,
    p: &BatchNormParams,
    x: u64,
    gamma: u64,
    beta: u64,
    running_mean: u64,
    running_var: u64,
    y: u64,
) -> BackendResult<()> {
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
    // SAFETY: batchnorm_infer_f32's argument list; grid-stride over the activations.
    unsafe { d.launch("norm", "batchnorm_infer_f32", elementwise(d, p), &args) }
}

/// # Safety
/// x, dy, dx hold batch·channels·len floats; gamma, mean, invstd, dgamma, dbeta channels.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn bwd(
    d: &impl KernelDevice,
    p: &BatchNormParams,
    x: u64,
    dy: u64,
    gamma: u64,
    mean: u64,
    invstd: u64,
    dx: u64,
    dgamma: u64,
    dbeta: u64,
) -> BackendResult<()> {
    let dims = dims(p)?;
    // SAFETY (both launches): argument lists in the kernels' order; the sums finish (same
    // stream) before the dx kernel reads them.
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
