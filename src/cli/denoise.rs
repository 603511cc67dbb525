//! `chromax denoise train | run | eval`.

use super::device::select;
use super::progress::thousands;
use super::CliResult;
use chromax::denoise::eval::{evaluate_data, format_table, EvalOptions, Prediction};
use chromax::denoise::infer::{run, RunOptions};
use chromax::denoise::peak_calls::ProbPeakOptions;
use chromax::denoise::train::{train, BestMetric, DataSummary, EpochRecord, TrackPair, TrainEvent, TrainOptions};
use chromax::io::guard::Files;
use chromax::io::prefixed;
use chromax::models::DenoiseConfig;
use chromax::on_backend;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum DenoiseCommand {
    /// Train a DenoiseNet on noisy/clean coverage and clean peaks.
    Train(Box<TrainArgs>),
    /// Denoise a track with a trained model: bigWig + narrowPeak out.
    Run(RunArgs),
    /// Compare denoised (and noisy) signal with the clean track and peaks.
    Eval(EvalArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Residual blocks of the regression part.
    #[arg(long, default_value_t = 5)]
    pub blocks: usize,
    #[arg(long, default_value_t = 15)]
    pub filters: usize,
    #[arg(long, default_value_t = 51)]
    pub kernel: usize,
    #[arg(long, default_value_t = 8)]
    pub dilation: usize,
    /// Residual blocks of the classification part.
    #[arg(long, default_value_t = 2)]
    pub cls_blocks: usize,
    #[arg(long, default_value_t = 15)]
    pub cls_filters: usize,
    #[arg(long, default_value_t = 51)]
    pub cls_kernel: usize,
    #[arg(long, default_value_t = 8)]
    pub cls_dilation: usize,
}

impl ModelArgs {
    pub fn config(&self, extra: usize) -> DenoiseConfig {
        DenoiseConfig {
            in_channels: 1 + extra,
            reg_blocks: self.blocks,
            reg_filters: self.filters,
            reg_kernel: self.kernel,
            reg_dilation: self.dilation,
            cls_blocks: self.cls_blocks,
            cls_filters: self.cls_filters,
            cls_kernel: self.cls_kernel,
            cls_dilation: self.cls_dilation,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricArg {
    Pearson,
    Auprc,
    Auroc,
    Mse,
    Loss,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Noisy coverage (bigWig, bedGraph or shard); repeat for several samples.
    #[arg(long, required = true)]
    pub noisy: Vec<PathBuf>,
    /// Clean coverage, one per --noisy.
    #[arg(long, required = true)]
    pub clean: Vec<PathBuf>,
    /// Clean peaks (BED/narrowPeak), one per --noisy or one for all.
    #[arg(long, required = true)]
    pub peaks: Vec<PathBuf>,
    #[arg(long, short = 'g', value_name = "SIZES")]
    pub genome: PathBuf,
    /// Output directory (checkpoints, config.json, train_log.tsv).
    #[arg(long, short = 'o', required_unless_present = "resume")]
    pub output: Option<PathBuf>,
    /// Continue the run in DIR where it stopped.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub resume: Option<PathBuf>,
    /// Validation chromosome (repeat for several).
    #[arg(long = "val-chrom", required = true)]
    pub val_chrom: Vec<String>,
    /// Held-out chromosome, never trained on (repeat for several).
    #[arg(long = "holdout-chrom")]
    pub holdout_chrom: Vec<String>,
    /// Extra input track NAME=FILE (e.g. a motif mask), repeatable.
    #[arg(long = "extra-track", value_name = "NAME=FILE")]
    pub extra_track: Vec<String>,
    #[arg(long, default_value_t = 50_000)]
    pub interval: u64,
    #[arg(long, default_value_t = 5_000)]
    pub pad: u64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 25)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 0.0005)]
    pub mse_weight: f32,
    #[arg(long, default_value_t = 1.0)]
    pub pearson_weight: f32,
    #[arg(long, default_value_t = 1.0)]
    pub bce_weight: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also train on intervals whose input is zero everywhere.
    #[arg(long)]
    pub keep_empty: bool,
    /// Validation metric that picks model.safetensors.
    #[arg(long, value_enum, default_value_t = MetricArg::Pearson)]
    pub best_metric: MetricArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// cpu, cuda or cuda:N (default: CUDA when usable).
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

/// `NAME=FILE` pairs.
pub fn parse_extra(items: &[String]) -> CliResult<Vec<(String, PathBuf)>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((n, f)) if !n.is_empty() && !f.is_empty() => Ok((n.to_string(), PathBuf::from(f))),
            _ => Err(format!("--extra-track {s}: expected NAME=FILE").into()),
        })
        .collect()
}

pub fn train_options(a: &TrainArgs) -> CliResult<TrainOptions> {
    let n = a.noisy.len();
    if a.clean.len() != n || !(a.peaks.len() == n || a.peaks.len() == 1) {
        return Err(format!(
            "{n} --noisy need as many --clean ({} given) and --peaks ({} given; or one for all)",
            a.clean.len(),
            a.peaks.len()
        )
        .into());
    }
    let pairs = (0..n)
        .map(|i| TrackPair {
            noisy: a.noisy[i].clone(),
            clean: a.clean[i].clone(),
            peaks: a.peaks[if a.peaks.len() == 1 { 0 } else { i }].clone(),
        })
        .collect();
    let extra = parse_extra(&a.extra_track)?;
    Ok(TrainOptions {
        pairs,
        model: a.model.config(extra.len()),
        extra_tracks: extra,
        genome: a.genome.clone(),
        val_chroms: a.val_chrom.clone(),
        holdout_chroms: a.holdout_chrom.clone(),
        interval: a.interval,
        pad: a.pad,
        batch: a.batch,
        epochs: a.epochs,
        lr: a.lr,
        weight_decay: a.weight_decay,
        mse_weight: a.mse_weight,
        pearson_weight: a.pearson_weight,
        bce_weight: a.bce_weight,
        seed: a.seed,
        skip_empty: !a.keep_empty,
        best_metric: match a.best_metric {
            MetricArg::Pearson => BestMetric::Pearson,
            MetricArg::Auprc => BestMetric::Auprc,
            MetricArg::Auroc => BestMetric::Auroc,
            MetricArg::Mse => BestMetric::Mse,
            MetricArg::Loss => BestMetric::Loss,
        },
    })
}

/// The progress display of training.
pub fn train_reporter() -> impl FnMut(TrainEvent) {
    super::progress::train_reporter(
        "bases",
        |s: &DataSummary| {
            format!(
                "training on {} intervals ({} all-zero ones left out), validating on {}",
                thousands(s.train_intervals as u64),
                thousands(s.skipped_empty as u64),
                thousands(s.val_intervals as u64)
            )
        },
        |r: &EpochRecord| {
            format!(
                "epoch {:>3}  train loss {:.4} (r {:.3})  val loss {:.4}  MSE {:.3}  r {:.4}  AUROC {:.4}  AUPRC {:.4}  {:.0} bases/s{}",
                r.epoch,
                r.train_loss,
                r.train_pearson,
                r.val.loss,
                r.val.mse,
                r.val.pearson,
                r.val.auroc,
                r.val.auprc,
                r.bases_per_second,
                if r.best { "  *best" } else { "" }
            )
        },
    )
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Model directory from `chromax denoise train`.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub noisy: PathBuf,
    /// Output prefix: PREFIX.track.bw, PREFIX.peaks.narrowPeak, PREFIX.prob.bw.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[arg(long, short = 'g', value_name = "SIZES")]
    pub genome: Option<PathBuf>,
    /// Only these regions: BED files or chr:start-end (1-based, inclusive).
    #[arg(long, num_args = 1..)]
    pub regions: Vec<String>,
    #[arg(long = "extra-track", value_name = "NAME=FILE")]
    pub extra_track: Vec<String>,
    /// Round the denoised signal to N decimals (smaller files).
    #[arg(long, value_name = "N")]
    pub round: Option<u32>,
    /// Peak probability threshold.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    #[arg(long, default_value_t = 0)]
    pub max_gap: u64,
    #[arg(long, default_value_t = 20)]
    pub min_length: u64,
    /// Also write PREFIX.prob.bw.
    #[arg(long)]
    pub probabilities: bool,
    /// Run the network on every base: no skipping of stretches whose receptive field holds
    /// no coverage (the output is the same bits; for comparison and timing).
    #[arg(long)]
    pub dense: bool,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The PREFIX of `chromax denoise run --probabilities`.
    #[arg(long, conflicts_with = "model", required_unless_present = "model")]
    pub prediction: Option<PathBuf>,
    /// Or a model directory, run on --noisy now.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The noisy track: the baseline column (and the model's input).
    #[arg(long)]
    pub noisy: Option<PathBuf>,
    #[arg(long)]
    pub clean: PathBuf,
    #[arg(long)]
    pub peaks: PathBuf,
    #[arg(long, short = 'g', value_name = "SIZES")]
    pub genome: Option<PathBuf>,
    #[arg(long, num_args = 1..)]
    pub regions: Vec<String>,
    #[arg(long = "extra-track", value_name = "NAME=FILE")]
    pub extra_track: Vec<String>,
    /// Also write the metrics as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the evaluation into this directory: ROC and precision–recall curves of the
    /// denoised probabilities and of the noisy baseline (roc_pr.svg/.png), and the signals
    /// against the clean track in hexagonal bins (scatter.svg/.png).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Run the network on every base: no skipping of stretches whose receptive field holds
    /// no coverage (the output is the same bits; for comparison and timing).
    #[arg(long)]
    pub dense: bool,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

pub fn run_cmd(cmd: &DenoiseCommand) -> CliResult {
    match cmd {
        DenoiseCommand::Train(a) => {
            let opts = train_options(a)?;
            let (out, resume) = match (&a.output, &a.resume) {
                (_, Some(dir)) => (dir.clone(), true),
                (Some(dir), None) => (dir.clone(), false),
                (None, None) => return Err("give -o DIR (or --resume DIR)".into()),
            };
            let compute = select(a.device.as_deref(), a.precision)?;
            let mut report = train_reporter();
            let records = on_backend!(compute, b => train(b, &opts, &out, resume, &mut report))?;
            if let Some(best) = records.iter().rev().find(|r| r.best) {
                eprintln!(
                    "best model: epoch {} (val r {:.4}, AUPRC {:.4}) in {}",
                    best.epoch,
                    best.val.pearson,
                    best.val.auprc,
                    out.join("model.safetensors").display()
                );
            }
            Ok(())
        }
        DenoiseCommand::Run(a) => {
            let opts = RunOptions {
                model: a.model.clone(),
                noisy: a.noisy.clone(),
                extra_tracks: parse_extra(&a.extra_track)?,
                genome: a.genome.clone(),
                regions: a.regions.clone(),
                prefix: a.output.clone(),
                round: a.round,
                peaks: ProbPeakOptions { threshold: a.threshold, max_gap: a.max_gap, min_length: a.min_length },
                probabilities: a.probabilities,
                batch: a.batch,
                dense: a.dense,
            };
            let compute = select(a.device.as_deref(), a.precision)?;
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template("denoising {bar:30} {percent}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let started = std::time::Instant::now();
            let mut progress = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{:.0} bases/s", done as f64 / started.elapsed().as_secs_f64().max(1e-9)));
            };
            let summary = on_backend!(compute, b => run(b, &opts, &mut progress))?;
            bar.finish_and_clear();
            eprintln!(
                "denoised {} bases in {:.1} s ({:.0} bases/s); {} peaks; wrote {}",
                thousands(summary.bases),
                summary.seconds,
                summary.bases as f64 / summary.seconds.max(1e-9),
                thousands(summary.peaks as u64),
                summary.outputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            );
            let w = summary.work;
            let pct = |v: u64| 100.0 * v as f64 / w.bases.max(1) as f64;
            eprintln!(
                "{:.1}% of bases have coverage in their receptive field; the network ran on {:.1}% ({})",
                pct(w.signal_bases),
                pct(w.network_bases),
                if summary.skipping { "empty coverage skipped" } else { "dense" }
            );
            Ok(())
        }
        DenoiseCommand::Eval(a) => {
            let prediction = match (&a.prediction, &a.model) {
                (Some(prefix), _) => Prediction::Files { prefix: prefix.clone() },
                (None, Some(dir)) => Prediction::Model {
                    dir: dir.clone(),
                    extra_tracks: parse_extra(&a.extra_track)?,
                    batch: a.batch,
                    dense: a.dense,
                },
                (None, None) => return Err("give --prediction PREFIX or --model DIR".into()),
            };
            let opts = EvalOptions {
                prediction,
                noisy: a.noisy.clone(),
                clean: a.clean.clone(),
                peaks: a.peaks.clone(),
                genome: a.genome.clone(),
                regions: a.regions.clone(),
            };
            let predicted = a.prediction.iter().flat_map(|p| [prefixed(p, ".track.bw"), prefixed(p, ".prob.bw")]);
            Files::new()
                .inputs("--prediction", predicted)
                .model_dirs("--model", &a.model)
                .inputs("--noisy", &a.noisy)
                .input("--clean", &a.clean)
                .input("--peaks", &a.peaks)
                .inputs("--genome", &a.genome)
                .inputs("--regions", a.regions.iter().map(std::path::Path::new).filter(|p| p.is_file()))
                .inputs("--extra-track", parse_extra(&a.extra_track)?.into_iter().map(|(_, p)| p))
                .outputs("--json", &a.json)
                .check()?;
            if let Some(dir) = &a.plots {
                let figures = ["roc_pr.svg", "roc_pr.png", "scatter.svg", "scatter.png"].map(|f| dir.join(f));
                Files::new().outputs("--plots", figures.iter()).check()?;
            }
            let compute = select(a.device.as_deref(), a.precision)?;
            let data = on_backend!(compute, b => evaluate_data(b, &opts))?;
            let report = data.report();
            print!("{}", format_table(&report));
            if let Some(path) = &a.json {
                chromax::io::json::write_json(path, &report)?;
            }
            if let Some(dir) = &a.plots {
                let written = chromax::plot::eval::write_eval_plots(&data, &report, dir)?;
                eprintln!(
                    "figures: {}",
                    written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
            }
            Ok(())
        }
    }
}
