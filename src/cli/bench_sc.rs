//! `chromax bench sc`: SeqNet training throughput on a synthetic peak-by-cell matrix.
//!
//! Writes a random genome (FASTA), peaks and a binary matrix of the requested shape and
//! density in the store's own format (cells with a log-normal depth spread, peaks with a
//! log-normal popularity spread), then trains from them through the same path as real data
//! (`load_sc_data` + `train_seq`): seconds per epoch, peaks/s, achieved FLOP/s, peak device
//! memory and peak host RSS.

use super::device::select;
use super::progress::thousands;
use super::CliResult;
use chromax::backend::Backend;
use chromax::models::SeqConfig;
use chromax::on_backend;
use chromax::rng::{mix, unit};
use chromax::store::matrix::write_binary_rows;
use chromax::train::seq::{load_sc_data, train_seq, ScTrainEvent, ScTrainOptions};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct ScBenchArgs {
    #[arg(long, default_value_t = 10_000)]
    pub cells: usize,
    #[arg(long, default_value_t = 2_000)]
    pub peaks: usize,
    /// Fraction of (peak, cell) pairs that are accessible.
    #[arg(long, default_value_t = 0.03)]
    pub density: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Working directory for the synthetic inputs and the model (default: a temporary one,
    /// removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub device: Option<String>,
}

/// A standard normal from two hashes (Box–Muller).
fn normal(a: u64, b: u64) -> f64 {
    (-2.0 * unit(a).max(1e-300).ln()).sqrt() * (2.0 * std::f64::consts::PI * unit(b)).cos()
}

/// Log-normal factors with mean 1.
fn lognormal_factors(n: usize, sigma: f64, seed: u64) -> Vec<f64> {
    let v: Vec<f64> =
        (0..n as u64).map(|i| (sigma * normal(mix(seed ^ (2 * i)), mix(seed ^ (2 * i + 1)))).exp()).collect();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    v.into_iter().map(|x| x / mean).collect()
}

/// Walker's alias table for drawing cells in proportion to their depth.
struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        let (mut prob, mut alias) = (vec![1.0; n], (0..n as u32).collect::<Vec<_>>());
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Alias { prob, alias }
    }

    fn draw(&self, z: u64) -> u32 {
        let i = (z % self.prob.len() as u64) as usize;
        if unit(mix(z)) < self.prob[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

const SPACING: usize = 1_400;

/// Random genome, peaks and matrix in `dir`; returns the number of non-zeros.
fn write_inputs(a: &ScBenchArgs, dir: &Path) -> CliResult<u64> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| format!("{}: {e}", p.display())
    };
    // Genome: one chromosome, 40% GC, 60 bases per line.
    let fasta = dir.join("genome.fa");
    let len = a.peaks * SPACING;
    let lines: Vec<Vec<u8>> = (0..len.div_ceil(60))
        .into_par_iter()
        .map(|l| {
            let n = 60.min(len - l * 60);
            let mut line: Vec<u8> = (0..n)
                .map(|i| {
                    let u = unit(mix(a.seed ^ mix((l * 60 + i) as u64)));
                    if u < 0.3 {
                        b'A'
                    } else if u < 0.5 {
                        b'C'
                    } else if u < 0.7 {
                        b'G'
                    } else {
                        b'T'
                    }
                })
                .collect();
            line.push(b'\n');
            line
        })
        .collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&fasta).map_err(io(&fasta))?);
    w.write_all(b">synth\n").map_err(io(&fasta))?;
    for l in &lines {
        w.write_all(l).map_err(io(&fasta))?;
    }
    w.flush().map_err(io(&fasta))?;
    drop(lines);
    // Peaks: 500 bp, centred in their SPACING-wide slot.
    let bed = dir.join("peaks.bed");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&bed).map_err(io(&bed))?);
    let mut names = Vec::with_capacity(a.peaks);
    for p in 0..a.peaks {
        let start = p * SPACING + SPACING / 2 - 250;
        writeln!(w, "synth\t{start}\t{}", start + 500).map_err(io(&bed))?;
        names.push(format!("synth:{start}-{}", start + 500));
    }
    w.flush().map_err(io(&bed))?;
    // Matrix: peak p holds k_p ≈ density·cells·g_p cells (g log-normal, capped so no row is
    // more than half full), drawn in proportion to a log-normal per-cell depth.
    let depth = lognormal_factors(a.cells, 0.6, a.seed ^ 0xD3);
    let popularity = lognormal_factors(a.peaks, 0.8, a.seed ^ 0x9E);
    let alias = Alias::new(&depth);
    let n = a.cells as f64;
    let counts: Vec<u64> = (0..a.peaks)
        .map(|p| {
            let mean = (a.density * popularity[p]).min(0.5) * n;
            let k = mean + mean.sqrt() * normal(mix(a.seed ^ 0xC0 ^ mix(p as u64)), mix(a.seed ^ 0xC1 ^ mix(p as u64)));
            (k.round().max(1.0) as u64).min(a.cells as u64)
        })
        .collect();
    let mut indptr = vec![0u64];
    for k in &counts {
        indptr.push(indptr.last().copied().unwrap_or(0) + k);
    }
    let barcodes: Vec<String> = (0..a.cells).map(|c| format!("cell{c}")).collect();
    let seed = a.seed;
    write_binary_rows(&dir.join("matrix.cxmatrix"), &names, &barcodes, &indptr, &|p: usize, out: &mut Vec<u32>| {
        let k = counts[p] as usize;
        let mut seen = std::collections::HashSet::with_capacity(2 * k);
        let mut z = mix(seed ^ 0xAB ^ mix(p as u64 + 1));
        out.clear();
        while out.len() < k {
            z = mix(z);
            let c = alias.draw(z);
            if seen.insert(c) {
                out.push(c);
            }
        }
        out.sort_unstable();
    })?;
    Ok(*indptr.last().unwrap_or(&0))
}

/// Peak resident set of this process (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(a: &ScBenchArgs) -> CliResult {
    if a.cells == 0 || a.peaks < 20 || !(a.density > 0.0 && a.density <= 0.5) {
        return Err("--cells ≥ 1, --peaks ≥ 20 and --density in (0, 0.5]".into());
    }
    let (dir, temporary) = match &a.dir {
        Some(d) => {
            if std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()) {
                return Err(format!(
                    "--dir {}: give a new or empty directory (the bench writes and deletes files there)",
                    d.display()
                )
                .into());
            }
            (d.clone(), false)
        }
        None => (std::env::temp_dir().join(format!("chromax-bench-sc-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let model = SeqConfig::scbasset(a.cells);
    let t = Instant::now();
    let nnz = write_inputs(a, &dir)?;
    let write_s = t.elapsed().as_secs_f64();
    eprintln!(
        "synthetic inputs: {} peaks × {} cells, {} non-zeros ({:.2}%), written in {write_s:.1} s to {}",
        thousands(a.peaks as u64),
        thousands(a.cells as u64),
        thousands(nnz),
        100.0 * nnz as f64 / (a.peaks as f64 * a.cells as f64),
        dir.display()
    );
    let opts = ScTrainOptions {
        peaks: dir.join("peaks.bed"),
        genome: dir.join("genome.fa"),
        matrix: dir.join("matrix.cxmatrix"),
        batch: a.batch,
        epochs: a.epochs,
        seed: a.seed,
        patience: usize::MAX,
        model,
        ..ScTrainOptions::default()
    };
    let t = Instant::now();
    let data = load_sc_data(&opts)?;
    let load_s = t.elapsed().as_secs_f64();
    let compute = select(a.device.as_deref())?;
    let result = on_backend!(compute, b => bench_train(b, &data, &opts, &dir.join("model")));
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (records, min_free, start_free) = result?;
    let flop_per_peak = 3.0 * opts.model.flops_per_sequence() + 3.0 * 2.0 * 32.0 * a.cells as f64;
    println!(
        "SeqNet (scBasset, {} parameters), batch {}, {} peaks × {} cells at {:.2}% density; data loaded in {load_s:.1} s",
        thousands(SeqConfig::scbasset(a.cells).param_count() as u64),
        a.batch,
        thousands(a.peaks as u64),
        thousands(a.cells as u64),
        100.0 * nnz as f64 / (a.peaks as f64 * a.cells as f64),
    );
    println!("{:>6} {:>12} {:>14} {:>22} {:>12}", "epoch", "train s", "s incl. val", "peaks (sequences)/s", "GFLOP/s");
    for r in &records {
        let train_peaks = r.peaks_per_second;
        let train_s = (a.peaks as f64 * 0.9) / train_peaks.max(1e-9);
        println!(
            "{:>6} {:>12.2} {:>14.2} {:>22.1} {:>12.1}",
            r.epoch,
            train_s,
            r.seconds,
            train_peaks,
            train_peaks * flop_per_peak / 1e9
        );
    }
    if let (Some(min), Some(start)) = (min_free, start_free) {
        println!("peak device memory used by training: {:.2} GB", (start.saturating_sub(min)) as f64 / 1e9);
    } else {
        println!("peak device memory: - (CPU)");
    }
    if let Some(rss) = peak_rss() {
        println!("peak host RSS: {:.2} GB", rss as f64 / 1e9);
    }
    Ok(())
}

type BenchOutcome = (Vec<chromax::train::seq::ScEpochRecord>, Option<usize>, Option<usize>);

fn bench_train<B: Backend>(
    backend: &B,
    data: &chromax::train::seq::ScData,
    opts: &ScTrainOptions,
    out: &Path,
) -> Result<BenchOutcome, chromax::Error> {
    let _ = std::fs::remove_dir_all(out);
    let start_free = backend.free_memory();
    let mut min_free = start_free;
    let mut report = |e: ScTrainEvent| {
        if let ScTrainEvent::Batch { .. } = e {
            if let Some(f) = backend.free_memory() {
                min_free = Some(min_free.map_or(f, |m| m.min(f)));
            }
        }
        if let ScTrainEvent::Epoch(r) = e {
            eprintln!(
                "epoch {}: {:.1} s, {:.1} peaks/s, train AUROC {:.4}, val AUROC {:.4}",
                r.epoch, r.seconds, r.peaks_per_second, r.train_auroc, r.val_auroc
            );
        }
    };
    let records = train_seq(backend, data, opts, out, false, &mut report)?;
    Ok((records, min_free, start_free))
}
