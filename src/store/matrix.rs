//! The peak-by-cell matrix store (`.cxmatrix`): CSR (peaks × cells, u32 column indices, u32
//! counts where the matrix has values), read memory-mapped, never densified.
//!
//! Layout (little-endian): magic "CHROMAXM", u32 version, u32 reserved, u64 JSON length,
//! the JSON index (shape, nnz, peak coordinates, cell barcodes, section offsets), then 4
//! KiB-aligned arrays: `indptr` (u64, peaks + 1), `indices` (u32, nnz; sorted within a row)
//! and, in a store with values (version 1), `counts` (u32, nnz). A binary store (version 2,
//! what training reads: labels are presence) has no counts section: 4 bytes per non-zero,
//! the cell index only; its every count reads as 1.
//!
//! Where matrices come from (fragments, AnnData, 10x, Matrix Market) and how they are matched
//! to peaks and filtered for training is the single-cell task's: [`crate::sc::matrix`].

use crate::error::FileError;
use crate::io::atomic::AtomicFile;
use crate::io::bed::Interval;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

pub const MATRIX_MAGIC: &[u8; 8] = b"CHROMAXM";
/// A store with a counts section.
pub const MATRIX_VERSION: u32 = 1;
/// A binary store: no counts section, every count 1.
pub const BINARY_MATRIX_VERSION: u32 = 2;
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MatrixIndex {
    version: u32,
    peaks: usize,
    cells: usize,
    nnz: usize,
    indptr_offset: u64,
    indices_offset: u64,
    /// Absent in a binary store (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counts_offset: Option<u64>,
    /// `chrom:start-end` (0-based start, as BED).
    peak_names: Vec<String>,
    barcodes: Vec<String>,
    /// SHA-256 of the content: the peak names and barcodes, then every byte after the index
    /// (the arrays and their alignment padding), computed while writing, so the store's
    /// identity needs no second reading. Stores written before it was recorded lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_sha256: Option<String>,
    /// The filters a filtered store was made with: [min cells per peak, min peaks per cell]
    /// (a run with the same filters takes it as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filters: Option<[u32; 2]>,
}

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// Writes a store section by section: the header and JSON index, then each array at its
/// aligned offset, streamed in pieces so no byte copy of an array is ever whole.
struct StoreWriter {
    path: std::path::PathBuf,
    file: AtomicFile,
    w: std::io::BufWriter<std::fs::File>,
    at: u64,
    index: MatrixIndex,
    /// The index's length in the file, and the hash of what follows it.
    reserved: usize,
    content: Option<Sha256>,
}

impl StoreWriter {
    /// A store with a counts section when `values`, else a binary one.
    fn begin(
        path: &Path,
        peak_names: Vec<String>,
        barcodes: &[String],
        nnz: usize,
        values: bool,
        filters: Option<[u32; 2]>,
    ) -> Result<Self, FileError> {
        let mut index = MatrixIndex {
            version: if values { MATRIX_VERSION } else { BINARY_MATRIX_VERSION },
            peaks: peak_names.len(),
            cells: barcodes.len(),
            nnz,
            indptr_offset: u64::MAX,
            indices_offset: u64::MAX,
            counts_offset: values.then_some(u64::MAX),
            peak_names,
            barcodes: barcodes.to_vec(),
            content_sha256: Some("0".repeat(64)),
            filters,
        };
        // Serialised once with placeholder offsets (the longest they can print) and hash to
        // size it; rewritten with the real hash when the arrays are done.
        let reserved = serde_json::to_vec(&index).map_err(|e| FileError::content(path, e.to_string()))?.len();
        index.indptr_offset = align(24 + reserved as u64);
        index.indices_offset = align(index.indptr_offset + 8 * (index.peaks as u64 + 1));
        if values {
            index.counts_offset = Some(align(index.indices_offset + 4 * nnz as u64));
        }
        let mut json = serde_json::to_vec(&index).map_err(|e| FileError::content(path, e.to_string()))?;
        json.resize(reserved, b' ');
        let file = AtomicFile::new(path)?;
        let w = file.create()?;
        let mut s = StoreWriter { path: path.to_path_buf(), file, w, at: 0, index, reserved, content: None };
        s.put(MATRIX_MAGIC)?;
        s.put(&MATRIX_VERSION.to_le_bytes())?;
        s.put(&0u32.to_le_bytes())?;
        s.put(&(json.len() as u64).to_le_bytes())?;
        s.put(&json)?;
        s.content = Some(names_hash(&s.index));
        Ok(s)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.w.write_all(bytes).map_err(FileError::io(&self.path))?;
        if let Some(h) = &mut self.content {
            h.update(bytes);
        }
        self.at += bytes.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, offset: u64) -> Result<(), FileError> {
        let gap = vec![0u8; (offset - self.at) as usize];
        self.put(&gap)
    }

    fn put_u64s(&mut self, v: &[u64]) -> Result<(), FileError> {
        for chunk in v.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.put(&bytes)?;
        }
        Ok(())
    }

    fn put_u32s(&mut self, v: &[u32]) -> Result<(), FileError> {
        for chunk in v.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.put(&bytes)?;
        }
        Ok(())
    }

    /// Writes the index again with the content's hash (no longer than its placeholder), then
    /// renames the store into place.
    fn finish(mut self) -> Result<(), FileError> {
        let io = FileError::io(&self.path);
        let hash = self.content.take().map(|h| hex(&h.finalize()));
        self.index.content_sha256 = hash;
        let mut json = serde_json::to_vec(&self.index).map_err(|e| FileError::content(&self.path, e.to_string()))?;
        json.resize(self.reserved, b' ');
        let mut f = self.w.into_inner().map_err(|e| FileError::io(&self.path)(e.into_error()))?;
        f.seek(SeekFrom::Start(24)).and_then(|_| f.write_all(&json)).and_then(|()| f.flush()).map_err(io)?;
        drop(f);
        self.file.commit()
    }
}

/// The content hash's start: the peak names and barcodes (the bytes after the index follow).
fn names_hash(index: &MatrixIndex) -> Sha256 {
    let mut content = Sha256::new();
    for list in [&index.peak_names, &index.barcodes] {
        list.iter().for_each(|n| content.update(format!("{n}\n").as_bytes()));
        content.update([0u8]);
    }
    content
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `chrom:start-end` names a store keeps for its peaks.
pub fn peak_names(peaks: &[Interval]) -> Vec<String> {
    peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect()
}

/// Writes a matrix store with its counts, atomically.
pub fn write_matrix(path: &Path, m: &CsrCounts) -> Result<(), FileError> {
    let mut s = StoreWriter::begin(path, peak_names(&m.peaks), &m.cells, m.nnz(), true, None)?;
    let (a, b) = (s.index.indptr_offset, s.index.indices_offset);
    s.pad_to(a)?;
    s.put_u64s(&m.indptr)?;
    s.pad_to(b)?;
    s.put_u32s(&m.indices)?;
    if let Some(c) = s.index.counts_offset {
        s.pad_to(c)?;
        s.put_u32s(&m.counts)?;
    }
    s.finish()
}

/// Writes a binary store (no counts: every entry is a presence), atomically, recording the
/// filters it was made with.
pub fn write_binary_csr(
    path: &Path,
    peaks: &[Interval],
    barcodes: &[String],
    indptr: &[u64],
    indices: &[u32],
    filters: Option<[u32; 2]>,
) -> Result<(), FileError> {
    let mut s = StoreWriter::begin(path, peak_names(peaks), barcodes, indices.len(), false, filters)?;
    let (a, b) = (s.index.indptr_offset, s.index.indices_offset);
    s.pad_to(a)?;
    s.put_u64s(indptr)?;
    s.pad_to(b)?;
    s.put_u32s(indices)?;
    s.finish()
}

/// Writes a binary store (no counts section) whose rows are produced one at a time, so a matrix
/// larger than memory can be written: `row(r, out)` fills `out` with the cells of peak `r`,
/// ascending, exactly `indptr[r + 1] − indptr[r]` of them. `peak_names` are `chrom:start-end`.
pub fn write_binary_rows(
    path: &Path,
    peak_names: &[String],
    barcodes: &[String],
    indptr: &[u64],
    row: &dyn Fn(usize, &mut Vec<u32>),
) -> Result<(), FileError> {
    let bad = |what: String| FileError::Argument(format!("writing {}: {what}", path.display()));
    if indptr.len() != peak_names.len() + 1 || indptr[0] != 0 || indptr.windows(2).any(|w| w[1] < w[0]) {
        return Err(bad(format!(
            "indptr must rise from 0 with one entry per peak + 1 ({} peaks, {} entries)",
            peak_names.len(),
            indptr.len()
        )));
    }
    let nnz = indptr[peak_names.len()] as usize;
    let mut s = StoreWriter::begin(path, peak_names.to_vec(), barcodes, nnz, false, None)?;
    let (a, b) = (s.index.indptr_offset, s.index.indices_offset);
    s.pad_to(a)?;
    s.put_u64s(indptr)?;
    s.pad_to(b)?;
    let mut cells = Vec::new();
    for r in 0..peak_names.len() {
        row(r, &mut cells);
        let want = (indptr[r + 1] - indptr[r]) as usize;
        if cells.len() != want {
            return Err(bad(format!("row {r} has {} cells; indptr calls for {want}", cells.len())));
        }
        if !cells.windows(2).all(|w| w[0] < w[1]) || cells.last().is_some_and(|&c| c as usize >= barcodes.len()) {
            return Err(bad(format!("row {r}: cells must ascend and lie below {}", barcodes.len())));
        }
        s.put_u32s(&cells)?;
    }
    s.finish()
}

/// A binary store written out of order: the header, index and row offsets first, then each
/// row's cells at their place ([`write_at`](Self::write_at), in pieces and in any order),
/// then the content hash from one sequential reading of what was written. The file is sized
/// (disk space reserved) at creation, kept under a temporary name and renamed by
/// [`finish`](Self::finish); dropped unfinished, it is removed. What the streamed conversion
/// of a matrix larger than memory writes into ([`crate::sc::convert`]); its bytes are those
/// [`write_binary_csr`] writes for the same matrix.
pub struct PlacedStoreWriter {
    file: AtomicFile,
    f: std::fs::File,
    index: MatrixIndex,
    reserved: usize,
}

impl PlacedStoreWriter {
    pub fn create(
        path: &Path,
        peaks: &[Interval],
        barcodes: &[String],
        indptr: &[u64],
        filters: Option<[u32; 2]>,
    ) -> Result<Self, FileError> {
        if indptr.len() != peaks.len() + 1 || indptr[0] != 0 || indptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(FileError::Argument(format!(
                "writing {}: indptr must rise from 0 with one entry per peak + 1",
                path.display()
            )));
        }
        let nnz = indptr[peaks.len()] as usize;
        let mut s = StoreWriter::begin(path, peak_names(peaks), barcodes, nnz, false, filters)?;
        let a = s.index.indptr_offset;
        s.pad_to(a)?;
        s.put_u64s(indptr)?;
        let end = s.index.indices_offset + 4 * nnz as u64;
        let io = FileError::io(path);
        let f = s.w.into_inner().map_err(|e| io(e.into_error()))?;
        crate::store::shard::reserve(&f, end).map_err(FileError::io(path))?;
        Ok(PlacedStoreWriter { file: s.file, f, index: s.index, reserved: s.reserved })
    }

    /// Writes `cells` as entries `entry..entry + cells.len()` of the indices.
    pub fn write_at(&self, entry: u64, cells: &[u32]) -> Result<(), FileError> {
        use std::os::unix::fs::FileExt;
        if entry + cells.len() as u64 > self.index.nnz as u64 {
            return Err(FileError::Argument(format!(
                "writing {}: entries {entry}..{} past the {} declared",
                self.file.dest().display(),
                entry + cells.len() as u64,
                self.index.nnz
            )));
        }
        let at = self.index.indices_offset + 4 * entry;
        self.f.write_all_at(bytemuck::cast_slice(cells), at).map_err(FileError::io(self.file.dest()))
    }

    /// Hashes the content, writes the index with it, and renames the store into place.
    pub fn finish(mut self) -> Result<(), FileError> {
        use std::io::Read;
        let dest = self.file.dest().to_path_buf();
        let mut content = names_hash(&self.index);
        // The writer's handle is write-only: read back through a second one.
        let mut r = std::fs::File::open(self.file.path()).map_err(FileError::io(&dest))?;
        r.seek(SeekFrom::Start(24 + self.reserved as u64)).map_err(FileError::io(&dest))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).map_err(FileError::io(&dest))?;
            if n == 0 {
                break;
            }
            content.update(&buf[..n]);
        }
        self.index.content_sha256 = Some(hex(&content.finalize()));
        let mut json = serde_json::to_vec(&self.index).map_err(|e| FileError::content(&dest, e.to_string()))?;
        json.resize(self.reserved, b' ');
        self.f.seek(SeekFrom::Start(24)).and_then(|_| self.f.write_all(&json)).map_err(FileError::io(&dest))?;
        drop(self.f);
        self.file.commit()
    }
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
        let json = 24usize
            .checked_add(len)
            .and_then(|end| map.get(24..end))
            .ok_or_else(|| FileError::content(path, "truncated index"))?;
        let index: MatrixIndex =
            serde_json::from_slice(json).map_err(|e| FileError::content(path, format!("unreadable index: {e}")))?;
        // Every section must lie inside the file, at its alignment, with sizes that add up:
        // the accessors slice the map without further checks.
        let section_end = |offset: u64, count: usize, width: u64| {
            (count as u64).checked_mul(width).and_then(|bytes| offset.checked_add(bytes))
        };
        let fits = |offset: u64, count: usize, width: u64| {
            offset.is_multiple_of(ALIGN) && section_end(offset, count, width).is_some_and(|e| e <= map.len() as u64)
        };
        let counts_fit = match (index.version, index.counts_offset) {
            (MATRIX_VERSION, Some(c)) => fits(c, index.nnz, 4),
            (BINARY_MATRIX_VERSION, None) => true,
            _ => false,
        };
        if !counts_fit
            || !fits(index.indptr_offset, index.peaks.saturating_add(1), 8)
            || !fits(index.indices_offset, index.nnz, 4)
            || index.peak_names.len() != index.peaks
            || index.barcodes.len() != index.cells
        {
            return Err(FileError::content(path, "damaged or truncated matrix store"));
        }
        Ok(CellMatrix { map, index })
    }

    /// Drops this mapping's resident pages (they are read from the file again on the next
    /// access), so that walking a matrix larger than memory does not grow the resident set.
    pub fn release_pages(&self) {
        // SAFETY: a read-only, file-backed mapping of a store that is never modified:
        // MADV_DONTNEED only makes later reads fault the same bytes back in from the file.
        // Failure is harmless (the pages just stay resident), so it is ignored.
        let _ = unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.index.peaks, self.index.cells)
    }

    /// The filters a filtered store was made with: [min cells per peak, min peaks per cell].
    pub fn filters(&self) -> Option<[u32; 2]> {
        self.index.filters
    }

    /// The SHA-256 of the store's content: recorded when it was written, else (an older store)
    /// of the file `path` it was opened from.
    pub fn content_sha256(&self, path: &Path) -> Result<String, FileError> {
        match &self.index.content_sha256 {
            Some(sha) => Ok(sha.clone()),
            None => crate::store::build::file_sha256(path).map(|(sha, _)| sha),
        }
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
    /// The counts, or `None` for a binary store (every count 1).
    pub fn counts(&self) -> Option<&[u32]> {
        let o = self.index.counts_offset? as usize;
        Some(bytemuck::cast_slice(&self.map[o..o + 4 * self.index.nnz]))
    }
}

/// Canonical CSR (rows in order, columns ascending within a row, duplicates summed, zero
/// counts dropped) from entries `(row, col, count)` that `visit` hands out, twice: once to
/// count the entries of each row, once to place them (a counting sort, so the only memory
/// beyond the result is one offset per row).
pub(crate) fn csr_from_entries(
    n_rows: usize,
    visit: impl Fn(&mut dyn FnMut(u32, u32, u32)),
) -> (Vec<u64>, Vec<u32>, Vec<u32>) {
    let mut indptr = vec![0u64; n_rows + 1];
    visit(&mut |r, _, n| {
        if n > 0 {
            indptr[r as usize + 1] += 1;
        }
    });
    for r in 0..n_rows {
        indptr[r + 1] += indptr[r];
    }
    let nnz = indptr[n_rows] as usize;
    let (mut indices, mut counts) = (vec![0u32; nnz], vec![0u32; nnz]);
    let mut next = indptr.clone();
    visit(&mut |r, c, n| {
        if n > 0 {
            let at = next[r as usize] as usize;
            indices[at] = c;
            counts[at] = n;
            next[r as usize] += 1;
        }
    });
    // Sort each row where needed, then sum duplicates while compacting in place (the write
    // position never passes the read position).
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut out = 0usize;
    let mut canonical = Vec::with_capacity(n_rows + 1);
    canonical.push(0u64);
    for r in 0..n_rows {
        let (a, b) = (indptr[r] as usize, indptr[r + 1] as usize);
        if !indices[a..b].windows(2).all(|w| w[0] < w[1]) {
            pairs.clear();
            pairs.extend(indices[a..b].iter().copied().zip(counts[a..b].iter().copied()));
            pairs.sort_unstable_by_key(|p| p.0);
            for (k, (c, n)) in pairs.iter().enumerate() {
                indices[a + k] = *c;
                counts[a + k] = *n;
            }
        }
        let row_start = out;
        for k in a..b {
            if out > row_start && indices[out - 1] == indices[k] {
                counts[out - 1] = counts[out - 1].saturating_add(counts[k]);
            } else {
                indices[out] = indices[k];
                counts[out] = counts[k];
                out += 1;
            }
        }
        canonical.push(out as u64);
    }
    indices.truncate(out);
    counts.truncate(out);
    (canonical, indices, counts)
}

/// Reads a `.cxmatrix` store whole into memory, checked and canonical.
pub fn read_matrix(path: &Path) -> Result<CsrCounts, FileError> {
    let store = CellMatrix::open(path)?;
    let (n_peaks, n_cells) = store.shape();
    let (indptr, indices, counts) = (store.indptr(), store.indices(), store.counts());
    if indptr.first() != Some(&0)
        || indptr.windows(2).any(|w| w[1] < w[0])
        || indptr.last() != Some(&(indices.len() as u64))
        || store.peak_names().len() != n_peaks
        || store.barcodes().len() != n_cells
    {
        return Err(FileError::content(path, "damaged matrix store: its row offsets or names do not match its shape"));
    }
    if let Some(&c) = indices.iter().find(|&&c| c as usize >= n_cells) {
        return Err(FileError::content(path, format!("damaged matrix store: cell index {c} ≥ {n_cells} cells")));
    }
    let peaks = store
        .peak_names()
        .iter()
        .map(|n| {
            crate::io::h5ad::parse_peak_name(n)
                .ok_or_else(|| FileError::content(path, format!("peak name '{n}' is not chrom:start-end")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (indptr, indices, counts) = csr_from_entries(n_peaks, |f| {
        for r in 0..n_peaks {
            for k in indptr[r] as usize..indptr[r + 1] as usize {
                f(r as u32, indices[k], counts.map_or(1, |c| c[k]));
            }
        }
    });
    Ok(CsrCounts { peaks, cells: store.barcodes().to_vec(), indptr, indices, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(cells: &[&str]) -> CsrCounts {
        let peaks =
            vec![Interval { chrom: "c".into(), start: 0, end: 10 }, Interval { chrom: "c".into(), start: 20, end: 30 }];
        let cells = cells.iter().map(|c| c.to_string()).collect();
        CsrCounts { peaks, cells, indptr: vec![0, 1, 3], indices: vec![1, 0, 1], counts: vec![1, 2, 1] }
    }

    #[test]
    fn the_recorded_content_hash_names_the_content() {
        let dir = crate::io::scratch_dir("matrix-hash");
        let hash = |name: &str, m: &CsrCounts| {
            let path = dir.join(name);
            write_matrix(&path, m).expect("write");
            let store = CellMatrix::open(&path).expect("open");
            assert_eq!(read_matrix(&path).expect("read back"), *m);
            store.content_sha256(&path).expect("hash")
        };
        let a = hash("a.cxmatrix", &matrix(&["x", "y"]));
        assert_eq!(a.len(), 64);
        assert_eq!(hash("again.cxmatrix", &matrix(&["x", "y"])), a, "the same content, the same hash");
        assert_ne!(hash("cells.cxmatrix", &matrix(&["x", "z"])), a, "another barcode");
        let mut other = matrix(&["x", "y"]);
        other.indices = vec![0, 0, 1];
        assert_ne!(hash("rows.cxmatrix", &other), a, "another row");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
