//! JSON documents (model configurations, training states, reports), written atomically.

use super::atomic::write_atomically;
use crate::error::FileError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Writes `value` as pretty-printed JSON, whole or not at all.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| FileError::content(path, e.to_string()))?;
    write_atomically(path, |w| writeln!(w, "{text}"))
}

/// Reads a JSON document; `what` names it in the error ("not a valid chromax model config").
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(FileError::io(path))?;
    serde_json::from_str(&text).map_err(|e| FileError::content(path, format!("not a valid {what}: {e}")))
}
