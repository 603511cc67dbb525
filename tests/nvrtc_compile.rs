//! Every kernel file compiles with NVRTC to PTX for sm_90 (the H100/H200 architecture).
//!
//! Needs only NVRTC, no GPU: `.ci/run` installs nvidia-cuda-nvrtc==13.0.88 from PyPI and
//! sets CHROMAX_REQUIRE_NVRTC=1, so in CI a missing NVRTC fails instead of skipping.

mod common;

use chromax::backend::cuda::compile::{compile_kernel, nvrtc_available, nvrtc_missing_message, nvrtc_version};
use chromax::kernels::{kernel_signatures, KERNEL_FILES};

#[test]
fn every_kernel_file_compiles_to_ptx_for_sm_90() {
    if !nvrtc_available() {
        if std::env::var("CHROMAX_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("CHROMAX_REQUIRE_NVRTC=1 but {}", nvrtc_missing_message());
        }
        common::say(&format!("every_kernel_file_compiles_to_ptx_for_sm_90: skipped: {}", nvrtc_missing_message()));
        return;
    }
    let version = nvrtc_version().expect("NVRTC loaded, so it reports a version");
    assert!(!KERNEL_FILES.is_empty(), "build.rs embedded no kernel files");
    for kernel in KERNEL_FILES {
        let ptx = compile_kernel(kernel, "sm_90").unwrap_or_else(|e| panic!("{e}"));
        assert!(ptx.contains(".target sm_90"), "kernels/{}: PTX is not for sm_90", kernel.file);
        // Every extern "C" __global__ function of the file is an entry of the PTX.
        let entries: Vec<String> = kernel_signatures(kernel.text).into_iter().map(|s| s.name).collect();
        assert!(!entries.is_empty(), "kernels/{} declares no extern \"C\" kernels", kernel.file);
        for name in entries {
            assert!(ptx.contains(&format!(".entry {name}(")), "kernels/{}: no PTX entry for {name}", kernel.file);
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

#[test]
fn kernel_signatures_are_read_from_the_sources() {
    let conv = chromax::kernels::kernel_file("conv1d").expect("conv1d.cu is embedded");
    let sigs = kernel_signatures(conv.text);
    let fwd = sigs.iter().find(|s| s.name == "conv1d_fwd_f32").expect("conv1d_fwd_f32");
    assert_eq!(fwd.param_types.len(), 11);
    assert_eq!(fwd.param_types[0], "const float*");
    assert_eq!(fwd.param_types[3], "float*");
    assert_eq!(fwd.param_types[10], "int");
    let names: Vec<&str> = sigs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1d_fwd_f32",
            "conv1d_bwd_input_f32",
            "conv1d_bwd_weight_partial_f32",
            "conv1d_bwd_weight_reduce_f32",
            "conv1d_bwd_bias_f32"
        ]
    );
}
