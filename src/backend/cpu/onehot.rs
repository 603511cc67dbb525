//! One-hot encoding of base codes, with reverse complement: the twin of `kernels/onehot.cu`.
//!
//! `out[b, ch, l] = 1` when the base at l is ch: `codes[b, l]`, or for a reversed sequence the
//! complement (3 − code) of `codes[b, len − 1 − l]`; N (4) is all zeros either way.

use super::Real;
use crate::backend::{check_one_hot, BackendResult};
use rayon::prelude::*;

pub fn one_hot<T: Real>(batch: usize, len: usize, codes: &[u8], reverse: &[bool], out: &mut [T]) -> BackendResult<()> {
    check_one_hot(batch, len, codes, reverse, out.len())?;
    out.par_chunks_mut(4 * len.max(1)).enumerate().take(batch).for_each(|(b, o)| {
        o.fill(T::zero());
        let seq = &codes[b * len..(b + 1) * len];
        for l in 0..len {
            let code = if reverse[b] {
                let c = seq[len - 1 - l];
                if c < 4 {
                    3 - c
                } else {
                    4
                }
            } else {
                seq[l]
            };
            if code < 4 {
                o[code as usize * len + l] = T::one();
            }
        }
    });
    Ok(())
}
