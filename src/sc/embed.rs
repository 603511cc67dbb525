//! Cell embeddings: the per-cell head's weights (the 32-d embedding of each cell) and biases
//! (its intercept, which tracks sequencing depth), read from a trained model and written as
//! an AnnData file for scanpy (`obsm["X_chromax"]`, `obs["intercept"]`), a `.npy` array
//! (cells × dim, float32) or a `.csv` table.

use super::model::open_sc_model;
use crate::error::FileError;
use crate::io::h5ad::{write_h5ad, AnnData, Column};
use crate::io::npy::write_npy_f32;
use crate::io::safetensors::read_tensors;
use crate::io::text::write_lines;
use crate::models::checkpoint::{finite, MODEL_FILE};
use crate::Error;
use std::path::Path;

/// A trained model's cells: barcodes, embeddings (cells × dim, row-major) and intercepts.
#[derive(Debug, Clone, PartialEq)]
pub struct CellEmbeddings {
    pub barcodes: Vec<String>,
    pub embeddings: Vec<f32>,
    pub intercepts: Vec<f32>,
    pub dim: usize,
}

/// The cell embeddings and intercepts of a model directory, read from its checkpoint without
/// building the network.
pub fn read_cell_embeddings(dir: &Path) -> Result<CellEmbeddings, Error> {
    let (config, cells) = open_sc_model(dir)?;
    let model = dir.join(MODEL_FILE);
    let t = read_tensors(&model)?;
    let dim = config.model.bottleneck;
    let get = |name: &str, len: usize| -> Result<Vec<f32>, FileError> {
        match t.get(name) {
            Some((_, v)) if v.len() == len => finite(&model, name, v).map(|()| v.clone()),
            _ => Err(FileError::content(&model, format!("no tensor {name} of {len} values"))),
        }
    };
    Ok(CellEmbeddings {
        embeddings: get("head.weight", cells.len() * dim)?,
        intercepts: get("head.bias", cells.len())?,
        barcodes: cells,
        dim,
    })
}

/// A batch-corrected model's batch embeddings (batches × dim, named by batch, intercepts 0),
/// read from its checkpoint; an error for a model without batch correction.
pub fn read_batch_embeddings(dir: &Path) -> Result<CellEmbeddings, Error> {
    let (config, cells) = open_sc_model(dir)?;
    let (dim, n) = (config.model.bottleneck, config.model.batches);
    if n == 0 {
        return Err(FileError::Argument(format!(
            "--batch-embeddings: {} was trained without batch correction (sc train --batch-key or --batches)",
            dir.display()
        ))
        .into());
    }
    let batches = super::model::read_model_batches(dir, &cells)?;
    let model = dir.join(MODEL_FILE);
    let t = read_tensors(&model)?;
    let w = match t.get("head.batch_weight") {
        Some((_, v)) if v.len() == dim * n => {
            finite(&model, "head.batch_weight", v)?;
            v
        }
        _ => {
            return Err(FileError::content(&model, format!("no tensor head.batch_weight of {} values", dim * n)).into())
        }
    };
    // Stored bottleneck × batches (a width-1 convolution's weights): transposed to rows.
    let embeddings = (0..n).flat_map(|k| (0..dim).map(move |d| w[d * n + k])).collect();
    Ok(CellEmbeddings { barcodes: batches.names, embeddings, intercepts: vec![0.0; n], dim })
}

/// The file formats embeddings are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFormat {
    H5ad,
    Npy,
    Csv,
}

impl EmbedFormat {
    /// The format of a file name's extension, if it has one of `.h5ad`, `.npy`, `.csv`.
    pub fn of(path: &Path) -> Option<EmbedFormat> {
        match path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).as_deref() {
            Some("h5ad") => Some(EmbedFormat::H5ad),
            Some("npy") => Some(EmbedFormat::Npy),
            Some("csv") => Some(EmbedFormat::Csv),
            _ => None,
        }
    }
}

/// Writes the embeddings (atomically) in `format`.
pub fn write_embeddings(path: &Path, e: &CellEmbeddings, format: EmbedFormat) -> Result<(), FileError> {
    let (cells, dim) = (&e.barcodes, e.dim);
    match format {
        EmbedFormat::H5ad => write_h5ad(
            path,
            &AnnData {
                x: None,
                obs_names: cells.clone(),
                obs: vec![("intercept".into(), Column::F64(e.intercepts.iter().map(|&v| v as f64).collect()))],
                obsm: vec![("X_chromax".into(), e.embeddings.clone(), dim)],
                ..AnnData::default()
            },
        ),
        EmbedFormat::Npy => write_npy_f32(path, &e.embeddings, cells.len(), dim),
        EmbedFormat::Csv => {
            let header: Vec<String> = (0..dim).map(|d| format!("chromax_{d}")).collect();
            let rows = cells.iter().enumerate().map(|(i, c)| {
                let values: Vec<String> = e.embeddings[i * dim..(i + 1) * dim].iter().map(|v| v.to_string()).collect();
                format!("{c},{},{}", e.intercepts[i], values.join(","))
            });
            write_lines(path, std::iter::once(format!("barcode,intercept,{}", header.join(","))).chain(rows))
        }
    }
}
