//! Coverage from a BAM file (noodles): filters, Tn5 shift, read pairs.

use super::{
    check_names_met, keep_in_subsample, CellSelection, CoverageOptions, CoverageReport, Pileup, PileupMode, Region,
};
use crate::error::FileError;
use crate::io::text::check_bgzf_complete;

use crate::io::ChromSizes;
use crate::track::Track;
use noodles::bam;
use noodles::sam;
use noodles::sam::alignment::record::data::field::{Tag, Value};
use noodles::sam::alignment::Record as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const PROGRESS_EVERY: u64 = 1 << 18;

/// A BAM must be a complete BGZF file: one that does not start like one is named as not a BAM
/// (rather than "ends early"), one cut short is named truncated.
fn check_bam_file(path: &Path) -> Result<(), FileError> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let n = File::open(path).and_then(|f| f.take(4).read(&mut head)).map_err(|e| bam_error(path, e))?;
    if n < 4 || head != [0x1f, 0x8b, 0x08, 0x04] {
        return Err(FileError::content(
            path,
            "not a BAM file: a BAM starts with a BGZF block (bytes 1f 8b 08 04); coverage reads a BAM or a fragments file (.tsv, .tsv.gz)",
        ));
    }
    check_bgzf_complete(path)
}

/// The longest BAM record chromax reads: 64 MiB, a read of tens of megabases with its
/// qualities and tags (real records are hundreds of bytes to a few megabytes).
const MAX_RECORD_BYTES: u32 = 64 << 20;
/// The longest BAM header (text and reference list) chromax reads.
const MAX_HEADER_BYTES: usize = 256 << 20;

// noodles sizes a buffer from each length field (record size, header text, reference name)
// before reading it, so a damaged file claiming 4 GiB allocates 4 GiB. chromax reads the
// framing itself, growing buffers only as bytes arrive and bounding each length, and gives
// noodles one whole header or record at a time to decode.

/// Appends `n` bytes from `r` to `out`, growing `out` only as bytes arrive.
fn read_bytes(r: &mut impl Read, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    let mut left = n;
    while left > 0 {
        let want = left.min(chunk.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => {
                out.extend_from_slice(&chunk[..k]);
                left -= k;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends a little-endian u32 from `r` to `out` and returns it.
fn read_u32(r: &mut impl Read, out: &mut Vec<u8>) -> io::Result<u32> {
    read_bytes(r, 4, out)?;
    let mut le = [0u8; 4];
    le.copy_from_slice(&out[out.len() - 4..]);
    Ok(u32::from_le_bytes(le))
}

fn damaged(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads a BAM header (magic, text, reference sequences) with bounded lengths.
fn read_header_bounded(r: &mut impl Read) -> io::Result<sam::Header> {
    let mut bytes = Vec::new();
    read_bytes(r, 4, &mut bytes)?;
    if bytes != b"BAM\x01" {
        return Err(damaged("the decompressed data does not start with BAM's magic (BAM\\1)".into()));
    }
    let l_text = read_u32(r, &mut bytes)? as usize;
    if l_text > MAX_HEADER_BYTES {
        return Err(damaged(format!("the header claims {l_text} bytes of text, more than {MAX_HEADER_BYTES}")));
    }
    read_bytes(r, l_text, &mut bytes)?;
    let n_ref = read_u32(r, &mut bytes)?;
    for i in 0..n_ref {
        let l_name = read_u32(r, &mut bytes)? as usize;
        if bytes.len().saturating_add(l_name) > MAX_HEADER_BYTES {
            return Err(damaged(format!(
                "reference sequence {} claims a {l_name}-byte name: the header would pass {MAX_HEADER_BYTES} bytes",
                i + 1
            )));
        }
        read_bytes(r, l_name + 4, &mut bytes)?;
    }
    bam::io::Reader::from(bytes.as_slice()).read_header()
}

/// Reads the next record (false at the end) after checking its length.
fn read_record_bounded(r: &mut impl Read, record: &mut bam::Record) -> io::Result<bool> {
    let mut size = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut size[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(size);
    if len > MAX_RECORD_BYTES {
        return Err(damaged(format!(
            "a record claims {len} bytes, more than the {} MiB of any read chromax reads",
            MAX_RECORD_BYTES >> 20
        )));
    }
    // The length is bounded now: noodles reads it again and the record straight from `r`.
    bam::io::Reader::from((&size[..]).chain(r)).read_record(record)?;
    Ok(true)
}

/// The genome sizes in a BAM header (`@SQ` lines).
pub fn bam_header_sizes(path: impl AsRef<Path>) -> Result<ChromSizes, FileError> {
    let path = path.as_ref();
    check_bam_file(path)?;
    let header = File::open(path)
        .map(noodles::bgzf::io::Reader::new)
        .and_then(|mut r| read_header_bounded(&mut r))
        .map_err(|e| bam_error(path, e))?;
    header_sizes(path, &header)
}

fn header_sizes(path: &Path, header: &sam::Header) -> Result<ChromSizes, FileError> {
    let pairs = header.reference_sequences().iter().map(|(name, rs)| (name.to_string(), rs.length().get() as u64));
    let sizes = ChromSizes::from_pairs(pairs).map_err(|e| FileError::content(path, e))?;
    if sizes.is_empty() {
        return Err(FileError::content(path, "the BAM header lists no reference sequences (@SQ)"));
    }
    Ok(sizes)
}

fn bam_error(path: &Path, e: std::io::Error) -> FileError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FileError::content(path, "the BAM ends early: the file is truncated"),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            FileError::Io { path: path.to_path_buf(), source: e }
        }
        _ => FileError::content(path, format!("not a readable BAM file: {e}")),
    }
}

/// Piles up the reads of a BAM over `sizes` (or the BAM header's sequences).
///
/// Reads are dropped when unmapped, secondary, supplementary, QC-failed, duplicates, or below
/// `min_mapq` (MAPQ 255, "unavailable", passes). In cut-site mode every remaining read gives
/// its Tn5 cut site; in fragment mode each properly paired leftmost mate (TLEN > 0) gives its
/// fragment `pos + 4 .. pos + TLEN − 5`. Subsampling is by read name, so mates share the
/// decision; cell selection reads the `CB` tag.
pub fn coverage_from_bam(
    path: impl AsRef<Path>,
    sizes: Option<&ChromSizes>,
    opts: &CoverageOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<(Track, CoverageReport), FileError> {
    let path = path.as_ref();
    opts.validate()?;
    let keep_cells = match &opts.cells {
        CellSelection::All => None,
        CellSelection::Keep(keep) => Some(keep),
        CellSelection::Sample(_) => {
            return Err(FileError::Argument(
                "--sample-cells needs a fragments file; for a BAM, list the cells with --cells".into(),
            ));
        }
    };
    // A BAM cut between blocks reads as a complete one with fewer records.
    check_bam_file(path)?;
    let mut reader = File::open(path).map(noodles::bgzf::io::Reader::new).map_err(|e| bam_error(path, e))?;
    let header = read_header_bounded(&mut reader).map_err(|e| bam_error(path, e))?;
    let bam_sizes = header_sizes(path, &header)?;
    let sizes = sizes.unwrap_or(&bam_sizes);
    // BAM reference id → id in `sizes` (None: missing from the sizes).
    let to_sizes: Vec<Option<usize>> = bam_sizes.names().iter().map(|n| sizes.id(n)).collect();

    let mut pile = Pileup::new(sizes, opts.region.as_ref())?;
    let mut report = CoverageReport { cells_kept: keep_cells.map(|k| k.len()), ..Default::default() };
    let mut per_record = |record: &bam::Record,
                          report: &mut CoverageReport,
                          pile: &mut Pileup|
     -> Result<(), FileError> {
        report.records += 1;
        if report.records.is_multiple_of(PROGRESS_EVERY) {
            progress(report.records);
        }
        let flags = record.flags();
        let reason = if flags.is_unmapped() {
            Some("unmapped")
        } else if flags.is_secondary() {
            Some("secondary")
        } else if flags.is_supplementary() {
            Some("supplementary")
        } else if flags.is_qc_fail() {
            Some("qc_fail")
        } else if flags.is_duplicate() {
            Some("duplicate")
        } else if record.mapping_quality().is_some_and(|q| u8::from(q) < opts.min_mapq) {
            Some("low_mapq")
        } else {
            None
        };
        if let Some(reason) = reason {
            *report.filtered.entry(reason).or_insert(0) += 1;
            return Ok(());
        }
        let record_no = report.records;
        let bad = |e: std::io::Error| FileError::content(path, format!("record {record_no}: {e}"));
        let Some(ref_id) = record.reference_sequence_id().transpose().map_err(bad)? else {
            *report.filtered.entry("unmapped").or_insert(0) += 1;
            return Ok(());
        };
        let Some(chrom) = to_sizes.get(ref_id).copied().flatten() else {
            let name = bam_sizes.names().get(ref_id).cloned().unwrap_or_else(|| format!("reference #{ref_id}"));
            *report.unknown_chroms.entry(name).or_insert(0) += 1;
            return Ok(());
        };
        pile.moved_to(chrom);
        if let Some(keep) = keep_cells {
            let barcode = match record.data().get(&Tag::CELL_BARCODE_ID) {
                Some(Ok(Value::String(s))) => Some(s.to_vec()),
                _ => None,
            };
            if !barcode.is_some_and(|b| keep.contains(&b)) {
                report.skipped_cells += 1;
                return Ok(());
            }
        }
        if let Some(fraction) = opts.subsample {
            let name = record.name().map(|n| n.to_vec()).unwrap_or_default();
            if !keep_in_subsample(fraction, opts.seed, &[&name]) {
                report.skipped_subsample += 1;
                return Ok(());
            }
        }
        let Some(start) = record.alignment_start().transpose().map_err(bad)? else {
            return Ok(());
        };
        let start0 = usize::from(start) as i64 - 1;
        if pile.past_end(chrom, start0) {
            report.off_chromosome += 1;
            return Ok(());
        }
        let used = match opts.mode {
            PileupMode::CutSites => {
                let cut = if flags.is_reverse_complemented() {
                    let end =
                        record.alignment_end().transpose().map_err(bad)?.map_or(start0, |e| usize::from(e) as i64 - 1);
                    end - 5
                } else {
                    start0 + 4
                };
                let e = opts.extend as i64;
                report.cut_sites += 1;
                pile.add(chrom, cut - e, cut + e + 1, 1)
            }
            PileupMode::Fragments => {
                let tlen = record.template_length() as i64;
                if !flags.is_properly_segmented() || tlen <= 0 {
                    return Ok(());
                }
                pile.add(chrom, start0 + 4, start0 + tlen - 5, 1)
            }
        };
        if used {
            report.used += 1;
        } else {
            report.skipped_region += 1;
        }
        Ok(())
    };

    match &opts.region {
        None => {
            let mut record = bam::Record::default();
            while read_record_bounded(&mut reader, &mut record).map_err(|e| bam_error(path, e))? {
                per_record(&record, &mut report, &mut pile)?;
            }
        }
        Some(region) => {
            let mut indexed = indexed_reader(path)?;
            let header = read_header_bounded(indexed.get_mut()).map_err(|e| bam_error(path, e))?;
            // Reads outside the region can still reach into it: a cut site's window by
            // `extend`, a fragment by its length (up to FRAGMENT_REACH, beyond which pairs are
            // not proper in practice). The pile-up clips to the region itself.
            let reach = match opts.mode {
                PileupMode::CutSites => opts.extend + 10,
                PileupMode::Fragments => FRAGMENT_REACH,
            };
            let query_region = noodles_region(region, reach, sizes)?;
            let query_failed =
                |e: &dyn std::fmt::Display| FileError::content(path, format!("region query failed: {e}"));
            let Some(ref_id) = header.reference_sequences().get_index_of(query_region.name()) else {
                return Err(FileError::content(
                    path,
                    format!("the BAM header has no reference sequence '{}'", region.chrom),
                ));
            };
            let interval = query_region.interval();
            let chunks = indexed.index().query(ref_id, interval).map_err(|e| query_failed(&e))?;
            let mut chunks = noodles::csi::io::Query::new(indexed.get_mut(), chunks);
            let mut record = bam::Record::default();
            while read_record_bounded(&mut chunks, &mut record).map_err(|e| bam_error(path, e))? {
                if overlaps(&record, ref_id, interval).map_err(|e| bam_error(path, e))? {
                    per_record(&record, &mut report, &mut pile)?;
                }
            }
        }
    }
    progress(report.records);
    if report.records == 0 && opts.region.is_none() {
        return Err(FileError::content(path, "no reads: the BAM has no records"));
    }
    check_names_met(path, sizes, &report, "the genome sizes")?;
    report.bases_clipped = pile.clipped;
    Ok((pile.finish(), report))
}

fn indexed_reader(path: &Path) -> Result<bam::io::IndexedReader<noodles::bgzf::io::Reader<File>>, FileError> {
    use crate::io::index::{check_index, IndexKind};
    let index = [("bai", IndexKind::Bai), ("csi", IndexKind::Csi)]
        .into_iter()
        .map(|(ext, kind)| (crate::io::prefixed(path, &format!(".{ext}")), kind))
        .find(|(p, _)| p.exists());
    let Some((index, kind)) = index else {
        return Err(FileError::content(
            path,
            format!("--region needs the BAM's index, but neither {0}.bai nor {0}.csi exists: create it with `samtools index {0}`", path.display()),
        ));
    };
    // noodles reads {path}.bai before {path}.csi, as found here.
    check_index(&index, kind)?;
    bam::io::indexed_reader::Builder::default()
        .build_from_path(path)
        .map_err(|e| FileError::content(path, format!("cannot open the BAM with its index: {e}")))
}

/// Whether a record's alignment lies on `ref_id` and meets `interval`.
fn overlaps(record: &bam::Record, ref_id: usize, interval: noodles::core::region::Interval) -> io::Result<bool> {
    if record.reference_sequence_id().transpose()? != Some(ref_id) {
        return Ok(false);
    }
    match (record.alignment_start().transpose()?, record.alignment_end().transpose()?) {
        (Some(start), Some(end)) => Ok(interval.intersects((start..=end).into())),
        _ => Ok(false),
    }
}

/// How far before a region the leftmost read of a fragment reaching into it may start.
const FRAGMENT_REACH: u64 = 10_000;

/// The region widened by `reach` on both sides, as noodles' 1-based inclusive region.
fn noodles_region(region: &Region, reach: u64, sizes: &ChromSizes) -> Result<noodles::core::Region, FileError> {
    let len = sizes.id(&region.chrom).map_or(u64::MAX, |id| sizes.length(id));
    let (start, end) = (region.start.saturating_sub(reach), region.end.saturating_add(reach).min(len));
    let text = format!("{}:{}-{}", region.chrom, start + 1, end);
    text.parse().map_err(|e| FileError::Argument(format!("--region {text}: {e}")))
}

/// Whether a file is a BAM: BGZF-compressed, starting with `BAM\1`, or named `.bam` (so that
/// a damaged or truncated one is read as a BAM, and its error says so, rather than taken for a
/// fragments file).
pub fn is_bam(path: impl AsRef<Path>) -> bool {
    use std::io::Read;
    let path = path.as_ref();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("bam")) {
        return true;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    flate2::read::MultiGzDecoder::new(file).read_exact(&mut magic).is_ok() && &magic == b"BAM\x01"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uncompressed BAM header: no text, one reference "c" of 1,000 bp.
    fn header_bytes() -> Vec<u8> {
        let mut b = b"BAM\x01".to_vec();
        b.extend(0u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend(b"c\0");
        b.extend(1000u32.to_le_bytes());
        b
    }

    fn err_text(r: io::Result<impl std::fmt::Debug>) -> String {
        r.expect_err("an error").to_string()
    }

    #[test]
    fn a_header_is_read_and_its_lengths_are_bounded() {
        let header = read_header_bounded(&mut header_bytes().as_slice()).expect("header");
        assert_eq!(header.reference_sequences().len(), 1);
        // A reference name claiming 4 GiB, a text claiming 4 GiB: errors, nothing allocated.
        let mut b = header_bytes();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(err_text(read_header_bounded(&mut b.as_slice())).contains("claims a 4294967295-byte name"));
        let mut b = header_bytes();
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(err_text(read_header_bounded(&mut b.as_slice())).contains("claims 4294967295 bytes of text"));
        // A text or name claiming more than there is: the stream ends early.
        let mut b = header_bytes();
        b[4..8].copy_from_slice(&1_000_000u32.to_le_bytes());
        let e = read_header_bounded(&mut b.as_slice()).expect_err("short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err_text(read_header_bounded(&mut &b"SAM\x01"[..])).contains("BAM's magic"));
    }

    #[test]
    fn records_are_read_and_their_lengths_are_bounded() {
        // One record: refID 0, pos 99, l_read_name 2 ("r\0"), MAPQ 60, bin 4680, no CIGAR,
        // flag 0, no sequence, next refID −1, next pos −1, tlen 0.
        let mut body = Vec::new();
        body.extend(0i32.to_le_bytes());
        body.extend(99i32.to_le_bytes());
        body.extend([2u8, 60]);
        body.extend(4680u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(0u32.to_le_bytes());
        body.extend((-1i32).to_le_bytes());
        body.extend((-1i32).to_le_bytes());
        body.extend(0i32.to_le_bytes());
        body.extend(b"r\0");
        let mut stream = (body.len() as u32).to_le_bytes().to_vec();
        stream.extend(&body);
        let mut record = bam::Record::default();
        let mut r = stream.as_slice();
        assert!(read_record_bounded(&mut r, &mut record).expect("record"));
        assert_eq!(record.alignment_start().transpose().expect("pos").map(usize::from), Some(100));
        assert!(!read_record_bounded(&mut r, &mut record).expect("the end"), "the end between records");
        // A size claiming 4 GiB is refused before anything is allocated.
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend(&body);
        assert!(err_text(read_record_bounded(&mut huge.as_slice(), &mut record))
            .contains("a record claims 4294967295 bytes"));
        // Cut inside the size or inside the body: the stream ends early.
        for cut in [2, stream.len() - 3] {
            let e = read_record_bounded(&mut &stream[..cut], &mut record).expect_err("cut");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
    }
}
