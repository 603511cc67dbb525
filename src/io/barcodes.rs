//! Cell barcode lists: one barcode per line, the first field of the line (tab, comma or
//! space separated, so `barcode,cell_type` exports work; leading blanks ignored), in file
//! order, each once.

use super::text::LineReader;
use crate::error::FileError;
use std::collections::HashSet;
use std::path::Path;

/// The barcodes of a list file, in order, duplicates dropped after their first line. An
/// empty list is an error naming the file.
pub fn read_barcodes(path: &Path) -> Result<Vec<String>, FileError> {
    let mut lines = LineReader::open(path)?;
    let (mut list, mut seen) = (Vec::new(), HashSet::new());
    while lines.advance()? {
        let line = lines.line().trim_ascii_start();
        let first = line.split(|&b| b == b'\t' || b == b',' || b == b' ').next().unwrap_or(&[]);
        if first.is_empty() {
            continue;
        }
        let barcode = String::from_utf8_lossy(first).into_owned();
        if seen.insert(barcode.clone()) {
            list.push(barcode);
        }
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
    fn first_fields_in_order_once_each() {
        let path = std::env::temp_dir().join(format!("chromax-barcodes-{}.txt", std::process::id()));
        std::fs::write(&path, "AAAC-1\tT cell\n\nCCGT-1,B cell\r\nAAAC-1\nGGTA-1 x\n  TTAC-1\n").expect("write");
        assert_eq!(read_barcodes(&path).expect("list"), ["AAAC-1", "CCGT-1", "GGTA-1", "TTAC-1"]);
        std::fs::write(&path, "\n\n").expect("write");
        let err = read_barcodes(&path).expect_err("empty").to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("no barcodes"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
