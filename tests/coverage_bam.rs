//! BAM and fragments give the same coverage once the BAM's filters are accounted for.
//!
//! No real BAM ships with the project, so the test writes one from the real yeast fragments:
//! each fragment becomes a proper read pair whose Tn5-shifted 5′ ends are the fragment's cut
//! sites, plus reads that must be filtered out (duplicates, secondary, supplementary,
//! QC-failed, low MAPQ, unmapped).

mod common;

use chromax::coverage::{coverage_from_bam, coverage_from_fragments, CoverageOptions, PileupMode, Region};
use chromax::io::ChromSizes;
use flate2::read::MultiGzDecoder;
use noodles::bam;
use noodles::core::Position;
use noodles::sam;
use noodles::sam::alignment::io::Write as _;
use noodles::sam::alignment::record::cigar::op::{Kind, Op};
use noodles::sam::alignment::record::{Flags, MappingQuality};
use noodles::sam::alignment::RecordBuf;
use noodles::sam::header::record::value::map::header::{sort_order::COORDINATE, tag::SORT_ORDER};
use noodles::sam::header::record::value::map::{self, ReferenceSequence};
use noodles::sam::header::record::value::Map;
use std::io::{BufRead, BufReader, Write};
use std::num::NonZero;
use std::path::{Path, PathBuf};

const READ_LEN: usize = 50;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

struct Read {
    chrom: usize,
    pos1: usize, // 1-based alignment start
    name: String,
    flags: u16,
    mapq: u8,
    mate_pos1: usize,
    tlen: i32,
}

fn record(r: &Read) -> RecordBuf {
    let mut b = RecordBuf::builder()
        .set_name(r.name.as_str())
        .set_flags(Flags::from_bits_retain(r.flags))
        .set_reference_sequence_id(r.chrom)
        .set_alignment_start(Position::try_from(r.pos1).expect("1-based"))
        .set_cigar([Op::new(Kind::Match, READ_LEN)].into_iter().collect())
        .set_mate_reference_sequence_id(r.chrom)
        .set_mate_alignment_start(Position::try_from(r.mate_pos1).expect("1-based"))
        .set_template_length(r.tlen);
    if let Some(q) = MappingQuality::new(r.mapq) {
        b = b.set_mapping_quality(q);
    }
    b.build()
}

struct Fixture {
    dir: PathBuf,
    bam: PathBuf,
    fragments: PathBuf,
    sizes: ChromSizes,
    placed: usize,
    extras: Vec<(&'static str, u64)>,
}

/// Writes the BAM (and its index) and the fragments it encodes.
fn fixture() -> Fixture {
    let sizes = ChromSizes::read(data("yeast/sacCer3.chrom.sizes")).expect("sizes");
    let dir = std::env::temp_dir().join(format!("chromax-bam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let frag_in = BufReader::new(MultiGzDecoder::new(
        std::fs::File::open(data("yeast/yeast_500k_SRR1822137.frag.gz")).expect("fragments"),
    ));
    let fragments = dir.join("placed.tsv");
    let mut frag_out = std::io::BufWriter::new(std::fs::File::create(&fragments).expect("fragments out"));
    let mut reads = Vec::new();
    let (mut dup, mut secondary, mut supplementary, mut qc, mut lowq) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut placed = 0;
    for (i, line) in frag_in.lines().enumerate() {
        let line = line.expect("line");
        let f: Vec<&str> = line.split('\t').collect();
        let chrom = sizes.id(f[0]).expect("known chromosome");
        let (s, e): (usize, usize) = (f[1].parse().expect("start"), f[2].parse().expect("end"));
        let len = sizes.length(chrom) as usize;
        // Forward read 5′ end s − 4, reverse read 5′ end (last base) e − 1 + 5 (0-based).
        if s < 4 || e + 5 > len || e + 5 < READ_LEN {
            continue;
        }
        writeln!(frag_out, "{line}").expect("write");
        placed += 1;
        let (fwd, rev) = (s - 4 + 1, e + 5 - READ_LEN + 1); // 1-based starts
        let tlen = (e + 4 - (s - 4) + 1) as i32;
        let pair = |name: String, extra: u16, mapq: u8| {
            [
                Read { chrom, pos1: fwd, name: name.clone(), flags: 99 | extra, mapq, mate_pos1: rev, tlen },
                Read { chrom, pos1: rev, name, flags: 147 | extra, mapq, mate_pos1: fwd, tlen: -tlen },
            ]
        };
        reads.extend(pair(format!("f{i}"), 0, 60));
        match i % 50 {
            0 => {
                reads.extend(pair(format!("d{i}"), 0x400, 60));
                dup += 2;
            }
            1 => {
                reads.push(Read {
                    chrom,
                    pos1: fwd,
                    name: format!("f{i}"),
                    flags: 99 | 0x100,
                    mapq: 60,
                    mate_pos1: rev,
                    tlen,
                });
                secondary += 1;
            }
            2 => {
                reads.push(Read {
                    chrom,
                    pos1: rev,
                    name: format!("f{i}"),
                    flags: 147 | 0x800,
                    mapq: 60,
                    mate_pos1: fwd,
                    tlen: -tlen,
                });
                supplementary += 1;
            }
            3 => {
                reads.extend(pair(format!("q{i}"), 0x200, 60));
                qc += 2;
            }
            4 => {
                reads.extend(pair(format!("m{i}"), 0, 10));
                lowq += 2;
            }
            _ => {}
        }
    }
    frag_out.flush().expect("flush");
    reads.sort_by_key(|r| (r.chrom, r.pos1));

    let mut header = sam::Header::builder()
        .set_header(Map::<map::Header>::builder().insert(SORT_ORDER, COORDINATE).build().expect("@HD"));
    for (name, len) in sizes.iter() {
        header = header
            .add_reference_sequence(name, Map::<ReferenceSequence>::new(NonZero::new(len as usize).expect("length")));
    }
    let header = header.build();
    let bam_path = dir.join("yeast.bam");
    let mut writer = bam::io::writer::Builder.build_from_path(&bam_path).expect("bam");
    writer.write_header(&header).expect("header");
    for r in &reads {
        writer.write_alignment_record(&header, &record(r)).expect("record");
    }
    // An unmapped read at the end, as aligners write them.
    let unmapped = RecordBuf::builder().set_name("u").set_flags(Flags::UNMAPPED).build();
    writer.write_alignment_record(&header, &unmapped).expect("record");
    writer.try_finish().expect("finish");
    drop(writer);
    match bam::fs::index(&bam_path).expect("index") {
        bam::Index::Bai(index) => {
            noodles::bam::bai::fs::write(format!("{}.bai", bam_path.display()), &index).expect("bai")
        }
        bam::Index::Csi(index) => noodles::csi::fs::write(format!("{}.csi", bam_path.display()), &index).expect("csi"),
    }
    let extras = vec![
        ("duplicate", dup),
        ("secondary", secondary),
        ("supplementary", supplementary),
        ("qc_fail", qc),
        ("low_mapq", lowq),
        ("unmapped", 1),
    ];
    Fixture { dir, bam: bam_path, fragments, sizes, placed, extras }
}

#[test]
fn bam_and_fragments_give_the_same_tracks() {
    let fx = fixture();
    let quiet = &mut |_| {};
    for mode in [PileupMode::CutSites, PileupMode::Fragments] {
        let opts = CoverageOptions { mode, ..Default::default() };
        let (from_bam, report) = coverage_from_bam(&fx.bam, Some(&fx.sizes), &opts, quiet).expect("bam coverage");
        let (from_frags, freport) =
            coverage_from_fragments(&fx.fragments, &fx.sizes, &opts, quiet).expect("fragments coverage");
        assert_eq!(freport.used, fx.placed as u64);
        assert_eq!(from_bam.sum(), from_frags.sum(), "{mode:?}: totals");
        assert!(from_bam == from_frags, "{mode:?}: tracks differ");
        if mode == PileupMode::CutSites {
            for (reason, n) in &fx.extras {
                assert_eq!(report.filtered.get(reason).copied().unwrap_or(0), *n, "{reason}");
            }
            assert_eq!(report.used, 2 * fx.placed as u64);
            common::say(&format!(
                "BAM: {} reads, {} used, filtered {:?}",
                report.records, report.used, report.filtered
            ));
        }
    }

    // The header's sizes serve when no genome file is given.
    let (no_sizes, _) = coverage_from_bam(&fx.bam, None, &CoverageOptions::default(), quiet).expect("bam coverage");
    assert_eq!(no_sizes.sizes(), &fx.sizes);

    // A region through the index equals the whole-genome track there.
    let region = Region::parse("chrIV:500001-600000").expect("region");
    let opts = CoverageOptions { region: Some(region), ..Default::default() };
    let (part, _) = coverage_from_bam(&fx.bam, Some(&fx.sizes), &opts, quiet).expect("region");
    let (whole, _) = coverage_from_bam(&fx.bam, Some(&fx.sizes), &CoverageOptions::default(), quiet).expect("whole");
    let id = fx.sizes.id("chrIV").expect("chrIV");
    let (mut a, mut b) = (vec![0f32; 100_000], vec![0f32; 100_000]);
    part.fill(id, 500_000, &mut a);
    whole.fill(id, 500_000, &mut b);
    let first_diff = (0..a.len()).find(|&i| a[i] != b[i]);
    assert!(first_diff.is_none(), "region differs from the whole track at chrIV:{:?}", first_diff.map(|i| 500_000 + i));
    assert_eq!(part.run_count(), part.runs(id).len());

    // Subsampling by read name keeps or drops both mates together.
    let opts = CoverageOptions { subsample: Some(0.25), seed: 9, ..Default::default() };
    let (_, sub) = coverage_from_bam(&fx.bam, Some(&fx.sizes), &opts, quiet).expect("subsample");
    assert_eq!(sub.used % 2, 0, "mates share the subsampling decision");
    let kept_pairs = sub.used as f64 / 2.0;
    let n = fx.placed as f64;
    assert!((kept_pairs - 0.25 * n).abs() < 3.0 * (n * 0.25 * 0.75).sqrt(), "{kept_pairs} of {n}");
    let _ = std::fs::remove_dir_all(&fx.dir);
}
