//! NVRTC compilation of the embedded kernel files and the on-disk kernel cache.
//!
//! A kernel file is compiled for the device's own architecture (`sm_XX`) on first use, to
//! machine code (CUBIN: NVRTC runs ptxas, so the driver loads it without a JIT step), or to
//! PTX where NVRTC cannot make machine code for that architecture or `CHROMAX_CUDA_LOAD=ptx`
//! asks for it. Either is cached under [`cache_dir`] with a name keyed by a SHA-256 of the
//! program text, the options, the architecture and the NVRTC version, so a changed kernel,
//! option or tool chain never reuses a stale image. Cache files are written to a temporary
//! name and renamed.

use crate::error::BackendError;
use crate::kernels::{kernel_program, KernelSource};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Environment variable that overrides the PTX cache directory.
pub const CACHE_DIR_ENV: &str = "CHROMAX_KERNEL_CACHE";
/// Environment variable that makes the CUDA backend load PTX (the driver compiles it) instead
/// of NVRTC's machine code: `CHROMAX_CUDA_LOAD=ptx`.
pub const LOAD_ENV: &str = "CHROMAX_CUDA_LOAD";
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

/// What ptxas reports for one kernel entry compiled to machine code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PtxasReport {
    pub entry: String,
    pub registers: u32,
    /// Static shared memory per block.
    pub shared_bytes: u64,
    pub stack_bytes: u64,
    pub spill_stores: u64,
    pub spill_loads: u64,
}

/// A kernel file's machine code (CUBIN) for a real architecture `arch` (`sm_XX`), compiled by
/// NVRTC with chromax's options and `extra`, and NVRTC's log. No GPU is needed. With
/// `--ptxas-options=-v` the log holds ptxas's report per entry ([`parse_ptxas_log`]).
pub fn compile_cubin(kernel: &KernelSource, arch: &str, extra: &[&str]) -> Result<(Vec<u8>, String), BackendError> {
    use cudarc::nvrtc::{result, sys};
    if !nvrtc_available() {
        return Err(BackendError::CudaUnavailable(nvrtc_missing_message()));
    }
    let failed =
        |log: String| BackendError::KernelCompile { file: kernel.file.to_string(), arch: arch.to_string(), log };
    let mut options = compile_options(arch);
    options.extend(extra.iter().map(|o| o.to_string()));
    let src = std::ffi::CString::new(kernel_program(kernel)).map_err(|e| failed(e.to_string()))?;
    let name = std::ffi::CString::new(kernel.file).map_err(|e| failed(e.to_string()))?;
    let prog = result::create_program(&src, Some(&name)).map_err(|e| failed(e.to_string()))?;
    // SAFETY: `prog` was created above and is destroyed once, after its log and CUBIN are
    // read; the CUBIN buffer is sized by nvrtcGetCUBINSize before nvrtcGetCUBIN fills it.
    let (compiled, log, cubin) = unsafe {
        let compiled = result::compile_program(prog, &options);
        let log = result::get_program_log(prog);
        let mut cubin = Vec::new();
        if compiled.is_ok() {
            let mut size = 0usize;
            if sys::nvrtcGetCUBINSize(prog, &mut size) == sys::nvrtcResult::NVRTC_SUCCESS && size > 0 {
                cubin = vec![0u8; size];
                if sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast()) != sys::nvrtcResult::NVRTC_SUCCESS {
                    cubin.clear();
                }
            }
        }
        let _ = result::destroy_program(prog);
        (compiled, log, cubin)
    };
    let log: String =
        log.map(|chars| chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect()).unwrap_or_default();
    compiled.map_err(|e| failed(format!("{e}: {}", log.trim())))?;
    if cubin.is_empty() {
        return Err(failed(format!("NVRTC compiled but gave no machine code for {arch}: {}", log.trim())));
    }
    Ok((cubin, log))
}

/// The entries of ptxas's verbose log: `Compiling entry function 'NAME'` starts one; the
/// `bytes stack frame, … spill stores, … spill loads` and `Used N registers, … bytes smem`
/// lines that follow fill it in.
pub fn parse_ptxas_log(log: &str) -> Vec<PtxasReport> {
    let number_before = |line: &str, what: &str| -> Option<u64> {
        let at = line.find(what)?;
        line[..at].split(|c: char| !c.is_ascii_digit()).rfind(|w| !w.is_empty())?.parse().ok()
    };
    let mut out: Vec<PtxasReport> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let entry = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(PtxasReport { entry, ..PtxasReport::default() });
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            last.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            last.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            last.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used ") && line.contains("registers") {
            last.registers = number_before(line, "registers").unwrap_or(0) as u32;
            last.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

/// Blocks of `threads` threads that fit one SM of compute capability 9.0 (H100/H200) at once,
/// and what limits them: 2,048 threads, 32 blocks, 65,536 registers (allocated per warp in
/// units of 256), 228 KiB of shared memory (1 KiB of it reserved per block).
pub fn sm90_blocks_per_sm(r: &PtxasReport, threads: u32) -> (u32, &'static str) {
    let warps = threads.div_ceil(32).max(1);
    let regs_per_warp = (r.registers.max(1) * 32).div_ceil(256) * 256;
    let limits = [
        (2048 / threads.max(1), "threads"),
        (32, "blocks"),
        (65_536 / (regs_per_warp * warps), "registers"),
        ((233_472 / (r.shared_bytes + 1024)) as u32, "shared memory"),
    ];
    limits.into_iter().min_by_key(|&(n, _)| n).unwrap_or((0, "threads"))
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
    let _ = write_atomically(&path, ptx.as_bytes());
    Ok(ptx)
}

/// What the driver loads for one kernel file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelImage {
    /// Machine code for the device's architecture: no JIT at load.
    Cubin(Vec<u8>),
    /// PTX: the driver compiles it at load (its NVRTC must not be newer than the driver).
    Ptx(String),
}

/// The image to load for a kernel file on an `arch` device: machine code from the cache or
/// compiled (and cached), else PTX ([`cached_ptx`]) when NVRTC gives no machine code for
/// `arch` or `CHROMAX_CUDA_LOAD=ptx` is set. A kernel that does not compile is an error
/// either way (the PTX compile reports it).
pub fn cached_image(kernel: &KernelSource, arch: &str) -> Result<KernelImage, BackendError> {
    if std::env::var(LOAD_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("ptx")) {
        return cached_ptx(kernel, arch).map(KernelImage::Ptx);
    }
    let program = kernel_program(kernel);
    let mut options = compile_options(arch);
    options.push("(cubin)".to_string());
    let path =
        cache_dir().map(|dir| dir.join(format!("{}-{}.cubin", kernel.stem, cache_key(&program, &options, arch))));
    if let Some(bytes) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
        if bytes.starts_with(ELF_MAGIC) {
            return Ok(KernelImage::Cubin(bytes));
        }
    }
    match compile_cubin(kernel, arch, &[]) {
        Ok((cubin, _)) => {
            if let Some(path) = &path {
                let _ = write_atomically(path, &cubin);
            }
            Ok(KernelImage::Cubin(cubin))
        }
        Err(_) => cached_ptx(kernel, arch).map(KernelImage::Ptx),
    }
}

/// The first bytes of an ELF file, as a CUBIN is.
const ELF_MAGIC: &[u8] = b"\x7fELF";

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

/// Stores a kernel image under a temporary name and renames it into place (a failure only
/// means the next run compiles again).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), crate::error::FileError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(crate::error::FileError::io(dir))?;
    }
    let file = crate::io::atomic::AtomicFile::new(path)?;
    let mut w = file.create()?;
    w.write_all(bytes).map_err(crate::error::FileError::io(path))?;
    w.flush().map_err(crate::error::FileError::io(path))?;
    drop(w);
    file.commit()
}
