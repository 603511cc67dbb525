//! Errors, one enum per layer. Every message names the value, file or device at fault
//! and, where there is one, what would be accepted.

use std::path::PathBuf;

/// Errors of the compute layer: the backends, their ops and the CUDA tool chain.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// An op was called with buffers or parameters that do not agree.
    #[error("{op}: {what}")]
    Shape { op: &'static str, what: String },

    /// A device string such as `--device cuda:1` that does not parse.
    #[error("unknown device '{0}': expected 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...)")]
    DeviceSpec(String),

    /// CUDA cannot be used on this machine; the message says why in one line.
    #[error("CUDA is not usable: {0}")]
    CudaUnavailable(String),

    /// A CUDA driver call failed.
    #[error("CUDA {context}: {message}")]
    Cuda { context: String, message: String },

    /// NVRTC rejected a kernel file.
    #[error("NVRTC could not compile kernels/{file} for {arch}: {log}")]
    KernelCompile {
        file: String,
        arch: String,
        log: String,
    },

    /// The on-disk PTX cache could not be read or written.
    #[error("kernel cache {path}: {source}")]
    KernelCache {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A shape the backend does not implement (the message says the limit).
    #[error("{op}: {what}")]
    Unsupported { op: &'static str, what: String },
}

/// The library's error: one variant per layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
