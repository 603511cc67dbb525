//! Training SeqNet on a peak-by-cell matrix (scBasset's task): each peak's DNA in, its binary
//! accessibility in every cell out. The task of the one training loop ([`crate::train::fit`]).
//!
//! * Split: peaks 90/5/5 into train/validation/test by seed, or by chromosome
//!   (`val_chroms`, `test_chroms`). `DIR/peaks.bed` records each peak's split.
//! * Step: one-hot with a random reverse complement and a ±`max_shift` shift (seeded by
//!   step, one draw per batch as scBasset's), SeqNet, the fused sparse head + BCE, backward;
//!   the loop's Adam (scBasset: lr 0.01, β1 0.95, β2 0.9995, ε 1e-7).
//! * Metrics without sorting batch × cells values: the training AUROC (what early stopping
//!   watches, as scBasset's Keras `auc` monitor) and the validation AUROC overall and per
//!   peak come from per-bin counts of the head's logits ([`crate::eval::roc`]); the
//!   validation AUROC per cell is exact, over a seeded sample of up to `auroc_cells` cells.
//! * Checkpoints as every run's ([`crate::train::checkpoint`]): `model.safetensors` holds the
//!   parameters and batch-norm running statistics of the best epoch by training AUROC; the
//!   run also writes `cells.tsv` and `peaks.bed`.

use super::data::{gather, split_peaks, ScData, Split};
use super::model::{ScModelConfig, BATCHES_FILE, CELLS_FILE, PEAKS_FILE};
use crate::backend::{AdamParams, Backend, HeadLogits, HeadRows, SparseHeadParams};
use crate::error::FileError;
use crate::eval::metrics::auroc_auprc;
use crate::eval::roc::{mean_auroc, RocHistogram};
use crate::io::guard::Files;
use crate::models::{SeqBatch, SeqConfig, SeqNet};
use crate::nn::download_f32;
use crate::rng::mix;
use crate::rng::shuffled_for;
use crate::train::{self, Epoch, EpochSummary, FitOptions, Monitor, RunSpec, Step, Task};
use crate::Error;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Steps between releases of a memory-mapped matrix's pages: what one epoch reads of an
/// atlas-sized matrix (16 GB of cell indices at 1.1 M cells × 118 k peaks × 3%) must not all
/// stay resident. A batch's 128 rows are 17 MB of indices, but the kernel maps the page
/// cache's large folios whole on a fault: measured at the atlas's shape, the resident set
/// grew by ≈ 240 MB of mapped file per step (6.48 GB after 16 steps with a release every 32),
/// so the pages go after every step (one madvise, negligible beside a step).
const RELEASE_EVERY: usize = 1;

/// Settings a resumed run may change.
const RESUMABLE: [&str; 4] = ["epochs", "patience", "min_delta", "auroc_cells"];

/// Settings of a single-cell training run (saved in config.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScTrainOptions {
    pub peaks: PathBuf,
    pub genome: PathBuf,
    pub matrix: PathBuf,
    /// Validation (and test) peaks by chromosome instead of by seed.
    pub val_chroms: Vec<String>,
    pub test_chroms: Vec<String>,
    pub val_fraction: f64,
    pub test_fraction: f64,
    pub batch: usize,
    pub epochs: usize,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub adam_eps: f32,
    /// Early stopping: epochs without a training-AUROC gain above `min_delta`.
    pub patience: usize,
    pub min_delta: f64,
    pub seed: u64,
    pub min_cells_per_peak: u32,
    pub min_peaks_per_cell: u32,
    /// Random reverse complement and ±max_shift shifts.
    pub augment: bool,
    pub max_shift: i32,
    /// Cells sampled for the per-cell validation AUROC.
    pub auroc_cells: usize,
    /// The architecture; `cells` (and `batches`) are set from the data.
    pub model: SeqConfig,
    /// Batch correction: the obs column of the .h5ad matrix that names each cell's batch.
    #[serde(default)]
    pub batch_key: Option<String>,
    /// Batch correction: a barcode<TAB>batch file instead.
    #[serde(default)]
    pub batches_file: Option<PathBuf>,
    /// L2 penalty on the cell embeddings, λ·Σw² (Keras' `l2`, as scBasset's); 0 = none.
    #[serde(default)]
    pub l2: f64,
    /// The convolutions' products were bf16 (`--bf16`; the backend decides, this records it
    /// so that a resume in the other precision is refused). Absent from f32 runs' settings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bf16_products: bool,
    /// Host memory the matrix's conversion into the store may use (`--memory`): how the data
    /// is read, not what is trained, so not a setting of the run.
    #[serde(skip, default = "default_matrix_memory")]
    pub matrix_memory: u64,
    /// Stop after this many training steps, before any validation or checkpoint (`bench sc
    /// --steps`); not a setting of the run.
    #[serde(skip)]
    pub max_steps: Option<u64>,
}

fn default_matrix_memory() -> u64 {
    crate::sc::convert::DEFAULT_MEMORY
}

impl Default for ScTrainOptions {
    /// scBasset's settings.
    fn default() -> Self {
        ScTrainOptions {
            peaks: PathBuf::new(),
            genome: PathBuf::new(),
            matrix: PathBuf::new(),
            val_chroms: Vec::new(),
            test_chroms: Vec::new(),
            val_fraction: 0.05,
            test_fraction: 0.05,
            batch: 128,
            epochs: 1000,
            lr: 0.01,
            beta1: 0.95,
            beta2: 0.9995,
            adam_eps: 1e-7,
            patience: 50,
            min_delta: 1e-6,
            seed: 10,
            min_cells_per_peak: 1,
            min_peaks_per_cell: 1,
            augment: true,
            max_shift: 3,
            auroc_cells: 1000,
            model: SeqConfig::scbasset(1),
            batch_key: None,
            batches_file: None,
            l2: 0.0,
            bf16_products: false,
            matrix_memory: default_matrix_memory(),
            max_steps: None,
        }
    }
}

/// One line of train_log.tsv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScEpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_auroc: f64,
    pub val_loss: f64,
    pub val_auroc: f64,
    pub val_auroc_per_peak: f64,
    pub val_auroc_per_cell: f64,
    pub seconds: f64,
    pub peaks_per_second: f64,
    pub best: bool,
}

impl train::EpochRecord for ScEpochRecord {
    fn header() -> &'static str {
        "epoch\ttrain_loss\ttrain_auroc\tval_loss\tval_auroc\tval_auroc_per_peak\tval_auroc_per_cell\tseconds\tpeaks_per_s\tbest"
    }

    fn line(&self) -> String {
        let r = self;
        format!(
            "{}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.1}\t{:.1}\t{}",
            r.epoch,
            r.train_loss,
            r.train_auroc,
            r.val_loss,
            r.val_auroc,
            r.val_auroc_per_peak,
            r.val_auroc_per_cell,
            r.seconds,
            r.peaks_per_second,
            if r.best { "*" } else { "" }
        )
    }

    fn mark_best(&mut self, best: bool) {
        self.best = best;
    }
}

/// What a run trains on, for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScDataSummary {
    pub peaks: usize,
    pub cells: usize,
    pub nnz: usize,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub params: usize,
}

/// What training reports as it goes.
pub type ScTrainEvent = train::Event<ScDataSummary, ScEpochRecord>;

/// Up to `n` cells, seeded, sorted.
fn sample_cells(cells: usize, n: usize, seed: u64) -> Vec<u32> {
    let all: Vec<u32> = (0..cells as u32).collect();
    if cells <= n {
        return all;
    }
    let mut v: Vec<u32> = shuffled_for(&all, seed ^ 0xCE11_5A3E, 0).into_iter().take(n).collect();
    v.sort_unstable();
    v
}

/// Validation metrics of one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScMetrics {
    pub loss: f64,
    pub auroc: f64,
    pub auroc_per_peak: f64,
    pub auroc_per_cell: f64,
}

/// Loss and AUROCs of the model (inference mode) on `peaks`: overall and per peak from
/// histograms over every cell; per cell exact over `cells`.
pub fn evaluate<B: Backend>(
    backend: &B,
    net: &mut SeqNet<B>,
    data: &ScData,
    peaks: &[usize],
    batch: usize,
    cells: &[u32],
) -> Result<ScMetrics, Error> {
    let dim = net.config.bottleneck;
    let n_cells = net.config.cells;
    data.validate()?;
    if batch == 0
        || data.n_cells() != n_cells
        || peaks.iter().any(|&p| p >= data.n_peaks())
        || cells.iter().any(|&c| c as usize >= n_cells)
    {
        return Err(FileError::Argument(format!(
            "evaluate: batch {batch} must be ≥ 1, the data must have the model's {n_cells} cells, and peaks and cells must index it"
        ))
        .into());
    }
    let (mut loss_sum, mut overall) = (0.0f64, RocHistogram::default());
    let mut per_peak = Vec::with_capacity(peaks.len());
    let mut z_all = Vec::with_capacity(peaks.len() * dim);
    // The weights do not change during evaluation: the batch-corrected ones once.
    let effective = net.batch_head_weights(backend)?;
    for chunk in peaks.chunks(batch) {
        let hb = gather(data, chunk, None)?;
        let seqs = SeqBatch { codes: &hb.codes, reverse: &hb.reverse, shift: &hb.shift };
        let z = net.embed_peaks(backend, &seqs)?;
        // One upload of the batch's rows for the head and its histogram.
        let on_device = backend.upload_rows(&hb.indptr, &hb.indices)?;
        let rows = HeadRows::with_device(&hb.indptr, &hb.indices, &on_device);
        let (loss, _) = net.head_loss_with(backend, &z, effective.as_ref(), &rows)?;
        loss_sum += loss * chunk.len() as f64;
        let p = SparseHeadParams { batch: chunk.len(), cells: n_cells, dim };
        let (w, bias) = (effective.as_ref().unwrap_or(&net.head_w.value), &net.head_b.value);
        let counts = backend.head_roc_histogram(&p, HeadLogits { z: &z, w, bias, rows: &rows }, true)?;
        for block in counts.chunks(2 * crate::backend::ROC_BINS) {
            let h = RocHistogram::from_counts(block);
            overall.add(&h);
            per_peak.push(h);
        }
        z_all.extend(download_f32(backend, &z)?);
    }
    let w = download_f32(backend, effective.as_ref().unwrap_or(&net.head_w.value))?;
    let b = download_f32(backend, &net.head_b.value)?;
    let per_cell: Vec<f64> = cells
        .par_iter()
        .map(|&c| {
            let c = c as usize;
            let wc = &w[c * dim..(c + 1) * dim];
            let scores: Vec<f32> =
                z_all.chunks(dim).map(|z| z.iter().zip(wc).map(|(a, b)| a * b).sum::<f32>() + b[c]).collect();
            let labels: Vec<f32> = peaks
                .iter()
                .map(|&p| if data.rows.row(p).binary_search(&(c as u32)).is_ok() { 1.0 } else { 0.0 })
                .collect();
            auroc_auprc(&scores, &labels).0
        })
        .collect();
    let finite: Vec<f64> = per_cell.into_iter().filter(|a| a.is_finite()).collect();
    Ok(ScMetrics {
        loss: loss_sum / peaks.len().max(1) as f64,
        auroc: overall.auroc(),
        auroc_per_peak: mean_auroc(&per_peak).0,
        auroc_per_cell: if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 },
    })
}

/// Each cell's log-odds of being accessible in a training peak (the head's starting biases).
fn depth_intercepts(data: &ScData, train: &[usize]) -> Vec<f32> {
    let mut counts = vec![0u64; data.n_cells()];
    data.rows.walk(train.iter().copied(), |_, cells| {
        for &c in cells {
            counts[c as usize] += 1;
        }
    });
    let n = train.len() as f64;
    counts.iter().map(|&k| ((k as f64 + 0.5) / (n - k as f64 + 0.5)).ln() as f32).collect()
}

/// `peaks.bed` of a model directory: each peak with its split.
fn peak_split_lines(data: &ScData, split: &[Split]) -> Vec<String> {
    data.peaks.iter().zip(split).map(|(p, s)| format!("{}\t{}\t{}\t{}", p.chrom, p.start, p.end, s.name())).collect()
}

/// Training sums of an epoch: the histogram of the head's training logits, and the batches
/// seen (for releasing the matrix's pages).
#[derive(Default)]
pub struct ScSums {
    hist: RocHistogram,
    batches: usize,
}

/// SeqNet on a matrix as a task of the training loop.
pub struct ScTask<'a> {
    data: &'a ScData,
    opts: &'a ScTrainOptions,
    train: Vec<usize>,
    val: Vec<usize>,
    auroc_cells: Vec<u32>,
}

impl<B: Backend> Task<B> for ScTask<'_> {
    type Net = SeqNet<B>;
    type Batch = Vec<usize>;
    type Metrics = ScSums;
    type Record = ScEpochRecord;

    fn epoch(&self, _backend: &B, epoch: usize) -> Result<Epoch<'_, Vec<usize>>, Error> {
        let order = shuffled_for(&self.train, self.opts.seed, epoch);
        let batches: Vec<Vec<usize>> = order.chunks(self.opts.batch).map(<[usize]>::to_vec).collect();
        Ok(Epoch { total: batches.len(), batches: Box::new(batches.into_iter().map(Ok)) })
    }

    fn step(
        &self,
        backend: &B,
        net: &mut SeqNet<B>,
        peaks: Vec<usize>,
        step: u64,
        sums: &mut ScSums,
    ) -> Result<Step, Error> {
        let step_seed = mix(self.opts.seed ^ mix(step));
        let hb = gather(self.data, &peaks, self.opts.augment.then_some((step_seed, self.opts.max_shift)))?;
        let seqs = SeqBatch { codes: &hb.codes, reverse: &hb.reverse, shift: &hb.shift };
        let (z, cache) = net.forward_train(backend, &seqs, step_seed)?;
        let effective = net.batch_head_weights(backend)?;
        // One upload of the batch's rows for the head and its histogram.
        let on_device = backend.upload_rows(&hb.indptr, &hb.indices)?;
        let rows = HeadRows::with_device(&hb.indptr, &hb.indices, &on_device);
        let (loss, dz) = net.head_loss_with(backend, &z, effective.as_ref(), &rows)?;
        let p = SparseHeadParams { batch: peaks.len(), cells: net.config.cells, dim: net.config.bottleneck };
        let logits = HeadLogits {
            z: &z,
            w: effective.as_ref().unwrap_or(&net.head_w.value),
            bias: &net.head_b.value,
            rows: &rows,
        };
        sums.hist.add_counts(&backend.head_roc_histogram(&p, logits, false)?);
        net.backward(backend, cache, &dz)?;
        sums.batches += 1;
        if sums.batches.is_multiple_of(RELEASE_EVERY) {
            self.data.rows.release_pages();
        }
        Ok(Step { loss, units: peaks.len() as u64 })
    }

    fn finish_epoch(
        &self,
        backend: &B,
        net: &mut SeqNet<B>,
        sums: ScSums,
        s: &EpochSummary,
    ) -> Result<(ScEpochRecord, f64), Error> {
        let v = evaluate(backend, net, self.data, &self.val, self.opts.batch, &self.auroc_cells)?;
        let train_auroc = sums.hist.auroc();
        let record = ScEpochRecord {
            epoch: s.epoch,
            train_loss: s.mean_loss,
            train_auroc,
            val_loss: v.loss,
            val_auroc: v.auroc,
            val_auroc_per_peak: v.auroc_per_peak,
            val_auroc_per_cell: v.auroc_per_cell,
            seconds: s.started.elapsed().as_secs_f64(),
            peaks_per_second: s.units as f64 / s.train_seconds.max(1e-9),
            best: false,
        };
        Ok((record, train_auroc))
    }

    fn weight_decay(&self, param: &str) -> f32 {
        if param == "head.weight" {
            (2.0 * self.opts.l2) as f32
        } else {
            0.0
        }
    }
}

/// Refuses an output directory `out` where a run would write over a file it reads (the
/// peaks, the genome, the matrix or a file of a Matrix Market directory): call it before
/// reading the data; [`train_seq`] calls it too.
pub fn check_run_dir(opts: &ScTrainOptions, out: &Path) -> Result<(), FileError> {
    let matrix_files: Vec<PathBuf> = match std::fs::read_dir(&opts.matrix) {
        Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => vec![opts.matrix.clone()],
    };
    let reads =
        Files::new().input("--peaks", &opts.peaks).input("--genome", &opts.genome).inputs("--matrix", matrix_files);
    let reads = reads.inputs("--batches", &opts.batches_file);
    train::check_run_files(out, &[CELLS_FILE, PEAKS_FILE, BATCHES_FILE], reads)
}

/// Trains (or resumes) a SeqNet on `data`; returns the epoch records.
pub fn train_seq<B: Backend>(
    backend: &B,
    data: &ScData,
    opts: &ScTrainOptions,
    out: &Path,
    resume: bool,
    events: &mut dyn FnMut(ScTrainEvent),
) -> Result<Vec<ScEpochRecord>, Error> {
    check_run_dir(opts, out)?;
    if opts.batch == 0 {
        return Err(FileError::Argument("--batch must be at least 1".into()).into());
    }
    if opts.max_shift < 0 || opts.max_shift as usize >= opts.model.seq_len {
        return Err(FileError::Argument(format!(
            "--max-shift {} must be in 0..{}",
            opts.max_shift, opts.model.seq_len
        ))
        .into());
    }
    data.validate()?;
    let lr_ok = opts.lr.is_finite() && opts.lr > 0.0;
    if !lr_ok || opts.min_delta.is_nan() || opts.min_delta < 0.0 {
        return Err(FileError::Argument(format!(
            "--lr {} must be positive and --min-delta {} non-negative",
            opts.lr, opts.min_delta
        ))
        .into());
    }
    if !(opts.l2.is_finite() && opts.l2 >= 0.0) {
        return Err(FileError::Argument(format!("--l2 {} must be a number ≥ 0", opts.l2)).into());
    }
    let batches = data.batches.as_ref().map_or(0, |b| b.names.len());
    let model_cfg = SeqConfig { cells: data.n_cells(), batches, ..opts.model.clone() };
    model_cfg.validate().map_err(FileError::Argument)?;
    if data.seq_len != model_cfg.seq_len {
        return Err(FileError::Argument(format!(
            "the data's windows are {} bp, the model's {} bp",
            data.seq_len, model_cfg.seq_len
        ))
        .into());
    }
    let split = split_peaks(&data.peaks, opts)?;
    let of = |s: Split| -> Vec<usize> { (0..split.len()).filter(|&i| split[i] == s).collect() };
    let (train, val, test) = (of(Split::Train), of(Split::Val), of(Split::Test));
    if backend.free_memory().is_none() {
        let batch = opts.batch.min(train.len().max(val.len()).max(1));
        let per_sequence = model_cfg.train_bytes_per_sequence() as u64;
        crate::backend::cpu::check_host_memory("one training step's activations", batch, per_sequence)
            .map_err(FileError::Argument)?;
    }
    if train.is_empty() || val.is_empty() {
        return Err(FileError::Argument(format!(
            "{} training and {} validation peaks: both need at least one",
            train.len(),
            val.len()
        ))
        .into());
    }

    // Data read from files is known by the files' content; data built in memory by itself.
    let inputs = if data.sources.is_empty() {
        [("data built in memory".to_string(), data.digest())].into()
    } else {
        data.sources.clone()
    };
    let training = serde_json::to_value(opts).map_err(|e| FileError::Argument(e.to_string()))?;
    let config = ScModelConfig::new(model_cfg.clone(), training, inputs);
    let mut files = vec![(CELLS_FILE, data.barcodes.clone()), (PEAKS_FILE, peak_split_lines(data, &split))];
    if let Some(b) = &data.batches {
        let lines =
            data.barcodes.iter().zip(&b.of_cell).map(|(c, &k)| format!("{c}\t{}", b.names[k as usize])).collect();
        files.push((BATCHES_FILE, lines));
    }
    let spec = RunSpec::new(&config, &RESUMABLE, &["peaks", "genome", "matrix"], files)?;
    let fit = FitOptions {
        epochs: opts.epochs,
        adam: AdamParams {
            lr: opts.lr,
            beta1: opts.beta1,
            beta2: opts.beta2,
            eps: opts.adam_eps,
            weight_decay: 0.0,
            step: 1,
        },
        monitor: Monitor { higher_is_better: true, min_delta: opts.min_delta, patience: Some(opts.patience) },
        max_steps: opts.max_steps,
    };
    let summary = ScDataSummary {
        peaks: data.n_peaks(),
        cells: data.n_cells(),
        nnz: data.nnz(),
        train: train.len(),
        val: val.len(),
        test: test.len(),
        params: model_cfg.param_count(),
    };
    let mut net = SeqNet::new(backend, model_cfg, opts.seed, Some(&depth_intercepts(data, &train)))?;
    if let Some(b) = &data.batches {
        net.set_cell_batches(backend, &b.of_cell)?;
    }
    let auroc_cells = sample_cells(data.n_cells(), opts.auroc_cells, opts.seed);
    let task = ScTask { data, opts, train, val, auroc_cells };
    train::fit(backend, &task, &mut net, out, &spec, resume, &fit, summary, events)
}
