//! Inverted dropout with a seeded mask, forward and backward: the twin of `kernels/dropout.cu`.
//!
//! Element i of the flat buffer is kept when [`dropout_keep`]`(seed, i, rate)`; kept values
//! are multiplied by `1/(1 − rate)` (in f32, [`DropoutParams::scale`]), dropped ones are 0.
//! The backward pass applies the same mask and scale to dy: nothing is stored between them.

use super::{HostSlice, Real};
use crate::backend::{dropout_keep, BackendResult, DropoutBwd, DropoutFwd, DropoutParams};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `out[i] = input[i]·scale` where element i is kept, else 0.
fn apply_mask<T: Real>(p: &DropoutParams, input: &[T], out: &mut [T]) {
    let scale = T::of(p.scale() as f64);
    out.par_chunks_mut(CHUNK).zip(input.par_chunks(CHUNK)).enumerate().for_each(|(chunk, (out, input))| {
        let first = (chunk * CHUNK) as u64;
        for (k, (o, &v)) in out.iter_mut().zip(input).enumerate() {
            *o = if dropout_keep(p.seed, first + k as u64, p.rate) { v * scale } else { T::zero() };
        }
    });
}

/// `y = mask ⊙ x / (1 − rate)`.
pub fn dropout_fwd<T: Real, S: HostSlice<T> + ?Sized>(p: &DropoutParams, b: DropoutFwd<'_, S>) -> BackendResult<()> {
    b.check(p)?;
    apply_mask(p, b.x.as_ref(), b.y.as_mut());
    Ok(())
}

/// `dx = mask ⊙ dy / (1 − rate)`, the mask of the forward pass with the same params.
pub fn dropout_bwd<T: Real, S: HostSlice<T> + ?Sized>(p: &DropoutParams, b: DropoutBwd<'_, S>) -> BackendResult<()> {
    b.check(p)?;
    apply_mask(p, b.dy.as_ref(), b.dx.as_mut());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{DropoutBwd, DropoutFwd};

    #[test]
    fn keeps_about_one_minus_rate_and_scales_the_kept() {
        let n = 100_000;
        let x: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
        for rate in [0.1f32, 0.5, 0.9] {
            let p = DropoutParams { rate, seed: 12345 };
            let mut y = vec![f32::NAN; n];
            dropout_fwd(&p, DropoutFwd { x: &x, y: &mut y }).expect("valid");
            let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
            // Binomial(n, 1 − rate): within 4σ.
            let (mean, sd) = (n as f64 * (1.0 - rate as f64), (n as f64 * rate as f64 * (1.0 - rate as f64)).sqrt());
            assert!((kept - mean).abs() <= 4.0 * sd, "rate {rate}: kept {kept}, expected {mean} ± {sd}");
            let scale = 1.0f32 / (1.0f32 - rate);
            for (i, (&yi, &xi)) in y.iter().zip(&x).enumerate() {
                let want = if dropout_keep(p.seed, i as u64, rate) { xi * scale } else { 0.0 };
                assert_eq!(yi.to_bits(), want.to_bits(), "element {i} at rate {rate}");
            }
        }
    }

    #[test]
    fn the_mask_follows_the_seed_and_backward_reuses_it() {
        let n = 10_000;
        let ones = vec![1.0f32; n];
        let mask = |seed: u64| {
            let mut y = vec![0f32; n];
            dropout_fwd(&DropoutParams { rate: 0.3, seed }, DropoutFwd { x: &ones, y: &mut y }).expect("valid");
            y
        };
        assert_eq!(mask(1), mask(1), "same seed, same mask");
        let differ = mask(1).iter().zip(&mask(2)).filter(|(a, b)| a != b).count();
        // Two independent masks at rate 0.3 differ at 2·0.3·0.7 = 42 % of the elements.
        assert!(differ > n / 3, "seeds 1 and 2 give masks differing at only {differ} of {n}");

        let p = DropoutParams { rate: 0.3, seed: 1 };
        let dy: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
        let mut dx = vec![f32::NAN; n];
        dropout_bwd(&p, DropoutBwd { dy: &dy, dx: &mut dx }).expect("valid");
        let mut fwd = vec![f32::NAN; n];
        dropout_fwd(&p, DropoutFwd { x: &dy, y: &mut fwd }).expect("valid");
        assert_eq!(dx, fwd, "backward applies the forward mask and scale");
        assert!(mask(1).iter().zip(&dx).all(|(&m, &d)| m != 0.0 || d == 0.0));
    }

    #[test]
    fn rate_zero_is_the_identity_and_bad_rates_are_refused() {
        let x: Vec<f64> = (0..1000).map(|i| i as f64 - 500.5).collect();
        let mut y = vec![f64::NAN; x.len()];
        dropout_fwd(&DropoutParams { rate: 0.0, seed: 9 }, DropoutFwd { x: &x, y: &mut y }).expect("valid");
        assert_eq!(x, y);
        for rate in [1.0f32, -0.1, f32::NAN] {
            let err = dropout_fwd(&DropoutParams { rate, seed: 9 }, DropoutFwd { x: &x, y: &mut y })
                .expect_err("rate outside [0, 1)");
            assert!(err.to_string().contains("dropout rate"), "{err}");
        }
        let err = dropout_bwd(&DropoutParams { rate: 0.5, seed: 9 }, DropoutBwd { dy: &x[..], dx: &mut y[..10] })
            .expect_err("lengths");
        assert!(err.to_string().contains("'dx'"), "{err}");
    }
}
