//! Every single-cell figure from the bundled chr22 scATAC data (hg38 chr22, 100 cells, 1,455
//! MACS3 peaks): pseudobulk tracks with the peaks; a model trained on the real peak-by-cell
//! matrix, its curves and embedding coloured by a real grouping of the cells (the 50 barcodes
//! of the MACS3 subset against the rest); TF activity as a heatmap; ISM as logos; and the
//! report holding all of them, opened in headless Chromium. Bad input is named.
//!
//! No chr22 sequence is bundled (../shared/data says so), so the model reads a seeded
//! stand-in chr22 of the real length: the counts, cells, groups and peaks are real, the
//! sequence is not. What is tested is the figures (sizes, text, content), not biology.

mod common;

use common::{browser_opens_and_draws, fails_cleanly, run_chromax, test_data};
use std::io::Write;
use std::path::{Path, PathBuf};

const CHR22: u64 = 50_818_468;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-plotsc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run_chromax(args, dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    stderr
}

fn data(rel: &str) -> String {
    test_data().join(rel).to_str().expect("utf8 path").to_string()
}

/// The stand-in chr22: seeded bases, 80 to a line.
fn stand_in_chr22(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("fasta"));
    f.write_all(b">chr22\n").expect("write");
    let mut state = 22u64;
    let mut line = [0u8; 81];
    line[80] = b'\n';
    let mut left = CHR22;
    while left > 0 {
        let n = left.min(80) as usize;
        for b in line.iter_mut().take(n) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *b = b"ACGT"[((z ^ (z >> 31)) % 4) as usize];
        }
        f.write_all(&line[..n]).expect("write");
        f.write_all(b"\n").expect("write");
        left -= n as u64;
    }
}

/// SVG text nodes, trimmed.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).map(|t| t.trim().to_string()).collect()
}

/// Width, height, and the share of pixels that are not near-white.
fn png_drawn(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("png")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = &buf[..info.buffer_size()];
    let n = px.len() / 3;
    let drawn = px.chunks(3).filter(|p| p.iter().any(|&v| v < 200)).count();
    (info.width, info.height, drawn as f64 / n as f64)
}

#[test]
fn chr22_single_cell_figures_and_report() {
    let dir = scratch("all");
    let frags = data("chr22_scatac/fragments.tsv.gz");
    let peaks = data("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak");
    let fifty = data("chr22_scatac/barcodes_50.txt");

    // Pseudobulk tracks of all 100 cells and of the 50-barcode subset, MACS3's peaks under
    // them, around the strongest peak (chr22:26,645,204-26,645,672).
    std::fs::write(dir.join("chr22.sizes"), format!("chr22\t{CHR22}\n")).expect("sizes");
    ok(&dir, &["coverage", &frags, "-g", "chr22.sizes", "-o", "all.bw"]);
    ok(&dir, &["coverage", &frags, "-g", "chr22.sizes", "--cells", &fifty, "-o", "fifty.bw"]);
    let region = "chr22:26,640,001-26,652,000";
    let tracks = [
        "plot",
        "tracks",
        "--region",
        region,
        "--track",
        "100 cells=all.bw",
        "--track",
        "50 cells=fifty.bw",
        "--peaks",
        &format!("MACS3={peaks}"),
        "--same-scale",
    ];
    ok(&dir, &[&tracks[..], &["-o", "tracks.png"]].concat());
    ok(&dir, &[&tracks[..], &["-o", "tracks.svg"]].concat());
    let (w, _, drawn) = png_drawn(&dir.join("tracks.png"));
    assert_eq!(w, 1200);
    assert!(drawn > 0.01, "tracks.png is blank ({drawn})");
    let texts = svg_texts(&dir.join("tracks.svg"));
    for t in ["100 cells", "50 cells", "MACS3"] {
        assert!(texts.iter().any(|x| x.contains(t)), "tracks.svg lacks '{t}': {texts:?}");
    }

    // The model: the real 100 cells × 1,455 peaks, a small architecture, three epochs.
    stand_in_chr22(&dir.join("chr22.fa"));
    std::fs::write(dir.join("tiny.json"), common::TINY_SEQ_MODEL).expect("config");
    ok(&dir, &["sc", "matrix", "--fragments", &frags, "--peaks", &peaks, "-o", "m.h5ad"]);
    ok(
        &dir,
        &[
            "sc",
            "train",
            "--peaks",
            &peaks,
            "--genome",
            "chr22.fa",
            "--matrix",
            "m.h5ad",
            "--model-config",
            "tiny.json",
            "--epochs",
            "3",
            "--batch",
            "64",
            "--device",
            "cpu",
            "-o",
            "model",
        ],
    );
    // The groups: the 50 barcodes of the MACS3 subset, and the rest.
    let subset: Vec<String> =
        std::fs::read_to_string(&fifty).expect("barcodes").lines().map(|l| l.trim().to_string()).collect();
    let cells: Vec<String> =
        std::fs::read_to_string(dir.join("model/cells.tsv")).expect("cells").lines().map(str::to_string).collect();
    let groups: Vec<String> =
        cells.iter().map(|c| format!("{c}\t{}", if subset.contains(c) { "subset50" } else { "rest" })).collect();
    std::fs::write(dir.join("groups.tsv"), groups.join("\n") + "\n").expect("groups");
    let in_subset = cells.iter().filter(|c| subset.contains(c)).count();

    // Curves and the embedding by group.
    ok(&dir, &["plot", "curves", "--model", "model", "-o", "curves.svg"]);
    assert!(svg_texts(&dir.join("curves.svg")).iter().any(|t| t == "epoch"));
    ok(&dir, &["plot", "embedding", "--model", "model", "--groups", "groups.tsv", "-o", "emb.svg"]);
    ok(&dir, &["plot", "embedding", "--model", "model", "--groups", "groups.tsv", "-o", "emb.png"]);
    let texts = svg_texts(&dir.join("emb.svg"));
    let want = [format!("subset50 ({in_subset})"), format!("rest ({})", cells.len() - in_subset)];
    for t in &want {
        assert!(texts.contains(t), "emb.svg lacks '{t}': {texts:?}");
    }
    let (w, h, drawn) = png_drawn(&dir.join("emb.png"));
    assert!((w, h) == (900, 700) && drawn > 0.01, "emb.png: {w} × {h}, {drawn} drawn");
    ok(&dir, &["plot", "curves", "--model", "model", "-o", "curves.png"]);
    let (w, h, drawn) = png_drawn(&dir.join("curves.png"));
    assert!((w, h) == (1000, 40 + 2 * 280) && drawn > 0.01, "curves.png: {w} × {h}, {drawn} drawn (loss, metrics)");

    // TF activity of five JASPAR motifs, as a heatmap of the two groups.
    let jaspar = std::fs::read_to_string(data("motifs/JASPAR2022_vertebrates.pfm")).expect("jaspar");
    let mut seen = 0;
    let five: String = jaspar
        .lines()
        .filter(|l| !l.starts_with('#'))
        .take_while(|l| {
            seen += l.starts_with('>') as usize;
            seen <= 5
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("five.pfm"), &five).expect("motifs");
    let tf = [
        "sc",
        "tf-activity",
        "--model",
        "model",
        "--motifs",
        "five.pfm",
        "--genome",
        "chr22.fa",
        "--instances",
        "20",
        "--background",
        "20",
        "--device",
        "cpu",
        "-o",
        "tf.h5ad",
    ];
    ok(&dir, &tf);
    ok(
        &dir,
        &["plot", "tf-activity", "--model", "model", "--scores", "tf.tsv", "--groups", "groups.tsv", "-o", "tf.svg"],
    );
    let texts = svg_texts(&dir.join("tf.svg"));
    for t in ["subset50", "rest", "MA0004.1", "mean z-score"] {
        assert!(texts.iter().any(|x| x == t), "tf.svg lacks '{t}': {texts:?}");
    }
    ok(
        &dir,
        &["plot", "tf-activity", "--model", "model", "--scores", "tf.tsv", "--groups", "groups.tsv", "-o", "tf.png"],
    );
    let (w, h, drawn) = png_drawn(&dir.join("tf.png"));
    // 5 motifs × 2 groups of 34-pixel squares, the names and the key around them.
    assert!((w, h) == (160 + 5 * 34 + 110 + 20, 60 + 2 * 34 + 130) && drawn > 0.05, "tf.png: {w} × {h}, {drawn}");

    // ISM of two peaks per group, written beside the model (the report finds it there).
    std::fs::write(dir.join("two.bed"), "chr22\t26645203\t26645672\tpeak_427\nchr22\t50783230\t50783860\tpeak_1455\n")
        .expect("bed");
    let ism = [
        "sc",
        "ism",
        "--model",
        "model",
        "--genome",
        "chr22.fa",
        "--regions",
        "two.bed",
        "--groups",
        "groups.tsv",
        "--device",
        "cpu",
        "-o",
        "ism.h5",
    ];
    ok(&dir, &ism);
    // The strongest 40 positions of the first window, both groups; then ten chosen positions
    // of the second window, one group.
    let said = ok(&dir, &["plot", "ism", "--ism", "ism.h5", "-o", "ism.svg"]);
    assert!(said.contains("2 groups × 40 positions"), "{said}");
    ok(&dir, &["plot", "ism", "--ism", "ism.h5", "-o", "ism.png"]);
    let (w, h, drawn) = png_drawn(&dir.join("ism.png"));
    assert_eq!((w, h), (200 + 30 + 24 * 40, 40 + 2 * 150 + 60));
    assert!(drawn > 0.01, "ism.png is blank ({drawn})");
    let texts = svg_texts(&dir.join("ism.svg"));
    for t in ["subset50", "rest", "Δ logit", "reference base and position on chr22 (1-based)"] {
        assert!(texts.iter().any(|x| x == t), "ism.svg lacks '{t}': {texts:?}");
    }
    let letters = texts.iter().filter(|t| matches!(t.as_str(), "A" | "C" | "G" | "T" | "N")).count();
    assert_eq!(letters, 40, "the reference base under each of the 40 positions");
    // The second window is chr22:50783417-50783673 (0-based): ten of its positions.
    let said = ok(
        &dir,
        &[
            "plot",
            "ism",
            "--ism",
            "ism.h5",
            "--region",
            "chr22:50,783,501-50,783,510",
            "--group",
            "rest",
            "-o",
            "ism10.svg",
        ],
    );
    assert!(said.contains("1 groups × 10 positions, chr22:50783501-50783510"), "{said}");
    let texts = svg_texts(&dir.join("ism10.svg"));
    assert!(texts.iter().any(|t| t == "rest") && !texts.iter().any(|t| t == "subset50"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "50,783,510"), "the coordinate every ten positions: {texts:?}");

    // Bad ISM input: not an ISM file, a window it lacks, a range no window holds, an unknown
    // group, more positions than a logo draws.
    fails_cleanly(&dir, &["plot", "ism", "--ism", "m.h5ad", "-o", "x.svg"], &["m.h5ad", "not an ISM file"]);
    fails_cleanly(&dir, &["plot", "ism", "--ism", "ism.h5", "--region", "3", "-o", "x.svg"], &["holds regions 1 to 2"]);
    fails_cleanly(
        &dir,
        &["plot", "ism", "--ism", "ism.h5", "--region", "chr22:1-10", "-o", "x.svg"],
        &["no window of", "chr22:26645309-26645565"],
    );
    fails_cleanly(
        &dir,
        &["plot", "ism", "--ism", "ism.h5", "--group", "T cells", "-o", "x.svg"],
        &["--group T cells", "subset50"],
    );
    fails_cleanly(
        &dir,
        &["plot", "ism", "--ism", "ism.h5", "--region", "chr22:50783418-50783673", "-o", "x.svg"],
        &["256 positions", "at most 200"],
    );

    // The report: configuration, curves, embedding by group, the ISM logo and the TF heatmap
    // (both found beside the model, made from it), self-contained; a browser draws it.
    let said = ok(&dir, &["report", "model", "--groups", "groups.tsv", "-o", "sc.html"]);
    assert!(said.contains("configuration, training, embedding, ism, tf-activity, analyses"), "{said}");
    let html = std::fs::read_to_string(dir.join("sc.html")).expect("html");
    for id in ["configuration", "training", "embedding", "analyses"] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "no {id} section");
    }
    assert_eq!(html.matches("<svg").count(), 4, "curves, embedding, heatmap, logo");
    assert!(html.contains("coloured by group (groups.tsv)") && html.contains("ism.h5") && html.contains("tf.tsv"));
    assert_eq!(html.matches("http").count(), html.matches("http://www.w3.org/2000/svg").count());
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<link"));
    browser_opens_and_draws(&dir.join("sc.html"), &dir.join("sc.png"), "single-cell report");
    // Without groups the TF scores are named, not drawn (given as the .h5ad: its .tsv, once);
    // an ISM of another model (here: a copy of this one's settings) is not taken for this
    // one's; an unknown file is refused.
    ok(&dir, &["report", "model", "--analysis", "tf.h5ad", "-o", "plain.html"]);
    let plain = std::fs::read_to_string(dir.join("plain.html")).expect("html");
    assert!(plain.contains("give --groups FILE|obs:KEY") && plain.matches("<svg").count() == 3);
    assert_eq!(plain.matches("TF activity in").count(), 1);
    std::fs::create_dir_all(dir.join("elsewhere")).expect("dir");
    std::fs::copy(dir.join("model/cells.tsv"), dir.join("elsewhere/cells.tsv")).expect("copy");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model/config.json")).expect("config")).expect("json");
    config["training"]["seed"] = 99.into();
    std::fs::write(dir.join("elsewhere/config.json"), config.to_string()).expect("config");
    let said = ok(&dir, &["report", "elsewhere", "-o", "other.html"]);
    assert!(said.contains("sections: configuration, training, embedding, analyses"), "{said}");
    let other = std::fs::read_to_string(dir.join("other.html")).expect("html");
    assert!(!other.contains("ism.h5"), "another model's ISM");
    // A damaged TF table beside the model (its cells, a value that is not a number) is named
    // in the page, not drawn, and does not stop the report; given with --analysis it does.
    let tsv = std::fs::read_to_string(dir.join("tf.tsv")).expect("tsv");
    let mut lines: Vec<String> = tsv.lines().map(str::to_string).collect();
    let cut = lines[2].rfind('\t').expect("a value");
    lines[2] = format!("{}\tx", &lines[2][..cut]);
    std::fs::write(dir.join("tf_bad.tsv"), lines.join("\n") + "\n").expect("tsv");
    ok(&dir, &["report", "model", "--groups", "groups.tsv", "-o", "stray.html"]);
    let stray = std::fs::read_to_string(dir.join("stray.html")).expect("html");
    assert!(stray.contains("tf_bad.tsv was not drawn") && stray.contains("line 3"), "the damaged table is named");
    assert_eq!(stray.matches("<svg").count(), 4, "the others still drawn");
    fails_cleanly(
        &dir,
        &["report", "model", "--groups", "groups.tsv", "--analysis", "tf_bad.tsv", "-o", "x.html"],
        &["tf_bad.tsv", "line 3", "is not a number"],
    );
    fails_cleanly(
        &dir,
        &["report", "model", "--analysis", "two.bed", "-o", "x.html"],
        &["--analysis", "two.bed", "sc ism"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
