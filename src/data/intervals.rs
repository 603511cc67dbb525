//! Tiling chromosomes into fixed-length intervals that cover every base.
//!
//! Intervals of `len` bases start at 0, len, 2·len, …; when a chromosome's length is not a
//! multiple of `len`, one more interval ends exactly at the chromosome's end (overlapping the
//! one before: its first bases were already covered), so the tail is never dropped. A
//! chromosome shorter than `len` gets one interval whose end is padded with zeros. The
//! network sees each interval with `pad` bases of context on both sides (zeros past the ends).

use crate::io::ChromSizes;

/// `len` bases of chromosome `chrom` from `start`; only `start + skip ..` is new output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    /// Which noisy/clean pair (training) or input (inference) the interval reads.
    pub source: usize,
    pub chrom: usize,
    pub start: u64,
    /// Leading bases already covered by the previous interval (the shifted tail interval).
    pub skip: u64,
}

/// The intervals covering `chroms` of `sizes` (in that order).
pub fn tile(sizes: &ChromSizes, chroms: &[usize], len: u64, source: usize) -> Vec<Interval> {
    let mut out = Vec::new();
    for &chrom in chroms {
        out.extend(tile_range(chrom, 0, sizes.length(chrom), len, source));
    }
    out
}

/// The intervals covering `start..end` of one chromosome.
pub fn tile_range(chrom: usize, start: u64, end: u64, len: u64, source: usize) -> Vec<Interval> {
    let span = end - start;
    if span <= len {
        return vec![Interval { source, chrom, start, skip: 0 }];
    }
    let full = span / len;
    let mut out: Vec<Interval> =
        (0..full).map(|k| Interval { source, chrom, start: start + k * len, skip: 0 }).collect();
    let covered = full * len;
    if covered < span {
        out.push(Interval { source, chrom, start: end - len, skip: len - (span - covered) });
    }
    out
}

/// Resolves chromosome names to ids, with an error listing what exists.
pub fn chrom_ids(sizes: &ChromSizes, names: &[String], flag: &str) -> Result<Vec<usize>, String> {
    names
        .iter()
        .map(|n| {
            sizes.id(n).ok_or_else(|| {
                let have: Vec<&str> = sizes.names().iter().take(8).map(String::as_str).collect();
                format!(
                    "{flag} {n}: no such chromosome (the genome has {}{})",
                    have.join(", "),
                    if sizes.len() > 8 { ", …" } else { "" }
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_base_once_as_new_output() {
        for (span, len) in [(10u64, 4u64), (12, 4), (3, 4), (4, 4), (1, 1), (100_001, 50_000)] {
            let tiles = tile_range(0, 5, 5 + span, len, 0);
            let mut covered = vec![0u32; span as usize];
            for t in &tiles {
                for p in (t.start + t.skip)..(t.start + len).min(5 + span) {
                    covered[(p - 5) as usize] += 1;
                }
                assert!(t.start >= 5 && (span < len || t.start + len <= 5 + span), "{t:?}");
            }
            assert!(covered.iter().all(|&c| c == 1), "span {span} len {len}: {covered:?}");
        }
    }
}
