//! `chromax plot …`: single figures, SVG or PNG by the output's extension.

use super::CliResult;
use chromax::io::guard::Files;
use chromax::plot::tracks::{plot_tracks, BinSummary, Named, TracksOptions};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum PlotCommand {
    /// Coverage tracks of one region on shared coordinates, peaks as bars underneath.
    Tracks(TracksArgs),
    /// A training run's curves (loss, its parts, validation metrics; best epoch marked).
    Curves(CurvesArgs),
    /// A single-cell model's cell embeddings on their first two principal components.
    Embedding(EmbeddingArgs),
    /// TF activity (`sc tf-activity`'s z-scores) as groups × the most variable motifs.
    TfActivity(TfActivityPlotArgs),
    /// In-silico mutagenesis (`sc ism`'s .h5) as sequence logos, one row per group.
    Ism(IsmPlotArgs),
}

#[derive(Debug, clap::Args)]
pub struct IsmPlotArgs {
    /// The .h5 `chromax sc ism` writes.
    #[arg(long, value_name = "ISM.h5")]
    pub ism: PathBuf,
    /// Which window: its number in the file (1-based; the positions around its strongest
    /// effect are drawn), or `chrom:start-end` (1-based, inclusive: those positions, of the
    /// window that holds them).
    #[arg(long, value_name = "N|chrom:start-end")]
    pub region: Option<String>,
    /// Positions drawn around the strongest effect when --region gives no range.
    #[arg(long, default_value_t = chromax::plot::logo::DEFAULT_SPAN as u32,
          value_parser = clap::value_parser!(u32).range(1..=chromax::plot::logo::MAX_SPAN as i64))]
    pub span: u32,
    /// Only this group (repeat for several; default: every group of the file).
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// Output figure: .svg or .png.
    #[arg(long, short = 'o', value_name = "FIG.svg|png")]
    pub output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct TfActivityPlotArgs {
    /// Model directory from `chromax sc train` (its cells, and obs:KEY's matrix).
    #[arg(long)]
    pub model: PathBuf,
    /// The .tsv `chromax sc tf-activity` writes beside its .h5ad.
    #[arg(long, value_name = "TF.tsv")]
    pub scores: PathBuf,
    /// Cell groups: a `barcode<TAB>group` file, or `obs:KEY` of the training AnnData.
    #[arg(long, value_name = "FILE|obs:KEY")]
    pub groups: String,
    /// How many motifs: those whose group means vary most.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub top: u32,
    /// Output figure: .svg or .png.
    #[arg(long, short = 'o', value_name = "FIG.svg|png")]
    pub output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct EmbeddingArgs {
    /// Model directory from `chromax sc train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Colour by group: a `barcode<TAB>group` file, or `obs:KEY` of the training AnnData
    /// (default: by each cell's intercept, its depth term).
    #[arg(long, value_name = "FILE|obs:KEY")]
    pub groups: Option<String>,
    /// Output figure: .svg or .png.
    #[arg(long, short = 'o', value_name = "FIG.svg|png")]
    pub output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CurvesArgs {
    /// Model directory from `chromax denoise train` or `chromax sc train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Output figure: .svg or .png.
    #[arg(long, short = 'o', value_name = "FIG.svg|png")]
    pub output: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Summary {
    /// The largest value of a bin's bases (a one-base spike stays visible).
    Max,
    /// The mean over a bin's bases.
    Mean,
}

#[derive(Debug, clap::Args)]
pub struct TracksArgs {
    /// `chrom:start-end` (1-based, inclusive; commas allowed) or a whole chromosome.
    #[arg(long)]
    pub region: String,
    /// A track to draw, top to bottom: NAME=FILE (bigWig, bedGraph or .cxtrack shard).
    #[arg(long = "track", value_name = "NAME=FILE", required = true, value_parser = Named::parse)]
    pub tracks: Vec<Named>,
    /// Peaks drawn as bars under the tracks: NAME=FILE (BED or narrowPeak).
    #[arg(long = "peaks", value_name = "NAME=FILE", value_parser = Named::parse)]
    pub peaks: Vec<Named>,
    /// One y scale for every track (default: each its own).
    #[arg(long)]
    pub same_scale: bool,
    /// Where the region has more bases than the figure has pixels: how a bin's bases become
    /// one value.
    #[arg(long, value_enum, default_value = "max")]
    pub bins: Summary,
    /// Figure width in pixels.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(300..=10000))]
    pub width: u32,
    /// Output figure: .svg or .png.
    #[arg(long, short = 'o', value_name = "FIG.svg|png")]
    pub output: PathBuf,
}

pub fn run(cmd: &PlotCommand) -> CliResult {
    match cmd {
        PlotCommand::Tracks(a) => tracks(a),
        PlotCommand::Curves(a) => curves(a),
        PlotCommand::Embedding(a) => embedding(a),
        PlotCommand::TfActivity(a) => tf_activity(a),
        PlotCommand::Ism(a) => ism(a),
    }
}

fn ism(a: &IsmPlotArgs) -> CliResult {
    Files::new().input("--ism", &a.ism).output("-o", &a.output).check()?;
    let opts =
        chromax::plot::logo::LogoOptions { region: a.region.clone(), span: a.span as usize, groups: a.groups.clone() };
    let fig = chromax::plot::logo::plot_ism(&a.ism, &opts, &a.output)?;
    eprintln!(
        "wrote {} ({} groups × {} positions, {}:{}-{})",
        a.output.display(),
        fig.groups.len(),
        fig.reference.len(),
        fig.chrom,
        fig.first + 1,
        fig.first + fig.reference.len() as i64
    );
    Ok(())
}

fn tf_activity(a: &TfActivityPlotArgs) -> CliResult {
    let group_file = Some(&a.groups).filter(|g| !g.starts_with("obs:")).map(PathBuf::from);
    Files::new()
        .model_dir("--model", &a.model)
        .input("--scores", &a.scores)
        .inputs("--groups", &group_file)
        .output("-o", &a.output)
        .check()?;
    let fig = chromax::plot::heatmap::plot_tf_activity(&a.model, &a.scores, &a.groups, a.top as usize, &a.output)?;
    eprintln!("wrote {} ({} groups × {} motifs)", a.output.display(), fig.groups.len(), fig.motifs.len());
    Ok(())
}

fn embedding(a: &EmbeddingArgs) -> CliResult {
    let group_file = a.groups.as_deref().filter(|g| !g.starts_with("obs:")).map(PathBuf::from);
    Files::new().model_dir("--model", &a.model).inputs("--groups", &group_file).output("-o", &a.output).check()?;
    let fig = chromax::plot::embedding::plot_embedding(&a.model, a.groups.as_deref(), &a.output)?;
    eprintln!(
        "wrote {} ({} cells; PC1 {:.1}%, PC2 {:.1}% of the variance)",
        a.output.display(),
        fig.points.len(),
        100.0 * fig.explained[0],
        100.0 * fig.explained[1]
    );
    Ok(())
}

fn curves(a: &CurvesArgs) -> CliResult {
    Files::new().model_dir("--model", &a.model).output("-o", &a.output).check()?;
    let fig = chromax::plot::curves::plot_curves(&a.model, &a.output)?;
    let best = fig.log.best.map_or(String::new(), |b| format!(", best epoch {b:.0}"));
    eprintln!("wrote {} ({} epochs{best})", a.output.display(), fig.log.epochs.len());
    Ok(())
}

fn tracks(a: &TracksArgs) -> CliResult {
    Files::new()
        .inputs("--track", a.tracks.iter().map(|t| &t.path))
        .inputs("--peaks", a.peaks.iter().map(|p| &p.path))
        .output("-o", &a.output)
        .check()?;
    let opts = TracksOptions {
        region: a.region.clone(),
        tracks: a.tracks.clone(),
        peaks: a.peaks.clone(),
        same_scale: a.same_scale,
        summary: match a.bins {
            Summary::Max => BinSummary::Max,
            Summary::Mean => BinSummary::Mean,
        },
        width: a.width,
    };
    let fig = plot_tracks(&opts, &a.output)?;
    let binned = if fig.bin > 1 {
        format!(", {} bp per bin ({})", fig.bin, if matches!(a.bins, Summary::Max) { "max" } else { "mean" })
    } else {
        String::new()
    };
    eprintln!(
        "wrote {} ({} tracks, {} peak files over {}:{}-{}{binned})",
        a.output.display(),
        fig.tracks.len(),
        fig.peaks.len(),
        fig.chrom,
        fig.start + 1,
        fig.end
    );
    Ok(())
}

/// `chromax report DIR -o report.html`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Model directory (`denoise train` or `sc train`).
    pub model: PathBuf,
    /// Output HTML page (self-contained: inline SVG, no scripts, nothing fetched).
    #[arg(long, short = 'o', value_name = "report.html")]
    pub output: PathBuf,
    /// A denoising run to evaluate and draw: the PREFIX of `denoise run --probabilities`
    /// (needs --noisy, --clean and --peaks).
    #[arg(long, value_name = "PREFIX", requires_all = ["noisy", "clean", "peaks"])]
    pub prediction: Option<PathBuf>,
    #[arg(long)]
    pub noisy: Option<PathBuf>,
    #[arg(long)]
    pub clean: Option<PathBuf>,
    /// The clean peaks (BED or narrowPeak).
    #[arg(long)]
    pub peaks: Option<PathBuf>,
    /// Regions or chromosomes the evaluation covers (default: every chromosome).
    #[arg(long, num_args = 1..)]
    pub regions: Vec<String>,
    /// Regions to draw as tracks (default: the three highest predicted peaks and a random
    /// stretch).
    #[arg(long = "view", value_name = "chr:start-end")]
    pub views: Vec<String>,
    /// Seed of the random stretch.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A single-cell analysis to draw: the .tsv (or .h5ad) of `sc tf-activity`, the .h5 of
    /// `sc ism` (repeatable; those made from this model that lie in its directory or beside
    /// it are found without it).
    #[arg(long = "analysis", value_name = "FILE")]
    pub analyses: Vec<PathBuf>,
    /// Cell groups of a single-cell model: a `barcode<TAB>group` file or `obs:KEY` of the
    /// training AnnData (colours the embedding; rows of the TF heatmap).
    #[arg(long, value_name = "FILE|obs:KEY")]
    pub groups: Option<String>,
}

pub fn report(a: &ReportArgs) -> CliResult {
    let run = match (&a.prediction, &a.noisy, &a.clean, &a.peaks) {
        (Some(p), Some(n), Some(c), Some(k)) => Some(chromax::plot::report::DenoiseRun {
            prediction: p.clone(),
            noisy: n.clone(),
            clean: c.clone(),
            peaks: k.clone(),
            regions: a.regions.clone(),
        }),
        _ => None,
    };
    let predicted = a
        .prediction
        .iter()
        .flat_map(|p| [".track.bw", ".prob.bw", ".peaks.narrowPeak"].map(|s| chromax::io::prefixed(p, s)));
    Files::new()
        .model_dir("MODEL", &a.model)
        .inputs("--prediction", predicted)
        .inputs("--noisy", &a.noisy)
        .inputs("--clean", &a.clean)
        .inputs("--peaks", &a.peaks)
        .inputs("--analysis", &a.analyses)
        .inputs("--groups", a.groups.iter().filter(|g| !g.starts_with("obs:")).map(PathBuf::from))
        .output("-o", &a.output)
        .check()?;
    let inputs = chromax::plot::report::ReportInputs {
        model: a.model.clone(),
        run,
        views: a.views.clone(),
        seed: a.seed,
        analyses: a.analyses.clone(),
        groups: a.groups.clone(),
    };
    let summary = chromax::plot::report::write_report(&inputs, &a.output)?;
    eprintln!("wrote {} (sections: {})", a.output.display(), summary.sections.join(", "));
    Ok(())
}
