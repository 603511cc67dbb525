//! Batch normalisation: the twin of `kernels/norm.cu`.
//!
//! Per channel c over its M = batch·len values: `mean`, biased `var`, `invstd = 1/sqrt(var + ε)`,
//! `x̂ = (x − mean)·invstd`, `y = γ·x̂ + β`. Backward (training mode):
//! `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ·invstd·(dy − dβ/M − x̂·dγ/M)`.
//! Sums in f64, two passes for the variance; channels in parallel.

use super::{HostSlice, Real};
use crate::backend::{BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams};
use rayon::prelude::*;

/// The values of channel c: `len` consecutive values in each batch item.
fn channel<'a, T: Real>(x: &'a [T], p: &BatchNormParams, c: usize) -> impl Iterator<Item = (usize, f64)> + 'a {
    let (cl, l, batch) = (p.channels * p.len, p.len, p.batch);
    (0..batch).flat_map(move |b| (0..l).map(move |i| (b * cl + c * l + i, x[b * cl + c * l + i].as_f64())))
}

/// (mean, biased variance) of every channel.
fn moments<T: Real>(x: &[T], p: &BatchNormParams) -> Vec<(f64, f64)> {
    let m = (p.batch * p.len) as f64;
    (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let mean = channel(x, p, c).map(|(_, v)| v).sum::<f64>() / m;
            let var = channel(x, p, c).map(|(_, v)| (v - mean) * (v - mean)).sum::<f64>() / m;
            (mean, var)
        })
        .collect()
}

fn normalise<T: Real>(p: &BatchNormParams, x: &[T], gamma: &[T], beta: &[T], stats: &[(f64, f64)], y: &mut [T]) {
    let (cl, l) = (p.channels * p.len, p.len);
    y.par_chunks_mut(cl).zip(x.par_chunks(cl)).for_each(|(yb, xb)| {
        for c in 0..p.channels {
            let (mean, invstd) = stats[c];
            let (g, bt) = (gamma[c].as_f64(), beta[c].as_f64());
            for i in 0..l {
                yb[c * l + i] = T::of(g * (xb[c * l + i].as_f64() - mean) * invstd + bt);
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
            channel(dy, p, c)
                .zip(channel(x, p, c))
                .fold((0.0, 0.0), |(sb, sg), ((_, g), (_, v))| (sb + g, sg + g * (v - mu) * is))
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
            for i in 0..l {
                let xhat = (xb[c * l + i].as_f64() - mu) * is;
                dxb[c * l + i] = T::of(g * is * (dyb[c * l + i].as_f64() - sb / m - xhat * sg / m));
            }
        }
    });
    Ok(())
}
