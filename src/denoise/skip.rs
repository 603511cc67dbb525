//! Exact skipping of empty coverage at inference.
//!
//! DenoiseNet's regression part has no biases, so where the input is zero over a base's whole
//! receptive field (±R, [`DenoiseConfig::receptive_radius`]) its regression output is exactly
//! 0 and its peak logit is a constant of the model, Z (the classification part's biases acting
//! on a zero input). `denoise run` and `denoise eval --model` therefore compute only T, the
//! bases whose receptive field holds signal: T's runs are laid end to end (with a margin m at
//! the two outer ends) and cut into rows like a chromosome; everywhere else the output is
//! (0, σ(Z)), handed on as one constant piece.
//!
//! Why the result is bit for bit the dense one, given `pad ≥ R` (checked; otherwise the dense
//! output itself depends on the tiling and [`SkipPlan::new`] declines):
//! * Every convolution of the CPU backend sums a value's products in an order fixed by the
//!   shape alone, so a value is the same bits wherever it is computed when every operand is.
//! * A base's output depends on the input within ±R and, near a row's edge, on the zero
//!   padding there. A run of T begins and ends with R bases of zero input (T = signal ⊕ R),
//!   so runs laid end to end hold, within R of every base of T, what the genome holds.
//! * At the two outer edges of the runs laid end to end (zero padding, where the genome goes
//!   on), the regression part's activations are 0 in the genome too: they reach at most
//!   R_reg < R + m from signal. The classification part's are not (its biases); its first
//!   convolution reads the regression output (0 there), so the padding error enters at its
//!   second convolution and reaches `m = R_cls − r` bases inward (r: one convolution's
//!   reach), never into T.
//! * Z is computed once, on a zero row, at a position more than R from its edges: the same
//!   operations on the same operands as any dense position outside T.

use super::infer::Span;
use crate::backend::Backend;
use crate::data::TrackSet;
use crate::error::BackendError;
use crate::models::{DenoiseConfig, DenoiseNet};
use crate::nn::download_f32;
use crate::store::{ShardSlice, ShardValues, OCCUPANCY_BLOCK};
use crate::Error;
use rayon::prelude::*;

/// Window rows are rounded up to a multiple of this many bases (the fast convolution's tile).
const ROUND: usize = 64;
/// Shortest window row (the CPU's direct convolution path needs rows of at least 256 bases:
/// every row of a run must take the same path).
const MIN_ROW: usize = 256;

/// What skipping needs to know about a model: its reach and its output on a zero input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkipPlan {
    /// R: a base's output depends on the input within ±R.
    pub radius: usize,
    /// m: the margin around T that absorbs the classification part's edge error.
    pub margin: usize,
    /// Z: the peak logit where the input is zero over the whole receptive field.
    pub zero_logit: f32,
}

/// Counts of one run: bases output, bases whose receptive field holds signal (|T|), and
/// bases the network ran on (window rows, margins and rounding included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipStats {
    pub bases: u64,
    pub signal_bases: u64,
    pub network_bases: u64,
}

/// The margin m of a configuration: the classification part's reach minus its first
/// convolution's.
pub fn margin(cfg: &DenoiseConfig) -> usize {
    let r = ((cfg.cls_kernel.saturating_sub(1)) * cfg.cls_dilation).div_ceil(2);
    (cfg.cls_blocks * 3 * r).saturating_sub(r)
}

impl SkipPlan {
    /// The plan of a model run with `pad` bases of context; None where skipping could not be
    /// exact (padding shorter than the receptive field) or the model's regression output on
    /// zero input is not 0.
    pub fn new<B: Backend>(backend: &B, net: &DenoiseNet<B>, pad: usize) -> Result<Option<SkipPlan>, BackendError> {
        let cfg = net.config;
        let radius = cfg.receptive_radius();
        if pad < radius {
            return Ok(None);
        }
        let len = (2 * radius + ROUND).next_multiple_of(ROUND).max(MIN_ROW);
        let zeros = backend.zeros(cfg.in_channels * len)?;
        let out = net.infer(backend, &zeros, 1, len)?;
        let (reg, logits) = (download_f32(backend, &out.reg)?, download_f32(backend, &out.logits)?);
        let centre = len / 2;
        if reg[centre].to_bits() != 0 || !logits[centre].is_finite() {
            return Ok(None);
        }
        Ok(Some(SkipPlan { radius, margin: margin(&cfg), zero_logit: logits[centre] }))
    }
}

/// `runs` widened by `by` on both sides, clipped to `lo..hi`, merged where they overlap or touch.
fn dilate(runs: &[(i64, i64)], by: i64, lo: i64, hi: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &(s, e) in runs {
        let (s, e) = ((s - by).max(lo), (e + by).min(hi));
        if s >= e {
            continue;
        }
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// A piece of a span's output, in position order: `Constant` where no signal reaches (the
/// regression output 0, the probability σ(Z)), `Values` where the network ran.
pub enum Piece<'a> {
    Constant { chrom: usize, start: u64, len: u64, prob: f32 },
    Values { chrom: usize, start: u64, reg: &'a [f32], prob: &'a [f32] },
}

/// Signal runs of chromosome `chrom` over `[lo, hi)` (clipped to the chromosome), any channel.
fn span_signal(set: &TrackSet, chrom: usize, len: u64, lo: i64, hi: i64) -> Result<Vec<(i64, i64)>, Error> {
    let (lo, hi) = (lo.clamp(0, len as i64) as usize, hi.clamp(0, len as i64) as usize);
    let mut values: Vec<&[f32]> = Vec::with_capacity(set.inputs.len());
    let mut copies: Vec<Vec<f32>> = Vec::new();
    for input in &set.inputs {
        match input.chrom_values(chrom) {
            // Inference shards are f32 (open_coverage): read in place.
            ShardValues::F32(v) => values.push(bytemuck::cast_slice(v)),
            other => {
                let mut c = vec![0.0f32; other.len()];
                ShardSlice { left_zeros: 0, values: other, right_zeros: 0 }.to_f32(&mut c);
                copies.push(c);
            }
        }
    }
    values.extend(copies.iter().map(Vec::as_slice));
    // Non-zero bits of any channel, 64 positions to a mask word (branch-free, vectorised);
    // runs open and close at the mask's bit transitions. Pieces of the span are scanned on
    // every thread and their runs joined where they touch.
    let on = |l: usize| values.iter().any(|v| v[l].to_bits() << 1 != 0);
    let word = |b: usize| -> u64 {
        let mut m = 0u64;
        for v in &values {
            for (i, x) in v[b..b + 64].iter().enumerate() {
                m |= u64::from(x.to_bits() << 1 != 0) << i;
            }
        }
        m
    };
    // Blocks the input check found all zero, in every channel (None: not recorded).
    let occupancy: Option<Vec<&[u64]>> = set.inputs.iter().map(|i| i.occupancy(chrom)).collect();
    let big_empty = |l: usize| {
        occupancy.as_ref().is_some_and(|o| {
            let k = l / OCCUPANCY_BLOCK;
            o.iter().all(|bits| bits.get(k / 64).is_some_and(|w| w & (1 << (k % 64)) == 0))
        })
    };
    let scan = |lo: usize, hi: usize| -> Vec<(i64, i64)> {
        let mut runs: Vec<(i64, i64)> = Vec::new();
        let mut open: Option<usize> = None;
        let mut l = lo;
        while l < hi {
            if open.is_none() && l.is_multiple_of(OCCUPANCY_BLOCK) && l + OCCUPANCY_BLOCK <= hi && big_empty(l) {
                l += OCCUPANCY_BLOCK;
                continue;
            }
            if l + 64 <= hi {
                let m = word(l);
                let mut pos = 0u32;
                while pos < 64 {
                    // The next transition: a set bit while closed, a clear bit while open.
                    let rest = if open.is_none() { m >> pos } else { !m >> pos };
                    if rest == 0 {
                        break;
                    }
                    pos += rest.trailing_zeros();
                    match open {
                        None => open = Some(l + pos as usize),
                        Some(s) => {
                            runs.push((s as i64, (l + pos as usize) as i64));
                            open = None;
                        }
                    }
                }
                l += 64;
                continue;
            }
            match (on(l), open) {
                (true, None) => open = Some(l),
                (false, Some(s)) => {
                    runs.push((s as i64, l as i64));
                    open = None;
                }
                _ => {}
            }
            l += 1;
        }
        if let Some(s) = open {
            runs.push((s as i64, hi as i64));
        }
        runs
    };
    const PIECE: usize = 1 << 20;
    let pieces: Vec<Vec<(i64, i64)>> =
        (lo..hi).step_by(PIECE).collect::<Vec<_>>().into_par_iter().map(|p| scan(p, (p + PIECE).min(hi))).collect();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for (s, e) in pieces.into_iter().flatten() {
        match runs.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => runs.push((s, e)),
        }
    }
    Ok(runs)
}

/// Denoises `spans` computing only where signal reaches, handing the output to `sink` in
/// position order as [`Piece`]s; the values are the same bits as the dense path's.
///
/// A span's runs of T are laid end to end into one shorter sequence (with m more bases at its
/// two outer ends), which is then cut into rows as long as a dense batch of `batch` intervals
/// of `interval` + 2·`pad` bases, with R bases of context at each cut. Laying runs end to end
/// is exact: each begins and ends with R bases of zero input, so within R of any base of T
/// the sequence holds what the genome holds.
#[allow(clippy::too_many_arguments)]
pub fn denoise_spans_skipping<B: Backend>(
    backend: &B,
    net: &DenoiseNet<B>,
    plan: &SkipPlan,
    set: &TrackSet,
    spans: &[Span],
    interval: usize,
    pad: usize,
    batch: usize,
    sink: &mut dyn FnMut(Piece) -> Result<(), Error>,
) -> Result<SkipStats, Error> {
    let (r, m) = (plan.radius as i64, plan.margin as i64);
    // One row per network call, as many bases as a dense batch: R of context at each end.
    let core = (batch.max(1) * (interval + 2 * pad)).saturating_sub(2 * plan.radius).max(interval).max(1);
    let zero_prob = crate::backend::cpu::sigmoid(plan.zero_logit);
    let mut stats = SkipStats::default();
    for span in spans {
        let (start, end) = (span.start as i64, span.end as i64);
        let len = set.inputs[0].sizes().length(span.chrom);
        stats.bases += (end - start) as u64;
        // Signal that reaches the span, T, and the windows around T that hold a target, cut
        // R outside the span (a cut with R of context is exact, as in the dense tiling).
        let signal = span_signal(set, span.chrom, len, start - 2 * r - m, end + 2 * r + m)?;
        let reach = dilate(&signal, r, i64::MIN / 4, i64::MAX / 4);
        let targets = dilate(&reach, 0, start, end);
        stats.signal_bases += targets.iter().map(|t| (t.1 - t.0) as u64).sum::<u64>();
        let mut windows: Vec<(i64, i64)> = reach
            .iter()
            .filter(|&&(ws, we)| ws < end && we > start)
            .map(|&(ws, we)| (ws.max(start - r), we.min(end + r)))
            .collect();
        if let (Some(first), Some(last)) = (windows.first().copied(), windows.last().copied()) {
            let n = windows.len();
            windows[0].0 = first.0 - m;
            windows[n - 1].1 = last.1 + m;
        }
        // The windows end to end: window i starts at `virt[i]` in the sequence.
        let mut virt = Vec::with_capacity(windows.len() + 1);
        let mut total = 0usize;
        for w in &windows {
            virt.push(total);
            total += (w.1 - w.0) as usize;
        }
        virt.push(total);
        let to_virtual = |g: i64| -> usize {
            let i = windows.partition_point(|w| w.1 <= g);
            virt[i] + (g - windows[i].0) as usize
        };
        let rows = total.div_ceil(core);
        let mut cursor = start;
        let mut t = 0;
        for k in 0..rows {
            let (v0, v1) = (k * core, ((k + 1) * core).min(total));
            let row_len = (v1 - v0 + 2 * plan.radius).next_multiple_of(ROUND).max(MIN_ROW);
            let (reg, logits) = run_row(backend, net, set, span.chrom, &windows, &virt, v0 as i64 - r, row_len)?;
            stats.network_bases += row_len as u64;
            while t < targets.len() {
                let (a, b) = (targets[t].0.max(cursor), targets[t].1);
                let va = to_virtual(a);
                if va >= v1 {
                    break;
                }
                if a > cursor {
                    sink(Piece::Constant {
                        chrom: span.chrom,
                        start: cursor as u64,
                        len: (a - cursor) as u64,
                        prob: zero_prob,
                    })?;
                }
                let vb = (va + (b - a) as usize).min(v1);
                let src = va - v0 + plan.radius;
                let probs: Vec<f32> =
                    logits[src..src + (vb - va)].iter().map(|&z| crate::backend::cpu::sigmoid(z)).collect();
                sink(Piece::Values {
                    chrom: span.chrom,
                    start: a as u64,
                    reg: &reg[src..src + (vb - va)],
                    prob: &probs,
                })?;
                cursor = a + (vb - va) as i64;
                if cursor < b {
                    break;
                }
                t += 1;
            }
        }
        if end > cursor {
            sink(Piece::Constant {
                chrom: span.chrom,
                start: cursor as u64,
                len: (end - cursor) as u64,
                prob: zero_prob,
            })?;
        }
    }
    Ok(stats)
}

/// The network on one row of a span's windows laid end to end (`virt`: each window's start
/// in that sequence, then its length): the sequence's `[from, from + len)`, zeros beyond its
/// ends. Returns the regression output and the logits.
#[allow(clippy::too_many_arguments)]
fn run_row<B: Backend>(
    backend: &B,
    net: &DenoiseNet<B>,
    set: &TrackSet,
    chrom: usize,
    windows: &[(i64, i64)],
    virt: &[usize],
    from: i64,
    len: usize,
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let channels = set.inputs.len();
    let name = set.inputs[0].sizes().name(chrom).to_string();
    let total = *virt.last().unwrap_or(&0) as i64;
    let mut host = vec![0.0f32; channels * len];
    let (lo, hi) = (from.max(0), (from + len as i64).min(total));
    let mut i = virt.partition_point(|&v| (v as i64) <= lo).saturating_sub(1);
    let mut v = lo;
    while v < hi && i < windows.len() {
        let seg_end = (virt[i + 1] as i64).min(hi);
        if seg_end > v {
            let g = windows[i].0 + (v - virt[i] as i64);
            let n = (seg_end - v) as usize;
            for (c, input) in set.inputs.iter().enumerate() {
                let at = c * len + (v - from) as usize;
                input.slice(&name, g, g + n as i64)?.to_f32(&mut host[at..at + n]);
            }
            v = seg_end;
        }
        i += 1;
    }
    let x = backend.upload_f32(&host)?;
    let out = net.infer(backend, &x, 1, len)?;
    Ok((download_f32(backend, &out.reg)?, download_f32(backend, &out.logits)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_widen_clip_and_merge() {
        assert_eq!(dilate(&[(1, 3), (7, 8)], 1, 0, 10), vec![(0, 4), (6, 9)]);
        assert_eq!(dilate(&[(1, 3), (7, 8)], 2, 0, 10), vec![(0, 10)]);
        assert_eq!(dilate(&[(1, 3), (7, 8)], 1, 5, 8), vec![(6, 8)]);
        assert_eq!(dilate(&[(-5, 3), (70, 80)], 10, -12, 85), vec![(-12, 13), (60, 85)]);
    }

    /// The signal runs found through the input check's record of empty blocks are those found
    /// value by value: two channels, runs at block edges, lone values, a chromosome's end,
    /// spans that start and end inside blocks and cross the 1 Mb pieces scanned in parallel.
    #[test]
    fn signal_through_the_occupancy_record_equals_a_scan_of_every_value() {
        use crate::io::ChromSizes;
        use crate::store::shard::write_shard;
        use crate::store::{Dtype, TrackShard};
        use crate::track::{Run, Track};
        use std::sync::Arc;
        let dir = crate::io::scratch_dir("skip-occupancy");
        let len = 3_000_000u64;
        let sizes = ChromSizes::from_pairs([("a".to_string(), len), ("b".to_string(), 5000)]).expect("sizes");
        let run = |start: u32, end: u32| Run { start, end, value: 1.5 };
        let mut one = Track::empty(sizes.clone());
        one.set_runs(
            0,
            vec![
                run(4095, 4097),
                run(8192, 8193),
                run(1_048_570, 1_048_580),
                run(2_000_000, 2_100_000),
                run(2_999_999, 3_000_000),
            ],
        );
        one.set_runs(1, vec![run(0, 1)]);
        let mut two = Track::empty(sizes.clone());
        two.set_runs(0, vec![run(12_287, 12_288), run(2_099_000, 2_200_000)]);
        let mut paths = Vec::new();
        for (i, t) in [one, two].iter().enumerate() {
            let p = dir.join(format!("{i}.cxtrack"));
            write_shard(&p, t, Dtype::F32, None).expect("shard");
            paths.push(p);
        }
        let checked = TrackSet {
            inputs: paths.iter().map(|p| crate::data::open_coverage(p, &sizes, "test").expect("open")).collect(),
            clean: None,
            peaks: None,
        };
        let plain = TrackSet {
            inputs: paths.iter().map(|p| Arc::new(TrackShard::open(p).expect("open"))).collect(),
            clean: None,
            peaks: None,
        };
        assert!(checked.inputs[0].occupancy(0).is_some() && plain.inputs[0].occupancy(0).is_none());
        // The writer's record, adopted, is the check's scan.
        for (i, p) in paths.iter().enumerate() {
            let mut adopted = TrackShard::open(p).expect("open");
            assert!(adopted.adopt_recorded_scan().expect("adopt"));
            for id in 0..2 {
                assert_eq!(adopted.occupancy(id), checked.inputs[i].occupancy(id), "input {i}, chromosome {id}");
            }
        }
        for (lo, hi) in [(0, len as i64), (-500, 5000), (4096, 12_288), (4097, 2_150_001), (1_048_575, 3_100_000)] {
            let a = span_signal(&checked, 0, len, lo, hi).expect("signal");
            let b = span_signal(&plain, 0, len, lo, hi).expect("signal");
            assert_eq!(a, b, "{lo}..{hi}");
            assert!(!a.is_empty());
        }
        let all = span_signal(&checked, 0, len, 0, len as i64).expect("signal");
        assert_eq!(
            all,
            vec![
                (4095, 4097),
                (8192, 8193),
                (12_287, 12_288),
                (1_048_570, 1_048_580),
                (2_000_000, 2_200_000),
                (2_999_999, 3_000_000)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn margins_follow_the_configuration() {
        // AtacWorks: r = 200, two classification blocks: 6·200 − 200.
        assert_eq!(margin(&DenoiseConfig::default()), 1000);
        assert_eq!(DenoiseConfig::default().receptive_radius(), 4200);
        assert_eq!(margin(&DenoiseConfig::demo()), 80);
    }
}
