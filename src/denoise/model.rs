//! A trained denoiser on disk: `config.json` ([`ModelConfig`]) and `model.safetensors`.

use crate::backend::Backend;
use crate::error::FileError;
use crate::io::json::write_json;
use crate::io::safetensors::{read_tensors, write_tensors};
use crate::models::checkpoint::{
    check_weights_fit, load_weights, open_model_dir, weight_tensors, CONFIG_FILE, MODEL_FILE,
};
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
    check_weights_fit(dir, config.model.param_count())?;
    let mut net = DenoiseNet::new(backend, config.model, 0)?;
    let path = dir.join(MODEL_FILE);
    load_weights(backend, &mut net, &path, &read_tensors(&path)?, &[])?;
    Ok((net, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    fn model_dir(name: &str) -> (CpuBackend, std::path::PathBuf) {
        let dir = crate::io::scratch_dir(&format!("denoise-model-{name}"));
        let cpu = CpuBackend::new();
        let net = DenoiseNet::new(&cpu, DenoiseConfig::demo(), 1).expect("net");
        let config = ModelConfig::new(DenoiseConfig::demo(), 1000, 100, vec![], serde_json::json!({}));
        write_model(&cpu, &dir, &config, &net).expect("write");
        (cpu, dir)
    }

    #[test]
    fn a_config_naming_a_huge_layer_is_refused_before_anything_is_allocated() {
        let (cpu, dir) = model_dir("huge");
        assert!(load_model(&cpu, &dir).is_ok());
        // Found by fuzzing: cls_filters 8888888888888888 asked for a 10^18-value allocation,
        // which aborted the process.
        let found = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/model_config/denoise_cls_filters_huge.json");
        std::fs::copy(found, dir.join(CONFIG_FILE)).expect("copy");
        let err = load_model(&cpu, &dir).err().expect("refused").to_string();
        assert!(err.contains("config.json") && err.contains("cls_filters is 8888888888888888"), "{err}");
        // Within each bound, but 1024 blocks of 65536 filters: over the parameter ceiling.
        let mut config = ModelConfig::new(DenoiseConfig::demo(), 1000, 100, vec![], serde_json::json!({}));
        config.model.reg_blocks = 1024;
        config.model.reg_filters = 65536;
        write_json(&dir.join(CONFIG_FILE), &config).expect("config");
        let err = load_model(&cpu, &dir).err().expect("refused").to_string();
        assert!(err.contains("parameters: at most 2.147e9"), "{err}");
        // A valid architecture that is not the one the weights were written for: refused by
        // the weights file's size, before the layers are built.
        config.model.reg_blocks = 4;
        config.model.reg_filters = 2048;
        write_json(&dir.join(CONFIG_FILE), &config).expect("config");
        let err = load_model(&cpu, &dir).err().expect("refused").to_string();
        assert!(err.contains("model.safetensors") && err.contains("the two files are not of one model"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
