//! `chromax sc tf-activity | ism | variants` through the binary, on the planted-motif
//! simulation written as a user would have it (a FASTA, a peak BED, an .h5ad matrix with a
//! `cell_type` obs column) and a model trained by `chromax sc train`: the output files' shapes,
//! names and values (read back by Python anndata / h5py where installed), and bad input, each
//! with a clear message, exit code 1 and nothing written.

mod common;
#[path = "common/planted.rs"]
mod planted;

use chromax::io::h5ad::{write_h5ad, AnnData, Column, CsrF32};
use chromax::sc::data::Rows;
use common::{fails_cleanly, run_chromax, say};
use planted::{jaspar_path, simulate, Control};
use std::path::{Path, PathBuf};
use std::process::Command;

const SMALL: &str = r#"{"seq_len": 160, "stem_filters": 16, "stem_kernel": 13, "stem_pool": 2,
 "tower_filters": [16, 16], "tower_kernel": 5, "tower_pool": 2, "final_filters": 8,
 "bottleneck": 8, "dropout": 0.1, "bn_momentum": 0.9, "bn_eps": 0.001}"#;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chromax-clian-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = run_chromax(args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromax {args:?} failed: {stderr}");
    stderr
}

/// The simulation as files: genome.fa (one chromosome `sim`, each peak's 160 bp at its centre),
/// peaks.bed, m.h5ad (cells × peaks, obs `cell_type`), groups.tsv; and a model trained on them.
fn setup(dir: &Path) -> (Vec<String>, Vec<usize>) {
    let sim = simulate(41, Control::None);
    let len = sim.data.seq_len;
    let mut genome: Vec<u8> = (0..900_000u64).map(|i| b"ACGT"[(chromax::rng::mix(i) % 4) as usize]).collect();
    for (i, p) in sim.data.peaks.iter().enumerate() {
        let at = ((p.start + p.end) / 2) as usize - len / 2;
        for (j, &c) in sim.data.codes[i * len..(i + 1) * len].iter().enumerate() {
            genome[at + j] = b"ACGTN"[c as usize];
        }
    }
    let mut fa = b">sim\n".to_vec();
    for line in genome.chunks(80) {
        fa.extend_from_slice(line);
        fa.push(b'\n');
    }
    std::fs::write(dir.join("genome.fa"), fa).expect("fasta");
    let bed: Vec<String> = sim.data.peaks.iter().map(|p| format!("{}\t{}\t{}", p.chrom, p.start, p.end)).collect();
    std::fs::write(dir.join("peaks.bed"), bed.join("\n") + "\n").expect("bed");
    // cells × peaks CSR from the peaks × cells rows.
    let Rows::Owned { indptr, indices } = &sim.data.rows else { panic!("owned rows") };
    let cells = sim.data.barcodes.clone();
    let mut by_cell: Vec<Vec<i64>> = vec![Vec::new(); cells.len()];
    for p in 0..sim.data.peaks.len() {
        for &c in &indices[indptr[p] as usize..indptr[p + 1] as usize] {
            by_cell[c as usize].push(p as i64);
        }
    }
    let mut x = CsrF32 {
        rows: cells.len(),
        cols: sim.data.peaks.len(),
        indptr: vec![0],
        indices: Vec::new(),
        data: Vec::new(),
    };
    for row in &by_cell {
        x.indices.extend(row);
        x.data.extend(std::iter::repeat_n(1.0f32, row.len()));
        x.indptr.push(x.indices.len() as i64);
    }
    let types: Vec<String> = sim.cell_type.iter().map(|t| format!("type{t}")).collect();
    write_h5ad(
        &dir.join("m.h5ad"),
        &AnnData {
            x: Some(x),
            obs_names: cells.clone(),
            obs: vec![
                ("cell_type".into(), Column::Str(types.clone())),
                ("batch".into(), Column::Str((0..cells.len()).map(|c| format!("run{}", 1 + c % 2)).collect())),
            ],
            var_names: sim.data.peaks.iter().map(|p| format!("sim:{}-{}", p.start, p.end)).collect(),
            ..AnnData::default()
        },
    )
    .expect("h5ad");
    let groups: Vec<String> = cells.iter().zip(&types).map(|(c, t)| format!("{c}\t{t}")).collect();
    std::fs::write(dir.join("groups.tsv"), "barcode\tgroup\n".to_string() + &groups.join("\n") + "\n").expect("groups");
    std::fs::write(dir.join("small.json"), SMALL).expect("config");
    let args = train_args(&["--epochs", "3", "-o", "model"]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir);
    (cells, sim.cell_type)
}

/// `sc train` on the files of [`setup`], the small architecture, then `extra`.
fn train_args(extra: &[&str]) -> Vec<String> {
    let base = [
        "sc",
        "train",
        "--peaks",
        "peaks.bed",
        "--genome",
        "genome.fa",
        "--matrix",
        "m.h5ad",
        "--model-config",
        "small.json",
        "--batch",
        "64",
        "--device",
        "cpu",
    ];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn python(dir: &Path, what: &str, script: &str) -> Option<String> {
    match Command::new("python3").args(["-c", script]).current_dir(dir).output() {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            say(&format!("{what}: Python part skipped: python3 has no anndata/h5py"));
            None
        }
        Ok(o) => panic!("{what}: Python could not read the output: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => {
            say(&format!("{what}: Python part skipped: no python3"));
            None
        }
    }
}

#[test]
fn analyses_write_files_python_reads_and_refuse_bad_input() {
    let dir = temp_dir("all");
    let (cells, _) = setup(&dir);

    // The embedding, coloured by the obs column and by the groups file: every type in the
    // key with its count, the axes with their share of variance; the report holds it too.
    ok(&["plot", "embedding", "--model", "model", "--groups", "obs:cell_type", "-o", "emb.svg"], &dir);
    ok(&["plot", "embedding", "--model", "model", "--groups", "groups.tsv", "-o", "emb.png"], &dir);
    let svg = std::fs::read_to_string(dir.join("emb.svg")).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<String> =
        doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).map(|t| t.trim().to_string()).collect();
    let mut types: Vec<&str> = texts.iter().filter(|t| t.starts_with("type")).map(String::as_str).collect();
    types.sort_unstable();
    assert_eq!(types.len(), 3, "{texts:?}");
    let counted: usize =
        types.iter().map(|t| t[t.find('(').expect("(") + 1..t.len() - 1].parse::<usize>().expect("n")).sum();
    assert_eq!(counted, cells.len());
    assert!(texts.iter().any(|t| t.starts_with("PC1 (") && t.ends_with("% of variance)")), "{texts:?}");
    assert_eq!(&std::fs::read(dir.join("emb.png")).expect("png")[..4], b"\x89PNG");
    ok(&["report", "model", "-o", "model.html"], &dir);
    let html = std::fs::read_to_string(dir.join("model.html")).expect("html");
    assert!(html.contains("<section id=\"embedding\">") && html.matches("<svg").count() == 2);
    let jaspar = jaspar_path();
    let jaspar = jaspar.to_str().expect("path");

    // TF activity from a MEME file of three motifs (the bundled JASPAR ones, as probabilities).
    let motifs = chromax::sc::motifs::read_motifs(Path::new(jaspar)).expect("jaspar");
    let mut meme = String::from("MEME version 5\n\nALPHABET= ACGT\n\n");
    for m in motifs.iter().filter(|m| planted::PLANTED.contains(&m.id.as_str())) {
        meme += &format!("MOTIF {} {}\nletter-probability matrix: alength= 4 w= {}\n", m.id, m.name, m.width());
        for r in &m.probs {
            meme += &format!("{:.6} {:.6} {:.6} {:.6}\n", r[0], r[1], r[2], r[3]);
        }
        meme += "\n";
    }
    std::fs::write(dir.join("three.meme"), meme).expect("meme");
    let tf = [
        "sc",
        "tf-activity",
        "--model",
        "model",
        "--motifs",
        "three.meme",
        "--genome",
        "genome.fa",
        "-o",
        "tf.h5ad",
        "--instances",
        "50",
        "--background",
        "40",
        "--device",
        "cpu",
    ];
    let stderr = ok(&tf, &dir);
    assert!(stderr.contains("3 motifs × 50 instances = 150 sequences") && stderr.contains("sequences/s"), "{stderr}");
    // The heatmap of it: the three types × the three motifs, mean z-scores.
    ok(
        &["plot", "tf-activity", "--model", "model", "--scores", "tf.tsv", "--groups", "obs:cell_type", "-o", "tf.svg"],
        &dir,
    );
    let svg = std::fs::read_to_string(dir.join("tf.svg")).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<String> =
        doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).map(|t| t.trim().to_string()).collect();
    for t in ["type0", "type1", "type2", "MA0139.1", "MA0080.6", "MA0466.3", "mean z-score"] {
        assert!(texts.iter().any(|x| x == t), "tf.svg lacks '{t}': {texts:?}");
    }
    assert!(texts.iter().any(|x| x.starts_with("TF activity: 3 most variable of 3 motifs")));
    ok(
        &[
            "plot",
            "tf-activity",
            "--model",
            "model",
            "--scores",
            "tf.tsv",
            "--groups",
            "groups.tsv",
            "--top",
            "2",
            "-o",
            "tf.png",
        ],
        &dir,
    );
    assert_eq!(&std::fs::read(dir.join("tf.png")).expect("png")[..4], b"\x89PNG");
    let tsv = std::fs::read_to_string(dir.join("tf.tsv")).expect("tsv");
    let lines: Vec<&str> = tsv.lines().collect();
    assert_eq!(lines.len(), 73);
    assert_eq!(lines[0], "barcode\tMA0139.1\tMA0080.6\tMA0466.3");
    // z-scores: each motif's column has mean 0 and population SD 1 across the 72 cells.
    for k in 1..4 {
        let col: Vec<f64> =
            lines[1..].iter().map(|l| l.split('\t').nth(k).expect("col").parse().expect("num")).collect();
        let mean = col.iter().sum::<f64>() / 72.0;
        let sd = (col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 72.0).sqrt();
        assert!(mean.abs() < 1e-3 && (sd - 1.0).abs() < 1e-3, "motif {k}: mean {mean}, sd {sd}");
    }
    let first_row: Vec<f64> = lines[1].split('\t').skip(1).map(|v| v.parse().expect("num")).collect();
    if let Some(got) = python(
        &dir,
        "sc tf-activity",
        "import anndata\na = anndata.read_h5ad('tf.h5ad')\n\
         print(a.shape, list(a.var_names), list(a.var['name']), a.obs_names[0], [round(float(v), 4) for v in a.X[0]], a.obsm['raw_difference'].shape)",
    ) {
        let want_row: Vec<String> = first_row.iter().map(|v| format!("{}", (v * 1e4).round() / 1e4)).collect();
        assert!(got.starts_with("(72, 3) ['MA0139.1', 'MA0080.6', 'MA0466.3'] ['CTCF', 'Spi1', 'CEBPB']"), "{got}");
        assert!(got.contains(&cells[0]) && got.ends_with("(72, 3)"), "{got}");
        let printed: Vec<f64> = got.split('[').nth(3).expect("row").split(']').next().expect("row").split(", ").map(|v| v.parse().expect("num")).collect();
        for (p, w) in printed.iter().zip(&first_row) {
            assert!((p - w).abs() < 2e-4, "X[0] {printed:?} against the TSV {want_row:?}");
        }
        say("sc tf-activity: anndata reads tf.h5ad (72 × 3, var names and motif names, X equal to the TSV)");
    }

    // ISM of two regions per obs:cell_type group.
    std::fs::write(dir.join("regions.bed"), "sim\t0\t500\nsim\t5000\t5500\n").expect("bed");
    let ism = [
        "sc",
        "ism",
        "--model",
        "model",
        "--genome",
        "genome.fa",
        "--regions",
        "regions.bed",
        "--groups",
        "obs:cell_type",
        "-o",
        "ism.h5",
        "--device",
        "cpu",
    ];
    ok(&ism, &dir);
    if let Some(got) = python(
        &dir,
        "sc ism",
        "import h5py, numpy as np\nf = h5py.File('ism.h5', 'r')\nd = f['delta'][:]\nr = f['reference'][:]\n\
         ref_zero = all(d[i, p, r[i, p], :].tolist() == [0.0] * 3 for i in range(2) for p in range(160))\n\
         print(d.shape, r.shape, [g.decode() for g in f['groups'][:]], [x.decode() for x in f['regions'][:]], ref_zero, bool(np.abs(d).max() > 0), 'delta[region' in f.attrs['layout'])",
    ) {
        assert_eq!(got, "(2, 160, 4, 3) (2, 160) ['type0', 'type1', 'type2'] ['sim:170-330', 'sim:5170-5330'] True True True");
        say("sc ism: h5py reads ism.h5 (2 × 160 × 4 × 3, 0 at the reference bases, groups, regions, layout)");
    }

    // Variants: one SNV at a peak's centre, per group from the TSV; both output formats.
    let genome = std::fs::read_to_string(dir.join("genome.fa")).expect("fa");
    let seq: String = genome.lines().skip(1).collect();
    let base_at = |pos: usize| seq.as_bytes()[pos - 1] as char;
    let alt_of = |b: char| if b == 'A' { 'C' } else { 'A' };
    let (p1, p2) = (250usize, 10_250usize);
    let vcf = format!(
        "##fileformat=VCFv4.3\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nsim\t{p1}\trs1\t{}\t{}\t.\t.\t.\nsim\t{p2}\t.\t{}\t{}\t.\t.\t.\n",
        base_at(p1),
        alt_of(base_at(p1)),
        base_at(p2),
        alt_of(base_at(p2))
    );
    std::fs::write(dir.join("v.vcf"), &vcf).expect("vcf");
    let var = [
        "sc",
        "variants",
        "--model",
        "model",
        "--genome",
        "genome.fa",
        "--vcf",
        "v.vcf",
        "--groups",
        "groups.tsv",
        "-o",
        "v.tsv",
        "--device",
        "cpu",
    ];
    ok(&var, &dir);
    let v = std::fs::read_to_string(dir.join("v.tsv")).expect("tsv");
    let rows: Vec<&str> = v.lines().collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], "chrom\tpos\tid\tref\talt\tlogit_diff:type0\tlogit_diff:type1\tlogit_diff:type2\tprob_diff:type0\tprob_diff:type1\tprob_diff:type2");
    assert!(rows[1].starts_with(&format!("sim\t{p1}\trs1\t{}\t{}\t", base_at(p1), alt_of(base_at(p1)))), "{}", rows[1]);
    let mut h5 = var;
    h5[11] = "v.h5ad";
    ok(&h5, &dir);
    if let Some(got) = python(
        &dir,
        "sc variants",
        "import anndata\na = anndata.read_h5ad('v.h5ad')\nprint(a.shape, list(a.obs_names)[0], list(a.var_names), a.obsm['prob_diff'].shape, [round(float(v), 5) for v in a.X[0]])",
    ) {
        let logits: Vec<f64> = rows[1].split('\t').skip(5).take(3).map(|x| x.parse().expect("num")).collect();
        let want: Vec<String> = logits.iter().map(|v| format!("{}", (v * 1e5).round() / 1e5)).collect();
        assert!(got.starts_with("(2, 3) rs1 ['type0', 'type1', 'type2'] (2, 3)"), "{got}");
        let printed: Vec<f64> = got.rsplit('[').next().expect("row").trim_end_matches(']').split(", ").map(|x| x.parse().expect("num")).collect();
        for (p, w) in printed.iter().zip(&logits) {
            assert!((p - w).abs() < 2e-5, "X[0] {printed:?} against the TSV {want:?}");
        }
        say("sc variants: anndata reads v.h5ad (variants × groups, X = the TSV's logit differences)");
    }

    // Denoised accessibility, streamed a peak per chunk, and as a per-type pseudobulk.
    let imp = [
        "sc",
        "impute",
        "--model",
        "model",
        "--genome",
        "genome.fa",
        "-o",
        "imp.h5ad",
        "--memory",
        "1000",
        "--device",
        "cpu",
    ];
    // The model's peaks: those the training kept (accessible in at least one cell).
    let model_peaks = std::fs::read_to_string(dir.join("model/peaks.bed")).expect("peaks.bed");
    let n_peaks = model_peaks.lines().count();
    let second: Vec<&str> = model_peaks.lines().nth(1).expect("two peaks").split('\t').collect();
    let stderr = ok(&imp, &dir);
    assert!(
        stderr.contains(&format!("72 cells × {n_peaks} peaks")) && stderr.contains("1 peaks per chunk"),
        "{stderr}"
    );
    let mut grouped = imp;
    grouped[7] = "imp_groups.h5ad";
    grouped[9] = "100000000";
    let mut grouped: Vec<&str> = grouped.to_vec();
    grouped.extend(["--groups", "obs:cell_type"]);
    let stderr = ok(&grouped, &dir);
    assert!(stderr.contains(&format!("3 groups × {n_peaks} peaks")), "{stderr}");
    if let Some(got) = python(
        &dir,
        "sc impute",
        "import anndata, numpy as np\na = anndata.read_h5ad('imp.h5ad')\ng = anndata.read_h5ad('imp_groups.h5ad')\n\
         x = a.X.toarray()\nt = np.array([int(n.split('_')[0][4:]) for n in a.obs_names])\n\
         m = np.stack([x[t == k].mean(axis=0) for k in range(3)])\n\
         print(a.shape, g.shape, list(g.obs_names), a.var_names[1], bool(((x > 0) & (x < 1)).all()), float(np.abs(m - g.X).max()) < 1e-5)",
    ) {
        let want = format!("(72, {n_peaks}) (3, {n_peaks}) ['type0', 'type1', 'type2'] sim:{}-{} True True", second[1], second[2]);
        assert_eq!(got, want);
        say(&format!("sc impute: anndata reads imp.h5ad (72 × {n_peaks}, every value in (0, 1)) and its per-type means equal imp_groups.h5ad"));
    }
    let mut small = imp;
    small[7] = "big.h5ad";
    let mut small: Vec<&str> = small.to_vec();
    small.extend(["--max-bytes", "100000"]);
    fails_cleanly(&dir, &small, &["big.h5ad", "over --max-bytes", "--groups", "--cells"]);

    // Bad input.
    std::fs::write(dir.join("peaks_as_motifs.txt"), "sim\t0\t500\n").expect("txt");
    let mut a = tf;
    a[5] = "peaks_as_motifs.txt";
    a[9] = "tf2.h5ad";
    fails_cleanly(&dir, &a, &["peaks_as_motifs.txt", "line 1", "JASPAR", "MEME"]);

    // A REF that is neither the genome's base nor the ALT.
    let other = ['G', 'T', 'C'].into_iter().find(|&b| b != base_at(p1) && b != alt_of(base_at(p1))).expect("a base");
    let wrong_ref = vcf.replacen(&format!("\trs1\t{}\t", base_at(p1)), &format!("\trs1\t{other}\t"), 1);
    std::fs::write(dir.join("wrong.vcf"), wrong_ref).expect("vcf");
    let mut a = var;
    a[7] = "wrong.vcf";
    a[11] = "w.tsv";
    fails_cleanly(&dir, &a, &["wrong.vcf", "line 3", "disagrees with the genome"]);

    let mut a = ism;
    a[9] = "obs:tissue";
    a[11] = "ism2.h5";
    fails_cleanly(&dir, &a, &["m.h5ad", "no column 'tissue'", "cell_type"]);

    std::fs::write(dir.join("strangers.tsv"), format!("{}\ttype0\nAAAC-stranger\ttype1\n", cells[0])).expect("tsv");
    let mut a = var;
    a[9] = "strangers.tsv";
    a[11] = "s.tsv";
    fails_cleanly(&dir, &a, &["strangers.tsv", "line 2", "AAAC-stranger", "not a cell of the model"]);

    std::fs::write(dir.join("empty.bed"), "sim\t100\t100\n").expect("bed");
    let mut a = ism;
    a[7] = "empty.bed";
    a[11] = "ism3.h5";
    fails_cleanly(&dir, &a, &["empty.bed", "line 1", "not before end"]);

    let mut a = var;
    a[11] = "v.vcf";
    fails_cleanly(&dir, &a, &["v.vcf"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sc train --batch-key` (an obs column) and `--l2`: the batches saved with the model, `sc
/// embed` writing the corrected cell embeddings and, apart, the batch embeddings; the analyses
/// run on the corrected model; a key absent from obs is refused, naming the columns.
#[test]
fn batch_corrected_training_through_the_binary() {
    let dir = temp_dir("bc");
    let (cells, _) = setup(&dir);
    let train = |extra: &[&str]| train_args(&[&["--epochs", "2"], extra].concat());
    let args = train(&["--batch-key", "batch", "--l2", "1e-4", "-o", "bc"]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), &dir);
    let saved = std::fs::read_to_string(dir.join("bc/batches.tsv")).expect("batches.tsv");
    assert_eq!(saved.lines().next(), Some(format!("{}\trun1", cells[0]).as_str()));
    let config = std::fs::read_to_string(dir.join("bc/config.json")).expect("config");
    assert!(config.contains("\"batches\": 2") && config.contains("\"l2\": 0.0001"), "{config}");
    ok(&["sc", "embed", "--model", "bc", "-o", "cells.csv", "--batch-embeddings", "batches.csv"], &dir);
    let b = std::fs::read_to_string(dir.join("batches.csv")).expect("csv");
    let rows: Vec<&str> = b.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[1].starts_with("run1,0,") && rows[2].starts_with("run2,0,"), "{b}");
    assert_eq!(std::fs::read_to_string(dir.join("cells.csv")).expect("csv").lines().count(), 73);
    let var = [
        "sc",
        "variants",
        "--model",
        "bc",
        "--genome",
        "genome.fa",
        "--vcf",
        "none.vcf",
        "-o",
        "v.tsv",
        "--device",
        "cpu",
    ];
    std::fs::write(dir.join("none.vcf"), "##fileformat=VCFv4.3\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        .expect("vcf");
    fails_cleanly(&dir, &var, &["none.vcf", "no variants"]);

    let args = train(&["--batch-key", "donor", "-o", "bc2"]);
    fails_cleanly(
        &dir,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["m.h5ad", "no column 'donor'", "batch", "cell_type"],
    );
    let no_bc = train(&["-o", "plain"]);
    ok(&no_bc.iter().map(String::as_str).collect::<Vec<_>>(), &dir);
    fails_cleanly(
        &dir,
        &["sc", "embed", "--model", "plain", "-o", "p.csv", "--batch-embeddings", "pb.csv"],
        &["without batch correction"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
