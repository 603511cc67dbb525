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

/// One `extern "C" __global__` kernel of a source file: its name and parameter types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSignature {
    pub name: String,
    /// Each parameter's type as written, without `__restrict__` or the name (`const float*`).
    pub param_types: Vec<String>,
}

/// The number of `#define NAME VALUE` in kernels/`stem`.cu, for tests that hold the host's
/// mirrored constants to the kernels'. Panics (tests only) when it is missing or not a number.
#[cfg(test)]
pub(crate) fn kernel_define_number(stem: &str, name: &str) -> usize {
    let src = kernel_file(stem).unwrap_or_else(|| panic!("kernels/{stem}.cu is embedded")).text;
    let value = kernel_define(src, name).unwrap_or_else(|| panic!("#define {name} missing from kernels/{stem}.cu"));
    value.parse().unwrap_or_else(|_| panic!("#define {name} in kernels/{stem}.cu is not a plain number: {value}"))
}

/// The value of `#define NAME VALUE` in a kernel file's text (the rest of the line, trimmed),
/// for tests that hold the host's mirrored constants to the kernels'.
pub fn kernel_define<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix("#define ")?.strip_prefix(name)?.strip_prefix(' ').map(str::trim))
}

/// The `extern "C" __global__` kernels declared in a kernel file's text, in order.
pub fn kernel_signatures(text: &str) -> Vec<KernelSignature> {
    let mut out = Vec::new();
    for rest in text.split("extern \"C\" __global__ void").skip(1) {
        let mut rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("__launch_bounds__") {
            rest = after.split_once(')').map_or("", |(_, tail)| tail).trim_start();
        }
        let Some((name, params)) = rest.split_once('(') else {
            continue;
        };
        let params = params.split_once(')').map_or("", |(p, _)| p);
        let param_types = params
            .split(',')
            .map(|param| {
                let words: Vec<&str> = param.split_whitespace().filter(|w| *w != "__restrict__").collect();
                words[..words.len().saturating_sub(1)].join(" ")
            })
            .collect();
        out.push(KernelSignature { name: name.trim().to_string(), param_types });
    }
    out
}
