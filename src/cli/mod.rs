//! The `chromax` command line: one file per subcommand, thin over the library. The CLI owns
//! all output and exit codes.

pub mod bench;
mod bench_analyses;
pub mod bench_sc;
mod bench_skip;
pub mod coverage;
pub mod demo;
pub mod denoise;
pub mod device;
pub mod devices;
pub mod peaks;
pub mod plot;
pub mod progress;
pub mod sc;
pub mod sc_analyses;
pub mod store;

use clap::{Parser, Subcommand};

/// Deep-learning models of chromatin accessibility (ATAC-seq), on CUDA or on the CPU.
#[derive(Debug, Parser)]
#[command(name = "chromax", version, about, propagate_version = true)]
pub struct Cli {
    /// CPU threads for compute (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the CPU and every CUDA device, or say why CUDA is not usable.
    Devices(devices::DevicesArgs),
    /// Reads (BAM or 10x fragments) to a coverage track: bigWig, bedGraph or shard.
    Coverage(coverage::CoverageArgs),
    /// Call peaks on a coverage track (Poisson against the genome mean, as MACS2 bdgcmp + bdgpeakcall).
    Peaks(peaks::PeaksArgs),
    /// Track shards: build ahead of time, or describe one.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Single-cell inputs: the peak-by-cell matrix.
    #[command(subcommand)]
    Sc(sc::ScCommand),
    /// Throughput benchmarks (bases/s and FLOP/s).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The whole denoising workflow on the bundled real yeast data (the main job).
    Demo(demo::DemoArgs),
    /// Coverage denoising and peak calling (AtacWorks-style): train, run, eval.
    #[command(subcommand)]
    Denoise(denoise::DenoiseCommand),
    /// Figures, SVG or PNG: coverage tracks of a region, training curves.
    #[command(subcommand)]
    Plot(plot::PlotCommand),
    /// One self-contained HTML page for a model: configuration, curves, evaluation, tracks.
    Report(plot::ReportArgs),
}

/// Runs the parsed command line; the error is printed by `main`.
pub fn run(cli: Cli) -> CliResult {
    if let Some(threads) = cli.threads {
        // More threads than a few per core only cost memory and switching; tens of
        // thousands exhaust the process.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads == 0 || threads > 4 * cores {
            return Err(format!(
                "--threads {threads}: give 1 to {} (this machine runs {cores} threads at once; the default uses them all)",
                4 * cores
            )
            .into());
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    }
    match cli.command {
        Command::Devices(args) => devices::run(&args),
        Command::Coverage(args) => coverage::run(&args),
        Command::Peaks(args) => peaks::run(&args),
        Command::Store(cmd) => store::run(&cmd),
        Command::Denoise(cmd) => denoise::run_cmd(&cmd),
        Command::Demo(args) => demo::run_demo(&args),
        Command::Bench(cmd) => bench::run_bench(&cmd),
        Command::Sc(cmd) => sc::run(&cmd),
        Command::Plot(cmd) => plot::run(&cmd),
        Command::Report(args) => plot::report(&args),
    }
}

/// A subcommand's result; the error is a message for the user, already worded.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
