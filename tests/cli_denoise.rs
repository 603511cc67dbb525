//! `chromax denoise` bad input: a clear message, exit code ≠ 0, nothing half-written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Fixture {
    dir: PathBuf,
}

/// Small real tracks (three yeast chromosomes) and a trained tiny model, once per process.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chromax-cli-denoise-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("g.sizes"), "chrI\t230218\nchrII\t813184\nchrIII\t316620\n").expect("sizes");
        let frags = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/yeast/yeast_500k_SRR1822137.frag.gz");
        let frags = frags.to_str().expect("utf-8");
        ok(&dir, &["coverage", frags, "-g", "g.sizes", "-o", "clean.bw"]);
        ok(&dir, &["coverage", frags, "-g", "g.sizes", "-o", "noisy.bw", "--subsample-reads", "0.1", "--seed", "2"]);
        ok(&dir, &["peaks", "clean.bw", "-o", "peaks.narrowPeak"]);
        ok(
            &dir,
            &[
                "denoise",
                "train",
                "--noisy",
                "noisy.bw",
                "--clean",
                "clean.bw",
                "--peaks",
                "peaks.narrowPeak",
                "-g",
                "g.sizes",
                "-o",
                "model",
                "--val-chrom",
                "chrIII",
                "--epochs",
                "1",
                "--interval",
                "4000",
                "--pad",
                "64",
                "--batch",
                "8",
                "--blocks",
                "1",
                "--filters",
                "4",
                "--kernel",
                "9",
                "--dilation",
                "2",
                "--cls-blocks",
                "1",
                "--cls-filters",
                "4",
                "--cls-kernel",
                "9",
                "--cls-dilation",
                "2",
                "--device",
                "cpu",
            ],
        );
        Fixture { dir }
    })
}

fn chromax(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chromax"))
        .args(args)
        .current_dir(dir)
        .env("CHROMAX_TRACK_CACHE", dir.join("cache"))
        .output()
        .expect("run chromax")
}

fn ok(dir: &Path, args: &[&str]) {
    let out = chromax(dir, args);
    assert!(out.status.success(), "chromax {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The tests share one directory and check what is left in it: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fails with exit code `code`, stderr holding every piece, and no new files.
fn fails(args: &[&str], code: i32, expect: &[&str]) {
    let dir = &fixture().dir;
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let out = chromax(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    for piece in expect {
        assert!(stderr.contains(piece), "stderr lacks '{piece}':\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(listing(), before, "{args:?} left files behind");
}

const TRAIN: &[&str] = &[
    "denoise",
    "train",
    "--noisy",
    "noisy.bw",
    "--clean",
    "clean.bw",
    "--peaks",
    "peaks.narrowPeak",
    "-g",
    "g.sizes",
    "--device",
    "cpu",
];

fn train_with(extra: &[&str]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = TRAIN.to_vec();
    for e in extra {
        v.push(Box::leak(e.to_string().into_boxed_str()));
    }
    v
}

#[test]
fn model_that_is_a_bigwig_or_another_architecture() {
    let _one_at_a_time = serial();
    let dir = &fixture().dir;
    fails(
        &["denoise", "run", "--model", "clean.bw", "--noisy", "noisy.bw", "-o", "out", "--device", "cpu"],
        1,
        &["clean.bw", "a bigWig file", "config.json"],
    );
    fails(
        &["denoise", "run", "--model", "nowhere", "--noisy", "noisy.bw", "-o", "out", "--device", "cpu"],
        1,
        &["nowhere", "not a chromax model directory"],
    );
    // config.json of one shape, weights of another.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    let config = std::fs::read_to_string(dir.join("model/config.json"))
        .expect("config")
        .replace("\"reg_filters\": 4", "\"reg_filters\": 5");
    std::fs::write(other.join("config.json"), config).expect("config");
    std::fs::copy(dir.join("model/model.safetensors"), other.join("model.safetensors")).expect("weights");
    fails(
        &["denoise", "run", "--model", "other", "--noisy", "noisy.bw", "-o", "out", "--device", "cpu"],
        1,
        &["checkpoint of another architecture", "regression.block0"],
    );
    std::fs::remove_dir_all(&other).expect("clean up");
}

#[test]
fn tracks_from_another_assembly_and_bad_values() {
    let _one_at_a_time = serial();
    let dir = &fixture().dir;
    std::fs::write(dir.join("longer.sizes"), "chrI\t230218\nchrII\t813184\nchrIII\t316621\n").expect("sizes");
    fails(
        &train_with(&["-o", "m1", "--val-chrom", "chrIII"])
            .iter()
            .map(|s| if *s == "g.sizes" { "longer.sizes" } else { s })
            .collect::<Vec<_>>(),
        1,
        &["chrIII is 316620 bp in the bigWig but 316621 bp"],
    );
    std::fs::remove_file(dir.join("longer.sizes")).expect("rm");
    std::fs::write(dir.join("negative.bedGraph"), "chrI\t0\t100\t3\nchrI\t100\t200\t-2\n").expect("bedGraph");
    let args: Vec<&str> = train_with(&["-o", "m2", "--val-chrom", "chrIII"])
        .iter()
        .map(|s| if *s == "noisy.bw" { "negative.bedGraph" } else { s })
        .collect();
    fails(&args, 1, &["negative.bedGraph", "value -2 at chrI:101", "non-negative"]);
    std::fs::write(dir.join("nan.bedGraph"), "chrI\t0\t100\tnan\n").expect("bedGraph");
    let args: Vec<&str> = train_with(&["-o", "m2", "--val-chrom", "chrIII"])
        .iter()
        .map(|s| if *s == "noisy.bw" { "nan.bedGraph" } else { s })
        .collect();
    fails(&args, 1, &["nan.bedGraph: line 1", "not a finite number"]);
    std::fs::remove_file(dir.join("negative.bedGraph")).expect("rm");
    std::fs::remove_file(dir.join("nan.bedGraph")).expect("rm");
}

#[test]
fn peaks_outside_the_chromosomes() {
    let _one_at_a_time = serial();
    let dir = &fixture().dir;
    std::fs::write(dir.join("past.bed"), "chrI\t100\t200\nchrII\t813000\t813500\n").expect("bed");
    let args: Vec<&str> = train_with(&["-o", "m3", "--val-chrom", "chrIII"])
        .iter()
        .map(|s| if *s == "peaks.narrowPeak" { "past.bed" } else { s })
        .collect();
    fails(&args, 1, &["past.bed", "chrII:813000-813500 ends past the chromosome's end (813184 bp)"]);
    std::fs::write(dir.join("elsewhere.bed"), "chrX\t100\t200\n").expect("bed");
    let args: Vec<&str> = train_with(&["-o", "m3", "--val-chrom", "chrIII"])
        .iter()
        .map(|s| if *s == "peaks.narrowPeak" { "elsewhere.bed" } else { s })
        .collect();
    fails(&args, 1, &["elsewhere.bed", "'chrX'"]);
    std::fs::remove_file(dir.join("past.bed")).expect("rm");
    std::fs::remove_file(dir.join("elsewhere.bed")).expect("rm");
}

#[test]
fn missing_validation_chromosome_unknown_flag_and_region_past_the_end() {
    let _one_at_a_time = serial();
    fails(&train_with(&["-o", "m4", "--val-chrom", "chrXXX"]), 1, &["--val-chrom chrXXX: no such chromosome", "chrI"]);
    fails(
        &train_with(&["-o", "m4", "--val-chrom", "chrIII", "--epoch", "3"]),
        2,
        &["unexpected argument '--epoch'", "--epochs"],
    );
    fails(
        &train_with(&["-o", "m4", "--val-chrom", "chrIII", "--pad", "10", "--blocks", "1"]),
        1,
        &["--pad 10 is smaller than the model's receptive radius"],
    );
    fails(
        &[
            "denoise",
            "run",
            "--model",
            "model",
            "--noisy",
            "noisy.bw",
            "-o",
            "out",
            "--regions",
            "chrI:1-300000",
            "--device",
            "cpu",
        ],
        1,
        &["chrI:1-300000 goes past the chromosome's end (230218 bp)"],
    );
    fails(
        &[
            "denoise",
            "eval",
            "--prediction",
            "nothing",
            "--clean",
            "clean.bw",
            "--peaks",
            "peaks.narrowPeak",
            "--device",
            "cpu",
        ],
        1,
        &["nothing.prob.bw", "--probabilities"],
    );
}

#[test]
fn run_and_eval_from_the_command_line() {
    let _one_at_a_time = serial();
    let dir = &fixture().dir;
    ok(
        dir,
        &[
            "denoise",
            "run",
            "--model",
            "model",
            "--noisy",
            "noisy.bw",
            "-o",
            "pred",
            "--probabilities",
            "--round",
            "2",
            "--device",
            "cpu",
        ],
    );
    for f in ["pred.track.bw", "pred.prob.bw", "pred.peaks.narrowPeak"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let out = chromax(
        dir,
        &[
            "denoise",
            "eval",
            "--prediction",
            "pred",
            "--noisy",
            "noisy.bw",
            "--clean",
            "clean.bw",
            "--peaks",
            "peaks.narrowPeak",
            "--json",
            "eval.json",
            "--plots",
            "figs",
            "--device",
            "cpu",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The evaluation's figures: both formats, the legends carrying the table's AUROC/AUPRC,
    // the scatters their Pearson r.
    let svg_texts = |name: &str| -> Vec<String> {
        let svg = std::fs::read_to_string(dir.join("figs").join(name)).expect("svg");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).map(|t| t.trim().to_string()).collect()
    };
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let auroc_row = table.lines().find(|l| l.starts_with("AUROC (peaks)")).expect("AUROC row").to_string();
    let roc = svg_texts("roc_pr.svg");
    for prefix in
        ["ROC: peaks", "Precision–recall", "denoised (AUROC 0.", "noisy (AUROC 0.", "denoised (AUPRC 0.", "random"]
    {
        assert!(roc.iter().any(|t| t.starts_with(prefix)), "roc_pr.svg lacks '{prefix}': {roc:?}");
    }
    let denoised_auroc = roc.iter().find(|t| t.starts_with("denoised (AUROC")).expect("legend");
    let in_legend: f64 = denoised_auroc["denoised (AUROC ".len()..].trim_end_matches(')').parse().expect("number");
    let in_table: f64 = auroc_row.split_whitespace().last().and_then(|v| v.parse().ok()).expect("denoised column");
    assert!((in_legend - in_table).abs() <= 0.00051, "{denoised_auroc} vs {auroc_row}");
    let scatter = svg_texts("scatter.svg");
    for prefix in ["noisy vs clean (r = ", "denoised vs clean (r = ", "clean: log(1 + coverage)", "bases"] {
        assert!(scatter.iter().any(|t| t.starts_with(prefix)), "scatter.svg lacks '{prefix}'");
    }
    for png in ["roc_pr.png", "scatter.png"] {
        let bytes = std::fs::read(dir.join("figs").join(png)).expect("png");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
    }

    // The report of the model and this run: one page holding every section, self-contained.
    let rep = chromax(
        dir,
        &[
            "report",
            "model",
            "-o",
            "report.html",
            "--prediction",
            "pred",
            "--noisy",
            "noisy.bw",
            "--clean",
            "clean.bw",
            "--peaks",
            "peaks.narrowPeak",
        ],
    );
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    for section in ["configuration", "training", "evaluation", "tracks"] {
        assert!(html.contains(&format!("<section id=\"{section}\">")), "no {section} section");
    }
    // Curves, ROC/PR, scatter, then a track view per predicted peak drawn (up to three) and
    // a random stretch.
    let tracks = &html[html.find("<section id=\"tracks\">").expect("tracks")..];
    let views = tracks.matches("<svg").count();
    let called = std::fs::read_to_string(dir.join("pred.peaks.narrowPeak")).expect("peaks").lines().count();
    assert_eq!(views, called.min(3) + 1, "track views");
    assert_eq!(html.matches("<svg").count(), 3 + views, "inline figures");
    for text in ["AUROC (peaks)", "denoised (AUROC 0.", "clean peaks (", "called (", "peak probability"] {
        assert!(html.contains(text), "report lacks '{text}'");
    }
    // Nothing outside the file: no script, stylesheet, image or frame source, and no URL but
    // the SVG namespace.
    for tag in ["<script", "<link", "<img", "<iframe", "src=", "url("] {
        assert!(!html.contains(tag), "report holds '{tag}'");
    }
    assert_eq!(html.matches("http").count(), html.matches("http://www.w3.org/2000/svg").count());
    // A real browser opens it from disk without a console message and draws it.
    common::browser_opens_and_draws(&dir.join("report.html"), &dir.join("report.png"), "report");
    // A directory that is not a model.
    std::fs::create_dir_all(dir.join("empty_dir")).expect("dir");
    let bad = chromax(dir, &["report", "empty_dir", "-o", "nothing.html"]);
    assert_eq!(bad.status.code(), Some(1), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a model directory"));
    assert!(!dir.join("nothing.html").exists());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("AUPRC (peaks)") && table.contains("noisy") && table.contains("denoised"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).expect("json")).expect("valid json");
    assert_eq!(json["bases"], 230_218 + 813_184 + 316_620);
    assert!(json["denoised"]["pearson"].as_f64().is_some_and(|r| r > 0.0 && r <= 1.0));

    // The training curves of the same model, as SVG: a panel per part of the loss and the
    // metrics, each curve named in its legend, the best epoch marked.
    ok(dir, &["plot", "curves", "--model", "model", "-o", "curves.svg"]);
    let svg = std::fs::read_to_string(dir.join("curves.svg")).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<String> =
        doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).map(|t| t.trim().to_string()).collect();
    for text in [
        "Loss",
        "Loss part: MSE (coverage)",
        "Loss part: BCE (peaks)",
        "Metrics",
        "train loss",
        "val loss",
        "val auprc",
        "best epoch (",
        "epoch",
    ] {
        assert!(texts.iter().any(|t| t.starts_with(text)), "curves.svg lacks '{text}': {texts:?}");
    }
    // A model directory without a log.
    std::fs::create_dir_all(dir.join("no_log")).expect("dir");
    std::fs::copy(dir.join("model/config.json"), dir.join("no_log/config.json")).expect("copy");
    let out = chromax(dir, &["plot", "curves", "--model", "no_log", "-o", "none.png"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no train_log.tsv"));
    assert!(!dir.join("none.png").exists());
}
