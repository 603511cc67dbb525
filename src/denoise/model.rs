//! A trained denoiser on disk: `config.json` ([`ModelConfig`]) and `model.safetensors`.

use crate::backend::Backend;
use crate::error::FileError;
use crate::io::json::write_json;
use crate::io::safetensors::{read_tensors, write_tensors};
use crate::models::checkpoint::{load_weights, open_model_dir, weight_tensors, CONFIG_FILE, MODEL_FILE};
use crate::models::{DenoiseConfig, DenoiseNet};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The format name in a denoiser's `config.json`.
pub const DENOISE_FORMAT: &str = "chromax-denoise-1";

/// `config.json`: what a model directory was trained as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub format: String,
    pub model: DenoiseConfig,
    /// Scored bases per interval and context on each side.
    pub interval: u64,
    pub pad: u64,
    /// Names of the extra input tracks, in channel order after the noisy track.
    pub extra_tracks: Vec<String>,
    /// The training settings.
    pub training: serde_json::Value,
    /// SHA-256 of each input's content (noisy, clean, peaks, genome), by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    pub created_by: String,
}

impl ModelConfig {
    pub fn new(
        model: DenoiseConfig,
        interval: u64,
        pad: u64,
        extra_tracks: Vec<String>,
        training: serde_json::Value,
    ) -> Self {
        ModelConfig {
            format: DENOISE_FORMAT.into(),
            model,
            interval,
            pad,
            extra_tracks,
            training,
            inputs: BTreeMap::new(),
            created_by: format!("chromax {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Checks that `dir` is a trained denoiser's directory and reads its config.
pub fn open_model(dir: &Path) -> Result<ModelConfig, FileError> {
    let config: ModelConfig = open_model_dir(dir, DENOISE_FORMAT)?;
    config.model.validate().map_err(|e| FileError::content(dir.join(CONFIG_FILE), e))?;
    Ok(config)
}

/// Writes a model directory: `config.json` and the net's weights as `model.safetensors`
/// (the directory must exist).
pub fn write_model<B: Backend>(
    backend: &B,
    dir: &Path,
    config: &ModelConfig,
    net: &DenoiseNet<B>,
) -> Result<(), Error> {
    write_json(&dir.join(CONFIG_FILE), config)?;
    write_tensors(&dir.join(MODEL_FILE), &weight_tensors(backend, net)?)?;
    Ok(())
}

/// Loads a trained denoiser onto a backend.
pub fn load_model<B: Backend>(backend: &B, dir: &Path) -> Result<(DenoiseNet<B>, ModelConfig), Error> {
    let config = open_model(dir)?;
    let mut net = DenoiseNet::new(backend, config.model, 0)?;
    let path = dir.join(MODEL_FILE);
    load_weights(backend, &mut net, &path, &read_tensors(&path)?, &[])?;
    Ok((net, config))
}
