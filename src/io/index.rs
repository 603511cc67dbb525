//! Genomic indexes beside a BAM or a bgzip file (BAI, tabix, CSI), checked against their
//! formats before noodles reads them. noodles sizes its vectors from the counts in the file and
//! indexes a bit set by each bin's number, so a damaged index could allocate without bound or
//! panic in a query; after this check every count fits in the bytes that follow it and every
//! bin number lies within the index's depth.

use crate::error::FileError;
use std::io::Read;
use std::path::Path;

/// The kinds of index, by their magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// `.bai`: uncompressed, `BAI\1`.
    Bai,
    /// `.tbi`: BGZF-compressed, `TBI\1`.
    Tabix,
    /// `.csi`: BGZF-compressed, `CSI\1`.
    Csi,
}

/// The most an index may hold once decompressed (real ones are kilobytes to a few megabytes).
const MAX_INDEX_BYTES: u64 = 1 << 30;
/// BAI and tabix bin over 5 levels (with a minimum shift of 14).
const BAI_DEPTH: u32 = 5;

/// Checks the index at `path` (of `kind`), naming it and what is wrong.
pub fn check_index(path: &Path, kind: IndexKind) -> Result<(), FileError> {
    let file = std::fs::File::open(path).map_err(FileError::io(path))?;
    let mut bytes = Vec::new();
    let read = match kind {
        IndexKind::Bai => file.take(MAX_INDEX_BYTES + 1).read_to_end(&mut bytes),
        IndexKind::Tabix | IndexKind::Csi => {
            flate2::read::MultiGzDecoder::new(file).take(MAX_INDEX_BYTES + 1).read_to_end(&mut bytes)
        }
    };
    read.map_err(|e| damaged(path, format!("it does not decompress: {e}")))?;
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(damaged(path, format!("it holds more than {} MiB", MAX_INDEX_BYTES >> 20)));
    }
    check_bytes(&bytes, kind).map_err(|what| damaged(path, what))
}

fn damaged(path: &Path, what: String) -> FileError {
    FileError::content(path, format!("damaged index: {what} (re-create it: samtools index, or tabix)"))
}

/// A reading position over the index's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() - self.at < n {
            return Err(format!("it ends inside {what} at byte {}", self.at));
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count of items of at least `each` bytes that must fit in the rest of the file.
    fn count(&mut self, what: &str, each: usize) -> Result<usize, String> {
        let at = self.at;
        let n = self.u32(what)?;
        let n = i32::try_from(n).map_err(|_| format!("a negative count of {what} at byte {at}"))? as usize;
        if n.saturating_mul(each) > self.bytes.len() - self.at {
            return Err(format!("{n} {what} at byte {at}, more than the index holds"));
        }
        Ok(n)
    }
}

fn check_bytes(bytes: &[u8], kind: IndexKind) -> Result<(), String> {
    let mut c = Cursor { bytes, at: 0 };
    let magic: &[u8] = match kind {
        IndexKind::Bai => b"BAI\x01",
        IndexKind::Tabix => b"TBI\x01",
        IndexKind::Csi => b"CSI\x01",
    };
    if c.take(4, "the magic number")? != magic {
        return Err(format!("it does not start with {}", String::from_utf8_lossy(&magic[..3])));
    }
    let depth = match kind {
        IndexKind::Csi => {
            let (min_shift, depth) = (c.u32("the minimum shift")?, c.u32("the depth")?);
            // Positions must stay within 64 bits at every level.
            if !(1..=31).contains(&min_shift) || !(1..=10).contains(&depth) || min_shift + 3 * depth > 62 {
                return Err(format!("a minimum shift of {min_shift} and depth of {depth}"));
            }
            let aux = c.count("auxiliary bytes", 1)?;
            c.take(aux, "the auxiliary data")?;
            depth
        }
        _ => BAI_DEPTH,
    };
    let n_ref = c.count("reference sequences", 4)?;
    if kind == IndexKind::Tabix {
        // format, sequence/begin/end columns, meta character, lines to skip; then the names.
        c.take(24, "the tabix header")?;
        let names = c.count("bytes of sequence names", 1)?;
        let names = c.take(names, "the sequence names")?;
        let listed = names.iter().filter(|&&b| b == 0).count();
        if listed != n_ref || names.last().is_some_and(|&b| b != 0) {
            return Err(format!("{n_ref} reference sequences but {listed} names"));
        }
    }
    // Bins are numbered 0 ..= max; the metadata pseudo-bin is max + 2.
    let bin_count = ((1u64 << (3 * (depth + 1))) - 1) / 7;
    let (max_bin, metadata_bin) = (bin_count - 1, bin_count + 1);
    for r in 0..n_ref {
        let n_bin = c.count("bins", if kind == IndexKind::Csi { 16 } else { 8 })?;
        for _ in 0..n_bin {
            let at = c.at;
            let bin = c.u32("a bin number")? as u64;
            if kind == IndexKind::Csi {
                c.take(8, "a bin's offset")?;
            }
            let n_chunk = c.count("chunks", 16)?;
            if bin == metadata_bin {
                if n_chunk != 2 {
                    return Err(format!("reference sequence {}: a metadata bin of {n_chunk} chunks, not 2", r + 1));
                }
            } else if bin > max_bin {
                return Err(format!(
                    "reference sequence {}: bin {bin} at byte {at}, past the last bin ({max_bin}) of depth {depth}",
                    r + 1
                ));
            }
            c.take(16 * n_chunk, "a bin's chunks")?;
        }
        if kind != IndexKind::Csi {
            let n_intv = c.count("linear-index offsets", 8)?;
            c.take(8 * n_intv, "the linear index")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BAI of one reference: bin 4681 with one chunk, the metadata bin, two offsets.
    fn bai() -> Vec<u8> {
        let mut b = b"BAI\x01".to_vec();
        b.extend(1u32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend(4681u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend([0u8; 16]);
        b.extend(37450u32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend([0u8; 32]);
        b.extend(2u32.to_le_bytes());
        b.extend([0u8; 16]);
        b
    }

    #[test]
    fn a_whole_index_passes() {
        check_bytes(&bai(), IndexKind::Bai).expect("bai");
        let mut with_unplaced = bai();
        with_unplaced.extend(0u64.to_le_bytes());
        check_bytes(&with_unplaced, IndexKind::Bai).expect("with the unplaced count");
    }

    #[test]
    fn counts_past_the_end_bins_past_the_depth_and_cuts_are_named() {
        type Edit = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|b| b[4..8].copy_from_slice(&0x7fff_ffffu32.to_le_bytes())), "reference sequences at byte 4"),
            (Box::new(|b| b[4..8].copy_from_slice(&u32::MAX.to_le_bytes())), "negative count"),
            (Box::new(|b| b[8..12].copy_from_slice(&1_000_000u32.to_le_bytes())), "1000000 bins"),
            (Box::new(|b| b[12..16].copy_from_slice(&40_000u32.to_le_bytes())), "bin 40000"),
            (Box::new(|b| b[40..44].copy_from_slice(&3u32.to_le_bytes())), "metadata bin of 3 chunks"),
            (Box::new(|b| b.truncate(b.len() - 3)), "2 linear-index offsets at byte 76, more than the index holds"),
            (Box::new(|b| b.truncate(6)), "it ends inside reference sequences at byte 4"),
            (Box::new(|b| b[0] = b'C'), "does not start with BAI"),
        ];
        for (edit, want) in cases {
            let mut b = bai();
            edit(&mut b);
            let msg = check_bytes(&b, IndexKind::Bai).expect_err(want);
            assert!(msg.contains(want), "{msg} lacks {want}");
        }
    }

    #[test]
    fn tabix_names_and_csi_depths_are_checked() {
        let mut tbi = b"TBI\x01".to_vec();
        tbi.extend(1u32.to_le_bytes());
        tbi.extend([0u8; 24]);
        tbi.extend(3u32.to_le_bytes());
        tbi.extend(b"c1\0");
        tbi.extend(bai()[8..].iter());
        check_bytes(&tbi, IndexKind::Tabix).expect("tabix");
        tbi[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert!(check_bytes(&tbi, IndexKind::Tabix).expect_err("names").contains("2 reference sequences but 1 names"));

        let mut csi = b"CSI\x01".to_vec();
        csi.extend(14u32.to_le_bytes());
        csi.extend(25u32.to_le_bytes());
        csi.extend(0u32.to_le_bytes());
        csi.extend(0u32.to_le_bytes());
        assert!(check_bytes(&csi, IndexKind::Csi).expect_err("depth").contains("depth of 25"));
        csi[8..12].copy_from_slice(&5u32.to_le_bytes());
        check_bytes(&csi, IndexKind::Csi).expect("csi of no references");
    }
}
