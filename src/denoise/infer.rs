//! Denoising with a trained model: bigWig in; denoised bigWig, probability bigWig and
//! narrowPeak out, streamed while the model computes (bounded memory, no text files, no
//! external programs).
//!
//! Each chromosome (or region) is tiled as in training; every base gets exactly one value,
//! chromosome tails included (the last interval ends at the chromosome's end). A batch
//! producer slices the inputs ahead of the compute; two writer threads compress the output
//! bigWigs while the next batches run.

use super::model::{load_model, ModelConfig};
use super::peak_calls::{ProbPeakCaller, ProbPeakOptions};
use super::skip::{denoise_spans_skipping, Piece, SkipPlan, SkipStats};
use crate::backend::cpu::sigmoid;
use crate::backend::Backend;
use crate::coverage::Region;
use crate::data::{open_coverage, tile_range, BatchShape, BatchStream, Interval, TrackSet};
use crate::error::FileError;
use crate::io::bed::{read_intervals, write_narrowpeak, NarrowPeak};
use crate::io::bigwig::BigWigStream;
use crate::io::guard::Files;
use crate::io::ChromSizes;
use crate::models::DenoiseNet;
use crate::nn::download_f32;
use crate::track::{runs_from_dense, Run};
use crate::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where to denoise: whole chromosomes, or regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub chrom: usize,
    pub start: u64,
    pub end: u64,
}

/// Settings of `chromax denoise run`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub model: PathBuf,
    pub noisy: PathBuf,
    /// Extra tracks by name (must match the model's).
    pub extra_tracks: Vec<(String, PathBuf)>,
    /// Chromosome sizes (default: the noisy bigWig's own chromosomes).
    pub genome: Option<PathBuf>,
    /// BED files or `chr:start-end` strings; none = every chromosome.
    pub regions: Vec<String>,
    pub prefix: PathBuf,
    pub round: Option<u32>,
    pub peaks: ProbPeakOptions,
    pub probabilities: bool,
    pub batch: usize,
    /// Run the network on every base, without skipping empty coverage (for comparison:
    /// the output is the same bits either way).
    pub dense: bool,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub bases: u64,
    /// Bases whose receptive field holds signal, and bases the network ran on (margins and
    /// padding included); with `--dense` or where skipping cannot be exact, every row's.
    pub work: SkipStats,
    /// Whether empty coverage was skipped.
    pub skipping: bool,
    pub peaks: usize,
    pub seconds: f64,
    pub outputs: Vec<PathBuf>,
}

pub use crate::io::prefixed;

/// The spans to denoise: the regions (sorted, overlaps merged), or every chromosome.
pub fn resolve_spans(regions: &[String], sizes: &ChromSizes) -> Result<Vec<Span>, FileError> {
    if regions.is_empty() {
        return Ok((0..sizes.len()).map(|c| Span { chrom: c, start: 0, end: sizes.length(c) }).collect());
    }
    let mut spans = Vec::new();
    for r in regions {
        let as_path = Path::new(r);
        let list: Vec<(String, u64, u64, String)> = if as_path.is_file() {
            let intervals = read_intervals(as_path)?;
            if intervals.is_empty() {
                return Err(FileError::content(as_path, "--regions: the file holds no regions"));
            }
            intervals.into_iter().map(|iv| (iv.chrom, iv.start, iv.end, as_path.display().to_string())).collect()
        } else {
            let region = Region::parse(r).map_err(FileError::Argument)?;
            vec![(region.chrom, region.start, region.end, format!("--regions {r}"))]
        };
        for (chrom, start, end, origin) in list {
            let id = sizes
                .id(&chrom)
                .ok_or_else(|| FileError::Argument(format!("{origin}: no chromosome '{chrom}' in the genome")))?;
            let len = sizes.length(id);
            let end = if end == u64::MAX { len } else { end };
            if end > len {
                return Err(FileError::Argument(format!(
                    "{origin}: {chrom}:{}-{end} goes past the chromosome's end ({len} bp)",
                    start + 1
                )));
            }
            spans.push(Span { chrom: id, start, end });
        }
    }
    spans.sort_by_key(|s| (s.chrom, s.start));
    let mut merged: Vec<Span> = Vec::new();
    for s in spans {
        match merged.last_mut() {
            Some(last) if last.chrom == s.chrom && s.start <= last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    Ok(merged)
}

/// The input tracks of a model, over `sizes`.
pub fn open_inputs(
    config: &ModelConfig,
    noisy: &Path,
    extras: &[(String, PathBuf)],
    sizes: &ChromSizes,
) -> Result<TrackSet, Error> {
    let mut inputs = vec![open_coverage(noisy, sizes, "noisy track")?];
    for name in &config.extra_tracks {
        let path = extras.iter().find(|(n, _)| n == name).map(|(_, p)| p).ok_or_else(|| {
            FileError::Argument(format!(
                "the model was trained with the extra track '{name}': give it with --extra-track {name}=FILE"
            ))
        })?;
        inputs.push(open_coverage(path, sizes, &format!("extra track {name}"))?);
    }
    if let Some((n, _)) = extras.iter().find(|(n, _)| !config.extra_tracks.contains(n)) {
        return Err(FileError::Argument(format!(
            "--extra-track {n}: the model has no such input (it has {:?})",
            config.extra_tracks
        ))
        .into());
    }
    Ok(TrackSet { inputs, clean: None, peaks: None })
}

/// Genome sizes for a run: the file given, else the noisy bigWig's chromosomes.
pub fn run_sizes(genome: Option<&Path>, noisy: &Path) -> Result<ChromSizes, Error> {
    Ok(match genome {
        Some(g) => ChromSizes::read(g)?,
        None => crate::store::build::read_track(noisy, None)?.sizes().clone(),
    })
}

/// The model's output over `spans`, handed to `sink` in position order as [`Piece`]s. Unless
/// `dense`, stretches whose receptive field holds no signal are not computed
/// ([`super::skip`]; the values are the same bits). Returns the work done, and whether
/// skipping was on (it is off where it could not be exact: see [`SkipPlan::new`]).
#[allow(clippy::too_many_arguments)]
pub fn denoise_pieces<B: Backend>(
    backend: &B,
    net: &DenoiseNet<B>,
    config: &ModelConfig,
    set: TrackSet,
    spans: &[Span],
    batch: usize,
    dense: bool,
    sink: &mut dyn FnMut(Piece) -> Result<(), Error>,
) -> Result<(SkipStats, bool), Error> {
    if batch == 0 {
        return Err(FileError::Argument("--batch must be at least 1".into()).into());
    }
    let plan = if dense { None } else { SkipPlan::new(backend, net, config.pad as usize)? };
    match plan {
        Some(plan) => {
            let (interval, pad) = (config.interval as usize, config.pad as usize);
            // Rows as long as a dense batch: the same memory, checked the same way.
            if backend.free_memory().is_none() {
                let width = interval + 2 * pad;
                let packed = config.model.packed_on(backend, batch, width);
                let per_interval = config.model.infer_bytes_per_interval(width, packed) as u64;
                crate::backend::cpu::check_host_memory("batches of inference", batch, per_interval)
                    .map_err(FileError::Argument)?;
            }
            let stats = denoise_spans_skipping(backend, net, &plan, &set, spans, interval, pad, batch, sink)?;
            Ok((stats, true))
        }
        None => {
            let w = config.interval + 2 * config.pad;
            let mut stats = SkipStats::default();
            stats.bases = denoise_spans(backend, net, config, set, spans, batch, &mut |iv, first, reg, prob| {
                stats.network_bases += w;
                sink(Piece::Values { chrom: iv.chrom, start: first, reg, prob })
            })?;
            stats.signal_bases = stats.bases;
            Ok((stats, false))
        }
    }
}

/// Denoised values of one batch's intervals, computed densely, handed to `sink` in order as
/// `(interval, first new base, denoised, probability)`. Returns the bases handed out.
pub fn denoise_spans<B: Backend>(
    backend: &B,
    net: &DenoiseNet<B>,
    config: &ModelConfig,
    set: TrackSet,
    spans: &[Span],
    batch: usize,
    sink: &mut dyn FnMut(&Interval, u64, &[f32], &[f32]) -> Result<(), Error>,
) -> Result<u64, Error> {
    if batch == 0 {
        return Err(FileError::Argument("--batch must be at least 1".into()).into());
    }
    let shape = BatchShape { batch, len: config.interval, pad: config.pad, channels: config.model.in_channels };
    let intervals: Vec<Interval> =
        spans.iter().flat_map(|s| tile_range(s.chrom, s.start, s.end, config.interval, 0)).collect();
    let ends: Vec<u64> = spans
        .iter()
        .flat_map(|s| std::iter::repeat_n(s.end, tile_range(s.chrom, s.start, s.end, config.interval, 0).len()))
        .collect();
    let w = shape.width();
    if backend.free_memory().is_none() {
        let packed = config.model.packed_on(backend, batch, w);
        let per_interval = config.model.infer_bytes_per_interval(w, packed) as u64;
        crate::backend::cpu::check_host_memory("batches of inference", batch.min(intervals.len()), per_interval)
            .map_err(FileError::Argument)?;
    }
    let mut bases = 0u64;
    let mut k = 0;
    let mut probs = Vec::new();
    for b in BatchStream::start(backend, vec![set], intervals, shape, 3)? {
        let b = b?;
        let n = b.len();
        let x = backend.upload_f32(b.input()?)?;
        let out = net.infer(backend, &x, n, w)?;
        let reg = download_f32(backend, &out.reg)?;
        let logits = download_f32(backend, &out.logits)?;
        for (i, iv) in b.intervals().iter().enumerate() {
            let end = ends[k];
            k += 1;
            let first = iv.start + iv.skip;
            let last = (iv.start + config.interval).min(end);
            let (from, to) = ((config.pad + iv.skip) as usize, (config.pad + last - iv.start) as usize);
            let row = i * w;
            probs.clear();
            probs.extend(logits[row + from..row + to].iter().map(|&z| sigmoid(z)));
            sink(iv, first, &reg[row + from..row + to], &probs)?;
            bases += last - first;
        }
    }
    Ok(bases)
}

/// Refuses a model's non-finite output: a damaged checkpoint, or an input far beyond what
/// the model was trained on, overflowing f32. Nothing non-finite reaches a bigWig.
pub fn check_output(model: &Path, chrom: &str, first: u64, reg: &[f32], prob: &[f32]) -> Result<(), FileError> {
    match reg.iter().zip(prob).position(|(r, p)| !(r.is_finite() && p.is_finite())) {
        None => Ok(()),
        Some(i) => Err(FileError::content(
            model,
            format!(
                "the model produced a non-finite value at {chrom}:{} (denoised {}, probability {}): its weights are damaged or the input is far beyond what it was trained on",
                first + i as u64 + 1,
                reg[i],
                prob[i]
            ),
        )),
    }
}

/// `chromax denoise run`: writes PREFIX.track.bw, PREFIX.peaks.narrowPeak and, if asked,
/// PREFIX.prob.bw.
pub fn run<B: Backend>(
    backend: &B,
    opts: &RunOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunSummary, Error> {
    let started = Instant::now();
    let (track_path, prob_path, peaks_path) = (
        prefixed(&opts.prefix, ".track.bw"),
        prefixed(&opts.prefix, ".prob.bw"),
        prefixed(&opts.prefix, ".peaks.narrowPeak"),
    );
    Files::new()
        .model_dir("--model", &opts.model)
        .input("--noisy", &opts.noisy)
        .inputs("--extra-track", opts.extra_tracks.iter().map(|(_, p)| p))
        .inputs("--genome", &opts.genome)
        .inputs("--regions", opts.regions.iter().map(Path::new).filter(|p| p.is_file()))
        .output("-o", &track_path)
        .output("-o", &peaks_path)
        .outputs("-o", opts.probabilities.then_some(&prob_path))
        .check()?;
    if opts.batch == 0 {
        return Err(FileError::Argument("--batch must be at least 1".into()).into());
    }
    let (net, config) = load_model(backend, &opts.model)?;
    let sizes = run_sizes(opts.genome.as_deref(), &opts.noisy)?;
    let set = open_inputs(&config, &opts.noisy, &opts.extra_tracks, &sizes)?;
    let spans = resolve_spans(&opts.regions, &sizes)?;
    let total: u64 = spans.iter().map(|s| s.end - s.start).sum();
    let track_out = BigWigStream::create(&track_path, &sizes)?;
    let prob_out = if opts.probabilities { Some(BigWigStream::create(&prob_path, &sizes)?) } else { None };
    let mut caller = ProbPeakCaller::new(opts.peaks);
    let mut current: Option<usize> = None;
    let scale = opts.round.map(|d| 10f32.powi(d as i32));
    let mut rounded = Vec::new();
    let mut done = 0u64;
    let (work, skipping) = denoise_pieces(backend, &net, &config, set, &spans, opts.batch, opts.dense, &mut |piece| {
        let chrom = match piece {
            Piece::Constant { chrom, .. } | Piece::Values { chrom, .. } => chrom,
        };
        let name = sizes.name(chrom);
        if current != Some(chrom) {
            track_out.chrom(name)?;
            if let Some(p) = &prob_out {
                p.chrom(name)?;
            }
            current = Some(chrom);
        }
        let bases = match piece {
            Piece::Constant { start, len, prob, .. } => {
                // The regression output is 0 here: no run; one probability run.
                if let (Some(p), true) = (&prob_out, prob != 0.0) {
                    p.runs(vec![Run { start: start as u32, end: (start + len) as u32, value: prob }])?;
                }
                caller.push_constant(name, start, len, prob, 0.0);
                len
            }
            Piece::Values { start, reg, prob, .. } => {
                check_output(&opts.model, name, start, reg, prob)?;
                let values: &[f32] = match scale {
                    Some(s) => {
                        rounded.clear();
                        rounded.extend(reg.iter().map(|&v| (v * s).round() / s));
                        &rounded
                    }
                    None => reg,
                };
                track_out.runs(runs_from_dense(values, start as u32))?;
                if let Some(p) = &prob_out {
                    p.runs(runs_from_dense(prob, start as u32))?;
                }
                caller.push(name, start, prob, reg);
                reg.len() as u64
            }
        };
        done += bases;
        progress(done, total);
        Ok(())
    })?;
    let peaks: Vec<NarrowPeak> = caller.finish();
    write_narrowpeak(&peaks_path, &peaks)?;
    track_out.finish()?;
    let mut outputs = vec![track_path, peaks_path];
    if let Some(p) = prob_out {
        p.finish()?;
        outputs.push(prob_path);
    }
    Ok(RunSummary {
        bases: work.bases,
        work,
        skipping,
        peaks: peaks.len(),
        seconds: started.elapsed().as_secs_f64(),
        outputs,
    })
}
