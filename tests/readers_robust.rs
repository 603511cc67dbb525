//! Readers of user files fail with an error naming the file, never a panic, an abort or a
//! silent loss: every single-byte change of a bigWig, BGZF files (bgzip fragments, BAM) cut
//! between blocks, and `chromax peaks` on values no score table could hold.

use chromax::coverage::{bam_header_sizes, coverage_from_bam, coverage_from_fragments, CoverageOptions, Region};
use chromax::io::bigwig::{is_bigwig, read_bigwig, write_bigwig};
use chromax::io::fragments::FragmentReader;
use chromax::io::ChromSizes;
use chromax::track::{Run, Track};
use flate2::read::MultiGzDecoder;
use noodles::bam;
use noodles::core::Position;
use noodles::csi::binning_index::index::reference_sequence::bin::Chunk;
use noodles::sam;
use noodles::sam::alignment::io::Write as _;
use noodles::sam::alignment::record::cigar::op::{Kind, Op};
use noodles::sam::alignment::record::{Flags, MappingQuality};
use noodles::sam::alignment::RecordBuf;
use noodles::sam::header::record::value::map::ReferenceSequence;
use noodles::sam::header::record::value::Map;
use std::io::{BufRead, BufReader, Write};
use std::num::NonZero;
use std::path::{Path, PathBuf};

/// What read_bigwig says when bigtools panicked behind its guard: the layout check missed
/// a kind of damage. Must never appear.
const READER_PANICKED: &str = "the bigWig reader failed on it";

const BGZF_TRUNCATED: &str =
    "the BGZF file has no end-of-file block: it is truncated (copy it again, or re-create it: bgzip for text, samtools for a BAM)";

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// A fresh directory per test (tests run in parallel in one process).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-robust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn sizes(pairs: &[(&str, u64)]) -> ChromSizes {
    ChromSizes::from_pairs(pairs.iter().map(|&(n, l)| (n.to_string(), l))).expect("sizes")
}

/// chr1 and chr2 with data, chrM without: a bigWig of about 600 bytes.
fn small_track() -> Track {
    let mut t = Track::empty(sizes(&[("chr1", 1000), ("chr2", 500), ("chrM", 300)]));
    let run = |start, end, value| Run { start, end, value };
    t.set_runs(0, vec![run(10, 20, 1.5), run(20, 30, 2.0), run(100, 200, 0.1), run(990, 1000, 7.0)]);
    t.set_runs(1, vec![run(0, 500, 1.0 / 3.0)]);
    t
}

/// Every byte of a valid bigWig set in turn to its complement, 0x00 and 0x7F (then a
/// thousand files with 2 to 4 random bytes changed): each file reads (with and without
/// genome sizes) to a track or to an error naming the file, in this process — a panic fails
/// the test, an abort ends it. No error may come from the guard around bigtools: the layout
/// check must have caught the damage first. Cut at any length, the file is an error.
#[test]
fn every_single_byte_change_of_a_bigwig_is_ok_or_an_error() {
    let started = std::time::Instant::now();
    let dir = scratch("bigwig-bytes");
    let good_path = dir.join("good.bw");
    let track = small_track();
    write_bigwig(&good_path, &track, 1).expect("write");
    let good = std::fs::read(&good_path).expect("read");
    let path = dir.join("changed.bw");
    let prefix = format!("{}: ", path.display());
    let (mut files, mut errors) = (0usize, 0usize);
    for at in 0..good.len() {
        for value in [good[at] ^ 0xFF, 0x00, 0x7F] {
            if value == good[at] {
                continue;
            }
            let mut bytes = good.clone();
            bytes[at] = value;
            std::fs::write(&path, &bytes).expect("write");
            files += 1;
            let _ = is_bigwig(&path);
            for sizes in [None, Some(track.sizes())] {
                if let Err(e) = read_bigwig(&path, sizes) {
                    errors += 1;
                    let msg = e.to_string();
                    assert!(msg.starts_with(&prefix), "byte {at} = {value:#04x}: {msg}");
                    assert!(
                        !msg.contains(READER_PANICKED),
                        "byte {at} = {value:#04x}: the layout check missed it: {msg}"
                    );
                }
            }
        }
    }
    // Several bytes at once, at seeded random places and values.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..1000 {
        let mut bytes = good.clone();
        for _ in 0..2 + next() % 3 {
            let at = (next() % good.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        std::fs::write(&path, &bytes).expect("write");
        files += 1;
        for sizes in [None, Some(track.sizes())] {
            if let Err(e) = read_bigwig(&path, sizes) {
                errors += 1;
                let msg = e.to_string();
                assert!(msg.starts_with(&prefix) && !msg.contains(READER_PANICKED), "{bytes:?}: {msg}");
            }
        }
    }
    // Cut at every length: always an error.
    for len in 0..good.len() {
        std::fs::write(&path, &good[..len]).expect("write");
        let msg = read_bigwig(&path, None).expect_err("truncated").to_string();
        assert!(msg.starts_with(&prefix) && !msg.contains(READER_PANICKED), "{len} bytes: {msg}");
    }
    eprintln!(
        "{files} changed bigWigs of {} bytes: {errors} of {} reads were errors; every truncation one; in {:?}",
        good.len(),
        2 * files,
        started.elapsed()
    );
    assert!(errors > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first `n` lines of the yeast fragments (the file itself is plain gzip, not BGZF).
fn yeast_fragment_lines(n: usize) -> Vec<String> {
    let file = std::fs::File::open(data("yeast/yeast_500k_SRR1822137.frag.gz")).expect("fragments");
    BufReader::new(MultiGzDecoder::new(file)).lines().take(n).map(|l| l.expect("line")).collect()
}

/// The byte offsets where BGZF blocks start (the last being the end-of-file block's).
fn bgzf_block_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 18 <= bytes.len() {
        assert_eq!(&bytes[at + 12..at + 14], b"BC", "a BGZF block at byte {at}");
        starts.push(at);
        at += u16::from_le_bytes([bytes[at + 16], bytes[at + 17]]) as usize + 1;
    }
    assert_eq!(at, bytes.len(), "whole blocks");
    starts
}

/// A bgzip'd fragments file cut between blocks decompresses cleanly to fewer lines; its
/// missing end-of-file block makes it an error for every reader. A plain gzip file cut
/// anywhere already was one.
#[test]
fn a_bgzip_file_cut_between_blocks_is_an_error() {
    let dir = scratch("bgzf-cut");
    let mut lines: Vec<(String, usize, usize, String)> = yeast_fragment_lines(20_000)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].parse().expect("start"), f[2].parse().expect("end"), f[3].to_string())
        })
        .collect();
    lines.sort();
    // bgzip'd with a tabix index (as `tabix -p bed`), so the region path reads it too.
    let whole = dir.join("frags.tsv.gz");
    let mut writer = noodles::bgzf::io::Writer::new(std::fs::File::create(&whole).expect("create"));
    let mut indexer = noodles::tabix::index::Indexer::default();
    indexer.set_header(noodles::csi::binning_index::index::header::Builder::bed().build());
    let mut start = writer.virtual_position();
    for (chrom, s, e, barcode) in &lines {
        writeln!(writer, "{chrom}\t{s}\t{e}\t{barcode}").expect("write");
        let end = writer.virtual_position();
        let (first, last) = (Position::try_from(s + 1).expect("pos"), Position::try_from(*e).expect("pos"));
        indexer.add_record(chrom, first, last, Chunk::new(start, end)).expect("index");
        start = end;
    }
    writer.finish().expect("finish");
    let index = indexer.build();
    let bytes = std::fs::read(&whole).expect("read");
    let starts = bgzf_block_starts(&bytes);
    assert!(starts.len() >= 4, "{} blocks: the test needs several", starts.len());

    // Complete: every line.
    let mut reader = FragmentReader::open(&whole).expect("open");
    let mut n = 0;
    while reader.next().expect("fragment").is_some() {
        n += 1;
    }
    assert_eq!(n, lines.len());

    let genome = ChromSizes::read(data("yeast/sacCer3.chrom.sizes")).expect("sizes");
    let region = CoverageOptions {
        region: Some(Region::parse(&format!("{}:1-100000", lines[0].0)).expect("region")),
        ..Default::default()
    };
    let cut = dir.join("cut.tsv.gz");
    noodles::tabix::fs::write(format!("{}.tbi", cut.display()), &index).expect("tbi");
    // Without the end-of-file block only, and without the last data blocks too.
    for &end in &[starts[starts.len() - 1], starts[starts.len() - 2], starts[1]] {
        std::fs::write(&cut, &bytes[..end]).expect("write");
        // What a gzip reader makes of it: no error, and fewer lines once a data block is gone.
        let decoded: Vec<String> = BufReader::new(MultiGzDecoder::new(&bytes[..end]))
            .lines()
            .collect::<Result<_, _>>()
            .expect("a gzip reader sees no error");
        assert_eq!(decoded.len() < lines.len(), end < starts[starts.len() - 1], "{} lines", decoded.len());
        let want = format!("{}: {BGZF_TRUNCATED}", cut.display());
        let msg = FragmentReader::open(&cut).err().expect("truncated").to_string();
        assert_eq!(msg, want);
        for opts in [&CoverageOptions::default(), &region] {
            let msg = coverage_from_fragments(&cut, &genome, opts, &mut |_| {}).expect_err("truncated").to_string();
            assert_eq!(msg, want);
        }
    }
    // Whole, the region path reads it.
    std::fs::copy(&whole, &cut).expect("copy");
    let (_, report) = coverage_from_fragments(&cut, &genome, &region, &mut |_| {}).expect("indexed");
    assert!(report.records > 0);

    // Plain gzip cut anywhere: the decompressor sees the stream end early.
    let plain = std::fs::read(data("yeast/yeast_500k_SRR1822137.frag.gz")).expect("read");
    std::fs::write(&cut, &plain[..plain.len() / 2]).expect("write");
    let mut reader = FragmentReader::open(&cut).expect("plain gzip opens");
    let msg = loop {
        match reader.next() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a plain gzip file cut in half read as complete"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(msg.contains("the file is truncated"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A proper pair for a fragment `s..e` (0-based) of chromosome `chrom`, as aligners write it.
fn read_pair(chrom: usize, s: usize, e: usize, name: &str) -> [RecordBuf; 2] {
    const READ_LEN: usize = 50;
    let (fwd, rev) = (s - 4 + 1, e + 5 - READ_LEN + 1); // 1-based starts
    let tlen = (e + 4 - (s - 4) + 1) as i32;
    let one = |pos: usize, mate: usize, flags: u16, tlen: i32| {
        RecordBuf::builder()
            .set_name(name)
            .set_flags(Flags::from_bits_retain(flags))
            .set_reference_sequence_id(chrom)
            .set_alignment_start(Position::try_from(pos).expect("1-based"))
            .set_cigar([Op::new(Kind::Match, READ_LEN)].into_iter().collect())
            .set_mapping_quality(MappingQuality::new(60).expect("mapq"))
            .set_mate_reference_sequence_id(chrom)
            .set_mate_alignment_start(Position::try_from(mate).expect("1-based"))
            .set_template_length(tlen)
            .build()
    };
    [one(fwd, rev, 99, tlen), one(rev, fwd, 147, -tlen)]
}

/// A BAM is BGZF: cut between blocks, it is an error, not a smaller coverage.
#[test]
fn a_bam_cut_between_blocks_is_an_error() {
    let dir = scratch("bam-cut");
    let genome = ChromSizes::read(data("yeast/sacCer3.chrom.sizes")).expect("sizes");
    let mut header = sam::Header::builder();
    for (name, len) in genome.iter() {
        header = header
            .add_reference_sequence(name, Map::<ReferenceSequence>::new(NonZero::new(len as usize).expect("length")));
    }
    let header = header.build();
    let mut pairs = Vec::new();
    for (i, line) in yeast_fragment_lines(5_000).iter().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let chrom = genome.id(f[0]).expect("known chromosome");
        let (s, e): (usize, usize) = (f[1].parse().expect("start"), f[2].parse().expect("end"));
        if s >= 4 && e + 5 <= genome.length(chrom) as usize && e + 5 >= 50 {
            pairs.extend(read_pair(chrom, s, e, &format!("f{i}")));
        }
    }
    pairs.sort_by_key(|r| (r.reference_sequence_id(), r.alignment_start()));
    let whole = dir.join("yeast.bam");
    let mut writer = bam::io::writer::Builder.build_from_path(&whole).expect("bam");
    writer.write_header(&header).expect("header");
    for r in &pairs {
        writer.write_alignment_record(&header, r).expect("record");
    }
    writer.try_finish().expect("finish");
    drop(writer);

    let opts = CoverageOptions::default();
    let (_, report) = coverage_from_bam(&whole, Some(&genome), &opts, &mut |_| {}).expect("complete BAM");
    assert_eq!(report.records, pairs.len() as u64);

    let bytes = std::fs::read(&whole).expect("read");
    let starts = bgzf_block_starts(&bytes);
    assert!(starts.len() >= 4, "{} blocks: the test needs several", starts.len());
    let cut = dir.join("cut.bam");
    for &end in &[starts[starts.len() - 1], starts[starts.len() - 2]] {
        std::fs::write(&cut, &bytes[..end]).expect("write");
        let want = format!("{}: {BGZF_TRUNCATED}", cut.display());
        let msg = coverage_from_bam(&cut, Some(&genome), &opts, &mut |_| {}).expect_err("truncated").to_string();
        assert_eq!(msg, want);
        assert_eq!(bam_header_sizes(&cut).expect_err("truncated").to_string(), want);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `chromax peaks` stays bounded for any λ or coverage: a λ past the limit and non-finite or
/// negative coverage are errors naming the file (and the position); 3e38 is scored.
#[test]
fn peaks_stay_bounded_for_any_value() {
    let dir = scratch("peaks");
    let genome = dir.join("genome.sizes");
    std::fs::write(&genome, "chr1\t10000\n").expect("write");
    let bedgraph = dir.join("huge.bedGraph");
    std::fs::write(&bedgraph, "chr1\t100\t400\t3e38\nchr1\t500\t900\t-2\n").expect("write");
    let out = dir.join("peaks.narrowPeak");
    let chromax = |args: &[&str]| {
        let started = std::time::Instant::now();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_chromax")).args(args).output().expect("run chromax");
        assert!(started.elapsed().as_secs() < 20, "{args:?} took {:?}", started.elapsed());
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (bg, g, o) = (bedgraph.to_str().expect("utf-8"), genome.to_str().expect("utf-8"), out.to_str().expect("utf-8"));

    let (ok, err) = chromax(&["peaks", bg, "-g", g, "-o", o, "--lambda", "1e300"]);
    assert!(!ok && err.contains("--lambda 1e300 must be a number greater than 0 and at most 1e6"), "{err}");
    let (ok, err) = chromax(&["peaks", bg, "-g", g, "-o", o, "--lambda", "1"]);
    assert!(!ok && err.contains(&format!("{bg}: chr1:500-900: coverage -2 is negative")), "{err}");

    // Without the negative line: 3e38 is a peak, scored without a table sized by it.
    std::fs::write(&bedgraph, "chr1\t100\t400\t3e38\n").expect("write");
    let (ok, err) = chromax(&["peaks", bg, "-g", g, "-o", o, "--lambda", "1"]);
    assert!(ok, "{err}");
    let peaks = std::fs::read_to_string(&out).expect("peaks");
    assert_eq!(peaks.lines().count(), 1, "{peaks}");
    // With the genome mean as λ (3e38 · 300 / 10 kb): past the limit, and said so.
    let (ok, err) = chromax(&["peaks", bg, "-g", g, "-o", o]);
    assert!(!ok && err.contains("above 1e6") && err.contains("--lambda"), "{err}");

    // Past f32: the bedGraph reader refuses it.
    std::fs::write(&bedgraph, "chr1\t100\t400\t1e39\n").expect("write");
    let (ok, err) = chromax(&["peaks", bg, "-g", g, "-o", o, "--lambda", "1"]);
    assert!(!ok && err.contains("is not a finite number"), "{err}");

    // A bigWig with an infinite value: refused by the reader, naming the place.
    let mut t = Track::empty(sizes(&[("chr1", 10_000)]));
    t.set_runs(0, vec![Run { start: 100, end: 400, value: f32::INFINITY }]);
    let bw = dir.join("inf.bw");
    write_bigwig(&bw, &t, 1).expect("write");
    let (ok, err) = chromax(&["peaks", bw.to_str().expect("utf-8"), "-o", o, "--lambda", "1"]);
    assert!(!ok && err.contains("chr1:100-400: value inf is not finite"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
