//! The training store from a matrix of any size, streamed: an AnnData `.h5ad` (X CSR, CSC or
//! dense), a 10x `.h5`, a Matrix Market directory (plain or gzip) or a `.cxmatrix` store,
//! matched to the peak file, binarised and filtered exactly as the in-memory path
//! ([`super::matrix`]: [`read_cell_matrix`](super::matrix::read_cell_matrix),
//! [`match_peaks`](super::matrix::match_peaks), [`filter_matrix`](super::matrix::filter_matrix))
//! does, byte for byte, without ever holding the matrix: host memory is bounded by a budget
//! that does not depend on the number of non-zeros.
//!
//! The input is read in passes, a window of entries at a time:
//!
//! 1. count: present peaks per cell and present cells per peak (of the peak file's peaks);
//! 2. (only when the cell filter dropped a cell and peaks need a minimum of cells) cells per
//!    peak among the kept cells;
//! 3. (only when the peak filter dropped a peak and cells need a minimum of peaks) which kept
//!    cells still have a kept peak;
//! 4. write: each kept entry once, at its final place in the output, through a buffer per
//!    output row ([`PlacedStoreWriter`]): the row offsets are known from the counts, so the
//!    transposition of a cell-major input (AnnData CSR, 10x) needs no temporary file. A
//!    peak-major input (AnnData CSC, a store) is written a row at a time.
//!
//! Entries with value 0 are absent (the first pass notes where they are, so later passes read
//! only the indices); a duplicate entry counts once. A Matrix Market file in neither peak nor
//! cell order is first sorted into a temporary file beside the output, a range of peaks per
//! pass, within the same budget. Everything written goes under temporary names, renamed or
//! removed on every exit path; a killed run's leftovers are removed by the next
//! ([`remove_stale_temporaries`]).

use super::matrix::peak_rows;
use crate::error::FileError;
use crate::io::atomic::{remove_stale_temporaries, AtomicFile};
use crate::io::bed::Interval;
use crate::io::h5ad::{open_h5ad_x, parse_peak_name, Compressed, H5adX, SparseCounts, SparseGroup};
use crate::io::mtx::{open_mtx_dir, MtxDirHead};
use crate::io::tenx::{is_10x_h5, open_10x_h5};
use crate::store::matrix::{CellMatrix, PlacedStoreWriter};
use std::path::Path;

/// The memory a conversion may use unless told otherwise: 1 GiB.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

const NONE: u32 = u32::MAX;

/// scBasset's filters of a binarised matrix (see [`filter_matrix`](super::matrix::filter_matrix)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters {
    pub min_cells_per_peak: u32,
    pub min_peaks_per_cell: u32,
}

/// What a conversion did.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSummary {
    /// The input's peaks, cells and stored entries (zeros and duplicates included).
    pub input_peaks: usize,
    pub input_cells: usize,
    pub input_entries: u64,
    /// The store's peaks, cells and non-zeros.
    pub peaks: usize,
    pub cells: usize,
    pub nnz: u64,
    /// Cells that passed the cell filter but lost every peak to the peak filter.
    pub dropped_empty_cells: usize,
    /// Passes over the input (each reads every entry once).
    pub passes: usize,
    /// Seconds of each pass, in order (the last is the write), then of the hash's reading
    /// of the written store.
    pub pass_seconds: Vec<f64>,
    /// `cell-major`, `peak-major` or `unsorted` (sorted through a temporary file first).
    pub order: &'static str,
    /// Entries buffered per output row before they are written (cell-major inputs).
    pub row_buffer: usize,
    /// Buffer writes into the output.
    pub writes: u64,
    /// The largest temporary file beside the output, bytes (besides the output itself,
    /// written under a temporary name).
    pub temporary_bytes: u64,
}

/// Parses a memory size: a number of bytes, or with a K, M, G or T suffix (powers of 1024;
/// an optional trailing `B` or `iB`), e.g. `512M`, `1G`, `1.5GiB`.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let (number, unit) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1u64 << 10),
        Some('M') => (&body[..body.len() - 1], 1 << 20),
        Some('G') => (&body[..body.len() - 1], 1 << 30),
        Some('T') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * (unit as f64) < 1e19 => Ok((v * unit as f64) as u64),
        _ => {
            Err(format!("'{text}' is not a memory size: expected bytes or a number with K, M, G or T (e.g. 512M, 2G)"))
        }
    }
}

/// Where the stored values are 0 (absent), learnt on the first pass so that later passes
/// read only the indices.
enum Zeros {
    Unknown,
    At(Vec<u64>),
    /// Too many to list within the budget: every pass reads the values.
    Many,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Entries come cell after cell (each cell's entries together, cells ascending).
    CellMajor,
    /// Peak after peak (source peaks ascending).
    PeakMajor,
    Unsorted,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::CellMajor => "cell-major",
            Order::PeakMajor => "peak-major",
            Order::Unsorted => "unsorted",
        }
    }
}

enum Body {
    /// A compressed sparse matrix in an HDF5 file; `peak_of` maps 10x feature rows to peaks.
    Sparse {
        g: SparseGroup,
        peak_is_major: bool,
        peak_of: Option<Vec<u32>>,
        zeros: Zeros,
    },
    /// A dense X, sparsified when opened (cells × peaks, CSR).
    Memory(SparseCounts),
    Mtx(MtxDirHead),
    Store(CellMatrix, std::path::PathBuf),
    /// An unsorted input sorted into a temporary file (removed when dropped).
    Sorted {
        _file: AtomicFile,
        map: memmap2::Mmap,
        indptr: Vec<u64>,
    },
}

/// A matrix opened for passes over its present entries.
struct Source {
    peaks: Vec<Interval>,
    barcodes: Vec<String>,
    /// The number of cells (the barcodes are moved out before the last pass).
    cells: usize,
    entries: u64,
    order: Order,
    body: Body,
    passes: usize,
    pass_seconds: Vec<f64>,
}

/// Cap on the zero positions remembered, as a share of the budget (8 bytes each).
fn zero_cap(memory: u64) -> usize {
    (memory / 16 / 8) as usize
}

impl Source {
    fn open(path: &Path) -> Result<Source, FileError> {
        if path.is_dir() {
            return Source::mtx(open_mtx_dir(path)?);
        }
        if !path.exists() {
            // The in-memory reader's message names what is accepted.
            return Err(super::matrix::read_cell_matrix(path)
                .err()
                .unwrap_or_else(|| FileError::content(path, "no such file or directory")));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if name.ends_with(".mtx") || name.ends_with(".mtx.gz") {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            return Source::mtx(open_mtx_dir(dir)?);
        }
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "h5" | "hdf5" if is_10x_h5(path) => {
                let t = open_10x_h5(path)?;
                let mut peak_of = vec![NONE; t.counts.rows];
                for (i, &r) in t.peak_rows.iter().enumerate() {
                    peak_of[r as usize] = i as u32;
                }
                Ok(Source {
                    entries: t.counts.nnz(),
                    peaks: t.peaks,
                    cells: t.barcodes.len(),
                    barcodes: t.barcodes,
                    order: Order::CellMajor,
                    body: Body::Sparse {
                        g: t.counts,
                        peak_is_major: false,
                        peak_of: Some(peak_of),
                        zeros: Zeros::Unknown,
                    },
                    passes: 0,
                    pass_seconds: Vec::new(),
                })
            }
            "h5ad" | "h5" | "hdf5" => {
                let h = open_h5ad_x(path).map_err(|e| {
                    if ext == "h5ad" {
                        e
                    } else {
                        FileError::content(
                            path,
                            format!("neither a 10x matrix (no 'matrix' group) nor an AnnData file ({e})"),
                        )
                    }
                })?;
                let (order, entries, body) = match h.x {
                    H5adX::Sparse(g) => {
                        let peak_is_major = g.compressed == Compressed::Columns;
                        let order = if peak_is_major { Order::PeakMajor } else { Order::CellMajor };
                        (order, g.nnz(), Body::Sparse { g, peak_is_major, peak_of: None, zeros: Zeros::Unknown })
                    }
                    H5adX::Dense(x) => (Order::CellMajor, x.indices.len() as u64, Body::Memory(x)),
                };
                Ok(Source {
                    peaks: h.peaks,
                    cells: h.obs_names.len(),
                    barcodes: h.obs_names,
                    entries,
                    order,
                    body,
                    passes: 0,
                    pass_seconds: Vec::new(),
                })
            }
            "cxmatrix" => {
                let store = CellMatrix::open(path)?;
                let peaks = store
                    .peak_names()
                    .iter()
                    .map(|n| {
                        parse_peak_name(n)
                            .ok_or_else(|| FileError::content(path, format!("peak name '{n}' is not chrom:start-end")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let indptr = store.indptr();
                if indptr.first() != Some(&0)
                    || indptr.windows(2).any(|w| w[1] < w[0])
                    || indptr.last() != Some(&(store.indices().len() as u64))
                {
                    return Err(FileError::content(
                        path,
                        "damaged matrix store: its row offsets do not match its shape",
                    ));
                }
                Ok(Source {
                    peaks,
                    cells: store.shape().1,
                    barcodes: store.barcodes().to_vec(),
                    entries: store.indices().len() as u64,
                    order: Order::PeakMajor,
                    body: Body::Store(store, path.to_path_buf()),
                    passes: 0,
                    pass_seconds: Vec::new(),
                })
            }
            _ => Err(super::matrix::read_cell_matrix(path)
                .err()
                .unwrap_or_else(|| FileError::content(path, "not a matrix form this reads"))),
        }
    }

    fn mtx(head: MtxDirHead) -> Result<Source, FileError> {
        Ok(Source {
            peaks: head.peaks.clone(),
            cells: head.barcodes.len(),
            barcodes: head.barcodes.clone(),
            entries: head.entries as u64,
            // Learnt on the first pass.
            order: Order::Unsorted,
            body: Body::Mtx(head),
            passes: 0,
            pass_seconds: Vec::new(),
        })
    }

    /// One pass: hands every present entry (value > 0) as `(source peak, cell)` in blocks of
    /// at most `block`, in the source's order. A Matrix Market file's order is learnt here.
    fn pass(
        &mut self,
        block: usize,
        zero_cap: usize,
        f: &mut dyn FnMut(&[u32], &[u32]) -> Result<(), FileError>,
    ) -> Result<(), FileError> {
        let started = std::time::Instant::now();
        self.passes += 1;
        let result = self.pass_body(block, zero_cap, f);
        self.pass_seconds.push(started.elapsed().as_secs_f64());
        result
    }

    fn pass_body(
        &mut self,
        block: usize,
        zero_cap: usize,
        f: &mut dyn FnMut(&[u32], &[u32]) -> Result<(), FileError>,
    ) -> Result<(), FileError> {
        let (mut ps, mut cs) = (Vec::with_capacity(block), Vec::with_capacity(block));
        match &mut self.body {
            Body::Sparse { g, peak_is_major, peak_of, zeros } => {
                let nnz = g.nnz();
                let read_values = matches!(zeros, Zeros::Unknown | Zeros::Many);
                let learn = matches!(zeros, Zeros::Unknown);
                let listed: &[u64] = match zeros {
                    Zeros::At(v) => v,
                    _ => &[],
                };
                let (mut found, mut many) = (Vec::new(), false);
                let (mut idx, mut counts) = (Vec::new(), Vec::new());
                let (mut start, mut major, mut z) = (0u64, 0usize, 0usize);
                while start < nnz {
                    let n = (block as u64).min(nnz - start);
                    g.read_indices(start, n, &mut idx)?;
                    if read_values {
                        g.read_counts(start, n, &mut counts)?;
                    }
                    ps.clear();
                    cs.clear();
                    for (k, &minor) in idx.iter().enumerate() {
                        let at = start + k as u64;
                        while at >= g.indptr[major + 1] {
                            major += 1;
                        }
                        if read_values {
                            if counts[k] == 0 {
                                if learn {
                                    if found.len() < zero_cap {
                                        found.push(at);
                                    } else {
                                        many = true;
                                    }
                                }
                                continue;
                            }
                        } else if listed.get(z) == Some(&at) {
                            z += 1;
                            continue;
                        }
                        let (raw_peak, cell) =
                            if *peak_is_major { (major as u32, minor) } else { (minor, major as u32) };
                        let peak = match peak_of {
                            Some(map) => map[raw_peak as usize],
                            None => raw_peak,
                        };
                        if peak != NONE {
                            ps.push(peak);
                            cs.push(cell);
                        }
                    }
                    f(&ps, &cs)?;
                    start += n;
                }
                if learn {
                    *zeros = if many { Zeros::Many } else { Zeros::At(found) };
                }
            }
            Body::Memory(x) => {
                let mut emit = |ps: &mut Vec<u32>, cs: &mut Vec<u32>| -> Result<(), FileError> {
                    f(ps, cs)?;
                    ps.clear();
                    cs.clear();
                    Ok(())
                };
                for cell in 0..x.indptr.len().saturating_sub(1) {
                    for k in x.indptr[cell] as usize..x.indptr[cell + 1] as usize {
                        if x.counts[k] > 0 {
                            ps.push(x.indices[k]);
                            cs.push(cell as u32);
                        }
                    }
                    if ps.len() >= block {
                        emit(&mut ps, &mut cs)?;
                    }
                }
                emit(&mut ps, &mut cs)?;
            }
            Body::Mtx(head) => {
                let mut r = head.entries()?;
                let (mut cells_rise, mut peaks_rise) = (true, true);
                let (mut last_peak, mut last_cell) = (0u32, 0u32);
                while let Some((row, col, count)) = r.next_entry()? {
                    let (peak, cell) = if head.transposed { (col, row) } else { (row, col) };
                    cells_rise &= cell >= last_cell;
                    peaks_rise &= peak >= last_peak;
                    (last_peak, last_cell) = (peak, cell);
                    if count > 0 {
                        ps.push(peak);
                        cs.push(cell);
                        if ps.len() >= block {
                            f(&ps, &cs)?;
                            ps.clear();
                            cs.clear();
                        }
                    }
                }
                f(&ps, &cs)?;
                self.order = if cells_rise {
                    Order::CellMajor
                } else if peaks_rise {
                    Order::PeakMajor
                } else {
                    Order::Unsorted
                };
            }
            Body::Store(store, path) => {
                let (indptr, indices, counts) = (store.indptr(), store.indices(), store.counts());
                let n_cells = store.shape().1;
                for peak in 0..indptr.len() - 1 {
                    for k in indptr[peak] as usize..indptr[peak + 1] as usize {
                        if indices[k] as usize >= n_cells {
                            return Err(FileError::content(
                                &*path,
                                format!("damaged matrix store: cell index {} ≥ {n_cells} cells", indices[k]),
                            ));
                        }
                        if counts.is_none_or(|c| c[k] > 0) {
                            ps.push(peak as u32);
                            cs.push(indices[k]);
                        }
                    }
                    if ps.len() >= block {
                        f(&ps, &cs)?;
                        ps.clear();
                        cs.clear();
                        store.release_pages();
                    }
                }
                f(&ps, &cs)?;
                store.release_pages();
            }
            Body::Sorted { map, indptr, .. } => {
                let cells: &[u32] = bytemuck::cast_slice(&map[..]);
                for peak in 0..indptr.len() - 1 {
                    for &c in &cells[indptr[peak] as usize..indptr[peak + 1] as usize] {
                        ps.push(peak as u32);
                        cs.push(c);
                    }
                    if ps.len() >= block {
                        f(&ps, &cs)?;
                        ps.clear();
                        cs.clear();
                        release(map);
                    }
                }
                f(&ps, &cs)?;
                release(map);
            }
        }
        Ok(())
    }
}

/// Drops a read-only file mapping's resident pages (they are read again on the next access).
fn release(map: &memmap2::Mmap) {
    // SAFETY: a read-only mapping of a file this process wrote and no longer changes; the
    // pages are only read back from the file. Failure leaves them resident, which is harmless.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

/// Each entry of a pass once: duplicates of a `(peak, cell)` pair are dropped with one number
/// per peak (cell-major) or per cell (peak-major): in those orders a repeated pair follows its
/// first with no other cell of that peak (other peak of that cell) between.
struct Dedupe {
    order: Order,
    last: Vec<u32>,
}

impl Dedupe {
    fn new(order: Order, peaks: usize, cells: usize) -> Dedupe {
        let n = if order == Order::CellMajor { peaks } else { cells };
        Dedupe { order, last: vec![NONE; n] }
    }

    #[inline]
    fn first(&mut self, peak: u32, cell: u32) -> bool {
        let (key, value) = if self.order == Order::CellMajor { (peak, cell) } else { (cell, peak) };
        let slot = &mut self.last[key as usize];
        if *slot == value {
            return false;
        }
        *slot = value;
        true
    }
}

/// One pass over the present entries of the peak file's peaks, each once: `f(source peak,
/// cell)`.
fn each_entry(
    src: &mut Source,
    block: usize,
    zero_cap: usize,
    wanted: &[bool],
    f: &mut dyn FnMut(u32, u32) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let order = if src.order == Order::Unsorted { Order::CellMajor } else { src.order };
    let mut dedupe = Dedupe::new(order, src.peaks.len(), src.cells);
    src.pass(block, zero_cap, &mut |ps, cs| {
        for (&p, &c) in ps.iter().zip(cs) {
            if wanted[p as usize] && dedupe.first(p, c) {
                f(p, c)?;
            }
        }
        Ok(())
    })
}

/// How a budget is spent: tables per peak and per cell with the names, a window of entries
/// read at a time, and (the rest) buffers per output row, at least 16 entries each.
struct Budget {
    tables: u64,
    window: u64,
    block: usize,
    floor: u64,
}

impl Budget {
    fn of(src: &Source, out_peaks: usize, memory: u64) -> Budget {
        let (n_peaks, n_cells) = (src.peaks.len() as u64, src.barcodes.len() as u64);
        // Names are held up to three times: as read, in the store's index, and as its JSON.
        let names: u64 = src.barcodes.iter().map(|b| b.len() as u64 + 32).sum::<u64>()
            + src.peaks.iter().map(|p| 2 * p.chrom.len() as u64 + 80).sum::<u64>();
        let tables = 24 * n_peaks + 24 * n_cells + 3 * names;
        let block = ((memory / 8 / 48) as usize).clamp(1 << 12, 1 << 20);
        // The window's vectors, and an allowance for the HDF5 reader's chunk cache and
        // metadata, the allocator's slack and the program's own pages.
        let window = 48 * block as u64 + (8 << 20);
        Budget { tables, window, block, floor: tables + window + 16 * 4 * out_peaks as u64 }
    }
}

/// The least `memory` [`convert_matrix`] accepts for this matrix and peak file (for tests and
/// messages: with it, every output row is buffered 16 entries at a time).
pub fn required_memory(matrix: &Path, peaks: &[Interval]) -> Result<u64, FileError> {
    let src = Source::open(matrix)?;
    let at_least = Budget::of(&src, peaks.len(), 0).floor;
    // The window grows with the budget: find the least budget that covers its own floor.
    let mut m = at_least;
    while Budget::of(&src, peaks.len(), m).floor > m {
        m = Budget::of(&src, peaks.len(), m).floor;
    }
    Ok(m)
}

/// Converts the matrix at `matrix` (any form [`read_cell_matrix`](super::matrix::read_cell_matrix)
/// reads) into a binary store at `out`, its rows the peaks of `peaks` (the file `peaks_path`:
/// all the matrix's peaks in any order, or a subset) that pass `filters`, within `memory`
/// bytes of buffers and tables. (The caller makes sure `out` is none of the inputs.)
pub fn convert_matrix(
    matrix: &Path,
    peaks: &[Interval],
    peaks_path: &Path,
    filters: Filters,
    memory: u64,
    out: &Path,
) -> Result<ConvertSummary, FileError> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        remove_stale_temporaries(dir);
    } else {
        remove_stale_temporaries(Path::new("."));
    }
    let mut src = Source::open(matrix)?;
    let (n_src_peaks, n_cells) = (src.peaks.len(), src.barcodes.len());
    if n_src_peaks > NONE as usize || n_cells > NONE as usize {
        return Err(FileError::content(matrix, "more than 2^32 − 1 peaks or cells"));
    }
    let rows = peak_rows(&src.peaks, peaks, matrix, peaks_path)?;
    let mut target_of = vec![NONE; n_src_peaks];
    for (t, &r) in rows.iter().enumerate() {
        target_of[r] = t as u32;
    }
    let wanted: Vec<bool> = target_of.iter().map(|&t| t != NONE).collect();

    let Budget { tables, window, block, floor } = Budget::of(&src, peaks.len(), memory);
    let zero_cap = zero_cap(memory);
    if memory < floor {
        return Err(FileError::Argument(format!(
            "--memory {} is too little for {} peaks × {} cells: the conversion needs at least {} (tables, a window of \
             entries and a small buffer per peak)",
            show_bytes(memory),
            n_src_peaks,
            n_cells,
            show_bytes(floor)
        )));
    }

    // Pass 1: present peaks per cell, present cells per peak. A Matrix Market file's order is
    // learnt on it (counted as if cell-major, the order Cell Ranger writes); in another order
    // it is counted again, after sorting it into a temporary file if it is in none.
    let mut temporary_bytes = 0;
    let learning = src.order == Order::Unsorted;
    let (mut per_cell, mut per_peak) = (vec![0u32; n_cells], vec![0u32; n_src_peaks]);
    let count = |src: &mut Source, per_cell: &mut [u32], per_peak: &mut [u32]| {
        per_cell.iter_mut().for_each(|n| *n = 0);
        per_peak.iter_mut().for_each(|n| *n = 0);
        each_entry(src, block, zero_cap, &wanted, &mut |p, c| {
            per_cell[c as usize] += 1;
            per_peak[p as usize] += 1;
            Ok(())
        })
    };
    count(&mut src, &mut per_cell, &mut per_peak)?;
    if learning && src.order != Order::CellMajor {
        if src.order == Order::Unsorted {
            temporary_bytes = sort_into_temporary(&mut src, &wanted, memory - tables - window, block, out)?;
        }
        count(&mut src, &mut per_cell, &mut per_peak)?;
    }

    let filter_text = format!(
        "filtering the {} peaks × {n_cells} cells with min cells per peak {} and min peaks per cell {}",
        peaks.len(),
        filters.min_cells_per_peak,
        filters.min_peaks_per_cell
    );
    let keep_cell: Vec<bool> = per_cell.iter().map(|&n| n >= filters.min_peaks_per_cell).collect();
    let cells_left = keep_cell.iter().filter(|&&k| k).count();
    if cells_left == 0 {
        return Err(FileError::Argument(format!(
            "{filter_text} leaves no cells: the most peaks any cell has is {}",
            per_cell.iter().max().copied().unwrap_or(0)
        )));
    }
    drop(per_cell);

    // Pass 2: cells per peak among the kept cells, where a cell was dropped.
    if cells_left < n_cells {
        per_peak.iter_mut().for_each(|n| *n = 0);
        each_entry(&mut src, block, zero_cap, &wanted, &mut |p, c| {
            if keep_cell[c as usize] {
                per_peak[p as usize] += 1;
            }
            Ok(())
        })?;
    }
    // Output rows: the peak file's peaks that pass, in its order.
    let mut out_row = vec![NONE; n_src_peaks];
    let mut kept_peaks = Vec::new();
    let mut indptr = vec![0u64];
    for (t, &r) in rows.iter().enumerate() {
        if per_peak[r] >= filters.min_cells_per_peak {
            out_row[r] = kept_peaks.len() as u32;
            kept_peaks.push(peaks[t].clone());
            indptr.push(indptr[indptr.len() - 1] + per_peak[r] as u64);
        }
    }
    if kept_peaks.is_empty() {
        return Err(FileError::Argument(format!(
            "{filter_text} leaves no peaks: {cells_left} cells pass, and the most of them any peak is present in is {}",
            rows.iter().map(|&r| per_peak[r]).max().unwrap_or(0)
        )));
    }
    drop(per_peak);

    // Pass 3: which kept cells still have a kept peak, where a cell can have lost them all.
    let mut has_peak = keep_cell.clone();
    if filters.min_peaks_per_cell >= 1 && kept_peaks.len() < peaks.len() {
        has_peak.iter_mut().for_each(|h| *h = false);
        each_entry(&mut src, block, zero_cap, &wanted, &mut |p, c| {
            if out_row[p as usize] != NONE {
                has_peak[c as usize] = true;
            }
            Ok(())
        })?;
    }
    let mut column = vec![NONE; n_cells];
    let mut dropped_empty_cells = 0;
    let mut kept = 0u32;
    for c in 0..n_cells {
        if !keep_cell[c] {
            continue;
        }
        if filters.min_peaks_per_cell >= 1 && !has_peak[c] {
            dropped_empty_cells += 1;
            continue;
        }
        column[c] = kept;
        kept += 1;
    }
    drop((keep_cell, has_peak));
    // The kept barcodes, moved (not copied) out of the source's.
    let mut barcodes = Vec::with_capacity(kept as usize);
    barcodes
        .extend(std::mem::take(&mut src.barcodes).into_iter().zip(&column).filter(|(_, &c)| c != NONE).map(|(b, _)| b));
    if barcodes.is_empty() {
        return Err(FileError::Argument(format!(
            "{filter_text} leaves no cells: {cells_left} cells pass the cell filter but none has a peak among the {} kept",
            kept_peaks.len()
        )));
    }

    // Pass 4: every kept entry to its place.
    let n_rows = kept_peaks.len();
    let recorded = Some([filters.min_cells_per_peak, filters.min_peaks_per_cell]);
    let writer = PlacedStoreWriter::create(out, &kept_peaks, &barcodes, &indptr, recorded)?;
    let changed = |what: String| FileError::content(matrix, format!("{what}: did the file change while it was read?"));
    let mut writes = 0u64;
    let row_buffer;
    if src.order == Order::CellMajor {
        let buffers = memory.saturating_sub(tables + window);
        let longest = indptr.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize;
        let k = ((buffers / 4 / n_rows as u64) as usize).clamp(16, 1 << 20).min(longest.max(1));
        row_buffer = k;
        let mut buf = vec![0u32; n_rows * k];
        let mut fill = vec![0u32; n_rows];
        let mut at: Vec<u64> = indptr[..n_rows].to_vec();
        each_entry(&mut src, block, zero_cap, &wanted, &mut |p, c| {
            let (r, col) = (out_row[p as usize], column[c as usize]);
            if r == NONE || col == NONE {
                return Ok(());
            }
            let r = r as usize;
            let f = fill[r] as usize;
            buf[r * k + f] = col;
            if f + 1 == k {
                if at[r] + k as u64 > indptr[r + 1] {
                    return Err(changed(format!("row {r} holds more entries than counted")));
                }
                writer.write_at(at[r], &buf[r * k..(r + 1) * k])?;
                at[r] += k as u64;
                fill[r] = 0;
                writes += 1;
            } else {
                fill[r] += 1;
            }
            Ok(())
        })?;
        for r in 0..n_rows {
            let f = fill[r] as usize;
            if at[r] + f as u64 != indptr[r + 1] {
                return Err(changed(format!(
                    "row {r} holds {} entries, not the {} counted",
                    at[r] + f as u64 - indptr[r],
                    indptr[r + 1] - indptr[r]
                )));
            }
            if f > 0 {
                writer.write_at(at[r], &buf[r * k..r * k + f])?;
                writes += 1;
            }
        }
    } else {
        row_buffer = 0;
        let mut row: Vec<u32> = Vec::new();
        let mut current = NONE;
        let finish_row = |current: u32, row: &mut Vec<u32>, writes: &mut u64| -> Result<(), FileError> {
            if current == NONE {
                return Ok(());
            }
            let r = current as usize;
            if row.len() as u64 != indptr[r + 1] - indptr[r] {
                return Err(changed(format!(
                    "row {r} holds {} entries, not the {} counted",
                    row.len(),
                    indptr[r + 1] - indptr[r]
                )));
            }
            if !row.windows(2).all(|w| w[0] < w[1]) {
                row.sort_unstable();
            }
            writer.write_at(indptr[r], row)?;
            *writes += 1;
            row.clear();
            Ok(())
        };
        each_entry(&mut src, block, zero_cap, &wanted, &mut |p, c| {
            let (r, col) = (out_row[p as usize], column[c as usize]);
            if r == NONE || col == NONE {
                return Ok(());
            }
            if r != current {
                finish_row(current, &mut row, &mut writes)?;
                current = r;
            }
            row.push(col);
            Ok(())
        })?;
        finish_row(current, &mut row, &mut writes)?;
    }
    let nnz = indptr[n_rows];
    let hashing = std::time::Instant::now();
    writer.finish()?;
    src.pass_seconds.push(hashing.elapsed().as_secs_f64());
    Ok(ConvertSummary {
        input_peaks: n_src_peaks,
        input_cells: n_cells,
        input_entries: src.entries,
        peaks: n_rows,
        cells: barcodes.len(),
        nnz,
        dropped_empty_cells,
        passes: src.passes,
        pass_seconds: src.pass_seconds.clone(),
        order: src.order_name(),
        row_buffer,
        writes,
        temporary_bytes,
    })
}

impl Source {
    fn order_name(&self) -> &'static str {
        match self.body {
            Body::Sorted { .. } => Order::Unsorted.name(),
            _ => self.order.name(),
        }
    }
}

/// Sorts an input in no order into a temporary file of peak-major rows (cells ascending, each
/// pair once) beside `out`, a range of peaks per pass with at most `memory` bytes of pairs,
/// and makes it the source. Returns the temporary file's size.
fn sort_into_temporary(
    src: &mut Source,
    wanted: &[bool],
    memory: u64,
    block: usize,
    out: &Path,
) -> Result<u64, FileError> {
    use std::io::Write;
    let n_peaks = src.peaks.len();
    // Entries per peak, duplicates included: what a range must hold before it is deduplicated.
    let mut raw = vec![0u64; n_peaks];
    src.pass(block, 0, &mut |ps, _| {
        for &p in ps {
            raw[p as usize] += 1;
        }
        Ok(())
    })?;
    let per_range = (memory / 8).max(1);
    let file = AtomicFile::new(out.with_file_name(format!(
        "{}.sorting",
        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    )))?;
    let mut w = file.create()?;
    let mut indptr = vec![0u64; n_peaks + 1];
    let mut lo = 0usize;
    let mut pairs: Vec<u64> = Vec::new();
    while lo < n_peaks {
        let mut hi = lo;
        let mut held = 0u64;
        while hi < n_peaks && (hi == lo || held + raw[hi] * wanted[hi] as u64 <= per_range) {
            held += raw[hi] * wanted[hi] as u64;
            hi += 1;
        }
        pairs.clear();
        src.pass(block, 0, &mut |ps, cs| {
            for (&p, &c) in ps.iter().zip(cs) {
                if (lo..hi).contains(&(p as usize)) && wanted[p as usize] {
                    pairs.push((p as u64) << 32 | c as u64);
                }
            }
            Ok(())
        })?;
        pairs.sort_unstable();
        pairs.dedup();
        let mut k = 0;
        for p in lo..hi {
            let start = k;
            while k < pairs.len() && (pairs[k] >> 32) as usize == p {
                k += 1;
            }
            indptr[p + 1] = indptr[p] + (k - start) as u64;
            let cells: Vec<u32> = pairs[start..k].iter().map(|&v| v as u32).collect();
            w.write_all(bytemuck::cast_slice(&cells)).map_err(FileError::io(file.path()))?;
        }
        lo = hi;
    }
    w.flush().map_err(FileError::io(file.path()))?;
    drop(w);
    let bytes = 4 * indptr[n_peaks];
    let map = if bytes == 0 {
        memmap2::MmapOptions::new()
            .map_anon()
            .map_err(FileError::io(file.path()))?
            .make_read_only()
            .map_err(FileError::io(file.path()))?
    } else {
        let f = std::fs::File::open(file.path()).map_err(FileError::io(file.path()))?;
        // SAFETY: a temporary file this process wrote and closed; nothing writes it again
        // before it is removed (on drop).
        unsafe { memmap2::Mmap::map(&f) }.map_err(FileError::io(file.path()))?
    };
    src.body = Body::Sorted { _file: file, map, indptr };
    src.order = Order::PeakMajor;
    Ok(bytes)
}

/// Bytes as B, KiB, MiB or GiB.
pub fn show_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
