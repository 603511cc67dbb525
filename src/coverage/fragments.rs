//! Coverage from a 10x-style fragments file.

use super::{
    check_names_met, keep_in_subsample, sample_cells, CellSelection, ChromLookup, CoverageOptions, CoverageReport,
    Pileup, PileupMode,
};
use crate::error::FileError;
use crate::io::fragments::{parse_fragment, Fragment, FragmentReader};
use crate::io::text::check_bgzf_complete;
use crate::io::ChromSizes;
use crate::track::Track;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

/// Records between progress callbacks.
const PROGRESS_EVERY: u64 = 1 << 18;

/// The distinct barcodes of a fragments file, sorted.
pub fn collect_barcodes(path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>, FileError> {
    let mut reader = FragmentReader::open(path)?;
    let mut cells = BTreeSet::new();
    while let Some(f) = reader.next()? {
        if !cells.contains(f.barcode) {
            cells.insert(f.barcode.to_vec());
        }
    }
    Ok(cells.into_iter().collect())
}

/// The per-fragment work: cell and subsample filters, then the pile-up.
struct FragmentPileup<'a> {
    opts: &'a CoverageOptions,
    cells: Option<&'a HashSet<Vec<u8>>>,
    pile: Pileup,
    lookup: ChromLookup<'a>,
    report: CoverageReport,
    seen_cells: HashSet<Vec<u8>>,
}

impl FragmentPileup<'_> {
    fn add(&mut self, f: &Fragment<'_>) {
        self.report.records += 1;
        let Some(id) = self.lookup.id(f.chrom, &mut self.report) else {
            return;
        };
        self.pile.moved_to(id);
        if self.pile.past_end(id, f.start as i64) {
            self.report.off_chromosome += 1;
            return;
        }
        if let Some(keep) = self.cells {
            if !keep.contains(f.barcode) {
                self.report.skipped_cells += 1;
                return;
            }
            if !self.seen_cells.contains(f.barcode) {
                self.seen_cells.insert(f.barcode.to_vec());
            }
        }
        if let Some(fraction) = self.opts.subsample {
            let identity = [f.chrom, &f.start.to_le_bytes(), &f.end.to_le_bytes(), f.barcode];
            if !keep_in_subsample(fraction, self.opts.seed, &identity) {
                self.report.skipped_subsample += 1;
                return;
            }
        }
        let weight = if self.opts.use_counts { i32::try_from(f.count).unwrap_or(i32::MAX) } else { 1 };
        let (start, end) = (f.start as i64, f.end as i64);
        let used = match self.opts.mode {
            PileupMode::CutSites => {
                let e = self.opts.extend as i64;
                self.report.cut_sites += 2;
                let first = self.pile.add(id, start - e, start + e + 1, weight);
                let second = self.pile.add(id, end - 1 - e, end + e, weight);
                first || second
            }
            PileupMode::Fragments => self.pile.add(id, start, end, weight),
        };
        if used {
            self.report.used += 1;
        } else {
            self.report.skipped_region += 1;
        }
    }
}

/// The tabix index beside a fragments file, if there is one.
fn tabix_index(path: &Path) -> Option<std::path::PathBuf> {
    let mut p = path.as_os_str().to_owned();
    p.push(".tbi");
    let p = std::path::PathBuf::from(p);
    p.exists().then_some(p)
}

/// Piles up the fragments of `path` over `sizes`. `progress` receives the number of
/// fragments read so far, now and then. With a region and a tabix index (`path.tbi`) only the
/// region's lines are read; without an index the file is streamed and filtered.
pub fn coverage_from_fragments(
    path: impl AsRef<Path>,
    sizes: &ChromSizes,
    opts: &CoverageOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<(Track, CoverageReport), FileError> {
    let path = path.as_ref();
    opts.validate()?;
    let sampled;
    let cells: Option<&HashSet<Vec<u8>>> = match &opts.cells {
        CellSelection::All => None,
        CellSelection::Keep(keep) => Some(keep),
        CellSelection::Sample(n) => {
            let all = collect_barcodes(path)?;
            sampled = sample_cells(&all, *n, opts.seed).map_err(|e| FileError::content(path, e))?;
            Some(&sampled)
        }
    };
    let mut state = FragmentPileup {
        opts,
        cells,
        pile: Pileup::new(sizes, opts.region.as_ref())?,
        lookup: ChromLookup::new(sizes),
        report: CoverageReport { cells_kept: cells.map(HashSet::len), ..Default::default() },
        seen_cells: HashSet::new(),
    };
    match (&opts.region, tabix_index(path)) {
        (Some(region), Some(index)) => {
            // The streaming reader checks this itself (LineReader::open).
            check_bgzf_complete(path)?;
            crate::io::index::check_index(&index, crate::io::index::IndexKind::Tabix)?;
            let mut reader = noodles::tabix::io::indexed_reader::Builder::default()
                .build_from_path(path)
                .map_err(|e| FileError::content(path, format!("cannot open with its tabix index: {e}")))?;
            let end = sizes.id(&region.chrom).map_or(region.end, |id| region.end.min(sizes.length(id)));
            let query_region: noodles::core::Region = format!("{}:{}-{}", region.chrom, region.start + 1, end)
                .parse()
                .map_err(|e| FileError::Argument(format!("--region: {e}")))?;
            let result = reader.query(&query_region);
            match result {
                Ok(query) => {
                    for (i, record) in query.enumerate() {
                        let record =
                            record.map_err(|e| FileError::content(path, format!("reading the region: {e}")))?;
                        let line: &str = record.as_ref();
                        let f = parse_fragment(line.as_bytes()).map_err(|what| {
                            FileError::content(path, format!("line {} of the region {}: {what}", i + 1, region.chrom))
                        })?;
                        state.add(&f);
                    }
                }
                // A chromosome without fragments is not in the index: nothing to read.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
                Err(e) => return Err(FileError::content(path, format!("region query failed: {e}"))),
            };
        }
        _ => {
            let mut reader = FragmentReader::open(path)?;
            while let Some(f) = reader.next()? {
                state.add(&f);
                if state.report.records.is_multiple_of(PROGRESS_EVERY) {
                    progress(state.report.records);
                }
            }
            if state.report.records == 0 {
                return Err(FileError::content(path, "no fragments: the file has no data lines"));
            }
        }
    }
    progress(state.report.records);
    let FragmentPileup { pile, mut report, seen_cells, .. } = state;
    check_names_met(path, sizes, &report, "the genome sizes")?;
    if let Some(keep) = cells {
        if seen_cells.is_empty() && report.records > 0 {
            let example = keep.iter().next().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            return Err(FileError::Mismatch(format!(
                "{}: none of the {} selected barcodes (e.g. '{example}') occurs in the file; check suffixes such as '-1'",
                path.display(),
                keep.len()
            )));
        }
        report.cells_kept = Some(seen_cells.len());
    }
    report.bases_clipped = pile.clipped;
    Ok((pile.finish(), report))
}
