//! The planted-motif simulation shared by the single-cell tests (included with
//! `#[path = "common/planted.rs"] mod planted;`): three cell types whose accessibility depends
//! on three JASPAR motifs planted in random sequence, with a small SeqNet to learn it.
#![allow(dead_code)]

use crate::common::Rng;
use chromax::io::bed::Interval;
use chromax::models::SeqConfig;
use chromax::rng::SplitMix64;
use chromax::sc::data::{Rows, ScData};
use chromax::sc::motifs::{read_motifs, Motif};
use chromax::sc::train::ScTrainOptions;
use std::path::PathBuf;

pub struct Simulation {
    pub data: ScData,
    pub cell_type: Vec<usize>,
    /// Each cell's batch (all 0 without batches).
    pub batch: Vec<usize>,
    /// Per peak, its planted sites: (motif = cell type, start in the sequence, width).
    pub sites: Vec<Vec<(usize, usize, usize)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    None,
    /// Each peak's accessible cells replaced by as many cells drawn at random.
    ShuffleCells,
    /// Rows permuted across peaks.
    ShufflePeaks,
}

/// The planted motifs, in cell-type order: CTCF, Spi1, CEBPB of the bundled JASPAR file.
pub const PLANTED: [&str; 3] = ["MA0139.1", "MA0080.6", "MA0466.3"];

/// The bundled JASPAR motifs with these ids, in this order.
pub fn jaspar(ids: &[&str]) -> Vec<Motif> {
    let all = read_motifs(&jaspar_path()).expect("the bundled JASPAR file");
    ids.iter().map(|id| all.iter().find(|m| m.id == *id).expect("motif in the bundled file").clone()).collect()
}

pub fn jaspar_path() -> PathBuf {
    crate::common::test_data().join("motifs/JASPAR2022_vertebrates.pfm")
}

/// Three cell types of 24 cells; 900 random 160 bp peaks, each holding each type's motif with
/// probability 0.35 (at a random place, the same site never overlapping another); a peak is
/// open in a cell with probability 0.6·depth when it holds the cell type's motif, else 0.04.
pub fn simulate(seed: u64, control: Control) -> Simulation {
    simulate_with(seed, control, false)
}

/// Motifs of the two batches' peak sets: REST and NFIB.
pub const BATCH_MOTIFS: [&str; 2] = ["MA0138.2", "MA1643.1"];

/// [`simulate`] with two batches (cells 0–11 of each type in batch 0, 12–23 in batch 1) when
/// `batched`: each peak also holds each batch's motif with probability 0.3, and a cell opens
/// the peaks holding its batch's motif with probability 0.5·depth on top of its type's.
pub fn simulate_with(seed: u64, control: Control, batched: bool) -> Simulation {
    let motifs = jaspar(&PLANTED);
    let batch_motifs = jaspar(&BATCH_MOTIFS);
    let (n_peaks, seq_len, per_type) = (900usize, 160usize, 24usize);
    let mut rng = Rng::new(seed);
    let mut codes = Vec::with_capacity(n_peaks * seq_len);
    let mut has = Vec::with_capacity(n_peaks);
    let mut sites = Vec::with_capacity(n_peaks);
    for _ in 0..n_peaks {
        let mut s: Vec<u8> = (0..seq_len).map(|_| (rng.next_u64() % 4) as u8).collect();
        let mut present = [false; 3];
        let mut placed: Vec<(usize, usize, usize)> = Vec::new();
        for (k, motif) in motifs.iter().enumerate() {
            if rng.unit() < 0.35 {
                let mut gen = SplitMix64::new(rng.next_u64());
                let site = motif.sample(&mut gen);
                let at = 20 + (rng.next_u64() as usize) % (seq_len - 40 - site.len());
                s[at..at + site.len()].copy_from_slice(&site);
                // A later site written over an earlier one removes the overlapped part.
                placed.retain(|&(_, a, w)| a + w <= at || at + site.len() <= a);
                placed.push((k, at, site.len()));
                present[k] = true;
            }
        }
        let mut in_set = [false; 2];
        if batched {
            for (k, motif) in batch_motifs.iter().enumerate() {
                if rng.unit() < 0.3 {
                    let site = motif.sample(&mut SplitMix64::new(rng.next_u64()));
                    let at = 20 + (rng.next_u64() as usize) % (seq_len - 40 - site.len());
                    s[at..at + site.len()].copy_from_slice(&site);
                    placed.retain(|&(_, a, w)| a + w <= at || at + site.len() <= a);
                    in_set[k] = true;
                }
            }
        }
        codes.extend(s);
        has.push((present, in_set));
        sites.push(placed);
    }
    let cell_type: Vec<usize> = (0..3 * per_type).map(|c| c / per_type).collect();
    let depth: Vec<f64> = cell_type.iter().map(|_| rng.uniform(0.6, 1.4)).collect();
    let batch: Vec<usize> =
        (0..cell_type.len()).map(|c| usize::from(batched && c % per_type >= per_type / 2)).collect();
    let mut row_sets: Vec<Vec<u32>> = has
        .iter()
        .map(|(present, in_set)| {
            (0..cell_type.len() as u32)
                .filter(|&c| {
                    let p = if present[cell_type[c as usize]] { 0.6 } else { 0.04 };
                    let p = if batched && in_set[batch[c as usize]] { 1.0 - (1.0 - p) * 0.5 } else { p };
                    rng.unit() < p * depth[c as usize]
                })
                .collect()
        })
        .collect();
    match control {
        Control::None => {}
        Control::ShufflePeaks => {
            for i in (1..row_sets.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                row_sets.swap(i, j);
            }
        }
        Control::ShuffleCells => {
            let n = cell_type.len() as u64;
            for row in &mut row_sets {
                let mut drawn = std::collections::BTreeSet::new();
                while drawn.len() < row.len() {
                    drawn.insert((rng.next_u64() % n) as u32);
                }
                *row = drawn.into_iter().collect();
            }
        }
    }
    let mut indptr = vec![0u64];
    let mut indices = Vec::new();
    for r in &row_sets {
        indices.extend_from_slice(r);
        indptr.push(indices.len() as u64);
    }
    let peaks =
        (0..n_peaks as u64).map(|i| Interval { chrom: "sim".into(), start: i * 1000, end: i * 1000 + 500 }).collect();
    let barcodes = cell_type.iter().enumerate().map(|(c, t)| format!("type{t}_cell{c}")).collect();
    Simulation {
        data: ScData {
            peaks,
            barcodes,
            codes,
            seq_len,
            rows: Rows::Owned { indptr, indices },
            sources: Default::default(),
            batches: None,
        },
        cell_type,
        batch,
        sites,
    }
}

pub fn small_model(seq_len: usize) -> SeqConfig {
    SeqConfig {
        seq_len,
        stem_filters: 32,
        stem_kernel: 13,
        stem_pool: 2,
        tower_filters: vec![32, 32],
        tower_kernel: 5,
        tower_pool: 2,
        final_filters: 16,
        bottleneck: 8,
        dropout: 0.1,
        ..SeqConfig::scbasset(1)
    }
}

/// The fraction of cells whose nearest other cell (cosine similarity of embeddings) has the
/// same label.
pub fn neighbour_agreement(emb: &[f32], dim: usize, labels: &[usize]) -> f64 {
    let n = labels.len();
    let unit = unit_rows(emb, dim, n);
    let mut same = 0;
    for a in 0..n {
        let nearest = (0..n)
            .filter(|&b| b != a)
            .max_by(|&x, &y| {
                let sx: f64 = unit[a].iter().zip(&unit[x]).map(|(p, q)| p * q).sum();
                let sy: f64 = unit[a].iter().zip(&unit[y]).map(|(p, q)| p * q).sum();
                sx.total_cmp(&sy)
            })
            .expect("another cell");
        same += usize::from(labels[nearest] == labels[a]);
    }
    same as f64 / n as f64
}

pub fn sim_options(seq_len: usize) -> ScTrainOptions {
    ScTrainOptions {
        batch: 32,
        epochs: 12,
        lr: 0.005,
        val_fraction: 0.1,
        test_fraction: 0.1,
        patience: 100,
        seed: 3,
        model: small_model(seq_len),
        ..ScTrainOptions::default()
    }
}

/// The first `n` rows of `emb` (rows of `dim`) scaled to unit length, for cosine similarity.
pub fn unit_rows(emb: &[f32], dim: usize, n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|c| {
            let v: Vec<f64> = emb[c * dim..(c + 1) * dim].iter().map(|&x| x as f64).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}
