//! `chromax bench skip`: exact skipping of empty coverage on real low-depth inputs.
//!
//! Builds the inputs from the bundled fragments — a 1% subsample of the yeast reads, and the
//! chr22 single-cell fragments of 1 and of 10 cells (pseudobulk) — and runs `denoise run`
//! with `--dense` and without on each, with AtacWorks' model and the demo's (freshly
//! initialised: the work skipped depends on the architecture, not on the weights). Prints the
//! fraction f of bases whose receptive field holds signal, the network's share, both wall
//! times (a skipping run under a second: the median of five), the speed-up against the ideal
//! 1/f, and whether the outputs are the same bits.

use super::bench::ModelSize;
use super::device::select;
use super::CliResult;
use chromax::backend::Backend;
use chromax::coverage::{coverage_from_fragments, CellSelection, CoverageOptions};
use chromax::denoise::infer::{run, RunOptions, RunSummary};
use chromax::denoise::model::{write_model, ModelConfig};
use chromax::denoise::peak_calls::ProbPeakOptions;
use chromax::io::bigwig::{read_bigwig, write_bigwig};
use chromax::io::ChromSizes;
use chromax::models::{DenoiseConfig, DenoiseNet};
use chromax::on_backend;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct SkipBenchArgs {
    #[arg(long, default_value = "tests/data")]
    pub data: PathBuf,
    /// Models to run (default: both).
    #[arg(long, value_enum, num_args = 1..)]
    pub models: Vec<ModelSize>,
    /// Only these inputs (yeast-1pct, chr22-1cell, chr22-10cells; default: all).
    #[arg(long, num_args = 1..)]
    pub inputs: Vec<String>,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the inputs and models in this new directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

/// hg38's chr22, the single-cell fragments' only chromosome.
const CHR22_LEN: u64 = 50_818_468;

pub fn run_bench(a: &SkipBenchArgs) -> CliResult {
    let compute = select(a.device.as_deref(), a.precision)?;
    on_backend!(compute, b => bench(b, a))
}

fn bench<B: Backend>(backend: &B, a: &SkipBenchArgs) -> CliResult {
    if let Some(keep) = &a.keep {
        if std::fs::read_dir(keep).is_ok_and(|mut e| e.next().is_some()) {
            return Err(format!("--keep {}: give a new or empty directory", keep.display()).into());
        }
        std::fs::create_dir_all(keep).map_err(|e| format!("{}: {e}", keep.display()))?;
        return bench_in(backend, a, keep);
    }
    let dir = std::env::temp_dir().join(format!("chromax-bench-skip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = bench_in(backend, a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench_in<B: Backend>(backend: &B, a: &SkipBenchArgs, dir: &Path) -> CliResult {
    let yeast_sizes = a.data.join("yeast/sacCer3.chrom.sizes");
    let chr22_sizes = dir.join("chr22.sizes");
    std::fs::write(&chr22_sizes, format!("chr22\t{CHR22_LEN}\n"))
        .map_err(|e| format!("{}: {e}", chr22_sizes.display()))?;
    let yeast_frags = a.data.join("yeast/yeast_500k_SRR1822137.frag.gz");
    let sc_frags = a.data.join("chr22_scatac/fragments.tsv.gz");
    let all_inputs: [(&str, &Path, &Path, CoverageOptions); 3] = [
        (
            "yeast-1pct",
            &yeast_frags,
            &yeast_sizes,
            CoverageOptions { subsample: Some(0.01), seed: a.seed, ..Default::default() },
        ),
        (
            "chr22-1cell",
            &sc_frags,
            &chr22_sizes,
            CoverageOptions { cells: CellSelection::Sample(1), seed: a.seed, ..Default::default() },
        ),
        (
            "chr22-10cells",
            &sc_frags,
            &chr22_sizes,
            CoverageOptions { cells: CellSelection::Sample(10), seed: a.seed, ..Default::default() },
        ),
    ];
    if let Some(bad) = a.inputs.iter().find(|i| !all_inputs.iter().any(|(n, ..)| n == i)) {
        return Err(format!("--inputs {bad}: one of yeast-1pct, chr22-1cell, chr22-10cells").into());
    }
    let models = if a.models.is_empty() { vec![ModelSize::Atacworks, ModelSize::Demo] } else { a.models.clone() };
    println!(
        "{:<14} {:<10} {:>12} {:>7} {:>8} {:>9} {:>9} {:>8} {:>7} {:>9} {:>10}",
        "input", "model", "bases", "f", "network", "dense s", "skip s", "speed-up", "1/f", "of ideal", "identical"
    );
    for (name, frags, sizes_path, opts) in &all_inputs {
        if !a.inputs.is_empty() && !a.inputs.iter().any(|i| i == name) {
            continue;
        }
        let sizes = ChromSizes::read(sizes_path)?;
        let (track, _) = coverage_from_fragments(frags, &sizes, opts, &mut |_| {})?;
        let noisy = dir.join(format!("{name}.bw"));
        write_bigwig(&noisy, &track, rayon::current_num_threads())?;
        // The bigWig's cached shard, built before either run is timed.
        chromax::data::open_coverage(&noisy, &sizes, "noisy track")?;
        for &model in &models {
            let (cfg, interval, pad) = match model {
                ModelSize::Atacworks => (DenoiseConfig::default(), 50_000, 5_000),
                ModelSize::Demo => (DenoiseConfig::demo(), 10_000, 1_000),
            };
            let model_dir = dir.join(format!("model-{model:?}"));
            if !model_dir.exists() {
                std::fs::create_dir_all(&model_dir).map_err(|e| format!("{}: {e}", model_dir.display()))?;
                let net = DenoiseNet::new(backend, cfg, a.seed)?;
                let config = ModelConfig::new(cfg, interval, pad, Vec::new(), serde_json::Value::Null);
                write_model(backend, &model_dir, &config, &net)?;
            }
            let go = |dense: bool| -> Result<RunSummary, chromax::Error> {
                let opts = RunOptions {
                    model: model_dir.clone(),
                    noisy: noisy.clone(),
                    extra_tracks: Vec::new(),
                    genome: Some(sizes_path.to_path_buf()),
                    regions: Vec::new(),
                    prefix: dir.join(format!("{name}-{model:?}-{}", if dense { "dense" } else { "skip" })),
                    round: None,
                    peaks: ProbPeakOptions::default(),
                    probabilities: true,
                    batch: a.batch,
                    dense,
                };
                run(backend, &opts, &mut |_, _| {})
            };
            let dense = go(true)?;
            let mut skip = go(false)?;
            // A skipping run under a second is timed five times and its median kept: the
            // spread of a single short run on a shared machine is ±20%.
            if skip.seconds < 1.0 {
                let mut times = vec![skip.seconds];
                for _ in 0..4 {
                    times.push(go(false)?.seconds);
                }
                times.sort_by(f64::total_cmp);
                skip.seconds = times[times.len() / 2];
            }
            let mut difference = None;
            for (d, s) in dense.outputs.iter().zip(&skip.outputs) {
                if difference.is_none() {
                    difference = first_difference(d, s)?;
                }
            }
            let identical = difference.is_none();
            for p in dense.outputs.iter().chain(&skip.outputs) {
                let _ = std::fs::remove_file(p);
            }
            let w = skip.work;
            let f = w.signal_bases as f64 / w.bases.max(1) as f64;
            let speedup = dense.seconds / skip.seconds.max(1e-9);
            let ideal = 1.0 / f.max(1e-9);
            println!(
                "{:<14} {:<10} {:>12} {:>6.1}% {:>7.1}% {:>9.2} {:>9.2} {:>7.1}× {:>6.1}× {:>8.0}% {:>10}",
                name,
                format!("{model:?}"),
                w.bases,
                100.0 * f,
                100.0 * w.network_bases as f64 / w.bases.max(1) as f64,
                dense.seconds,
                skip.seconds,
                speedup,
                ideal,
                100.0 * speedup / ideal,
                if !skip.skipping {
                    "(dense)"
                } else if identical {
                    "yes"
                } else {
                    "NO"
                }
            );
            if skip.skipping && !identical {
                return Err(format!(
                    "{name}, {model:?} model: skipping changed the output: {}",
                    difference.unwrap_or_default()
                )
                .into());
            }
        }
    }
    Ok(())
}

/// The first difference between two outputs of `denoise run`, if any: bigWigs base by base,
/// value bits included (runs may be cut at different places); narrowPeak files byte for byte.
pub fn first_difference(a: &Path, b: &Path) -> Result<Option<String>, chromax::Error> {
    if a.extension().is_some_and(|e| e == "bw") {
        let (x, y) = (read_bigwig(a, None)?, read_bigwig(b, None)?);
        if x.sizes() != y.sizes() {
            return Ok(Some("different chromosomes".into()));
        }
        const BLOCK: u64 = 1 << 20;
        let (mut p, mut q) = (vec![0.0f32; BLOCK as usize], vec![0.0f32; BLOCK as usize]);
        for c in 0..x.sizes().len() {
            let len = x.sizes().length(c);
            let mut at = 0;
            while at < len {
                let n = BLOCK.min(len - at) as usize;
                x.fill(c, at, &mut p[..n]);
                y.fill(c, at, &mut q[..n]);
                if let Some(i) = (0..n).find(|&i| p[i].to_bits() != q[i].to_bits()) {
                    return Ok(Some(format!(
                        "{} {}:{}: {} vs {}",
                        a.display(),
                        x.sizes().name(c),
                        at + i as u64 + 1,
                        p[i],
                        q[i]
                    )));
                }
                at += n as u64;
            }
        }
        Ok(None)
    } else {
        let same = std::fs::read(a).ok() == std::fs::read(b).ok();
        Ok((!same).then(|| format!("{}: the files differ", a.display())))
    }
}
