//! `chromax bench analyses`: the single-cell analyses' throughput on scBasset's architecture
//! (weights freshly initialised: the cost does not depend on them) — TF activity sequences/s
//! with the time for every bundled JASPAR motif at the defaults projected from it, ISM
//! substitutions/s, and `sc impute` peak × cell values/s with its chunk's memory.

use super::device::select;
use super::progress::thousands;
use super::CliResult;
use chromax::backend::Backend;
use chromax::models::{SeqConfig, SeqNet};
use chromax::on_backend;
use chromax::rng::SplitMix64;
use chromax::sc::analyses::{background_means, ism_window, tf_activity, Head, TfActivityOptions};
use chromax::sc::impute::{chunk_bytes, chunk_for, impute_streamed};
use chromax::sc::motifs::Motif;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct AnalysesBenchArgs {
    #[arg(long, default_value_t = 10_000)]
    pub cells: usize,
    /// Sequences timed for TF activity (a motif's instances) and for the background.
    #[arg(long, default_value_t = 256)]
    pub sequences: usize,
    /// Peaks imputed.
    #[arg(long, default_value_t = 256)]
    pub peaks: usize,
    /// Motifs the TF-activity projection is for (the bundled JASPAR 2022 file holds 838).
    #[arg(long, default_value_t = 838)]
    pub motifs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

fn random_codes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| (rng.next_u64() % 4) as u8).collect()
}

fn run<B: Backend>(backend: &B, a: &AnalysesBenchArgs) -> Result<(), chromax::Error> {
    let cfg = SeqConfig::scbasset(a.cells);
    let len = cfg.seq_len;
    let net = SeqNet::new(backend, cfg, 1, None)?;
    let head = Head::of(backend, &net)?;
    eprintln!("SeqNet (scBasset, {} cells) on {}", thousands(a.cells as u64), backend.describe());

    // TF activity: a motif's instances through the trunk and the head, against the background.
    let background = random_codes(a.sequences * len, 2);
    let t = Instant::now();
    let means = background_means(backend, &net, &background, a.batch)?;
    let bg_rate = a.sequences as f64 / t.elapsed().as_secs_f64();
    let motif = Motif { id: "bench".into(), name: "bench".into(), probs: vec![[0.25; 4]; 12] };
    let opts = TfActivityOptions { instances: a.sequences, background: a.sequences, seed: 1, batch: a.batch };
    let t = Instant::now();
    tf_activity(backend, &net, &background, &means, std::slice::from_ref(&motif), &opts, &mut |_| {})?;
    let rate = a.sequences as f64 / t.elapsed().as_secs_f64();
    let defaults = TfActivityOptions::default();
    let projected = (defaults.background as f64 + (a.motifs * defaults.instances) as f64) / rate;
    eprintln!(
        "TF activity: {rate:.1} sequences/s (background {bg_rate:.1}/s); all {} motifs × {} instances + {} backgrounds: {:.0} s ({:.1} h) projected",
        a.motifs,
        defaults.instances,
        defaults.background,
        projected,
        projected / 3600.0
    );

    // ISM: every substitution of one window, three groups.
    let window = random_codes(len, 3);
    let group_w: Vec<f32> = head.w[..3 * head.dim].to_vec();
    let t = Instant::now();
    ism_window(backend, &net, &window, &group_w, a.batch)?;
    let ism_rate = (3 * len) as f64 / t.elapsed().as_secs_f64();
    eprintln!("ISM: {ism_rate:.1} substitutions/s ({:.1} s per {len} bp region)", (3 * len) as f64 / ism_rate);

    // Impute: every cell, the default memory budget of sc impute.
    let codes = random_codes(a.peaks * len, 4);
    let cells: Vec<u32> = (0..a.cells as u32).collect();
    let chunk = chunk_for(256 << 20, len, head.dim, a.cells);
    let t = Instant::now();
    let mut values = 0u64;
    let stats = impute_streamed(backend, &net, &head, &codes, &cells, false, chunk, a.batch, &mut |p| {
        values += p.len() as u64;
        Ok(())
    })?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "impute: {:.3e} peak × cell values/s ({:.1} peaks/s × {} cells), {} peaks per chunk, {:.1} MB of chunk buffers (bound {:.1} MB)",
        values as f64 / secs,
        a.peaks as f64 / secs,
        thousands(a.cells as u64),
        stats.chunk,
        stats.peak_chunk_bytes as f64 / 1e6,
        chunk_bytes(chunk, len, head.dim, a.cells) as f64 / 1e6
    );
    Ok(())
}

pub fn bench_analyses(a: &AnalysesBenchArgs) -> CliResult {
    let compute = select(a.device.as_deref(), a.precision)?;
    on_backend!(compute, b => run(b, a))?;
    Ok(())
}
