//! Training DenoiseNet: noisy → clean coverage and clean peaks, on chromosome splits.
//!
//! The task of the one training loop ([`crate::train::fit`]): intervals of `interval` bases
//! with `pad` bases of context, tiled over the training chromosomes (all-zero ones left out
//! unless `skip_empty` is off), shuffled by (seed, epoch) and sliced by the prefetching
//! batcher; a step is the forward pass, the fused loss and the backward pass; each epoch is
//! validated exactly on the validation chromosomes and the best model picked by
//! `best_metric`.

use super::model::ModelConfig;
use crate::backend::{AdamParams, Backend, DenoiseLoss, DenoiseLossParams, LossParts};
use crate::data::batcher::interval_is_empty;
use crate::data::{chrom_ids, open_coverage, open_peaks, tile, Batch, BatchShape, BatchStream, Interval, TrackSet};
use crate::error::{BackendError, FileError};
use crate::eval::metrics::{auroc_auprc, mse, pearson};
use crate::io::guard::Files;
use crate::io::ChromSizes;
use crate::models::{DenoiseConfig, DenoiseNet};
use crate::nn::download_f32;
use crate::rng::shuffled_for;
use crate::store::build::file_sha256;
use crate::train::{self, Epoch, EpochSummary, FitOptions, Monitor, RunSpec, Step, Task};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One sample's tracks: noisy input, clean target, clean peaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackPair {
    pub noisy: PathBuf,
    pub clean: PathBuf,
    pub peaks: PathBuf,
}

/// The validation metric that picks the best model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BestMetric {
    Pearson,
    Auprc,
    Auroc,
    Mse,
    Loss,
}

impl BestMetric {
    fn higher_is_better(self) -> bool {
        !matches!(self, BestMetric::Mse | BestMetric::Loss)
    }
}

/// Settings of a training run (saved in config.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub pairs: Vec<TrackPair>,
    /// Extra input tracks (name, file), the same for every pair.
    pub extra_tracks: Vec<(String, PathBuf)>,
    pub genome: PathBuf,
    pub val_chroms: Vec<String>,
    pub holdout_chroms: Vec<String>,
    pub interval: u64,
    pub pad: u64,
    pub batch: usize,
    pub epochs: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub mse_weight: f32,
    pub pearson_weight: f32,
    pub bce_weight: f32,
    pub seed: u64,
    /// Leave out training intervals whose input is zero everywhere.
    pub skip_empty: bool,
    pub best_metric: BestMetric,
    pub model: DenoiseConfig,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            pairs: Vec::new(),
            extra_tracks: Vec::new(),
            genome: PathBuf::new(),
            val_chroms: Vec::new(),
            holdout_chroms: Vec::new(),
            interval: 50_000,
            pad: 5_000,
            batch: 64,
            epochs: 25,
            lr: 2e-4,
            weight_decay: 0.0,
            mse_weight: 0.0005,
            pearson_weight: 1.0,
            bce_weight: 1.0,
            seed: 0,
            skip_empty: true,
            best_metric: BestMetric::Pearson,
            model: DenoiseConfig::default(),
        }
    }
}

impl TrainOptions {
    /// The loss over batches of `n` intervals of `width` bases.
    pub fn loss(&self, n: usize, width: usize) -> DenoiseLossParams {
        DenoiseLossParams {
            batch: n,
            len: width,
            pad: self.pad as usize,
            mse_weight: self.mse_weight,
            pearson_weight: self.pearson_weight,
            bce_weight: self.bce_weight,
        }
    }
}

/// Validation metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    pub loss: f64,
    pub mse: f64,
    pub pearson: f64,
    pub auroc: f64,
    pub auprc: f64,
}

impl ValMetrics {
    fn get(&self, m: BestMetric) -> f64 {
        match m {
            BestMetric::Pearson => self.pearson,
            BestMetric::Auprc => self.auprc,
            BestMetric::Auroc => self.auroc,
            BestMetric::Mse => self.mse,
            BestMetric::Loss => self.loss,
        }
    }
}

/// One line of train_log.tsv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_mse: f64,
    pub train_pearson: f64,
    pub train_bce: f64,
    pub val: ValMetrics,
    pub seconds: f64,
    pub bases_per_second: f64,
    pub best: bool,
}

impl train::EpochRecord for EpochRecord {
    fn header() -> &'static str {
        "epoch\ttrain_loss\ttrain_mse\ttrain_pearson\ttrain_bce\tval_loss\tval_mse\tval_pearson\tval_auroc\tval_auprc\tseconds\tbases_per_s\tbest"
    }

    fn line(&self) -> String {
        let r = self;
        format!(
            "{}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{:.1}\t{:.0}\t{}",
            r.epoch,
            r.train_loss,
            r.train_mse,
            r.train_pearson,
            r.train_bce,
            r.val.loss,
            r.val.mse,
            r.val.pearson,
            r.val.auroc,
            r.val.auprc,
            r.seconds,
            r.bases_per_second,
            if r.best { "*" } else { "" }
        )
    }

    fn mark_best(&mut self, best: bool) {
        self.best = best;
    }
}

/// What a run trains on, for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSummary {
    pub train_intervals: usize,
    pub val_intervals: usize,
    pub skipped_empty: usize,
}

/// What training reports as it goes.
pub type TrainEvent = train::Event<DataSummary, EpochRecord>;

/// The tracks of a run, as memory-mapped shards over the genome's chromosomes, with the
/// content hash of every input.
pub struct LoadedTracks {
    pub sizes: ChromSizes,
    pub sets: Vec<TrackSet>,
    /// Input name → SHA-256 of its content.
    pub inputs: BTreeMap<String, String>,
}

/// Loads every track of a training run.
pub fn load_training_tracks(opts: &TrainOptions) -> Result<LoadedTracks, Error> {
    let sizes = ChromSizes::read(&opts.genome)?;
    let mut inputs = BTreeMap::from([("genome sizes".to_string(), file_sha256(&opts.genome)?.0)]);
    let mut extras = Vec::new();
    for (name, path) in &opts.extra_tracks {
        let shard = open_coverage(path, &sizes, &format!("extra track {name}"))?;
        inputs.insert(format!("extra track {name}"), shard.source_sha256()?);
        extras.push(shard);
    }
    let mut sets = Vec::new();
    for (i, pair) in opts.pairs.iter().enumerate() {
        let noisy = open_coverage(&pair.noisy, &sizes, "noisy track")?;
        let clean = open_coverage(&pair.clean, &sizes, "clean track")?;
        let peaks = open_peaks(&pair.peaks, &sizes)?;
        for (what, shard) in [("noisy track", &noisy), ("clean track", &clean), ("peaks", &peaks)] {
            inputs.insert(format!("{what} {}", i + 1), shard.source_sha256()?);
        }
        let mut channels = vec![noisy];
        channels.extend(extras.iter().cloned());
        sets.push(TrackSet { inputs: channels, clean: Some(clean), peaks: Some(peaks) });
    }
    Ok(LoadedTracks { sizes, sets, inputs })
}

/// Training sums of an epoch: the loss's parts.
#[derive(Debug, Default)]
pub struct TrainSums {
    mse: f64,
    pearson: f64,
    bce: f64,
}

/// The denoiser as a task of the training loop.
pub struct DenoiseTask<'a> {
    opts: &'a TrainOptions,
    model: DenoiseConfig,
    tracks: LoadedTracks,
    shape: BatchShape,
    train: Vec<Interval>,
    val: Vec<Interval>,
}

impl DenoiseTask<'_> {
    /// Turns an out-of-memory error into advice: the batch size that would fit.
    fn out_of_memory_advice<B: Backend>(&self, e: BackendError, backend: &B) -> Error {
        let BackendError::OutOfMemory { device, .. } = &e else { return e.into() };
        let (batch, width) = (self.shape.batch, self.shape.width());
        let per_interval = self.model.train_bytes_per_interval(width, self.model.packed_on(backend, batch, width));
        // The failed step's buffers are freed by the time the error arrives here, so the free
        // memory is what a step can use; keep a tenth in reserve.
        let free = backend.free_memory().unwrap_or(0);
        let fits = (free / 10 * 9) / per_interval.max(1);
        FileError::Argument(format!(
            "{device} ran out of memory training batches of {} intervals of {} bases (about {:.0} MiB per interval); --batch {} would fit{}",
            self.shape.batch,
            self.shape.width(),
            per_interval as f64 / (1u64 << 20) as f64,
            fits.max(1),
            if fits == 0 { ", or shorten --interval" } else { "" }
        ))
        .into()
    }

    /// Loss, and exact MSE, Pearson, AUROC and AUPRC over every scored base of the
    /// validation intervals.
    fn validate<B: Backend>(&self, backend: &B, net: &DenoiseNet<B>) -> Result<ValMetrics, Error> {
        let (mut pred, mut prob, mut clean, mut mask) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut loss_sum, mut n_sum) = (0.0, 0usize);
        let (shape, w) = (self.shape, self.shape.width());
        for batch in BatchStream::start(backend, self.tracks.sets.clone(), self.val.clone(), shape, 2)? {
            let batch = batch?;
            let n = batch.len();
            let x = backend.upload_f32(batch.input()?)?;
            let out = net.infer(backend, &x, n, w)?;
            let (clean_d, mask_d) = (backend.upload_f32(batch.clean()?)?, backend.upload_f32(batch.mask()?)?);
            let (mut dr, mut dc) = (backend.zeros(n * w)?, backend.zeros(n * w)?);
            let bufs = DenoiseLoss {
                reg: &out.reg,
                clean: &clean_d,
                cls_logits: &out.logits,
                mask: &mask_d,
                d_reg: &mut dr,
                d_cls: &mut dc,
            };
            loss_sum += backend.denoise_loss(&self.opts.loss(n, w), bufs)?.total * n as f64;
            n_sum += n;
            let reg = download_f32(backend, &out.reg)?;
            let logits = download_f32(backend, &out.logits)?;
            for (i, iv) in batch.intervals().iter().enumerate() {
                let chrom_len = self.tracks.sizes.length(iv.chrom);
                let from = (shape.pad + iv.skip) as usize;
                let to = (shape.pad + shape.len.min(chrom_len - iv.start)) as usize;
                let row = i * w;
                pred.extend_from_slice(&reg[row + from..row + to]);
                prob.extend(logits[row + from..row + to].iter().map(|&z| crate::backend::cpu::sigmoid(z)));
                clean.extend_from_slice(&batch.clean()?[row + from..row + to]);
                mask.extend_from_slice(&batch.mask()?[row + from..row + to]);
            }
        }
        let (auroc, auprc) = auroc_auprc(&prob, &mask);
        Ok(ValMetrics {
            loss: loss_sum / n_sum.max(1) as f64,
            mse: mse(&pred, &clean),
            pearson: pearson(&pred, &clean),
            auroc,
            auprc,
        })
    }
}

impl<B: Backend> Task<B> for DenoiseTask<'_> {
    type Net = DenoiseNet<B>;
    type Batch = Batch;
    type Metrics = TrainSums;
    type Record = EpochRecord;

    fn epoch(&self, backend: &B, epoch: usize) -> Result<Epoch<'_, Batch>, Error> {
        let order = shuffled_for(&self.train, self.opts.seed, epoch);
        let total = order.len().div_ceil(self.shape.batch);
        let stream = BatchStream::start(backend, self.tracks.sets.clone(), order, self.shape, 3)?;
        Ok(Epoch { total, batches: Box::new(stream.map(|b| b.map_err(Error::from))) })
    }

    fn step(
        &self,
        backend: &B,
        net: &mut DenoiseNet<B>,
        batch: Batch,
        _step: u64,
        sums: &mut TrainSums,
    ) -> Result<Step, Error> {
        let (n, w) = (batch.len(), self.shape.width());
        let x = backend.upload_f32(batch.input()?)?;
        let clean = backend.upload_f32(batch.clean()?)?;
        let mask = backend.upload_f32(batch.mask()?)?;
        let parts = forward_backward(backend, net, x, &clean, &mask, &self.opts.loss(n, w))
            .map_err(|e| self.out_of_memory_advice(e, backend))?;
        drop(batch);
        sums.mse += parts.mse;
        sums.pearson += parts.pearson;
        sums.bce += parts.bce;
        Ok(Step { loss: parts.total, units: n as u64 * self.opts.interval })
    }

    fn finish_epoch(
        &self,
        backend: &B,
        net: &mut DenoiseNet<B>,
        sums: TrainSums,
        s: &EpochSummary,
    ) -> Result<(EpochRecord, f64), Error> {
        let val = self.validate(backend, net)?;
        let b = s.batches.max(1) as f64;
        let record = EpochRecord {
            epoch: s.epoch,
            train_loss: s.mean_loss,
            train_mse: sums.mse / b,
            train_pearson: sums.pearson / b,
            train_bce: sums.bce / b,
            val,
            seconds: s.started.elapsed().as_secs_f64(),
            bases_per_second: s.units as f64 / s.train_seconds.max(1e-9),
            best: false,
        };
        Ok((record, val.get(self.opts.best_metric)))
    }
}

/// One training step's computation on a batch already on the device: forward, the fused loss
/// and backward, leaving the gradients in the net's parameters; x is (n, channels, width) and
/// the targets (n, width), as `loss` gives them.
pub fn forward_backward<B: Backend>(
    backend: &B,
    net: &mut DenoiseNet<B>,
    x: B::Buf,
    clean: &B::Buf,
    mask: &B::Buf,
    loss: &DenoiseLossParams,
) -> Result<LossParts, BackendError> {
    let (n, w) = (loss.batch, loss.len);
    let (out, cache) = net.forward(backend, x, n, w)?;
    let (mut d_reg, mut d_cls) = (backend.zeros(n * w)?, backend.zeros(n * w)?);
    let bufs =
        DenoiseLoss { reg: &out.reg, clean, cls_logits: &out.logits, mask, d_reg: &mut d_reg, d_cls: &mut d_cls };
    // The loss comes back to the host: after it, the batch's uploads have been read.
    let parts = backend.denoise_loss(loss, bufs)?;
    net.backward(backend, &out, &cache, &d_reg, &d_cls)?;
    Ok(parts)
}

/// Trains (or resumes, when `resume`; strictly: the same settings and input data) and returns
/// the epoch records.
pub fn train<B: Backend>(
    backend: &B,
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
    events: &mut dyn FnMut(TrainEvent),
) -> Result<Vec<EpochRecord>, Error> {
    let reads = Files::new()
        .inputs("--noisy", opts.pairs.iter().map(|p| &p.noisy))
        .inputs("--clean", opts.pairs.iter().map(|p| &p.clean))
        .inputs("--peaks", opts.pairs.iter().map(|p| &p.peaks))
        .input("--genome", &opts.genome)
        .inputs("--extra-track", opts.extra_tracks.iter().map(|(_, p)| p));
    train::check_run_files(out, &[], reads)?;
    if opts.pairs.is_empty() {
        return Err(FileError::Argument("training needs at least one --noisy/--clean/--peaks set".into()).into());
    }
    if opts.batch == 0 || opts.interval == 0 {
        return Err(FileError::Argument("--batch and --interval must be at least 1".into()).into());
    }
    let model = DenoiseConfig { in_channels: 1 + opts.extra_tracks.len(), ..opts.model };
    model.validate().map_err(FileError::Argument)?;
    let field = 2 * model.receptive_radius() + 1;
    if (opts.interval as usize) < field {
        return Err(FileError::Argument(format!(
            "--interval {} is shorter than the model's receptive field ({field} bases): use --interval {field} or more \
             (AtacWorks uses 50,000)",
            opts.interval
        ))
        .into());
    }
    if (opts.pad as usize) < model.receptive_radius() {
        return Err(FileError::Argument(format!(
            "--pad {} is smaller than the model's receptive radius ({} bases): outputs near interval edges would depend on where intervals start; use --pad {} or more",
            opts.pad,
            model.receptive_radius(),
            model.receptive_radius()
        ))
        .into());
    }
    let tracks = load_training_tracks(opts)?;
    let sizes = &tracks.sizes;
    let val_chroms = chrom_ids(sizes, &opts.val_chroms, "--val-chrom").map_err(FileError::Argument)?;
    let holdout = chrom_ids(sizes, &opts.holdout_chroms, "--holdout-chrom").map_err(FileError::Argument)?;
    if val_chroms.is_empty() {
        return Err(FileError::Argument("give at least one --val-chrom: validation picks the best model".into()).into());
    }
    let train_chroms: Vec<usize> =
        (0..sizes.len()).filter(|c| !val_chroms.contains(c) && !holdout.contains(c)).collect();
    if train_chroms.is_empty() {
        return Err(FileError::Argument(
            "no chromosome is left for training after --val-chrom and --holdout-chrom".into(),
        )
        .into());
    }
    let shape = BatchShape { batch: opts.batch, len: opts.interval, pad: opts.pad, channels: model.in_channels };
    let (mut train_intervals, mut val_intervals) = (Vec::new(), Vec::new());
    for (source, set) in tracks.sets.iter().enumerate() {
        train_intervals.extend(
            tile(sizes, &train_chroms, opts.interval, source)
                .into_iter()
                .filter(|iv| !opts.skip_empty || !interval_is_empty(set, iv, shape)),
        );
        val_intervals.extend(tile(sizes, &val_chroms, opts.interval, source));
    }
    let all_train = tracks.sets.len() * tile(sizes, &train_chroms, opts.interval, 0).len();
    if backend.free_memory().is_none() {
        // On the host an allocation too large aborts the process: check first. A batch beyond
        // the intervals there are holds only those.
        let batch = opts.batch.min(train_intervals.len().max(val_intervals.len()).max(1));
        let packed = model.packed_on(backend, batch, shape.width());
        let per_interval = model.train_bytes_per_interval(shape.width(), packed) as u64;
        crate::backend::cpu::check_host_memory("one training step's activations", batch, per_interval)
            .map_err(FileError::Argument)?;
    }
    let summary = DataSummary {
        train_intervals: train_intervals.len(),
        val_intervals: val_intervals.len(),
        skipped_empty: all_train - train_intervals.len(),
    };

    let extra_names = opts.extra_tracks.iter().map(|(n, _)| n.clone()).collect();
    let training = serde_json::to_value(opts).map_err(|e| FileError::Argument(e.to_string()))?;
    let config = ModelConfig {
        inputs: tracks.inputs.clone(),
        ..ModelConfig::new(model, opts.interval, opts.pad, extra_names, training)
    };
    let spec = RunSpec::new(&config, &["epochs"], &["pairs", "genome", "extra_tracks"], Vec::new())?;
    let fit = FitOptions {
        epochs: opts.epochs,
        adam: AdamParams { weight_decay: opts.weight_decay, ..AdamParams::new(opts.lr, 1) },
        monitor: Monitor { higher_is_better: opts.best_metric.higher_is_better(), min_delta: 0.0, patience: None },
        max_steps: None,
    };
    let task = DenoiseTask { opts, model, tracks, shape, train: train_intervals, val: val_intervals };
    let mut net = DenoiseNet::new(backend, model, opts.seed)?;
    train::fit(backend, &task, &mut net, out, &spec, resume, &fit, summary, events)
}
