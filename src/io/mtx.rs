//! Matrix Market directories as Cell Ranger ATAC writes them (`filtered_peak_bc_matrix/`):
//! `matrix.mtx[.gz]` (coordinate format, rows = peaks, columns = barcodes, 1-based),
//! `barcodes.tsv[.gz]` (one barcode per line) and `peaks.bed[.gz]` (chrom, start, end).
//!
//! A matrix written the other way round (barcodes × peaks, as some tools export an AnnData
//! X) is recognised by its shape: rows equal to the barcodes, columns equal to the peaks,
//! and the two counts differ (a square matrix is taken as peaks × barcodes).

use super::bed::{read_intervals, Interval};
use super::h5ad::count_from_value;
use super::text::{parse_u64, show, LineReader};
use crate::error::FileError;
use std::path::{Path, PathBuf};

/// The entries of a coordinate Matrix Market file, 0-based, values as counts by
/// [`count_from_value`] (a `pattern` matrix gives 1 for every entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixMarket {
    pub rows: usize,
    pub cols: usize,
    pub row: Vec<u32>,
    pub col: Vec<u32>,
    pub counts: Vec<u32>,
}

/// A Matrix Market directory read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtxDir {
    pub matrix: MatrixMarket,
    pub barcodes: Vec<String>,
    pub peaks: Vec<Interval>,
    /// Whether the file is barcodes × peaks (rows are cells).
    pub transposed: bool,
}

/// Reads a coordinate Matrix Market file (plain or gzip): header
/// `%%MatrixMarket matrix coordinate {integer|real|double|pattern} general`, `%` comment
/// lines, the size line `rows cols entries`, then one `row col [value]` line per entry.
pub fn read_matrix_market(path: &Path) -> Result<MatrixMarket, FileError> {
    let mut lines = LineReader::open(path)?;
    if !lines.advance()? {
        return Err(FileError::content(path, "empty file: expected a Matrix Market header"));
    }
    let header = String::from_utf8_lossy(lines.line()).to_ascii_lowercase();
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.first() != Some(&"%%matrixmarket") || words.get(1) != Some(&"matrix") {
        return Err(lines.error(format!(
            "'{}' is not a Matrix Market header: expected '%%MatrixMarket matrix coordinate integer general'",
            show(lines.line())
        )));
    }
    let pattern = match (words.get(2), words.get(3), words.get(4)) {
        (Some(&"coordinate"), Some(&field), Some(&"general")) if ["integer", "real", "double"].contains(&field) => {
            false
        }
        (Some(&"coordinate"), Some(&"pattern"), Some(&"general")) => true,
        _ => {
            return Err(lines.error(format!(
                "unsupported Matrix Market type '{}': expected 'matrix coordinate' with an integer, real or \
                 pattern field and 'general' symmetry",
                words[2..].join(" ")
            )))
        }
    };

    let mut size: Option<(usize, usize, usize)> = None;
    let mut m = MatrixMarket { rows: 0, cols: 0, row: Vec::new(), col: Vec::new(), counts: Vec::new() };
    while lines.advance()? {
        let line = lines.line();
        if line.starts_with(b"%") || line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut fields = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
        let Some((rows, cols, nnz)) = size else {
            let mut number = |name: &str| -> Result<u64, FileError> {
                let f = fields.next().ok_or_else(|| lines.error("expected the size line: rows columns entries"))?;
                parse_u64(f, name).map_err(|e| lines.error(e))
            };
            let (rows, cols, nnz) = (number("rows")?, number("columns")?, number("entries")?);
            if rows > u32::MAX as u64 || cols > u32::MAX as u64 {
                return Err(lines.error(format!("{rows} × {cols} is beyond the 2^32 rows and columns supported")));
            }
            let (rows, cols, nnz) = (rows as usize, cols as usize, nnz as usize);
            // Reserve from the declared size, bounded: a wrong header must not allocate wildly.
            let reserve = nnz.min(1 << 26);
            m.row.reserve(reserve);
            m.col.reserve(reserve);
            m.counts.reserve(reserve);
            (m.rows, m.cols) = (rows, cols);
            size = Some((rows, cols, nnz));
            continue;
        };
        let mut index = |name: &str, bound: usize| -> Result<u32, FileError> {
            let f = fields.next().ok_or_else(|| {
                lines.error(format!(
                    "expected 'row column{}', found '{}'",
                    if pattern { "" } else { " value" },
                    show(line)
                ))
            })?;
            let v = parse_u64(f, name).map_err(|e| lines.error(e))?;
            if v == 0 || v > bound as u64 {
                return Err(lines.error(format!("{name} {v} is outside 1..={bound} (indices are 1-based)")));
            }
            Ok((v - 1) as u32)
        };
        let (r, c) = (index("row", rows)?, index("column", cols)?);
        let count = if pattern {
            1
        } else {
            let f = fields
                .next()
                .ok_or_else(|| lines.error(format!("expected 'row column value', found '{}'", show(line))))?;
            let v = match parse_u64(f, "value") {
                Ok(v) => v as f64,
                Err(_) => std::str::from_utf8(f)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .ok_or_else(|| lines.error(format!("value '{}' is not a number", show(f))))?,
            };
            count_from_value(v).map_err(|e| lines.error(e))?
        };
        if fields.next().is_some() {
            return Err(lines.error(format!("too many fields in '{}': expected 'row column value'", show(line))));
        }
        if m.row.len() == nnz {
            return Err(lines.error(format!("more entries than the {nnz} the size line declares")));
        }
        m.row.push(r);
        m.col.push(c);
        m.counts.push(count);
    }
    match size {
        None => Err(FileError::content(path, "no size line: expected 'rows columns entries' after the header")),
        Some((_, _, nnz)) if m.row.len() != nnz => Err(FileError::content(
            path,
            format!("the size line declares {nnz} entries but the file has {}: truncated?", m.row.len()),
        )),
        Some(_) => Ok(m),
    }
}

/// Reads one barcode per line (the first tab-separated field; blank lines skipped).
pub fn read_barcodes(path: &Path) -> Result<Vec<String>, FileError> {
    let mut lines = LineReader::open(path)?;
    let mut out = Vec::new();
    while lines.advance()? {
        let field = lines.line().split(|&b| b == b'\t').next().unwrap_or_default();
        let s = String::from_utf8_lossy(field).trim().to_string();
        if !s.is_empty() {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(FileError::content(path, "no barcodes: expected one barcode per line"));
    }
    Ok(out)
}

/// `dir/<stem>` or `dir/<stem>.gz`, whichever exists.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))].into_iter().find(|p| p.is_file())
}

/// Reads a Matrix Market directory and decides its orientation.
pub fn read_mtx_dir(dir: &Path) -> Result<MtxDir, FileError> {
    let need = |stem: &str, what: &str| {
        find(dir, stem).ok_or_else(|| {
            FileError::content(
                dir,
                format!(
                    "no {stem} or {stem}.gz ({what}): a Matrix Market directory holds matrix.mtx[.gz], \
                     barcodes.tsv[.gz] and peaks.bed[.gz]"
                ),
            )
        })
    };
    let (matrix_path, barcodes_path, peaks_path) = (
        need("matrix.mtx", "the counts")?,
        need("barcodes.tsv", "one barcode per line")?,
        need("peaks.bed", "chrom, start, end per peak")?,
    );
    let barcodes = read_barcodes(&barcodes_path)?;
    let peaks = read_intervals(&peaks_path)?;
    let matrix = read_matrix_market(&matrix_path)?;
    let (p, b) = (peaks.len(), barcodes.len());
    let transposed = if (matrix.rows, matrix.cols) == (p, b) {
        false
    } else if (matrix.rows, matrix.cols) == (b, p) {
        true
    } else {
        return Err(FileError::Mismatch(format!(
            "{}: the matrix is {} × {} but {} has {p} peaks and {} has {b} barcodes: expected {p} × {b} \
             (peaks × barcodes) or {b} × {p}",
            matrix_path.display(),
            matrix.rows,
            matrix.cols,
            peaks_path.display(),
            barcodes_path.display()
        )));
    };
    Ok(MtxDir { matrix, barcodes, peaks, transposed })
}
