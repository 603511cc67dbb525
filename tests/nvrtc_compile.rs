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
        let started = std::time::Instant::now();
        let ptx = compile_kernel(kernel, "sm_90").unwrap_or_else(|e| panic!("{e}"));
        let ptx_ms = started.elapsed().as_secs_f64() * 1e3;
        assert!(ptx.contains(".target sm_90"), "kernels/{}: PTX is not for sm_90", kernel.file);
        // Every extern "C" __global__ function of the file is an entry of the PTX.
        let entries: Vec<String> = kernel_signatures(kernel.text).into_iter().map(|s| s.name).collect();
        assert!(!entries.is_empty(), "kernels/{} declares no extern \"C\" kernels", kernel.file);
        for name in entries {
            assert!(ptx.contains(&format!(".entry {name}(")), "kernels/{}: no PTX entry for {name}", kernel.file);
        }
        common::say(&format!(
            "nvrtc {}.{}: kernels/{} -> {} bytes of sm_90 PTX in {ptx_ms:.0} ms",
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
    assert_eq!(fwd.param_types.len(), 14);
    assert_eq!(fwd.param_types[0], "const float*");
    assert_eq!(fwd.param_types[3], "float*");
    assert_eq!(fwd.param_types[4], "const float*");
    assert_eq!(fwd.param_types[13], "int");
    let names: Vec<&str> = sigs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1d_fwd_f32",
            "conv1d_bwd_input_f32",
            "conv1d_bwd_weight_partial_f32",
            "conv1d_bwd_weight_reduce_f32",
            "conv1d_bwd_bias_f32",
            "conv1d_bwd_bias_reduce_f64"
        ]
    );
}

/// Every kernel entry through ptxas for sm_90 (inside NVRTC, no GPU): none spills registers
/// to local memory; each entry's registers, shared memory, stack and resident blocks per SM
/// at its launch size are printed (the occupancy napkin math of BENCHMARKS.md).
#[test]
fn every_kernel_goes_through_ptxas_for_sm_90_without_spills() {
    use chromax::backend::cuda::compile::{compile_cubin, parse_ptxas_log, sm90_blocks_per_sm};
    use chromax::backend::cuda::launch::launch_threads;
    if !nvrtc_available() {
        if std::env::var("CHROMAX_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("CHROMAX_REQUIRE_NVRTC=1 but {}", nvrtc_missing_message());
        }
        common::say(&format!(
            "every_kernel_goes_through_ptxas_for_sm_90_without_spills: skipped: {}",
            nvrtc_missing_message()
        ));
        return;
    }
    let mut spills = Vec::new();
    common::say(
        "ptxas sm_90: entry, registers, shared bytes, stack bytes, threads per block, resident blocks per SM (limit)",
    );
    // benches/sass_mix.sh sets CHROMAX_SASS_DIR to read the machine code's instruction mix.
    let sass_dir = std::env::var_os("CHROMAX_SASS_DIR").map(std::path::PathBuf::from);
    for kernel in KERNEL_FILES {
        let started = std::time::Instant::now();
        let (cubin, log) = compile_cubin(kernel, "sm_90", &["--ptxas-options=-v"]).unwrap_or_else(|e| panic!("{e}"));
        let reports = parse_ptxas_log(&log);
        common::say(&format!(
            "kernels/{}: sm_90 machine code (NVRTC + ptxas) in {:.0} ms",
            kernel.file,
            started.elapsed().as_secs_f64() * 1e3
        ));
        assert!(cubin.starts_with(b"\x7fELF"), "kernels/{}: the CUBIN is not an ELF file", kernel.file);
        if let Some(dir) = &sass_dir {
            std::fs::write(dir.join(format!("{}.cubin", kernel.stem)), cubin).expect("write CUBIN");
        }
        let entries: Vec<String> = kernel_signatures(kernel.text).into_iter().map(|s| s.name).collect();
        for name in &entries {
            assert!(
                reports.iter().any(|r| &r.entry == name),
                "kernels/{}: ptxas reported nothing for {name}",
                kernel.file
            );
        }
        for r in &reports {
            let threads = launch_threads(&r.entry);
            let (blocks, limit) = sm90_blocks_per_sm(r, threads);
            if r.entry == "sparse_head_f32" {
                // The head's persistent grid is sized for this many resident blocks.
                assert_eq!(
                    blocks,
                    chromax::backend::cuda::HEAD_BLOCKS_PER_SM as u32,
                    "sparse_head_f32: {} registers, {} B shared; update HEAD_BLOCKS_PER_SM",
                    r.registers,
                    r.shared_bytes
                );
            }
            if r.entry == "conv1d_fwd_f32" || r.entry == "conv1d_bwd_input_f32" {
                // The host's tile choice assumes this many resident blocks (registers).
                assert_eq!(
                    (blocks, limit),
                    (chromax::backend::cuda::CONV_BLOCKS_BY_REGISTERS as u32, "registers"),
                    "{}: {} registers; update CONV_BLOCKS_BY_REGISTERS",
                    r.entry,
                    r.registers
                );
            }
            assert!(r.registers > 0, "kernels/{}: {} reported no registers", kernel.file, r.entry);
            common::say(&format!(
                "  {:<34} {:>3} regs {:>6} B smem {:>4} B stack {:>4} threads {:>2} blocks/SM ({limit})",
                r.entry, r.registers, r.shared_bytes, r.stack_bytes, threads, blocks
            ));
            if r.spill_stores > 0 || r.spill_loads > 0 {
                spills.push(format!("{} ({} B stores, {} B loads)", r.entry, r.spill_stores, r.spill_loads));
            }
        }
    }
    assert!(spills.is_empty(), "ptxas spilled registers in: {}", spills.join(", "));
}

#[test]
fn the_ptxas_log_is_read_per_entry() {
    use chromax::backend::cuda::compile::{parse_ptxas_log, sm90_blocks_per_sm, PtxasReport};
    let log = "ptxas info    : 0 bytes gmem\n\
               ptxas info    : Compiling entry function 'k' for 'sm_90'\n\
               ptxas info    : Function properties for k\n\
               ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n\
               ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 380 bytes cmem[0]\n\
               ptxas info    : Compiling entry function 'j' for 'sm_90'\n\
               ptxas info    : Function properties for j\n\
               ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
               ptxas info    : Used 8 registers, 380 bytes cmem[0]\n";
    let r = parse_ptxas_log(log);
    let want_k = PtxasReport {
        entry: "k".into(),
        registers: 40,
        shared_bytes: 1024,
        stack_bytes: 16,
        spill_stores: 8,
        spill_loads: 4,
    };
    assert_eq!(r, vec![want_k.clone(), PtxasReport { entry: "j".into(), registers: 8, ..PtxasReport::default() }]);
    // 40 registers × 256 threads: 1,280 registers per warp, 10,240 per block: 6 blocks.
    assert_eq!(sm90_blocks_per_sm(&want_k, 256), (6, "registers"));
    assert_eq!(sm90_blocks_per_sm(&r[1], 256), (8, "threads"));
}

/// The per-cell head reads its cell-embedding tile as ws[t][k] (lane t of a warp, one k at a
/// time): with the tile's row stride from the kernel source, the 32 lanes of a warp fall in
/// 32 different shared-memory banks for every k (4-byte banks, 32 of them).
#[test]
fn the_head_reads_its_embedding_tile_without_bank_conflicts() {
    let src = chromax::kernels::kernel_file("sparse_head").expect("sparse_head.cu is embedded").text;
    let define = |name: &str| chromax::kernels::kernel_define(src, name).unwrap_or_else(|| panic!("#define {name}"));
    let max_dim: usize = define("HEAD_MAX_DIM").parse().expect("a number");
    let stride = match define("HEAD_WS_STRIDE") {
        "(HEAD_MAX_DIM + 1)" => max_dim + 1,
        other => other.parse().expect("a number or (HEAD_MAX_DIM + 1)"),
    };
    assert!(src.contains("ws[HEAD_CELLS][HEAD_WS_STRIDE]"), "the tile is declared with the padded stride");
    for k in 0..max_dim {
        let mut banks: Vec<usize> = (0..32).map(|t| (t * stride + k) % 32).collect();
        banks.sort_unstable();
        banks.dedup();
        assert_eq!(banks.len(), 32, "k = {k}: a warp's 32 lanes hit {} banks at stride {stride}", banks.len());
    }
}

/// The machine code of the tensor-core kernels holds the tensor-core instructions: each entry
/// below, disassembled from its sm_90 CUBIN by nvdisasm, contains the SASS its inline PTX must
/// become (mma.sync m16n8k16 bf16 → HMMA.16816.F32.BF16, ldmatrix → LDSM, cp.async →
/// LDGSTS), so a fallback the compiler chose instead shows. Needs nvdisasm: `$CHROMAX_NVDISASM`
/// (.ci/run installs nvidia-cuda-nvdisasm from PyPI and sets it) or one on PATH.
#[test]
fn tensor_core_kernels_hold_tensor_core_instructions_in_their_sass() {
    use chromax::backend::cuda::compile::compile_cubin;
    const WANT: &[(&str, &str, &[&str])] = &[
        ("warp_probe", "warp_probe_mma_bf16", &["HMMA.16816.F32.BF16"]),
        (
            "warp_probe",
            "warp_probe_ldmatrix",
            &["LDSM.16.M88 ", "LDSM.16.M88.2", "LDSM.16.M88.4", "LDSM.16.MT88 ", "LDSM.16.MT88.2", "LDSM.16.MT88.4"],
        ),
        ("warp_probe", "warp_probe_cp_async", &["LDGSTS.E.BYPASS.128", "DEPBAR"]),
        (
            "conv1d_mma",
            "conv1d_mma_fwd",
            &["HMMA.16816.F32.BF16", "LDSM.16.M88.4", "LDSM.16.M88.2", "LDGSTS.E.BYPASS.128"],
        ),
        (
            "conv1d_mma",
            "conv1d_mma_fwd_packed",
            &["HMMA.16816.F32.BF16", "LDSM.16.M88.4", "LDSM.16.M88.2", "LDGSTS.E.BYPASS.128"],
        ),
        ("conv1d_mma", "conv1d_mma_wgrad_partial", &["HMMA.16816.F32.BF16", "LDSM.16.MT88.4"]),
        (
            "conv1d_mma",
            "conv1d_mma_wgrad_partial_packed",
            &["HMMA.16816.F32.BF16", "LDSM.16.MT88.4", "LDGSTS.E.BYPASS.128"],
        ),
        (
            "conv1d_igemm",
            "conv1d_igemm_fwd",
            &["HMMA.16816.F32.BF16", "LDSM.16.M88.4", "LDGSTS.E.BYPASS.128", "DEPBAR"],
        ),
        (
            "conv1d_igemm",
            "conv1d_igemm_wgrad_partial",
            &["HMMA.16816.F32.BF16", "LDSM.16.MT88.4", "LDGSTS.E.BYPASS.128"],
        ),
    ];
    let test = "tensor_core_kernels_hold_tensor_core_instructions_in_their_sass";
    let required = std::env::var("CHROMAX_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    if !nvrtc_available() {
        assert!(!required, "CHROMAX_REQUIRE_NVRTC=1 but {}", nvrtc_missing_message());
        common::say(&format!("{test}: skipped: {}", nvrtc_missing_message()));
        return;
    }
    let nvdisasm = std::env::var_os("CHROMAX_NVDISASM").unwrap_or_else(|| "nvdisasm".into());
    if std::process::Command::new(&nvdisasm).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        assert!(!required, "CHROMAX_REQUIRE_NVRTC=1 but nvdisasm ({}) does not run", nvdisasm.to_string_lossy());
        common::say(&format!("{test}: skipped: no nvdisasm (set CHROMAX_NVDISASM)"));
        return;
    }
    let dir = std::env::temp_dir().join(format!("chromax-sass-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Every file that calls the mma wrapper is disassembled, so an entry with HMMA that the
    // table does not name (a new tensor-core kernel) fails below.
    let mut stems: Vec<&str> = WANT.iter().map(|w| w.0).collect();
    stems.extend(KERNEL_FILES.iter().filter(|k| k.text.contains("mma_bf16_16816(")).map(|k| k.stem));
    stems.sort_unstable();
    stems.dedup();
    for stem in stems {
        let kernel = chromax::kernels::kernel_file(stem).unwrap_or_else(|| panic!("kernels/{stem}.cu is embedded"));
        let (cubin, _) = compile_cubin(kernel, "sm_90", &[]).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(format!("{stem}.cubin"));
        std::fs::write(&path, cubin).expect("write CUBIN");
        let out = std::process::Command::new(&nvdisasm).arg("-c").arg(&path).output().expect("nvdisasm runs");
        assert!(out.status.success(), "nvdisasm {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let sass = String::from_utf8_lossy(&out.stdout).into_owned();
        let entries: Vec<String> = kernel_signatures(kernel.text).into_iter().map(|s| s.name).collect();
        for entry in &entries {
            let start = sass.find(&format!(".text.{entry}:")).unwrap_or_else(|| panic!("no SASS for {entry}"));
            let body = &sass[start..];
            let body = &body[..body[1..].find(".section").map_or(body.len(), |e| e + 1)];
            assert!(
                !body.contains("HMMA") || WANT.iter().any(|w| w.1 == entry),
                "{entry} holds HMMA but the table above does not name it: add its instructions"
            );
        }
        for &(_, entry, instructions) in WANT.iter().filter(|w| w.0 == stem) {
            assert!(entries.iter().any(|e| e == entry), "kernels/{stem}.cu has no entry {entry}");
            // The entry's code: from its .text section to the next section.
            let start = sass.find(&format!(".text.{entry}:")).unwrap_or_else(|| panic!("no SASS for {entry}"));
            let body = &sass[start..];
            let body = &body[..body[1..].find(".section").map_or(body.len(), |e| e + 1)];
            for ins in instructions {
                assert!(body.contains(ins), "{entry}: its SASS holds no {ins}");
            }
            common::say(&format!("{entry}: SASS holds {}", instructions.join(", ")));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
