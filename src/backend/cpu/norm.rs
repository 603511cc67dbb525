//! Batch normalisation: the twin of `kernels/norm.cu`.
//!
//! Per channel c over its M = batch·len values: `mean`, biased `var`, `invstd = 1/sqrt(var + ε)`,
//! `x̂ = (x − mean)·invstd`, `y = γ·x̂ + β` (computed as `x·scale + shift`, see [`normalise`]). Backward (training mode):
//! `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ·invstd·(dy − dβ/M − x̂·dγ/M)`.
//! Sums in f64, two passes for the variance; channels in parallel. Each channel's sums run in
//! [`LANES`] running lanes (value i of a row goes to lane i mod LANES) added in lane order at
//! the end: the loops vectorise, and the order depends on the shape alone.

use super::{HostSlice, Real};
use crate::backend::{BackendResult, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams};
use rayon::prelude::*;

/// The rows of channel c: `len` consecutive values in each batch item, in order.
fn rows<'a, T: Real>(x: &'a [T], p: &BatchNormParams, c: usize) -> impl Iterator<Item = &'a [T]> + 'a {
    let (cl, l) = (p.channels * p.len, p.len);
    x.chunks_exact(cl).map(move |item| &item[c * l..(c + 1) * l])
}

/// Running sums per channel.
const LANES: usize = 8;

/// `acc[i mod LANES] += f(row[i])` for every value of a row.
#[inline]
fn add_lanes<T: Real>(acc: &mut [f64; LANES], row: &[T], f: impl Fn(f64) -> f64) {
    let (chunks, tail) = row.as_chunks::<LANES>();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += f(v.as_f64());
        }
    }
    for (a, v) in acc.iter_mut().zip(tail) {
        *a += f(v.as_f64());
    }
}

/// The lanes' total, in lane order.
fn lanes_total(acc: &[f64; LANES]) -> f64 {
    acc.iter().sum()
}

/// (mean, biased variance) of every channel.
fn moments<T: Real>(x: &[T], p: &BatchNormParams) -> Vec<(f64, f64)> {
    let m = (p.batch * p.len) as f64;
    (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let mut sum = [0.0f64; LANES];
            for row in rows(x, p, c) {
                add_lanes(&mut sum, row, |v| v);
            }
            let mean = lanes_total(&sum) / m;
            let mut sq = [0.0f64; LANES];
            for row in rows(x, p, c) {
                add_lanes(&mut sq, row, |v| (v - mean) * (v - mean));
            }
            (mean, lanes_total(&sq) / m)
        })
        .collect()
}

/// `y = x·scale + shift` per channel, with `scale = γ·invstd` and `shift = β − mean·scale`
/// worked out in f64 and the per-value product and sum in T (f32 in production: the loop
/// vectorises).
fn normalise<T: Real>(p: &BatchNormParams, x: &[T], gamma: &[T], beta: &[T], stats: &[(f64, f64)], y: &mut [T]) {
    let (cl, l) = (p.channels * p.len, p.len);
    let coef: Vec<(T, T)> = (0..p.channels)
        .map(|c| {
            let (mean, invstd) = stats[c];
            let scale = gamma[c].as_f64() * invstd;
            (T::of(scale), T::of(beta[c].as_f64() - mean * scale))
        })
        .collect();
    y.par_chunks_mut(cl).zip(x.par_chunks(cl)).for_each(|(yb, xb)| {
        for (c, &(scale, shift)) in coef.iter().enumerate() {
            for (y, &x) in yb[c * l..(c + 1) * l].iter_mut().zip(&xb[c * l..(c + 1) * l]) {
                *y = x * scale + shift;
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
            let (mut sb, mut sg) = ([0.0f64; LANES], [0.0f64; LANES]);
            for (dy_row, x_row) in rows(dy, p, c).zip(rows(x, p, c)) {
                let (dy_chunks, dy_tail) = dy_row.as_chunks::<LANES>();
                let (x_chunks, x_tail) = x_row.as_chunks::<LANES>();
                for (gs, vs) in dy_chunks.iter().zip(x_chunks) {
                    for k in 0..LANES {
                        let (g, v) = (gs[k].as_f64(), vs[k].as_f64());
                        sb[k] += g;
                        sg[k] += g * (v - mu) * is;
                    }
                }
                for (k, (g, v)) in dy_tail.iter().zip(x_tail).enumerate() {
                    let (g, v) = (g.as_f64(), v.as_f64());
                    sb[k] += g;
                    sg[k] += g * (v - mu) * is;
                }
            }
            (lanes_total(&sb), lanes_total(&sg))
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
