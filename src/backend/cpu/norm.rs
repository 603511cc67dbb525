//! Batch normalisation: the twin of `kernels/norm.cu`.
//!
//! Per channel c over its M = batch·len values: `mean`, biased `var`, `invstd = 1/sqrt(var + ε)`,
//! `x̂ = (x − mean)·invstd`, `y = γ·x̂ + β`. Backward (training mode):
//! `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ·invstd·(dy − dβ/M − x̂·dγ/M)`.
//! Sums in f64, two passes for the variance; channels in parallel.

use super::{HostSlice, Real};
use crate::backend::{BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams};
use rayon::prelude::*;

/// The rows of channel c: `len` consecutive values in each batch item, in order.
fn rows<'a, T: Real>(x: &'a [T], p: &BatchNormParams, c: usize) -> impl Iterator<Item = &'a [T]> + 'a {
    let (cl, l) = (p.channels * p.len, p.len);
    x.chunks_exact(cl).map(move |item| &item[c * l..(c + 1) * l])
}

/// (mean, biased variance) of every channel.
fn moments<T: Real>(x: &[T], p: &BatchNormParams) -> Vec<(f64, f64)> {
    let m = (p.batch * p.len) as f64;
    (0..p.channels)
        .into_par_iter()
        .map(|c| {
            // One running sum through the rows in order (the order the sums were specified in).
            let mut sum = 0.0f64;
            for row in rows(x, p, c) {
                sum = row.iter().fold(sum, |a, v| a + v.as_f64());
            }
            let mean = sum / m;
            let mut sq = 0.0f64;
            for row in rows(x, p, c) {
                sq = row.iter().fold(sq, |a, v| a + (v.as_f64() - mean) * (v.as_f64() - mean));
            }
            (mean, sq / m)
        })
        .collect()
}

fn normalise<T: Real>(p: &BatchNormParams, x: &[T], gamma: &[T], beta: &[T], stats: &[(f64, f64)], y: &mut [T]) {
    let (cl, l) = (p.channels * p.len, p.len);
    y.par_chunks_mut(cl).zip(x.par_chunks(cl)).for_each(|(yb, xb)| {
        for c in 0..p.channels {
            let (mean, invstd) = stats[c];
            let (g, bt) = (gamma[c].as_f64(), beta[c].as_f64());
            for (y, x) in yb[c * l..(c + 1) * l].iter_mut().zip(&xb[c * l..(c + 1) * l]) {
                *y = T::of(g * (x.as_f64() - mean) * invstd + bt);
            }
        }
    });
}

pub fn batchnorm_fwd_train<T: Real, S: HostSlice<T> + ?Sized>(
    p: &BatchNormParams,
    b: BatchNormFwdTrain<'_, S>,
) -> BackendResult<()> {
    b.check(p)?;
    let BatchNormFwdTrain { x, gamma, beta, y, mean, invstd, running_mean, running_var } = b;
    let (x, gamma, beta, y) = (x.as_ref(), gamma.as_ref(), beta.as_ref(), y.as_mut());
    let (mean, invstd) = (mean.as_mut(), invstd.as_mut());
    let (running_mean, running_var) = (running_mean.as_mut(), running_var.as_mut());
    let moments = moments(x, p);
    let eps = p.eps as f64;
    let mom = p.momentum as f64;
    let stats: Vec<(f64, f64)> = moments.iter().map(|&(m, v)| (m, 1.0 / (v + eps).sqrt())).collect();
    for (c, &(m, v)) in moments.iter().enumerate() {
        mean[c] = T::of(m);
        invstd[c] = T::of(stats[c].1);
        running_mean[c] = T::of(mom * running_mean[c].as_f64() + (1.0 - mom) * m);
        running_var[c] = T::of(mom * running_var[c].as_f64() + (1.0 - mom) * v);
    }
    normalise(p, x, gamma, beta, &stats, y);
    Ok(())
}

pub fn batchnorm_fwd_infer<T: Real, S: HostSlice<T> + ?Sized>(
    p: &BatchNormParams,
    b: BatchNormFwdInfer<'_, S>,
) -> BackendResult<()> {
    b.check(p)?;
    let BatchNormFwdInfer { x, gamma, beta, running_mean, running_var, y } = b;
    let (x, gamma, beta, y) = (x.as_ref(), gamma.as_ref(), beta.as_ref(), y.as_mut());
    let (running_mean, running_var) = (running_mean.as_ref(), running_var.as_ref());
    let stats: Vec<(f64, f64)> = running_mean
        .iter()
        .zip(running_var)
        .map(|(m, v)| (m.as_f64(), 1.0 / (v.as_f64() + p.eps as f64).sqrt()))
        .collect();
    normalise(p, x, gamma, beta, &stats, y);
    Ok(())
}

pub fn batchnorm_bwd<T: Real, S: HostSlice<T> + ?Sized>(
    p: &BatchNormParams,
    b: BatchNormBwd<'_, S>,
) -> BackendResult<()> {
    b.check(p)?;
    let BatchNormBwd { x, dy, gamma, mean, invstd, dx, dgamma, dbeta } = b;
    let (x, dy, gamma, mean, invstd) = (x.as_ref(), dy.as_ref(), gamma.as_ref(), mean.as_ref(), invstd.as_ref());
    let (dx, dgamma, dbeta) = (dx.as_mut(), dgamma.as_mut(), dbeta.as_mut());
    let m = (p.batch * p.len) as f64;
    let sums: Vec<(f64, f64)> = (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let (mu, is) = (mean[c].as_f64(), invstd[c].as_f64());
            let mut acc = (0.0f64, 0.0f64);
            for (dy_row, x_row) in rows(dy, p, c).zip(rows(x, p, c)) {
                acc = dy_row.iter().zip(x_row).fold(acc, |(sb, sg), (g, v)| {
                    let (g, v) = (g.as_f64(), v.as_f64());
                    (sb + g, sg + g * (v - mu) * is)
                });
            }
            acc
        })
        .collect();
    for (c, &(sb, sg)) in sums.iter().enumerate() {
        dbeta[c] = T::of(sb);
        dgamma[c] = T::of(sg);
    }
    let (cl, l) = (p.channels * p.len, p.len);
    dx.par_chunks_mut(cl).zip(x.par_chunks(cl).zip(dy.par_chunks(cl))).for_each(|(dxb, (xb, dyb))| {
        for c in 0..p.channels {
            let (mu, is, g) = (mean[c].as_f64(), invstd[c].as_f64(), gamma[c].as_f64());
            let (sb, sg) = sums[c];
            let range = c * l..(c + 1) * l;
            for (dx, (x, dy)) in dxb[range.clone()].iter_mut().zip(xb[range.clone()].iter().zip(&dyb[range])) {
                let xhat = (x.as_f64() - mu) * is;
                *dx = T::of(g * is * (dy.as_f64() - sb / m - xhat * sg / m));
            }
        }
    });
    Ok(())
}
