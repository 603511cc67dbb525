//! Adam with bias correction: the twin of `kernels/optim.cu`.
//!
//! `g ← g + wd·θ; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;`
//! `θ ← θ − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)`

use super::{HostSlice, Real};
use crate::backend::{AdamParams, AdamStep, BackendResult};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// One Adam step over `param`, in place.
pub fn adam_step<T: Real, S: HostSlice<T> + ?Sized>(p: &AdamParams, b: AdamStep<'_, S>) -> BackendResult<()> {
    b.check(p)?;
    let (param, grad, m, v) = (b.param.as_mut(), b.grad.as_ref(), b.m.as_mut(), b.v.as_mut());
    let (bc1, bc2) = p.bias_corrections();
    let [lr, b1, b2, eps, wd] = [p.lr, p.beta1, p.beta2, p.eps, p.weight_decay].map(|x| T::of(x as f64));
    let (bc1, bc2) = (T::of(bc1), T::of(bc2));
    param
        .par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((theta, m), v), g)| {
            for i in 0..theta.len() {
                let g = g[i] + wd * theta[i];
                m[i] = b1 * m[i] + (T::one() - b1) * g;
                v[i] = b2 * v[i] + (T::one() - b2) * g * g;
                let m_hat = m[i] / bc1;
                let v_hat = v[i] / bc2;
                theta[i] = theta[i] - lr * m_hat / (v_hat.sqrt() + eps);
            }
        });
    Ok(())
}
