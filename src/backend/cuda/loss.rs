//! Launches of `kernels/loss.cu`: the fused denoising loss in three passes (sums, centred
//! sums, gradients); the seven f64 sums come back to the host to form the loss value.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::cpu::loss::loss_parts_from_sums;
use crate::backend::{BackendResult, DenoiseLoss, DenoiseLossParams, LossParts};

/// Most blocks of the reduction passes: one block reduces their partials.
const MAX_REDUCE_BLOCKS: usize = 1024;

/// The loss and its gradients. All six buffers are (batch, len) floats.
pub(crate) fn denoise_loss<D: KernelDevice>(
    d: &D,
    p: &DenoiseLossParams,
    b: DenoiseLoss<'_, D::Buf>,
) -> BackendResult<LossParts> {
    const OP: &str = "denoise_loss";
    b.check(p)?;
    let (reg, clean, logits, mask) = (d.ptr(b.reg), d.ptr(b.clean), d.ptr(b.cls_logits), d.ptr(b.mask));
    let (d_reg, d_cls) = (d.ptr_mut(b.d_reg), d.ptr_mut(b.d_cls));
    let (b, l, pad) = (as_i32(OP, "batch", p.batch)?, as_i32(OP, "len", p.len)?, as_i32(OP, "pad", p.pad)?);
    as_i32(OP, "batch × len", p.batch * p.len)?;
    let n = p.batch * p.cropped_len();
    let blocks = n.div_ceil(THREADS as usize).clamp(1, MAX_REDUCE_BLOCKS);
    let mut partial_mem = d.scratch(blocks * 4 * 8)?; // (blocks, ≤ 4) doubles
    let mut stats_mem = d.scratch(7 * 8)?; // 7 doubles
    let (partial, stats_ptr) = (d.scratch_ptr(&mut partial_mem), d.scratch_ptr(&mut stats_mem));
    let rows = KArg::I32(blocks as i32);
    let (shape, reduce_grid, pass_grid) = (
        [KArg::I32(b), KArg::I32(l), KArg::I32(pad)],
        Geometry::linear(1, THREADS),
        Geometry::linear(blocks as u32, THREADS),
    );

    // SAFETY (all five launches): the argument lists follow the kernels' parameter lists in
    // kernels/loss.cu; the six tracks hold batch·len floats (checked above) and the kernels touch
    // only (b, l) with b < batch, l < len; partial holds blocks·4 doubles, one row per block
    // of the pass grids; stats holds 7 doubles and the reductions write [0, 4) and [4, 7).
    unsafe {
        let sums = [KArg::Ptr(reg), KArg::Ptr(clean), KArg::Ptr(logits), KArg::Ptr(mask), KArg::Ptr(partial)];
        d.launch("loss", "denoise_loss_sums_f32", pass_grid, &[&sums[..], &shape[..]].concat())?;
        d.launch(
            "loss",
            "reduce_rows_f64",
            reduce_grid,
            &[KArg::Ptr(partial), KArg::Ptr(stats_ptr), rows, KArg::I32(4)],
        )?;
        let centred = [KArg::Ptr(reg), KArg::Ptr(clean), KArg::Ptr(stats_ptr), KArg::Ptr(partial)];
        d.launch("loss", "denoise_loss_centred_f32", pass_grid, &[&centred[..], &shape[..]].concat())?;
        d.launch(
            "loss",
            "reduce_rows_f64",
            reduce_grid,
            &[KArg::Ptr(partial), KArg::Ptr(stats_ptr + 4 * 8), rows, KArg::I32(3)],
        )?;
        let grads = [
            KArg::Ptr(reg),
            KArg::Ptr(clean),
            KArg::Ptr(logits),
            KArg::Ptr(mask),
            KArg::Ptr(stats_ptr),
            KArg::Ptr(d_reg),
            KArg::Ptr(d_cls),
        ];
        let weights = [KArg::F32(p.mse_weight), KArg::F32(p.pearson_weight), KArg::F32(p.bce_weight)];
        let grad_grid = Geometry::linear(grid_stride_blocks(d, p.batch * p.len), THREADS);
        d.launch("loss", "denoise_loss_grad_f32", grad_grid, &[&grads[..], &shape[..], &weights[..]].concat())?;
    }
    let mut host = [0.0f64; 7];
    d.read_f64(&stats_mem, &mut host)?;
    Ok(loss_parts_from_sums(p, host))
}
