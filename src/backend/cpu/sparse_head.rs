//! The per-cell sigmoid head with its BCE against sparse binary rows: the twin of
//! `kernels/sparse_head.cu`.
//!
//! `logit[i, c] = z[i]·w[c] + b[c]`, `y[i, c] = [c ∈ row i]`, N = batch · cells;
//! `loss = Σ [softplus(logit) − y·logit] / N`, `g = (σ(logit) − y) / N`;
//! `dz[i] = Σ_c g·w[c]`, `dw[c] = Σ_i g·z[i]`, `db[c] = Σ_i g`.
//! Cells are processed in fixed chunks (in parallel); each chunk owns its cells' dw and db and
//! contributes a partial dz and loss, summed in f64 in chunk order. No batch × cells array is
//! ever formed.

use super::elementwise::sigmoid;
use super::Real;
use crate::backend::{BackendResult, SparseHeadParams};
use rayon::prelude::*;

/// Cells per task.
const CELLS_PER_TASK: usize = 256;

/// Loss and gradients; see the module documentation.
#[allow(clippy::too_many_arguments)]
pub fn sparse_head<T: Real>(
    p: &SparseHeadParams,
    z: &[T],         // (batch, dim)
    w: &[T],         // (cells, dim)
    bias: &[T],      // (cells)
    indptr: &[u32],  // (batch + 1)
    indices: &[u32], // (nnz), sorted within each row
    dz: &mut [T],    // (batch, dim)
    dw: &mut [T],    // (cells, dim)
    dbias: &mut [T], // (cells)
) -> BackendResult<f64> {
    let (b, n, d) = (p.batch, p.cells, p.dim);
    p.check([z.len(), w.len(), bias.len(), dz.len(), dw.len(), dbias.len()], indptr, indices)?;
    let inv_n = 1.0 / (b as f64 * n as f64);
    let parts: Vec<(Vec<f64>, f64)> = dw
        .par_chunks_mut(CELLS_PER_TASK * d)
        .zip(dbias.par_chunks_mut(CELLS_PER_TASK))
        .enumerate()
        .map(|(task, (dw_chunk, db_chunk))| {
            let c0 = task * CELLS_PER_TASK;
            let c1 = c0 + db_chunk.len();
            let mut dz_part = vec![0.0f64; b * d];
            let mut loss = 0.0f64;
            let mut dw_acc = vec![0.0f64; (c1 - c0) * d];
            let mut db_acc = vec![0.0f64; c1 - c0];
            for i in 0..b {
                let row = &indices[indptr[i] as usize..indptr[i + 1] as usize];
                let mut next = row.partition_point(|&c| (c as usize) < c0);
                let zi = &z[i * d..(i + 1) * d];
                for c in c0..c1 {
                    let wc = &w[c * d..(c + 1) * d];
                    let logit = bias[c].as_f64() + zi.iter().zip(wc).map(|(a, b)| a.as_f64() * b.as_f64()).sum::<f64>();
                    let y = if next < row.len() && row[next] as usize == c {
                        next += 1;
                        1.0
                    } else {
                        0.0
                    };
                    loss += logit.max(0.0) + (-logit.abs()).exp().ln_1p() - y * logit;
                    let g = (sigmoid(logit) - y) * inv_n;
                    db_acc[c - c0] += g;
                    for k in 0..d {
                        dw_acc[(c - c0) * d + k] += g * zi[k].as_f64();
                        dz_part[i * d + k] += g * wc[k].as_f64();
                    }
                }
            }
            dw_chunk.iter_mut().zip(&dw_acc).for_each(|(o, &v)| *o = T::of(v));
            db_chunk.iter_mut().zip(&db_acc).for_each(|(o, &v)| *o = T::of(v));
            (dz_part, loss)
        })
        .collect();
    let mut dz_sum = vec![0.0f64; b * d];
    let mut loss = 0.0f64;
    for (part, l) in &parts {
        dz_sum.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        loss += l;
    }
    dz.iter_mut().zip(&dz_sum).for_each(|(o, &v)| *o = T::of(v));
    Ok(loss * inv_n)
}
