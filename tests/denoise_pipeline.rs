//! The denoiser end to end on real yeast data (a tiny model, so it runs in seconds): seeded
//! training is bit-for-bit reproducible, a resumed run ends where an uninterrupted one does,
//! denoising in pieces equals denoising whole chromosomes, and every base gets a value.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::coverage::{coverage_from_fragments, CoverageOptions};
use chromax::denoise::eval::{evaluate, EvalOptions, Prediction};
use chromax::denoise::infer::{denoise_spans, open_inputs, resolve_spans, run, RunOptions};
use chromax::denoise::model::load_model;
use chromax::denoise::peak_calls::ProbPeakOptions;
use chromax::denoise::train::{train, BestMetric, TrackPair, TrainOptions};
use chromax::io::bed::write_narrowpeak;
use chromax::io::bigwig::{read_bigwig, write_bigwig};
use chromax::io::ChromSizes;
use chromax::models::DenoiseConfig;
use chromax::peaks::{call_peaks, PeakCallOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Data {
    dir: PathBuf,
    sizes: PathBuf,
}

/// Clean/noisy tracks and clean peaks of four small yeast chromosomes, made once per process.
fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chromax-denoise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Every test of this binary starts here, before any reads the variable.
        std::env::set_var(chromax::store::CACHE_DIR_ENV, dir.join("cache"));
        let sizes_path = dir.join("small.sizes");
        std::fs::write(&sizes_path, "chrI\t230218\nchrII\t813184\nchrIII\t316620\nchrVI\t270161\n").expect("sizes");
        let sizes = ChromSizes::read(&sizes_path).expect("sizes");
        let frags = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/yeast/yeast_500k_SRR1822137.frag.gz");
        let (clean, _) =
            coverage_from_fragments(&frags, &sizes, &CoverageOptions::default(), &mut |_| {}).expect("clean");
        let noisy_opts = CoverageOptions { subsample: Some(0.1), seed: 3, ..Default::default() };
        let (noisy, _) = coverage_from_fragments(&frags, &sizes, &noisy_opts, &mut |_| {}).expect("noisy");
        write_bigwig(dir.join("clean.bw"), &clean, 2).expect("clean.bw");
        write_bigwig(dir.join("noisy.bw"), &noisy, 2).expect("noisy.bw");
        let (peaks, _) = call_peaks(&clean, &PeakCallOptions::default()).expect("peaks");
        write_narrowpeak(dir.join("clean.narrowPeak"), &peaks).expect("peaks");
        Data { dir, sizes: sizes_path }
    })
}

fn tiny() -> DenoiseConfig {
    DenoiseConfig {
        in_channels: 1,
        reg_blocks: 1,
        reg_filters: 4,
        reg_kernel: 9,
        reg_dilation: 2,
        cls_blocks: 1,
        cls_filters: 4,
        cls_kernel: 9,
        cls_dilation: 2,
    }
}

fn options(epochs: usize) -> TrainOptions {
    let d = data();
    TrainOptions {
        pairs: vec![TrackPair {
            noisy: d.dir.join("noisy.bw"),
            clean: d.dir.join("clean.bw"),
            peaks: d.dir.join("clean.narrowPeak"),
        }],
        genome: d.sizes.clone(),
        val_chroms: vec!["chrIII".into()],
        holdout_chroms: vec!["chrVI".into()],
        interval: 4000,
        pad: 64,
        batch: 8,
        epochs,
        lr: 1e-3,
        seed: 11,
        best_metric: BestMetric::Auprc,
        model: tiny(),
        ..TrainOptions::default()
    }
}

fn out_dir(tag: &str) -> PathBuf {
    let p = data().dir.join(tag);
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn seeded_training_is_reproducible_and_resume_continues_exactly() {
    let cpu = CpuBackend::new();
    let quiet = &mut |_| {};
    let a = out_dir("run-a");
    let records = train(&cpu, &options(3), &a, false, quiet).expect("train");
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.val.pearson.is_finite() && r.val.auprc > 0.0));
    let log = std::fs::read_to_string(a.join("train_log.tsv")).expect("log");
    assert_eq!(log.lines().count(), 4, "{log}");

    let b = out_dir("run-b");
    train(&cpu, &options(3), &b, false, quiet).expect("train again");
    for f in ["model.safetensors", "last.safetensors"] {
        assert!(
            std::fs::read(a.join(f)).expect("a") == std::fs::read(b.join(f)).expect("b"),
            "{f} differs between two seeded runs"
        );
    }

    // Stopped after one epoch, then resumed to three: the same weights and optimiser state.
    let c = out_dir("run-c");
    train(&cpu, &options(1), &c, false, quiet).expect("first epoch");
    let err = train(&cpu, &options(3), &c, false, quiet).expect_err("the directory holds a run");
    assert!(err.to_string().contains("--resume"), "{err}");
    let resumed = train(&cpu, &options(3), &c, true, quiet).expect("resume");
    assert_eq!(resumed.iter().map(|r| r.epoch).collect::<Vec<_>>(), [2, 3]);
    for f in ["model.safetensors", "last.safetensors", "state.json"] {
        assert!(
            std::fs::read(a.join(f)).expect("a") == std::fs::read(c.join(f)).expect("c"),
            "{f}: resumed run differs from the uninterrupted one"
        );
    }
    assert_eq!(std::fs::read_to_string(c.join("train_log.tsv")).expect("log").lines().count(), 4);
}

#[test]
fn denoising_in_pieces_equals_whole_chromosomes_and_covers_every_base() {
    let cpu = CpuBackend::new();
    let dir = out_dir("run-stitch");
    train(&cpu, &options(1), &dir, false, &mut |_| {}).expect("train");
    let d = data();
    let sizes = ChromSizes::read(&d.sizes).expect("sizes");
    let (net, config) = load_model(&cpu, &dir).expect("model");

    // Every base of every chromosome exactly once, tails included.
    let set = open_inputs(&config, &d.dir.join("noisy.bw"), &[], &sizes).expect("inputs");
    let spans = resolve_spans(&[], &sizes).expect("spans");
    let mut seen: Vec<Vec<u8>> = (0..sizes.len()).map(|c| vec![0u8; sizes.length(c) as usize]).collect();
    let mut whole: Vec<Vec<f32>> = (0..sizes.len()).map(|c| vec![f32::NAN; sizes.length(c) as usize]).collect();
    let bases = denoise_spans(&cpu, &net, &config, set.clone(), &spans, 8, &mut |iv, first, reg, _| {
        for (i, &v) in reg.iter().enumerate() {
            seen[iv.chrom][first as usize + i] += 1;
            whole[iv.chrom][first as usize + i] = v;
        }
        Ok(())
    })
    .expect("denoise");
    assert_eq!(bases, sizes.total());
    assert!(seen.iter().flatten().all(|&n| n == 1), "some base got no value or two");

    // chrII in three pieces with odd boundaries gives the same values, base for base.
    let regions = ["chrII:1-333333", "chrII:333334-700001", "chrII:700002-813184"].map(String::from);
    let pieces = resolve_spans(&regions, &sizes).expect("regions");
    assert_eq!(pieces.len(), 1, "touching regions merge");
    let separate: Vec<_> =
        regions.iter().flat_map(|r| resolve_spans(std::slice::from_ref(r), &sizes).expect("region")).collect();
    let chr2 = sizes.id("chrII").expect("chrII");
    let mut stitched = vec![f32::NAN; sizes.length(chr2) as usize];
    for span in &separate {
        denoise_spans(&cpu, &net, &config, set.clone(), std::slice::from_ref(span), 8, &mut |_, first, reg, _| {
            stitched[first as usize..first as usize + reg.len()].copy_from_slice(reg);
            Ok(())
        })
        .expect("piece");
    }
    let diff = stitched.iter().zip(&whole[chr2]).position(|(a, b)| a.to_bits() != b.to_bits());
    assert!(diff.is_none(), "pieces differ from the whole chromosome at chrII:{:?}", diff.map(|p| p + 1));

    // The command's bigWig holds the same values.
    // Outputs go beside the model, never inside its directory.
    let prefix = d.dir.join("run-stitch-pred");
    let opts = RunOptions {
        model: dir.clone(),
        noisy: d.dir.join("noisy.bw"),
        extra_tracks: Vec::new(),
        genome: Some(d.sizes.clone()),
        regions: Vec::new(),
        prefix: prefix.clone(),
        round: None,
        peaks: ProbPeakOptions::default(),
        probabilities: true,
        batch: 8,
        // Skipping empty coverage (the default): the same values as the dense pieces above.
        dense: false,
    };
    let summary = run(&cpu, &opts, &mut |_, _| {}).expect("run");
    assert_eq!(summary.bases, sizes.total());
    let track = read_bigwig(d.dir.join("run-stitch-pred.track.bw"), Some(&sizes)).expect("track.bw");
    let mut back = vec![0f32; sizes.length(chr2) as usize];
    track.fill(chr2, 0, &mut back);
    assert!(back == whole[chr2], "the bigWig holds other values");
    assert!(d.dir.join("run-stitch-pred.peaks.narrowPeak").exists() && d.dir.join("run-stitch-pred.prob.bw").exists());

    // Evaluation from the files and from the model agree.
    let eval = |prediction| EvalOptions {
        prediction,
        noisy: Some(d.dir.join("noisy.bw")),
        clean: d.dir.join("clean.bw"),
        peaks: d.dir.join("clean.narrowPeak"),
        genome: Some(d.sizes.clone()),
        regions: vec!["chrVI".into()],
    };
    let from_files = evaluate(&cpu, &eval(Prediction::Files { prefix })).expect("eval files");
    let from_model =
        evaluate(&cpu, &eval(Prediction::Model { dir: dir.clone(), extra_tracks: Vec::new(), batch: 8, dense: false }))
            .expect("eval model");
    assert_eq!(from_files.bases, 270_161);
    assert!((from_files.denoised.pearson - from_model.denoised.pearson).abs() < 1e-6);
    assert!((from_files.denoised.auprc - from_model.denoised.auprc).abs() < 1e-6);
    let noisy = from_files.noisy.expect("baseline");
    assert!(noisy.pearson > 0.5 && noisy.pearson < 1.0);
}
