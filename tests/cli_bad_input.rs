//! Bad input to `chromax coverage | peaks | store`: a clear message naming the file and line,
//! exit code ≠ 0, and nothing left behind in the output directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

struct Case {
    dir: PathBuf,
}

impl Case {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chromax-bad-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Case { dir }
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).expect("write input");
        p
    }

    /// Runs chromax; asserts failure (exit 1), that stderr contains every piece of `expect`,
    /// and that the directory holds only the inputs afterwards.
    fn fails(&self, args: &[&str], expect: &[&str]) -> String {
        let before: Vec<_> = self.listing();
        let out = Command::new(env!("CARGO_BIN_EXE_chromax"))
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run chromax");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "exit code for {args:?}; stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for piece in expect {
            assert!(stderr.contains(piece), "stderr lacks '{piece}':\n{stderr}");
        }
        assert_eq!(self.listing(), before, "files left behind by {args:?}");
        stderr
    }

    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("gzip")
}

const SIZES: &str = "chrI\t230218\nchrII\t813184\n";

#[test]
fn truncated_gzip() {
    let c = Case::new("trunc");
    let whole = std::fs::read(data("yeast/yeast_500k_SRR1822137.frag.gz")).expect("data");
    c.file("cut.tsv.gz", &whole[..whole.len() / 2]);
    c.file("sizes", std::fs::read(data("yeast/sacCer3.chrom.sizes")).expect("sizes").as_slice());
    c.fails(&["coverage", "cut.tsv.gz", "-g", "sizes", "-o", "out.bw"], &["cut.tsv.gz", "line", "truncated"]);
}

#[test]
fn fragments_line_with_three_columns() {
    let c = Case::new("cols");
    c.file("f.tsv", b"chrI\t10\t100\tAAA\t1\nchrI\t20\t200\tAAA\t1\nchrI\t30\t300\n");
    c.file("sizes", SIZES.as_bytes());
    c.fails(
        &["coverage", "f.tsv", "-g", "sizes", "-o", "out.bw"],
        &["f.tsv: line 3", "3 column(s)", "chrom start end barcode"],
    );
}

#[test]
fn fragments_non_numeric_start_and_start_after_end() {
    let c = Case::new("nums");
    c.file("a.tsv.gz", &gzip("chrI\t10\t100\tAAA\t1\nchrI\tten\t200\tAAA\t1\n"));
    c.file("b.tsv", b"chrI\t500\t100\tAAA\t1\n");
    c.file("sizes", SIZES.as_bytes());
    c.fails(
        &["coverage", "a.tsv.gz", "-g", "sizes", "-o", "out.bedGraph"],
        &["a.tsv.gz: line 2", "start 'ten' is not a non-negative integer"],
    );
    c.fails(
        &["coverage", "b.tsv", "-g", "sizes", "-o", "out.bw"],
        &["b.tsv: line 1", "start 500 is not before end 100"],
    );
}

#[test]
fn sizes_with_a_duplicate_chromosome() {
    let c = Case::new("dup");
    c.file("f.tsv", b"chrI\t10\t100\tAAA\t1\n");
    c.file("sizes", b"chrI\t230218\nchrII\t813184\nchrI\t230218\n");
    c.fails(&["coverage", "f.tsv", "-g", "sizes", "-o", "out.bw"], &["sizes: line 3", "'chrI' is listed twice"]);
}

#[test]
fn chromosome_names_that_do_not_match() {
    let c = Case::new("names");
    c.file("f.tsv", b"I\t10\t100\tAAA\t1\nII\t20\t200\tAAA\t1\n");
    c.file("sizes", SIZES.as_bytes());
    let err =
        c.fails(&["coverage", "f.tsv", "-g", "sizes", "-o", "out.bw"], &["f.tsv", "'I'", "'chrI'", "'chr' prefix"]);
    assert!(err.contains("'II'") && err.contains("'chrII'"), "{err}");
}

#[test]
fn empty_inputs() {
    let c = Case::new("empty");
    c.file("empty.tsv", b"");
    c.file("comments.tsv.gz", &gzip("# only a header\n"));
    c.file("sizes", SIZES.as_bytes());
    c.file("nosizes", b"");
    c.fails(&["coverage", "empty.tsv", "-g", "sizes", "-o", "out.bw"], &["empty.tsv", "no fragments"]);
    c.fails(&["coverage", "comments.tsv.gz", "-g", "sizes", "-o", "out.bw"], &["comments.tsv.gz", "no fragments"]);
    c.fails(&["coverage", "empty.tsv", "-g", "nosizes", "-o", "out.bw"], &["nosizes", "no chromosomes"]);
    c.file("empty.bedGraph", b"");
    c.fails(&["peaks", "empty.bedGraph", "-o", "p.narrowPeak"], &["empty.bedGraph", "empty bedGraph"]);
}

#[test]
fn bam_region_without_index() {
    use noodles::sam::alignment::io::Write as _;
    let c = Case::new("bam");
    let header = noodles::sam::Header::builder()
        .add_reference_sequence(
            "chrI",
            noodles::sam::header::record::value::Map::<noodles::sam::header::record::value::map::ReferenceSequence>::new(
                std::num::NonZero::new(230_218usize).expect("length"),
            ),
        )
        .build();
    let path = c.dir.join("reads.bam");
    let mut writer = noodles::bam::io::writer::Builder.build_from_path(&path).expect("bam");
    writer.write_header(&header).expect("header");
    let record = noodles::sam::alignment::RecordBuf::builder()
        .set_name("r")
        .set_flags(noodles::sam::alignment::record::Flags::empty())
        .set_reference_sequence_id(0)
        .set_alignment_start(noodles::core::Position::try_from(100).expect("pos"))
        .set_cigar(
            [noodles::sam::alignment::record::cigar::op::Op::new(
                noodles::sam::alignment::record::cigar::op::Kind::Match,
                50,
            )]
            .into_iter()
            .collect(),
        )
        .build();
    writer.write_alignment_record(&header, &record).expect("record");
    writer.try_finish().expect("finish");
    drop(writer);
    c.fails(
        &["coverage", "reads.bam", "--region", "chrI:1-1000", "-o", "out.bw"],
        &["reads.bam", "--region needs the BAM's index", "samtools index"],
    );
    // Without --region the same BAM works, sizes from its header.
    let out = Command::new(env!("CARGO_BIN_EXE_chromax"))
        .args(["coverage", "reads.bam", "-o", "out.bw"])
        .current_dir(&c.dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(c.dir.join("out.bw").exists());
}

#[test]
fn arguments_that_cannot_work() {
    let c = Case::new("args");
    c.file("f.tsv", b"chrI\t10\t100\tAAA\t1\n");
    c.file("sizes", SIZES.as_bytes());
    c.fails(&["coverage", "f.tsv", "-g", "sizes", "-o", "out.txt"], &["out.txt", "unknown output format", ".bw"]);
    c.fails(&["coverage", "f.tsv", "-o", "out.bw"], &["--genome SIZES is required"]);
    c.fails(&["coverage", "f.tsv", "-g", "sizes", "-o", "nodir/out.bw"], &["nodir", "does not exist"]);
    c.fails(
        &["coverage", "f.tsv", "-g", "sizes", "-o", "out.bw", "--subsample-reads", "1.5"],
        &["--subsample-reads 1.5", "(0, 1]"],
    );
    c.fails(
        &["coverage", "f.tsv", "-g", "sizes", "-o", "out.bw", "--region", "chrX:1-10"],
        &["--region chrX", "not in the genome sizes"],
    );
    c.file("cells.txt", b"TTTT-1\n");
    c.fails(
        &["coverage", "f.tsv", "-g", "sizes", "-o", "out.bw", "--cells", "cells.txt"],
        &["none of the 1 selected barcodes", "TTTT-1"],
    );
    c.fails(&["store", "info", "f.tsv"], &["f.tsv", "not a chromax track shard"]);
    c.fails(&["peaks", "f.tsv", "-o", "p.narrowPeak"], &["f.tsv", "unknown track format"]);
}
