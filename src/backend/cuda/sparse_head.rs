//! Launches of `kernels/sparse_head.cu`: the fused per-cell head, then the f64 reductions of
//! the per-block dz partials and loss partials; and the head's logit histogram.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, HeadLogits, HeadRows, SparseHead, SparseHeadParams, ROC_BINS};
use crate::error::BackendError;

// These mirror the #defines of kernels/sparse_head.cu.
pub(crate) const HEAD_CELLS: usize = 128;
pub(crate) const HEAD_MAX_DIM: usize = 64;
/// Persistent blocks per multiprocessor: what sparse_head_f32's 168 registers × 128 threads
/// leave resident (tests/nvrtc_compile.rs checks it against ptxas), so the grid is one wave.
pub const HEAD_BLOCKS_PER_SM: usize = 3;
pub(crate) const ROC_CELLS: usize = 256;
/// Histogram blocks per multiprocessor to launch: 4 waves of its 1 resident block (154
/// registers × 256 threads), fine enough that uneven rows even out.
const ROC_BLOCKS_PER_SM: usize = 4;
const ROC_ROWS: usize = 8;
/// Cells one histogram block may take, so that its 32-bit shared counts (ROC_ROWS logits per
/// cell) cannot overflow.
const ROC_MAX_CELLS_PER_BLOCK: usize = 1 << 28;

/// The batch's CSR rows copied to the device, u32 bits in the device's buffers (an empty
/// `indices` becomes one unused zero).
pub(crate) fn upload_rows<D: KernelDevice>(d: &D, indptr: &[u32], indices: &[u32]) -> BackendResult<(D::Buf, D::Buf)> {
    let indices: &[u32] = if indices.is_empty() { &[0] } else { indices };
    Ok((d.upload(bytemuck::cast_slice(indptr))?, d.upload(bytemuck::cast_slice(indices))?))
}

/// Device addresses of the rows: their upload's when the caller made one
/// ([`crate::backend::Backend::upload_rows`]), else a copy made now and kept alive in `keep`.
fn row_ptrs<D: KernelDevice>(
    d: &D,
    rows: &HeadRows<'_, D::Buf>,
    keep: &mut Option<(D::Buf, D::Buf)>,
) -> BackendResult<(u64, u64)> {
    if let Some((indptr, indices)) = rows.device {
        return Ok((d.ptr(indptr), d.ptr(indices)));
    }
    let (indptr, indices) = keep.insert(upload_rows(d, rows.indptr, rows.indices)?);
    Ok((d.ptr(indptr), d.ptr(indices)))
}

/// The head with its loss and gradients. Returns the mean BCE.
pub(crate) fn sparse_head<D: KernelDevice>(
    d: &D,
    p: &SparseHeadParams,
    bufs: SparseHead<'_, D::Buf>,
) -> BackendResult<f64> {
    bufs.check(p)?;
    let l = &bufs.logits;
    let (z, w, bias) = (d.ptr(l.z), d.ptr(l.w), d.ptr(l.bias));
    // The batch's rows: the caller's one upload, else copied for this call.
    let mut keep = None;
    let (indptr, indices) = row_ptrs(d, l.rows, &mut keep)?;
    let (dz, dw, dbias) = (d.ptr_mut(bufs.dz), d.ptr_mut(bufs.dw), d.ptr_mut(bufs.dbias));
    const OP: &str = "sparse_head";
    let (b, n, dim) = kernel_shape(OP, p)?;
    let grid = p.cells.div_ceil(HEAD_CELLS).min(HEAD_BLOCKS_PER_SM * d.multiprocessors()).max(1);
    let mut dz_parts = d.scratch(grid * p.batch * p.dim * 4)?;
    let mut loss_parts = d.scratch(grid * 8)?;
    let mut loss = d.scratch(8)?;
    let (dz_ptr, loss_ptr, out_ptr) =
        (d.scratch_ptr(&mut dz_parts), d.scratch_ptr(&mut loss_parts), d.scratch_ptr(&mut loss));
    let inv_n = 1.0 / (p.batch as f64 * p.cells as f64);
    let args = [
        KArg::Ptr(z),
        KArg::Ptr(w),
        KArg::Ptr(bias),
        KArg::Ptr(indptr),
        KArg::Ptr(indices),
        KArg::Ptr(dz_ptr),
        KArg::Ptr(dw),
        KArg::Ptr(dbias),
        KArg::Ptr(loss_ptr),
        KArg::I32(b),
        KArg::I32(n),
        KArg::I32(dim),
        KArg::F32(inv_n as f32),
    ];
    // SAFETY: sparse_head_f32's parameter list in order; buffers and CSR rows checked above
    // (the row copies live until the read-back below); each block writes its own dz slice
    // (grid × B × D floats allocated) and loss slot; cells are guarded by c < N; static shared
    // memory only.
    unsafe { d.launch("sparse_head", "sparse_head_f32", Geometry::linear(grid as u32, HEAD_CELLS as u32), &args)? };
    let n_dz = p.batch * p.dim;
    let reduce = Geometry::linear(grid_stride_blocks(d, n_dz), THREADS);
    // SAFETY: sparse_head_reduce_f32(const float*, float*, int, long long): grid·n_dz partials
    // in, n_dz values of dz out.
    unsafe {
        d.launch(
            "sparse_head",
            "sparse_head_reduce_f32",
            reduce,
            &[KArg::Ptr(dz_ptr), KArg::Ptr(dz), KArg::I32(grid as i32), KArg::I64(n_dz as i64)],
        )?
    };
    // SAFETY: sparse_head_loss_f64(const double*, double*, int): grid partials, one result.
    unsafe {
        d.launch(
            "sparse_head",
            "sparse_head_loss_f64",
            Geometry::linear(1, THREADS),
            &[KArg::Ptr(loss_ptr), KArg::Ptr(out_ptr), KArg::I32(grid as i32)],
        )?
    };
    let mut host = [0.0f64];
    d.read_f64(&loss, &mut host)?;
    Ok(host[0] * inv_n)
}

/// The head's logit histogram (see `Backend::head_roc_histogram`): 2·ROC_BINS counts per row
/// with `per_row`, else 2·ROC_BINS in all.
pub(crate) fn head_roc_histogram<D: KernelDevice>(
    d: &D,
    p: &SparseHeadParams,
    bufs: HeadLogits<'_, D::Buf>,
    per_row: bool,
) -> BackendResult<Vec<u64>> {
    bufs.check(p)?;
    let (z, w, bias) = (d.ptr(bufs.z), d.ptr(bufs.w), d.ptr(bufs.bias));
    let mut keep = None;
    let (indptr, indices) = row_ptrs(d, bufs.rows, &mut keep)?;
    const OP: &str = "head_roc_histogram";
    let (b, n, dim) = kernel_shape(OP, p)?;
    // Rows on x (up to 2^31 − 1 blocks), cell splits on y (≤ 65,535): enough blocks to fill the
    // device, none without a cell tile, none with more cells than its counters hold.
    let row_tiles = p.batch.div_ceil(ROC_ROWS);
    let cell_tiles = p.cells.div_ceil(ROC_CELLS);
    let splits = (ROC_BLOCKS_PER_SM * d.multiprocessors())
        .div_ceil(row_tiles)
        .min(cell_tiles)
        .max(p.cells.div_ceil(ROC_MAX_CELLS_PER_BLOCK))
        .clamp(1, 65_535);
    let counts = if per_row { p.batch * 2 * ROC_BINS } else { 2 * ROC_BINS };
    let mut hist = d.scratch(counts * 8)?;
    let args = [
        KArg::Ptr(z),
        KArg::Ptr(w),
        KArg::Ptr(bias),
        KArg::Ptr(indptr),
        KArg::Ptr(indices),
        KArg::Ptr(d.scratch_ptr(&mut hist)),
        KArg::I32(b),
        KArg::I32(n),
        KArg::I32(dim),
        KArg::I32(i32::from(per_row)),
    ];
    let geometry = Geometry {
        grid: (as_i32(OP, "row tiles", row_tiles)? as u32, splits as u32, 1),
        block: (ROC_CELLS as u32, 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: head_roc_histogram_f32's parameter list in order; buffers and CSR rows checked
    // above (the row copies live until the read-back below); rows are guarded by the block's
    // nr = min(ROC_ROWS, B − r0) and cells by c < N; hist is zeroed scratch of `counts` u64
    // (batch blocks of 2·ROC_BINS with per_row); static shared memory only.
    unsafe { d.launch("sparse_head", "head_roc_histogram_f32", geometry, &args)? };
    let mut host = vec![0u64; counts];
    d.read_u64(&hist, &mut host)?;
    Ok(host)
}

/// The head's sizes as the kernels' i32 arguments, within what the kernels support.
fn kernel_shape(op: &'static str, p: &SparseHeadParams) -> BackendResult<(i32, i32, i32)> {
    if p.dim > HEAD_MAX_DIM {
        return Err(BackendError::Unsupported {
            op,
            what: format!("dim {} exceeds the CUDA kernel's {HEAD_MAX_DIM}", p.dim),
        });
    }
    as_i32(op, "cells × dim", p.cells * p.dim)?;
    Ok((as_i32(op, "batch", p.batch)?, as_i32(op, "cells", p.cells)?, as_i32(op, "dim", p.dim)?))
}
