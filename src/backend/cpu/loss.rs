//! The fused denoising loss: the twin of `kernels/loss.cu`.
//!
//! Over the cropped centre of every interval (N elements in all), with p the regression
//! output, t the clean track, z the peak logits and y the 0/1 peak mask:
//!
//! * `MSE = Σ (p − t)² / N`, `∂MSE/∂p = 2(p − t)/N`
//! * `r = S_pt / (sqrt(S_pp·S_tt) + ε)` with centred sums `S_pt = Σ (p − p̄)(t − t̄)` etc.;
//!   `∂r/∂p_i = (t_i − t̄)/D − S_pt·(p_i − p̄)·sqrt(S_tt/S_pp)/D²`, `D = sqrt(S_pp·S_tt) + ε`
//!   (the second term is taken as 0 when S_pp·S_tt = 0, where p_i − p̄ = 0 as well)
//! * `BCE = Σ [max(z, 0) − z·y + ln(1 + e^(−|z|))] / N`, `∂BCE/∂z = (σ(z) − y)/N`
//!
//! Sums run in f64: per interval in order, then the intervals in order, so the result does
//! not depend on the number of threads. Means are taken first and the centred sums in a
//! second pass, which keeps r accurate where p̄ is large against the spread of p.

use super::elementwise::sigmoid;
use super::{HostSlice, Real};
use crate::backend::{BackendResult, DenoiseLoss, DenoiseLossParams, LossParts};
use rayon::prelude::*;

/// Stable BCE of one logit against a 0/1 label.
fn bce_with_logit(z: f64, y: f64) -> f64 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}

/// The centred sums of the Pearson term and the means they are centred on.
#[derive(Debug, Clone, Copy)]
struct PearsonSums {
    mean_p: f64,
    mean_t: f64,
    s_pt: f64,
    s_pp: f64,
    s_tt: f64,
}

impl PearsonSums {
    fn denominator(&self) -> f64 {
        (self.s_pp * self.s_tt).sqrt() + DenoiseLossParams::PEARSON_EPS
    }
    fn r(&self) -> f64 {
        self.s_pt / self.denominator()
    }
    /// ∂r/∂p_i.
    fn d_r(&self, p: f64, t: f64) -> f64 {
        let d = self.denominator();
        let spread_term = if self.s_pp * self.s_tt > 0.0 {
            self.s_pt * (p - self.mean_p) * (self.s_tt / self.s_pp).sqrt() / (d * d)
        } else {
            0.0
        };
        (t - self.mean_t) / d - spread_term
    }
}

/// Sums `f` over the cropped centre of every row, in f64, rows in order.
fn sum_rows<const K: usize>(p: &DenoiseLossParams, f: impl Fn(usize) -> [f64; K] + Sync) -> [f64; K] {
    let (lo, hi) = (p.pad, p.len - p.pad);
    let rows: Vec<[f64; K]> = (0..p.batch)
        .into_par_iter()
        .map(|b| {
            let mut acc = [0.0; K];
            for i in b * p.len + lo..b * p.len + hi {
                for (a, v) in acc.iter_mut().zip(f(i)) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    rows.iter().fold([0.0; K], |mut acc, row| {
        acc.iter_mut().zip(row).for_each(|(a, r)| *a += r);
        acc
    })
}

/// Loss and gradients; see the module documentation. `d_reg` and `d_cls` are overwritten
/// (zero in the padding).
pub fn denoise_loss<T: Real, S: HostSlice<T> + ?Sized>(
    p: &DenoiseLossParams,
    b: DenoiseLoss<'_, S>,
) -> BackendResult<LossParts> {
    b.check(p)?;
    let DenoiseLoss { reg, clean, cls_logits, mask, d_reg, d_cls } = b;
    // All (batch, len): regression output, clean coverage, peak logits, 0/1 peak labels.
    let (reg, clean, cls_logits, mask) = (reg.as_ref(), clean.as_ref(), cls_logits.as_ref(), mask.as_ref());
    let (d_reg, d_cls) = (d_reg.as_mut(), d_cls.as_mut());
    let n = (p.batch * p.cropped_len()) as f64;

    let [sum_p, sum_t, sum_sq, sum_bce] = sum_rows(p, |i| {
        let (pi, ti) = (reg[i].as_f64(), clean[i].as_f64());
        [pi, ti, (pi - ti) * (pi - ti), bce_with_logit(cls_logits[i].as_f64(), mask[i].as_f64())]
    });
    let (mean_p, mean_t) = (sum_p / n, sum_t / n);
    let [s_pt, s_pp, s_tt] = sum_rows(p, |i| {
        let (dp, dt) = (reg[i].as_f64() - mean_p, clean[i].as_f64() - mean_t);
        [dp * dt, dp * dp, dt * dt]
    });
    let sums = PearsonSums { mean_p, mean_t, s_pt, s_pp, s_tt };
    let (w_mse, w_r, w_bce) = (p.mse_weight as f64, p.pearson_weight as f64, p.bce_weight as f64);
    let (lo, hi) = (p.pad, p.len - p.pad);
    d_reg.par_chunks_mut(p.len).zip(d_cls.par_chunks_mut(p.len)).enumerate().for_each(|(b, (dr, dc))| {
        for l in 0..p.len {
            if l < lo || l >= hi {
                dr[l] = T::zero();
                dc[l] = T::zero();
                continue;
            }
            let i = b * p.len + l;
            let (pi, ti) = (reg[i].as_f64(), clean[i].as_f64());
            dr[l] = T::of(w_mse * 2.0 * (pi - ti) / n - w_r * sums.d_r(pi, ti));
            let z = cls_logits[i].as_f64();
            dc[l] = T::of(w_bce * (sigmoid(z) - mask[i].as_f64()) / n);
        }
    });

    Ok(loss_parts_from_sums(p, [sum_p, sum_t, sum_sq, sum_bce, s_pt, s_pp, s_tt]))
}

/// The loss from its seven sums `[Σp, Σt, Σ(p−t)², Σbce, S_pt, S_pp, S_tt]`; the CUDA backend
/// computes the same sums on the device and finishes here.
pub(crate) fn loss_parts_from_sums(p: &DenoiseLossParams, s: [f64; 7]) -> LossParts {
    let n = (p.batch * p.cropped_len()) as f64;
    let [sum_p, sum_t, sum_sq, sum_bce, s_pt, s_pp, s_tt] = s;
    let sums = PearsonSums { mean_p: sum_p / n, mean_t: sum_t / n, s_pt, s_pp, s_tt };
    let (mse, r, bce) = (sum_sq / n, sums.r(), sum_bce / n);
    let total = p.mse_weight as f64 * mse + p.pearson_weight as f64 * (1.0 - r) + p.bce_weight as f64 * bce;
    LossParts { total, mse, pearson: r, bce }
}
