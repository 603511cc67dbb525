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
