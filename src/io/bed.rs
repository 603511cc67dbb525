//! BED and narrowPeak: reading intervals, writing narrowPeak.

use super::atomic::AtomicFile;
use super::text::{is_header, parse_u64, LineReader};
use crate::error::FileError;
use std::io::Write;
use std::path::Path;

/// One BED interval (first three columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub chrom: String,
    pub start: u64,
    pub end: u64,
}

/// Reads the intervals of a BED or narrowPeak file (plain or gzip); header lines
/// (`track`, `browser`, `#`) are skipped. Empty intervals (start ≥ end) are errors.
pub fn read_intervals(path: impl AsRef<Path>) -> Result<Vec<Interval>, FileError> {
    let mut lines = LineReader::open(path.as_ref())?;
    let mut out = Vec::new();
    while lines.advance()? {
        let line = lines.line();
        if is_header(line) {
            continue;
        }
        let mut fields = line.split(|&b| b == b'\t');
        let (Some(chrom), Some(start), Some(end)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(lines.error("expected at least 3 tab-separated columns: chrom start end"));
        };
        let start = parse_u64(start, "start").map_err(|e| lines.error(e))?;
        let end = parse_u64(end, "end").map_err(|e| lines.error(e))?;
        if start >= end {
            return Err(lines.error(format!("start {start} is not before end {end}")));
        }
        out.push(Interval { chrom: String::from_utf8_lossy(chrom).into_owned(), start, end });
    }
    Ok(out)
}

/// One narrowPeak record (ENCODE's 10 columns).
#[derive(Debug, Clone, PartialEq)]
pub struct NarrowPeak {
    pub chrom: String,
    pub start: u64,
    pub end: u64,
    pub name: String,
    /// 0..=1000 by convention.
    pub score: u32,
    pub signal_value: f64,
    /// −log10 p, or −1.
    pub p_value: f64,
    /// −log10 q, or −1.
    pub q_value: f64,
    /// Summit offset from `start`.
    pub peak: u64,
}

/// Writes narrowPeak records atomically.
pub fn write_narrowpeak(path: impl AsRef<Path>, peaks: &[NarrowPeak]) -> Result<(), FileError> {
    let file = AtomicFile::new(path.as_ref())?;
    let mut w = file.create()?;
    let io = FileError::io(path.as_ref());
    for p in peaks {
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t.\t{:.5}\t{:.5}\t{:.5}\t{}",
            p.chrom, p.start, p.end, p.name, p.score, p.signal_value, p.p_value, p.q_value, p.peak
        )
        .map_err(FileError::io(path.as_ref()))?;
    }
    w.flush().map_err(io)?;
    drop(w);
    file.commit()
}
