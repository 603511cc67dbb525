//! Cell barcode lists: one barcode per line, the first field of the line (tab, comma or
//! space separated, so `barcode,cell_type` exports work; leading blanks ignored), in file
//! order. A barcode listed twice is an error naming both lines: it would make two cells of
//! one.

use super::text::LineReader;
use crate::error::FileError;
use std::collections::HashMap;
use std::path::Path;

/// The barcodes of a list file, in order. An empty list, or a barcode listed twice, is an
/// error naming the file (and the lines).
pub fn read_barcodes(path: &Path) -> Result<Vec<String>, FileError> {
    let mut lines = LineReader::open(path)?;
    let (mut list, mut seen) = (Vec::new(), HashMap::new());
    while lines.advance()? {
        let line = lines.line().trim_ascii_start();
        let first = line.split(|&b| b == b'\t' || b == b',' || b == b' ').next().unwrap_or(&[]);
        if first.is_empty() {
            continue;
        }
        let barcode = String::from_utf8_lossy(first).into_owned();
        if let Some(earlier) = seen.insert(barcode.clone(), lines.line_no()) {
            return Err(lines.error(format!("barcode '{barcode}' is listed twice (first on line {earlier})")));
        }
        list.push(barcode);
    }
    if list.is_empty() {
        return Err(FileError::content(path, "no barcodes (one per line expected)"));
    }
    Ok(list)
}

/// One line of a barcode → label table: its line number, the barcode and the label.
pub type LabelRow = (u64, String, String);

/// The rows of a `barcode<TAB>label` table (cell groups, batches), in order; blank and `#`
/// lines skipped, the label trimmed. A line without a tab is an error naming it and
/// `barcode<TAB>{what}`. A first line that is a header ([`is_label_header`]) comes back as a
/// row: the caller knows whether its barcode could be a cell.
pub fn read_barcode_labels(path: &Path, what: &str) -> Result<Vec<LabelRow>, FileError> {
    let mut lines = LineReader::open(path)?;
    let mut rows = Vec::new();
    while lines.advance()? {
        let text = String::from_utf8_lossy(lines.line()).trim_end().to_string();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let Some((barcode, label)) = text.split_once('\t') else {
            return Err(lines.error(format!("expected `barcode<TAB>{what}`")));
        };
        rows.push((lines.line_no(), barcode.to_string(), label.trim().to_string()));
    }
    Ok(rows)
}

/// Whether a table's row is its header: line 1 with `barcode`, `cell`, `barcodes` or `cells`
/// as its barcode.
pub fn is_label_header(line: u64, barcode: &str) -> bool {
    line == 1 && matches!(barcode, "barcode" | "cell" | "barcodes" | "cells")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fields_in_order_and_duplicates_refused() {
        let path = std::env::temp_dir().join(format!("chromax-barcodes-{}.txt", std::process::id()));
        std::fs::write(&path, "AAAC-1\tT cell\n\nCCGT-1,B cell\r\nGGTA-1 x\n  TTAC-1\n").expect("write");
        assert_eq!(read_barcodes(&path).expect("list"), ["AAAC-1", "CCGT-1", "GGTA-1", "TTAC-1"]);
        std::fs::write(&path, "AAAC-1\nCCGT-1\nAAAC-1,T\n").expect("write");
        let err = read_barcodes(&path).expect_err("twice").to_string();
        assert!(err.contains("line 3") && err.contains("'AAAC-1' is listed twice (first on line 1)"), "{err}");
        std::fs::write(&path, "\n\n").expect("write");
        let err = read_barcodes(&path).expect_err("empty").to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("no barcodes"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
