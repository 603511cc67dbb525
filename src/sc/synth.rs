//! Synthetic single-cell data of any shape, for benchmarks and tests: a random genome, peaks
//! and a binary peak-by-cell matrix with a realistic spread of per-cell depth and per-peak
//! popularity, written in the formats real data comes in (FASTA, BED, the matrix store), so
//! training reads them through the same path as real data.

use crate::error::FileError;
use crate::io::atomic::write_atomically;
use crate::rng::{mix, unit};
use crate::store::matrix::write_binary_rows;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

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

/// The shape of a synthetic single-cell data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthSpec {
    pub cells: usize,
    pub peaks: usize,
    /// Fraction of (peak, cell) pairs that are accessible, in (0, 0.5].
    pub density: f64,
    pub seed: u64,
}

/// The files [`write_synthetic`] writes into its directory.
pub const SYNTH_GENOME: &str = "genome.fa";
pub const SYNTH_PEAKS: &str = "peaks.bed";
pub const SYNTH_MATRIX: &str = "matrix.cxmatrix";

/// Writes a random genome (`genome.fa`: one chromosome, 40% GC), peaks (`peaks.bed`: 500 bp,
/// one per 1,400 bp) and a binary matrix (`matrix.cxmatrix`, the store's own format) of the
/// spec's shape into `dir`: peak p is accessible in ≈ density·cells·g_p cells (g log-normal,
/// σ 0.8, capped at half the cells), drawn in proportion to a log-normal per-cell depth
/// (σ 0.6). Returns the number of non-zeros.
pub fn write_synthetic(a: &SynthSpec, dir: &Path) -> Result<u64, FileError> {
    if a.cells == 0 || a.peaks == 0 || !(a.density > 0.0 && a.density <= 0.5) {
        return Err(FileError::Argument(format!(
            "a synthetic data set needs cells ≥ 1, peaks ≥ 1 and density in (0, 0.5] (got {a:?})"
        )));
    }
    // Genome: one chromosome, 40% GC, 60 bases per line.
    let fasta = dir.join(SYNTH_GENOME);
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
    write_atomically(&fasta, |w| {
        w.write_all(b">synth\n")?;
        lines.iter().try_for_each(|l| w.write_all(l))
    })?;
    drop(lines);
    // Peaks: 500 bp, centred in their SPACING-wide slot.
    let starts: Vec<usize> = (0..a.peaks).map(|p| p * SPACING + SPACING / 2 - 250).collect();
    write_atomically(dir.join(SYNTH_PEAKS), |w| {
        starts.iter().try_for_each(|s| writeln!(w, "synth\t{s}\t{}", s + 500))
    })?;
    let names: Vec<String> = starts.iter().map(|s| format!("synth:{s}-{}", s + 500)).collect();
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
    write_binary_rows(&dir.join(SYNTH_MATRIX), &names, &barcodes, &indptr, &|p: usize, out: &mut Vec<u32>| {
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
