//! A trained single-cell model on disk: `config.json` ([`ScModelConfig`]),
//! `model.safetensors`, and `cells.tsv` (the barcodes, in the order of the head's rows).

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
    Ok((net, config, cells))
}
