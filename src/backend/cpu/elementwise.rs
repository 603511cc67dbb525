//! ReLU, residual add and sigmoid, forward and backward: the twins of `kernels/elementwise.cu`.

use super::Real;
use crate::backend::{check_len, BackendResult};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

fn same_len(op: &'static str, names: &[(&str, usize)]) -> BackendResult<()> {
    let want = names[0].1;
    names[1..].iter().try_for_each(|&(name, got)| check_len(op, name, got, want))
}

/// `y = max(x, 0)`.
pub fn relu_fwd<T: Real>(x: &[T], y: &mut [T]) -> BackendResult<()> {
    same_len("relu_fwd", &[("x", x.len()), ("y", y.len())])?;
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > T::zero() { x } else { T::zero() });
    });
    Ok(())
}

/// `dx = dy · [y > 0]`, with y the forward output.
pub fn relu_bwd<T: Real>(y: &[T], dy: &[T], dx: &mut [T]) -> BackendResult<()> {
    same_len("relu_bwd", &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (y, dy))| {
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = if y > T::zero() { dy } else { T::zero() };
        }
    });
    Ok(())
}

/// `y = a + b`.
pub fn add_fwd<T: Real>(a: &[T], b: &[T], y: &mut [T]) -> BackendResult<()> {
    same_len("add_fwd", &[("a", a.len()), ("b", b.len()), ("y", y.len())])?;
    y.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(y, (a, b))| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = a + b;
        }
    });
    Ok(())
}

/// σ(x), written so that neither branch overflows.
pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `y = σ(x)`.
pub fn sigmoid_fwd<T: Real>(x: &[T], y: &mut [T]) -> BackendResult<()> {
    same_len("sigmoid_fwd", &[("x", x.len()), ("y", y.len())])?;
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = sigmoid(x));
    });
    Ok(())
}

/// `dx = dy · y · (1 − y)`, with y the forward output.
pub fn sigmoid_bwd<T: Real>(y: &[T], dy: &[T], dx: &mut [T]) -> BackendResult<()> {
    same_len("sigmoid_bwd", &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (y, dy))| {
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = dy * y * (T::one() - y);
        }
    });
    Ok(())
}

/// The slope of scBasset's GELU: `x · σ(1.702·x)`.
pub const GELU_SLOPE: f64 = 1.702;

/// `y = x · σ(1.702·x)`.
pub fn gelu_fwd<T: Real>(x: &[T], y: &mut [T]) -> BackendResult<()> {
    same_len("gelu_fwd", &[("x", x.len()), ("y", y.len())])?;
    let a = T::of(GELU_SLOPE);
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * sigmoid(a * x));
    });
    Ok(())
}

/// `dx = dy · (s + 1.702·x·s·(1 − s))`, `s = σ(1.702·x)`.
pub fn gelu_bwd<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) -> BackendResult<()> {
    same_len("gelu_bwd", &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    let a = T::of(GELU_SLOPE);
    dx.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (x, dy))| {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            let s = sigmoid(a * x);
            *dx = dy * (s + a * x * s * (T::one() - s));
        }
    });
    Ok(())
}
