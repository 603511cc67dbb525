//! The baseline peak caller AtacWorks' recipe uses for clean labels, built in.
//!
//! Per base, the −log10 Poisson p-value of the coverage against one genome-wide λ (the mean
//! coverage, or a given λ), as MACS2 `bdgcmp -m ppois` against a flat control: with k the
//! coverage rounded down to an integer, `score = −log10 P(X > k)`, X ~ Poisson(λ) (MACS's
//! upper tail). Then the `bdgpeakcall` rules: bases with score ≥ cutoff form regions; regions
//! separated by at most `max_gap` bases are joined; regions shorter than `min_length` are
//! dropped; the summit is the centre of the first run of maximal score. Bases with zero
//! coverage are never called (at tiny λ, `P(X > 0)` alone would pass the cutoff).
//!
//! narrowPeak columns: name `peak_N`; score `min(1000, ⌊10·score⌋)` at the summit (MACS
//! writes ⌊10·score⌋); signalValue the fold enrichment (coverage / λ) at the summit; pValue
//! the summit's score; qValue −1; peak the summit's offset from the start.

use crate::io::bed::NarrowPeak;
use crate::track::{Run, Track};

/// Settings of [`call_peaks`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakCallOptions {
    /// λ of the flat control; `None`: the track's mean coverage over the whole genome.
    pub lambda: Option<f64>,
    /// Minimum −log10 p (default 3).
    pub cutoff: f64,
    /// Regions at most this far apart are joined (default 30, as bdgpeakcall).
    pub max_gap: u64,
    /// Shorter regions are dropped (default 200, as bdgpeakcall).
    pub min_length: u64,
}

impl Default for PeakCallOptions {
    fn default() -> Self {
        PeakCallOptions { lambda: None, cutoff: 3.0, max_gap: 30, min_length: 200 }
    }
}

/// What [`call_peaks`] used and found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakCallSummary {
    pub lambda: f64,
    /// Smallest integer coverage whose score reaches the cutoff.
    pub min_coverage: u64,
    pub peaks: usize,
    pub bases_in_peaks: u64,
}

/// `−log10 P(X > k)` for X ~ Poisson(λ), k = 0, 1, …, computed in log space.
pub struct PoissonScores {
    lambda: f64,
    scores: Vec<f64>,
}

impl PoissonScores {
    pub fn new(lambda: f64) -> Self {
        PoissonScores { lambda, scores: Vec::new() }
    }

    /// The score of coverage `k`, extending the table as needed.
    pub fn score(&mut self, k: u64) -> f64 {
        if (k as usize) >= self.scores.len() {
            self.extend_to(k as usize);
        }
        self.scores[k as usize]
    }

    fn extend_to(&mut self, k_max: usize) {
        let lambda = self.lambda;
        let ln_lambda = lambda.ln();
        let n = (k_max + 1).max(self.scores.len() * 2).max(64);
        // ln P(X = i) for i up to where the terms are negligible beyond n.
        let tail_end = n + 64 + (10.0 * lambda.sqrt()) as usize + lambda as usize;
        let mut ln_pmf = Vec::with_capacity(tail_end + 1);
        let mut ln_fact = 0.0f64;
        for i in 0..=tail_end {
            if i > 0 {
                ln_fact += (i as f64).ln();
            }
            ln_pmf.push(-lambda + i as f64 * ln_lambda - ln_fact);
        }
        // ln P(X > k) = logsumexp(ln_pmf[k+1..]); summed from the far end (the small terms
        // first). Where the tail is most of the mass, 1 − P(X ≤ k) is more accurate.
        let mut scores = vec![0.0; n];
        let mut acc = f64::NEG_INFINITY;
        for i in (1..=tail_end).rev() {
            acc = log_add(acc, ln_pmf[i]);
            if i - 1 < n {
                scores[i - 1] = acc;
            }
        }
        let mut lower = f64::NEG_INFINITY; // ln P(X ≤ k)
        for (k, score) in scores.iter_mut().enumerate() {
            lower = log_add(lower, ln_pmf[k]);
            let ln_upper = if (k as f64) < lambda { (-lower.exp()).ln_1p() } else { *score };
            *score = -ln_upper / std::f64::consts::LN_10;
        }
        self.scores = scores;
    }
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// Calls peaks on a coverage track; see the module documentation.
pub fn call_peaks(track: &Track, opts: &PeakCallOptions) -> Result<(Vec<NarrowPeak>, PeakCallSummary), String> {
    let genome = track.sizes().total() as f64;
    let lambda = match opts.lambda {
        Some(l) if l > 0.0 && l.is_finite() => l,
        Some(l) => return Err(format!("--lambda {l} must be a positive number")),
        None => track.sum() / genome,
    };
    if !(lambda > 0.0) {
        return Err("the track is zero everywhere: no mean coverage to test against (give --lambda)".into());
    }
    if !opts.cutoff.is_finite() || opts.cutoff < 0.0 {
        return Err(format!("--cutoff {} must be a non-negative number", opts.cutoff));
    }
    let mut scores = PoissonScores::new(lambda);
    let min_coverage = (1..u64::MAX).find(|&k| scores.score(k) >= opts.cutoff).unwrap_or(u64::MAX);

    let mut peaks = Vec::new();
    let mut bases = 0u64;
    for (id, (chrom, _)) in track.sizes().iter().enumerate() {
        // Significant runs, as (start, end, coverage).
        let significant: Vec<Run> =
            track.runs(id).iter().filter(|r| r.value >= 0.0 && (r.value as u64) >= min_coverage).copied().collect();
        let mut i = 0;
        while i < significant.len() {
            let mut j = i + 1;
            while j < significant.len() && (significant[j].start as u64) <= significant[j - 1].end as u64 + opts.max_gap
            {
                j += 1;
            }
            let (start, end) = (significant[i].start as u64, significant[j - 1].end as u64);
            if end - start >= opts.min_length {
                let summit_run = significant[i..j].iter().fold(significant[i], |best, r| {
                    if (r.value as u64) > (best.value as u64) {
                        *r
                    } else {
                        best
                    }
                });
                let coverage = summit_run.value as u64;
                let score = scores.score(coverage);
                let summit = (summit_run.start as u64 + summit_run.end as u64 - 1) / 2;
                peaks.push(NarrowPeak {
                    chrom: chrom.to_string(),
                    start,
                    end,
                    name: format!("peak_{}", peaks.len() + 1),
                    score: (10.0 * score).min(1000.0) as u32,
                    signal_value: summit_run.value as f64 / lambda,
                    p_value: score,
                    q_value: -1.0,
                    peak: summit - start,
                });
                bases += end - start;
            }
            i = j;
        }
    }
    let summary = PeakCallSummary { lambda, min_coverage, peaks: peaks.len(), bases_in_peaks: bases };
    Ok((peaks, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ChromSizes;

    /// P(X > k): the terms k+1, k+2, … summed directly (accurate far in the tail, where
    /// 1 − cdf would cancel).
    fn upper_tail(lambda: f64, k: u64) -> f64 {
        let mut pmf = (-lambda).exp();
        for i in 1..=k + 1 {
            pmf *= lambda / i as f64;
        }
        let mut sum = 0.0;
        for i in k + 1..k + 400 {
            sum += pmf;
            pmf *= lambda / (i + 1) as f64;
        }
        sum
    }

    #[test]
    fn scores_match_direct_summation() {
        for lambda in [0.3, 2.0, 13.8, 40.0] {
            let mut s = PoissonScores::new(lambda);
            for k in 0..60u64 {
                let want = upper_tail(lambda, k);
                if want > 1e-300 {
                    let want = -want.log10();
                    assert!(
                        (s.score(k) - want).abs() < 1e-6 * want.max(1.0),
                        "λ {lambda} k {k}: {} vs {want}",
                        s.score(k)
                    );
                }
            }
            // Far in the tail the table keeps going where 1 − cdf underflows.
            assert!(s.score(1000) > s.score(500) && s.score(500).is_finite());
        }
    }

    #[test]
    fn regions_join_across_small_gaps_and_short_ones_drop() {
        let sizes = ChromSizes::from_pairs([("c".to_string(), 10_000u64)]).expect("one chromosome");
        let mut track = Track::empty(sizes);
        // Background 1 everywhere would make λ ≈ 1; peaks of 20 over it.
        let runs = vec![
            Run { start: 0, end: 1000, value: 1.0 },
            Run { start: 1000, end: 1150, value: 20.0 },
            Run { start: 1150, end: 1170, value: 1.0 }, // gap 20 ≤ 30: joined
            Run { start: 1170, end: 1300, value: 25.0 },
            Run { start: 1300, end: 5000, value: 1.0 },
            Run { start: 5000, end: 5100, value: 30.0 }, // 100 bases < 200: dropped
            Run { start: 5100, end: 10_000, value: 1.0 },
        ];
        track.set_runs(0, runs);
        let (peaks, summary) = call_peaks(&track, &PeakCallOptions::default()).expect("calls");
        assert_eq!(peaks.len(), 1, "{peaks:?}");
        assert_eq!((peaks[0].start, peaks[0].end), (1000, 1300));
        assert_eq!(peaks[0].start + peaks[0].peak, (1170 + 1299) / 2);
        assert!(summary.lambda > 1.0 && summary.min_coverage > 1);
    }
}
