//! NVRTC compilation of the embedded kernel files and the on-disk PTX cache.
//!
//! A kernel file is compiled for the device's own architecture (`sm_XX`) on first use. The
//! PTX is cached under [`cache_dir`] with a name keyed by a SHA-256 of the program text, the
//! options, the architecture and the NVRTC version, so a changed kernel, option or tool
//! chain never reuses stale PTX. Cache files are written to a temporary name and renamed.

use crate::error::BackendError;
use crate::kernels::{kernel_program, KernelSource};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Environment variable that overrides the PTX cache directory.
pub const CACHE_DIR_ENV: &str = "CHROMAX_KERNEL_CACHE";
/// Environment variable with extra include directories for NVRTC (`:`-separated), e.g. the
/// `include/` of the nvidia-cuda-runtime wheel for `cuda_fp16.h`.
pub const INCLUDE_ENV: &str = "CHROMAX_CUDA_INCLUDE";

/// Whether the NVRTC library can be loaded (probing never panics).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// NVRTC's (major, minor) version, or `None` when NVRTC cannot be loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_available() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); both pointers are valid for writes.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (status == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// The PTX cache directory: `$CHROMAX_KERNEL_CACHE`, else `$XDG_CACHE_HOME/chromax/kernels`,
/// else `$HOME/.cache/chromax/kernels`; `None` if none of them is set.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("chromax").join("kernels")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("chromax").join("kernels")))
}

/// The NVRTC options chromax compiles with, for an architecture such as `sm_90`.
pub fn compile_options(arch: &str) -> Vec<String> {
    let mut options = vec![format!("--gpu-architecture={arch}"), "--std=c++17".to_string()];
    if let Some(paths) = std::env::var_os(INCLUDE_ENV) {
        for dir in std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()) {
            options.push(format!("--include-path={}", dir.display()));
        }
    }
    options
}

/// Compiles one kernel file (with the common header prepended) to PTX text.
pub fn compile_kernel(kernel: &KernelSource, arch: &str) -> Result<String, BackendError> {
    compile_program(kernel, &kernel_program(kernel), &compile_options(arch), arch)
}

fn compile_program(
    kernel: &KernelSource,
    program: &str,
    options: &[String],
    arch: &str,
) -> Result<String, BackendError> {
    if !nvrtc_available() {
        return Err(BackendError::CudaUnavailable(nvrtc_missing_message()));
    }
    let opts = CompileOptions { options: options.to_vec(), name: Some(kernel.file.to_string()), ..Default::default() };
    let ptx = compile_ptx_with_opts(program, opts).map_err(|e| BackendError::KernelCompile {
        file: kernel.file.to_string(),
        arch: arch.to_string(),
        log: match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().trim().to_string(),
            other => other.to_string(),
        },
    })?;
    Ok(ptx.to_src())
}

/// The one-line reason NVRTC is missing, with what to install.
pub fn nvrtc_missing_message() -> String {
    "NVRTC (libnvrtc.so.13) could not be loaded: install the CUDA 13.0 toolkit or \
     `pip install nvidia-cuda-nvrtc==13.0.88` and add its nvidia/cu13/lib to LD_LIBRARY_PATH"
        .to_string()
}

/// PTX for a kernel file: read from the cache when present, else compiled and stored.
/// A cache that cannot be written is not an error: the PTX is still returned.
pub fn cached_ptx(kernel: &KernelSource, arch: &str) -> Result<String, BackendError> {
    let program = kernel_program(kernel);
    let options = compile_options(arch);
    let Some(dir) = cache_dir() else {
        return compile_program(kernel, &program, &options, arch);
    };
    let path = dir.join(format!("{}-{}.ptx", kernel.stem, cache_key(&program, &options, arch)));
    if let Ok(ptx) = std::fs::read_to_string(&path) {
        if ptx.contains(".entry") {
            return Ok(ptx);
        }
    }
    let ptx = compile_program(kernel, &program, &options, arch)?;
    let _ = write_atomically(&path, &ptx);
    Ok(ptx)
}

/// Hex SHA-256 (first 32 digits) of program, options, architecture and NVRTC version.
pub fn cache_key(program: &str, options: &[String], arch: &str) -> String {
    let mut h = Sha256::new();
    h.update(program.as_bytes());
    for o in options {
        h.update([0u8]);
        h.update(o.as_bytes());
    }
    h.update([0u8]);
    h.update(arch.as_bytes());
    h.update(format!("{:?}", nvrtc_version()).as_bytes());
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Stores PTX under a temporary name and renames it into place (a failure only means the
/// next run compiles again).
fn write_atomically(path: &Path, text: &str) -> Result<(), crate::error::FileError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(crate::error::FileError::io(dir))?;
    }
    let file = crate::io::atomic::AtomicFile::new(path)?;
    let mut w = file.create()?;
    w.write_all(text.as_bytes()).map_err(crate::error::FileError::io(path))?;
    w.flush().map_err(crate::error::FileError::io(path))?;
    drop(w);
    file.commit()
}
