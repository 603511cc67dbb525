//! A trained single-cell model on disk: `config.json` ([`ScModelConfig`]),
//! `model.safetensors`, and `cells.tsv` (the barcodes, in the order of the head's rows).

use super::data::CellBatches;
use crate::backend::Backend;
use crate::error::FileError;
use crate::io::safetensors::read_tensors;
use crate::models::checkpoint::{check_weights_fit, load_weights, open_model_dir, CONFIG_FILE, MODEL_FILE};
use crate::models::{SeqConfig, SeqNet};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The format name in a single-cell model's `config.json`.
pub const SC_FORMAT: &str = "chromax-seq-1";
/// The cells' barcodes, one per line, in the order of the head's rows.
pub const CELLS_FILE: &str = "cells.tsv";
/// Each peak with its split (train, val, test).
pub const PEAKS_FILE: &str = "peaks.bed";
/// A batch-corrected model's cells with their batches (barcode<TAB>batch), in head order.
pub const BATCHES_FILE: &str = "batches.tsv";

/// `config.json` of a single-cell model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScModelConfig {
    pub format: String,
    pub model: SeqConfig,
    pub training: serde_json::Value,
    /// SHA-256 of each input's content (matrix, peaks, genome), by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    pub created_by: String,
}

impl ScModelConfig {
    pub fn new(model: SeqConfig, training: serde_json::Value, inputs: BTreeMap<String, String>) -> Self {
        ScModelConfig {
            format: SC_FORMAT.into(),
            model,
            training,
            inputs,
            created_by: format!("chromax {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A trained single-cell model directory: its config and cells.
pub fn open_sc_model(dir: &Path) -> Result<(ScModelConfig, Vec<String>), Error> {
    let config: ScModelConfig = open_model_dir(dir, SC_FORMAT)?;
    config.model.validate().map_err(|e| FileError::content(dir.join(CONFIG_FILE), e))?;
    let cells_path = dir.join(CELLS_FILE);
    let text = std::fs::read_to_string(&cells_path).map_err(FileError::io(&cells_path))?;
    let cells: Vec<String> = text.lines().map(String::from).collect();
    if cells.len() != config.model.cells {
        return Err(FileError::content(
            &cells_path,
            format!("{} barcodes for a model of {} cells", cells.len(), config.model.cells),
        )
        .into());
    }
    Ok((config, cells))
}

/// Loads a trained SeqNet onto a backend.
pub fn load_seq_model<B: Backend>(backend: &B, dir: &Path) -> Result<(SeqNet<B>, ScModelConfig, Vec<String>), Error> {
    let (config, cells) = open_sc_model(dir)?;
    check_weights_fit(dir, config.model.param_count())?;
    let mut net = SeqNet::new(backend, config.model.clone(), 0, None)?;
    let model = dir.join(MODEL_FILE);
    load_weights(backend, &mut net, &model, &read_tensors(&model)?, &[])?;
    if config.model.batches > 0 {
        let batches = read_model_batches(dir, &cells)?;
        if batches.names.len() != config.model.batches {
            return Err(FileError::content(
                dir.join(BATCHES_FILE),
                format!("{} batches for a model of {}", batches.names.len(), config.model.batches),
            )
            .into());
        }
        net.set_cell_batches(backend, &batches.of_cell)?;
    }
    Ok((net, config, cells))
}

/// The batches of a batch-corrected model directory (`batches.tsv`, in the head's order).
pub fn read_model_batches(dir: &Path, cells: &[String]) -> Result<CellBatches, FileError> {
    let path = dir.join(BATCHES_FILE);
    let text = std::fs::read_to_string(&path).map_err(FileError::io(&path))?;
    let mut labels = Vec::with_capacity(cells.len());
    for (i, (line, cell)) in text.lines().zip(cells).enumerate() {
        match line.split_once('\t') {
            Some((b, label)) if b == cell => labels.push(label.to_string()),
            _ => {
                return Err(FileError::line(
                    &path,
                    i as u64 + 1,
                    format!("expected `{cell}<TAB>batch` (the cells in cells.tsv order)"),
                ))
            }
        }
    }
    if labels.len() != cells.len() {
        return Err(FileError::content(&path, format!("{} cells for a model of {}", labels.len(), cells.len())));
    }
    Ok(CellBatches::from_labels(&labels))
}
