//! Denoised (imputed) accessibility: σ(z_peak · w_cell), the intercept (depth) dropped unless
//! asked for, for every (peak, cell) pair, streamed. scBasset computes it as one dense peaks ×
//! cells matrix in memory, which does not scale; here peaks go through the trunk a chunk at a
//! time, the head is one GEMM per chunk on the backend, and each chunk is handed to a sink
//! (the CSC writer of `sc impute`) before the next is computed.
//!
//! Memory: the chunk's sequences and codes, and its logits and probabilities (two on the
//! device, one on the host): [`chunk_bytes`] = chunk × (seq_len + 4·dim + 12·cells) bytes, plus
//! the model and the writer's buffers. The chunk is chosen from a budget ([`chunk_for`]).
//! For a batch-corrected model only the cell path is used (the batch effect removed too).

use super::analyses::{embed_sequences, head_probabilities, Head};
use super::groups::Groups;
use crate::backend::Backend;
use crate::error::FileError;
use crate::models::SeqNet;
use crate::nn::upload_f32;
use crate::Error;

/// Bytes one chunk of `peaks` holds for `cells` cells (see the module's notes).
pub fn chunk_bytes(peaks: usize, seq_len: usize, dim: usize, cells: usize) -> u64 {
    peaks as u64 * (seq_len as u64 + 4 * dim as u64 + 12 * cells as u64)
}

/// The most peaks per chunk within `budget` bytes (at least 1).
pub fn chunk_for(budget: u64, seq_len: usize, dim: usize, cells: usize) -> usize {
    (budget / chunk_bytes(1, seq_len, dim, cells).max(1)).max(1) as usize
}

/// What a streamed run held at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImputeStats {
    /// Peaks per chunk.
    pub chunk: usize,
    /// Bytes of the largest chunk's buffers, as [`chunk_bytes`] counts them.
    pub peak_chunk_bytes: u64,
}

/// Denoised accessibility of `codes` (peaks × seq_len) in `cells` (indices into the head), a
/// chunk of `chunk` peaks at a time: `sink` gets each chunk peak-major (peak by peak, the
/// cells' values in the order of `cells`). `keep_depth` adds each cell's intercept.
#[allow(clippy::too_many_arguments)]
pub fn impute_streamed<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    head: &Head,
    codes: &[u8],
    cells: &[u32],
    keep_depth: bool,
    chunk: usize,
    batch: usize,
    sink: &mut dyn FnMut(&[f32]) -> Result<(), Error>,
) -> Result<ImputeStats, Error> {
    let (len, dim) = (net.config.seq_len, head.dim);
    if cells.is_empty() || chunk == 0 || cells.iter().any(|&c| c as usize >= head.cells) {
        return Err(FileError::Argument(format!(
            "impute: {} cells (each below {}) and a chunk of {chunk} peaks: both need at least one",
            cells.len(),
            head.cells
        ))
        .into());
    }
    let n = cells.len();
    let w: Vec<f32> =
        cells.iter().flat_map(|&c| head.w[c as usize * dim..(c as usize + 1) * dim].iter().copied()).collect();
    let w = upload_f32(backend, &w)?;
    let bias = match keep_depth {
        true => Some(upload_f32(backend, &cells.iter().map(|&c| head.b[c as usize]).collect::<Vec<_>>())?),
        false => None,
    };
    let mut stats = ImputeStats { chunk, peak_chunk_bytes: 0 };
    for peaks in codes.chunks(chunk * len) {
        let m = peaks.len() / len;
        let z = embed_sequences(backend, net, peaks, batch)?;
        let host = head_probabilities(backend, &w, bias.as_ref(), &z, dim, n)?;
        stats.peak_chunk_bytes = stats.peak_chunk_bytes.max(chunk_bytes(m, len, dim, n));
        sink(&host)?;
    }
    Ok(stats)
}

/// Pseudobulk denoised accessibility: per group, the mean over its cells, groups × peaks
/// (row-major), computed chunk by chunk as [`impute_streamed`] over the groups' cells.
#[allow(clippy::too_many_arguments)]
pub fn impute_groups<B: Backend>(
    backend: &B,
    net: &SeqNet<B>,
    head: &Head,
    codes: &[u8],
    groups: &Groups,
    keep_depth: bool,
    chunk: usize,
    batch: usize,
) -> Result<(Vec<f32>, ImputeStats), Error> {
    let mut cells: Vec<u32> = groups.members.iter().flatten().copied().collect();
    cells.sort_unstable();
    cells.dedup();
    let pos = |c: u32| cells.binary_search(&c).unwrap_or(0);
    let members: Vec<Vec<usize>> = groups.members.iter().map(|m| m.iter().map(|&c| pos(c)).collect()).collect();
    let n_peaks = codes.len() / net.config.seq_len.max(1);
    let g = groups.names.len();
    let mut out = vec![0.0f32; g * n_peaks];
    let mut done = 0usize;
    let n = cells.len();
    let stats = impute_streamed(backend, net, head, codes, &cells, keep_depth, chunk, batch, &mut |probs| {
        for (i, row) in probs.chunks(n).enumerate() {
            for (k, m) in members.iter().enumerate() {
                let s: f64 = m.iter().map(|&j| row[j] as f64).sum();
                out[k * n_peaks + done + i] = (s / m.len() as f64) as f32;
            }
        }
        done += probs.len() / n;
        Ok(())
    })?;
    Ok((out, stats))
}
