//! `chromax coverage INPUT --genome SIZES -o OUT`: reads (BAM or fragments) to a track.

use super::progress::{record_spinner, thousands};
use super::CliResult;
use chromax::coverage::{
    bam_header_sizes, coverage_from_bam, coverage_from_fragments, is_bam, CellSelection, CoverageOptions,
    CoverageReport, PileupMode, Region,
};
use chromax::io::barcodes::read_barcodes;
use chromax::io::bedgraph::write_bedgraph;
use chromax::io::bigwig::write_bigwig;
use chromax::io::guard::Files;
use chromax::io::prefixed;

use chromax::io::ChromSizes;
use chromax::store::shard::write_shard;
use chromax::store::{Dtype, SHARD_EXTENSION};

use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Tn5 cut sites, each widened by --extend on both sides.
    Cutsites,
    /// Whole fragments.
    Fragments,
}

#[derive(Debug, clap::Args)]
pub struct CoverageArgs {
    /// A BAM file, or a 10x-style fragments file (chrom start end barcode [count]; plain, gzip or bgzip).
    pub input: PathBuf,
    /// Chromosome sizes (chrom.sizes). Required for fragments; for a BAM the header's by default.
    #[arg(long, short = 'g', value_name = "SIZES")]
    pub genome: Option<PathBuf>,
    /// Output track: .bw/.bigWig, .bedGraph/.bdg, or .cxtrack (a track shard, u16).
    #[arg(long, short = 'o', value_name = "OUT")]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value_t = Mode::Cutsites)]
    pub mode: Mode,
    /// Bases added on both sides of each cut site (5 for footprinting).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub extend: u64,
    /// Weight each fragment by its count column (read pairs) instead of 1.
    #[arg(long)]
    pub use_counts: bool,
    /// BAM: drop reads with a lower mapping quality.
    #[arg(long, default_value_t = 30, value_name = "Q")]
    pub min_mapq: u8,
    /// Keep this fraction of fragments / read pairs (e.g. 0.1), for noisy training data.
    #[arg(long, value_name = "FRACTION")]
    pub subsample_reads: Option<f64>,
    /// Seed for --subsample-reads and --sample-cells.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep only these cells (one barcode per line; the CB tag for a BAM).
    #[arg(long, value_name = "BARCODES", conflicts_with = "sample_cells")]
    pub cells: Option<PathBuf>,
    /// Keep N cells drawn at random (seeded) from the fragments file.
    #[arg(long, value_name = "N")]
    pub sample_cells: Option<usize>,
    /// Only this region, chrom or chrom:start-end (1-based, inclusive); uses a .tbi/.bai index.
    #[arg(long)]
    pub region: Option<String>,
}

enum OutputFormat {
    BigWig,
    BedGraph,
    Shard,
}

fn output_format(path: &Path) -> CliResult<OutputFormat> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let ext = name.rsplit('.').next().unwrap_or("");
    match ext {
        "bw" | "bigwig" => Ok(OutputFormat::BigWig),
        "bedgraph" | "bdg" | "bg" => Ok(OutputFormat::BedGraph),
        e if e == SHARD_EXTENSION => Ok(OutputFormat::Shard),
        _ => Err(format!(
            "-o {}: unknown output format; use .bw/.bigWig, .bedGraph/.bdg or .{SHARD_EXTENSION}",
            path.display()
        )
        .into()),
    }
}

pub fn run(args: &CoverageArgs) -> CliResult {
    let started = Instant::now();
    let format = output_format(&args.output)?;
    let index = |ext: &str| prefixed(&args.input, ext);
    Files::new()
        .input("INPUT", &args.input)
        .inputs("the index of INPUT", [index(".bai"), index(".tbi"), index(".csi")])
        .inputs("--genome", &args.genome)
        .inputs("--cells", &args.cells)
        .output("-o", &args.output)
        .check()?;
    let bam = is_bam(&args.input);
    let sizes = match (&args.genome, bam) {
        (Some(g), _) => ChromSizes::read(g)?,
        (None, true) => bam_header_sizes(&args.input)?,
        (None, false) => {
            return Err("--genome SIZES is required for a fragments file (chrom.sizes: name<TAB>length)".into())
        }
    };
    let cells = match (&args.cells, args.sample_cells) {
        (Some(path), _) => CellSelection::Keep(read_barcodes(path)?.into_iter().map(String::into_bytes).collect()),
        (None, Some(n)) => CellSelection::Sample(n),
        (None, None) => CellSelection::All,
    };
    let opts = CoverageOptions {
        mode: match args.mode {
            Mode::Cutsites => PileupMode::CutSites,
            Mode::Fragments => PileupMode::Fragments,
        },
        extend: args.extend,
        use_counts: args.use_counts,
        subsample: args.subsample_reads,
        seed: args.seed,
        cells,
        min_mapq: args.min_mapq,
        region: args.region.as_deref().map(Region::parse).transpose()?,
    };
    let name = args.input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let spinner = record_spinner(&format!("reading {name}"));
    let mut progress = |n: u64| spinner.set_position(n);
    let result = if bam {
        coverage_from_bam(&args.input, Some(&sizes), &opts, &mut progress)
    } else {
        coverage_from_fragments(&args.input, &sizes, &opts, &mut progress)
    };
    spinner.finish_and_clear();
    let (track, report) = result?;
    print_report(&report, bam, &sizes);

    let threads = rayon::current_num_threads();
    match format {
        OutputFormat::BigWig => write_bigwig(&args.output, &track, threads)?,
        OutputFormat::BedGraph => write_bedgraph(&args.output, &track)?,
        OutputFormat::Shard => {
            let stats = write_shard(&args.output, &track, Dtype::U16, None)?;
            if stats.saturated > 0 {
                eprintln!(
                    "warning: {} bases above 65,535 were stored as 65,535 (u16 shard)",
                    thousands(stats.saturated)
                );
            }
        }
    }
    eprintln!(
        "wrote {} ({} chromosomes, {} runs, total coverage {}) in {:.1} s",
        args.output.display(),
        sizes.len(),
        thousands(track.run_count() as u64),
        thousands(track.sum() as u64),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_report(r: &CoverageReport, bam: bool, sizes: &ChromSizes) {
    let unit = if bam { "reads" } else { "fragments" };
    let mut line = format!("read {} {unit}, used {}", thousands(r.records), thousands(r.used));
    for (what, n) in [
        ("outside the cell selection", r.skipped_cells),
        ("dropped by subsampling", r.skipped_subsample),
        ("outside the region", r.skipped_region),
    ] {
        if n > 0 {
            line.push_str(&format!(", {} {what}", thousands(n)));
        }
    }
    eprintln!("{line}");
    if let Some(cells) = r.cells_kept {
        eprintln!("cells kept: {}", thousands(cells as u64));
    }
    if !r.filtered.is_empty() {
        let parts: Vec<String> = r.filtered.iter().map(|(k, v)| format!("{k} {}", thousands(*v))).collect();
        eprintln!("reads filtered: {}", parts.join(", "));
    }
    if !r.unknown_chroms.is_empty() {
        let total: u64 = r.unknown_chroms.values().sum();
        let names: Vec<&str> = r.unknown_chroms.keys().take(5).map(String::as_str).collect();
        eprintln!(
            "warning: {} {unit} on {} chromosome(s) missing from the genome sizes ({}{}) were not counted; the sizes have {}",
            thousands(total),
            r.unknown_chroms.len(),
            names.join(", "),
            if r.unknown_chroms.len() > 5 { ", …" } else { "" },
            sizes.names().iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if r.off_chromosome > 0 {
        eprintln!(
            "warning: {} {unit} start at or past their chromosome's end in the genome sizes and were not counted: are the sizes of the same assembly?",
            thousands(r.off_chromosome)
        );
    }
    if r.bases_clipped > 0 {
        eprintln!("{} bases of coverage fell off chromosome ends", thousands(r.bases_clipped));
    }
}
