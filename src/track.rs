//! A track in memory: per chromosome, sorted runs of constant non-zero value; every base
//! not covered by a run is 0. Coverage from reads, bedGraph and bigWig all arrive as runs.

use crate::io::ChromSizes;

/// `value` over `start..end` (0-based, half-open).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    pub start: u32,
    pub end: u32,
    pub value: f32,
}

/// Runs per chromosome over a set of chromosome sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    sizes: ChromSizes,
    runs: Vec<Vec<Run>>,
}

impl Track {
    /// All zeros over `sizes`.
    pub fn empty(sizes: ChromSizes) -> Self {
        let runs = vec![Vec::new(); sizes.len()];
        Track { sizes, runs }
    }

    pub fn sizes(&self) -> &ChromSizes {
        &self.sizes
    }

    /// The runs of chromosome `id`, sorted and non-overlapping.
    pub fn runs(&self, id: usize) -> &[Run] {
        &self.runs[id]
    }

    /// Replaces the runs of chromosome `id` (sorted, non-overlapping, inside the chromosome).
    pub fn set_runs(&mut self, id: usize, runs: Vec<Run>) {
        self.runs[id] = runs;
    }

    /// Σ value × length over the genome.
    pub fn sum(&self) -> f64 {
        self.runs.iter().flatten().map(|r| r.value as f64 * (r.end - r.start) as f64).sum()
    }

    /// Number of non-zero runs.
    pub fn run_count(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    /// Writes chromosome `id`'s values over `start..start + out.len()` into `out` (zeros
    /// outside the runs and past the chromosome's end).
    pub fn fill(&self, id: usize, start: u64, out: &mut [f32]) {
        out.fill(0.0);
        let end = start + out.len() as u64;
        let runs = &self.runs[id];
        let first = runs.partition_point(|r| (r.end as u64) <= start);
        for r in &runs[first..] {
            if r.start as u64 >= end {
                break;
            }
            let lo = (r.start as u64).max(start) - start;
            let hi = (r.end as u64).min(end) - start;
            out[lo as usize..hi as usize].fill(r.value);
        }
    }
}

/// Runs of equal non-zero values of a dense array, offset by `origin`.
pub fn runs_from_dense(values: &[f32], origin: u32) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let v = values[i];
        let mut j = i + 1;
        while j < values.len() && values[j] == v {
            j += 1;
        }
        if v != 0.0 {
            runs.push(Run { start: origin + i as u32, end: origin + j as u32, value: v });
        }
        i = j;
    }
    runs
}
