//! One-hot encoding of base codes, with reverse complement and shift: the twin of
//! `kernels/onehot.cu`.
//!
//! `r[b, t]` is `codes[b, t]`, or for a reversed sequence the complement (3 − code) of
//! `codes[b, len − 1 − t]` (N = 4 stays N). Then `out[b, ch, t] = [r[b, t − shift[b]] = ch]`
//! where `0 ≤ t − shift[b] < len`, and 0.25 in every channel at the positions the shift
//! uncovers; N is all zeros.

use super::{HostSlice, Real};
use crate::backend::{BackendResult, OneHot, OneHotParams};
use rayon::prelude::*;

/// The value of every channel at a position a shift uncovers: no base known.
const PAD: f64 = 0.25;

/// The encoding of [`OneHot`]: codes (batch, len) → out (batch, 4, len),
/// reverse-complemented where `reverse[b]`, then shifted by `shift[b]`.
pub fn one_hot<T: Real, S: HostSlice<T> + ?Sized>(p: &OneHotParams, b: OneHot<'_, S>) -> BackendResult<()> {
    b.check(p)?;
    let OneHot { codes, reverse, shift, out } = b;
    let (batch, len, out) = (p.batch, p.len, out.as_mut());
    let pad = T::of(PAD);
    out.par_chunks_mut(4 * len.max(1)).enumerate().take(batch).for_each(|(b, o)| {
        let seq = &codes[b * len..(b + 1) * len];
        for t in 0..len {
            let src = t as i64 - shift[b] as i64;
            if !(0..len as i64).contains(&src) {
                for ch in 0..4 {
                    o[ch * len + t] = pad;
                }
                continue;
            }
            let u = src as usize;
            let code = if reverse[b] {
                let c = seq[len - 1 - u];
                if c < 4 {
                    3 - c
                } else {
                    4
                }
            } else {
                seq[u]
            };
            for ch in 0..4 {
                o[ch * len + t] = if code as usize == ch { T::one() } else { T::zero() };
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_moves_the_sequence_and_pads_with_a_quarter() {
        // Both sequences A C G T N (len 5): the first shifted right by 2, the second
        // reverse-complemented and shifted left by 1.
        let codes = [0u8, 1, 2, 3, 4, 0, 1, 2, 3, 4];
        let mut out = vec![f32::NAN; 2 * 4 * 5];
        let p = OneHotParams { batch: 2, len: 5 };
        one_hot(&p, OneHot { codes: &codes, reverse: &[false, true], shift: &[2, -1], out: &mut out }).expect("valid");
        let q = 0.25;
        // Sequence 0: r = A C G T N; t − 2 → [pad, pad, A, C, G].
        assert_eq!(&out[0..5], &[q, q, 1.0, 0.0, 0.0]); // A
        assert_eq!(&out[5..10], &[q, q, 0.0, 1.0, 0.0]); // C
        assert_eq!(&out[10..15], &[q, q, 0.0, 0.0, 1.0]); // G
        assert_eq!(&out[15..20], &[q, q, 0.0, 0.0, 0.0]); // T

        // Sequence 1: r = revcomp(A C G T N) = N A C G T; t + 1 → [A, C, G, T, pad].
        assert_eq!(&out[20..25], &[1.0, 0.0, 0.0, 0.0, q]);
        assert_eq!(&out[25..30], &[0.0, 1.0, 0.0, 0.0, q]);
        assert_eq!(&out[30..35], &[0.0, 0.0, 1.0, 0.0, q]);
        assert_eq!(&out[35..40], &[0.0, 0.0, 0.0, 1.0, q]);
    }

    #[test]
    fn large_shifts_are_refused() {
        let (codes, mut out) = ([3u8, 4, 0, 2], vec![0f32; 16]);
        let p = OneHotParams { batch: 1, len: 4 };
        one_hot(&p, OneHot { codes: &codes, reverse: &[true], shift: &[0], out: &mut out }).expect("valid");
        // revcomp(T N A G) = C T N A.
        assert_eq!(&out[..4], &[0.0, 0.0, 0.0, 1.0]);
        assert_eq!(&out[4..8], &[1.0, 0.0, 0.0, 0.0]);
        for bad in [4, -4, i32::MIN] {
            let err = one_hot(&p, OneHot { codes: &codes, reverse: &[false], shift: &[bad], out: &mut out })
                .expect_err("|shift| ≥ len");
            assert!(err.to_string().contains("shift"), "{err}");
        }
        let err = one_hot(&p, OneHot { codes: &codes, reverse: &[false], shift: &[0, 0], out: &mut out })
            .expect_err("one shift per sequence");
        assert!(err.to_string().contains("'shift'"), "{err}");
    }
}
