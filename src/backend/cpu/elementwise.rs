//! The element-wise ops, forward and backward: the twins of `kernels/elementwise.cu`. Each
//! op's value at one element is [`ElementwiseOp::apply`]; this maps it over the buffers.

use super::{HostSlice, Real};
use crate::backend::{BackendResult, Elementwise, ElementwiseOp};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `out[i] = op(a[i], b[i])` (b absent for unary ops).
pub fn elementwise<T: Real, S: HostSlice<T> + ?Sized>(
    op: ElementwiseOp,
    bufs: Elementwise<'_, S>,
) -> BackendResult<()> {
    bufs.check(op)?;
    let Elementwise { a, b, out } = bufs;
    let (a, out) = (a.as_ref(), out.as_mut());
    match b {
        None => out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(|(out, a)| {
            out.iter_mut().zip(a).for_each(|(o, &a)| *o = op.apply(a, T::zero()));
        }),
        Some(b) => out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.as_ref().par_chunks(CHUNK))).for_each(
            |(out, (a, b))| {
                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    *o = op.apply(a, b);
                }
            },
        ),
    }
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
