//! Base-code stores from real FASTA: sizes and composition, peak windows, N padding, and
//! the errors for mismatched or malformed input.

use chromax::io::bed::{read_intervals, Interval};
use chromax::store::bases::{build_base_store, read_fasta, BaseStore, BASE_N};
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chromax-bases-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

#[test]
fn chromosome_iv_converts_with_its_composition_and_windows() {
    let fasta = data("yeast/sacCer3.chrIV.fa");
    let text = std::fs::read_to_string(&fasta).expect("fasta");
    let seq: Vec<u8> = text.lines().skip(1).flat_map(|l| l.bytes()).collect();
    assert_eq!(seq.len(), 1_531_933);
    let dir = tempdir("chr4");
    let out = dir.join("chrIV.cxtrack");
    let sizes = build_base_store(&fasta, &out).expect("build");
    assert_eq!(sizes.iter().collect::<Vec<_>>(), [("chrIV", 1_531_933)]);
    let store = BaseStore::open(&out).expect("open");
    let mut codes = vec![0u8; seq.len()];
    store.read(0, 0, &mut codes);
    let upper = |c: u8| match c.to_ascii_uppercase() {
        b'A' => 0,
        b'C' => 1,
        b'G' => 2,
        b'T' => 3,
        _ => BASE_N,
    };
    assert!(codes.iter().zip(&seq).all(|(&code, &c)| code == upper(c)), "codes differ from the FASTA");

    // Windows of the hmmratac regions on chrIV, centred, 1,344 bp.
    let peaks: Vec<Interval> = read_intervals(data("yeast/hmmratac_yeast500k_accessible_regions.narrowPeak"))
        .expect("peaks")
        .into_iter()
        .filter(|p| p.chrom == "chrIV")
        .collect();
    assert_eq!(peaks.len(), 200);
    let windows = store.peak_windows(&peaks, 1344, "peaks").expect("windows");
    assert_eq!(windows.len(), 200 * 1344);
    for (k, p) in peaks.iter().enumerate() {
        let start = (p.start + p.end) as i64 / 2 - 672;
        for i in 0..1344i64 {
            let pos = start + i;
            let want = if pos < 0 || pos >= seq.len() as i64 { BASE_N } else { upper(seq[pos as usize]) };
            assert_eq!(windows[k * 1344 + i as usize], want, "peak {k} offset {i}");
        }
    }
    // A peak at the very start is padded with N on the left.
    let edge =
        store.peak_windows(&[Interval { chrom: "chrIV".into(), start: 0, end: 10 }], 1344, "edge").expect("window");
    assert!(edge[..667].iter().all(|&c| c == BASE_N) && edge[667] != BASE_N);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peaks_on_chromosomes_the_fasta_lacks_name_both_sides() {
    let dir = tempdir("missing");
    let out = dir.join("chrIV.cxtrack");
    build_base_store(&data("yeast/sacCer3.chrIV.fa"), &out).expect("build");
    let store = BaseStore::open(&out).expect("open");
    let peaks = read_intervals(data("yeast/hmmratac_yeast500k_accessible_regions.narrowPeak")).expect("peaks");
    let err =
        store.peak_windows(&peaks, 1344, "hmmratac.narrowPeak").expect_err("chrI is not in the FASTA").to_string();
    assert!(err.contains("hmmratac.narrowPeak") && err.contains("'chrI'") && err.contains("'chrIV'"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soft_masked_iupac_and_malformed_fasta() {
    let dir = tempdir("small");
    let ok = dir.join("ok.fa");
    std::fs::write(&ok, ">a some description\nACGTacgt\nNRYk\n>b\nGGuu-\n").expect("write");
    let (sizes, seqs) = read_fasta(&ok).expect("parse");
    assert_eq!(sizes.iter().collect::<Vec<_>>(), [("a", 12), ("b", 5)]);
    assert_eq!(seqs[0], [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4]);
    assert_eq!(seqs[1], [2, 2, 3, 3, 4]);
    for (name, text, want) in [
        ("digit.fa", ">a\nACGT\nAC1T\n", "digit.fa: line 3: '1' is not a nucleotide"),
        ("headless.fa", "ACGT\n>a\nACGT\n", "headless.fa: line 1: sequence before the first '>' header"),
        ("empty.fa", "", "empty.fa: no sequences"),
        ("emptyseq.fa", ">a\n>b\nAC\n", "sequence 'a' is empty"),
        ("dup.fa", ">a\nAC\n>a\nGT\n", "'a' is listed twice"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        let err = read_fasta(&p).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
