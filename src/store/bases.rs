//! Genome sequence as base codes: one byte per base in a shard whose content is "bases".
//!
//! Codes: A 0, C 1, G 2, T 3, everything else 4 (N). Lowercase (soft-masked) bases keep their
//! base; IUPAC ambiguity codes (R Y S W K M B D H V), N, `-`, `.` and `*` become N. Any other
//! character is an error naming the line. Peak windows (e.g. scBasset's 1,344 bp) are centred
//! on `(start + end) / 2` and padded with N past the chromosome ends.

use super::build::{cache_dir, cache_error, file_sha256};
use super::shard::{
    write_shard_with, Dtype, ShardSource, ShardStats, ShardValues, TrackShard, CONTENT_BASES, SHARD_EXTENSION,
};
use crate::error::FileError;
use crate::io::bed::Interval;
use crate::io::sizes::name_mismatch;
use crate::io::text::LineReader;
use crate::io::ChromSizes;
use std::path::Path;

/// The code of N (and of every ambiguous base).
pub const BASE_N: u8 = 4;

/// The code of a FASTA sequence character, or `None` if it is not one.
pub fn base_code(c: u8) -> Option<u8> {
    match c {
        b'A' | b'a' => Some(0),
        b'C' | b'c' => Some(1),
        b'G' | b'g' => Some(2),
        b'T' | b't' => Some(3),
        b'N' | b'n' | b'R' | b'r' | b'Y' | b'y' | b'S' | b's' | b'W' | b'w' | b'K' | b'k' | b'M' | b'm' | b'B'
        | b'b' | b'D' | b'd' | b'H' | b'h' | b'V' | b'v' | b'U' | b'u' | b'-' | b'.' | b'*' => {
            Some(if matches!(c, b'U' | b'u') { 3 } else { BASE_N })
        }
        _ => None,
    }
}

/// Reads a FASTA file (plain, gzip or bgzip) into base codes per sequence, in file order.
pub fn read_fasta(path: &Path) -> Result<(ChromSizes, Vec<Vec<u8>>), FileError> {
    let mut lines = LineReader::open(path)?;
    let (mut names, mut seqs): (Vec<String>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    while lines.advance()? {
        let line = lines.line();
        if let Some(header) = line.strip_prefix(b">") {
            let name = String::from_utf8_lossy(header).split_whitespace().next().unwrap_or("").to_string();
            if name.is_empty() {
                return Err(lines.error("a '>' header without a sequence name"));
            }
            names.push(name);
            seqs.push(Vec::new());
            continue;
        }
        let Some(seq) = seqs.last_mut() else {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Err(lines.error("sequence before the first '>' header: not a FASTA file"));
        };
        for &c in line {
            match base_code(c) {
                Some(code) => seq.push(code),
                None if c.is_ascii_whitespace() => {}
                None => {
                    return Err(lines.error(format!(
                        "'{}' is not a nucleotide (A C G T, IUPAC codes, N, lowercase allowed)",
                        c as char
                    )))
                }
            }
        }
    }
    if names.is_empty() {
        return Err(FileError::content(path, "no sequences: expected '>name' lines followed by bases"));
    }
    if let Some(i) = seqs.iter().position(Vec::is_empty) {
        return Err(FileError::content(path, format!("sequence '{}' is empty", names[i])));
    }
    let sizes = ChromSizes::from_pairs(names.into_iter().zip(seqs.iter().map(|s| s.len() as u64)))
        .map_err(|e| FileError::content(path, e))?;
    Ok((sizes, seqs))
}

/// Converts a FASTA file into a base-code shard at `out`.
pub fn build_base_store(fasta: &Path, out: &Path) -> Result<ChromSizes, FileError> {
    let (sizes, seqs) = read_fasta(fasta)?;
    let (sha, size) = file_sha256(fasta)?;
    let source = ShardSource { path: fasta.display().to_string(), sha256: Some(sha), size: Some(size) };
    write_shard_with(out, &sizes, Dtype::U8, CONTENT_BASES, Some(source), |id, bytes| {
        bytes.copy_from_slice(&seqs[id]);
        ShardStats::default()
    })?;
    Ok(sizes)
}

/// A memory-mapped genome of base codes.
pub struct BaseStore {
    shard: TrackShard,
}

impl BaseStore {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let shard = TrackShard::open(path)?;
        if shard.index().content != CONTENT_BASES || shard.dtype() != Dtype::U8 {
            return Err(FileError::content(path, "a track shard, not a base-code store (build one from FASTA)"));
        }
        Ok(BaseStore { shard })
    }

    /// The base store of a FASTA file from the content-keyed cache, converting it on first use.
    pub fn cached(fasta: &Path) -> Result<Self, FileError> {
        let dir = cache_dir()?;
        let (sha, _) = file_sha256(fasta)?;
        let path = dir.join(format!("bases-{}.{SHARD_EXTENSION}", &sha[..32]));
        // Reused only when its header names this FASTA's content.
        if let Ok(store) = BaseStore::open(&path) {
            if store.shard.index().source.as_ref().and_then(|s| s.sha256.as_deref()) == Some(sha.as_str()) {
                return Ok(store);
            }
        }
        build_base_store(fasta, &path).map_err(|e| cache_error(&dir, e))?;
        BaseStore::open(&path)
    }

    pub fn sizes(&self) -> &ChromSizes {
        self.shard.sizes()
    }

    /// The SHA-256 of the FASTA the store was built from (recorded at building), else of the
    /// store file itself.
    pub fn source_sha256(&self) -> Result<String, FileError> {
        self.shard.source_sha256()
    }

    /// Codes of chromosome `chrom` over `start..start + out.len()` (N outside the chromosome).
    pub fn read(&self, chrom: usize, start: i64, out: &mut [u8]) {
        out.fill(BASE_N);
        let ShardValues::U8(codes) = self.shard.chrom_values(chrom) else { return };
        let len = codes.len() as i64;
        let (lo, hi) = (start.clamp(0, len), (start + out.len() as i64).clamp(0, len));
        if hi > lo {
            let at = (lo - start) as usize;
            out[at..at + (hi - lo) as usize].copy_from_slice(&codes[lo as usize..hi as usize]);
        }
    }

    /// One window of `width` codes per peak, centred on `(start + end) / 2`, concatenated.
    /// Every peak's chromosome must be in the genome; the error lists names from both sides.
    pub fn peak_windows(&self, peaks: &[Interval], width: usize, origin: &str) -> Result<Vec<u8>, FileError> {
        let missing: Vec<String> =
            peaks.iter().filter(|p| self.sizes().id(&p.chrom).is_none()).map(|p| p.chrom.clone()).collect();
        if !missing.is_empty() {
            let mut unique = missing.clone();
            unique.dedup();
            return Err(FileError::Mismatch(name_mismatch(
                &format!("{origin}: {} peaks are on chromosomes the FASTA lacks", missing.len()),
                self.sizes().names(),
                &unique,
                "the FASTA",
                "the peaks",
            )));
        }
        let mut out = vec![BASE_N; peaks.len() * width];
        for (p, window) in peaks.iter().zip(out.chunks_mut(width)) {
            let chrom = self.sizes().id(&p.chrom).unwrap_or(0);
            let centre = (p.start + p.end) / 2;
            self.read(chrom, centre as i64 - (width / 2) as i64, window);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_cover_soft_masking_and_iupac() {
        let coded: Vec<Option<u8>> = b"ACGTacgtNnRyKmU-x1".iter().map(|&c| base_code(c)).collect();
        let want = [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 3, 4].map(Some);
        assert_eq!(&coded[..16], &want);
        assert_eq!(&coded[16..], &[None, None]);
    }
}
