//! `chromax demo`: the whole denoising workflow on the bundled real yeast ATAC-seq data.
//!
//! Clean coverage from all 415k fragments, noisy coverage from a seeded 10% subsample, clean
//! peaks from the clean track; a small DenoiseNet trained on 13 chromosomes, validated on
//! chrXIV, then run on the held-out chrXV and chrXVI and evaluated against the clean data,
//! beside the noisy input. chrXII is left out of training: its rDNA repeat piles up tens of
//! thousands of reads, an outlier whose squared errors swamp the loss of a small model.

use super::denoise::train_reporter;
use super::device::select;
use super::progress::thousands;
use super::CliResult;
use chromax::coverage::{coverage_from_fragments, CoverageOptions};
use chromax::denoise::eval::{evaluate_data, format_table, EvalOptions, Prediction};
use chromax::denoise::infer::{run, RunOptions};
use chromax::denoise::peak_calls::ProbPeakOptions;
use chromax::denoise::train::{train, BestMetric, TrackPair, TrainOptions};
use chromax::io::bed::write_narrowpeak;
use chromax::io::bigwig::write_bigwig;
use chromax::io::guard::Files;
use chromax::io::ChromSizes;
use chromax::models::DenoiseConfig;
use chromax::on_backend;
use chromax::peaks::{call_peaks, PeakCallOptions};
use chromax::plot::report::{write_report_from, DenoiseRun, ReportInputs};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the tracks, the model and the predictions go.
    #[arg(long, short = 'o', default_value = "chromax-demo")]
    pub output: PathBuf,
    /// The bundled yeast data (from the repository root: tests/data/yeast).
    #[arg(long, default_value = "tests/data/yeast")]
    pub data: PathBuf,
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

pub const HOLDOUT: [&str; 2] = ["chrXV", "chrXVI"];
pub const VALIDATION: &str = "chrXIV";
/// Not trained on: the rDNA repeat's pile-up.
pub const EXCLUDED: &str = "chrXII";

pub fn run_demo(a: &DemoArgs) -> CliResult {
    let started = Instant::now();
    let fragments = a.data.join("yeast_500k_SRR1822137.frag.gz");
    let sizes_path = a.data.join("sacCer3.chrom.sizes");
    if !fragments.exists() || !sizes_path.exists() {
        return Err(format!(
            "{}: the bundled yeast data is not here; run from the repository root or give --data DIR",
            a.data.display()
        )
        .into());
    }
    let out = |name: &str| a.output.join(name);
    let written = [
        "clean.bw",
        "noisy.bw",
        "clean.narrowPeak",
        "model",
        "holdout.track.bw",
        "holdout.prob.bw",
        "holdout.peaks.narrowPeak",
        "holdout_eval.json",
        "report.html",
    ];
    Files::new().input("--data", &fragments).input("--data", &sizes_path).outputs("-o", written.map(out)).check()?;
    std::fs::create_dir_all(&a.output).map_err(|e| format!("{}: {e}", a.output.display()))?;
    let sizes = ChromSizes::read(&sizes_path)?;
    let threads = rayon::current_num_threads();

    eprintln!("1/5 coverage: clean (all fragments) and noisy (10% of fragments, seed {})", a.seed);
    let (clean, report) = coverage_from_fragments(&fragments, &sizes, &CoverageOptions::default(), &mut |_| {})?;
    write_bigwig(out("clean.bw"), &clean, threads)?;
    let noisy_opts = CoverageOptions { subsample: Some(0.1), seed: a.seed, ..Default::default() };
    let (noisy, noisy_report) = coverage_from_fragments(&fragments, &sizes, &noisy_opts, &mut |_| {})?;
    write_bigwig(out("noisy.bw"), &noisy, threads)?;
    eprintln!("    {} fragments → clean.bw; {} kept → noisy.bw", thousands(report.used), thousands(noisy_report.used));

    eprintln!("2/5 clean peaks (Poisson against the genome mean, −log10 p ≥ 3)");
    let (peaks, summary) = call_peaks(&clean, &PeakCallOptions::default()).map_err(|e| format!("peak calling: {e}"))?;
    write_narrowpeak(out("clean.narrowPeak"), &peaks)?;
    eprintln!(
        "    {} peaks covering {} bp (λ = {:.2})",
        thousands(peaks.len() as u64),
        thousands(summary.bases_in_peaks),
        summary.lambda
    );

    eprintln!(
        "3/5 training a small DenoiseNet; validation {VALIDATION}, held out {}, {EXCLUDED} (rDNA) left out",
        HOLDOUT.join(", ")
    );
    let compute = select(a.device.as_deref(), a.precision)?;
    let model_dir = out("model");
    let _ = std::fs::remove_dir_all(&model_dir);
    let opts = TrainOptions {
        pairs: vec![TrackPair { noisy: out("noisy.bw"), clean: out("clean.bw"), peaks: out("clean.narrowPeak") }],
        genome: sizes_path.clone(),
        val_chroms: vec![VALIDATION.to_string()],
        holdout_chroms: HOLDOUT.iter().chain([&EXCLUDED]).map(|s| s.to_string()).collect(),
        interval: 10_000,
        pad: 1_000,
        batch: 16,
        epochs: a.epochs,
        lr: 5e-4,
        seed: a.seed,
        best_metric: BestMetric::Auprc,
        model: DenoiseConfig::demo(),
        ..TrainOptions::default()
    };
    let mut report_fn = train_reporter();
    on_backend!(compute, b => train(b, &opts, &model_dir, false, &mut report_fn))?;

    eprintln!("4/5 denoising the held-out chromosomes");
    let run_opts = RunOptions {
        model: model_dir.clone(),
        noisy: out("noisy.bw"),
        extra_tracks: Vec::new(),
        genome: Some(sizes_path.clone()),
        regions: HOLDOUT.iter().map(|s| s.to_string()).collect(),
        prefix: out("holdout"),
        round: None,
        peaks: ProbPeakOptions::default(),
        probabilities: true,
        batch: 16,
        dense: false,
    };
    let summary = on_backend!(compute, b => run(b, &run_opts, &mut |_, _| {}))?;
    eprintln!(
        "    {} bases, {} peaks → {}",
        thousands(summary.bases),
        summary.peaks,
        out("holdout.track.bw").display()
    );

    eprintln!("5/5 evaluation on {} (noisy input vs denoised, against the clean track and peaks)", HOLDOUT.join(" + "));
    let eval_opts = EvalOptions {
        prediction: Prediction::Files { prefix: out("holdout") },
        noisy: Some(out("noisy.bw")),
        clean: out("clean.bw"),
        peaks: out("clean.narrowPeak"),
        genome: Some(sizes_path),
        regions: HOLDOUT.iter().map(|s| s.to_string()).collect(),
    };
    let data = on_backend!(compute, b => evaluate_data(b, &eval_opts))?;
    let report = data.report();
    chromax::io::json::write_json(&out("holdout_eval.json"), &report)?;
    print!("{}", format_table(&report));
    let inputs = ReportInputs {
        model: model_dir.clone(),
        run: Some(DenoiseRun {
            prediction: out("holdout"),
            noisy: out("noisy.bw"),
            clean: out("clean.bw"),
            peaks: out("clean.narrowPeak"),
            regions: eval_opts.regions.clone(),
        }),
        views: Vec::new(),
        seed: a.seed,
        analyses: Vec::new(),
        groups: None,
    };
    write_report_from(&inputs, Some(&data), &out("report.html"))?;
    eprintln!("done in {:.0} s; everything is in {}", started.elapsed().as_secs_f64(), a.output.display());
    eprintln!("report (open it in a browser): {}", out("report.html").display());
    Ok(())
}
