//! The CUDA C++ sources of `kernels/`, embedded at build time by `build.rs`.
//!
//! NVRTC gets no in-memory headers, so `common.cuh` is prepended as text to every kernel
//! file before compilation (see [`kernel_program`]).

/// One embedded source file of `kernels/`.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// File name, e.g. `conv1d.cu`.
    pub file: &'static str,
    /// File stem, e.g. `conv1d`: the same stem names the CPU and CUDA backend files.
    pub stem: &'static str,
    /// The source text.
    pub text: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));

/// The kernel file with this stem, if there is one.
pub fn kernel_file(stem: &str) -> Option<&'static KernelSource> {
    KERNEL_FILES.iter().find(|k| k.stem == stem)
}

/// The full program text NVRTC compiles for a kernel file: every header, then the file.
pub fn kernel_program(kernel: &KernelSource) -> String {
    let mut program = String::new();
    for header in HEADER_FILES {
        program.push_str(&format!("// ---- kernels/{} ----\n", header.file));
        program.push_str(header.text);
        program.push('\n');
    }
    program.push_str(&format!("// ---- kernels/{} ----\n", kernel.file));
    program.push_str(kernel.text);
    program
}
