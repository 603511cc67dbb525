//! Peaks from per-base peak probabilities, streamed chromosome by chromosome.
//!
//! Bases with probability ≥ threshold form regions; regions at most `max_gap` bases apart
//! are joined; regions shorter than `min_length` are dropped. narrowPeak columns: score
//! `round(1000 × max probability)`, signalValue the mean denoised signal over the region,
//! pValue the maximum probability, qValue −1, peak the offset of the first base with the
//! maximum probability.

use crate::io::bed::NarrowPeak;

/// Settings of the probability peak caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbPeakOptions {
    pub threshold: f32,
    pub max_gap: u64,
    pub min_length: u64,
}

impl Default for ProbPeakOptions {
    fn default() -> Self {
        ProbPeakOptions { threshold: 0.5, max_gap: 0, min_length: 20 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Open {
    start: u64,
    end: u64,
    max_prob: f32,
    summit: u64,
    signal_sum: f64,
    bases: u64,
}

/// Consumes probabilities and signal in position order and collects peaks.
pub struct ProbPeakCaller {
    opts: ProbPeakOptions,
    chrom: Option<String>,
    open: Option<Open>,
    pub peaks: Vec<NarrowPeak>,
}

impl ProbPeakCaller {
    pub fn new(opts: ProbPeakOptions) -> Self {
        ProbPeakCaller { opts, chrom: None, open: None, peaks: Vec::new() }
    }

    /// Values of `chrom` from `start` on; chunks of one chromosome must come in order.
    pub fn push(&mut self, chrom: &str, start: u64, probs: &[f32], signal: &[f32]) {
        if self.chrom.as_deref() != Some(chrom) {
            self.finish_chrom();
            self.chrom = Some(chrom.to_string());
        }
        for (i, (&p, &s)) in probs.iter().zip(signal).enumerate() {
            if p < self.opts.threshold {
                continue;
            }
            let pos = start + i as u64;
            match &mut self.open {
                Some(o) if pos <= o.end + self.opts.max_gap => {
                    o.end = pos + 1;
                    if p > o.max_prob {
                        o.max_prob = p;
                        o.summit = pos;
                    }
                    o.signal_sum += s as f64;
                    o.bases += 1;
                }
                _ => {
                    self.close();
                    self.open = Some(Open {
                        start: pos,
                        end: pos + 1,
                        max_prob: p,
                        summit: pos,
                        signal_sum: s as f64,
                        bases: 1,
                    });
                }
            }
        }
    }

    /// `len` bases of one probability and signal from `start` on: the same peaks as
    /// [`ProbPeakCaller::push`] of that many equal values, in constant time (the signal sum
    /// bit for bit when the signal is 0, as where skipping writes a constant).
    pub fn push_constant(&mut self, chrom: &str, start: u64, len: u64, prob: f32, signal: f32) {
        if self.chrom.as_deref() != Some(chrom) {
            self.finish_chrom();
            self.chrom = Some(chrom.to_string());
        }
        if len == 0 || prob < self.opts.threshold {
            return;
        }
        // The first base opens or extends a region exactly as `push` would; the rest extend it.
        self.push(chrom, start, &[prob], &[signal]);
        if let Some(o) = &mut self.open {
            o.end = start + len;
            o.signal_sum += (len - 1) as f64 * signal as f64;
            o.bases += len - 1;
        }
    }

    fn close(&mut self) {
        let (Some(o), Some(chrom)) = (self.open.take(), self.chrom.as_ref()) else { return };
        if o.end - o.start >= self.opts.min_length {
            self.peaks.push(NarrowPeak {
                chrom: chrom.clone(),
                start: o.start,
                end: o.end,
                name: format!("peak_{}", self.peaks.len() + 1),
                score: (1000.0 * o.max_prob).round() as u32,
                signal_value: o.signal_sum / o.bases as f64,
                p_value: o.max_prob as f64,
                q_value: -1.0,
                peak: o.summit - o.start,
            });
        }
    }

    /// Closes the current chromosome's last region.
    pub fn finish_chrom(&mut self) {
        self.close();
    }

    pub fn finish(mut self) -> Vec<NarrowPeak> {
        self.close();
        self.peaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_join_gaps_drop_short_ones_and_survive_chunking() {
        let probs: Vec<f32> = (0..100)
            .map(|i| if (10..40).contains(&i) || (43..60).contains(&i) || (80..85).contains(&i) { 0.9 } else { 0.1 })
            .collect();
        let mut p = probs.clone();
        p[50] = 0.99;
        let signal = vec![2.0f32; 100];
        let opts = ProbPeakOptions { threshold: 0.5, max_gap: 3, min_length: 20 };
        let mut whole = ProbPeakCaller::new(opts);
        whole.push("c", 1000, &p, &signal);
        let whole = whole.finish();
        let mut pieces = ProbPeakCaller::new(opts);
        for k in (0..100).step_by(7) {
            let e = (k + 7).min(100);
            pieces.push("c", 1000 + k as u64, &p[k..e], &signal[k..e]);
        }
        assert_eq!(pieces.finish(), whole);
        assert_eq!(whole.len(), 1);
        let peak = &whole[0];
        assert_eq!((peak.start, peak.end, peak.peak, peak.score), (1010, 1060, 40, 990));
        assert_eq!(peak.signal_value, 2.0);
    }
}
