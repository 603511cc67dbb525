//! `chromax store build|info`: convert tracks to memory-mapped shards ahead of time.

use super::progress::thousands;
use super::CliResult;
use chromax::io::guard::Files;
use chromax::io::ChromSizes;
use chromax::store::{build_shard, cached_shard, Dtype, TrackShard};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Convert a bigWig, bedGraph or BED/narrowPeak (as a 0/1 mask) to a track shard.
    Build(BuildArgs),
    /// Describe a track shard.
    Info(InfoArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    pub input: PathBuf,
    /// Output .cxtrack (default: the content-keyed cache, which later runs reuse).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// u8 (mask), u16 (integer coverage), f16 or f32 (default: f32 for signal, u8 for intervals).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Chromosome sizes (required for BED/narrowPeak).
    #[arg(long, short = 'g', value_name = "SIZES")]
    pub genome: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    pub shard: PathBuf,
}

pub fn run(cmd: &StoreCommand) -> CliResult {
    match cmd {
        StoreCommand::Build(args) => build(args),
        StoreCommand::Info(args) => info(args),
    }
}

fn build(args: &BuildArgs) -> CliResult {
    let started = std::time::Instant::now();
    Files::new().input("INPUT", &args.input).inputs("--genome", &args.genome).outputs("-o", &args.output).check()?;
    let dtype = args.dtype.as_deref().map(Dtype::parse).transpose()?;
    let sizes = args.genome.as_ref().map(ChromSizes::read).transpose()?;
    let (path, stats) = match &args.output {
        Some(out) => {
            let stats = build_shard(&args.input, out, dtype, sizes.as_ref())?;
            (out.clone(), Some(stats))
        }
        None => (cached_shard(&args.input, dtype, sizes.as_ref())?.path().to_path_buf(), None),
    };
    if let Some(s) = stats {
        if s.saturated > 0 || s.rounded > 0 {
            eprintln!(
                "warning: {} bases clamped and {} rounded to fit the dtype",
                thousands(s.saturated),
                thousands(s.rounded)
            );
        }
    }
    eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    println!("{}", path.display());
    Ok(())
}

fn info(args: &InfoArgs) -> CliResult {
    let shard = TrackShard::open(&args.shard)?;
    let index = shard.index();
    println!("shard     {}", args.shard.display());
    println!("dtype     {}", index.dtype.name());
    println!("genome    {} chromosomes, {} bp", shard.sizes().len(), thousands(shard.sizes().total()));
    if let Some(src) = &index.source {
        println!(
            "source    {} ({} bytes, sha256 {})",
            src.path,
            src.size.map_or("?".into(), thousands),
            src.sha256.as_deref().unwrap_or("?")
        );
    }
    println!("clamped   {} bases, rounded {} bases", thousands(index.saturated), thousands(index.rounded));
    println!("written   by {}", index.created_by);
    for c in &index.chroms {
        println!("  {:<20} {:>14} bp  at byte {}", c.name, thousands(c.length), thousands(c.offset));
    }
    Ok(())
}
