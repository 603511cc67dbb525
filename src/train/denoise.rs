//! Training DenoiseNet: noisy → clean coverage and clean peaks, on chromosome splits.

use super::batcher::{interval_is_empty, BatchShape, BatchStream, TrackSet};
use super::checkpoint::{
    load_weights, read_json, read_tensors, weight_tensors, write_json, write_lines, write_tensors, ModelConfig,
    ModelDir, TrainState, CONFIG_FILE, LAST_FILE, LOG_FILE, MODEL_FILE, STATE_FILE,
};
use super::intervals::{chrom_ids, tile, Interval};
use crate::backend::{AdamParams, AdamStep, Backend, DenoiseLoss, DenoiseLossParams};
use crate::error::FileError;
use crate::eval::metrics::{auroc_auprc, mse, pearson};
use crate::io::ChromSizes;
use crate::models::{DenoiseConfig, DenoiseNet};
use crate::nn::{download_f32, upload_f32};
use crate::rng::mix;
use crate::store::{cached_shard, Dtype, ShardValues, TrackShard};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    fn better(self, new: f64, old: f64) -> bool {
        match self {
            BestMetric::Mse | BestMetric::Loss => new < old,
            _ => new > old,
        }
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

/// What the training loop reports as it goes.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Ready { train_intervals: usize, val_intervals: usize, skipped_empty: usize, start_epoch: usize },
    Batch { epoch: usize, done: usize, total: usize, loss: f64, bases_per_second: f64 },
    Validating { epoch: usize },
    Epoch(EpochRecord),
}

/// The tracks of a run, as memory-mapped shards over the genome's chromosomes.
pub struct LoadedTracks {
    pub sizes: ChromSizes,
    pub sets: Vec<TrackSet>,
}

/// Opens (converting once, through the cache) a coverage track and checks it against the
/// genome: same chromosomes and lengths, no negative values.
pub fn open_coverage(path: &Path, sizes: &ChromSizes, what: &str) -> Result<Arc<TrackShard>, Error> {
    let shard = cached_shard(path, Some(Dtype::F32), Some(sizes))?;
    if shard.sizes() != sizes {
        return Err(FileError::Mismatch(format!(
            "{}: its chromosomes differ from the genome sizes ({what})",
            path.display()
        ))
        .into());
    }
    for id in 0..sizes.len() {
        if let ShardValues::F32(v) = shard.chrom_values(id) {
            if let Some(pos) = v.iter().position(|&x| !(x >= 0.0)) {
                return Err(FileError::content(
                    path,
                    format!(
                        "{what}: value {} at {}:{} — coverage must be finite and non-negative",
                        v[pos],
                        sizes.name(id),
                        pos + 1
                    ),
                )
                .into());
            }
        }
    }
    Ok(Arc::new(shard))
}

/// Opens a peak file as a 0/1 mask over the genome.
pub fn open_peaks(path: &Path, sizes: &ChromSizes) -> Result<Arc<TrackShard>, Error> {
    Ok(Arc::new(cached_shard(path, Some(Dtype::U8), Some(sizes))?))
}

/// Loads every track of a training run.
pub fn load_training_tracks(opts: &TrainOptions) -> Result<LoadedTracks, Error> {
    let sizes = ChromSizes::read(&opts.genome)?;
    let extras = opts
        .extra_tracks
        .iter()
        .map(|(name, p)| open_coverage(p, &sizes, &format!("extra track {name}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sets = Vec::new();
    for pair in &opts.pairs {
        let mut inputs = vec![open_coverage(&pair.noisy, &sizes, "noisy track")?];
        inputs.extend(extras.iter().cloned());
        sets.push(TrackSet {
            inputs,
            clean: Some(open_coverage(&pair.clean, &sizes, "clean track")?),
            peaks: Some(open_peaks(&pair.peaks, &sizes)?),
        });
    }
    Ok(LoadedTracks { sizes, sets })
}

/// Adam moments of every parameter.
struct AdamState<B: Backend> {
    m: Vec<B::Buf>,
    v: Vec<B::Buf>,
}

/// The training order of an epoch: a shuffle seeded by (seed, epoch).
pub fn epoch_order<T: Clone>(items: &[T], seed: u64, epoch: usize) -> Vec<T> {
    crate::rng::shuffled(items, mix(seed ^ mix(epoch as u64 + 1)))
}

/// Trains (or resumes, when `resume` and DIR holds a run) and returns the epoch records.
pub fn train<B: Backend>(
    backend: &B,
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
    events: &mut dyn FnMut(TrainEvent),
) -> Result<Vec<EpochRecord>, Error> {
    if opts.pairs.is_empty() {
        return Err(FileError::Argument("training needs at least one --noisy/--clean/--peaks set".into()).into());
    }
    if opts.batch == 0 || opts.interval == 0 || opts.epochs == 0 {
        return Err(FileError::Argument("--batch, --interval and --epochs must be at least 1".into()).into());
    }
    let model_cfg = DenoiseConfig { in_channels: 1 + opts.extra_tracks.len(), ..opts.model };
    model_cfg.validate().map_err(FileError::Argument)?;
    if (opts.pad as usize) < model_cfg.receptive_radius() {
        return Err(FileError::Argument(format!(
            "--pad {} is smaller than the model's receptive radius ({} bases): outputs near interval edges would depend on where intervals start; use --pad {} or more",
            opts.pad,
            model_cfg.receptive_radius(),
            model_cfg.receptive_radius()
        ))
        .into());
    }
    let tracks = load_training_tracks(opts)?;
    let sizes = &tracks.sizes;
    let val = chrom_ids(sizes, &opts.val_chroms, "--val-chrom").map_err(FileError::Argument)?;
    let holdout = chrom_ids(sizes, &opts.holdout_chroms, "--holdout-chrom").map_err(FileError::Argument)?;
    if val.is_empty() {
        return Err(FileError::Argument("give at least one --val-chrom: validation picks the best model".into()).into());
    }
    let train_chroms: Vec<usize> = (0..sizes.len()).filter(|c| !val.contains(c) && !holdout.contains(c)).collect();
    if train_chroms.is_empty() {
        return Err(FileError::Argument(
            "no chromosome is left for training after --val-chrom and --holdout-chrom".into(),
        )
        .into());
    }
    let shape = BatchShape { batch: opts.batch, len: opts.interval, pad: opts.pad, channels: model_cfg.in_channels };
    let mut train_intervals = Vec::new();
    let mut val_intervals = Vec::new();
    for (source, set) in tracks.sets.iter().enumerate() {
        train_intervals.extend(
            tile(sizes, &train_chroms, opts.interval, source)
                .into_iter()
                .filter(|iv| !opts.skip_empty || !interval_is_empty(set, iv, shape)),
        );
        val_intervals.extend(tile(sizes, &val, opts.interval, source));
    }
    let all_train: usize = tracks.sets.len() * tile(sizes, &train_chroms, opts.interval, 0).len();

    std::fs::create_dir_all(out).map_err(FileError::io(out))?;
    let dir = ModelDir::new(out);
    let config = ModelConfig {
        format: "chromax-denoise-1".into(),
        model: model_cfg,
        interval: opts.interval,
        pad: opts.pad,
        extra_tracks: opts.extra_tracks.iter().map(|(n, _)| n.clone()).collect(),
        training: serde_json::to_value(opts).map_err(|e| FileError::Argument(e.to_string()))?,
        created_by: format!("chromax {}", env!("CARGO_PKG_VERSION")),
    };

    let mut net = DenoiseNet::new(backend, model_cfg, opts.seed)?;
    let mut adam = AdamState::<B> {
        m: net.params().iter().map(|p| backend.zeros(p.len())).collect::<Result<_, _>>()?,
        v: net.params().iter().map(|p| backend.zeros(p.len())).collect::<Result<_, _>>()?,
    };
    let mut state = TrainState { epoch: 0, step: 0, best_metric: None, best_epoch: None };
    let mut log: Vec<String> = vec![log_header()];
    if resume && dir.path(STATE_FILE).exists() {
        let saved: ModelConfig = read_json(&dir.path(CONFIG_FILE), "chromax model config")?;
        if saved.model != model_cfg || saved.interval != opts.interval || saved.pad != opts.pad {
            return Err(FileError::content(
                dir.path(CONFIG_FILE),
                format!("--resume: the run in this directory has model {:?}, interval {} and pad {}; this command asks for {model_cfg:?}, {} and {}", saved.model, saved.interval, saved.pad, opts.interval, opts.pad),
            )
            .into());
        }
        state = read_json(&dir.path(STATE_FILE), "training state")?;
        let tensors = read_tensors(&dir.path(LAST_FILE))?;
        load_weights(backend, &mut net, &dir.path(LAST_FILE), &tensors)?;
        for (i, p) in net.params().iter().enumerate() {
            for (slot, prefix) in [(&mut adam.m[i], "adam.m."), (&mut adam.v[i], "adam.v.")] {
                let (shape, values) = tensors.get(&format!("{prefix}{}", p.name)).ok_or_else(|| {
                    FileError::content(dir.path(LAST_FILE), format!("no optimiser state {prefix}{}", p.name))
                })?;
                if *shape != p.shape {
                    return Err(FileError::content(
                        dir.path(LAST_FILE),
                        format!("optimiser state {prefix}{} has the wrong shape", p.name),
                    )
                    .into());
                }
                *slot = upload_f32(backend, values)?;
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.path(LOG_FILE)) {
            log = text.lines().take(state.epoch + 1).map(String::from).collect();
        }
    } else if !resume && dir.path(STATE_FILE).exists() {
        return Err(FileError::content(
            out,
            "already holds a training run: continue it with --resume, or choose another -o",
        )
        .into());
    }
    write_json(&dir.path(CONFIG_FILE), &config)?;
    events(TrainEvent::Ready {
        train_intervals: train_intervals.len(),
        val_intervals: val_intervals.len(),
        skipped_empty: all_train - train_intervals.len(),
        start_epoch: state.epoch,
    });

    let loss_shape = |n: usize| DenoiseLossParams {
        batch: n,
        len: shape.width(),
        pad: opts.pad as usize,
        mse_weight: opts.mse_weight,
        pearson_weight: opts.pearson_weight,
        bce_weight: opts.bce_weight,
    };
    let mut records = Vec::new();
    for epoch in state.epoch..opts.epochs {
        let started = Instant::now();
        let order = epoch_order(&train_intervals, opts.seed, epoch);
        let total = order.len().div_ceil(opts.batch);
        let stream = BatchStream::start(backend, tracks.sets.clone(), order, shape, 3)?;
        let (mut sum_loss, mut sum_mse, mut sum_r, mut sum_bce, mut batches) = (0.0, 0.0, 0.0, 0.0, 0usize);
        let mut bases = 0u64;
        while let Some(batch) = stream.next_batch() {
            let batch = batch?;
            let n = batch.len();
            let x = backend.upload_f32(batch.input()?)?;
            let clean = backend.upload_f32(batch.clean()?)?;
            let mask = backend.upload_f32(batch.mask()?)?;
            let (out_, cache) = net
                .forward(backend, x, n, shape.width())
                .map_err(|e| out_of_memory_advice(e, backend, &model_cfg, shape))?;
            let mut d_reg = backend.zeros(n * shape.width())?;
            let mut d_cls = backend.zeros(n * shape.width())?;
            let parts = backend.denoise_loss(
                &loss_shape(n),
                DenoiseLoss {
                    reg: &out_.reg,
                    clean: &clean,
                    cls_logits: &out_.logits,
                    mask: &mask,
                    d_reg: &mut d_reg,
                    d_cls: &mut d_cls,
                },
            )?;
            // The loss came back to the host, so the uploads are done: the buffers can go back.
            stream.recycle(batch);
            net.backward(backend, &out_, &cache, &d_reg, &d_cls)
                .map_err(|e| out_of_memory_advice(e, backend, &model_cfg, shape))?;
            drop(cache);
            state.step += 1;
            let adam_params = AdamParams { weight_decay: opts.weight_decay, ..AdamParams::new(opts.lr, state.step) };
            for (i, p) in net.params_mut().into_iter().enumerate() {
                let bufs = AdamStep { param: &mut p.value, grad: &p.grad, m: &mut adam.m[i], v: &mut adam.v[i] };
                backend.adam_step(&adam_params, bufs)?;
            }
            if !parts.total.is_finite() {
                return Err(FileError::Argument(format!(
                    "the loss became {} at epoch {} step {}: lower --lr",
                    parts.total,
                    epoch + 1,
                    state.step
                ))
                .into());
            }
            sum_loss += parts.total;
            sum_mse += parts.mse;
            sum_r += parts.pearson;
            sum_bce += parts.bce;
            batches += 1;
            bases += (n as u64) * opts.interval;
            events(TrainEvent::Batch {
                epoch: epoch + 1,
                done: batches,
                total,
                loss: sum_loss / batches as f64,
                bases_per_second: bases as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        events(TrainEvent::Validating { epoch: epoch + 1 });
        let val_metrics = validate(backend, &net, &tracks, &val_intervals, shape, &loss_shape)?;
        let b = batches.max(1) as f64;
        let metric = val_metrics.get(opts.best_metric);
        let best = metric.is_finite() && state.best_metric.is_none_or(|old| opts.best_metric.better(metric, old));
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: sum_loss / b,
            train_mse: sum_mse / b,
            train_pearson: sum_r / b,
            train_bce: sum_bce / b,
            val: val_metrics,
            seconds: started.elapsed().as_secs_f64(),
            bases_per_second: bases as f64 / train_seconds.max(1e-9),
            best,
        };
        // Checkpoint: the best model, the last state, the log; each file atomically.
        let weights = weight_tensors(backend, &net)?;
        if best {
            state.best_metric = Some(metric);
            state.best_epoch = Some(epoch + 1);
            write_tensors(&dir.path(MODEL_FILE), &weights)?;
        }
        let mut last = weights;
        for (i, p) in net.params().iter().enumerate() {
            last.insert(format!("adam.m.{}", p.name), (p.shape.clone(), download_f32(backend, &adam.m[i])?));
            last.insert(format!("adam.v.{}", p.name), (p.shape.clone(), download_f32(backend, &adam.v[i])?));
        }
        write_tensors(&dir.path(LAST_FILE), &last)?;
        state.epoch = epoch + 1;
        write_json(&dir.path(STATE_FILE), &state)?;
        log.push(log_line(&record));
        write_lines(&dir.path(LOG_FILE), &log)?;
        events(TrainEvent::Epoch(record));
        records.push(record);
    }
    Ok(records)
}

/// Turns an out-of-memory error into advice: the batch size that would fit.
fn out_of_memory_advice<B: Backend>(
    e: crate::error::BackendError,
    backend: &B,
    cfg: &DenoiseConfig,
    shape: BatchShape,
) -> Error {
    let crate::error::BackendError::OutOfMemory { device, .. } = &e else { return e.into() };
    let per_interval = cfg.train_bytes_per_interval(shape.width());
    // The failed step's buffers are freed by the time the error arrives here, so the free
    // memory is what a step can use; keep a tenth in reserve.
    let free = backend.free_memory().unwrap_or(0);
    let fits = (free / 10 * 9) / per_interval.max(1);
    FileError::Argument(format!(
        "{device} ran out of memory training batches of {} intervals of {} bases (about {:.0} MiB per interval); --batch {} would fit{}",
        shape.batch,
        shape.width(),
        per_interval as f64 / (1u64 << 20) as f64,
        fits.max(1),
        if fits == 0 { ", or shorten --interval" } else { "" }
    ))
    .into()
}

/// Validation over the given intervals: loss, and exact MSE, Pearson, AUROC, AUPRC over every
/// scored base.
fn validate<B: Backend>(
    backend: &B,
    net: &DenoiseNet<B>,
    tracks: &LoadedTracks,
    intervals: &[Interval],
    shape: BatchShape,
    loss_shape: &dyn Fn(usize) -> DenoiseLossParams,
) -> Result<ValMetrics, Error> {
    let (mut pred, mut prob, mut clean, mut mask) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut loss_sum, mut n_sum) = (0.0, 0usize);
    let stream = BatchStream::start(backend, tracks.sets.clone(), intervals.to_vec(), shape, 2)?;
    let w = shape.width();
    while let Some(batch) = stream.next_batch() {
        let batch = batch?;
        let n = batch.len();
        let x = backend.upload_f32(batch.input()?)?;
        let out = net.infer(backend, &x, n, w)?;
        let (clean_d, mask_d) = (backend.upload_f32(batch.clean()?)?, backend.upload_f32(batch.mask()?)?);
        let (mut dr, mut dc) = (backend.zeros(n * w)?, backend.zeros(n * w)?);
        loss_sum += backend
            .denoise_loss(
                &loss_shape(n),
                DenoiseLoss {
                    reg: &out.reg,
                    clean: &clean_d,
                    cls_logits: &out.logits,
                    mask: &mask_d,
                    d_reg: &mut dr,
                    d_cls: &mut dc,
                },
            )?
            .total
            * n as f64;
        n_sum += n;
        let reg = download_f32(backend, &out.reg)?;
        let logits = download_f32(backend, &out.logits)?;
        for (i, iv) in batch.intervals.iter().enumerate() {
            let chrom_len = tracks.sizes.length(iv.chrom);
            let from = (shape.pad + iv.skip) as usize;
            let to = (shape.pad + shape.len.min(chrom_len - iv.start)) as usize;
            let row = i * w;
            pred.extend_from_slice(&reg[row + from..row + to]);
            prob.extend(logits[row + from..row + to].iter().map(|&z| crate::backend::cpu::sigmoid(z)));
            clean.extend_from_slice(&batch.clean()?[row + from..row + to]);
            mask.extend_from_slice(&batch.mask()?[row + from..row + to]);
        }
        stream.recycle(batch);
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

fn log_header() -> String {
    "epoch\ttrain_loss\ttrain_mse\ttrain_pearson\ttrain_bce\tval_loss\tval_mse\tval_pearson\tval_auroc\tval_auprc\tseconds\tbases_per_s\tbest".into()
}

fn log_line(r: &EpochRecord) -> String {
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

/// Loads a trained model directory onto a backend.
pub fn load_model<B: Backend>(backend: &B, dir: &Path) -> Result<(DenoiseNet<B>, ModelConfig), Error> {
    let (md, config) = ModelDir::open(dir)?;
    let mut net = DenoiseNet::new(backend, config.model, 0)?;
    let tensors: BTreeMap<_, _> = read_tensors(&md.path(MODEL_FILE))?;
    load_weights(backend, &mut net, &md.path(MODEL_FILE), &tensors)?;
    Ok((net, config))
}
