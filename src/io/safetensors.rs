//! safetensors files of named f32 tensors (checkpoints), written atomically, with optional
//! string metadata in the header committed by the same rename.

use super::atomic::write_atomically;
use crate::error::FileError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// Named f32 tensors: name → (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Writes named f32 tensors as a safetensors file, atomically.
pub fn write_tensors(path: &Path, tensors: &Tensors) -> Result<(), FileError> {
    write_tensors_with_metadata(path, tensors, None)
}

/// [`write_tensors`] with string metadata in the file's header.
pub fn write_tensors_with_metadata(
    path: &Path,
    tensors: &Tensors,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), FileError> {
    let bytes: BTreeMap<&String, (&Vec<usize>, &[u8])> =
        tensors.iter().map(|(n, (s, v))| (n, (s, bytemuck::cast_slice(v.as_slice())))).collect();
    let views = bytes
        .iter()
        .map(|(n, (s, b))| TensorView::new(Dtype::F32, (*s).clone(), b).map(|v| (n.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::content(path, e.to_string()))?;
    let data = safetensors::tensor::serialize(views, metadata).map_err(|e| FileError::content(path, e.to_string()))?;
    write_atomically(path, |w| w.write_all(&data))
}

/// The header metadata of a safetensors file (empty when it has none).
pub fn read_tensor_metadata(path: &Path) -> Result<HashMap<String, String>, FileError> {
    let bytes = std::fs::read(path).map_err(FileError::io(path))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| FileError::content(path, format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Reads every tensor of a safetensors file; each must be F32.
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
