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
use chromax::models::{SeqBatch, SeqConfig};
use chromax::nn::download_f32;
use chromax::on_backend;
use chromax::sc::data::{load_sc_data, ScData};
use chromax::sc::model::load_seq_model;
use chromax::sc::synth::{
    write_synthetic, write_synthetic_input, InputForm, SynthSpec, SYNTH_GENOME, SYNTH_MATRIX, SYNTH_PEAKS,
};
use chromax::sc::train::{train_seq, ScEpochRecord, ScTrainEvent, ScTrainOptions};
use chromax::train::Event;
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
    /// Also time inference after training: eval-mode forward of the trunk and the head
    /// (probabilities for every cell) over this many batches of peaks.
    #[arg(long, value_name = "BATCHES")]
    pub infer: Option<usize>,
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
    /// Write the matrix as a user has it (streamed, cell by cell) instead of the store, then
    /// convert it into the store as `sc store` does (timed, with its peak host memory), then
    /// train from the store. Needs --dir, which keeps the files.
    #[arg(long, value_enum, value_name = "FORM", requires = "dir")]
    pub write_input: Option<InputFormArg>,
    /// With --write-input: use the input already written in --dir (same shape) instead of
    /// writing it again, and the store converted from it, if there is one (delete
    /// matrix.cxmatrix to time the conversion again).
    #[arg(long, requires = "write_input")]
    pub reuse_input: bool,
    /// Host memory for the conversion (--write-input): bytes or K, M, G.
    #[arg(long, default_value = "1G", value_parser = chromax::sc::convert::parse_memory)]
    pub memory: u64,
    /// Train only this many steps (no validation, no checkpoint) and project an epoch from
    /// their rate; 0 converts only.
    #[arg(long)]
    pub steps: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormArg {
    H5ad,
    #[value(name = "10x")]
    Tenx,
    Mtx,
}

impl InputFormArg {
    fn form(self) -> InputForm {
        match self {
            InputFormArg::H5ad => InputForm::H5ad,
            InputFormArg::Tenx => InputForm::Tenx,
            InputFormArg::Mtx => InputForm::Mtx,
        }
    }
}

/// Bytes a file or a directory's files take.
fn bytes_on_disk(path: &Path) -> u64 {
    match std::fs::read_dir(path) {
        Ok(dir) => dir.flatten().map(|e| bytes_on_disk(&e.path())).sum(),
        Err(_) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    }
}

/// Writes the synthetic input in `form` (unless reused), converts it into the store within
/// `memory`, and says what each took. Returns the store's path and non-zeros.
fn write_and_convert(a: &ScBenchArgs, form: InputForm, dir: &Path) -> Result<(PathBuf, u64), chromax::Error> {
    use chromax::sc::convert::{convert_matrix, show_bytes, Filters};
    let spec = SynthSpec { cells: a.cells, peaks: a.peaks, density: a.density, seed: a.seed };
    let input = dir.join(form.file_name());
    if a.reuse_input && input.exists() {
        eprintln!("input: reusing {} ({})", input.display(), show_bytes(bytes_on_disk(&input)));
    } else {
        let t = Instant::now();
        let (_, nnz) = write_synthetic_input(&spec, form, dir)?;
        let s = t.elapsed().as_secs_f64();
        let bytes = bytes_on_disk(&input);
        println!(
            "input written: {} ({} peaks × {} cells, {} non-zeros, {}) in {s:.1} s ({:.0} MB/s)",
            input.display(),
            thousands(a.peaks as u64),
            thousands(a.cells as u64),
            thousands(nnz),
            show_bytes(bytes),
            bytes as f64 / 1e6 / s.max(1e-9)
        );
    }
    let store = dir.join(SYNTH_MATRIX);
    if a.reuse_input {
        if let Ok(m) = chromax::store::matrix::CellMatrix::open(&store) {
            eprintln!("store: reusing {}", store.display());
            return Ok((store, m.indices().len() as u64));
        }
    }
    let peaks = chromax::io::bed::read_intervals(&dir.join(SYNTH_PEAKS))?;
    let reset = reset_peak_rss();
    let before = rss();
    let t = Instant::now();
    let filters = Filters { min_cells_per_peak: 1, min_peaks_per_cell: 1 };
    let c = convert_matrix(&input, &peaks, &dir.join(SYNTH_PEAKS), filters, a.memory, &store)?;
    let s = t.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds();
    println!(
        "conversion into the store: {s:.1} s ({:.1} M non-zeros/s; {} passes over the {} input, {} s each, then \
         the hash {} s; {} writes), store {}; peak host RSS {} ({} before, budget {}){}{}",
        c.nnz as f64 / 1e6 / s.max(1e-9),
        c.passes,
        c.order,
        c.pass_seconds[..c.passes].iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" + "),
        c.pass_seconds.last().map_or("-".into(), |t| format!("{t:.1}")),
        thousands(c.writes),
        show_bytes(bytes_on_disk(&store)),
        if reset { peak_rss().map_or("-".into(), show_bytes) } else { "- (could not reset the peak)".into() },
        before.map_or("-".into(), show_bytes),
        show_bytes(a.memory),
        if c.temporary_bytes > 0 {
            format!(", temporary file {}", show_bytes(c.temporary_bytes))
        } else {
            String::new()
        },
        cpu.map_or(String::new(), |cpu| format!("; process CPU time so far {cpu:.1} s"))
    );
    Ok((store, c.nnz))
}

/// User + system CPU seconds of this process so far (/proc/self/stat).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// A `kB` line of /proc/self/status, in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set of this process (VmHWM), in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Resident set of this process now (VmRSS), in bytes.
pub(crate) fn rss() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// Starts the peak resident set (VmHWM) again from the current one (Linux ≥ 4.0), so that
/// the peaks of a run's phases are measured apart. `false` where it cannot.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn run(a: &ScBenchArgs) -> CliResult {
    if a.cells == 0 || a.peaks < 20 || !(a.density > 0.0 && a.density <= 0.5) {
        return Err("--cells ≥ 1, --peaks ≥ 20 and --density in (0, 0.5]".into());
    }
    let (dir, temporary) = match &a.dir {
        Some(d) => {
            if !a.reuse_input && std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()) {
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
    let (matrix, nnz) = match a.write_input {
        Some(form) => write_and_convert(a, form.form(), &dir)?,
        None => {
            let t = Instant::now();
            let spec = SynthSpec { cells: a.cells, peaks: a.peaks, density: a.density, seed: a.seed };
            let nnz = write_synthetic(&spec, &dir)?;
            let write_s = t.elapsed().as_secs_f64();
            eprintln!(
                "synthetic inputs: {} peaks × {} cells, {} non-zeros ({:.2}%), written in {write_s:.1} s to {}",
                thousands(a.peaks as u64),
                thousands(a.cells as u64),
                thousands(nnz),
                100.0 * nnz as f64 / (a.peaks as f64 * a.cells as f64),
                dir.display()
            );
            (dir.join(SYNTH_MATRIX), nnz)
        }
    };
    if a.steps == Some(0) {
        return Ok(());
    }
    let compute = select(a.device.as_deref(), a.precision)?;
    let opts = ScTrainOptions {
        peaks: dir.join(SYNTH_PEAKS),
        genome: dir.join(SYNTH_GENOME),
        matrix,
        max_steps: a.steps,
        batch: a.batch,
        epochs: a.epochs,
        seed: a.seed,
        patience: usize::MAX,
        model,
        bf16_products: compute.seqnet_bf16(),
        ..ScTrainOptions::default()
    };
    let reset = reset_peak_rss();
    let t = Instant::now();
    let data = load_sc_data(&opts)?;
    let load_s = t.elapsed().as_secs_f64();
    let compute_kind = if matches!(compute, chromax::backend::Compute::Cpu(_)) { "cpu" } else { "cuda" };
    let result = on_backend!(compute, b => bench_train(b, &data, &opts, &dir.join("model"), a.infer));
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (records, min_free, start_free, infer, steps) = result?;
    let flop_per_peak = 3.0 * opts.model.flops_per_sequence() + 3.0 * 2.0 * 32.0 * a.cells as f64;
    println!(
        "SeqNet (scBasset, {} parameters), batch {}, {} peaks × {} cells at {:.2}% density; data loaded in {load_s:.1} s",
        thousands(SeqConfig::scbasset(a.cells).param_count() as u64),
        a.batch,
        thousands(a.peaks as u64),
        thousands(a.cells as u64),
        100.0 * nnz as f64 / (a.peaks as f64 * a.cells as f64),
    );
    let peak = matches!(compute_kind, "cpu").then(|| chromax::backend::cpu::direct::measured_fma_peak(0.5));
    if let Some(peak) = peak {
        println!("CPU FMA roof, measured on {} threads: {peak:.0} GFLOP/s", rayon::current_num_threads());
    }
    let share = |gflops: f64| peak.map_or(String::new(), |p| format!("{:>7.1}% of roof", 100.0 * gflops / p));
    println!("{:>6} {:>12} {:>14} {:>22} {:>12}", "epoch", "train s", "s incl. val", "peaks (sequences)/s", "GFLOP/s");
    for r in &records {
        let train_peaks = r.peaks_per_second;
        let train_s = (a.peaks as f64 * 0.9) / train_peaks.max(1e-9);
        println!(
            "{:>6} {:>12.2} {:>14.2} {:>22.1} {:>12.1} {}",
            r.epoch,
            train_s,
            r.seconds,
            train_peaks,
            train_peaks * flop_per_peak / 1e9,
            share(train_peaks * flop_per_peak / 1e9)
        );
    }
    if let (Some(min), Some(start)) = (min_free, start_free) {
        println!("peak device memory used by training: {:.2} GB", (start.saturating_sub(min)) as f64 / 1e9);
    } else {
        println!("peak device memory: - (CPU)");
    }
    let infer_rate = infer.map(|(n, s)| n as f64 / s);
    if let (Some(rate), Some((n, _))) = (infer_rate, infer) {
        let gflops = rate * (opts.model.flops_per_sequence() + 2.0 * 32.0 * a.cells as f64) / 1e9;
        println!(
            "inference (eval-mode trunk + head, probabilities for {} cells): {rate:.1} peaks/s, {gflops:.1} GFLOP/s{} over {n} peaks",
            thousands(a.cells as u64),
            share(gflops)
        );
    }
    if let Some((n, rate)) = steps.filter(|_| a.steps.is_some()) {
        let train_peaks = data.n_peaks() as f64 * 0.9;
        println!(
            "{n} training steps: {rate:.2} peaks/s ({:.3} steps/s, {:.1} GFLOP/s{}); an epoch of {} training peaks: {:.1} min projected",
            rate / a.batch as f64,
            rate * flop_per_peak / 1e9,
            share(rate * flop_per_peak / 1e9),
            thousands(train_peaks as u64),
            train_peaks / rate.max(1e-9) / 60.0
        );
    }
    if let Some(rss) = peak_rss() {
        println!(
            "peak host RSS: {:.2} GB{}; at the end {:.2} GB anonymous, {:.2} GB of mapped files",
            rss as f64 / 1e9,
            if reset { " (loading the data and training)" } else { "" },
            status_bytes("RssAnon:").unwrap_or(0) as f64 / 1e9,
            status_bytes("RssFile:").unwrap_or(0) as f64 / 1e9
        );
    }
    if a.json {
        let train = records.last().map(|r| r.peaks_per_second);
        println!(
            "{}",
            serde_json::json!({
                "cells": a.cells, "batch": a.batch, "train_seqs_per_s": train, "infer_seqs_per_s": infer_rate,
                "train_flop_per_seq": flop_per_peak,
                "infer_flop_per_seq": opts.model.flops_per_sequence() + 2.0 * 32.0 * a.cells as f64,
                "roof_gflops": peak,
            })
        );
    }
    Ok(())
}

/// Records, lowest and starting free device memory, inference (peaks, seconds), and the
/// steps taken with the last rate (peaks/s).
type BenchOutcome = (Vec<ScEpochRecord>, Option<usize>, Option<usize>, Option<(usize, f64)>, Option<(usize, f64)>);

/// Times `batches` batches of inference on the trained model: (peaks, seconds), after one
/// untimed batch.
fn bench_infer<B: Backend>(
    backend: &B,
    data: &ScData,
    model_dir: &Path,
    batch: usize,
    batches: usize,
) -> Result<(usize, f64), chromax::Error> {
    let (net, _, _) = load_seq_model(backend, model_dir)?;
    let n_peaks = data.n_peaks();
    let run = |first: usize| -> Result<usize, chromax::Error> {
        let peaks: Vec<usize> = (first..first + batch).map(|p| p % n_peaks).collect();
        let codes: Vec<u8> = peaks.iter().flat_map(|&p| data.window(p).iter().copied()).collect();
        let (reverse, shift) = (vec![false; peaks.len()], vec![0i32; peaks.len()]);
        let probs = net.predict(backend, &SeqBatch { codes: &codes, reverse: &reverse, shift: &shift })?;
        let host = download_f32(backend, &probs)?;
        debug_assert_eq!(host.len(), peaks.len() * net.config.cells);
        Ok(peaks.len())
    };
    run(0)?;
    let t = Instant::now();
    let mut done = 0;
    for i in 0..batches {
        done += run((i + 1) * batch)?;
    }
    Ok((done, t.elapsed().as_secs_f64()))
}

fn bench_train<B: Backend>(
    backend: &B,
    data: &ScData,
    opts: &ScTrainOptions,
    out: &Path,
    infer: Option<usize>,
) -> Result<BenchOutcome, chromax::Error> {
    let _ = std::fs::remove_dir_all(out);
    let start_free = backend.free_memory();
    let mut min_free = start_free;
    let mut steps = None;
    let mut report = |e: ScTrainEvent| {
        if let Event::Batch { done, per_second, .. } = e {
            steps = Some((done, per_second));
            if let Some(f) = backend.free_memory() {
                min_free = Some(min_free.map_or(f, |m| m.min(f)));
            }
        }
        if let Event::Epoch(r) = e {
            eprintln!(
                "epoch {}: {:.1} s, {:.1} peaks/s, train AUROC {:.4}, val AUROC {:.4}",
                r.epoch, r.seconds, r.peaks_per_second, r.train_auroc, r.val_auroc
            );
        }
    };
    let records = train_seq(backend, data, opts, out, false, &mut report)?;
    let infer = match infer.filter(|_| opts.max_steps.is_none()) {
        Some(batches) if batches > 0 => Some(bench_infer(backend, data, out, opts.batch, batches)?),
        _ => None,
    };
    Ok((records, min_free, start_free, infer, steps))
}
