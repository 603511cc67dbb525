//! `chromax sc matrix | train | embed`: the scBasset-style single-cell workflow.

use super::device::select;
use super::progress::thousands;
use super::CliResult;
use chromax::io::barcodes::read_barcodes;
use chromax::io::bed::read_intervals;
use chromax::io::guard::Files;
use chromax::io::h5ad::write_h5ad;
use chromax::models::SeqConfig;
use chromax::on_backend;
use chromax::sc::convert::Filters;
use chromax::sc::data::load_sc_data;
use chromax::sc::embed::{read_batch_embeddings, read_cell_embeddings, write_embeddings, EmbedFormat};
use chromax::sc::matrix::{count_fragments_in_peaks, CellFilter};
use chromax::sc::train::{check_run_dir, train_seq, ScDataSummary, ScEpochRecord, ScTrainEvent, ScTrainOptions};
use chromax::store::matrix::write_matrix;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ScCommand {
    /// Count fragments per peak and cell: a cells × peaks AnnData (.h5ad) or a .cxmatrix store.
    Matrix(MatrixArgs),
    /// Convert a matrix (.h5ad, 10x .h5, Matrix Market, .cxmatrix) into the binary training
    /// store, matched to the peaks and filtered, streamed within --memory.
    Store(StoreArgs),
    /// Train a SeqNet (scBasset) on peak sequences and a peak-by-cell matrix.
    Train(Box<ScTrainArgs>),
    /// Write the cell embeddings and intercepts of a trained model (h5ad, npy or csv).
    Embed(EmbedArgs),
    /// Denoised accessibility of every peak in every cell (or per group), streamed to .h5ad.
    Impute(Box<super::sc_analyses::ImputeArgs>),
    /// TF activity per cell: motif instances inserted into shuffled backgrounds (JASPAR or MEME motifs).
    TfActivity(Box<super::sc_analyses::TfActivityArgs>),
    /// In-silico saturation mutagenesis of regions: logit changes per group for every substitution.
    Ism(Box<super::sc_analyses::IsmArgs>),
    /// Effects of SNVs (VCF) per group: logit and denoised-probability differences.
    Variants(Box<super::sc_analyses::VariantsArgs>),
}

#[derive(Debug, clap::Args)]
pub struct ScTrainArgs {
    /// Peaks (BED / narrowPeak), in the matrix's peak order or the same set.
    #[arg(long)]
    pub peaks: PathBuf,
    /// Genome FASTA (plain, gzip or bgzip) holding the peaks' chromosomes.
    #[arg(long, short = 'g')]
    pub genome: PathBuf,
    /// Peak-by-cell counts: .h5ad, 10x .h5, a Matrix Market directory or a .cxmatrix store.
    #[arg(long)]
    pub matrix: PathBuf,
    /// Output directory (model.safetensors, config.json, train_log.tsv, cells.tsv, peaks.bed).
    #[arg(long, short = 'o', required_unless_present = "resume")]
    pub output: Option<PathBuf>,
    /// Continue the run in DIR where it stopped (give the same inputs and settings).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub resume: Option<PathBuf>,
    /// Validate on these chromosomes instead of a seeded 5% of peaks (repeatable).
    #[arg(long = "val-chrom")]
    pub val_chrom: Vec<String>,
    /// Test chromosomes, with --val-chrom (repeatable).
    #[arg(long = "test-chrom", requires = "val_chrom")]
    pub test_chrom: Vec<String>,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long, default_value_t = 1000)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    /// Early stopping: epochs without a training-AUROC gain above --min-delta.
    #[arg(long, default_value_t = 50)]
    pub patience: usize,
    #[arg(long, default_value_t = 1e-6)]
    pub min_delta: f64,
    #[arg(long, default_value_t = 10)]
    pub seed: u64,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Host memory for converting the matrix into the training store (when it is not already
    /// a store that passes the filters): bytes or K, M, G (e.g. 512M, 4G).
    #[arg(long, default_value = "1G", value_parser = chromax::sc::convert::parse_memory)]
    pub memory: u64,
    /// No reverse-complement or shift augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Cells sampled for the per-cell validation AUROC.
    #[arg(long, default_value_t = 1000)]
    pub auroc_cells: usize,
    /// A JSON file overriding the architecture (fields of SeqConfig; default scBasset's).
    #[arg(long, value_name = "JSON")]
    pub model_config: Option<PathBuf>,
    /// Batch correction by this obs column of the .h5ad matrix (scBasset-BC: each cell's
    /// logit is z·(w_cell + w_batch) + b_cell; `sc embed` writes the corrected w_cell).
    #[arg(long, value_name = "KEY", conflicts_with = "batches")]
    pub batch_key: Option<String>,
    /// Batch correction by a barcode<TAB>batch file.
    #[arg(long, value_name = "FILE")]
    pub batches: Option<PathBuf>,
    /// L2 penalty λ·Σw² on the cell embeddings (Keras' l2; scBasset advises 1e-9 to 1e-8
    /// when batches do not mix).
    #[arg(long, default_value_t = 0.0)]
    pub l2: f64,
    /// cpu, cuda or cuda:N (default: CUDA when usable).
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    H5ad,
    Npy,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Model directory from `chromax sc train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Output file (.h5ad, .npy or .csv; the extension picks the format unless --format).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Also write a batch-corrected model's batch embeddings (batches × dim) to this file
    /// (.h5ad, .npy or .csv).
    #[arg(long, value_name = "FILE")]
    pub batch_embeddings: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// 10x-style fragments file.
    #[arg(long)]
    pub fragments: PathBuf,
    /// Peaks (BED / narrowPeak).
    #[arg(long)]
    pub peaks: PathBuf,
    /// Output: .h5ad (AnnData, cells × peaks) or .cxmatrix (memory-mapped CSR, peaks × cells).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Keep these cells (one barcode per line), in this order.
    #[arg(long, conflicts_with = "min_fragments")]
    pub cells: Option<PathBuf>,
    /// Keep cells with at least this many fragments (default 1).
    #[arg(long)]
    pub min_fragments: Option<u64>,
}

pub fn run(cmd: &ScCommand) -> CliResult {
    match cmd {
        ScCommand::Matrix(a) => matrix(a),
        ScCommand::Store(a) => store(a),
        ScCommand::Train(a) => train(a),
        ScCommand::Embed(a) => embed(a),
        ScCommand::Impute(a) => super::sc_analyses::impute_cmd(a),
        ScCommand::TfActivity(a) => super::sc_analyses::tf_activity_cmd(a),
        ScCommand::Ism(a) => super::sc_analyses::ism_cmd(a),
        ScCommand::Variants(a) => super::sc_analyses::variants_cmd(a),
    }
}

fn matrix(a: &MatrixArgs) -> CliResult {
    Files::new()
        .input("--fragments", &a.fragments)
        .input("--peaks", &a.peaks)
        .inputs("--cells", &a.cells)
        .output("-o", &a.output)
        .check()?;
    let ext = a.output.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if ext != "h5ad" && ext != "cxmatrix" {
        return Err(format!("-o {}: use a .h5ad or .cxmatrix name", a.output.display()).into());
    }
    let peaks = read_intervals(&a.peaks)?;
    let filter = match (&a.cells, a.min_fragments) {
        (Some(path), _) => CellFilter::Barcodes(read_barcodes(path)?),
        (None, n) => CellFilter::MinFragments(n.unwrap_or(1)),
    };
    let m = count_fragments_in_peaks(&a.fragments, &peaks, &filter)?;
    if ext == "h5ad" {
        write_h5ad(&a.output, &m.to_anndata())?;
    } else {
        write_matrix(&a.output, &m)?;
    }
    eprintln!(
        "{} peaks × {} cells, {} non-zero counts ({:.2}% dense) written to {}",
        thousands(m.peaks.len() as u64),
        thousands(m.cells.len() as u64),
        thousands(m.nnz() as u64),
        100.0 * m.nnz() as f64 / (m.peaks.len() as f64 * m.cells.len() as f64),
        a.output.display()
    );
    Ok(())
}

/// The matrix's filters, as scBasset's preprocessing applies them.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FilterArgs {
    /// Drop peaks accessible in fewer cells than this.
    #[arg(long, default_value_t = 1)]
    pub min_cells_per_peak: u32,
    /// Drop cells accessible in fewer peaks than this.
    #[arg(long, default_value_t = 1)]
    pub min_peaks_per_cell: u32,
}

impl From<FilterArgs> for Filters {
    fn from(f: FilterArgs) -> Filters {
        Filters { min_cells_per_peak: f.min_cells_per_peak, min_peaks_per_cell: f.min_peaks_per_cell }
    }
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Peak-by-cell counts: .h5ad (X cells × peaks: CSR, CSC or dense), 10x .h5, a Matrix
    /// Market directory or a .cxmatrix store.
    #[arg(long)]
    pub matrix: PathBuf,
    /// Peaks (BED / narrowPeak): the matrix's peaks in any order, or a subset; the store's
    /// rows follow this file.
    #[arg(long)]
    pub peaks: PathBuf,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Host memory for tables and buffers: bytes or K, M, G (e.g. 512M, 4G). The matrix is
    /// never held whole; more memory means fewer, larger writes.
    #[arg(long, default_value = "1G", value_parser = chromax::sc::convert::parse_memory)]
    pub memory: u64,
    /// Output store (.cxmatrix), which `sc train --matrix` takes directly.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

fn store(a: &StoreArgs) -> CliResult {
    use chromax::sc::convert::{convert_matrix, show_bytes};
    Files::new().input("--matrix", &a.matrix).input("--peaks", &a.peaks).output("-o", &a.output).check()?;
    if !a.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("cxmatrix")) {
        return Err(format!("-o {}: use a .cxmatrix name", a.output.display()).into());
    }
    let peaks = read_intervals(&a.peaks)?;
    let before = super::bench_sc::rss();
    let t = std::time::Instant::now();
    let filters = Filters::from(a.filters);
    let s = convert_matrix(&a.matrix, &peaks, &a.peaks, filters, a.memory, &a.output)?;
    let seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "input: {} peaks × {} cells, {} stored entries ({}); {} passes ({} s), the hash {} s",
        thousands(s.input_peaks as u64),
        thousands(s.input_cells as u64),
        thousands(s.input_entries),
        s.order,
        s.passes,
        s.pass_seconds[..s.passes].iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" + "),
        s.pass_seconds.last().map_or("-".into(), |t| format!("{t:.1}"))
    );
    if s.dropped_empty_cells > 0 {
        eprintln!(
            "{} cells lost every peak to the peak filter and were dropped",
            thousands(s.dropped_empty_cells as u64)
        );
    }
    let peak = super::bench_sc::peak_rss();
    eprintln!(
        "{} peaks × {} cells, {} non-zeros ({:.2}% dense) written to {} in {seconds:.1} s; {} writes of up to {} entries; \
         peak memory {} (resident {} before the conversion, budget {}){}",
        thousands(s.peaks as u64),
        thousands(s.cells as u64),
        thousands(s.nnz),
        100.0 * s.nnz as f64 / (s.peaks as f64 * s.cells as f64),
        a.output.display(),
        thousands(s.writes),
        if s.row_buffer > 0 { thousands(s.row_buffer as u64) } else { "a row".into() },
        peak.map_or("-".into(), show_bytes),
        before.map_or("-".into(), show_bytes),
        show_bytes(a.memory),
        if s.temporary_bytes > 0 {
            format!("; {} of temporary file (removed)", show_bytes(s.temporary_bytes))
        } else {
            String::new()
        }
    );
    Ok(())
}

fn train(a: &ScTrainArgs) -> CliResult {
    let (out, resume) = match (&a.output, &a.resume) {
        (_, Some(dir)) => (dir.clone(), true),
        (Some(dir), None) => (dir.clone(), false),
        (None, None) => return Err("give -o DIR (or --resume DIR)".into()),
    };
    let model = match &a.model_config {
        Some(path) => SeqConfig::read_json(path)?,
        None => SeqConfig::scbasset(1),
    };
    let compute = select(a.device.as_deref(), a.precision)?;
    let opts = ScTrainOptions {
        peaks: a.peaks.clone(),
        genome: a.genome.clone(),
        matrix: a.matrix.clone(),
        val_chroms: a.val_chrom.clone(),
        test_chroms: a.test_chrom.clone(),
        batch: a.batch,
        epochs: a.epochs,
        lr: a.lr,
        patience: a.patience,
        min_delta: a.min_delta,
        seed: a.seed,
        min_cells_per_peak: a.filters.min_cells_per_peak,
        min_peaks_per_cell: a.filters.min_peaks_per_cell,
        augment: !a.no_augment,
        auroc_cells: a.auroc_cells,
        model,
        batch_key: a.batch_key.clone(),
        batches_file: a.batches.clone(),
        l2: a.l2,
        bf16_products: compute.seqnet_bf16(),
        matrix_memory: a.memory,
        ..ScTrainOptions::default()
    };
    check_run_dir(&opts, &out)?;
    let data = load_sc_data(&opts)?;
    let mut report = sc_reporter();
    let records = on_backend!(compute, b => train_seq(b, &data, &opts, &out, resume, &mut report))?;
    if let Some(best) = records.iter().rev().find(|r| r.best) {
        eprintln!(
            "best model: epoch {} (train AUROC {:.4}; validation AUROC {:.4}, per peak {:.4}, per cell {:.4}) in {}",
            best.epoch,
            best.train_auroc,
            best.val_auroc,
            best.val_auroc_per_peak,
            best.val_auroc_per_cell,
            out.display()
        );
    }
    Ok(())
}

/// The progress display of single-cell training.
fn sc_reporter() -> impl FnMut(ScTrainEvent) {
    super::progress::train_reporter(
        "peaks",
        |s: &ScDataSummary| {
            format!(
                "{} peaks × {} cells ({} accessible, {:.2}%); {} train / {} validation / {} test peaks; {} parameters",
                thousands(s.peaks as u64),
                thousands(s.cells as u64),
                thousands(s.nnz as u64),
                100.0 * s.nnz as f64 / (s.peaks as f64 * s.cells as f64),
                thousands(s.train as u64),
                thousands(s.val as u64),
                thousands(s.test as u64),
                thousands(s.params as u64)
            )
        },
        |r: &ScEpochRecord| {
            format!(
                "epoch {:>3}  train loss {:.4} AUROC {:.4}  val loss {:.4} AUROC {:.4} (per peak {:.4}, per cell {:.4})  {:.1} peaks/s{}",
                r.epoch,
                r.train_loss,
                r.train_auroc,
                r.val_loss,
                r.val_auroc,
                r.val_auroc_per_peak,
                r.val_auroc_per_cell,
                r.peaks_per_second,
                if r.best { "  *best" } else { "" }
            )
        },
    )
}

fn embed(a: &EmbedArgs) -> CliResult {
    Files::new()
        .model_dir("--model", &a.model)
        .output("-o", &a.output)
        .outputs("--batch-embeddings", &a.batch_embeddings)
        .check()?;
    let format = match a.format {
        Some(FormatArg::H5ad) => EmbedFormat::H5ad,
        Some(FormatArg::Npy) => EmbedFormat::Npy,
        Some(FormatArg::Csv) => EmbedFormat::Csv,
        None => EmbedFormat::of(&a.output)
            .ok_or_else(|| format!("-o {}: use a .h5ad, .npy or .csv name, or give --format", a.output.display()))?,
    };
    let batch_format = match &a.batch_embeddings {
        Some(path) => Some(
            EmbedFormat::of(path)
                .ok_or_else(|| format!("--batch-embeddings {}: use a .h5ad, .npy or .csv name", path.display()))?,
        ),
        None => None,
    };
    let batches = match &a.batch_embeddings {
        Some(_) => Some(read_batch_embeddings(&a.model)?),
        None => None,
    };
    let e = read_cell_embeddings(&a.model)?;
    write_embeddings(&a.output, &e, format)?;
    eprintln!("{} cells × {} dimensions written to {}", thousands(e.barcodes.len() as u64), e.dim, a.output.display());
    if let (Some(path), Some(format), Some(b)) = (&a.batch_embeddings, batch_format, batches) {
        write_embeddings(path, &b, format)?;
        eprintln!("{} batches × {} dimensions written to {}", b.barcodes.len(), b.dim, path.display());
    }
    Ok(())
}
