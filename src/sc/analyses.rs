//! What a trained SeqNet is for beyond embeddings (scBasset's analyses): TF activity per cell
//! by motif insertion, in-silico saturation mutagenesis (ISM) and variant effects per group
//! of cells. Everything runs on the backend the model is on; sequences go through the trunk
//! in batches, and the head is applied as one GEMM per batch (sequences × bottleneck by
//! bottleneck × cells: a width-1 convolution).
//!
//! Conventions (scBasset's, with the scvi-tools port's reading):
//! * **Denoised accessibility** of a sequence in cell c is σ(z·w_c): the cell's intercept (its
//!   depth) dropped.
//! * **TF activity**: per cell, the mean denoised accessibility over `instances` background
//!   sequences with a motif instance written over their centre (start ⌊L/2⌋ − ⌊w/2⌋, length
//!   kept) minus the mean over the backgrounds alone; then z-scored across cells (population
//!   standard deviation). Backgrounds: `background` peaks drawn by seed, their L-bp windows
//!   around the centre, dinucleotide-shuffled ([`super::shuffle`]); instance i goes into
//!   background i mod `background`; instances are drawn position by position from the PWM.
//! * **ISM and variants**: a change of the sequence moves z by Δz; a cell's logit moves by
//!   Δz·w_c (the intercept cancels), so a group's mean logit change is Δz·mean(w_c). The
//!   probability change per group is the mean over its cells of the change in denoised
//!   accessibility.

use super::groups::Groups;
use super::motifs::Motif;
use super::shuffle::dinucleotide_shuffle;
use crate::backend::cpu::sigmoid;
use crate::backend::{Backend, Conv1dFwd, Conv1dParams, Elementwise, ElementwiseOp};
use crate::error::FileError;
use crate::io::bed::Interval;
use crate::io::vcf::{Snv, BASES};
use crate::models::{SeqBatch, SeqNet};
use crate::nn::{download_f32, upload_f32};
use crate::rng::{mix, shuffled_for, SplitMix64, GAMMA};
use crate::store::bases::BaseStore;
use crate::Error;
use rayon::prelude::*;

/// The head of a model on the host: cell embeddings (cells × dim) and intercepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub dim: usize,
    pub cells: usize,
}

impl Head {
    pub fn of<B: Backend>(backend: &B, net: &SeqNet<B>) -> Result<Head, Error> {
        Ok(Head {
            w: download_f32(backend, &net.head_w.value)?,
            b: download_f32(backend, &net.head_b.value)?,
            dim: net.config.bottleneck,
            cells: net.config.cells,
        })
    }

    fn row(&self, c: usize) -> &[f32] {
        &self.w[c * self.dim..(c + 1) * self.dim]
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// The bottleneck codes z (n × dim) of n sequences (n × seq_len base codes, as they are: no
/// reverse complement, no shift), `batch` at a time, in inference mode.
pub fn embed_sequences<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    codes: &[u8],
    batch: usize,
) -> Result<Vec<f32>, Error> {
    let len = net.config.seq_len;
    if len == 0 || !codes.len().is_multiple_of(len) || batch == 0 {
        return Err(FileError::Argument(format!(
            "embed_sequences: {} codes are not whole sequences of {len}, or batch {batch} < 1",
            codes.len()
        ))
        .into());
    }
    let mut z = Vec::with_capacity(codes.len() / len * net.config.bottleneck);
    for chunk in codes.chunks(batch * len) {
        let n = chunk.len() / len;
        let (reverse, shift) = (vec![false; n], vec![0i32; n]);
        let out = net.embed_peaks(backend, &SeqBatch { codes: chunk, reverse: &reverse, shift: &shift })?;
        z.extend(download_f32(backend, &out)?);
    }
    Ok(z)
}

/// σ(z·wᵀ + bias) of the rows of `z` (n × dim, on the host) against `w` (cells × dim, on the
/// backend): the head as one GEMM (a width-1 convolution) and a sigmoid on the backend, read
/// back as n × cells, row-major.
pub fn head_probabilities<B: Backend>(
    backend: &B,
    w: &B::Buf,
    bias: Option<&B::Buf>,
    z: &[f32],
    dim: usize,
    cells: usize,
) -> Result<Vec<f32>, Error> {
    let n = z.len() / dim.max(1);
    let x = upload_f32(backend, z)?;
    let p = Conv1dParams { batch: n, c_in: dim, c_out: cells, len: 1, kernel: 1, dilation: 1 };
    let mut logits = backend.zeros(n * cells)?;
    backend.conv1d_fwd(&p, Conv1dFwd { x: &x, w, bias, y: &mut logits })?;
    let mut probs = backend.zeros(n * cells)?;
    backend.elementwise(ElementwiseOp::SigmoidFwd, Elementwise { a: &logits, b: None, out: &mut probs })?;
    drop(logits);
    Ok(download_f32(backend, &probs)?)
}

/// Per cell, Σ over the sequences of σ(z·w_c) (denoised: no intercept), `batch` sequences'
/// worth of the head at a time ([`head_probabilities`]).
pub fn sum_denoised<B: Backend>(backend: &B, net: &SeqNet<B>, z: &[f32], batch: usize) -> Result<Vec<f64>, Error> {
    let (dim, cells) = (net.config.bottleneck, net.config.cells);
    let mut sums = vec![0.0f64; cells];
    for chunk in z.chunks(batch.max(1) * dim) {
        let host = head_probabilities(backend, &net.head_w.value, None, chunk, dim, cells)?;
        for row in host.chunks(cells) {
            for (s, &v) in sums.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
    }
    Ok(sums)
}

/// Settings of TF activity (scBasset's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TfActivityOptions {
    pub instances: usize,
    pub background: usize,
    pub seed: u64,
    pub batch: usize,
}

impl Default for TfActivityOptions {
    fn default() -> Self {
        TfActivityOptions { instances: 1000, background: 1000, seed: 10, batch: 128 }
    }
}

/// `n` background sequences: peaks drawn by seed (all of them in turn when there are fewer),
/// their `seq_len` windows around the centre, each dinucleotide-shuffled with its own seed.
pub fn background_sequences(
    genome: &BaseStore,
    peaks: &[Interval],
    n: usize,
    seq_len: usize,
    seed: u64,
    origin: &str,
) -> Result<Vec<u8>, FileError> {
    if peaks.is_empty() || n == 0 {
        return Err(FileError::Argument(format!("{origin}: TF activity needs at least one peak and --background ≥ 1")));
    }
    let order = shuffled_for(&(0..peaks.len()).collect::<Vec<_>>(), seed ^ 0xB4C6_6D0D, 0);
    let picked: Vec<Interval> = (0..n).map(|i| peaks[order[i % order.len()]].clone()).collect();
    let windows = genome.peak_windows(&picked, seq_len, origin)?;
    let mut out = vec![0u8; windows.len()];
    out.par_chunks_mut(seq_len).zip(windows.par_chunks(seq_len)).enumerate().for_each(|(i, (dst, src))| {
        let mut rng = SplitMix64::new(mix(seed ^ (i as u64 + 1).wrapping_mul(GAMMA)));
        dst.copy_from_slice(&dinucleotide_shuffle(src, &mut rng));
    });
    Ok(out)
}

/// Where a motif of `width` is written in a sequence of `seq_len`: ⌊L/2⌋ − ⌊w/2⌋.
pub fn insert_at(seq_len: usize, width: usize) -> usize {
    seq_len / 2 - width / 2
}

/// `instances` sequences: background i mod n with an instance of `motif` (drawn with `rng`)
/// over its centre.
pub fn with_instances(
    background: &[u8],
    seq_len: usize,
    motif: &Motif,
    instances: usize,
    rng: &mut SplitMix64,
) -> Result<Vec<u8>, Error> {
    let w = motif.width();
    if w == 0 || w > seq_len {
        return Err(FileError::Argument(format!(
            "motif {} is {w} bp wide: it must fit the model's {seq_len} bp sequences",
            motif.id
        ))
        .into());
    }
    let n_bg = background.len() / seq_len;
    let at = insert_at(seq_len, w);
    let mut out = Vec::with_capacity(instances * seq_len);
    for i in 0..instances {
        let start = out.len();
        out.extend_from_slice(&background[(i % n_bg) * seq_len..(i % n_bg + 1) * seq_len]);
        out[start + at..start + at + w].copy_from_slice(&motif.sample(rng));
    }
    Ok(out)
}

/// TF activity of every motif in every cell: `raw` (cells × motifs, the mean difference of
/// denoised accessibility) and `scores` (the same z-scored across cells).
#[derive(Debug, Clone, PartialEq)]
pub struct TfActivity {
    pub raw: Vec<f32>,
    pub scores: Vec<f32>,
    pub cells: usize,
    pub motifs: usize,
}

/// The mean denoised accessibility of the backgrounds, per cell: computed once, reused for
/// every motif.
pub fn background_means<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    background: &[u8],
    batch: usize,
) -> Result<Vec<f64>, Error> {
    let n = background.len() / net.config.seq_len.max(1);
    let z = embed_sequences(backend, net, background, batch)?;
    Ok(sum_denoised(backend, net, &z, batch)?.into_iter().map(|s| s / n.max(1) as f64).collect())
}

/// TF activity (see the module's notes); `progress(k)` after each motif.
pub fn tf_activity<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    background: &[u8],
    bg_means: &[f64],
    motifs: &[Motif],
    opts: &TfActivityOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<TfActivity, Error> {
    let (cells, len) = (net.config.cells, net.config.seq_len);
    if opts.instances == 0 || bg_means.len() != cells {
        return Err(FileError::Argument(format!(
            "TF activity: --instances {} must be ≥ 1 and the background means must cover the model's {cells} cells",
            opts.instances
        ))
        .into());
    }
    let m = motifs.len();
    let mut raw = vec![0.0f32; cells * m];
    for (k, motif) in motifs.iter().enumerate() {
        let mut rng = SplitMix64::new(mix(opts.seed ^ (k as u64 + 1).wrapping_mul(GAMMA)));
        let seqs = with_instances(background, len, motif, opts.instances, &mut rng)?;
        let z = embed_sequences(backend, net, &seqs, opts.batch)?;
        let sums = sum_denoised(backend, net, &z, opts.batch)?;
        for c in 0..cells {
            raw[c * m + k] = (sums[c] / opts.instances as f64 - bg_means[c]) as f32;
        }
        progress(k + 1);
    }
    let mut scores = vec![0.0f32; cells * m];
    for k in 0..m {
        let col: Vec<f64> = (0..cells).map(|c| raw[c * m + k] as f64).collect();
        let mean = col.iter().sum::<f64>() / cells as f64;
        let sd = (col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cells as f64).sqrt();
        for c in 0..cells {
            scores[c * m + k] = if sd > 0.0 { ((col[c] - mean) / sd) as f32 } else { 0.0 };
        }
    }
    Ok(TfActivity { raw, scores, cells, motifs: m })
}

/// In-silico saturation mutagenesis of one window (seq_len codes): every single-base
/// substitution's mean logit change per group, laid out position × base (A C G T) × group;
/// the reference base's entries are 0. `group_w` is groups × dim (each group's mean cell
/// embedding, [`Groups::mean_rows`]).
pub fn ism_window<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    window: &[u8],
    group_w: &[f32],
    batch: usize,
) -> Result<Vec<f32>, Error> {
    let (len, dim) = (net.config.seq_len, net.config.bottleneck);
    if window.len() != len || group_w.is_empty() || !group_w.len().is_multiple_of(dim) {
        return Err(FileError::Argument(format!("ISM: a window of {} codes for a model of {len}", window.len())).into());
    }
    let groups = group_w.len() / dim;
    let mut subs: Vec<(usize, u8)> = Vec::with_capacity(3 * len);
    for (p, &r) in window.iter().enumerate() {
        subs.extend((0..4u8).filter(|&b| b != r).map(|b| (p, b)));
    }
    let mut codes = Vec::with_capacity((subs.len() + 1) * len);
    codes.extend_from_slice(window);
    for &(p, b) in &subs {
        let at = codes.len();
        codes.extend_from_slice(window);
        codes[at + p] = b;
    }
    let z = embed_sequences(backend, net, &codes, batch)?;
    let z_ref = &z[..dim];
    let mut out = vec![0.0f32; len * 4 * groups];
    for (i, &(p, b)) in subs.iter().enumerate() {
        let zm = &z[(i + 1) * dim..(i + 2) * dim];
        let dz: Vec<f32> = zm.iter().zip(z_ref).map(|(a, r)| a - r).collect();
        for g in 0..groups {
            out[(p * 4 + b as usize) * groups + g] = dot(&dz, &group_w[g * dim..(g + 1) * dim]) as f32;
        }
    }
    Ok(out)
}

/// Effects of SNVs per group: `logit` (variants × groups, the mean logit change alt − ref)
/// and `prob` (the mean change of denoised accessibility).
#[derive(Debug, Clone, PartialEq)]
pub struct VariantEffects {
    pub logit: Vec<f32>,
    pub prob: Vec<f32>,
    pub groups: usize,
}

/// The reference and alternative windows of each SNV, centred on it (the variant at
/// ⌊L/2⌋): `2 × variants` sequences, ref then alt. The genome's base must be the VCF's REF
/// (a mismatch names the VCF line); the chromosome must be in the genome.
pub fn variant_windows(
    genome: &BaseStore,
    snvs: &[Snv],
    seq_len: usize,
    vcf: &std::path::Path,
) -> Result<Vec<u8>, FileError> {
    let mut out = vec![0u8; 2 * snvs.len() * seq_len];
    for (v, w) in snvs.iter().zip(out.chunks_mut(2 * seq_len)) {
        let Some(chrom) = genome.sizes().id(&v.chrom) else {
            return Err(FileError::line(
                vcf,
                v.line,
                format!(
                    "chromosome '{}' is not in the genome (its names: {})",
                    v.chrom,
                    genome.sizes().names().iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let centre = seq_len / 2;
        let (r, a) = w.split_at_mut(seq_len);
        genome.read(chrom, v.pos as i64 - 1 - centre as i64, r);
        if r[centre] != v.reference {
            return Err(FileError::line(
                vcf,
                v.line,
                format!(
                    "REF {} disagrees with the genome, which has {} at {}:{} (is the VCF on another assembly?)",
                    BASES[v.reference as usize],
                    BASES[r[centre].min(4) as usize],
                    v.chrom,
                    v.pos
                ),
            ));
        }
        a.copy_from_slice(r);
        a[centre] = v.alt;
    }
    Ok(out)
}

/// Variant effects per group from the windows of [`variant_windows`].
pub fn variant_effects<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    windows: &[u8],
    head: &Head,
    groups: &Groups,
    batch: usize,
) -> Result<VariantEffects, Error> {
    let dim = head.dim;
    let z = embed_sequences(backend, net, windows, batch)?;
    let n = z.len() / dim / 2;
    let group_w = groups.mean_rows(&head.w, dim);
    let g = groups.names.len();
    let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|v| {
            let (zr, za) = (&z[2 * v * dim..(2 * v + 1) * dim], &z[(2 * v + 1) * dim..(2 * v + 2) * dim]);
            let dz: Vec<f32> = za.iter().zip(zr).map(|(a, r)| a - r).collect();
            let logit = (0..g).map(|k| dot(&dz, &group_w[k * dim..(k + 1) * dim]) as f32).collect();
            let prob = groups
                .members
                .iter()
                .map(|cells| {
                    let s: f64 = cells
                        .iter()
                        .map(|&c| sigmoid(dot(za, head.row(c as usize))) - sigmoid(dot(zr, head.row(c as usize))))
                        .sum();
                    (s / cells.len() as f64) as f32
                })
                .collect();
            (logit, prob)
        })
        .collect();
    let (logit, prob): (Vec<Vec<f32>>, Vec<Vec<f32>>) = rows.into_iter().unzip();
    Ok(VariantEffects { logit: logit.concat(), prob: prob.concat(), groups: g })
}
