//! The kernel emulator: the CUDA sources of `kernels/` compiled as C++ for the host
//! (`cuda_emu.h`: every block's threads are OS threads meeting at `__syncthreads()`) and run
//! through the same [`KernelBackend`] op code, launch geometry and argument lists as on a
//! GPU. It checks kernel logic (indexing, tiling, barriers, reductions) and the launch code on
//! machines without one, the warp-level tensor-core operations included (exact lane maps);
//! it says nothing about speed.
//!
//! Building it needs `g++` with C++20 (about half a minute, once per process); without one,
//! [`EmulatedBackend::new`] says so with [`BackendError::EmulatorUnavailable`].

use super::launch::{with_kernel_params, Geometry, KArg, KernelDevice};
use super::KernelBackend;
use crate::backend::{BackendResult, HostBuffer};
use crate::error::BackendError;
use crate::kernels::{kernel_program, kernel_signatures, KernelSource, KERNEL_FILES};
use std::ffi::c_void;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The CUDA backend's ops on host memory, with the kernels run by the emulator.
pub type EmulatedBackend = KernelBackend<EmulatedDevice>;

impl EmulatedBackend {
    /// The emulator, reporting `multiprocessors` streaming multiprocessors to the op code
    /// (grids are sized from it: 132 as an H200, 1 to force a single block where an op splits
    /// its work). The kernels are compiled on the first call of the process.
    pub fn new(multiprocessors: usize) -> BackendResult<Self> {
        Ok(KernelBackend::on(EmulatedDevice { lib: library()?, multiprocessors: multiprocessors.max(1) }))
    }
}

type EmuEntry = unsafe extern "C" fn(*const u32, *mut *mut c_void) -> i32;

/// A host "device": buffers are host vectors, launches run the emulated kernels.
pub struct EmulatedDevice {
    lib: Arc<libloading::Library>,
    multiprocessors: usize,
}

/// The kernels compiled for the host, once per process.
fn library() -> BackendResult<Arc<libloading::Library>> {
    static LIB: OnceLock<Result<Arc<libloading::Library>, BackendError>> = OnceLock::new();
    match LIB.get_or_init(build) {
        Ok(lib) => Ok(lib.clone()),
        Err(BackendError::EmulatorUnavailable(why)) => Err(BackendError::EmulatorUnavailable(why.clone())),
        Err(e) => Err(BackendError::KernelCompile {
            file: "*.cu".into(),
            arch: "the host emulator".into(),
            log: e.to_string(),
        }),
    }
}

/// C++ for one kernel file: the program NVRTC would compile, made host-runnable, plus one
/// `emu_<kernel>(geometry, params)` entry per kernel that unpacks CUDA's `void**` params.
fn emulation_source(kernel: &KernelSource) -> String {
    // The launch's dynamic shared memory is 16-byte aligned (emu_run), as on a GPU.
    let program = kernel_program(kernel).replace(
        "extern __shared__ __align__(16) float smem[];",
        "float* smem = reinterpret_cast<float*>(emu_dynamic_smem);",
    );
    let mut src = format!("#include \"cuda_emu.h\"\n{program}\n");
    for sig in kernel_signatures(kernel.text) {
        let (name, types) = (sig.name, sig.param_types);
        let args: Vec<String> =
            types.iter().enumerate().map(|(i, t)| format!("*reinterpret_cast<{t}*>(params[{i}])")).collect();
        src.push_str(&format!(
            "extern \"C\" int emu_{name}(const unsigned* g, void** params) {{ return emu_run(g, [&] {{ {name}({}); }}); }}\n",
            args.join(", ")
        ));
    }
    src
}

fn build() -> Result<Arc<libloading::Library>, BackendError> {
    let unavailable = |why: String| BackendError::EmulatorUnavailable(why);
    match std::process::Command::new("g++").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err(unavailable("g++ (with C++20) was not found".into())),
    }
    let failed =
        |what: String| BackendError::KernelCompile { file: "*.cu".into(), arch: "the host emulator".into(), log: what };
    let dir = std::env::temp_dir().join(format!("chromax-emu-{}", std::process::id()));
    let io = |e: std::io::Error| failed(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::write(dir.join("cuda_emu.h"), include_str!("cuda_emu.h")).map_err(io)?;
    let mut sources = Vec::new();
    for kernel in KERNEL_FILES {
        let path = dir.join(format!("{}.cpp", kernel.stem));
        std::fs::write(&path, emulation_source(kernel)).map_err(io)?;
        sources.push(path);
    }
    let lib_path = dir.join("libchromax_emu.so");
    let output = std::process::Command::new("g++")
        .args(["-std=c++20", "-O1", "-g", "-shared", "-fPIC", "-pthread", "-Wall", "-Wno-unknown-pragmas"])
        .arg("-Wno-unused-variable")
        .arg(format!("-I{}", dir.display()))
        .args(&sources)
        .arg("-o")
        .arg(&lib_path)
        .output()
        .map_err(|e| failed(format!("g++ not runnable: {e}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "g++ failed to compile the kernels for the host:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // SAFETY: the library was just built from our own sources and has no initialisers.
    let lib = unsafe { libloading::Library::new(&lib_path) }.map_err(|e| failed(e.to_string()))?;
    // Loaded libraries stay mapped after their file is gone.
    let _ = std::fs::remove_dir_all(Path::new(&dir));
    Ok(Arc::new(lib))
}

impl KernelDevice for EmulatedDevice {
    type Buf = Vec<f32>;
    /// 8-byte words, so f64 and u64 results are aligned.
    type Scratch = Vec<u64>;

    fn describe(&self) -> String {
        format!("kernel emulator ({} SMs)", self.multiprocessors)
    }

    fn zeros(&self, len: usize) -> BackendResult<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, host: &[f32]) -> BackendResult<Vec<f32>> {
        Ok(host.to_vec())
    }

    fn download(&self, buf: &Vec<f32>, host: &mut [f32]) -> BackendResult<()> {
        host.copy_from_slice(buf);
        Ok(())
    }

    fn copy_from_host(&self, host: &[f32], buf: &mut Vec<f32>) -> BackendResult<()> {
        buf.copy_from_slice(host);
        Ok(())
    }

    fn synchronize(&self) -> BackendResult<()> {
        Ok(())
    }

    fn free_memory(&self) -> Option<usize> {
        None
    }

    fn host_buffer(&self, len: usize) -> BackendResult<HostBuffer> {
        Ok(HostBuffer::Plain(vec![0.0; len]))
    }

    fn ptr(&self, buf: &Vec<f32>) -> u64 {
        buf.as_ptr() as u64
    }

    fn ptr_mut(&self, buf: &mut Vec<f32>) -> u64 {
        buf.as_mut_ptr() as u64
    }

    fn scratch(&self, bytes: usize) -> BackendResult<Vec<u64>> {
        Ok(vec![0; bytes.div_ceil(8).max(1)])
    }

    fn scratch_from(&self, bytes: &[u8]) -> BackendResult<Vec<u64>> {
        let mut words = self.scratch(bytes.len())?;
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Ok(words)
    }

    fn scratch_ptr(&self, scratch: &mut Vec<u64>) -> u64 {
        scratch.as_mut_ptr() as u64
    }

    fn read_f64(&self, scratch: &Vec<u64>, out: &mut [f64]) -> BackendResult<()> {
        out.iter_mut().zip(scratch).for_each(|(o, &w)| *o = f64::from_bits(w));
        Ok(())
    }

    fn read_u64(&self, scratch: &Vec<u64>, out: &mut [u64]) -> BackendResult<()> {
        out.iter_mut().zip(scratch).for_each(|(o, &w)| *o = w);
        Ok(())
    }

    unsafe fn launch(&self, _stem: &'static str, name: &'static str, g: Geometry, args: &[KArg]) -> BackendResult<()> {
        let symbol = format!("emu_{name}");
        // SAFETY: every emu_<kernel> symbol has the EmuEntry signature (generated above).
        let entry: libloading::Symbol<EmuEntry> = unsafe { self.lib.get(symbol.as_bytes()) }
            .map_err(|e| BackendError::Cuda { context: format!("emulating {name}"), message: e.to_string() })?;
        let geometry = [g.grid.0, g.grid.1, g.grid.2, g.block.0, g.block.1, g.block.2, g.shared_bytes];
        // SAFETY: the caller guarantees the arguments match the kernel and cover the grid.
        let status = with_kernel_params(args, |params| unsafe { entry(geometry.as_ptr(), params.as_mut_ptr()) });
        let message = match status {
            0 => return Ok(()),
            1 => format!("bad launch geometry {g:?}"),
            2 => format!("a warp operation (mma, ldmatrix) in a warp of fewer than 32 threads, block {:?}", g.block),
            3 => "an ldmatrix or cp.async address that is not 16-byte aligned".to_string(),
            other => format!("emulator fault {other}"),
        };
        Err(BackendError::Cuda { context: format!("emulating {name}"), message })
    }

    fn multiprocessors(&self) -> usize {
        self.multiprocessors
    }
}
