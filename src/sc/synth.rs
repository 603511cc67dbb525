//! Synthetic single-cell data of any shape, for benchmarks and tests: a random genome, peaks
//! and a binary peak-by-cell matrix with a realistic spread of per-cell depth and per-peak
//! popularity, written in the formats real data comes in (FASTA, BED, the matrix store), so
//! training reads them through the same path as real data.

use crate::error::FileError;
use crate::io::atomic::write_atomically;
use crate::io::bed::Interval;
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
    check_spec(a)?;
    write_genome(a, dir)?;
    let peaks = write_peaks(a, dir)?;
    let names = crate::store::matrix::peak_names(&peaks);
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
    let barcodes = synth_barcodes(a.cells);
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

fn synth_barcodes(cells: usize) -> Vec<String> {
    (0..cells).map(|c| format!("cell{c}")).collect()
}

fn check_spec(a: &SynthSpec) -> Result<(), FileError> {
    if a.cells == 0 || a.peaks == 0 || !(a.density > 0.0 && a.density <= 0.5) {
        return Err(FileError::Argument(format!(
            "a synthetic data set needs cells ≥ 1, peaks ≥ 1 and density in (0, 0.5] (got {a:?})"
        )));
    }
    Ok(())
}

/// `genome.fa`: one chromosome, 40% GC, 60 bases per line.
fn write_genome(a: &SynthSpec, dir: &Path) -> Result<(), FileError> {
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
    })
}

/// `peaks.bed`: 500 bp peaks, each centred in its SPACING-wide slot of the one chromosome.
fn write_peaks(a: &SynthSpec, dir: &Path) -> Result<Vec<Interval>, FileError> {
    let peaks: Vec<Interval> = (0..a.peaks as u64)
        .map(|p| {
            let start = p * SPACING as u64 + SPACING as u64 / 2 - 250;
            Interval { chrom: "synth".into(), start, end: start + 500 }
        })
        .collect();
    write_atomically(dir.join(SYNTH_PEAKS), |w| {
        peaks.iter().try_for_each(|p| writeln!(w, "{}\t{}\t{}", p.chrom, p.start, p.end))
    })?;
    Ok(peaks)
}

/// A matrix form users have, for [`write_synthetic_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputForm {
    /// AnnData `matrix.h5ad`: X cells × peaks, CSR, f32 ones (as scanpy writes it).
    H5ad,
    /// Cell Ranger ATAC's `filtered_peak_bc_matrix.h5` (10x HDF5, CSC by barcode).
    Tenx,
    /// Cell Ranger ATAC's `filtered_peak_bc_matrix/` (matrix.mtx.gz, barcodes.tsv.gz,
    /// peaks.bed.gz), entries by barcode.
    Mtx,
}

impl InputForm {
    /// The path written in the directory: a file, or the Matrix Market directory.
    pub fn file_name(self) -> &'static str {
        match self {
            InputForm::H5ad => "matrix.h5ad",
            InputForm::Tenx => "filtered_peak_bc_matrix.h5",
            InputForm::Mtx => "filtered_peak_bc_matrix",
        }
    }
}

/// Cells generated (in parallel) and written per step by [`write_synthetic_input`].
const CELLS_PER_STEP: usize = 4096;

/// Writes the genome and peaks as [`write_synthetic`] does and the matrix in `form`, streamed
/// (memory does not grow with the non-zeros): cell c is accessible in k_c ≈
/// density·peaks·d_c peaks (d log-normal, σ 0.6, capped at half the peaks), drawn in
/// proportion to a log-normal peak popularity (σ 0.8) — the same shape and spreads as the
/// store `write_synthetic` writes, generated cell by cell as the forms store it. Returns the
/// matrix's path and its number of non-zeros.
pub fn write_synthetic_input(
    a: &SynthSpec,
    form: InputForm,
    dir: &Path,
) -> Result<(std::path::PathBuf, u64), FileError> {
    check_spec(a)?;
    write_genome(a, dir)?;
    let peaks = write_peaks(a, dir)?;
    let depth = lognormal_factors(a.cells, 0.6, a.seed ^ 0xD3);
    let popularity = lognormal_factors(a.peaks, 0.8, a.seed ^ 0x9E);
    let alias = Alias::new(&popularity);
    let n = a.peaks as f64;
    let counts: Vec<u64> = (0..a.cells)
        .map(|c| {
            let mean = (a.density * depth[c]).min(0.5) * n;
            let z = mix(a.seed ^ 0xC2 ^ mix(c as u64));
            let k = mean + mean.sqrt() * normal(z, mix(z ^ 0xC3));
            (k.round().max(1.0) as u64).min(a.peaks as u64)
        })
        .collect();
    let mut indptr = vec![0u64];
    for k in &counts {
        indptr.push(indptr.last().copied().unwrap_or(0) + k);
    }
    let nnz = indptr[a.cells];
    let barcodes = synth_barcodes(a.cells);
    let seed = a.seed;
    // Cell c's peaks: distinct draws, ascending.
    let row = |c: usize| -> Vec<u32> {
        let k = counts[c] as usize;
        let mut z = mix(seed ^ 0xAC ^ mix(c as u64 + 1));
        let mut out: Vec<u32> = Vec::with_capacity(k + k / 8);
        while out.len() < k {
            for _ in out.len()..k {
                z = mix(z);
                out.push(alias.draw(z));
            }
            out.sort_unstable();
            out.dedup();
        }
        out
    };
    let path = dir.join(form.file_name());
    let steps = a.cells.div_ceil(CELLS_PER_STEP);
    let rows_of = |step: usize| -> Vec<Vec<u32>> {
        let (lo, hi) = (step * CELLS_PER_STEP, ((step + 1) * CELLS_PER_STEP).min(a.cells));
        (lo..hi).into_par_iter().map(row).collect()
    };
    match form {
        InputForm::H5ad | InputForm::Tenx => {
            let mut out = if form == InputForm::H5ad {
                crate::io::h5ad::SparseStream::anndata_csr(&path, &barcodes, &peaks, &indptr)?
            } else {
                crate::io::h5ad::SparseStream::tenx(&path, &barcodes, &peaks, &indptr)?
            };
            for step in 0..steps {
                for r in rows_of(step) {
                    out.push(&r)?;
                }
            }
            out.finish()?;
        }
        InputForm::Mtx => {
            std::fs::create_dir_all(&path).map_err(FileError::io(&path))?;
            let gz = |name: &str, write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>| {
                write_atomically(path.join(name), |w| {
                    let mut e = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
                    write(&mut e)?;
                    e.finish().map(|_| ())
                })
            };
            gz("barcodes.tsv.gz", &mut |w| barcodes.iter().try_for_each(|b| writeln!(w, "{b}")))?;
            gz("peaks.bed.gz", &mut |w| {
                peaks.iter().try_for_each(|p| writeln!(w, "{}\t{}\t{}", p.chrom, p.start, p.end))
            })?;
            gz("matrix.mtx.gz", &mut |w| {
                writeln!(w, "%%MatrixMarket matrix coordinate integer general")?;
                writeln!(w, "%metadata_json: {{\"software\": \"chromax bench sc --write-input mtx\"}}")?;
                writeln!(w, "{} {} {nnz}", a.peaks, a.cells)?;
                let mut text = Vec::with_capacity(1 << 20);
                for step in 0..steps {
                    for (i, r) in rows_of(step).into_iter().enumerate() {
                        let c = step * CELLS_PER_STEP + i + 1;
                        for p in r {
                            writeln!(text, "{} {c} 1", p + 1)?;
                        }
                        if text.len() >= 1 << 20 {
                            w.write_all(&text)?;
                            text.clear();
                        }
                    }
                }
                w.write_all(&text)
            })?;
        }
    }
    Ok((path, nnz))
}
