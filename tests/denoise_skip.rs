//! Exact skipping of empty coverage: `denoise run` and `denoise eval --model` give the same
//! bits with skipping and with `--dense`, on real low-depth inputs (one cell and ten cells of
//! the chr22 single-cell fragments, a 1% subsample of the yeast reads), for AtacWorks' model
//! and the demo's; skipping really skips; a model whose padding is shorter than its
//! receptive field runs dense.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::coverage::{coverage_from_fragments, CellSelection, CoverageOptions};
use chromax::denoise::eval::{evaluate, EvalOptions, Prediction};
use chromax::denoise::infer::{run, RunOptions, RunSummary};
use chromax::denoise::model::{write_model, ModelConfig};
use chromax::denoise::peak_calls::ProbPeakOptions;
use chromax::io::bigwig::{read_bigwig, write_bigwig};
use chromax::io::ChromSizes;
use chromax::models::{DenoiseConfig, DenoiseNet};
use std::path::{Path, PathBuf};

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-skip-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn model(dir: &Path, cfg: DenoiseConfig, interval: u64, pad: u64) -> PathBuf {
    let m = dir.join(format!("model-{}-{pad}", cfg.reg_filters));
    std::fs::create_dir_all(&m).expect("model dir");
    let cpu = CpuBackend::new();
    let net = DenoiseNet::new(&cpu, cfg, 11).expect("net");
    write_model(&cpu, &m, &ModelConfig::new(cfg, interval, pad, Vec::new(), serde_json::Value::Null), &net)
        .expect("write");
    m
}

fn denoise(model: &Path, noisy: &Path, sizes: &Path, regions: &[&str], prefix: PathBuf, dense: bool) -> RunSummary {
    let opts = RunOptions {
        model: model.to_path_buf(),
        noisy: noisy.to_path_buf(),
        extra_tracks: Vec::new(),
        genome: Some(sizes.to_path_buf()),
        regions: regions.iter().map(|r| r.to_string()).collect(),
        prefix,
        round: None,
        peaks: ProbPeakOptions { threshold: 0.5, max_gap: 0, min_length: 1 },
        probabilities: true,
        batch: 8,
        dense,
    };
    run(&CpuBackend::new(), &opts, &mut |_, _| {}).expect("denoise run")
}

/// Both bigWigs base by base (value bits), and the narrowPeak files byte for byte.
fn assert_same_outputs(what: &str, a: &RunSummary, b: &RunSummary) {
    for (x, y) in a.outputs.iter().zip(&b.outputs) {
        if x.extension().is_some_and(|e| e == "bw") {
            let (p, q) = (read_bigwig(x, None).expect("read"), read_bigwig(y, None).expect("read"));
            assert_eq!(p.sizes(), q.sizes());
            for c in 0..p.sizes().len() {
                let n = p.sizes().length(c) as usize;
                let (mut u, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
                p.fill(c, 0, &mut u);
                q.fill(c, 0, &mut v);
                if let Some(i) = (0..n).find(|&i| u[i].to_bits() != v[i].to_bits()) {
                    panic!(
                        "{what}: {} {}:{} is {} dense, {} skipping",
                        x.display(),
                        p.sizes().name(c),
                        i + 1,
                        u[i],
                        v[i]
                    );
                }
            }
        } else {
            assert_eq!(std::fs::read(x).expect("read"), std::fs::read(y).expect("read"), "{what}: {}", x.display());
        }
    }
}

#[test]
fn skipping_equals_dense_on_single_cells_and_skips() {
    let dir = temp("sc");
    let sizes = dir.join("chr22.sizes");
    std::fs::write(&sizes, "chr22\t50818468\n").expect("sizes");
    let genome = ChromSizes::read(&sizes).expect("sizes");
    let frags = data("chr22_scatac/fragments.tsv.gz");
    let demo = model(&dir, DenoiseConfig::demo(), 10_000, 1_000);
    let atacworks = model(&dir, DenoiseConfig::default(), 50_000, 5_000);
    for cells in [1, 10] {
        let opts = CoverageOptions { cells: CellSelection::Sample(cells), seed: 5, ..Default::default() };
        let (track, _) = coverage_from_fragments(&frags, &genome, &opts, &mut |_| {}).expect("coverage");
        let noisy = dir.join(format!("cells{cells}.bw"));
        write_bigwig(&noisy, &track, 2).expect("bigWig");
        // The demo's model over 12 Mb of chr22 (a region's edges inside signal included); the
        // AtacWorks model over 1.5 Mb.
        for (m, region, name) in
            [(&demo, "chr22:17000001-29000000", "demo"), (&atacworks, "chr22:19500001-21000000", "atacworks")]
        {
            let what = format!("{cells} cell(s), {name} model");
            let d = denoise(m, &noisy, &sizes, &[region], dir.join(format!("{cells}-{name}-dense")), true);
            let s = denoise(m, &noisy, &sizes, &[region], dir.join(format!("{cells}-{name}-skip")), false);
            assert!(!d.skipping && s.skipping, "{what}: skipping {} dense, {} not", d.skipping, s.skipping);
            assert_eq!(d.bases, s.bases);
            assert_same_outputs(&what, &d, &s);
            let w = s.work;
            common::say(&format!(
                "{what}: f = {:.1}%, network on {:.1}% of the bases",
                100.0 * w.signal_bases as f64 / w.bases as f64,
                100.0 * w.network_bases as f64 / w.bases as f64
            ));
            assert!(w.signal_bases > 0 && w.signal_bases < w.bases, "{what}: {w:?}");
            assert!(w.network_bases < d.work.network_bases, "{what}: skipping ran the network on as much: {w:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn skipping_equals_dense_on_a_yeast_subsample_and_in_eval() {
    let dir = temp("yeast");
    let sizes = data("yeast/sacCer3.chrom.sizes");
    let genome = ChromSizes::read(&sizes).expect("sizes");
    let frags = data("yeast/yeast_500k_SRR1822137.frag.gz");
    let (noisy_track, _) = coverage_from_fragments(
        &frags,
        &genome,
        &CoverageOptions { subsample: Some(0.01), seed: 2, ..Default::default() },
        &mut |_| {},
    )
    .expect("coverage");
    let (clean_track, _) =
        coverage_from_fragments(&frags, &genome, &CoverageOptions::default(), &mut |_| {}).expect("clean");
    let (noisy, clean) = (dir.join("noisy.bw"), dir.join("clean.bw"));
    write_bigwig(&noisy, &noisy_track, 2).expect("bigWig");
    write_bigwig(&clean, &clean_track, 2).expect("bigWig");
    let demo = model(&dir, DenoiseConfig::demo(), 10_000, 1_000);
    // Whole chromosomes, the start and end of each included; chrM is shorter than an interval.
    let regions = ["chrI", "chrVI", "chrM"];
    let d = denoise(&demo, &noisy, &sizes, &regions, dir.join("dense"), true);
    let s = denoise(&demo, &noisy, &sizes, &regions, dir.join("skip"), false);
    assert!(s.skipping);
    assert_same_outputs("yeast 1%, demo model", &d, &s);

    // `denoise eval --model`: the same metrics either way.
    let peaks = dir.join("clean.narrowPeak");
    let (called, _) = chromax::peaks::call_peaks(&clean_track, &Default::default()).expect("peaks");
    chromax::io::bed::write_narrowpeak(&peaks, &called).expect("peaks");
    let eval = |dense: bool| {
        let opts = EvalOptions {
            prediction: Prediction::Model { dir: demo.clone(), extra_tracks: Vec::new(), batch: 8, dense },
            noisy: Some(noisy.clone()),
            clean: clean.clone(),
            peaks: peaks.clone(),
            genome: Some(sizes.clone()),
            regions: regions.iter().map(|r| r.to_string()).collect(),
        };
        evaluate(&CpuBackend::new(), &opts).expect("eval")
    };
    let (a, b) = (eval(true), eval(false));
    assert_eq!(format!("{:?}", a.denoised), format!("{:?}", b.denoised), "eval metrics differ");

    // Padding shorter than the receptive field (360 for the demo's model): dense, and said so.
    let short = model(&dir, DenoiseConfig::demo(), 10_000, 300);
    let r = denoise(&short, &noisy, &sizes, &["chrI"], dir.join("short"), false);
    assert!(!r.skipping, "a model with 300 bases of padding cannot skip exactly");
    let _ = std::fs::remove_dir_all(&dir);
}
