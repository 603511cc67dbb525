//! AUROC from histograms of scores: what the single-cell trainer uses instead of sorting
//! batch × cells values per step.
//!
//! Scores (logits) fall into [`ROC_BINS`] bins of width 1/16 over [−16, 16) (beyond: the end
//! bins); positives and negatives are counted per bin. AUROC is then the Mann–Whitney
//! probability with every pair in one bin counted ½ — exact when no two scores of opposite
//! labels share a bin, and within `Σ_b pos_b·neg_b / (2·P·N)` of the exact value otherwise
//! (returned by [`RocHistogram::tie_bound`]).

use crate::backend::ROC_BINS;

/// Positive and negative counts per score bin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocHistogram {
    pub pos: Vec<u64>,
    pub neg: Vec<u64>,
}

impl Default for RocHistogram {
    fn default() -> Self {
        RocHistogram { pos: vec![0; ROC_BINS], neg: vec![0; ROC_BINS] }
    }
}

impl RocHistogram {
    /// From one block of 2·ROC_BINS counts: positives then negatives (the layout of
    /// `Backend::head_roc_histogram`).
    pub fn from_counts(counts: &[u64]) -> Self {
        RocHistogram { pos: counts[..ROC_BINS].to_vec(), neg: counts[ROC_BINS..2 * ROC_BINS].to_vec() }
    }

    /// Adds one block of 2·ROC_BINS counts.
    pub fn add_counts(&mut self, counts: &[u64]) {
        for (a, b) in self.pos.iter_mut().zip(&counts[..ROC_BINS]) {
            *a += b;
        }
        for (a, b) in self.neg.iter_mut().zip(&counts[ROC_BINS..2 * ROC_BINS]) {
            *a += b;
        }
    }

    pub fn add(&mut self, other: &RocHistogram) {
        for (a, b) in self.pos.iter_mut().zip(&other.pos) {
            *a += b;
        }
        for (a, b) in self.neg.iter_mut().zip(&other.neg) {
            *a += b;
        }
    }

    pub fn positives(&self) -> u64 {
        self.pos.iter().sum()
    }

    pub fn negatives(&self) -> u64 {
        self.neg.iter().sum()
    }

    /// AUROC (NaN when a class is missing).
    pub fn auroc(&self) -> f64 {
        let (p, n) = (self.positives(), self.negatives());
        if p == 0 || n == 0 {
            return f64::NAN;
        }
        let mut below = 0u64;
        let mut sum = 0.0f64;
        for b in 0..ROC_BINS {
            sum += self.pos[b] as f64 * (below as f64 + 0.5 * self.neg[b] as f64);
            below += self.neg[b];
        }
        sum / (p as f64 * n as f64)
    }

    /// The most the binned AUROC can differ from the exact one.
    pub fn tie_bound(&self) -> f64 {
        let (p, n) = (self.positives(), self.negatives());
        if p == 0 || n == 0 {
            return f64::NAN;
        }
        let ties: f64 = self.pos.iter().zip(&self.neg).map(|(&a, &b)| a as f64 * b as f64).sum();
        ties / (2.0 * p as f64 * n as f64)
    }
}

/// The mean and count of the finite AUROCs of many histograms (rows with one class only are
/// left out, as scBasset's per-peak and per-cell AUROC do).
pub fn mean_auroc<'a>(hists: impl IntoIterator<Item = &'a RocHistogram>) -> (f64, usize) {
    let (mut sum, mut n) = (0.0, 0usize);
    for h in hists {
        let a = h.auroc();
        if a.is_finite() {
            sum += a;
            n += 1;
        }
    }
    (if n == 0 { f64::NAN } else { sum / n as f64 }, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::roc_bin;
    use crate::eval::metrics::auroc_auprc;

    #[test]
    fn binned_auroc_matches_the_exact_one_within_the_tie_bound() {
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        let mut h = RocHistogram::default();
        for _ in 0..20_000 {
            let label = next() < 0.2;
            let score = (next() * 6.0 - 3.0 + if label { 1.0 } else { 0.0 }) as f32;
            scores.push(score);
            labels.push(if label { 1.0 } else { 0.0 });
            let b = roc_bin(score);
            if label {
                h.pos[b] += 1;
            } else {
                h.neg[b] += 1;
            }
        }
        let (exact, _) = auroc_auprc(&scores, &labels);
        let binned = h.auroc();
        assert!((exact - binned).abs() <= h.tie_bound() + 1e-12, "{exact} vs {binned} (bound {})", h.tie_bound());
        assert!(h.tie_bound() < 0.01);
        assert!((0.6..0.8).contains(&exact), "{exact}");
    }

    #[test]
    fn hand_checked_cases() {
        let mut h = RocHistogram::default();
        h.pos[10] = 1;
        h.neg[5] = 1;
        assert_eq!(h.auroc(), 1.0);
        h.neg[10] = 1; // one tie: (1 + 0.5) / 2
        assert_eq!(h.auroc(), 0.75);
        h.pos.fill(0);
        assert!(h.auroc().is_nan());
        let (m, n) = mean_auroc([&h, &RocHistogram::default()]);
        assert!(m.is_nan() && n == 0);
    }
}
