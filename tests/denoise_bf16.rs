//! DenoiseNet with bf16 convolutions against f32, at model level, on the demo's held-out
//! chromosomes: the demo's model trained (on the CPU, f32) as `chromax demo` trains it, then
//! run over chrXV and chrXVI with the CPU in f32 and with the numerics of the CUDA tensor-core
//! convolutions (`CpuBackend::with_bf16_convolutions`: every 2–16-channel convolution's
//! operands rounded to bf16, f32 sums, and the residual blocks' activations stored packed:
//! rounded to bf16 between convolutions; tests/conv_mma.rs holds the GPU kernels to those ops).
//! Bounds (issue 16): denoised track Pearson r ≥ 0.9999, peak calls (probability ≥ 0.5) the
//! same on ≥ 99.9% of bases.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::coverage::{coverage_from_fragments, CoverageOptions};
use chromax::denoise::infer::{denoise_spans, open_inputs, resolve_spans};
use chromax::denoise::model::load_model;
use chromax::denoise::train::{train, BestMetric, TrackPair, TrainOptions};
use chromax::io::bed::write_narrowpeak;
use chromax::io::bigwig::write_bigwig;
use chromax::io::ChromSizes;
use chromax::models::DenoiseConfig;
use chromax::peaks::{call_peaks, PeakCallOptions};
use std::path::Path;

const HOLDOUT: [&str; 2] = ["chrXV", "chrXVI"];

/// The denoised track and the peak probabilities over the held-out chromosomes.
fn denoise(backend: &CpuBackend, model: &Path, noisy: &Path, sizes: &ChromSizes) -> (Vec<f32>, Vec<f32>) {
    let (net, config) = load_model(backend, model).expect("model");
    let set = open_inputs(&config, noisy, &[], sizes).expect("inputs");
    let regions: Vec<String> = HOLDOUT.iter().map(|s| s.to_string()).collect();
    let spans = resolve_spans(&regions, sizes).expect("spans");
    let (mut track, mut prob) = (Vec::new(), Vec::new());
    denoise_spans(backend, &net, &config, set, &spans, 16, &mut |_, _, reg, p| {
        track.extend_from_slice(reg);
        prob.extend_from_slice(p);
        Ok(())
    })
    .expect("denoise");
    (track, prob)
}

#[test]
fn bf16_convolutions_keep_the_demo_models_track_and_peaks() {
    let dir = std::env::temp_dir().join(format!("chromax-bf16-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = common::test_data().join("yeast");
    let sizes_path = data.join("sacCer3.chrom.sizes");
    let sizes = ChromSizes::read(&sizes_path).expect("sizes");
    let frags = data.join("yeast_500k_SRR1822137.frag.gz");
    // The demo's inputs: clean = all fragments, noisy = a seeded 10%, clean peaks.
    let (clean, _) = coverage_from_fragments(&frags, &sizes, &CoverageOptions::default(), &mut |_| {}).expect("clean");
    let noisy_opts = CoverageOptions { subsample: Some(0.1), seed: 1, ..Default::default() };
    let (noisy, _) = coverage_from_fragments(&frags, &sizes, &noisy_opts, &mut |_| {}).expect("noisy");
    write_bigwig(dir.join("clean.bw"), &clean, 2).expect("clean.bw");
    write_bigwig(dir.join("noisy.bw"), &noisy, 2).expect("noisy.bw");
    let (peaks, _) = call_peaks(&clean, &PeakCallOptions::default()).expect("peaks");
    write_narrowpeak(dir.join("clean.narrowPeak"), &peaks).expect("peaks");

    // The demo's training, fewer epochs (the bound is about the numerics of a trained model).
    let opts = TrainOptions {
        pairs: vec![TrackPair {
            noisy: dir.join("noisy.bw"),
            clean: dir.join("clean.bw"),
            peaks: dir.join("clean.narrowPeak"),
        }],
        genome: sizes_path.clone(),
        val_chroms: vec!["chrXIV".to_string()],
        holdout_chroms: HOLDOUT.iter().chain(&["chrXII"]).map(|s| s.to_string()).collect(),
        interval: 10_000,
        pad: 1_000,
        batch: 16,
        epochs: 2,
        lr: 5e-4,
        seed: 1,
        best_metric: BestMetric::Auprc,
        model: DenoiseConfig::demo(),
        ..TrainOptions::default()
    };
    let model = dir.join("model");
    train(&CpuBackend::new(), &opts, &model, false, &mut |_| {}).expect("train");

    // The reference keeps the blocks' activations packed (bf16 channels-last) as CUDA does.
    let demo = DenoiseConfig::demo();
    let block = chromax::backend::Conv1dParams {
        batch: 16,
        c_in: demo.reg_filters,
        c_out: demo.reg_filters,
        len: 12_000,
        kernel: demo.reg_kernel,
        dilation: demo.reg_dilation,
    };
    assert!(chromax::backend::Backend::packs(&CpuBackend::new().with_bf16_convolutions(true), &block));
    let (track32, prob32) = denoise(&CpuBackend::new(), &model, &dir.join("noisy.bw"), &sizes);
    let (track16, prob16) =
        denoise(&CpuBackend::new().with_bf16_convolutions(true), &model, &dir.join("noisy.bw"), &sizes);
    assert_eq!(track32.len(), track16.len());
    let bases = track32.len();
    assert!(bases > 1_500_000, "chrXV + chrXVI: {bases} bases");
    assert!(track32 != track16, "the bf16 run computed the same bits: were the convolutions rounded?");
    let r = common::pearson(&track32, &track16);
    let same = prob32.iter().zip(&prob16).filter(|(a, b)| (**a >= 0.5) == (**b >= 0.5)).count();
    let called = prob32.iter().filter(|&&p| p >= 0.5).count();
    let max_prob = prob32.iter().zip(&prob16).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    common::say(&format!(
        "demo model, held-out chrXV + chrXVI ({bases} bases, {called} called in f32): bf16 vs f32 track Pearson r = {r:.7}, \
         peak calls identical on {:.4}% of bases, largest probability difference {max_prob:.2e}",
        100.0 * same as f64 / bases as f64
    ));
    assert!(r >= 0.9999, "denoised track Pearson r {r} < 0.9999");
    assert!(same as f64 >= 0.999 * bases as f64, "peak calls identical on {same} of {bases} bases (< 99.9%)");
    let _ = std::fs::remove_dir_all(&dir);
}
