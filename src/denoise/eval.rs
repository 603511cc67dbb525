//! `chromax denoise eval`: denoised against clean, beside the noisy input as the baseline.

use super::infer::{check_output, denoise_pieces, open_inputs, prefixed, resolve_spans, Span};
use super::model::load_model;
use super::skip::Piece;
use crate::backend::Backend;
use crate::data::{open_coverage, open_peaks};
use crate::error::FileError;
use crate::eval::metrics::{auroc_auprc, mse, pearson, spearman};
use crate::io::ChromSizes;
use crate::store::{ShardSlice, TrackShard};
use crate::Error;
use serde::Serialize;
use std::path::PathBuf;

/// Where the denoised values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// `PREFIX.track.bw` and `PREFIX.prob.bw` from `chromax denoise run --probabilities`.
    Files { prefix: PathBuf },
    /// Run the model now, in memory.
    /// `dense`: no skipping of empty coverage (the same values; see [`super::skip`]).
    Model { dir: PathBuf, extra_tracks: Vec<(String, PathBuf)>, batch: usize, dense: bool },
}

/// Settings of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub prediction: Prediction,
    /// The noisy input: the baseline (and the model's input for [`Prediction::Model`]).
    pub noisy: Option<PathBuf>,
    pub clean: PathBuf,
    pub peaks: PathBuf,
    pub genome: Option<PathBuf>,
    pub regions: Vec<String>,
}

/// Metrics of one signal against the clean track and peaks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SignalMetrics {
    pub pearson: f64,
    pub spearman: f64,
    pub mse: f64,
    pub pearson_in_peaks: f64,
    pub spearman_in_peaks: f64,
    pub mse_in_peaks: f64,
    pub pearson_outside_peaks: f64,
    pub spearman_outside_peaks: f64,
    pub mse_outside_peaks: f64,
    /// Of the per-base peak probability (for the noisy baseline: the noisy coverage as score).
    pub auroc: f64,
    pub auprc: f64,
}

/// The evaluation's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub bases: u64,
    pub bases_in_peaks: u64,
    pub denoised: SignalMetrics,
    pub noisy: Option<SignalMetrics>,
}

fn read_span(track: &TrackShard, sizes: &ChromSizes, s: &Span, out: &mut Vec<f32>) -> Result<(), FileError> {
    let n = (s.end - s.start) as usize;
    let at = out.len();
    out.resize(at + n, 0.0);
    let slice: ShardSlice<'_> = track.slice(sizes.name(s.chrom), s.start as i64, s.end as i64)?;
    slice.to_f32(&mut out[at..]);
    Ok(())
}

/// Metrics of `signal` (and `score` for the ranking) against `clean` and `mask`.
pub fn signal_metrics(signal: &[f32], score: &[f32], clean: &[f32], mask: &[f32]) -> SignalMetrics {
    let split = |inside: bool| -> (Vec<f32>, Vec<f32>) {
        signal.iter().zip(clean).zip(mask).filter(|(_, &m)| (m != 0.0) == inside).map(|((&s, &c), _)| (s, c)).unzip()
    };
    let ((si, ci), (so, co)) = (split(true), split(false));
    let (auroc, auprc) = auroc_auprc(score, mask);
    SignalMetrics {
        pearson: pearson(signal, clean),
        spearman: spearman(signal, clean),
        mse: mse(signal, clean),
        pearson_in_peaks: pearson(&si, &ci),
        spearman_in_peaks: spearman(&si, &ci),
        mse_in_peaks: mse(&si, &ci),
        pearson_outside_peaks: pearson(&so, &co),
        spearman_outside_peaks: spearman(&so, &co),
        mse_outside_peaks: mse(&so, &co),
        auroc,
        auprc,
    }
}

/// The per-base values an evaluation compares, over the regions laid end to end.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalData {
    pub clean: Vec<f32>,
    /// 0/1: inside a peak of the peak file.
    pub mask: Vec<f32>,
    pub denoised: Vec<f32>,
    pub prob: Vec<f32>,
    pub noisy: Option<Vec<f32>>,
}

impl EvalData {
    /// The metrics of the denoised track (and of the noisy baseline).
    pub fn report(&self) -> EvalReport {
        EvalReport {
            bases: self.clean.len() as u64,
            bases_in_peaks: self.mask.iter().filter(|&&m| m != 0.0).count() as u64,
            denoised: signal_metrics(&self.denoised, &self.prob, &self.clean, &self.mask),
            noisy: self.noisy.as_ref().map(|v| signal_metrics(v, v, &self.clean, &self.mask)),
        }
    }
}

/// Evaluates the prediction (and the noisy baseline) over the regions, or the whole genome.
pub fn evaluate<B: Backend>(backend: &B, opts: &EvalOptions) -> Result<EvalReport, Error> {
    Ok(evaluate_data(backend, opts)?.report())
}

/// The values [`evaluate`] compares (for figures of the same evaluation).
pub fn evaluate_data<B: Backend>(backend: &B, opts: &EvalOptions) -> Result<EvalData, Error> {
    if matches!(opts.prediction, Prediction::Model { batch: 0, .. }) {
        return Err(FileError::Argument("--batch must be at least 1".into()).into());
    }
    let sizes = match &opts.genome {
        Some(g) => ChromSizes::read(g)?,
        None => crate::store::build::read_track(&opts.clean, None)?.sizes().clone(),
    };
    let spans = resolve_spans(&opts.regions, &sizes)?;
    let clean_track = open_coverage(&opts.clean, &sizes, "clean track")?;
    let peaks_track = open_peaks(&opts.peaks, &sizes)?;
    let (mut clean, mut mask) = (Vec::new(), Vec::new());
    for s in &spans {
        read_span(&clean_track, &sizes, s, &mut clean)?;
        read_span(&peaks_track, &sizes, s, &mut mask)?;
    }
    let noisy_track = opts.noisy.as_ref().map(|p| open_coverage(p, &sizes, "noisy track")).transpose()?;
    let (pred, prob) = match &opts.prediction {
        Prediction::Files { prefix } => {
            let (track, prob) = (prefixed(prefix, ".track.bw"), prefixed(prefix, ".prob.bw"));
            if !prob.exists() {
                return Err(FileError::content(
                    &prob,
                    "missing: run `chromax denoise run --probabilities`, or evaluate with --model",
                )
                .into());
            }
            let (track, prob) =
                (open_coverage(&track, &sizes, "denoised track")?, open_coverage(&prob, &sizes, "probabilities")?);
            let (mut t, mut p) = (Vec::new(), Vec::new());
            for s in &spans {
                read_span(&track, &sizes, s, &mut t)?;
                read_span(&prob, &sizes, s, &mut p)?;
            }
            (t, p)
        }
        Prediction::Model { dir, extra_tracks, batch, dense } => {
            let noisy = opts
                .noisy
                .as_ref()
                .ok_or_else(|| FileError::Argument("--model needs --noisy, the model's input".into()))?;
            let (net, config) = load_model(backend, dir)?;
            let set = open_inputs(&config, noisy, extra_tracks, &sizes)?;
            let (mut t, mut p) = (Vec::new(), Vec::new());
            denoise_pieces(backend, &net, &config, set, &spans, *batch, *dense, &mut |piece| {
                match piece {
                    Piece::Constant { len, prob, .. } => {
                        t.resize(t.len() + len as usize, 0.0);
                        p.resize(p.len() + len as usize, prob);
                    }
                    Piece::Values { chrom, start, reg, prob } => {
                        check_output(dir, sizes.name(chrom), start, reg, prob)?;
                        t.extend_from_slice(reg);
                        p.extend_from_slice(prob);
                    }
                }
                Ok(())
            })?;
            (t, p)
        }
    };
    let noisy = match noisy_track {
        Some(track) => {
            let mut v = Vec::new();
            for s in &spans {
                read_span(&track, &sizes, s, &mut v)?;
            }
            Some(v)
        }
        None => None,
    };
    Ok(EvalData { clean, mask, denoised: pred, prob, noisy })
}

/// The report as a table: one row per metric, columns noisy | denoised.
pub fn format_table(r: &EvalReport) -> String {
    let rows: [(&str, fn(&SignalMetrics) -> f64); 11] = [
        ("Pearson", |m| m.pearson),
        ("Spearman", |m| m.spearman),
        ("MSE", |m| m.mse),
        ("Pearson in peaks", |m| m.pearson_in_peaks),
        ("Spearman in peaks", |m| m.spearman_in_peaks),
        ("MSE in peaks", |m| m.mse_in_peaks),
        ("Pearson outside peaks", |m| m.pearson_outside_peaks),
        ("Spearman outside peaks", |m| m.spearman_outside_peaks),
        ("MSE outside peaks", |m| m.mse_outside_peaks),
        ("AUROC (peaks)", |m| m.auroc),
        ("AUPRC (peaks)", |m| m.auprc),
    ];
    let mut out = format!("{} bases evaluated, {} in clean peaks\n", r.bases, r.bases_in_peaks);
    out.push_str(&format!("{:<24} {:>12} {:>12}\n", "metric", "noisy", "denoised"));
    for (name, f) in rows {
        let noisy = r.noisy.as_ref().map_or("-".to_string(), |m| format!("{:.4}", f(m)));
        out.push_str(&format!("{name:<24} {noisy:>12} {:>12.4}\n", f(&r.denoised)));
    }
    out
}
