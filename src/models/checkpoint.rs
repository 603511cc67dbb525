//! A trained model on disk: a directory holding `config.json` (what the model is: its format,
//! architecture and the settings it was trained with) and `model.safetensors` (its weights,
//! one tensor per parameter and per state buffer, named after the layers:
//! `regression.block0.conv1.weight`, `stem.bn.running_mean`, …).

use crate::backend::{Backend, BufLen};
use crate::error::FileError;
use crate::io::json::read_json;
use crate::io::safetensors::Tensors;
use crate::nn::{download_f32, upload_f32, Module};
use crate::Error;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

pub const CONFIG_FILE: &str = "config.json";
pub const MODEL_FILE: &str = "model.safetensors";

/// The model formats chromax writes, and the command that trains each.
const FORMATS: [(&str, &str); 2] = [("chromax-denoise-1", "chromax denoise"), ("chromax-seq-1", "chromax sc")];

/// The weights of a network as tensors named after its layers: every parameter and every
/// state buffer.
pub fn weight_tensors<B: Backend, M: Module<B>>(backend: &B, net: &M) -> Result<Tensors, Error> {
    let mut out = BTreeMap::new();
    for p in net.params() {
        out.insert(p.name.clone(), (p.shape.clone(), download_f32(backend, &p.value)?));
    }
    for (name, buf) in net.stats() {
        let values = download_f32(backend, buf)?;
        out.insert(name, (vec![values.len()], values));
    }
    Ok(out)
}

/// Checks, before a network of `params` parameters is built from `config.json`, that the
/// weights file is large enough to hold them (4 bytes each): a config.json from another model
/// or damaged to name a huge layer is refused by its size alone, instead of allocating the
/// layer first and finding the tensors missing after.
pub fn check_weights_fit(dir: &Path, params: usize) -> Result<(), FileError> {
    let path = dir.join(MODEL_FILE);
    let len = std::fs::metadata(&path).map_err(FileError::io(&path))?.len();
    let needed = params as u64 * 4;
    if needed > len {
        // A file that is not a checkpoint at all is named as such first.
        crate::io::safetensors::read_tensor_metadata(&path)?;
        return Err(FileError::content(
            &path,
            format!(
                "{CONFIG_FILE} describes a model of {params} parameters ({needed} bytes of f32 weights) but this file holds {len} bytes: the two files are not of one model"
            ),
        ));
    }
    Ok(())
}

/// Loads weights into `net`: every parameter and state buffer must be present with its
/// shape; any other tensor is refused, except those whose name starts with one of `extra`
/// (the optimiser state of a training checkpoint).
pub fn load_weights<B: Backend, M: Module<B>>(
    backend: &B,
    net: &mut M,
    path: &Path,
    tensors: &Tensors,
    extra: &[&str],
) -> Result<(), Error> {
    let other = |what: String| FileError::content(path, format!("checkpoint of another architecture: {what}"));
    let get = |name: &str, shape: &[usize]| -> Result<&Vec<f32>, FileError> {
        match tensors.get(name) {
            Some((s, values)) if s.as_slice() == shape => finite(path, name, values).map(|()| values),
            Some((s, _)) => {
                Err(other(format!("{name} has shape {s:?}, this model needs {shape:?} (check config.json)")))
            }
            None => Err(other(format!("no tensor {name}"))),
        }
    };
    let mut expected = Vec::new();
    for p in net.params_mut() {
        p.value = upload_f32(backend, get(&p.name, &p.shape)?)?;
        expected.push(p.name.clone());
    }
    for (name, buf) in net.stats_mut() {
        let len = buf.buf_len();
        *buf = upload_f32(backend, get(&name, &[len])?)?;
        expected.push(name);
    }
    if let Some(name) = tensors.keys().find(|k| !expected.contains(k) && !extra.iter().any(|e| k.starts_with(e))) {
        return Err(other(format!("unexpected tensor {name}")).into());
    }
    Ok(())
}

/// Refuses a tensor holding NaN or ±∞: a model with one computes garbage everywhere.
pub fn finite(path: &Path, name: &str, values: &[f32]) -> Result<(), FileError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(FileError::content(
            path,
            format!(
                "tensor {name} holds {} at index {i}: the checkpoint is damaged (or training diverged); use another checkpoint",
                values[i]
            ),
        )),
    }
}

/// Checks that `dir` is a model directory of `format` (config.json present and of that format,
/// model.safetensors present) and reads its config, with a message for the usual mistakes.
pub fn open_model_dir<C: DeserializeOwned>(dir: &Path, format: &str) -> Result<C, FileError> {
    let command = FORMATS.iter().find(|(f, _)| *f == format).map_or("chromax", |(_, c)| c);
    if dir.is_file() {
        let kind = if crate::io::bigwig::is_bigwig(dir) { "a bigWig file" } else { "a file" };
        return Err(FileError::content(
            dir,
            format!("--model takes the directory written by `{command} train` (config.json + model.safetensors); this is {kind}"),
        ));
    }
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.exists() {
        return Err(FileError::content(
            dir,
            format!("not a chromax model directory: no config.json (train one with `{command} train -o DIR`)"),
        ));
    }
    let found: serde_json::Value = read_json(&config_path, "chromax model config")?;
    let found_format = found.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if found_format != format {
        let hint = match FORMATS.iter().find(|(f, _)| *f == found_format) {
            Some((_, other)) => format!(" (a model of that format is run with `{other}`)"),
            None => String::new(),
        };
        return Err(FileError::content(
            &config_path,
            format!("model format '{found_format}'; `{command}` reads {format}{hint}"),
        ));
    }
    let config = serde_json::from_value(found)
        .map_err(|e| FileError::content(&config_path, format!("not a valid chromax model config: {e}")))?;
    if !dir.join(MODEL_FILE).exists() {
        return Err(FileError::content(dir, "no model.safetensors: training has not finished an epoch yet"));
    }
    Ok(config)
}
