//! From reads to coverage: Tn5 cut sites (or whole fragments) piled up per base.
//!
//! * Fragments files are already Tn5-adjusted: a fragment `start..end` has cut sites at
//!   `start` and `end − 1`.
//! * BAM reads: the 5′ end shifted +4 bp on the + strand and −5 bp on the − strand
//!   (the 9-bp duplication of Tn5 insertion), so a properly paired fragment gives the same
//!   two cut sites as its fragments-file line.
//! * `--extend N` widens each cut site to `site − N ..= site + N` (2N + 1 bases), clipped to
//!   the chromosome; `PileupMode::Fragments` piles up whole fragments instead.
//!
//! Subsampling keeps a fragment (or read pair) when a hash of its identity and the seed falls
//! under the fraction: deterministic for a seed, independent of file order and thread count,
//! and both mates of a pair share the decision.

mod bam;
mod fragments;

pub use bam::{bam_header_sizes, coverage_from_bam, is_bam};
pub use fragments::{collect_barcodes, coverage_from_fragments};

use crate::error::FileError;
use crate::io::ChromSizes;
use crate::track::{Run, Track};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// What is piled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PileupMode {
    /// Tn5 cut sites, each widened by `extend` on both sides.
    CutSites,
    /// Whole fragments (`start..end`).
    Fragments,
}

/// Which cells' fragments count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CellSelection {
    #[default]
    All,
    /// Only these barcodes.
    Keep(HashSet<Vec<u8>>),
    /// N barcodes drawn at random (seeded) from those in the input.
    Sample(usize),
}

/// A genomic region `chrom:start-end`, stored 0-based half-open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub chrom: String,
    pub start: u64,
    pub end: u64,
}

impl Region {
    /// Parses `chrom`, `chrom:start-end` (1-based inclusive, as samtools; commas allowed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("region '{text}' is not 'chrom' or 'chrom:start-end' (1-based, inclusive)");
        let Some((chrom, range)) = text.rsplit_once(':') else {
            return if text.is_empty() {
                Err(bad())
            } else {
                Ok(Region { chrom: text.to_string(), start: 0, end: u64::MAX })
            };
        };
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let num = |s: &str| s.replace(',', "").parse::<u64>().map_err(|_| bad());
        let (a, b) = (num(a)?, num(b)?);
        if chrom.is_empty() || a == 0 || b < a {
            return Err(bad());
        }
        Ok(Region { chrom: chrom.to_string(), start: a - 1, end: b })
    }
}

/// How coverage is made.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageOptions {
    pub mode: PileupMode,
    /// Bases added on both sides of a cut site (default 100).
    pub extend: u64,
    /// Weight fragments by their count column (read pairs) instead of 1.
    pub use_counts: bool,
    /// Keep this fraction of fragments / read pairs.
    pub subsample: Option<f64>,
    pub seed: u64,
    pub cells: CellSelection,
    /// BAM only: reads below this mapping quality are dropped (default 30).
    pub min_mapq: u8,
    /// Only this region (clipped to it).
    pub region: Option<Region>,
}

impl Default for CoverageOptions {
    fn default() -> Self {
        CoverageOptions {
            mode: PileupMode::CutSites,
            extend: 100,
            use_counts: false,
            subsample: None,
            seed: 0,
            cells: CellSelection::All,
            min_mapq: 30,
            region: None,
        }
    }
}

impl CoverageOptions {
    pub(crate) fn validate(&self) -> Result<(), FileError> {
        if let Some(f) = self.subsample {
            if !(f > 0.0 && f <= 1.0) {
                return Err(FileError::Argument(format!("--subsample-reads {f} must be in (0, 1]")));
            }
        }
        if let CellSelection::Sample(0) = self.cells {
            return Err(FileError::Argument("--sample-cells must be at least 1".into()));
        }
        Ok(())
    }
}

/// What happened to the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverageReport {
    /// Fragments (fragments file) or reads (BAM) read.
    pub records: u64,
    /// Fragments (fragments file) or reads (BAM) that contributed.
    pub used: u64,
    pub skipped_cells: u64,
    pub skipped_subsample: u64,
    pub skipped_region: u64,
    /// Records on chromosomes the sizes lack, by chromosome.
    pub unknown_chroms: BTreeMap<String, u64>,
    /// Bases of extended cut sites or fragments that fell off chromosome ends.
    pub bases_clipped: u64,
    /// Records that start at or past their chromosome's end in the genome sizes (sizes of
    /// another assembly, or a damaged file): not counted, like records on unknown chromosomes.
    pub off_chromosome: u64,
    /// Cut sites piled up.
    pub cut_sites: u64,
    /// BAM reads dropped, by reason.
    pub filtered: BTreeMap<&'static str, u64>,
    /// Cells whose fragments were kept (for a cell selection).
    pub cells_kept: Option<usize>,
}

/// A 64-bit hash of `parts` under `seed` (FNV-1a, then mixed).
pub(crate) fn seeded_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ crate::rng::mix(seed);
    for part in parts {
        for &b in *part {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0000_0100_0000_01B3);
    }
    crate::rng::finalize(h)
}

/// Whether a record with this identity survives subsampling to `fraction`.
pub(crate) fn keep_in_subsample(fraction: f64, seed: u64, parts: &[&[u8]]) -> bool {
    fraction >= 1.0 || crate::rng::unit(seeded_hash(seed, parts)) < fraction
}

/// N barcodes of `all` chosen at random with `seed` (the same for the same set and seed).
pub fn sample_cells(all: &[Vec<u8>], n: usize, seed: u64) -> Result<HashSet<Vec<u8>>, String> {
    if n > all.len() {
        return Err(format!("--sample-cells {n}: the input has only {} cells", all.len()));
    }
    let mut sorted: Vec<&Vec<u8>> = all.iter().collect();
    sorted.sort();
    let mut draws = crate::rng::SplitMix64::new(seed);
    for i in 0..n {
        let j = i + (draws.next_u64() % (sorted.len() - i) as u64) as usize;
        sorted.swap(i, j);
    }
    Ok(sorted[..n].iter().map(|b| (*b).clone()).collect())
}

/// Memory (bytes of difference arrays) of finished chromosomes held before they are
/// converted to runs, in parallel.
const FINISHED_BUDGET: usize = 1 << 30;

/// Per-base pile-up: a difference array per chromosome while reading, runs once done.
pub(crate) struct Pileup {
    sizes: ChromSizes,
    region: Option<(usize, u64, u64)>,
    active: BTreeMap<usize, Vec<i32>>,
    finished: Vec<(usize, Vec<i32>)>,
    finished_bytes: usize,
    runs: Vec<Option<Vec<Run>>>,
    current: Option<usize>,
    pub(crate) clipped: u64,
}

impl Pileup {
    pub(crate) fn new(sizes: &ChromSizes, region: Option<&Region>) -> Result<Self, FileError> {
        let region = match region {
            None => None,
            Some(r) => {
                let id = sizes.id(&r.chrom).ok_or_else(|| {
                    FileError::Argument(format!(
                        "--region {}: chromosome not in the genome sizes (which have {})",
                        r.chrom,
                        sizes.names().iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                let end = r.end.min(sizes.length(id));
                if r.start >= end {
                    return Err(FileError::Argument(format!(
                        "--region {}:{}-{} is empty or past the chromosome end",
                        r.chrom,
                        r.start + 1,
                        r.end
                    )));
                }
                Some((id, r.start, end))
            }
        };
        Ok(Pileup {
            sizes: sizes.clone(),
            region,
            active: BTreeMap::new(),
            finished: Vec::new(),
            finished_bytes: 0,
            runs: vec![None; sizes.len()],
            current: None,
            clipped: 0,
        })
    }

    /// Whether a record starting at `start` (0-based) lies entirely past `chrom`'s end.
    pub(crate) fn past_end(&self, chrom: usize, start: i64) -> bool {
        start >= self.sizes.length(chrom) as i64
    }

    /// Adds `weight` over `start..end` (may stick out of the chromosome: the rest is clipped
    /// and counted). `moved_to(chrom)` must have been called first. Returns false if nothing of
    /// it lies in the region.
    pub(crate) fn add(&mut self, chrom: usize, start: i64, end: i64, weight: i32) -> bool {
        let len = self.sizes.length(chrom) as i64;
        let (lo, hi) = (start.max(0), end.min(len));
        self.clipped += ((end - start) - (hi - lo).max(0)).max(0) as u64 * weight as u64;
        let (lo, hi) = match self.region {
            Some((id, rs, re)) if id == chrom => (lo.max(rs as i64), hi.min(re as i64)),
            Some(_) => return false,
            None => (lo, hi),
        };
        if lo >= hi {
            return self.region.is_none();
        }
        debug_assert_eq!(self.current, Some(chrom), "Pileup::add without moved_to");
        let diff = self.active.entry(chrom).or_insert_with(|| vec![0i32; len as usize + 1]);
        diff[lo as usize] += weight;
        diff[hi as usize] -= weight;
        true
    }

    /// Marks every chromosome but `current` as done (the input has moved past them), and
    /// reopens `current` if it was done before (the input is not sorted). Call it before
    /// every `add`: it is a no-op while the chromosome stays the same.
    pub(crate) fn moved_to(&mut self, current: usize) {
        if self.current == Some(current) {
            return;
        }
        self.current = Some(current);
        if let Some(runs) = self.runs[current].take() {
            let mut diff = vec![0i32; self.sizes.length(current) as usize + 1];
            for r in runs {
                diff[r.start as usize] += r.value as i32;
                diff[r.end as usize] -= r.value as i32;
            }
            self.active.insert(current, diff);
        }
        if let Some(i) = self.finished.iter().position(|(id, _)| *id == current) {
            let (_, diff) = self.finished.swap_remove(i);
            self.finished_bytes -= diff.len() * 4;
            self.active.insert(current, diff);
        }
        let done: Vec<usize> = self.active.keys().copied().filter(|&id| id != current).collect();
        for id in done {
            if let Some(diff) = self.active.remove(&id) {
                self.finished_bytes += diff.len() * 4;
                self.finished.push((id, diff));
            }
        }
        if self.finished_bytes > FINISHED_BUDGET {
            self.convert_finished();
        }
    }

    fn convert_finished(&mut self) {
        let done: Vec<(usize, Vec<Run>)> =
            std::mem::take(&mut self.finished).into_par_iter().map(|(id, diff)| (id, diff_to_runs(&diff))).collect();
        for (id, runs) in done {
            self.runs[id] = Some(runs);
        }
        self.finished_bytes = 0;
    }

    pub(crate) fn finish(mut self) -> Track {
        let active = std::mem::take(&mut self.active);
        self.finished.extend(active);
        self.convert_finished();
        let mut track = Track::empty(self.sizes);
        for (id, runs) in self.runs.into_iter().enumerate() {
            if let Some(runs) = runs {
                track.set_runs(id, runs);
            }
        }
        track
    }
}

fn diff_to_runs(diff: &[i32]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut value: i64 = 0;
    let mut start = 0usize;
    for (i, &d) in diff[..diff.len() - 1].iter().enumerate() {
        if d == 0 {
            continue;
        }
        if value != 0 && i > start {
            runs.push(Run { start: start as u32, end: i as u32, value: value as f32 });
        }
        value += d as i64;
        start = i;
    }
    let len = diff.len() - 1;
    if value != 0 && len > start {
        runs.push(Run { start: start as u32, end: len as u32, value: value as f32 });
    }
    runs
}

/// Interns chromosome names of an input against the sizes, counting unknown ones.
pub(crate) struct ChromLookup<'a> {
    sizes: &'a ChromSizes,
    last: Option<(Vec<u8>, Option<usize>)>,
}

impl<'a> ChromLookup<'a> {
    pub(crate) fn new(sizes: &'a ChromSizes) -> Self {
        ChromLookup { sizes, last: None }
    }

    /// The id of `name`, or None (counted in `report`) when the sizes lack it.
    pub(crate) fn id(&mut self, name: &[u8], report: &mut CoverageReport) -> Option<usize> {
        let id = match &self.last {
            Some((n, id)) if n.as_slice() == name => *id,
            _ => {
                let id = std::str::from_utf8(name).ok().and_then(|s| self.sizes.id(s));
                self.last = Some((name.to_vec(), id));
                id
            }
        };
        if id.is_none() {
            *report.unknown_chroms.entry(String::from_utf8_lossy(name).into_owned()).or_insert(0) += 1;
        }
        id
    }
}

/// Fails when no record landed on a known chromosome but some were read: the names of the
/// input and of the sizes do not meet.
pub(crate) fn check_names_met(
    input: &std::path::Path,
    sizes: &ChromSizes,
    report: &CoverageReport,
    sizes_label: &str,
) -> Result<(), FileError> {
    let unknown: u64 = report.unknown_chroms.values().sum();
    if report.records > 0 && unknown == report.records {
        let theirs: Vec<String> = report.unknown_chroms.keys().cloned().collect();
        return Err(FileError::Mismatch(crate::io::sizes::name_mismatch(
            &format!("{}: no record is on a chromosome of {sizes_label}", input.display()),
            sizes.names(),
            &theirs,
            sizes_label,
            "the input",
        )));
    }
    if report.records > 0 && report.off_chromosome > 0 && unknown + report.off_chromosome == report.records {
        return Err(FileError::Mismatch(format!(
            "{}: every record lies past its chromosome's end in {sizes_label} ({} of {}) or on a chromosome they lack: give the sizes of the assembly the input was aligned to",
            input.display(),
            report.off_chromosome,
            report.records
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_to_runs_merges_equal_neighbours_and_skips_zeros() {
        // coverage: 0 2 2 3 0 0 1
        let mut diff = vec![0i32; 8];
        for (s, e, w) in [(1, 4, 2), (3, 4, 1), (6, 7, 1)] {
            diff[s] += w;
            diff[e] -= w;
        }
        let runs = diff_to_runs(&diff);
        let want = [
            Run { start: 1, end: 3, value: 2.0 },
            Run { start: 3, end: 4, value: 3.0 },
            Run { start: 6, end: 7, value: 1.0 },
        ];
        assert_eq!(runs, want);
    }

    #[test]
    fn unsorted_input_reopens_finished_chromosomes() {
        let sizes = ChromSizes::from_pairs([("a".to_string(), 10), ("b".to_string(), 10)]).expect("valid");
        let adds = [(0, 1, 4), (1, 2, 5), (0, 3, 6), (1, 0, 2), (0, 8, 12)];
        let pile_up = |convert_between: bool| {
            let mut pile = Pileup::new(&sizes, None).expect("no region");
            for (chrom, start, end) in adds {
                pile.moved_to(chrom);
                assert!(pile.add(chrom, start, end, 1));
                if convert_between {
                    // As when the finished chromosomes outgrow FINISHED_BUDGET.
                    pile.convert_finished();
                }
            }
            pile.finish()
        };
        for convert_between in [false, true] {
            let track = pile_up(convert_between);
            let a = [
                Run { start: 1, end: 3, value: 1.0 },
                Run { start: 3, end: 4, value: 2.0 },
                Run { start: 4, end: 6, value: 1.0 },
                Run { start: 8, end: 10, value: 1.0 },
            ];
            let b = [Run { start: 0, end: 5, value: 1.0 }];
            assert_eq!(track.runs(0), a, "convert_between {convert_between}");
            assert_eq!(track.runs(1), b, "convert_between {convert_between}");
        }
    }

    #[test]
    fn regions_parse_one_based_inclusive() {
        assert_eq!(Region::parse("chrI:1-100").expect("valid"), Region { chrom: "chrI".into(), start: 0, end: 100 });
        assert_eq!(Region::parse("chr1:1,000-2,000").expect("valid").start, 999);
        assert_eq!(Region::parse("chrM").expect("valid").end, u64::MAX);
        assert!(Region::parse("chr1:5-2").is_err() && Region::parse("chr1:0-2").is_err() && Region::parse("").is_err());
    }

    #[test]
    fn subsampling_is_seeded_and_close_to_the_fraction() {
        let keys: Vec<Vec<u8>> = (0..100_000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let kept = |seed| keys.iter().filter(|k| keep_in_subsample(0.1, seed, &[k])).count();
        let (a, b) = (kept(1), kept(2));
        assert_eq!(a, kept(1));
        assert_ne!(a, b);
        for k in [a, b] {
            assert!((k as f64 - 10_000.0).abs() < 3.0 * (100_000.0f64 * 0.1 * 0.9).sqrt(), "{k}");
        }
    }

    #[test]
    fn cell_sampling_is_seeded() {
        let cells: Vec<Vec<u8>> = (0..50u8).map(|i| vec![b'A' + i % 26, i]).collect();
        let a = sample_cells(&cells, 10, 7).expect("enough cells");
        assert_eq!(a.len(), 10);
        let mut shuffled = cells.clone();
        shuffled.reverse();
        assert_eq!(a, sample_cells(&shuffled, 10, 7).expect("enough cells"));
        assert_ne!(a, sample_cells(&cells, 10, 8).expect("enough cells"));
        assert!(sample_cells(&cells, 51, 7).is_err());
    }
}
