//! 10x-style fragments files: `chrom start end barcode [count]`, tab-separated, plain, gzip
//! or bgzip, 0-based half-open, one line per unique fragment. `#` lines are comments.
//!
//! The ends are Tn5 insertion sites already shifted by the aligner's pipeline, so the two cut
//! sites of a fragment are `start` and `end − 1`. The fifth column counts the read pairs
//! (PCR duplicates) seen for the fragment; it is 1 when absent.

use super::text::{parse_u64, show, LineReader};
use crate::error::FileError;
use std::path::Path;

/// One fragment, borrowing the reader's line buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub chrom: &'a [u8],
    pub start: u64,
    pub end: u64,
    pub barcode: &'a [u8],
    pub count: u32,
}

/// Parses one fragments line.
pub fn parse_fragment(line: &[u8]) -> Result<Fragment<'_>, String> {
    let mut fields = line.split(|&b| b == b'\t');
    let chrom = fields.next().unwrap_or_default();
    let (Some(start), Some(end), Some(barcode)) = (fields.next(), fields.next(), fields.next()) else {
        let n = line.split(|&b| b == b'\t').count();
        return Err(format!("{n} column(s); a fragments line has 'chrom start end barcode [count]', tab-separated"));
    };
    if chrom.is_empty() {
        return Err("empty chromosome name".into());
    }
    let start = parse_u64(start, "start")?;
    let end = parse_u64(end, "end")?;
    if start >= end {
        return Err(format!("start {start} is not before end {end}"));
    }
    let count = match fields.next() {
        Some(c) if !c.is_empty() => {
            let c = parse_u64(c, "count (column 5)")?;
            u32::try_from(c).map_err(|_| format!("count {c} is too large"))?
        }
        _ => 1,
    };
    Ok(Fragment { chrom, start, end, barcode, count })
}

/// Streams the fragments of a file.
pub struct FragmentReader {
    lines: LineReader,
}

impl FragmentReader {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        Ok(FragmentReader { lines: LineReader::open(path)? })
    }

    pub fn path(&self) -> &Path {
        self.lines.path()
    }

    /// The next fragment, or `None` at the end; a malformed line is an error naming it.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Fragment<'_>>, FileError> {
        loop {
            if !self.lines.advance()? {
                return Ok(None);
            }
            let line = self.lines.line();
            if !(line.is_empty() || line[0] == b'#') {
                break;
            }
        }
        let line = self.lines.line();
        parse_fragment(line).map(Some).map_err(|what| self.lines.error(format!("{what}: '{}'", show(line))))
    }

    /// Number of the line last read (1-based).
    pub fn line_no(&self) -> u64 {
        self.lines.line_no()
    }
}
