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

/// Reads a coordinate Matrix Market file (plain or gzip) whole: see [`MtxReader`].
pub fn read_matrix_market(path: &Path) -> Result<MatrixMarket, FileError> {
    let mut r = MtxReader::open(path)?;
    // Reserve from the declared size, bounded: a wrong header must not allocate wildly.
    let reserve = r.entries.min(1 << 26);
    let mut m = MatrixMarket {
        rows: r.rows,
        cols: r.cols,
        row: Vec::with_capacity(reserve),
        col: Vec::with_capacity(reserve),
        counts: Vec::with_capacity(reserve),
    };
    while let Some((row, col, count)) = r.next_entry()? {
        m.row.push(row);
        m.col.push(col);
        m.counts.push(count);
    }
    Ok(m)
}

/// Reads a coordinate Matrix Market file (plain or gzip) an entry at a time: header
/// `%%MatrixMarket matrix coordinate {integer|real|double|pattern} general`, `%` comment
/// lines, the size line `rows cols entries`, then one `row col [value]` line per entry,
/// handed out 0-based with the value as a count by [`count_from_value`] (1 for `pattern`).
/// Faults name the file and line.
pub struct MtxReader {
    lines: LineReader,
    path: PathBuf,
    pattern: bool,
    pub rows: usize,
    pub cols: usize,
    /// Entries the size line declares.
    pub entries: usize,
    read: usize,
}

impl MtxReader {
    /// Opens the file and reads its header and size line.
    pub fn open(path: &Path) -> Result<MtxReader, FileError> {
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
        while lines.advance()? {
            let line = lines.line();
            if line.starts_with(b"%") || line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut fields = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
            let mut number = |name: &str| -> Result<u64, FileError> {
                let f = fields.next().ok_or_else(|| lines.error("expected the size line: rows columns entries"))?;
                parse_u64(f, name).map_err(|e| lines.error(e))
            };
            let (rows, cols, nnz) = (number("rows")?, number("columns")?, number("entries")?);
            if rows > u32::MAX as u64 || cols > u32::MAX as u64 {
                return Err(lines.error(format!("{rows} × {cols} is beyond the 2^32 rows and columns supported")));
            }
            return Ok(MtxReader {
                lines,
                path: path.to_path_buf(),
                pattern,
                rows: rows as usize,
                cols: cols as usize,
                entries: nnz as usize,
                read: 0,
            });
        }
        Err(FileError::content(path, "no size line: expected 'rows columns entries' after the header"))
    }

    /// The next entry `(row, column, count)`, 0-based; `None` after the last, once the file
    /// has held exactly the entries its size line declares.
    pub fn next_entry(&mut self) -> Result<Option<(u32, u32, u32)>, FileError> {
        let lines = &mut self.lines;
        let (rows, cols, pattern) = (self.rows, self.cols, self.pattern);
        loop {
            if !lines.advance()? {
                if self.read != self.entries {
                    return Err(FileError::content(
                        &self.path,
                        format!(
                            "the size line declares {} entries but the file has {}: truncated?",
                            self.entries, self.read
                        ),
                    ));
                }
                return Ok(None);
            }
            let line = lines.line();
            if line.starts_with(b"%") || line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut fields = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
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
            if self.read == self.entries {
                return Err(lines.error(format!("more entries than the {} the size line declares", self.entries)));
            }
            self.read += 1;
            return Ok(Some((r, c, count)));
        }
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

/// A Matrix Market directory with its names read and its orientation decided, the entries
/// not yet read: [`MtxDirHead::entries`] opens them for one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtxDirHead {
    pub matrix_path: PathBuf,
    pub barcodes: Vec<String>,
    pub peaks: Vec<Interval>,
    /// Whether the file is barcodes × peaks (rows are cells).
    pub transposed: bool,
    /// Entries the size line declares.
    pub entries: usize,
}

impl MtxDirHead {
    /// A reader of the matrix file's entries, from the first.
    pub fn entries(&self) -> Result<MtxReader, FileError> {
        MtxReader::open(&self.matrix_path)
    }
}

/// Reads a Matrix Market directory's barcodes and peaks and the matrix file's header, and
/// decides its orientation.
pub fn open_mtx_dir(dir: &Path) -> Result<MtxDirHead, FileError> {
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
    let matrix = MtxReader::open(&matrix_path)?;
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
    Ok(MtxDirHead { entries: matrix.entries, matrix_path, barcodes, peaks, transposed })
}

/// Reads a Matrix Market directory whole and decides its orientation.
pub fn read_mtx_dir(dir: &Path) -> Result<MtxDir, FileError> {
    let head = open_mtx_dir(dir)?;
    let matrix = read_matrix_market(&head.matrix_path)?;
    Ok(MtxDir { matrix, barcodes: head.barcodes, peaks: head.peaks, transposed: head.transposed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A fresh directory per test: tests run in parallel in one process.
    fn scratch(name: &str) -> PathBuf {
        crate::io::scratch_dir(&format!("mtx-{name}"))
    }

    fn gzip(path: &Path, text: &str) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).expect("compress");
        std::fs::write(path, gz.finish().expect("compress")).expect("write");
    }

    fn interval(chrom: &str, start: u64, end: u64) -> Interval {
        Interval { chrom: chrom.into(), start, end }
    }

    /// 3 peaks × 2 barcodes, peaks × barcodes as Cell Ranger writes it, with a comment and
    /// a blank line in the body.
    const PEAKS_BY_CELLS: &str = "%%MatrixMarket matrix coordinate integer general\n\
                                  %metadata_json: {\"software_version\": \"cellranger-atac-2.1.0\"}\n\
                                  3 2 4\n\
                                  1 1 2\n\
                                  3 1 1\n\
                                  \n\
                                  % a comment between entries\n\
                                  2 2 7\n\
                                  3 2 1\n";
    const BARCODES: &str = "AAACGAAAGACTCGGA-1\nAAACGAAAGATTGACA-1\n";
    const PEAKS: &str = "chr1\t100\t600\nchr1\t1000\t1500\nchrX\t5\t25\n";

    fn peaks_by_cells() -> MatrixMarket {
        MatrixMarket { rows: 3, cols: 2, row: vec![0, 2, 1, 2], col: vec![0, 0, 1, 1], counts: vec![2, 1, 7, 1] }
    }

    fn expected_dir(matrix: MatrixMarket, transposed: bool) -> MtxDir {
        MtxDir {
            matrix,
            barcodes: vec!["AAACGAAAGACTCGGA-1".into(), "AAACGAAAGATTGACA-1".into()],
            peaks: vec![interval("chr1", 100, 600), interval("chr1", 1000, 1500), interval("chrX", 5, 25)],
            transposed,
        }
    }

    /// The message of reading `text` as a Matrix Market file, which must fail.
    fn error_of(dir: &Path, text: &str) -> (PathBuf, String) {
        let path = dir.join("bad.mtx");
        std::fs::write(&path, text).expect("write");
        let err = read_matrix_market(&path).expect_err(&format!("{text:?} must be refused"));
        (path, err.to_string())
    }

    #[test]
    fn coordinate_entries_become_zero_based() {
        let dir = scratch("entries");
        let path = dir.join("matrix.mtx");
        std::fs::write(&path, PEAKS_BY_CELLS).expect("write");
        assert_eq!(read_matrix_market(&path).expect("read"), peaks_by_cells());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn real_and_pattern_fields_and_crlf() {
        let dir = scratch("fields");
        let path = dir.join("matrix.mtx");
        // Real values: counts by count_from_value (0 stays, fractions round, at least 1).
        let real = "%%MatrixMarket matrix coordinate real general\r\n\
                    2 3 5\r\n\
                    1 1 0.3\r\n\
                    1 2 2.5\r\n\
                    2 3 1e1\r\n\
                    2 1 0\r\n\
                    2 2   4  \r\n";
        std::fs::write(&path, real).expect("write");
        let want = MatrixMarket {
            rows: 2,
            cols: 3,
            row: vec![0, 0, 1, 1, 1],
            col: vec![0, 1, 2, 0, 1],
            counts: vec![1, 3, 10, 0, 4],
        };
        assert_eq!(read_matrix_market(&path).expect("read real"), want);

        // The banner's words are case-insensitive; a pattern matrix has no values.
        let pattern = "%%MatrixMarket MATRIX Coordinate Pattern General\n2 2 2\n2 1\n1 2\n";
        std::fs::write(&path, pattern).expect("write");
        let want = MatrixMarket { rows: 2, cols: 2, row: vec![1, 0], col: vec![0, 1], counts: vec![1, 1] };
        assert_eq!(read_matrix_market(&path).expect("read pattern"), want);

        // No entries at all.
        std::fs::write(&path, "%%MatrixMarket matrix coordinate integer general\n4 5 0\n").expect("write");
        let want = MatrixMarket { rows: 4, cols: 5, row: vec![], col: vec![], counts: vec![] };
        assert_eq!(read_matrix_market(&path).expect("read empty"), want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn header_faults_name_the_file_and_line() {
        let dir = scratch("header");
        let banner = "%%MatrixMarket matrix coordinate integer general\n";
        let cases: [(String, String); 9] = [
            (
                "hello\n1 1 1\n1 1 1\n".into(),
                "line 1: 'hello' is not a Matrix Market header: expected '%%MatrixMarket matrix coordinate \
                 integer general'"
                    .into(),
            ),
            (
                "%MatrixMarket matrix\n".into(),
                "line 1: '%MatrixMarket matrix' is not a Matrix Market header: expected '%%MatrixMarket matrix \
                 coordinate integer general'"
                    .into(),
            ),
            (
                "%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1 0\n".into(),
                "line 1: unsupported Matrix Market type 'coordinate complex general': expected 'matrix \
                 coordinate' with an integer, real or pattern field and 'general' symmetry"
                    .into(),
            ),
            (
                "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n".into(),
                "line 1: unsupported Matrix Market type 'array real general': expected 'matrix coordinate' \
                 with an integer, real or pattern field and 'general' symmetry"
                    .into(),
            ),
            (
                "%%MatrixMarket matrix coordinate integer symmetric\n1 1 1\n1 1 1\n".into(),
                "line 1: unsupported Matrix Market type 'coordinate integer symmetric': expected 'matrix \
                 coordinate' with an integer, real or pattern field and 'general' symmetry"
                    .into(),
            ),
            (
                "%%MatrixMarket matrix\n".into(),
                "line 1: unsupported Matrix Market type '': expected 'matrix coordinate' with an integer, real \
                 or pattern field and 'general' symmetry"
                    .into(),
            ),
            (format!("{banner}% c\n3 x 4\n"), "line 3: columns 'x' is not a non-negative integer".into()),
            (format!("{banner}3 2\n"), "line 2: expected the size line: rows columns entries".into()),
            (
                format!("{banner}4294967296 2 0\n"),
                "line 2: 4294967296 × 2 is beyond the 2^32 rows and columns supported".into(),
            ),
        ];
        for (text, what) in cases {
            let (path, msg) = error_of(&dir, &text);
            assert_eq!(msg, format!("{}: {what}", path.display()), "for {text:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn entry_faults_name_the_file_and_line() {
        let dir = scratch("body");
        let head = "%%MatrixMarket matrix coordinate integer general\n% comment\n3 2 2\n";
        let cases = [
            // 0-based files are refused, not shifted.
            ("0 1 5\n1 1 1\n", "line 4: row 0 is outside 1..=3 (indices are 1-based)"),
            ("1 0 5\n1 1 1\n", "line 4: column 0 is outside 1..=2 (indices are 1-based)"),
            ("1 1 5\n4 1 1\n", "line 5: row 4 is outside 1..=3 (indices are 1-based)"),
            ("1 1 5\n3 3 1\n", "line 5: column 3 is outside 1..=2 (indices are 1-based)"),
            ("1 1 5\n-1 1 1\n", "line 5: row '-1' is not a non-negative integer"),
            ("1 1\n1 1 1\n", "line 4: expected 'row column value', found '1 1'"),
            ("1\n1 1 1\n", "line 4: expected 'row column value', found '1'"),
            ("1 1 5 9\n1 1 1\n", "line 4: too many fields in '1 1 5 9': expected 'row column value'"),
            ("1 1 five\n1 1 1\n", "line 4: value 'five' is not a number"),
            ("1 1 -2\n1 1 1\n", "line 4: value -2 is not a count: expected a finite value ≥ 0"),
            ("1 1 nan\n1 1 1\n", "line 4: value NaN is not a count: expected a finite value ≥ 0"),
            ("1 1 5\n2 2 1\n3 1 1\n", "line 6: more entries than the 2 the size line declares"),
        ];
        for (body, what) in cases {
            let (path, msg) = error_of(&dir, &format!("{head}{body}"));
            assert_eq!(msg, format!("{}: {what}", path.display()), "for {body:?}");
        }

        // Faults of the file as a whole have no line to name.
        let whole = [
            (format!("{head}1 1 5\n"), "the size line declares 2 entries but the file has 1: truncated?"),
            ("".to_string(), "empty file: expected a Matrix Market header"),
            (
                "%%MatrixMarket matrix coordinate integer general\n% only comments\n\n".to_string(),
                "no size line: expected 'rows columns entries' after the header",
            ),
        ];
        for (text, what) in whole {
            let (path, msg) = error_of(&dir, &text);
            assert_eq!(msg, format!("{}: {what}", path.display()), "for {text:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn barcodes_take_the_first_field_and_skip_blank_lines() {
        let dir = scratch("barcodes");
        let path = dir.join("barcodes.tsv");
        std::fs::write(&path, "AAAC-1\textra\n\n  AAAG-1  \r\nAAAT-1").expect("write");
        assert_eq!(read_barcodes(&path).expect("read"), vec!["AAAC-1", "AAAG-1", "AAAT-1"]);
        std::fs::write(&path, "\n\n").expect("write");
        let msg = read_barcodes(&path).expect_err("no barcodes").to_string();
        assert_eq!(msg, format!("{}: no barcodes: expected one barcode per line", path.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn directory_read_back_exactly_plain_and_gzip() {
        let dir = scratch("dir-plain");
        std::fs::write(dir.join("matrix.mtx"), PEAKS_BY_CELLS).expect("write");
        std::fs::write(dir.join("barcodes.tsv"), BARCODES).expect("write");
        std::fs::write(dir.join("peaks.bed"), PEAKS).expect("write");
        assert_eq!(read_mtx_dir(&dir).expect("read plain"), expected_dir(peaks_by_cells(), false));

        let gz = scratch("dir-gzip");
        gzip(&gz.join("matrix.mtx.gz"), PEAKS_BY_CELLS);
        gzip(&gz.join("barcodes.tsv.gz"), BARCODES);
        gzip(&gz.join("peaks.bed.gz"), PEAKS);
        assert_eq!(read_mtx_dir(&gz).expect("read gzip"), expected_dir(peaks_by_cells(), false));

        // A mixture: plain barcodes beside gzip matrix and peaks.
        std::fs::remove_file(gz.join("barcodes.tsv.gz")).expect("remove");
        std::fs::write(gz.join("barcodes.tsv"), BARCODES).expect("write");
        assert_eq!(read_mtx_dir(&gz).expect("read mixed"), expected_dir(peaks_by_cells(), false));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&gz);
    }

    #[test]
    fn barcodes_by_peaks_is_recognised_as_transposed() {
        let dir = scratch("transposed");
        // The same counts as PEAKS_BY_CELLS, one row per barcode.
        let text = "%%MatrixMarket matrix coordinate integer general\n2 3 4\n1 1 2\n1 3 1\n2 2 7\n2 3 1\n";
        std::fs::write(dir.join("matrix.mtx"), text).expect("write");
        std::fs::write(dir.join("barcodes.tsv"), BARCODES).expect("write");
        std::fs::write(dir.join("peaks.bed"), PEAKS).expect("write");
        let want =
            MatrixMarket { rows: 2, cols: 3, row: vec![0, 0, 1, 1], col: vec![0, 2, 1, 2], counts: vec![2, 1, 7, 1] };
        assert_eq!(read_mtx_dir(&dir).expect("read"), expected_dir(want, true));

        // Square: taken as peaks × barcodes.
        std::fs::write(dir.join("peaks.bed"), "chr1\t100\t600\nchr1\t1000\t1500\n").expect("write");
        std::fs::write(dir.join("matrix.mtx"), "%%MatrixMarket matrix coordinate integer general\n2 2 1\n2 1 3\n")
            .expect("write");
        let got = read_mtx_dir(&dir).expect("read square");
        assert!(!got.transposed);
        assert_eq!(got.matrix, MatrixMarket { rows: 2, cols: 2, row: vec![1], col: vec![0], counts: vec![3] });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn directory_faults_name_the_file() {
        let dir = scratch("dir-faults");
        std::fs::write(dir.join("matrix.mtx"), PEAKS_BY_CELLS).expect("write");
        std::fs::write(dir.join("peaks.bed"), PEAKS).expect("write");
        let msg = read_mtx_dir(&dir).expect_err("no barcodes").to_string();
        assert_eq!(
            msg,
            format!(
                "{}: no barcodes.tsv or barcodes.tsv.gz (one barcode per line): a Matrix Market directory holds \
                 matrix.mtx[.gz], barcodes.tsv[.gz] and peaks.bed[.gz]",
                dir.display()
            )
        );

        // Three barcodes and three peaks, but the matrix is 3 × 2.
        std::fs::write(dir.join("barcodes.tsv"), "A-1\nB-1\nC-1\n").expect("write");
        let msg = read_mtx_dir(&dir).expect_err("shape").to_string();
        assert_eq!(
            msg,
            format!(
                "{}: the matrix is 3 × 2 but {} has 3 peaks and {} has 3 barcodes: expected 3 × 3 (peaks × \
                 barcodes) or 3 × 3",
                dir.join("matrix.mtx").display(),
                dir.join("peaks.bed").display(),
                dir.join("barcodes.tsv").display()
            )
        );

        // A fault inside one of the files keeps that file's name and line.
        std::fs::write(dir.join("barcodes.tsv"), BARCODES).expect("write");
        std::fs::write(dir.join("peaks.bed"), "chr1\t100\t600\nchr1\t1500\t1000\nchrX\t5\t25\n").expect("write");
        let msg = read_mtx_dir(&dir).expect_err("bad peak").to_string();
        assert_eq!(msg, format!("{}: line 2: start 1500 is not before end 1000", dir.join("peaks.bed").display()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
