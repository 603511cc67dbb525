//! Coverage from real fragments files: exact invariants, subsampling, cell selection,
//! peaks against MACS3, and the bigWig round trip.

mod common;

use chromax::coverage::{coverage_from_fragments, CellSelection, CoverageOptions, PileupMode, Region};
use chromax::io::bigwig::{read_bigwig, write_bigwig};
use chromax::io::ChromSizes;
use chromax::peaks::{call_peaks, PeakCallOptions};

use flate2::read::MultiGzDecoder;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// (chrom, start, end, barcode) of every line, read independently of chromax.
fn fragment_lines(path: &Path) -> Vec<(String, u64, u64, String)> {
    let reader = BufReader::new(MultiGzDecoder::new(std::fs::File::open(path).expect("test data")));
    reader
        .lines()
        .map(|l| l.expect("readable"))
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].parse().expect("start"), f[2].parse().expect("end"), f[3].to_string())
        })
        .collect()
}

fn sizes_map(sizes: &ChromSizes) -> HashMap<String, u64> {
    sizes.iter().map(|(n, l)| (n.to_string(), l)).collect()
}

fn yeast() -> (PathBuf, ChromSizes) {
    (data("yeast/yeast_500k_SRR1822137.frag.gz"), ChromSizes::read(data("yeast/sacCer3.chrom.sizes")).expect("sizes"))
}

fn no_progress() -> impl FnMut(u64) {
    |_| {}
}

#[test]
fn total_cut_site_coverage_is_exact() {
    let (frags, sizes) = yeast();
    let lines = fragment_lines(&frags);
    assert_eq!(lines.len(), 414_968);
    let lengths = sizes_map(&sizes);
    for extend in [100u64, 5, 0] {
        let opts = CoverageOptions { extend, ..Default::default() };
        let (track, report) = coverage_from_fragments(&frags, &sizes, &opts, &mut no_progress()).expect("coverage");
        // 2 cut sites per fragment, each 2·extend + 1 bases, minus what falls off the ends.
        let mut off_ends = 0u64;
        for (chrom, start, end, _) in &lines {
            let len = lengths[chrom] as i64;
            for site in [*start as i64, *end as i64 - 1] {
                let (lo, hi) = (site - extend as i64, site + extend as i64 + 1);
                off_ends += ((0 - lo).max(0) + (hi - len).max(0)) as u64;
            }
        }
        let want = 2 * lines.len() as u64 * (2 * extend + 1) - off_ends;
        assert_eq!(track.sum() as u64, want, "extend {extend}");
        assert_eq!(report.bases_clipped, off_ends);
        assert_eq!(report.used, lines.len() as u64);
    }
}

#[test]
fn fragment_mode_piles_up_whole_fragments() {
    let (frags, sizes) = yeast();
    let lines = fragment_lines(&frags);
    let opts = CoverageOptions { mode: PileupMode::Fragments, ..Default::default() };
    let (track, _) = coverage_from_fragments(&frags, &sizes, &opts, &mut no_progress()).expect("coverage");
    let want: u64 = lines.iter().map(|(_, s, e, _)| e - s).sum();
    assert_eq!(track.sum() as u64, want);
    // Spot-check per-base values on chrI against a direct count.
    let chr1: Vec<&(String, u64, u64, String)> = lines.iter().filter(|l| l.0 == "chrI").collect();
    let mut direct = vec![0f32; 5000];
    for (_, s, e, _) in chr1 {
        for p in *s..(*e).min(5000) {
            direct[p as usize] += 1.0;
        }
    }
    let mut got = vec![0f32; 5000];
    track.fill(sizes.id("chrI").expect("chrI"), 0, &mut got);
    assert_eq!(got, direct);
}

#[test]
fn subsampling_keeps_the_fraction_and_a_seed_reproduces_it() {
    let (frags, sizes) = yeast();
    let run = |seed| {
        let opts = CoverageOptions { subsample: Some(0.1), seed, ..Default::default() };
        coverage_from_fragments(&frags, &sizes, &opts, &mut no_progress()).expect("coverage")
    };
    let (a, ra) = run(1);
    let n = ra.records as f64;
    let sigma = (n * 0.1 * 0.9).sqrt();
    let kept = ra.used as f64;
    common::say(&format!("subsample 0.1 of {n}: kept {kept} (expected {:.0} ± {:.0})", 0.1 * n, 3.0 * sigma));
    assert!((kept - 0.1 * n).abs() <= 3.0 * sigma, "kept {kept} of {n}");
    assert_eq!(ra.used + ra.skipped_subsample, ra.records);
    let (b, _) = run(1);
    assert_eq!(a, b, "the same seed gives the same track");
    let (c, _) = run(2);
    assert_ne!(a, c, "another seed gives another track");
}

#[test]
fn cell_selection_keeps_exactly_those_cells() {
    let frags = data("chr22_scatac/fragments.tsv.gz");
    let lines = fragment_lines(&frags);
    let barcodes: HashSet<String> = std::fs::read_to_string(data("chr22_scatac/barcodes_50.txt"))
        .expect("barcodes")
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(barcodes.len(), 50);
    let sizes = ChromSizes::from_pairs([("chr22".to_string(), 50_818_468u64)]).expect("chr22");
    let keep: HashSet<Vec<u8>> = barcodes.iter().map(|b| b.as_bytes().to_vec()).collect();
    let opts = CoverageOptions { mode: PileupMode::Fragments, cells: CellSelection::Keep(keep), ..Default::default() };
    let (track, report) = coverage_from_fragments(&frags, &sizes, &opts, &mut no_progress()).expect("coverage");
    let selected: Vec<_> = lines.iter().filter(|l| barcodes.contains(&l.3)).collect();
    assert_eq!(report.used, selected.len() as u64);
    assert_eq!(report.skipped_cells, (lines.len() - selected.len()) as u64);
    assert_eq!(report.cells_kept, Some(50));
    let want: u64 = selected.iter().map(|(_, s, e, _)| e - s).sum();
    assert_eq!(track.sum() as u64, want);

    // --sample-cells N: N distinct cells, the same N for the same seed.
    let sample = |seed| {
        let opts = CoverageOptions { cells: CellSelection::Sample(20), seed, ..Default::default() };
        coverage_from_fragments(&frags, &sizes, &opts, &mut no_progress()).expect("coverage")
    };
    let ((t1, r1), (t2, _), (t3, _)) = (sample(3), sample(3), sample(4));
    assert_eq!(r1.cells_kept, Some(20));
    assert_eq!(t1, t2);
    assert_ne!(t1, t3);
}

#[test]
fn region_restricts_coverage_to_the_region() {
    let (frags, sizes) = yeast();
    let opts =
        CoverageOptions { region: Some(Region::parse("chrII:100001-200000").expect("region")), ..Default::default() };
    let (track, report) = coverage_from_fragments(&frags, &sizes, &opts, &mut no_progress()).expect("coverage");
    let (whole, _) =
        coverage_from_fragments(&frags, &sizes, &CoverageOptions::default(), &mut no_progress()).expect("coverage");
    let id = sizes.id("chrII").expect("chrII");
    let (mut a, mut b) = (vec![0f32; 100_000], vec![0f32; 100_000]);
    track.fill(id, 100_000, &mut a);
    whole.fill(id, 100_000, &mut b);
    assert_eq!(a, b);
    assert!(track.runs(id).iter().all(|r| r.start >= 100_000 && r.end <= 200_000));
    assert!(report.skipped_region > 0);
    assert_eq!(track.run_count(), track.runs(id).len());
}

#[test]
fn peaks_on_yeast_coverage_overlap_hmmratac_regions() {
    let (frags, sizes) = yeast();
    let (track, _) =
        coverage_from_fragments(&frags, &sizes, &CoverageOptions::default(), &mut no_progress()).expect("coverage");
    let (peaks, summary) = call_peaks(&track, &PeakCallOptions::default()).expect("peaks");
    let reference = chromax::io::bed::read_intervals(data("yeast/hmmratac_yeast500k_accessible_regions.narrowPeak"))
        .expect("narrowPeak");
    assert_eq!(reference.len(), 1605);
    let overlapped = reference
        .iter()
        .filter(|r| peaks.iter().any(|p| p.chrom == r.chrom && p.start < r.end && r.start < p.end))
        .count();
    let ours_overlapping = peaks
        .iter()
        .filter(|p| reference.iter().any(|r| p.chrom == r.chrom && p.start < r.end && r.start < p.end))
        .count();
    common::say(&format!(
        "yeast: λ {:.3}, {} peaks; {overlapped} of {} hmmratac regions ({:.1}%) overlap a chromax peak; {ours_overlapping} of our peaks ({:.1}%) overlap a hmmratac region",
        summary.lambda,
        peaks.len(),
        reference.len(),
        100.0 * overlapped as f64 / reference.len() as f64,
        100.0 * ours_overlapping as f64 / peaks.len() as f64
    ));
    assert!(
        overlapped * 2 > reference.len(),
        "most hmmratac regions should overlap a peak: {overlapped} of {}",
        reference.len()
    );
}

#[test]
fn bigwig_reads_back_identically_through_bigtools_and_pybigwig() {
    let (frags, sizes) = yeast();
    let (track, _) =
        coverage_from_fragments(&frags, &sizes, &CoverageOptions::default(), &mut no_progress()).expect("coverage");
    let dir = tempdir("bigwig");
    let bw = dir.join("yeast.bw");
    write_bigwig(&bw, &track, 2).expect("write");
    let back = read_bigwig(&bw, Some(&sizes)).expect("read");
    assert_eq!(back, track, "bigtools reads back the same runs");
    let back_own = read_bigwig(&bw, None).expect("read with the file's chromosomes");
    assert_eq!(back_own.sum(), track.sum());

    // pyBigWig, where Python has it: total of every interval and a few exact intervals.
    let script = format!(
        "import pyBigWig\nbw = pyBigWig.open({:?})\ntotal = 0.0\nfor c, n in bw.chroms().items():\n    for s, e, v in (bw.intervals(c) or []):\n        total += (e - s) * v\nprint(repr(total))\nprint(bw.intervals('chrII', 0, 2000))\n",
        bw.display().to_string()
    );
    match std::process::Command::new("python3").args(["-c", &script]).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let total: f64 = lines.next().and_then(|l| l.trim().parse().ok()).expect("a total");
            assert_eq!(total, track.sum(), "pyBigWig total");
            let id = sizes.id("chrII").expect("chrII");
            let want: Vec<String> = track
                .runs(id)
                .iter()
                .filter(|r| r.start < 2000)
                .map(|r| format!("({}, {}, {:.1})", r.start, r.end, r.value))
                .collect();
            let got = lines.next().unwrap_or("");
            assert_eq!(got, format!("({}{})", want.join(", "), if want.len() == 1 { "," } else { "" }));
            common::say("bigwig round trip: pyBigWig agrees");
        }
        Ok(out) => common::say(&format!(
            "bigwig_reads_back_identically: pyBigWig part skipped: python3 has no pyBigWig ({})",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )),
        Err(_) => common::say("bigwig_reads_back_identically: pyBigWig part skipped: no python3"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes the yeast fragments bgzip-compressed with a tabix index (as `tabix -p bed`).
fn bgzip_with_tabix(dir: &Path) -> PathBuf {
    use noodles::core::Position;
    use noodles::csi::binning_index::index::reference_sequence::bin::Chunk;
    use std::io::Write;
    let (frags, _) = yeast();
    let out = dir.join("frags.tsv.gz");
    let mut writer = noodles::bgzf::io::Writer::new(std::fs::File::create(&out).expect("create"));
    let mut indexer = noodles::tabix::index::Indexer::default();
    indexer.set_header(noodles::csi::binning_index::index::header::Builder::bed().build());
    let mut lines = fragment_lines(&frags);
    lines.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let mut start = writer.virtual_position();
    for (chrom, s, e, bc) in &lines {
        writeln!(writer, "{chrom}\t{s}\t{e}\t{bc}\t1").expect("write");
        let end = writer.virtual_position();
        indexer
            .add_record(
                chrom,
                Position::try_from(*s as usize + 1).expect("pos"),
                Position::try_from(*e as usize).expect("pos"),
                Chunk::new(start, end),
            )
            .expect("index");
        start = end;
    }
    writer.finish().expect("finish");
    noodles::tabix::fs::write(format!("{}.tbi", out.display()), &indexer.build()).expect("tbi");
    out
}

#[test]
fn a_region_reads_the_same_through_tabix_as_by_streaming() {
    let (plain, sizes) = yeast();
    let dir = tempdir("tabix");
    let indexed = bgzip_with_tabix(&dir);
    for mode in [PileupMode::CutSites, PileupMode::Fragments] {
        let opts = CoverageOptions {
            mode,
            region: Some(Region::parse("chrIV:400001-450000").expect("region")),
            ..Default::default()
        };
        let (via_index, ri) = coverage_from_fragments(&indexed, &sizes, &opts, &mut no_progress()).expect("tabix");
        let (streamed, rs) = coverage_from_fragments(&plain, &sizes, &opts, &mut no_progress()).expect("stream");
        assert!(via_index == streamed, "{mode:?}: tabix and streaming differ");
        assert!(
            ri.records < rs.records / 10,
            "the index read only the region: {} of {} records",
            ri.records,
            rs.records
        );
        assert!(streamed.sum() > 0.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn counts_weight_fragments_and_unknown_chromosomes_are_counted() {
    let dir = tempdir("counts");
    let path = dir.join("f.tsv");
    std::fs::write(&path, "chrI\t1000\t1100\tA\t3\nchrUn_1\t5\t50\tA\t1\nchrI\t2000\t2300\tB\t1\nchrUn_1\t7\t70\tB\t2\nchrUn_2\t1\t9\tB\t1\n").expect("write");
    let sizes = ChromSizes::from_pairs([("chrI".to_string(), 230_218u64)]).expect("sizes");
    let opts = CoverageOptions { extend: 0, ..Default::default() };
    let (plain, report) = coverage_from_fragments(&path, &sizes, &opts, &mut no_progress()).expect("coverage");
    assert_eq!(plain.sum(), 4.0);
    assert_eq!(report.unknown_chroms.get("chrUn_1"), Some(&2));
    assert_eq!(report.unknown_chroms.get("chrUn_2"), Some(&1));
    assert_eq!(report.used, 2);
    let opts = CoverageOptions { extend: 0, use_counts: true, ..Default::default() };
    let (weighted, _) = coverage_from_fragments(&path, &sizes, &opts, &mut no_progress()).expect("coverage");
    assert_eq!(weighted.sum(), 2.0 * 3.0 + 2.0 * 1.0);
    let mut v = vec![0f32; 2];
    weighted.fill(0, 1099, &mut v);
    assert_eq!(v, [3.0, 0.0], "the cut site at end − 1 carries the count");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fragments_past_the_chromosome_end_are_counted_off_chromosome() {
    let dir = tempdir("past-end");
    let path = dir.join("f.tsv");
    // chrI is 1,000 bp here: a fragment inside, one sticking out (clipped), two wholly past.
    std::fs::write(
        &path,
        "chrI\t100\t200\tA\t1\nchrI\t950\t1050\tA\t1\nchrI\t1000\t1100\tB\t1\nchrI\t5000\t5100\tB\t1\n",
    )
    .expect("write");
    let sizes = ChromSizes::from_pairs([("chrI".to_string(), 1_000u64)]).expect("sizes");
    let opts = CoverageOptions { extend: 0, mode: PileupMode::Fragments, ..Default::default() };
    let (track, report) = coverage_from_fragments(&path, &sizes, &opts, &mut no_progress()).expect("coverage");
    assert_eq!((report.records, report.used, report.off_chromosome), (4, 2, 2));
    assert_eq!(report.bases_clipped, 50, "only the fragment sticking out is clipped");
    assert_eq!(track.sum(), 100.0 + 50.0);
    // Every fragment past the end: the sizes are of another assembly, an error.
    std::fs::write(&path, "chrI\t1000\t1100\tB\t1\nchrI\t5000\t5100\tB\t1\n").expect("write");
    let err = coverage_from_fragments(&path, &sizes, &opts, &mut no_progress()).expect_err("all past the end");
    let msg = err.to_string();
    assert!(msg.contains("f.tsv") && msg.contains("past its chromosome's end") && msg.contains("(2 of 2)"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}
