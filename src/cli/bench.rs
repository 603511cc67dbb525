//! `chromax bench denoise`: training and inference throughput of DenoiseNet, model-only and
//! end to end (bigWig in → bigWig + peaks out), with achieved FLOP/s.

use super::device::select;
use super::CliResult;
use chromax::backend::{AdamParams, AdamStep, Backend, DenoiseLossParams};
use chromax::coverage::{coverage_from_fragments, CoverageOptions};
use chromax::denoise::infer::{run, RunOptions};
use chromax::denoise::model::{write_model, ModelConfig};
use chromax::denoise::peak_calls::ProbPeakOptions;
use chromax::denoise::train::forward_backward;
use chromax::io::bigwig::write_bigwig;
use chromax::io::ChromSizes;
use chromax::models::{DenoiseConfig, DenoiseNet};
use chromax::nn::{download_f32, upload_f32, Module};
use chromax::on_backend;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// DenoiseNet training and inference bases/s.
    Denoise(DenoiseBenchArgs),
    /// SeqNet training on a synthetic peak-by-cell matrix of a given shape and density.
    Sc(super::bench_sc::ScBenchArgs),
    /// `denoise run` with and without exact skipping of empty coverage, on real low-depth inputs.
    Skip(super::bench_skip::SkipBenchArgs),
    /// The single-cell analyses: TF activity, ISM and imputation throughput on scBasset's model.
    Analyses(super::bench_analyses::AnalysesBenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelSize {
    /// AtacWorks' published model (219,706 parameters).
    Atacworks,
    /// The demo's small model.
    Demo,
}

#[derive(Debug, clap::Args)]
pub struct DenoiseBenchArgs {
    #[arg(long, value_enum, default_value_t = ModelSize::Atacworks)]
    pub model: ModelSize,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 50_000)]
    pub interval: u64,
    #[arg(long, default_value_t = 5_000)]
    pub pad: u64,
    /// Timed steps of each kind (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Chromosomes of the bundled yeast data for the end-to-end run (comma-separated).
    #[arg(long, default_value = "chrI,chrII,chrIII")]
    pub e2e_chroms: String,
    #[arg(long, default_value = "tests/data/yeast")]
    pub data: PathBuf,
    /// Model-only figures: no end-to-end run.
    #[arg(long)]
    pub no_e2e: bool,
    /// Print the figures as one JSON object on the last line of the output too.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

pub fn run_bench(cmd: &BenchCommand) -> CliResult {
    match cmd {
        BenchCommand::Denoise(a) => {
            let compute = select(a.device.as_deref(), a.precision)?;
            on_backend!(compute, b => bench_denoise(b, a))
        }
        BenchCommand::Sc(a) => super::bench_sc::run(a),
        BenchCommand::Skip(a) => super::bench_skip::run_bench(a),
        BenchCommand::Analyses(a) => super::bench_analyses::bench_analyses(a),
    }
}

fn bench_denoise<B: Backend>(backend: &B, a: &DenoiseBenchArgs) -> CliResult {
    let cfg = match a.model {
        ModelSize::Atacworks => DenoiseConfig::default(),
        ModelSize::Demo => DenoiseConfig::demo(),
    };
    if a.batch == 0 || a.interval == 0 {
        return Err("--batch and --interval must be at least 1".into());
    }
    let width = (a.interval + 2 * a.pad) as usize;
    let n = a.batch;
    let flops_fwd = cfg.flops_per_base() * width as f64; // per interval, padding included
                                                         // Coverage-like input: a smooth positive signal with peaks.
    let host: Vec<f32> = (0..n * width)
        .map(|i| 10.0 + 8.0 * ((i as f32) * 0.001).sin() + if i % 997 < 200 { 40.0 } else { 0.0 })
        .collect();
    let clean: Vec<f32> = host.iter().map(|v| v * 1.5).collect();
    let mask: Vec<f32> = host.iter().map(|&v| if v > 30.0 { 1.0 } else { 0.0 }).collect();
    let mut net = DenoiseNet::new(backend, cfg, 1)?;
    let x = upload_f32(backend, &host)?;
    let (clean_d, mask_d) = (upload_f32(backend, &clean)?, upload_f32(backend, &mask)?);
    let loss = DenoiseLossParams {
        batch: n,
        len: width,
        pad: a.pad as usize,
        mse_weight: 0.0005,
        pearson_weight: 1.0,
        bce_weight: 1.0,
    };
    let mut moments: Vec<(B::Buf, B::Buf)> = net
        .params()
        .iter()
        .map(|p| Ok((backend.zeros(p.len())?, backend.zeros(p.len())?)))
        .collect::<Result<_, chromax::error::BackendError>>()?;

    let mut train_step = |net: &mut DenoiseNet<B>, step: u64| -> CliResult {
        forward_backward(backend, net, upload_f32(backend, &host)?, &clean_d, &mask_d, &loss)?;
        let p = AdamParams::new(2e-4, step);
        for (param, (m, v)) in net.params_mut().into_iter().zip(moments.iter_mut()) {
            backend.adam_step(&p, AdamStep { param: &mut param.value, grad: &param.grad, m, v })?;
        }
        backend.synchronize()?;
        Ok(())
    };
    train_step(&mut net, 1)?;
    let t = Instant::now();
    for s in 0..a.steps {
        train_step(&mut net, s as u64 + 2)?;
    }
    let train_s = t.elapsed().as_secs_f64() / a.steps as f64;

    let infer_step = |net: &DenoiseNet<B>| -> CliResult {
        let out = net.infer(backend, &x, n, width)?;
        download_f32(backend, &out.logits)?;
        Ok(())
    };
    infer_step(&net)?;
    let t = Instant::now();
    for _ in 0..a.steps {
        infer_step(&net)?;
    }
    let infer_s = t.elapsed().as_secs_f64() / a.steps as f64;

    // End to end: the bundled yeast noisy track through `denoise run`, with the network on
    // every base (--dense: what a dense input costs) and with empty coverage skipped.
    let (summary, skipping) = if a.no_e2e {
        (None, None)
    } else {
        let [dense, skipping] = end_to_end(backend, a, cfg, &net)?;
        (Some(dense), Some(skipping))
    };

    let bases = (n as f64) * a.interval as f64;
    let fwd_flops = flops_fwd * n as f64;
    println!(
        "DenoiseNet {:?}: {} parameters, {:.3} MFLOP per input base forward; batch {n} × ({} + 2×{}) bases",
        a.model,
        cfg.param_count(),
        cfg.flops_per_base() / 1e6,
        a.interval,
        a.pad
    );
    let peak = (backend.describe().starts_with("cpu")).then(|| chromax::backend::cpu::direct::measured_fma_peak(0.5));
    if let Some(peak) = peak {
        println!(
            "CPU FMA roof, measured ({:?} FMA chains on {} threads): {peak:.0} GFLOP/s",
            chromax::backend::cpu::direct::isa(),
            rayon::current_num_threads()
        );
    }
    let share = |gflops: f64| peak.map_or(String::new(), |p| format!("{:>7.1}% of roof", 100.0 * gflops / p));
    println!("{:<34} {:>12} {:>14} {:>12}", "", "s/batch", "bases/s", "GFLOP/s");
    println!(
        "{:<34} {:>12.3} {:>14.0} {:>12.1} {}",
        "training step (fwd+bwd+Adam)",
        train_s,
        bases / train_s,
        3.0 * fwd_flops / train_s / 1e9,
        share(3.0 * fwd_flops / train_s / 1e9)
    );
    println!(
        "{:<34} {:>12.3} {:>14.0} {:>12.1} {}",
        "inference (model only)",
        infer_s,
        bases / infer_s,
        fwd_flops / infer_s / 1e9,
        share(fwd_flops / infer_s / 1e9)
    );
    let e2e = summary.as_ref().map(|s| s.bases as f64 / s.seconds);
    if let (Some(e2e), Some(summary)) = (e2e, &summary) {
        println!(
            "{:<34} {:>12} {:>14.0} {:>12.1}   ({:.0}% of model-only; {} bases)",
            "inference end to end, --dense",
            "-",
            e2e,
            e2e * cfg.flops_per_base() * (width as f64 / a.interval as f64) / 1e9,
            100.0 * e2e / (bases / infer_s),
            summary.bases
        );
        if let Some(s) = &skipping {
            println!(
                "{:<34} {:>12} {:>14.0} {:>12}   (network on {:.1}% of the bases)",
                "  the same, empty coverage skipped",
                "-",
                s.bases as f64 / s.seconds,
                "-",
                100.0 * s.work.network_bases as f64 / s.work.bases.max(1) as f64
            );
        }
        println!("whole human genome (3.1 Gb) at the end-to-end rate: {:.1} h", 3.1e9 / e2e / 3600.0);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": format!("{:?}", a.model), "batch": n, "interval": a.interval, "pad": a.pad,
                "train_bases_per_s": bases / train_s, "infer_bases_per_s": bases / infer_s,
                "e2e_bases_per_s": e2e,
                "e2e_skip_bases_per_s": skipping.as_ref().map(|s| s.bases as f64 / s.seconds),
                "infer_flop_per_base": fwd_flops / bases, "roof_gflops": peak,
            })
        );
    }
    Ok(())
}

/// `denoise run` on the bundled yeast reads (a 10% subsample), with this net as the model.
fn end_to_end<B: Backend>(
    backend: &B,
    a: &DenoiseBenchArgs,
    cfg: DenoiseConfig,
    net: &DenoiseNet<B>,
) -> Result<[chromax::denoise::infer::RunSummary; 2], chromax::Error> {
    let dir = std::env::temp_dir().join(format!("chromax-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("model"))
        .map_err(|source| chromax::error::FileError::Io { path: dir.clone(), source })?;
    let sizes_path = a.data.join("sacCer3.chrom.sizes");
    let sizes = ChromSizes::read(&sizes_path)?;
    let opts = CoverageOptions { subsample: Some(0.1), seed: 1, ..Default::default() };
    let (noisy, _) = coverage_from_fragments(a.data.join("yeast_500k_SRR1822137.frag.gz"), &sizes, &opts, &mut |_| {})?;
    write_bigwig(dir.join("noisy.bw"), &noisy, rayon::current_num_threads())?;
    let config = ModelConfig::new(cfg, a.interval, a.pad, Vec::new(), serde_json::Value::Null);
    write_model(backend, &dir.join("model"), &config, net)?;
    let run_opts = |dense: bool| RunOptions {
        model: dir.join("model"),
        noisy: dir.join("noisy.bw"),
        extra_tracks: Vec::new(),
        genome: Some(sizes_path.clone()),
        regions: a.e2e_chroms.split(',').map(String::from).collect(),
        prefix: dir.join("out"),
        round: None,
        peaks: ProbPeakOptions::default(),
        probabilities: true,
        batch: a.batch,
        dense,
    };
    // The inputs made once, then the network on every base and with empty coverage skipped.
    let summaries = run(backend, &run_opts(true), &mut |_, _| {})
        .and_then(|dense| Ok([dense, run(backend, &run_opts(false), &mut |_, _| {})?]));
    let _ = std::fs::remove_dir_all(&dir);
    summaries
}
