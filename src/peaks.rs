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
//! Bounded for any input: coverage must be finite and ≥ 0 (an error names the first run
//! that is not); λ is at most [`MAX_LAMBDA`]; scores come from a table below about 2λ and
//! from a direct sum of the tail beyond, so no coverage, however large, sizes a table.
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
    /// Smallest integer coverage whose score reaches the cutoff (`u64::MAX` when none does).
    pub min_coverage: u64,
    pub peaks: usize,
    pub bases_in_peaks: u64,
}

/// The largest λ the scores support. The table of scores reaches past λ (to about 2λ, beyond
/// which a direct sum converges quickly), so λ bounds its memory: about 50 MB at this λ.
pub const MAX_LAMBDA: f64 = 1e6;

/// Whether the scores support λ: finite, greater than 0, at most [`MAX_LAMBDA`].
fn lambda_supported(lambda: f64) -> bool {
    lambda > 0.0 && lambda <= MAX_LAMBDA
}

/// Scores below this coverage come from a table (for small λ, this much of it at most).
const MIN_TABLE_LEN: usize = 1 << 16;

/// Terms of the direct tail sum: beyond the table each is at most half the one before, so
/// 64 reach below f64's precision; the cap only bounds the loop.
const MAX_TAIL_TERMS: usize = 200;

/// `−log10 P(X > k)` for X ~ Poisson(λ), k = 0, 1, …, computed in log space: from a table
/// for k below about 2λ (at least [`MIN_TABLE_LEN`]), by a direct sum of the upper tail
/// beyond, so that no coverage, however large, makes the table grow with it.
pub struct PoissonScores {
    lambda: f64,
    scores: Vec<f64>,
    /// Coverages below this are scored from the table.
    table_len: usize,
}

impl PoissonScores {
    /// Scores against λ, which must be finite, positive and at most [`MAX_LAMBDA`].
    pub fn new(lambda: f64) -> Result<Self, String> {
        if !lambda_supported(lambda) {
            return Err(format!(
                "λ {lambda:?} is outside what the Poisson score supports: a number greater than 0 and at most {MAX_LAMBDA:e}"
            ));
        }
        let table_len = MIN_TABLE_LEN.max(2 * lambda.ceil() as usize + 2);
        Ok(PoissonScores { lambda, scores: Vec::new(), table_len })
    }

    /// The score of coverage `k`, extending the table as needed.
    pub fn score(&mut self, k: u64) -> f64 {
        if k >= self.table_len as u64 {
            return self.tail_score(k);
        }
        if (k as usize) >= self.scores.len() {
            self.extend_to(k as usize);
        }
        self.scores[k as usize]
    }

    fn extend_to(&mut self, k_max: usize) {
        let lambda = self.lambda;
        let ln_lambda = lambda.ln();
        let n = (k_max + 1).max(self.scores.len() * 2).max(64).min(self.table_len);
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

    /// The score of a coverage past the table (k ≥ 2λ + 2): P(X > k) = P(X = k+1) · Σ_j t_j
    /// with t_0 = 1, t_j = t_{j−1} · λ/(k+1+j), each term at most half the one before.
    fn tail_score(&self, k: u64) -> f64 {
        let lambda = self.lambda;
        let n = k as f64 + 1.0;
        let mut sum = 1.0f64;
        let mut term = 1.0f64;
        for j in 1..=MAX_TAIL_TERMS {
            term *= lambda / (n + j as f64);
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        -(ln_poisson_pmf(lambda, n) + sum.ln()) / std::f64::consts::LN_10
    }
}

/// ln P(X = n) for X ~ Poisson(λ) and large n (≥ [`MIN_TABLE_LEN`]), with Stirling's series
/// for ln n!: n·ln(λ/n) + n − λ − ½·ln(2πn) − 1/(12n) + 1/(360n³).
fn ln_poisson_pmf(lambda: f64, n: f64) -> f64 {
    n * (lambda.ln() - n.ln()) + (n - lambda) - 0.5 * (std::f64::consts::TAU * n).ln() - 1.0 / (12.0 * n)
        + 1.0 / (360.0 * n * n * n)
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

/// The smallest coverage k ≥ 1 whose score reaches `cutoff`, if any does (scores grow with k):
/// searched one by one in the table, as MACS does, then by bisection beyond it.
fn min_coverage(scores: &mut PoissonScores, cutoff: f64) -> Option<u64> {
    let table_len = scores.table_len as u64;
    if let Some(k) = (1..table_len).find(|&k| scores.score(k) >= cutoff) {
        return Some(k);
    }
    if scores.score(u64::MAX) < cutoff {
        return None;
    }
    // score(lo) < cutoff ≤ score(hi)
    let (mut lo, mut hi) = (table_len - 1, u64::MAX);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if scores.score(mid) >= cutoff {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Every run of a coverage track is a finite count ≥ 0, or an error naming its position.
fn check_coverage(track: &Track) -> Result<(), String> {
    for (id, (chrom, _)) in track.sizes().iter().enumerate() {
        if let Some(r) = track.runs(id).iter().find(|r| !(r.value.is_finite() && r.value >= 0.0)) {
            let what = if r.value.is_finite() { "negative" } else { "not a finite number" };
            return Err(format!(
                "{chrom}:{}-{}: coverage {} is {what}; peaks are called on coverage (finite values ≥ 0)",
                r.start, r.end, r.value
            ));
        }
    }
    Ok(())
}

/// Calls peaks on a coverage track; see the module documentation. Memory and time are
/// bounded whatever the values: λ is at most [`MAX_LAMBDA`], and coverage past the score
/// table is scored directly.
pub fn call_peaks(track: &Track, opts: &PeakCallOptions) -> Result<(Vec<NarrowPeak>, PeakCallSummary), String> {
    if let Some(l) = opts.lambda.filter(|&l| !lambda_supported(l)) {
        return Err(format!("--lambda {l:?} must be a number greater than 0 and at most {MAX_LAMBDA:e}"));
    }
    if !opts.cutoff.is_finite() || opts.cutoff < 0.0 {
        return Err(format!("--cutoff {} must be a non-negative number", opts.cutoff));
    }
    check_coverage(track)?;
    let lambda = opts.lambda.unwrap_or_else(|| track.sum() / track.sizes().total() as f64);
    if lambda.is_nan() || lambda <= 0.0 {
        return Err("the track is zero everywhere: no mean coverage to test against (give --lambda)".into());
    }
    if lambda > MAX_LAMBDA {
        return Err(format!(
            "the mean coverage {lambda:?} is above {MAX_LAMBDA:e}, the largest λ the Poisson score supports: is this a coverage track? (or give --lambda)"
        ));
    }
    let mut scores = PoissonScores::new(lambda)?;
    let threshold = min_coverage(&mut scores, opts.cutoff);
    let min_coverage = threshold.unwrap_or(u64::MAX);

    let mut peaks = Vec::new();
    let mut bases = 0u64;
    for (id, (chrom, _)) in track.sizes().iter().enumerate() {
        // Significant runs, as (start, end, coverage).
        let significant: Vec<Run> = match threshold {
            Some(min) => track.runs(id).iter().filter(|r| (r.value as u64) >= min).copied().collect(),
            None => Vec::new(),
        };
        let mut i = 0;
        while i < significant.len() {
            let mut j = i + 1;
            while j < significant.len()
                && (significant[j].start as u64) <= (significant[j - 1].end as u64).saturating_add(opts.max_gap)
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
            let mut s = PoissonScores::new(lambda).expect("λ in range");
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

    /// One chromosome of 10 kb holding `runs`.
    fn track_of(runs: Vec<Run>) -> Track {
        let sizes = ChromSizes::from_pairs([("c".to_string(), 10_000u64)]).expect("one chromosome");
        let mut track = Track::empty(sizes);
        track.set_runs(0, runs);
        track
    }

    /// Past the table the direct tail sum takes over: where both apply (just below the
    /// table's end) they agree, and the scores keep growing across the seam.
    #[test]
    fn the_tail_sum_continues_the_table() {
        for lambda in [1e-6, 0.3, 13.8, 1000.0, 1e5, MAX_LAMBDA] {
            let mut s = PoissonScores::new(lambda).expect("λ in range");
            let end = s.table_len as u64;
            for k in end - 8..end {
                let (table, direct) = (s.score(k), s.tail_score(k));
                // Stirling's series and the summation order differ from the table's sums.
                assert!((table - direct).abs() <= 1e-9 * table.abs(), "λ {lambda} k {k}: table {table} tail {direct}");
            }
            let mut prev = s.score(end - 1);
            for k in [end, end + 1, 2 * end, 1 << 40, u64::MAX / 2, u64::MAX] {
                let score = s.score(k);
                assert!(score.is_finite() && score > prev, "λ {lambda} k {k}: {score} after {prev}");
                prev = score;
            }
        }
    }

    #[test]
    fn lambda_is_checked_with_its_limit() {
        for lambda in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, MAX_LAMBDA * 1.01] {
            let opts = PeakCallOptions { lambda: Some(lambda), ..Default::default() };
            let msg = call_peaks(&track_of(vec![Run { start: 0, end: 10, value: 5.0 }]), &opts).expect_err("λ");
            assert_eq!(msg, format!("--lambda {lambda:?} must be a number greater than 0 and at most 1e6"));
            assert!(PoissonScores::new(lambda).is_err());
        }
        // A mean beyond the limit: the message says so and how to go on.
        let huge = track_of(vec![Run { start: 0, end: 10, value: 3e38 }]);
        let msg = call_peaks(&huge, &PeakCallOptions::default()).expect_err("mean");
        assert!(msg.contains("above 1e6") && msg.contains("--lambda"), "{msg}");
    }

    /// A coverage of 3e38 (or anything past 2^64) is scored without a table sized by it; a
    /// cutoff no coverage reaches calls nothing; a gap of u64::MAX does not overflow.
    #[test]
    fn huge_values_stay_bounded() {
        let start = std::time::Instant::now();
        let track = track_of(vec![Run { start: 100, end: 400, value: 3e38 }, Run { start: 500, end: 900, value: 7.0 }]);
        let opts = PeakCallOptions { lambda: Some(1.0), ..Default::default() };
        let (peaks, _) = call_peaks(&track, &opts).expect("calls");
        assert_eq!(peaks.len(), 2, "{peaks:?}");
        assert!(peaks[0].p_value.is_finite() && peaks[0].p_value > 1e20, "{:?}", peaks[0]);
        assert_eq!(peaks[0].score, 1000);

        let opts = PeakCallOptions { lambda: Some(1.0), cutoff: 1e300, ..Default::default() };
        let (peaks, summary) = call_peaks(&track, &opts).expect("calls");
        assert!(peaks.is_empty() && summary.min_coverage == u64::MAX, "{peaks:?} {summary:?}");

        // A cutoff reached only past the table: found by bisection, and exactly the first.
        let mut s = PoissonScores::new(0.5).expect("λ");
        let k = min_coverage(&mut s, 1e6).expect("reachable");
        assert!(k >= s.table_len as u64 && s.score(k) >= 1e6 && s.score(k - 1) < 1e6, "k {k}");

        let opts = PeakCallOptions { lambda: Some(MAX_LAMBDA), max_gap: u64::MAX, ..Default::default() };
        let (peaks, summary) = call_peaks(&track, &opts).expect("calls");
        assert_eq!(peaks.len(), 1, "{peaks:?}");
        assert!(summary.min_coverage > 1_000_000, "{summary:?}");
        assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
    }

    #[test]
    fn coverage_that_is_not_a_count_is_named() {
        for (value, what) in
            [(f32::INFINITY, "not a finite number"), (f32::NAN, "not a finite number"), (-2.0, "negative")]
        {
            let track = track_of(vec![Run { start: 0, end: 10, value: 1.0 }, Run { start: 20, end: 30, value }]);
            for lambda in [None, Some(1.0)] {
                let opts = PeakCallOptions { lambda, ..Default::default() };
                let msg = call_peaks(&track, &opts).expect_err("bad coverage");
                assert_eq!(
                    msg,
                    format!("c:20-30: coverage {value} is {what}; peaks are called on coverage (finite values ≥ 0)")
                );
            }
        }
    }
}
