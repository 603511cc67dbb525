//! Every kernel file compiles with NVRTC to PTX for sm_90 (the H100/H200 architecture).
//!
//! Needs only NVRTC, no GPU: `.ci/run` installs nvidia-cuda-nvrtc==13.0.88 from PyPI and
//! sets CHROMAX_REQUIRE_NVRTC=1, so in CI a missing NVRTC fails instead of skipping.

mod common;

use chromax::backend::cuda::compile::{
    compile_kernel, nvrtc_available, nvrtc_missing_message, nvrtc_version,
};
use chromax::kernels::KERNEL_FILES;

#[test]
fn every_kernel_file_compiles_to_ptx_for_sm_90() {
    if !nvrtc_available() {
        if std::env::var("CHROMAX_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("CHROMAX_REQUIRE_NVRTC=1 but {}", nvrtc_missing_message());
        }
        common::say(&format!(
            "every_kernel_file_compiles_to_ptx_for_sm_90: skipped: {}",
            nvrtc_missing_message()
        ));
        return;
    }
    let version = nvrtc_version().expect("NVRTC loaded, so it reports a version");
    assert!(
        !KERNEL_FILES.is_empty(),
        "build.rs embedded no kernel files"
    );
    for kernel in KERNEL_FILES {
        let ptx = compile_kernel(kernel, "sm_90").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ptx.contains(".target sm_90"),
            "kernels/{}: PTX is not for sm_90",
            kernel.file
        );
        // Every extern "C" __global__ function of the file is an entry of the PTX.
        let entries: Vec<&str> = kernel
            .text
            .split("extern \"C\" __global__ void")
            .skip(1)
            .map(kernel_name)
            .collect();
        assert!(
            !entries.is_empty(),
            "kernels/{} declares no extern \"C\" kernels",
            kernel.file
        );
        for name in entries {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "kernels/{}: no PTX entry for {name}",
                kernel.file
            );
        }
        common::say(&format!(
            "nvrtc {}.{}: kernels/{} -> {} bytes of sm_90 PTX",
            version.0,
            version.1,
            kernel.file,
            ptx.len()
        ));
    }
}

/// The function name after `extern "C" __global__ void`, past an optional `__launch_bounds__(…)`.
fn kernel_name(rest: &str) -> &str {
    let mut rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix("__launch_bounds__") {
        rest = after
            .split_once(')')
            .map_or("", |(_, tail)| tail)
            .trim_start();
    }
    rest.split('(').next().unwrap_or("").trim()
}
