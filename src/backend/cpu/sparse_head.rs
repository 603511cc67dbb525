//! The per-cell sigmoid head with its BCE against sparse binary rows: the twin of
//! `kernels/sparse_head.cu`.
//!
//! `logit[i, c] = z[i]·w[c] + b[c]`, `y[i, c] = [c ∈ row i]`, N = batch · cells;
//! `loss = Σ [softplus(logit) − y·logit] / N`, `g = (σ(logit) − y) / N`;
//! `dz[i] = Σ_c g·w[c]`, `dw[c] = Σ_i g·z[i]`, `db[c] = Σ_i g`.
//! Cells are processed in fixed chunks (in parallel); each chunk owns its cells' dw and db and
//! contributes a partial dz and loss, summed in f64 in chunk order. No batch × cells array is
//! ever formed.
//!
//! [`head_roc_histogram`] evaluates the same logits (by the same function, [`head_logit`]),
//! rounds them to f32 and counts them per [`roc_bin`], positives and negatives apart.

use super::elementwise::sigmoid;
use super::{HostSlice, Real};
#[cfg(test)]
use crate::backend::HeadRows;
use crate::backend::{roc_bin, BackendResult, HeadLogits, SparseHead, SparseHeadParams, ROC_BINS};
use rayon::prelude::*;

/// Cells per task.
const CELLS_PER_TASK: usize = 256;

/// `b + z_i·w_c`: the f64 sum of the dim products in order, then the bias. The CUDA histogram
/// kernel sums in this order too, so its f32-rounded logits are the same.
fn head_logit<T: Real>(zi: &[T], wc: &[T], b: T) -> f64 {
    b.as_f64() + zi.iter().zip(wc).map(|(a, b)| a.as_f64() * b.as_f64()).sum::<f64>()
}

/// Loss and gradients; see the module documentation.
pub fn sparse_head<T: Real, S: HostSlice<T> + ?Sized>(
    p: &SparseHeadParams,
    bufs: SparseHead<'_, S>,
) -> BackendResult<f64> {
    bufs.check(p)?;
    let SparseHead { logits: HeadLogits { z, w, bias, rows }, dz, dw, dbias } = bufs;
    let (indptr, indices) = (rows.indptr, rows.indices);
    let (z, w, bias) = (z.as_ref(), w.as_ref(), bias.as_ref());
    let (dz, dw, dbias) = (dz.as_mut(), dw.as_mut(), dbias.as_mut());
    let (b, n, d) = (p.batch, p.cells, p.dim);
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
                    let logit = head_logit(zi, wc, bias[c]);
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

/// Counts of the head's logits per [`roc_bin`] (of the logit rounded to f32): with `per_row`
/// false 2·[`ROC_BINS`] values, positives per bin then negatives per bin; with `per_row` true
/// one such block per row of the batch. Rows run in parallel.
pub fn head_roc_histogram<T: Real, S: HostSlice<T> + ?Sized>(
    p: &SparseHeadParams,
    bufs: HeadLogits<'_, S>,
    per_row: bool,
) -> BackendResult<Vec<u64>> {
    bufs.check(p)?;
    let HeadLogits { z, w, bias, rows } = bufs;
    let (indptr, indices) = (rows.indptr, rows.indices);
    let (z, w, bias) = (z.as_ref(), w.as_ref(), bias.as_ref());
    let d = p.dim;
    let rows: Vec<Vec<u64>> = (0..p.batch)
        .into_par_iter()
        .map(|i| {
            let mut counts = vec![0u64; 2 * ROC_BINS]; // (positives, negatives) × bins
            let row = &indices[indptr[i] as usize..indptr[i + 1] as usize];
            let zi = &z[i * d..(i + 1) * d];
            let mut next = 0;
            for c in 0..p.cells {
                let positive = next < row.len() && row[next] as usize == c;
                next += usize::from(positive);
                let logit = head_logit(zi, &w[c * d..(c + 1) * d], bias[c]) as f32;
                counts[if positive { 0 } else { ROC_BINS } + roc_bin(logit)] += 1;
            }
            counts
        })
        .collect();
    if per_row {
        return Ok(rows.concat());
    }
    let mut total = vec![0u64; 2 * ROC_BINS];
    for row in &rows {
        total.iter_mut().zip(row).for_each(|(t, &v)| *t += v);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_histogram_counts_a_hand_checked_case() {
        // Two peaks, three cells, dim 2. logit[i, c] = z[i]·w[c] + b[c]:
        //   row 0, z (1, 0):   0.5 + 0 = 0.5,   −1 + 0 = −1,   0 + 20 = 20 (clamped)
        //   row 1, z (0, 2):   0 + 0 = 0,       1 + 0 = 1,     −40 + 20 = −20 (clamped)
        // bins floor((l + 16)·16): 0.5 → 264, −1 → 240, 20 → 511, 0 → 256, 1 → 272, −20 → 0.
        let p = SparseHeadParams { batch: 2, cells: 3, dim: 2 };
        let z = [1.0f32, 0.0, 0.0, 2.0];
        let w = [0.5f32, 0.0, -1.0, 0.5, 0.0, -20.0];
        let b = [0.0f32, 0.0, 20.0];
        // Row 0 holds cells 0 and 2, row 1 cell 1.
        let (indptr, indices) = ([0u32, 2, 3], [0u32, 2, 1]);
        let rows = head_roc_histogram(
            &p,
            HeadLogits { z: &z[..], w: &w[..], bias: &b[..], rows: &HeadRows::host(&indptr, &indices) },
            true,
        )
        .expect("valid");
        assert_eq!(rows.len(), 2 * 2 * ROC_BINS);
        let nonzero = |block: &[u64]| -> Vec<(usize, u64)> {
            block.iter().enumerate().filter(|(_, &v)| v != 0).map(|(k, &v)| (k, v)).collect()
        };
        let neg = ROC_BINS;
        assert_eq!(nonzero(&rows[..2 * ROC_BINS]), [(264, 1), (511, 1), (neg + 240, 1)]);
        assert_eq!(nonzero(&rows[2 * ROC_BINS..]), [(272, 1), (neg, 1), (neg + 256, 1)]);
        let total = head_roc_histogram(
            &p,
            HeadLogits { z: &z[..], w: &w[..], bias: &b[..], rows: &HeadRows::host(&indptr, &indices) },
            false,
        )
        .expect("valid");
        assert_eq!(nonzero(&total), [(264, 1), (272, 1), (511, 1), (neg, 1), (neg + 240, 1), (neg + 256, 1)]);

        let err = head_roc_histogram(
            &p,
            HeadLogits { z: &z[..], w: &w[..4], bias: &b[..], rows: &HeadRows::host(&indptr, &indices) },
            false,
        )
        .expect_err("short w");
        assert!(err.to_string().contains("head_roc_histogram") && err.to_string().contains("'w'"), "{err}");
        let err = head_roc_histogram(
            &p,
            HeadLogits { z: &z[..], w: &w[..], bias: &b[..], rows: &HeadRows::host(&[0, 2, 3], &[2, 0, 1]) },
            false,
        )
        .expect_err("unsorted row");
        assert!(err.to_string().contains("row 0"), "{err}");
    }

    #[test]
    fn roc_histogram_totals_are_batch_times_cells_and_positives_nnz() {
        let (batch, cells, dim) = (7usize, 1000usize, 5usize);
        let p = SparseHeadParams { batch, cells, dim };
        let val = |k: usize, s: f32| ((k as f32 * 0.618 + s).fract() - 0.5) * 4.0;
        let z: Vec<f32> = (0..batch * dim).map(|k| val(k, 0.1)).collect();
        let w: Vec<f32> = (0..cells * dim).map(|k| val(k, 0.3)).collect();
        let b: Vec<f32> = (0..cells).map(|k| val(k, 0.7)).collect();
        let (mut indptr, mut indices) = (vec![0u32], Vec::new());
        for i in 0..batch {
            indices.extend((0..cells as u32).filter(|c| (c * 7 + i as u32).is_multiple_of(11)));
            indptr.push(indices.len() as u32);
        }
        let total = head_roc_histogram(
            &p,
            HeadLogits { z: &z[..], w: &w[..], bias: &b[..], rows: &HeadRows::host(&indptr, &indices) },
            false,
        )
        .expect("valid");
        assert_eq!(total.iter().sum::<u64>(), (batch * cells) as u64);
        assert_eq!(total[..ROC_BINS].iter().sum::<u64>(), indices.len() as u64);
        let rows = head_roc_histogram(
            &p,
            HeadLogits { z: &z[..], w: &w[..], bias: &b[..], rows: &HeadRows::host(&indptr, &indices) },
            true,
        )
        .expect("valid");
        for i in 0..batch {
            let block = &rows[i * 2 * ROC_BINS..(i + 1) * 2 * ROC_BINS];
            assert_eq!(block.iter().sum::<u64>(), cells as u64, "row {i}");
            assert_eq!(block[..ROC_BINS].iter().sum::<u64>(), (indptr[i + 1] - indptr[i]) as u64, "row {i}");
        }
        // The per-row blocks add up to the total, and f64 gives the same bins here.
        let summed: Vec<u64> =
            (0..2 * ROC_BINS).map(|k| (0..batch).map(|i| rows[i * 2 * ROC_BINS + k]).sum()).collect();
        assert_eq!(summed, total);
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let total64 = head_roc_histogram(
            &p,
            HeadLogits { z: &to64(&z), w: &to64(&w), bias: &to64(&b), rows: &HeadRows::host(&indptr, &indices) },
            false,
        )
        .expect("valid");
        assert_eq!(total64, total);
    }
}
