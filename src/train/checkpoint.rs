//! Checkpoints: safetensors files of named f32 tensors, JSON for everything else, all
//! written to a temporary name and renamed.
//!
//! A model directory holds `config.json` (architecture and training settings),
//! `model.safetensors` (the best model's weights, one tensor per parameter, named as the
//! layers: `regression.block0.conv1.weight`, …, nothing else), and for resuming
//! `last.safetensors` (the last epoch's weights plus Adam's `adam.m.*` / `adam.v.*`) with
//! `state.json` (epoch, step, best metric).

use crate::backend::Backend;
use crate::error::FileError;
use crate::io::atomic::AtomicFile;
use crate::models::{DenoiseConfig, DenoiseNet};
use crate::nn::{download_f32, upload_f32, Param};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const LAST_FILE: &str = "last.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const LOG_FILE: &str = "train_log.tsv";

/// Named f32 tensors: name → (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

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
    pub training: serde_json::Value,
    pub created_by: String,
}

/// `state.json`: where training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let file = AtomicFile::new(path)?;
    let mut w = file.create()?;
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| FileError::content(path, e.to_string()))?;
    w.write_all(b"\n").map_err(FileError::io(path))?;
    w.flush().map_err(FileError::io(path))?;
    drop(w);
    file.commit()
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(FileError::io(path))?;
    serde_json::from_str(&text).map_err(|e| FileError::content(path, format!("not a valid {what}: {e}")))
}

/// Writes text lines to `path`, atomically.
pub fn write_lines<S: AsRef<str>>(path: &Path, lines: impl IntoIterator<Item = S>) -> Result<(), FileError> {
    let file = AtomicFile::new(path)?;
    let mut w = file.create()?;
    for l in lines {
        writeln!(w, "{}", l.as_ref()).map_err(FileError::io(path))?;
    }
    w.flush().map_err(FileError::io(path))?;
    drop(w);
    file.commit()
}

/// Writes named f32 tensors (name → (shape, values)) as a safetensors file, atomically.
pub fn write_tensors(path: &Path, tensors: &Tensors) -> Result<(), FileError> {
    write_tensors_with_metadata(path, tensors, None)
}

/// [`write_tensors`] with string metadata in the file's header (committed with the tensors by
/// the one rename).
pub fn write_tensors_with_metadata(
    path: &Path,
    tensors: &Tensors,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<(), FileError> {
    let bytes: BTreeMap<&String, (&Vec<usize>, &[u8])> =
        tensors.iter().map(|(n, (s, v))| (n, (s, bytemuck::cast_slice(v.as_slice())))).collect();
    let views = bytes
        .iter()
        .map(|(n, (s, b))| TensorView::new(Dtype::F32, (*s).clone(), b).map(|v| (n.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::content(path, e.to_string()))?;
    let data = safetensors::tensor::serialize(views, metadata).map_err(|e| FileError::content(path, e.to_string()))?;
    let file = AtomicFile::new(path)?;
    let mut w = file.create()?;
    w.write_all(&data).map_err(FileError::io(path))?;
    w.flush().map_err(FileError::io(path))?;
    drop(w);
    file.commit()
}

/// The header metadata of a safetensors file (empty when it has none).
pub fn read_tensor_metadata(path: &Path) -> Result<std::collections::HashMap<String, String>, FileError> {
    let bytes = std::fs::read(path).map_err(FileError::io(path))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| FileError::content(path, format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Reads every f32 tensor of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<Tensors, FileError> {
    let bytes = std::fs::read(path).map_err(FileError::io(path))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| FileError::content(path, format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(FileError::content(
                path,
                format!("tensor {name} is {:?}; chromax checkpoints hold F32", view.dtype()),
            ));
        }
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

fn param_tensors<B: Backend>(
    backend: &B,
    params: &[&Param<B>],
    prefix: &str,
    which: impl Fn(&Param<B>) -> &B::Buf,
) -> Result<Tensors, crate::Error> {
    let mut out = BTreeMap::new();
    for p in params {
        out.insert(format!("{prefix}{}", p.name), (p.shape.clone(), download_f32(backend, which(p))?));
    }
    Ok(out)
}

/// The weights of a network as tensors named after its layers.
pub fn weight_tensors<B: Backend>(backend: &B, net: &DenoiseNet<B>) -> Result<Tensors, crate::Error> {
    param_tensors(backend, &net.params(), "", |p| &p.value)
}

/// Loads weights into `net`; every tensor must be present with its shape, and nothing else.
pub fn load_weights<B: Backend>(
    backend: &B,
    net: &mut DenoiseNet<B>,
    path: &Path,
    tensors: &Tensors,
) -> Result<(), crate::Error> {
    let expected: Vec<String> = net.params().iter().map(|p| p.name.clone()).collect();
    for p in net.params_mut() {
        match tensors.get(&p.name) {
            Some((shape, values)) if *shape == p.shape => p.value = upload_f32(backend, values)?,
            Some((shape, _)) => {
                return Err(FileError::content(
                    path,
                    format!("checkpoint of another architecture: {} has shape {shape:?}, this model needs {:?} (check config.json)", p.name, p.shape),
                )
                .into())
            }
            None => return Err(FileError::content(path, format!("checkpoint of another architecture: no tensor {}", p.name)).into()),
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !k.starts_with("adam.") && !expected.contains(k)) {
        return Err(
            FileError::content(path, format!("checkpoint of another architecture: unexpected tensor {extra}")).into()
        );
    }
    Ok(())
}

/// A model directory's files.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
}

impl ModelDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ModelDir { dir: dir.into() }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Checks that `dir` is a trained model directory, with a message for the usual mistakes.
    pub fn open(dir: &Path) -> Result<(ModelDir, ModelConfig), FileError> {
        if dir.is_file() {
            let kind = if crate::io::bigwig::is_bigwig(dir) { "a bigWig file" } else { "a file" };
            return Err(FileError::content(
                dir,
                format!("--model takes the directory written by `chromax denoise train` (config.json + model.safetensors); this is {kind}"),
            ));
        }
        let md = ModelDir::new(dir);
        let config_path = md.path(CONFIG_FILE);
        if !config_path.exists() {
            return Err(FileError::content(
                dir,
                "not a chromax model directory: no config.json (train one with `chromax denoise train -o DIR`)",
            ));
        }
        let config: ModelConfig = read_json(&config_path, "chromax model config")?;
        if config.format != "chromax-denoise-1" {
            return Err(FileError::content(
                &config_path,
                format!("model format '{}'; this chromax reads chromax-denoise-1", config.format),
            ));
        }
        config.model.validate().map_err(|e| FileError::content(&config_path, e))?;
        if !md.path(MODEL_FILE).exists() {
            return Err(FileError::content(dir, "no model.safetensors: training has not finished an epoch yet"));
        }
        Ok((md, config))
    }
}
