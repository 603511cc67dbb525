//! `chromax sc`: single-cell inputs (more of the scBasset-style workflow is to come).

use super::progress::thousands;
use super::CliResult;
use chromax::io::bed::read_intervals;
use chromax::io::h5ad::write_h5ad;
use chromax::io::text::LineReader;
use chromax::store::matrix::{count_fragments_in_peaks, write_matrix, CellFilter};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ScCommand {
    /// Count fragments per peak and cell: a cells × peaks AnnData (.h5ad) or a .cxmatrix store.
    Matrix(MatrixArgs),
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
    let ScCommand::Matrix(a) = cmd;
    let ext = a.output.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if ext != "h5ad" && ext != "cxmatrix" {
        return Err(format!("-o {}: use a .h5ad or .cxmatrix name", a.output.display()).into());
    }
    let peaks = read_intervals(&a.peaks)?;
    let filter = match (&a.cells, a.min_fragments) {
        (Some(path), _) => {
            let mut lines = LineReader::open(path)?;
            let mut list = Vec::new();
            while lines.advance()? {
                let l = String::from_utf8_lossy(lines.line()).trim().to_string();
                if !l.is_empty() {
                    list.push(l);
                }
            }
            CellFilter::Barcodes(list)
        }
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
