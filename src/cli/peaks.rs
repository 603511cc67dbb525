//! `chromax peaks TRACK -o OUT.narrowPeak`: the baseline Poisson peak caller.

use super::progress::thousands;
use super::CliResult;
use chromax::io::bed::write_narrowpeak;
use chromax::io::guard::Files;
use chromax::io::ChromSizes;
use chromax::peaks::{call_peaks, PeakCallOptions};
use chromax::store::build::read_track;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PeaksArgs {
    /// Coverage track: bigWig, bedGraph or .cxtrack shard.
    pub track: PathBuf,
    /// Output narrowPeak.
    #[arg(long, short = 'o', value_name = "OUT.narrowPeak")]
    pub output: PathBuf,
    /// Chromosome sizes; the genome λ averages over them (default: the track's chromosomes).
    #[arg(long, short = 'g', value_name = "SIZES")]
    pub genome: Option<PathBuf>,
    /// λ of the flat Poisson control, above 0 and at most 1e6 (default: the mean coverage
    /// over the genome).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Minimum −log10 p-value.
    #[arg(long, default_value_t = 3.0)]
    pub cutoff: f64,
    /// Join significant regions at most this many bases apart.
    #[arg(long, default_value_t = 30)]
    pub max_gap: u64,
    /// Drop regions shorter than this.
    #[arg(long, default_value_t = 200)]
    pub min_length: u64,
}

pub fn run(args: &PeaksArgs) -> CliResult {
    Files::new().input("TRACK", &args.track).inputs("--genome", &args.genome).output("-o", &args.output).check()?;
    let sizes = args.genome.as_ref().map(ChromSizes::read).transpose()?;
    let track = read_track(&args.track, sizes.as_ref())?;
    let opts = PeakCallOptions {
        lambda: args.lambda,
        cutoff: args.cutoff,
        max_gap: args.max_gap,
        min_length: args.min_length,
    };
    let (peaks, summary) = call_peaks(&track, &opts).map_err(|e| format!("{}: {e}", args.track.display()))?;
    write_narrowpeak(&args.output, &peaks)?;
    eprintln!(
        "λ = {:.4} (genome {} bp); −log10 p ≥ {} from coverage {}; {} peaks covering {} bp written to {}",
        summary.lambda,
        thousands(track.sizes().total()),
        args.cutoff,
        summary.min_coverage,
        thousands(summary.peaks as u64),
        thousands(summary.bases_in_peaks),
        args.output.display()
    );
    Ok(())
}
