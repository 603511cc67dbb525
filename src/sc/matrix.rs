//! Peak-by-cell matrices for the single-cell task: counted from fragments, read from any form
//! a user has (AnnData, 10x HDF5, Matrix Market, a `.cxmatrix` store), matched to the peak
//! file and filtered as scBasset's preprocessing does.
//!
//! For training (`chromax sc train --matrix M --peaks P.bed`): [`read_cell_matrix`] reads a
//! matrix in any accepted form, [`match_peaks`] checks it against the peak file and puts its
//! rows in that file's order, and [`filter_matrix`] binarises and filters it into a
//! [`FilteredMatrix`], which the store ([`crate::store::matrix`]) then holds.

use crate::error::FileError;
use crate::io::bed::Interval;
use crate::io::fragments::FragmentReader;
use crate::store::matrix::{csr_from_entries, read_matrix, write_binary_csr, CsrCounts};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Which cells a matrix keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellFilter {
    /// These barcodes (in this order).
    Barcodes(Vec<String>),
    /// Every barcode with at least this many fragments (in sorted order).
    MinFragments(u64),
}

/// Counts, for every peak and kept cell, the fragments overlapping the peak
/// (`fragment.start < peak.end && peak.start < fragment.end`).
pub fn count_fragments_in_peaks(
    fragments: &Path,
    peaks: &[Interval],
    cells: &CellFilter,
) -> Result<CsrCounts, FileError> {
    if peaks.is_empty() {
        return Err(FileError::Argument("no peaks to count in".into()));
    }
    // Peaks by chromosome, sorted by start, with the longest length for the window search.
    let mut by_chrom: HashMap<&str, Vec<(u64, u64, usize)>> = HashMap::new();
    for (i, p) in peaks.iter().enumerate() {
        by_chrom.entry(p.chrom.as_str()).or_default().push((p.start, p.end, i));
    }
    let mut longest: HashMap<&str, u64> = HashMap::new();
    for (chrom, list) in by_chrom.iter_mut() {
        list.sort_unstable();
        longest.insert(chrom, list.iter().map(|(s, e, _)| e - s).max().unwrap_or(0));
    }

    // First pass for a fragment-count threshold: fragments per barcode.
    let keep: Vec<String> = match cells {
        CellFilter::Barcodes(list) => list.clone(),
        CellFilter::MinFragments(min) => {
            let mut totals: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            let mut reader = FragmentReader::open(fragments)?;
            while let Some(f) = reader.next()? {
                *totals.entry(f.barcode.to_vec()).or_insert(0) += 1;
            }
            totals
                .into_iter()
                .filter(|(_, n)| n >= min)
                .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
                .collect()
        }
    };
    if keep.is_empty() {
        return Err(FileError::Argument(
            "no cell passes the selection: lower the minimum fragment count or check the barcode list".into(),
        ));
    }
    let column: HashMap<Vec<u8>, u32> =
        keep.iter().enumerate().map(|(i, b)| (b.as_bytes().to_vec(), i as u32)).collect();

    let mut cell_counts: Vec<HashMap<u32, u32>> = vec![HashMap::new(); peaks.len()];
    let mut seen_cells: HashSet<u32> = HashSet::new();
    let mut reader = FragmentReader::open(fragments)?;
    while let Some(f) = reader.next()? {
        let Some(&col) = column.get(f.barcode) else { continue };
        let Ok(chrom) = std::str::from_utf8(f.chrom) else { continue };
        let Some(list) = by_chrom.get(chrom) else { continue };
        let reach = longest.get(chrom).copied().unwrap_or(0);
        // Peaks starting before the fragment's end and after (start − longest peak).
        let lo = list.partition_point(|(s, _, _)| s + reach <= f.start);
        for &(s, e, i) in list[lo..].iter().take_while(|(s, _, _)| *s < f.end) {
            if s < f.end && f.start < e {
                *cell_counts[i].entry(col).or_insert(0) += 1;
                seen_cells.insert(col);
            }
        }
    }
    if seen_cells.is_empty() {
        return Err(FileError::Mismatch(format!(
            "{}: no fragment of the selected cells overlaps a peak (check that chromosome names and barcodes match)",
            fragments.display()
        )));
    }
    let mut indptr = Vec::with_capacity(peaks.len() + 1);
    let (mut indices, mut counts) = (Vec::new(), Vec::new());
    indptr.push(0u64);
    for row in cell_counts {
        let mut entries: Vec<(u32, u32)> = row.into_iter().collect();
        entries.sort_unstable();
        for (c, n) in entries {
            indices.push(c);
            counts.push(n);
        }
        indptr.push(indices.len() as u64);
    }
    Ok(CsrCounts { peaks: peaks.to_vec(), cells: keep, indptr, indices, counts })
}

impl CsrCounts {
    /// The matrix as an AnnData file's content: cells as obs (barcodes, total counts in
    /// peaks), peaks as var (`chr:start-end` names; chr, start, end columns), X cells × peaks.
    pub fn to_anndata(&self) -> crate::io::h5ad::AnnData {
        use crate::io::h5ad::{transpose, AnnData, Column, CsrF32};
        let peaks_by_cells = CsrF32 {
            rows: self.peaks.len(),
            cols: self.cells.len(),
            indptr: self.indptr.iter().map(|&v| v as i64).collect(),
            indices: self.indices.iter().map(|&v| v as i64).collect(),
            data: self.counts.iter().map(|&v| v as f32).collect(),
        };
        let x = transpose(&peaks_by_cells);
        let totals: Vec<f64> = (0..x.rows)
            .map(|r| x.data[x.indptr[r] as usize..x.indptr[r + 1] as usize].iter().map(|&v| v as f64).sum())
            .collect();
        AnnData {
            x: Some(x),
            obs_names: self.cells.clone(),
            obs: vec![("n_fragments_in_peaks".into(), Column::F64(totals))],
            var_names: self.peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect(),
            var: vec![
                ("chr".into(), Column::Str(self.peaks.iter().map(|p| p.chrom.clone()).collect())),
                ("start".into(), Column::I64(self.peaks.iter().map(|p| p.start as i64).collect())),
                ("end".into(), Column::I64(self.peaks.iter().map(|p| p.end as i64).collect())),
            ],
            obsm: Vec::new(),
            x_dense: None,
        }
    }
}

/// The forms [`read_cell_matrix`] accepts, for messages.
const ACCEPTED_MATRICES: &str = "an AnnData .h5ad (X cells × peaks), a 10x .h5 (filtered_peak_bc_matrix.h5), \
     a Matrix Market directory (matrix.mtx[.gz], barcodes.tsv[.gz], peaks.bed[.gz]) or a chromax .cxmatrix store";

/// Reads a peak-by-cell matrix, whichever form it comes in, as canonical CSR (peaks × cells;
/// columns ascending within a row, duplicate entries summed, explicit zeros dropped; peaks
/// and cells in the order of the source):
///
/// * a directory: Matrix Market ([`crate::io::mtx`]), peaks × barcodes or the transpose;
///   a path to its `matrix.mtx[.gz]` reads the directory too;
/// * `.h5ad`: AnnData, X cells × peaks, CSR, CSC or dense ([`crate::io::h5ad::read_h5ad_counts`]);
/// * `.h5` / `.hdf5`: a 10x feature-barcode matrix ([`crate::io::tenx`]), or an AnnData file;
/// * `.cxmatrix`: the store [`write_matrix`] writes.
///
/// Stored values become counts by [`count_from_value`](crate::io::h5ad::count_from_value):
/// any value > 0 counts, as `max(1, round(v))`.
pub fn read_cell_matrix(path: &Path) -> Result<CsrCounts, FileError> {
    use crate::io::{h5ad, mtx, tenx};
    if path.is_dir() {
        return mtx_to_counts(mtx::read_mtx_dir(path)?);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if !path.exists() {
        return Err(FileError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such file or directory; expected {ACCEPTED_MATRICES}"),
            ),
        });
    }
    if name.ends_with(".mtx") || name.ends_with(".mtx.gz") {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return mtx_to_counts(mtx::read_mtx_dir(dir)?);
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "h5ad" => Ok(h5ad_to_counts(h5ad::read_h5ad_counts(path)?)),
        "h5" | "hdf5" if tenx::is_10x_h5(path) => Ok(tenx_to_counts(tenx::read_10x_h5(path)?)),
        "h5" | "hdf5" => h5ad::read_h5ad_counts(path).map(h5ad_to_counts).map_err(|e| {
            FileError::content(path, format!("neither a 10x matrix (no 'matrix' group) nor an AnnData file ({e})"))
        }),
        "cxmatrix" => read_matrix(path),
        _ => Err(FileError::content(path, format!("not a matrix form this reads: expected {ACCEPTED_MATRICES}"))),
    }
}

fn h5ad_to_counts(h: crate::io::h5ad::H5adCounts) -> CsrCounts {
    // X is cells × peaks: each entry (cell, peak) goes to peak row `peak`.
    let (indptr, indices, counts) = csr_from_entries(h.peaks.len(), |f| h.x.for_each(|cell, peak, n| f(peak, cell, n)));
    CsrCounts { peaks: h.peaks, cells: h.obs_names, indptr, indices, counts }
}

fn tenx_to_counts(t: crate::io::tenx::TenxMatrix) -> CsrCounts {
    let mut peak_of_row = vec![u32::MAX; t.counts.rows];
    for (i, &r) in t.peak_rows.iter().enumerate() {
        peak_of_row[r as usize] = i as u32;
    }
    let (indptr, indices, counts) = csr_from_entries(t.peaks.len(), |f| {
        t.counts.for_each(|row, cell, n| {
            let peak = peak_of_row[row as usize];
            if peak != u32::MAX {
                f(peak, cell, n);
            }
        })
    });
    CsrCounts { peaks: t.peaks, cells: t.barcodes, indptr, indices, counts }
}

fn mtx_to_counts(d: crate::io::mtx::MtxDir) -> Result<CsrCounts, FileError> {
    let m = &d.matrix;
    let (indptr, indices, counts) = csr_from_entries(d.peaks.len(), |f| {
        for k in 0..m.row.len() {
            if d.transposed {
                f(m.col[k], m.row[k], m.counts[k]);
            } else {
                f(m.row[k], m.col[k], m.counts[k]);
            }
        }
    });
    Ok(CsrCounts { peaks: d.peaks, cells: d.barcodes, indptr, indices, counts })
}

fn show_peak(p: &Interval) -> String {
    format!("{}:{}-{}", p.chrom, p.start, p.end)
}

/// Checks that a matrix and the peak file given for training describe the same peaks, or
/// that the file names a subset of the matrix's (chromosome, start and end equal, compared
/// exactly), and returns the matrix with the file's peaks as its rows, in the file's order.
/// A peak of the file the matrix lacks is an error naming both files ([`peak_rows`]).
pub fn match_peaks(
    m: CsrCounts,
    peaks: &[Interval],
    matrix_path: &Path,
    peaks_path: &Path,
) -> Result<CsrCounts, FileError> {
    if m.peaks == peaks {
        return Ok(m);
    }
    let order = peak_rows(&m.peaks, peaks, matrix_path, peaks_path)?;
    let mut indptr = Vec::with_capacity(order.len() + 1);
    let (mut indices, mut counts) = (Vec::new(), Vec::new());
    indptr.push(0u64);
    for &r in &order {
        let (a, b) = (m.indptr[r] as usize, m.indptr[r + 1] as usize);
        indices.extend_from_slice(&m.indices[a..b]);
        counts.extend_from_slice(&m.counts[a..b]);
        indptr.push(indices.len() as u64);
    }
    Ok(CsrCounts { peaks: peaks.to_vec(), cells: m.cells, indptr, indices, counts })
}

/// For each peak of the peak file, the matrix row that holds it (a peak listed twice is
/// taken from a different row each time): the index array by which a matrix is matched to
/// the peaks without copying its rows. The file may name all the matrix's peaks in any order
/// or a subset of them; more peaks than the matrix has, or a peak it lacks, is an error that
/// names both files, the first row where they differ and both coordinates there.
pub fn peak_rows(
    matrix_peaks: &[Interval],
    peaks: &[Interval],
    matrix_path: &Path,
    peaks_path: &Path,
) -> Result<Vec<usize>, FileError> {
    let (mp, pp) = (matrix_path.display(), peaks_path.display());
    if matrix_peaks.len() < peaks.len() {
        return Err(FileError::Mismatch(format!(
            "matrix {mp} has {} peaks, peak file {pp} has {}: give --peaks the peaks the matrix was counted on \
             (for Cell Ranger output, its peaks.bed), or a subset of them",
            matrix_peaks.len(),
            peaks.len()
        )));
    }
    if matrix_peaks[..peaks.len()] == *peaks {
        return Ok((0..peaks.len()).collect());
    }
    // Matrix rows by coordinates; a peak listed twice is used once per listing.
    let mut rows_of: HashMap<(&str, u64, u64), Vec<usize>> = HashMap::new();
    for (r, p) in matrix_peaks.iter().enumerate().rev() {
        rows_of.entry((p.chrom.as_str(), p.start, p.end)).or_default().push(r);
    }
    let mut order = Vec::with_capacity(peaks.len());
    let mut missing = Vec::new();
    for (i, p) in peaks.iter().enumerate() {
        match rows_of.get_mut(&(p.chrom.as_str(), p.start, p.end)).and_then(Vec::pop) {
            Some(r) => order.push(r),
            None => missing.push(i),
        }
    }
    let Some(&first_missing) = missing.first() else { return Ok(order) };
    let d = (0..peaks.len()).find(|&i| matrix_peaks[i] != peaks[i]).unwrap_or(first_missing);
    let (a, b) = (&matrix_peaks[d], &peaks[d]);
    let hint = if a.chrom == b.chrom && a.end == b.end && a.start.abs_diff(b.start) == 1 {
        "; the starts differ by 1: one of the two is 1-based (BED and Cell Ranger are 0-based, \
         Signac/GRanges peak names 1-based)"
            .to_string()
    } else if a.chrom.strip_prefix("chr") == Some(b.chrom.as_str())
        || b.chrom.strip_prefix("chr") == Some(a.chrom.as_str())
    {
        "; the chromosome names differ in the 'chr' prefix".to_string()
    } else {
        String::new()
    };
    Err(FileError::Mismatch(format!(
        "matrix {mp} and peak file {pp} describe different peaks: at peak #{} the matrix has {}, the peak file {}; \
         {} of the peak file's peaks are not in the matrix (first: #{} {}){hint}",
        d + 1,
        show_peak(a),
        show_peak(b),
        missing.len(),
        first_missing + 1,
        show_peak(&peaks[first_missing])
    )))
}

/// A binarised peak-by-cell matrix after filtering: what training reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredMatrix {
    /// The kept peaks, in input order.
    pub peaks: Vec<Interval>,
    /// The kept cells' barcodes, in input order.
    pub barcodes: Vec<String>,
    /// For each kept peak, its row in the input matrix.
    pub peak_rows: Vec<u32>,
    /// For each kept cell, its column in the input matrix.
    pub cell_columns: Vec<u32>,
    /// CSR over the kept peaks (length peaks + 1).
    pub indptr: Vec<u64>,
    /// The kept cells (renumbered 0..cells) where each peak is present, ascending.
    pub indices: Vec<u32>,
    /// Cells that passed the cell filter but had no present peak left after the peak
    /// filter, and were dropped for it (always 0 with `min_peaks_per_cell = 0`).
    pub dropped_empty_cells: usize,
    /// The filters applied: [min cells per peak, min peaks per cell].
    pub filters: [u32; 2],
}

impl FilteredMatrix {
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// As counts (all 1), e.g. to cache with [`write_matrix`].
    pub fn to_counts(&self) -> CsrCounts {
        CsrCounts {
            peaks: self.peaks.clone(),
            cells: self.barcodes.clone(),
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            counts: vec![1; self.indices.len()],
        }
    }
}

/// Writes a filtered (binary) matrix as a binary `.cxmatrix` store (no counts section) that
/// records its filters.
pub fn write_binary_matrix(path: &Path, f: &FilteredMatrix) -> Result<(), FileError> {
    write_binary_csr(path, &f.peaks, &f.barcodes, &f.indptr, &f.indices, Some(f.filters))
}

/// Binarises a matrix (a peak is present in a cell when its count is > 0) and filters it as
/// scBasset's preprocessing does, one pass each and cells first:
///
/// 1. keep cells with at least `min_peaks_per_cell` present peaks;
/// 2. keep peaks present in at least `min_cells_per_peak` of the cells kept in 1;
/// 3. with `min_peaks_per_cell ≥ 1`, drop the cells left with no present peak after 2 (an
///    empty cell must not reach training; this changes no peak's count, so 2 still holds).
///    With `min_peaks_per_cell = 0` such cells are kept: their every target is 0.
///
/// Pass 1 is not repeated after 2, so a kept cell may end with fewer than
/// `min_peaks_per_cell` kept peaks (but never 0 unless `min_peaks_per_cell = 0`). Expects
/// canonical CSR (as every reader here returns). An empty result is an error naming the
/// filters and what remained.
pub fn filter_matrix(
    m: &CsrCounts,
    min_cells_per_peak: u32,
    min_peaks_per_cell: u32,
) -> Result<FilteredMatrix, FileError> {
    let (n_peaks, n_cells) = (m.peaks.len(), m.cells.len());
    let filters = format!(
        "filtering the {n_peaks} peaks × {n_cells} cells with min cells per peak {min_cells_per_peak} and \
         min peaks per cell {min_peaks_per_cell}"
    );
    let present = |r: usize| m.row(r).filter(|&(_, n)| n > 0).map(|(c, _)| c as usize);

    let mut peaks_per_cell = vec![0u32; n_cells];
    for r in 0..n_peaks {
        present(r).for_each(|c| peaks_per_cell[c] += 1);
    }
    let keep_cell: Vec<bool> = peaks_per_cell.iter().map(|&n| n >= min_peaks_per_cell).collect();
    let cells_left = keep_cell.iter().filter(|&&k| k).count();
    if cells_left == 0 {
        return Err(FileError::Argument(format!(
            "{filters} leaves no cells: the most peaks any cell has is {}",
            peaks_per_cell.iter().max().copied().unwrap_or(0)
        )));
    }

    let cells_per_peak: Vec<u32> = (0..n_peaks).map(|r| present(r).filter(|&c| keep_cell[c]).count() as u32).collect();
    let peak_rows: Vec<u32> =
        (0..n_peaks as u32).filter(|&r| cells_per_peak[r as usize] >= min_cells_per_peak).collect();
    if peak_rows.is_empty() {
        return Err(FileError::Argument(format!(
            "{filters} leaves no peaks: {cells_left} cells pass, and the most of them any peak is present in is {}",
            cells_per_peak.iter().max().copied().unwrap_or(0)
        )));
    }

    let mut has_peak = vec![false; n_cells];
    for &r in &peak_rows {
        present(r as usize).for_each(|c| has_peak[c] = true);
    }
    let mut column = vec![u32::MAX; n_cells];
    let mut cell_columns = Vec::new();
    let mut dropped_empty_cells = 0;
    for c in 0..n_cells {
        if !keep_cell[c] {
            continue;
        }
        if min_peaks_per_cell >= 1 && !has_peak[c] {
            dropped_empty_cells += 1;
            continue;
        }
        column[c] = cell_columns.len() as u32;
        cell_columns.push(c as u32);
    }
    if cell_columns.is_empty() {
        return Err(FileError::Argument(format!(
            "{filters} leaves no cells: {cells_left} cells pass the cell filter but none has a peak among the {} kept",
            peak_rows.len()
        )));
    }

    let mut indptr = Vec::with_capacity(peak_rows.len() + 1);
    let mut indices = Vec::new();
    indptr.push(0u64);
    for &r in &peak_rows {
        let mut last = u32::MAX;
        for c in present(r as usize) {
            let col = column[c];
            // Duplicates in a non-canonical row would count twice; skip them.
            if col != u32::MAX && col != last {
                indices.push(col);
                last = col;
            }
        }
        indptr.push(indices.len() as u64);
    }
    Ok(FilteredMatrix {
        peaks: peak_rows.iter().map(|&r| m.peaks[r as usize].clone()).collect(),
        barcodes: cell_columns.iter().map(|&c| m.cells[c as usize].clone()).collect(),
        peak_rows,
        cell_columns,
        indptr,
        indices,
        dropped_empty_cells,
        filters: [min_cells_per_peak, min_peaks_per_cell],
    })
}
