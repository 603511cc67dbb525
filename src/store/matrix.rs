//! Peak-by-cell count matrices: CSR (peaks × cells, u32 column indices, u32 counts), built
//! from a fragments file and peaks, stored memory-mapped, never densified.
//!
//! Layout (little-endian): magic "CHROMAXM", u32 version, u32 reserved, u64 JSON length,
//! the JSON index (shape, nnz, peak coordinates, cell barcodes, section offsets), then three
//! 4 KiB-aligned arrays: `indptr` (u64, peaks + 1), `indices` (u32, nnz; sorted within a row)
//! and `counts` (u32, nnz).

use crate::error::FileError;
use crate::io::atomic::AtomicFile;
use crate::io::bed::Interval;
use crate::io::fragments::FragmentReader;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

pub const MATRIX_MAGIC: &[u8; 8] = b"CHROMAXM";
pub const MATRIX_VERSION: u32 = 1;
const ALIGN: u64 = 4096;

/// A CSR matrix in memory (peaks are rows, cells are columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrCounts {
    pub peaks: Vec<Interval>,
    pub cells: Vec<String>,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
}

impl CsrCounts {
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// (cell, count) pairs of peak `row`.
    pub fn row(&self, row: usize) -> impl Iterator<Item = (u32, u32)> + '_ {
        let (a, b) = (self.indptr[row] as usize, self.indptr[row + 1] as usize);
        self.indices[a..b].iter().copied().zip(self.counts[a..b].iter().copied())
    }
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MatrixIndex {
    version: u32,
    peaks: usize,
    cells: usize,
    nnz: usize,
    indptr_offset: u64,
    indices_offset: u64,
    counts_offset: u64,
    /// `chrom:start-end` (0-based start, as BED).
    peak_names: Vec<String>,
    barcodes: Vec<String>,
}

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Writes a matrix store atomically.
pub fn write_matrix(path: &Path, m: &CsrCounts) -> Result<(), FileError> {
    let mut index = MatrixIndex {
        version: MATRIX_VERSION,
        peaks: m.peaks.len(),
        cells: m.cells.len(),
        nnz: m.nnz(),
        indptr_offset: u64::MAX,
        indices_offset: u64::MAX,
        counts_offset: u64::MAX,
        peak_names: m.peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect(),
        barcodes: m.cells.clone(),
    };
    let reserved = serde_json::to_vec(&index).map_err(|e| FileError::content(path, e.to_string()))?.len();
    index.indptr_offset = align(24 + reserved as u64);
    index.indices_offset = align(index.indptr_offset + 8 * m.indptr.len() as u64);
    index.counts_offset = align(index.indices_offset + 4 * m.indices.len() as u64);
    let mut json = serde_json::to_vec(&index).map_err(|e| FileError::content(path, e.to_string()))?;
    json.resize(reserved, b' ');
    let file = AtomicFile::new(path)?;
    let mut w = file.create()?;
    let io = |e| FileError::Io { path: path.to_path_buf(), source: e };
    let mut at = 0u64;
    let put = |w: &mut std::io::BufWriter<std::fs::File>, bytes: &[u8], at: &mut u64| -> Result<(), FileError> {
        w.write_all(bytes).map_err(io)?;
        *at += bytes.len() as u64;
        Ok(())
    };
    put(&mut w, MATRIX_MAGIC, &mut at)?;
    put(&mut w, &MATRIX_VERSION.to_le_bytes(), &mut at)?;
    put(&mut w, &0u32.to_le_bytes(), &mut at)?;
    put(&mut w, &(json.len() as u64).to_le_bytes(), &mut at)?;
    put(&mut w, &json, &mut at)?;
    for (offset, bytes) in [
        (index.indptr_offset, m.indptr.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
        (index.indices_offset, m.indices.iter().flat_map(|v| v.to_le_bytes()).collect()),
        (index.counts_offset, m.counts.iter().flat_map(|v| v.to_le_bytes()).collect()),
    ] {
        let gap = vec![0u8; (offset - at) as usize];
        put(&mut w, &gap, &mut at)?;
        put(&mut w, &bytes, &mut at)?;
    }
    w.flush().map_err(FileError::io(path))?;
    drop(w);
    file.commit()
}

/// A memory-mapped matrix store.
pub struct CellMatrix {
    map: Mmap,
    index: MatrixIndex,
}

impl CellMatrix {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let f = std::fs::File::open(path).map_err(FileError::io(path))?;
        // SAFETY: stores are written once under a temporary name and renamed; never modified.
        let map = unsafe { Mmap::map(&f) }.map_err(FileError::io(path))?;
        if map.len() < 24 || &map[..8] != MATRIX_MAGIC {
            return Err(FileError::content(path, "not a chromax matrix store"));
        }
        let len = u64::from_le_bytes(map[16..24].try_into().unwrap_or([0; 8])) as usize;
        let json = map.get(24..24 + len).ok_or_else(|| FileError::content(path, "truncated index"))?;
        let index: MatrixIndex =
            serde_json::from_slice(json).map_err(|e| FileError::content(path, format!("unreadable index: {e}")))?;
        let end = index.counts_offset + 4 * index.nnz as u64;
        if index.version != MATRIX_VERSION
            || end > map.len() as u64
            || index.indptr_offset % ALIGN != 0
            || index.indices_offset % ALIGN != 0
            || index.counts_offset % ALIGN != 0
        {
            return Err(FileError::content(path, "damaged or truncated matrix store"));
        }
        Ok(CellMatrix { map, index })
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.index.peaks, self.index.cells)
    }
    pub fn barcodes(&self) -> &[String] {
        &self.index.barcodes
    }
    pub fn peak_names(&self) -> &[String] {
        &self.index.peak_names
    }

    pub fn indptr(&self) -> &[u64] {
        let o = self.index.indptr_offset as usize;
        bytemuck::cast_slice(&self.map[o..o + 8 * (self.index.peaks + 1)])
    }
    pub fn indices(&self) -> &[u32] {
        let o = self.index.indices_offset as usize;
        bytemuck::cast_slice(&self.map[o..o + 4 * self.index.nnz])
    }
    pub fn counts(&self) -> &[u32] {
        let o = self.index.counts_offset as usize;
        bytemuck::cast_slice(&self.map[o..o + 4 * self.index.nnz])
    }
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
        }
    }
}
