//! `chromax sc train | embed` through the binary: a real matrix (yeast fragments counted in
//! chrIV windows, two pseudo-cells) trained with a small architecture; exact resume; the
//! embedding files (h5ad read by Python anndata where installed, npy, csv); and bad input,
//! each with a clear message, exit code 1 and nothing half-written.

mod common;

use common::{fails_cleanly, say};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chromax-clisc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn chromax(args: &[&str], cwd: &Path) -> Output {
    common::run_chromax(args, cwd)
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromax failed: {stderr}");
    stderr
}

/// chrIV windows: the 200 hmmratac regions there and 200 windows between them; the matrix
/// counts the real yeast fragments (two pseudo-barcodes) in them.
fn inputs(dir: &Path) {
    let text = std::fs::read_to_string(data("yeast/hmmratac_yeast500k_accessible_regions.narrowPeak")).expect("peaks");
    let mut lines: Vec<(u64, String)> = Vec::new();
    let regions: Vec<(u64, u64)> = text
        .lines()
        .filter(|l| l.starts_with("chrIV\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].parse().expect("start"), f[2].parse().expect("end"))
        })
        .collect();
    for (i, &(s, e)) in regions.iter().enumerate() {
        lines.push((s, format!("chrIV\t{s}\t{e}")));
        if let Some(&(next, _)) = regions.get(i + 1) {
            if next > e + 1_000 {
                let mid = (e + next) / 2;
                lines.push((mid - 150, format!("chrIV\t{}\t{}", mid - 150, mid + 150)));
            }
        }
    }
    lines.sort();
    let bed: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    std::fs::write(dir.join("windows.bed"), bed.join("\n") + "\n").expect("bed");
    std::fs::write(dir.join("tiny.json"), common::TINY_SEQ_MODEL).expect("config");
    ok(&chromax(
        &[
            "sc",
            "matrix",
            "--fragments",
            data("yeast/yeast_500k_SRR1822137.frag.gz").to_str().expect("path"),
            "--peaks",
            "windows.bed",
            "-o",
            "m.h5ad",
        ],
        dir,
    ));
}

fn train_args<'a>(fasta: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "sc",
        "train",
        "--peaks",
        "windows.bed",
        "--genome",
        fasta,
        "--matrix",
        "m.h5ad",
        "--model-config",
        "tiny.json",
        "--batch",
        "32",
        "--device",
        "cpu",
        "--threads",
        "2",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn sc_train_resumes_exactly_and_embed_writes_anndata_npy_and_csv() {
    let dir = temp_dir("train");
    inputs(&dir);
    let fasta = data("yeast/sacCer3.chrIV.fa");
    let fasta = fasta.to_str().expect("path");

    let full = ok(&chromax(&train_args(fasta, &["--epochs", "3", "-o", "full"]), &dir));
    assert!(full.contains("parameters") && full.contains("best model"), "{full}");
    ok(&chromax(&train_args(fasta, &["--epochs", "1", "-o", "part"]), &dir));
    // A resume with other settings, or of nothing, is refused before anything is written.
    let before = std::fs::read(dir.join("part/last.safetensors")).expect("checkpoint");
    fails_cleanly(
        &dir,
        &train_args(fasta, &["--epochs", "3", "--seed", "11", "--resume", "part"]),
        &["setting 'seed'", "resume"],
    );
    fails_cleanly(&dir, &train_args(fasta, &["--epochs", "3", "--resume", "windows.bed"]), &["no training run"]);
    assert!(std::fs::read(dir.join("part/last.safetensors")).expect("checkpoint") == before);
    let resumed = ok(&chromax(&train_args(fasta, &["--epochs", "3", "--resume", "part"]), &dir));
    assert!(resumed.contains("resuming after epoch 1"), "{resumed}");
    for f in ["model.safetensors", "last.safetensors", "state.json", "cells.tsv", "peaks.bed"] {
        let a = std::fs::read(dir.join("full").join(f)).expect("full run file");
        let b = std::fs::read(dir.join("part").join(f)).expect("resumed run file");
        assert!(a == b, "{f}: a resumed run must equal an uninterrupted one");
    }
    let log = std::fs::read_to_string(dir.join("full/train_log.tsv")).expect("log");
    assert_eq!(log.lines().count(), 4, "{log}");
    assert!(
        log.starts_with("epoch\ttrain_loss\ttrain_auroc\tval_loss\tval_auroc\tval_auroc_per_peak\tval_auroc_per_cell")
    );
    // Its curves, as PNG: a loss panel and a metrics panel (a single-cell log has no MSE/BCE).
    ok(&chromax(&["plot", "curves", "--model", "full", "-o", "curves.png"], &dir));
    let png = std::fs::read(dir.join("curves.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().expect("4")),
        u32::from_be_bytes(png[20..24].try_into().expect("4")),
    );
    assert_eq!((w, h), (1000, 40 + 2 * 280));
    // Its report: the configuration and the curves (no denoising run to evaluate).
    ok(&chromax(&["report", "full", "-o", "full.html"], &dir));
    let html = std::fs::read_to_string(dir.join("full.html")).expect("html");
    assert!(html.contains("<section id=\"configuration\">") && html.contains("<section id=\"training\">"));
    assert!(!html.contains("<section id=\"evaluation\">") && html.matches("<svg").count() == 1);
    let cells = std::fs::read_to_string(dir.join("full/cells.tsv")).expect("cells");
    let barcodes: Vec<&str> = cells.lines().collect();
    assert_eq!(barcodes.len(), 2);

    // Embeddings in all three formats.
    ok(&chromax(&["sc", "embed", "--model", "full", "-o", "cells.h5ad"], &dir));
    ok(&chromax(&["sc", "embed", "--model", "full", "-o", "cells.npy"], &dir));
    ok(&chromax(&["sc", "embed", "--model", "full", "-o", "cells.csv"], &dir));
    let e = chromax::sc::embed::read_cell_embeddings(&dir.join("full")).expect("read");
    let (names, emb, intercept, dim) = (e.barcodes, e.embeddings, e.intercepts, e.dim);
    assert_eq!((names.len(), dim), (2, 4));
    let csv = std::fs::read_to_string(dir.join("cells.csv")).expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "barcode,intercept,chromax_0,chromax_1,chromax_2,chromax_3");
    let first: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(first[0], barcodes[0]);
    assert_eq!(first[1].parse::<f32>().expect("intercept"), intercept[0]);
    assert_eq!(first[2].parse::<f32>().expect("value"), emb[0]);
    let npy = std::fs::read(dir.join("cells.npy")).expect("npy");
    let values: Vec<f32> = npy[npy.len() - 4 * emb.len()..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(values, emb);
    let ad = chromax::io::h5ad::read_h5ad_obsm(&dir.join("cells.h5ad"), "X_chromax").expect("h5ad");
    assert_eq!(ad, (names.clone(), emb.clone(), dim));

    let script = format!(
        "import anndata, numpy as np\na = anndata.read_h5ad('cells.h5ad')\nm = np.load('cells.npy')\n\
         assert a.obsm['X_chromax'].shape == (2, 4) and np.array_equal(a.obsm['X_chromax'], m)\n\
         print(a.n_obs, list(a.obs_names) == {barcodes:?}, float(a.obs['intercept'].iloc[0]))"
    );
    match Command::new("python3").args(["-c", &script]).current_dir(&dir).output() {
        Ok(o) if o.status.success() => {
            let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert_eq!(got, format!("2 True {}", intercept[0] as f64));
            say("sc embed: anndata reads cells.h5ad (obsm X_chromax, obs intercept)");
        }
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            say("sc embed: anndata part skipped: python3 has no anndata")
        }
        Ok(o) => panic!("anndata could not read the embeddings: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => say("sc embed: anndata part skipped: no python3"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sc_train_bad_input_gets_a_clear_message_and_writes_nothing() {
    let dir = temp_dir("bad");
    inputs(&dir);
    let fasta = data("yeast/sacCer3.chrIV.fa");
    let fasta = fasta.to_str().expect("path");

    // Peaks on chromosomes the FASTA lacks: names from both sides.
    std::fs::write(dir.join("human.bed"), "chr22\t100\t600\nchr21\t100\t600\n").expect("bed");
    let mut a = train_args(fasta, &["-o", "out"]);
    a[3] = "human.bed";
    fails_cleanly(&dir, &a, &["human.bed", "chr22", "chrIV"]);

    // A peak shorter than 1 bp.
    std::fs::write(dir.join("empty_peak.bed"), "chrIV\t500\t500\n").expect("bed");
    let mut a = train_args(fasta, &["-o", "out"]);
    a[3] = "empty_peak.bed";
    fails_cleanly(&dir, &a, &["empty_peak.bed", "line 1", "not before end"]);

    // A peak file with more peaks than the matrix (a subset of the matrix's peaks trains).
    let windows = std::fs::read_to_string(dir.join("windows.bed")).expect("bed");
    let more: Vec<&str> = windows.lines().chain(windows.lines().take(1)).collect();
    std::fs::write(dir.join("more.bed"), more.join("\n") + "\n").expect("bed");
    let mut a = train_args(fasta, &["-o", "out"]);
    a[3] = "more.bed";
    fails_cleanly(&dir, &a, &["m.h5ad", "more.bed", "peaks"]);

    // An h5ad whose var has no coordinates (names that are not chr:start-end either).
    let m = chromax::sc::matrix::read_cell_matrix(&dir.join("m.h5ad")).expect("read");
    let mut ad = m.to_anndata();
    ad.var.clear();
    ad.var_names = (0..ad.var_names.len()).map(|i| format!("peak{i}")).collect();
    chromax::io::h5ad::write_h5ad(&dir.join("nocoords.h5ad"), &ad).expect("write");
    let mut a = train_args(fasta, &["-o", "out"]);
    a[7] = "nocoords.h5ad";
    fails_cleanly(&dir, &a, &["nocoords.h5ad", "chr"]);

    // An empty cell kept on purpose: the trainer refuses it and says how to drop it.
    let mut m2 = m.clone();
    m2.cells.push("EMPTY_CELL".into());
    chromax::io::h5ad::write_h5ad(&dir.join("emptycell.h5ad"), &m2.to_anndata()).expect("write");
    let mut a = train_args(fasta, &["-o", "out", "--min-peaks-per-cell", "0"]);
    a[7] = "emptycell.h5ad";
    fails_cleanly(&dir, &a, &["EMPTY_CELL", "--min-peaks-per-cell"]);

    // The model directory must be a single-cell model.
    fails_cleanly(&dir, &["sc", "embed", "--model", "windows.bed", "-o", "x.h5ad"], &["windows.bed", "sc train"]);
    // An output outside the model directory (inside it is refused before the format).
    let elsewhere = std::env::temp_dir().join(format!("chromax-embed-{}.txt", std::process::id()));
    let elsewhere = elsewhere.to_str().expect("utf-8 path");
    fails_cleanly(&dir, &["sc", "embed", "--model", ".", "-o", elsewhere], &["chromax-embed-", ".h5ad"]);
    assert!(!Path::new(elsewhere).exists());
    fails_cleanly(&dir, &["sc", "embed", "--model", ".", "-o", "x.h5ad"], &["inside the model directory --model"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_sc_trains_from_a_synthetic_store_through_the_real_path() {
    // A smoke run of the benchmark (the full scBasset model, tiny data): it writes the store,
    // trains one epoch from the memory-mapped matrix and prints its table. No timing is judged.
    let dir = temp_dir("bench");
    let out = chromax(
        &[
            "bench",
            "sc",
            "--cells",
            "50",
            "--peaks",
            "40",
            "--density",
            "0.1",
            "--batch",
            "16",
            "--device",
            "cpu",
            "--dir",
            "w",
        ],
        &dir,
    );
    let stderr = ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("40 peaks × 50 cells"), "{stderr}");
    assert!(stdout.contains("4,515,610 parameters") && stdout.contains("peaks (sequences)/s"), "{stdout}");
    assert!(stdout.contains("peak host RSS"), "{stdout}");
    let m = chromax::store::matrix::CellMatrix::open(&dir.join("w/matrix.cxmatrix")).expect("store");
    assert_eq!(m.shape(), (40, 50));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--precision bf16` on the CPU: with AVX512-BF16 it trains and says so, elsewhere it is
/// refused naming the instruction set; an unknown precision is refused naming the two.
#[test]
fn bf16_products_are_a_cpu_option() {
    let dir = temp_dir("bf16");
    inputs(&dir);
    let fasta = data("yeast/sacCer3.chrIV.fa");
    let fasta = fasta.to_str().expect("path");
    // A usage error (clap's exit code 2), naming the value and what is accepted.
    let out = chromax(&train_args(fasta, &["--epochs", "1", "--precision", "f16", "-o", "m"]), &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'f16'") && stderr.contains("f32 or bf16") && !dir.join("m").exists(), "{stderr}");
    let out = chromax(&train_args(fasta, &["--epochs", "1", "--precision", "bf16", "-o", "m"]), &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.split_whitespace().any(|f| f == "avx512_bf16")) {
        assert!(out.status.success() && stderr.contains("bf16 products"), "{stderr}");
        assert!(dir.join("m/model.safetensors").is_file());
        // The precision is a setting of the run: resuming it in f32 is refused.
        fails_cleanly(
            &dir,
            &train_args(fasta, &["--epochs", "2", "--resume", "m"]),
            &["setting 'bf16_products' was true in this run and is absent now"],
        );
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("AVX512-BF16") && !dir.join("m").exists(), "{stderr}");
        say("bf16_products_are_a_cpu_option: this CPU lacks AVX512-BF16: the refusal was tested");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
