//! bedGraph: `chrom start end value` per line, 0-based half-open, sorted by position within
//! a chromosome; positions without a line are 0.

use super::atomic::AtomicFile;
use super::sizes::ChromSizes;
use super::text::{is_header, parse_u64, show, LineReader};
use crate::error::FileError;
use crate::track::{Run, Track};
use std::io::Write;
use std::path::Path;

/// Reads a bedGraph into a track over `sizes`, or over the chromosomes as they appear
/// (lengths = last end seen) when no sizes are given.
pub fn read_bedgraph(path: impl AsRef<Path>, sizes: Option<&ChromSizes>) -> Result<Track, FileError> {
    let path = path.as_ref();
    let mut lines = LineReader::open(path)?;
    let mut names: Vec<String> = Vec::new();
    let mut runs: Vec<Vec<Run>> = Vec::new();
    let mut ends: Vec<u64> = Vec::new();
    let mut current: Option<usize> = None;
    while lines.advance()? {
        let line = lines.line();
        if is_header(line) {
            continue;
        }
        let f: Vec<&[u8]> = line.split(|&b| b == b'\t' || b == b' ').filter(|x| !x.is_empty()).collect();
        if f.len() < 4 {
            return Err(lines.error(format!("{} column(s); a bedGraph line has 'chrom start end value'", f.len())));
        }
        let start = parse_u64(f[1], "start").map_err(|e| lines.error(e))?;
        let end = parse_u64(f[2], "end").map_err(|e| lines.error(e))?;
        if start >= end {
            return Err(lines.error(format!("start {start} is not before end {end}")));
        }
        let value: f32 = std::str::from_utf8(f[3])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|v: &f32| v.is_finite())
            .ok_or_else(|| lines.error(format!("value '{}' is not a finite number", show(f[3]))))?;
        let chrom = f[0];
        let id = match current {
            Some(id) if names[id].as_bytes() == chrom => id,
            _ => {
                let name = String::from_utf8_lossy(chrom).into_owned();
                if names.contains(&name) {
                    return Err(lines.error(format!(
                        "chromosome '{name}' appears again after other chromosomes: sort the file (sort -k1,1 -k2,2n)"
                    )));
                }
                names.push(name);
                runs.push(Vec::new());
                ends.push(0);
                names.len() - 1
            }
        };
        current = Some(id);
        if start < ends[id] {
            return Err(lines.error(format!(
                "starts at {start}, before the previous line ended ({}): overlapping or unsorted",
                ends[id]
            )));
        }
        ends[id] = end;
        if value != 0.0 {
            runs[id].push(Run { start: start as u32, end: end as u32, value });
        }
    }
    if names.is_empty() {
        return Err(FileError::content(path, "no data lines: an empty bedGraph"));
    }
    let track_sizes = match sizes {
        None => ChromSizes::from_pairs(names.iter().cloned().zip(ends.iter().copied()))
            .map_err(|e| FileError::content(path, e))?,
        Some(s) => s.clone(),
    };
    let mut track = Track::empty(track_sizes);
    for (name, chrom_runs) in names.into_iter().zip(runs) {
        let Some(id) = track.sizes().id(&name) else {
            return Err(FileError::Mismatch(crate::io::sizes::name_mismatch(
                &format!("{}", path.display()),
                track.sizes().names(),
                &[name],
                "the genome sizes",
                "the bedGraph",
            )));
        };
        if chrom_runs.last().is_some_and(|r| r.end as u64 > track.sizes().length(id)) {
            return Err(FileError::content(
                path,
                format!("'{name}' has values past its length {}", track.sizes().length(id)),
            ));
        }
        track.set_runs(id, chrom_runs);
    }
    Ok(track)
}

/// Writes a track as bedGraph (non-zero runs only), atomically.
pub fn write_bedgraph(path: impl AsRef<Path>, track: &Track) -> Result<(), FileError> {
    let path = path.as_ref();
    let file = AtomicFile::new(path)?;
    let mut w = file.create()?;
    let mut text = String::with_capacity(64);
    for (id, (name, _)) in track.sizes().iter().enumerate() {
        for r in track.runs(id) {
            text.clear();
            use std::fmt::Write as _;
            let _ = writeln!(text, "{name}\t{}\t{}\t{}", r.start, r.end, r.value);
            w.write_all(text.as_bytes()).map_err(FileError::io(path))?;
        }
    }
    w.flush().map_err(FileError::io(path))?;
    drop(w);
    file.commit()
}
