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
    KernelCompile { file: String, arch: String, log: String },

    /// The device has no memory left for an allocation.
    #[error("{device} is out of memory: {requested_mib:.1} MiB requested, {free_mib:.1} MiB free")]
    OutOfMemory { device: String, requested_mib: f64, free_mib: f64 },

    /// A shape the backend does not implement (the message says the limit).
    #[error("{op}: {what}")]
    Unsupported { op: &'static str, what: String },

    /// The host kernel emulator cannot be built here (no C++20 compiler).
    #[error("the kernel emulator is not usable: {0}")]
    EmulatorUnavailable(String),
}

/// Errors of the file layer: reading and writing tracks, reads, peaks, stores. Every
/// message starts with the file and, for text formats, the line.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused a read or write.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A line of a text format that does not parse.
    #[error("{}: line {line}: {what}", path.display())]
    Line { path: PathBuf, line: u64, what: String },

    /// A file whose content is wrong as a whole (empty, truncated, wrong format or version).
    #[error("{}: {what}", path.display())]
    Content { path: PathBuf, what: String },

    /// Inputs that disagree with each other (e.g. chromosome names).
    #[error("{0}")]
    Mismatch(String),

    /// An option or argument with a value that cannot be used.
    #[error("{0}")]
    Argument(String),
}

impl FileError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.into();
        move |source| FileError::Io { path, source }
    }

    pub(crate) fn content(path: impl Into<PathBuf>, what: impl Into<String>) -> FileError {
        FileError::Content { path: path.into(), what: what.into() }
    }

    pub(crate) fn line(path: impl Into<PathBuf>, line: u64, what: impl Into<String>) -> FileError {
        FileError::Line { path: path.into(), line, what: what.into() }
    }
}

/// The library's error: one variant per layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    File(#[from] FileError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
