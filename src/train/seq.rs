//! Training SeqNet on a peak-by-cell matrix (scBasset's task): each peak's DNA in, its binary
//! accessibility in every cell out.
//!
//! * Data: the peaks' windows from the genome (base codes, memory-resident: `seq_len` bytes per
//!   peak) and the binarised CSR rows of the matrix, memory-mapped: the `.cxmatrix` given
//!   when the filters leave it whole, else the matched, filtered matrix written once to the
//!   content-keyed cache. Never densified.
//! * Split: peaks 90/5/5 into train/validation/test by seed, or by chromosome
//!   (`val_chroms`, `test_chroms`). `DIR/peaks.bed` records each peak's split.
//! * Step: one-hot with a random reverse complement and a ±`max_shift` shift per sequence
//!   (seeded by step), SeqNet, the fused sparse head + BCE, backward, Adam (scBasset: lr 0.01,
//!   β1 0.95, β2 0.9995, ε 1e-7).
//! * Metrics without sorting batch × cells values: the training AUROC (what early stopping
//!   watches, as scBasset's Keras `auc` monitor) and the validation AUROC overall and per
//!   peak come from per-bin counts of the head's logits ([`crate::eval::roc`]); the
//!   validation AUROC per cell is exact, over a seeded sample of up to `auroc_cells` cells.
//! * Checkpoints as the denoiser's: `model.safetensors` (parameters and batch-norm running
//!   statistics of the best epoch by training AUROC), `last.safetensors` (+ Adam moments),
//!   `state.json`, `config.json`, `train_log.tsv`, `cells.tsv`; all written atomically;
//!   `resume` continues exactly.

use super::checkpoint::{
    read_json, read_tensor_metadata, read_tensors, write_json, write_lines, write_tensors, write_tensors_with_metadata,
    Tensors, LAST_FILE, LOG_FILE, MODEL_FILE, STATE_FILE,
};
use super::denoise::epoch_order;
use crate::backend::{AdamParams, AdamStep, Backend, BufLen, HeadLogits, SparseHeadParams};
use crate::error::FileError;
use crate::eval::metrics::auroc_auprc;
use crate::eval::roc::{mean_auroc, RocHistogram};
use crate::io::bed::{read_intervals, Interval};
use crate::io::h5ad::parse_peak_name;
use crate::models::{SeqBatch, SeqConfig, SeqNet};
use crate::nn::{download_f32, upload_f32};
use crate::rng::mix;
use crate::store::bases::BaseStore;
use crate::store::build::file_sha256;
use crate::store::matrix::{filter_matrix, match_peaks, read_cell_matrix, write_binary_matrix, CellMatrix};
use crate::store::track_cache_dir;
use crate::Error;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const SC_FORMAT: &str = "chromax-seq-1";
pub const CELLS_FILE: &str = "cells.tsv";
pub const PEAKS_FILE: &str = "peaks.bed";
/// The key of the training state in `last.safetensors`' header.
const STATE_KEY: &str = "chromax.train_state";
/// Settings a resumed run may change.
const RESUMABLE: [&str; 4] = ["epochs", "patience", "min_delta", "auroc_cells"];

/// `peaks.bed` of a model directory: each peak with its split.
fn peak_split_lines(data: &ScData, split: &[Split]) -> Vec<String> {
    data.peaks.iter().zip(split).map(|(p, s)| format!("{}\t{}\t{}\t{}", p.chrom, p.start, p.end, s.name())).collect()
}

/// Refuses to resume a run with other settings (other than [`RESUMABLE`]) or architecture.
fn check_same_run(saved: &ScModelConfig, now: &ScModelConfig, path: &Path) -> Result<(), FileError> {
    if saved.model != now.model {
        return Err(FileError::content(
            path,
            "--resume: the run in this directory has another architecture or cell count than this data and these settings",
        ));
    }
    let (a, b) = (saved.training.as_object(), now.training.as_object());
    if let (Some(a), Some(b)) = (a, b) {
        for (k, v) in b {
            if !RESUMABLE.contains(&k.as_str()) && a.get(k) != Some(v) {
                return Err(FileError::content(
                    path,
                    format!(
                        "--resume: setting '{k}' was {} in this run and is {v} now; resume with the same settings (only {} may change)",
                        a.get(k).map_or("absent".to_string(), |x| x.to_string()),
                        RESUMABLE.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Steps between releases of a memory-mapped matrix's pages: what one epoch reads of an
/// atlas-sized matrix (16 GB of cell indices at 1.1 M cells × 118 k peaks × 3%) must not all
/// stay resident; 32 batches of 128 rows hold ≈ 0.5 GB of it.
const RELEASE_EVERY: usize = 32;

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
    /// The architecture; `cells` is set from the data.
    pub model: SeqConfig,
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
        }
    }
}

/// `config.json` of a single-cell model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScModelConfig {
    pub format: String,
    pub model: SeqConfig,
    pub training: serde_json::Value,
    pub created_by: String,
}

/// `state.json`: where training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScTrainState {
    pub epoch: usize,
    pub step: u64,
    pub best_train_auroc: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    pub wait: usize,
    pub stopped_early: bool,
}

/// The binarised peak × cell rows: the memory-mapped store, or rows in memory (built by a
/// caller, e.g. a simulation).
pub enum Rows {
    Owned { indptr: Vec<u64>, indices: Vec<u32> },
    Mapped(CellMatrix),
}

impl Rows {
    pub fn indptr(&self) -> &[u64] {
        match self {
            Rows::Owned { indptr, .. } => indptr,
            Rows::Mapped(m) => m.indptr(),
        }
    }

    pub fn indices(&self) -> &[u32] {
        match self {
            Rows::Owned { indices, .. } => indices,
            Rows::Mapped(m) => m.indices(),
        }
    }

    /// Lets go of the memory-mapped pages read so far (no-op for owned rows).
    pub fn release_pages(&self) {
        if let Rows::Mapped(m) = self {
            m.release_pages();
        }
    }

    /// The cells of peak `row`.
    pub fn row(&self, row: usize) -> &[u32] {
        let p = self.indptr();
        &self.indices()[p[row] as usize..p[row + 1] as usize]
    }
}

/// Everything a run trains on.
pub struct ScData {
    pub peaks: Vec<Interval>,
    pub barcodes: Vec<String>,
    /// peaks × seq_len base codes.
    pub codes: Vec<u8>,
    pub seq_len: usize,
    pub rows: Rows,
}

impl ScData {
    pub fn n_peaks(&self) -> usize {
        self.peaks.len()
    }

    pub fn n_cells(&self) -> usize {
        self.barcodes.len()
    }

    pub fn nnz(&self) -> usize {
        self.rows.indices().len()
    }

    /// Checks what the trainer relies on: one window per peak, CSR offsets rising from 0 to
    /// nnz over peaks + 1 entries, cell indices ascending within a row and below the cell
    /// count.
    pub fn validate(&self) -> Result<(), FileError> {
        let bad = |what: String| FileError::Argument(format!("single-cell data: {what}"));
        if self.codes.len() != self.n_peaks() * self.seq_len {
            return Err(bad(format!(
                "{} base codes for {} peaks of {} bp",
                self.codes.len(),
                self.n_peaks(),
                self.seq_len
            )));
        }
        let (indptr, indices) = (self.rows.indptr(), self.rows.indices());
        if indptr.len() != self.n_peaks() + 1
            || indptr[0] != 0
            || indptr[self.n_peaks()] != indices.len() as u64
            || indptr.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("row offsets must rise from 0 to the number of entries, one per peak + 1".into()));
        }
        for r in 0..self.n_peaks() {
            let row = self.rows.row(r);
            if row.windows(2).any(|w| w[0] >= w[1]) || row.last().is_some_and(|&c| c as usize >= self.n_cells()) {
                return Err(bad(format!(
                    "peak {} ({}): cell indices must ascend without repeats and stay below {}",
                    r + 1,
                    self.peaks[r].chrom,
                    self.n_cells()
                )));
            }
        }
        Ok(())
    }

    /// The codes of one peak's window.
    pub fn window(&self, peak: usize) -> &[u8] {
        &self.codes[peak * self.seq_len..(peak + 1) * self.seq_len]
    }
}

/// Reads the peaks, the matrix (matched to the peaks and filtered) and the peaks' sequences.
pub fn load_sc_data(opts: &ScTrainOptions) -> Result<ScData, Error> {
    let peaks = read_intervals(&opts.peaks)?;
    if peaks.is_empty() {
        return Err(FileError::content(&opts.peaks, "no peaks").into());
    }
    // The genome first: peaks on chromosomes it lacks are the more basic mistake.
    let bases = BaseStore::cached(&opts.genome)?;
    let all_codes = bases.peak_windows(&peaks, opts.model.seq_len, &opts.peaks.display().to_string())?;
    let is_store = opts.matrix.extension().is_some_and(|e| e.eq_ignore_ascii_case("cxmatrix"));
    let (peaks, barcodes, rows, codes) = match is_store.then(|| CellMatrix::open(&opts.matrix)).transpose()? {
        Some(store) if store_needs_no_filtering(&store, &peaks, opts)? => {
            (peaks, store.barcodes().to_vec(), Rows::Mapped(store), all_codes)
        }
        _ => {
            let store = filtered_store(opts, &peaks)?;
            let kept: Vec<Interval> = store
                .peak_names()
                .iter()
                .map(|n| {
                    parse_peak_name(n).ok_or_else(|| {
                        FileError::content(&opts.matrix, format!("damaged matrix cache: peak name '{n}'"))
                    })
                })
                .collect::<Result<_, _>>()?;
            let codes = if kept == peaks {
                all_codes
            } else {
                bases.peak_windows(&kept, opts.model.seq_len, &opts.peaks.display().to_string())?
            };
            (kept, store.barcodes().to_vec(), Rows::Mapped(store), codes)
        }
    };
    // With --min-peaks-per-cell ≥ 1 the filter (or the whole-store check) has already
    // removed empty cells; only a run that keeps them needs the scan.
    if opts.min_peaks_per_cell == 0 {
        let mut per_cell = vec![0u64; barcodes.len()];
        for &c in rows.indices() {
            if let Some(n) = per_cell.get_mut(c as usize) {
                *n += 1;
            }
        }
        rows.release_pages();
        if let Some(c) = per_cell.iter().position(|&n| n == 0) {
            return Err(FileError::content(
                &opts.matrix,
                format!(
                    "cell {} is accessible in none of the peaks ({} such cells): a cell without data cannot be trained; drop them with --min-peaks-per-cell 1 (or more)",
                    barcodes[c],
                    per_cell.iter().filter(|&&n| n == 0).count()
                ),
            )
            .into());
        }
    }
    Ok(ScData { peaks, barcodes, codes, seq_len: opts.model.seq_len, rows })
}

/// The matrix matched to the peaks, filtered and binarised, as a memory-mapped store: from
/// the content-keyed cache (key: the SHA-256 of the matrix and peak files and the filters),
/// or read, checked, filtered and written there on first use. A Matrix Market directory is
/// read every time (its three files are not hashed).
fn filtered_store(opts: &ScTrainOptions, peaks: &[Interval]) -> Result<CellMatrix, Error> {
    let cache = track_cache_dir().filter(|_| opts.matrix.is_file());
    let path = match &cache {
        Some(dir) => {
            let (m, _) = file_sha256(&opts.matrix)?;
            let (p, _) = file_sha256(&opts.peaks)?;
            let key = format!("chromax-matrix-1 {m} {p} {} {}", opts.min_cells_per_peak, opts.min_peaks_per_cell);
            let digest = sha2::Sha256::digest(key.as_bytes());
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            std::fs::create_dir_all(dir).map_err(FileError::io(dir))?;
            dir.join(format!("matrix-{hex}.cxmatrix"))
        }
        None => {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::env::temp_dir().join(format!("chromax-matrix-{}-{n}.cxmatrix", std::process::id()))
        }
    };
    if cache.is_some() {
        if let Ok(store) = CellMatrix::open(&path) {
            return Ok(store);
        }
    }
    let m = read_cell_matrix(&opts.matrix)?;
    let m = match_peaks(m, peaks, &opts.matrix, &opts.peaks)?;
    let f = filter_matrix(&m, opts.min_cells_per_peak, opts.min_peaks_per_cell)?;
    drop(m);
    write_binary_matrix(&path, &f)?;
    let store = CellMatrix::open(&path)?;
    if cache.is_none() {
        // Mapped, so the file can go at once (Unix keeps it until the mapping ends).
        let _ = std::fs::remove_file(&path);
    }
    Ok(store)
}

/// Whether a `.cxmatrix` store names the same peaks as the peak file and passes the filters
/// whole (then it is used memory-mapped, as is).
fn store_needs_no_filtering(store: &CellMatrix, peaks: &[Interval], opts: &ScTrainOptions) -> Result<bool, Error> {
    let (n_peaks, n_cells) = store.shape();
    let names = store.peak_names();
    let same = n_peaks == peaks.len()
        && names.iter().zip(peaks).all(|(n, p)| *n == format!("{}:{}-{}", p.chrom, p.start, p.end));
    if !same {
        return Ok(false);
    }
    let indptr = store.indptr();
    let damaged = |what: &str| FileError::content(&opts.matrix, format!("damaged matrix store: {what}"));
    if indptr.first() != Some(&0)
        || indptr.last().copied() != Some(store.indices().len() as u64)
        || indptr.windows(2).any(|w| w[0] > w[1])
    {
        return Err(damaged("row offsets do not rise from 0 to the number of entries").into());
    }
    if indptr.windows(2).any(|w| w[1] - w[0] < opts.min_cells_per_peak as u64) {
        return Ok(false);
    }
    let mut per_cell = vec![0u32; n_cells];
    for &c in store.indices() {
        match per_cell.get_mut(c as usize) {
            Some(n) => *n = n.saturating_add(1),
            None => return Err(damaged(&format!("cell index {c} of {n_cells} cells")).into()),
        }
    }
    store.release_pages();
    Ok(per_cell.iter().all(|&n| n >= opts.min_peaks_per_cell.max(1)))
}

/// Which split each peak is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Peaks into train/val/test: by chromosome when `val_chroms` is given, else by a seeded
/// shuffle (the first `val_fraction` validation, the next `test_fraction` test).
pub fn split_peaks(peaks: &[Interval], opts: &ScTrainOptions) -> Result<Vec<Split>, FileError> {
    let n = peaks.len();
    if !opts.val_chroms.is_empty() {
        for c in opts.val_chroms.iter().chain(&opts.test_chroms) {
            if !peaks.iter().any(|p| &p.chrom == c) {
                let mut names: Vec<&str> = peaks.iter().map(|p| p.chrom.as_str()).collect();
                names.dedup();
                names.truncate(8);
                return Err(FileError::Argument(format!(
                    "--val-chrom/--test-chrom {c}: no peak is on it (the peaks are on {}…)",
                    names.join(", ")
                )));
            }
        }
        return Ok(peaks
            .iter()
            .map(|p| {
                if opts.val_chroms.contains(&p.chrom) {
                    Split::Val
                } else if opts.test_chroms.contains(&p.chrom) {
                    Split::Test
                } else {
                    Split::Train
                }
            })
            .collect());
    }
    if !(0.0..1.0).contains(&opts.val_fraction)
        || !(0.0..1.0).contains(&opts.test_fraction)
        || opts.val_fraction + opts.test_fraction >= 1.0
    {
        return Err(FileError::Argument("validation and test fractions must be in [0, 1) and sum below 1".into()));
    }
    let order: Vec<usize> = epoch_order(&(0..n).collect::<Vec<_>>(), opts.seed ^ 0x5EED_5B11_7000, 0);
    let n_val = ((n as f64 * opts.val_fraction).round() as usize).max(1).min(n.saturating_sub(1));
    let n_test = ((n as f64 * opts.test_fraction).round() as usize).min(n.saturating_sub(n_val + 1));
    let mut split = vec![Split::Train; n];
    for (k, &i) in order.iter().enumerate() {
        if k < n_val {
            split[i] = Split::Val;
        } else if k < n_val + n_test {
            split[i] = Split::Test;
        }
    }
    Ok(split)
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

/// What the training loop reports as it goes.
#[derive(Debug, Clone)]
pub enum ScTrainEvent {
    Ready {
        peaks: usize,
        cells: usize,
        nnz: usize,
        train: usize,
        val: usize,
        test: usize,
        params: usize,
        start_epoch: usize,
    },
    Batch {
        epoch: usize,
        done: usize,
        total: usize,
        loss: f64,
        peaks_per_second: f64,
    },
    Validating {
        epoch: usize,
    },
    Epoch(ScEpochRecord),
    EarlyStop {
        epoch: usize,
        best_epoch: usize,
    },
}

/// Adam moments of every parameter.
struct Moments<B: Backend> {
    m: Vec<B::Buf>,
    v: Vec<B::Buf>,
}

/// A batch's inputs on the host.
struct HostBatch {
    codes: Vec<u8>,
    reverse: Vec<bool>,
    shift: Vec<i32>,
    indptr: Vec<u32>,
    indices: Vec<u32>,
}

fn gather(data: &ScData, peaks: &[usize], augment: Option<(u64, i32)>) -> Result<HostBatch, FileError> {
    let mut codes = Vec::with_capacity(peaks.len() * data.seq_len);
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for &p in peaks {
        codes.extend_from_slice(data.window(p));
        indices.extend_from_slice(data.rows.row(p));
        let end = u32::try_from(indices.len()).map_err(|_| {
            FileError::Argument("a batch holds more than 4,294,967,295 non-zero entries: lower --batch".into())
        })?;
        indptr.push(end);
    }
    // As scBasset (basenji's stochastic layers): one draw per batch, not per sequence.
    let (reverse, shift) = match augment {
        Some((seed, max_shift)) => {
            let r = mix(seed ^ 0xA06_0E47);
            let span = 2 * max_shift as u64 + 1;
            (vec![r & 1 == 1; peaks.len()], vec![((r >> 1) % span) as i32 - max_shift; peaks.len()])
        }
        None => (vec![false; peaks.len()], vec![0; peaks.len()]),
    };
    Ok(HostBatch { codes, reverse, shift, indptr, indices })
}

/// The model and Adam tensors of a run, for a checkpoint.
fn tensors<B: Backend>(backend: &B, net: &SeqNet<B>, moments: Option<&Moments<B>>) -> Result<Tensors, Error> {
    let mut out = BTreeMap::new();
    for p in net.params() {
        out.insert(p.name.clone(), (p.shape.clone(), download_f32(backend, &p.value)?));
    }
    for (name, buf) in net.stats() {
        out.insert(name, (vec![buf.buf_len()], download_f32(backend, buf)?));
    }
    if let Some(mo) = moments {
        for (i, p) in net.params().iter().enumerate() {
            out.insert(format!("adam.m.{}", p.name), (p.shape.clone(), download_f32(backend, &mo.m[i])?));
            out.insert(format!("adam.v.{}", p.name), (p.shape.clone(), download_f32(backend, &mo.v[i])?));
        }
    }
    Ok(out)
}

/// Loads parameters and running statistics into `net` (every one must be present with its
/// shape).
pub fn load_seq_weights<B: Backend>(
    backend: &B,
    net: &mut SeqNet<B>,
    path: &Path,
    tensors: &Tensors,
) -> Result<(), Error> {
    let get = |name: &str, len: usize| -> Result<&Vec<f32>, FileError> {
        match tensors.get(name) {
            Some((_, v)) if v.len() == len => Ok(v),
            Some((shape, _)) => Err(FileError::content(
                path,
                format!("checkpoint of another architecture: {name} has shape {shape:?}, this model needs {len} values (check config.json)"),
            )),
            None => Err(FileError::content(path, format!("checkpoint of another architecture: no tensor {name}"))),
        }
    };
    for p in net.params_mut() {
        let len = p.len();
        p.value = upload_f32(backend, get(&p.name, len)?)?;
    }
    for (name, buf) in net.stats_mut() {
        let len = buf.buf_len();
        *buf = upload_f32(backend, get(&name, len)?)?;
    }
    Ok(())
}

fn log_header() -> String {
    "epoch\ttrain_loss\ttrain_auroc\tval_loss\tval_auroc\tval_auroc_per_peak\tval_auroc_per_cell\tseconds\tpeaks_per_s\tbest"
        .into()
}

fn log_line(r: &ScEpochRecord) -> String {
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

/// Each cell's log-odds of being accessible in a training peak (the head's starting biases).
fn depth_intercepts(data: &ScData, train: &[usize]) -> Vec<f32> {
    let mut counts = vec![0u64; data.n_cells()];
    for &p in train {
        for &c in data.rows.row(p) {
            counts[c as usize] += 1;
        }
    }
    data.rows.release_pages();
    let n = train.len() as f64;
    counts.iter().map(|&k| ((k as f64 + 0.5) / (n - k as f64 + 0.5)).ln() as f32).collect()
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
    if opts.batch == 0 || opts.epochs == 0 {
        return Err(FileError::Argument("--batch and --epochs must be at least 1".into()).into());
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
    let model_cfg = SeqConfig { cells: data.n_cells(), ..opts.model.clone() };
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
    if train.is_empty() || val.is_empty() {
        return Err(FileError::Argument(format!(
            "{} training and {} validation peaks: both need at least one",
            train.len(),
            val.len()
        ))
        .into());
    }

    if resume && !out.join(LAST_FILE).is_file() {
        return Err(FileError::content(out, "--resume: no training run to continue here (no last.safetensors)").into());
    }
    std::fs::create_dir_all(out).map_err(FileError::io(out))?;
    let path = |f: &str| out.join(f);
    let config = ScModelConfig {
        format: SC_FORMAT.into(),
        model: model_cfg.clone(),
        training: serde_json::to_value(opts).map_err(|e| FileError::Argument(e.to_string()))?,
        created_by: format!("chromax {}", env!("CARGO_PKG_VERSION")),
    };
    let mut net = SeqNet::new(backend, model_cfg.clone(), opts.seed, Some(&depth_intercepts(data, &train)))?;
    let mut moments = Moments::<B> {
        m: net.params().iter().map(|p| backend.zeros(p.len())).collect::<Result<_, _>>()?,
        v: net.params().iter().map(|p| backend.zeros(p.len())).collect::<Result<_, _>>()?,
    };
    let mut state =
        ScTrainState { epoch: 0, step: 0, best_train_auroc: None, best_epoch: None, wait: 0, stopped_early: false };
    let mut log = vec![log_header()];
    if resume {
        let saved: ScModelConfig = read_json(&path(super::checkpoint::CONFIG_FILE), "chromax model config")?;
        check_same_run(&saved, &config, &path(super::checkpoint::CONFIG_FILE))?;
        let same_cells = std::fs::read_to_string(path(CELLS_FILE))
            .map(|t| t.lines().eq(data.barcodes.iter().map(String::as_str)))
            .unwrap_or(false);
        let peak_lines = peak_split_lines(data, &split);
        let same_peaks = std::fs::read_to_string(path(PEAKS_FILE))
            .map(|t| t.lines().eq(peak_lines.iter().map(String::as_str)))
            .unwrap_or(false);
        if !same_cells || !same_peaks {
            return Err(FileError::content(
                out,
                format!(
                    "--resume: this data's {} differ from the run's ({}): resume with the same matrix, peaks and filters",
                    if same_cells { "peaks or their split" } else { "cells" },
                    if same_cells { PEAKS_FILE } else { CELLS_FILE }
                ),
            )
            .into());
        }
        // The state travels inside last.safetensors: weights, moments and counters are
        // committed by one rename, so a crash between files cannot pair them wrongly.
        let meta = read_tensor_metadata(&path(LAST_FILE))?;
        state = meta
            .get(STATE_KEY)
            .and_then(|j| serde_json::from_str(j).ok())
            .ok_or_else(|| FileError::content(path(LAST_FILE), "no training state in the checkpoint's header"))?;
        let t = read_tensors(&path(LAST_FILE))?;
        load_seq_weights(backend, &mut net, &path(LAST_FILE), &t)?;
        for (i, p) in net.params().iter().enumerate() {
            for (slot, prefix) in [(&mut moments.m[i], "adam.m."), (&mut moments.v[i], "adam.v.")] {
                let name = format!("{prefix}{}", p.name);
                match t.get(&name) {
                    Some((_, v)) if v.len() == p.len() => *slot = upload_f32(backend, v)?,
                    _ => {
                        return Err(FileError::content(
                            path(LAST_FILE),
                            format!("no optimiser state {name} of the right size"),
                        )
                        .into())
                    }
                }
            }
        }
        let text = std::fs::read_to_string(path(LOG_FILE)).unwrap_or_default();
        log = text.lines().take(state.epoch + 1).map(String::from).collect();
        if log.len() != state.epoch + 1 {
            log = vec![log_header()]; // a lost log restarts; the model state is what matters
        }
    } else if path(STATE_FILE).exists() || path(LAST_FILE).exists() {
        return Err(FileError::content(
            out,
            "already holds a training run: continue it with --resume, or choose another -o",
        )
        .into());
    } else {
        // A stale model from elsewhere must not pass for this run's best.
        let _ = std::fs::remove_file(path(MODEL_FILE));
    }
    write_json(&path(super::checkpoint::CONFIG_FILE), &config)?;
    write_lines(&path(CELLS_FILE), &data.barcodes)?;
    write_lines(&path(PEAKS_FILE), peak_split_lines(data, &split))?;
    events(ScTrainEvent::Ready {
        peaks: data.n_peaks(),
        cells: data.n_cells(),
        nnz: data.nnz(),
        train: train.len(),
        val: val.len(),
        test: test.len(),
        params: model_cfg.param_count(),
        start_epoch: state.epoch,
    });
    let per_cell_sample = sample_cells(data.n_cells(), opts.auroc_cells, opts.seed);

    let mut records = Vec::new();
    if state.stopped_early {
        return Ok(records);
    }
    for epoch in state.epoch..opts.epochs {
        let started = Instant::now();
        let order = epoch_order(&train, opts.seed, epoch);
        let total = order.len().div_ceil(opts.batch);
        let (mut sum_loss, mut batches, mut seen) = (0.0f64, 0usize, 0usize);
        let mut hist = RocHistogram::default();
        for chunk in order.chunks(opts.batch) {
            let step_seed = mix(opts.seed ^ mix(state.step + 1));
            let hb = gather(data, chunk, opts.augment.then_some((step_seed, opts.max_shift)))?;
            let seqs = SeqBatch { codes: &hb.codes, reverse: &hb.reverse, shift: &hb.shift };
            let (z, cache) = net.forward_train(backend, &seqs, step_seed)?;
            let (loss, dz) = net.head_loss(backend, &z, &hb.indptr, &hb.indices)?;
            let p = SparseHeadParams { batch: chunk.len(), cells: model_cfg.cells, dim: model_cfg.bottleneck };
            let logits = HeadLogits {
                z: &z,
                w: &net.head_w.value,
                bias: &net.head_b.value,
                indptr: &hb.indptr,
                indices: &hb.indices,
            };
            hist.add_counts(&backend.head_roc_histogram(&p, logits, false)?);
            net.backward(backend, cache, &dz)?;
            state.step += 1;
            let adam = AdamParams {
                lr: opts.lr,
                beta1: opts.beta1,
                beta2: opts.beta2,
                eps: opts.adam_eps,
                weight_decay: 0.0,
                step: state.step,
            };
            for (i, prm) in net.params_mut().into_iter().enumerate() {
                let bufs =
                    AdamStep { param: &mut prm.value, grad: &prm.grad, m: &mut moments.m[i], v: &mut moments.v[i] };
                backend.adam_step(&adam, bufs)?;
            }
            if !loss.is_finite() {
                return Err(FileError::Argument(format!(
                    "the loss became {loss} at epoch {} step {}: lower --lr",
                    epoch + 1,
                    state.step
                ))
                .into());
            }
            sum_loss += loss;
            batches += 1;
            if batches % RELEASE_EVERY == 0 {
                data.rows.release_pages();
            }
            seen += chunk.len();
            events(ScTrainEvent::Batch {
                epoch: epoch + 1,
                done: batches,
                total,
                loss: sum_loss / batches as f64,
                peaks_per_second: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        events(ScTrainEvent::Validating { epoch: epoch + 1 });
        let v = evaluate(backend, &mut net, data, &val, opts.batch, &per_cell_sample)?;
        let train_auroc = hist.auroc();
        let best =
            train_auroc.is_finite() && state.best_train_auroc.is_none_or(|old| train_auroc - opts.min_delta > old);
        let record = ScEpochRecord {
            epoch: epoch + 1,
            train_loss: sum_loss / batches.max(1) as f64,
            train_auroc,
            val_loss: v.loss,
            val_auroc: v.auroc,
            val_auroc_per_peak: v.auroc_per_peak,
            val_auroc_per_cell: v.auroc_per_cell,
            seconds: started.elapsed().as_secs_f64(),
            peaks_per_second: seen as f64 / train_seconds.max(1e-9),
            best,
        };
        // One download per epoch: the best model is the last checkpoint without Adam's moments.
        let last = tensors(backend, &net, Some(&moments))?;
        if best {
            state.best_train_auroc = Some(train_auroc);
            state.best_epoch = Some(epoch + 1);
            state.wait = 0;
            let weights: Tensors =
                last.iter().filter(|(k, _)| !k.starts_with("adam.")).map(|(k, v)| (k.clone(), v.clone())).collect();
            write_tensors(&path(MODEL_FILE), &weights)?;
        } else {
            state.wait += 1;
        }
        state.epoch = epoch + 1;
        state.stopped_early = state.wait >= opts.patience.max(1);
        let meta = serde_json::to_string(&state).map_err(|e| FileError::Argument(e.to_string()))?;
        write_tensors_with_metadata(
            &path(LAST_FILE),
            &last,
            Some([(STATE_KEY.to_string(), meta)].into_iter().collect()),
        )?;
        write_json(&path(STATE_FILE), &state)?; // for people; resume reads the header
        log.push(log_line(&record));
        write_lines(&path(LOG_FILE), &log)?;
        events(ScTrainEvent::Epoch(record));
        records.push(record);
        if state.stopped_early {
            events(ScTrainEvent::EarlyStop { epoch: epoch + 1, best_epoch: state.best_epoch.unwrap_or(0) });
            break;
        }
    }
    Ok(records)
}

/// Up to `n` cells, seeded, sorted.
fn sample_cells(cells: usize, n: usize, seed: u64) -> Vec<u32> {
    let all: Vec<u32> = (0..cells as u32).collect();
    if cells <= n {
        return all;
    }
    let mut v: Vec<u32> = epoch_order(&all, seed ^ 0xCE11_5A3E, 0).into_iter().take(n).collect();
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
    for chunk in peaks.chunks(batch) {
        let hb = gather(data, chunk, None)?;
        let seqs = SeqBatch { codes: &hb.codes, reverse: &hb.reverse, shift: &hb.shift };
        let z = net.embed_peaks(backend, &seqs)?;
        let (loss, _) = net.head_loss(backend, &z, &hb.indptr, &hb.indices)?;
        loss_sum += loss * chunk.len() as f64;
        let p = SparseHeadParams { batch: chunk.len(), cells: n_cells, dim };
        let (w, bias) = (&net.head_w.value, &net.head_b.value);
        let counts = backend.head_roc_histogram(
            &p,
            HeadLogits { z: &z, w, bias, indptr: &hb.indptr, indices: &hb.indices },
            true,
        )?;
        for block in counts.chunks(2 * crate::backend::ROC_BINS) {
            let h = RocHistogram::from_counts(block);
            overall.add(&h);
            per_peak.push(h);
        }
        z_all.extend(download_f32(backend, &z)?);
    }
    let w = download_f32(backend, &net.head_w.value)?;
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

/// A trained single-cell model directory: its config, cells and model.
pub fn open_sc_model(dir: &Path) -> Result<(ScModelConfig, Vec<String>), Error> {
    if dir.is_file() {
        return Err(FileError::content(dir, "--model takes the directory written by `chromax sc train`").into());
    }
    let config_path = dir.join(super::checkpoint::CONFIG_FILE);
    if !config_path.exists() {
        return Err(FileError::content(
            dir,
            "not a chromax model directory: no config.json (train one with `chromax sc train -o DIR`)",
        )
        .into());
    }
    let config: ScModelConfig = read_json(&config_path, "chromax model config")?;
    if config.format != SC_FORMAT {
        return Err(FileError::content(
            &config_path,
            format!(
                "model format '{}'; `chromax sc` reads {SC_FORMAT} (a denoiser is run with `chromax denoise`)",
                config.format
            ),
        )
        .into());
    }
    if !dir.join(MODEL_FILE).exists() {
        return Err(FileError::content(dir, "no model.safetensors: training has not finished an epoch yet").into());
    }
    let cells_path = dir.join(CELLS_FILE);
    let text = std::fs::read_to_string(&cells_path).map_err(FileError::io(&cells_path))?;
    let cells: Vec<String> = text.lines().map(String::from).collect();
    if cells.len() != config.model.cells {
        return Err(FileError::content(
            &cells_path,
            format!("{} barcodes for a model of {} cells", cells.len(), config.model.cells),
        )
        .into());
    }
    Ok((config, cells))
}

/// Loads a trained SeqNet onto a backend.
pub fn load_seq_model<B: Backend>(backend: &B, dir: &Path) -> Result<(SeqNet<B>, ScModelConfig, Vec<String>), Error> {
    let (config, cells) = open_sc_model(dir)?;
    let mut net = SeqNet::new(backend, config.model.clone(), 0, None)?;
    let model = dir.join(MODEL_FILE);
    load_seq_weights(backend, &mut net, &model, &read_tensors(&model)?)?;
    Ok((net, config, cells))
}

/// A trained model's cells: barcodes, embeddings (cells × dim, row-major) and intercepts.
#[derive(Debug, Clone, PartialEq)]
pub struct CellEmbeddings {
    pub barcodes: Vec<String>,
    pub embeddings: Vec<f32>,
    pub intercepts: Vec<f32>,
    pub dim: usize,
}

/// The cell embeddings and intercepts of a model directory, read from its checkpoint without
/// building the network.
pub fn read_cell_embeddings(dir: &Path) -> Result<CellEmbeddings, Error> {
    let (config, cells) = open_sc_model(dir)?;
    let model = dir.join(MODEL_FILE);
    let t = read_tensors(&model)?;
    let dim = config.model.bottleneck;
    let get = |name: &str, len: usize| -> Result<Vec<f32>, FileError> {
        match t.get(name) {
            Some((_, v)) if v.len() == len => Ok(v.clone()),
            _ => Err(FileError::content(&model, format!("no tensor {name} of {len} values"))),
        }
    };
    Ok(CellEmbeddings {
        embeddings: get("head.weight", cells.len() * dim)?,
        intercepts: get("head.bias", cells.len())?,
        barcodes: cells,
        dim,
    })
}
