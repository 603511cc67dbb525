//! The CUDA ops run through the kernel emulator: the kernel sources of `kernels/` compiled as
//! C++ for the host (tests/emu/cuda_emu.h), launched by the same op code, geometry and
//! argument lists as on a GPU, and compared with the CPU specification.
//!
//! This checks kernel logic (indexing, tiling, barriers, reductions) and the launch layer on
//! machines without a GPU. It needs g++ with C++20; without one it prints a skip line
//! (CHROMAX_REQUIRE_EMULATOR=1 makes that a failure, as CI sets it).

use super::launch::{with_kernel_params, Geometry, KArg, KernelDevice};
use super::{conv1d, dropout, elementwise, loss, norm, onehot, optim, pool, sparse_head};
use crate::backend::cpu;
use crate::backend::{
    AdamParams, BackendResult, BatchNormParams, Conv1dParams, DenoiseLossParams, DropoutParams, MaxPoolParams,
    SparseHeadParams, ROC_BINS,
};
use crate::error::BackendError;
use crate::kernels::{kernel_program, kernel_signatures, KERNEL_FILES};
use std::ffi::c_void;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

type EmuEntry = unsafe extern "C" fn(*const u32, *mut *mut c_void) -> i32;

/// The kernels compiled for the host, loaded once per test binary.
struct Emulator {
    lib: libloading::Library,
}

/// A host "device": scratch memory is host memory, launches run the emulated kernels.
struct EmuDevice<'a> {
    emu: &'a Emulator,
    multiprocessors: usize,
}

impl KernelDevice for EmuDevice<'_> {
    type Scratch = Vec<f64>;

    fn scratch(&self, bytes: usize) -> BackendResult<Vec<f64>> {
        Ok(vec![0.0; bytes.div_ceil(8).max(1)])
    }

    fn scratch_ptr(&self, scratch: &Vec<f64>) -> u64 {
        scratch.as_ptr() as u64
    }

    fn read_f64(&self, scratch: &Vec<f64>, out: &mut [f64]) -> BackendResult<()> {
        out.copy_from_slice(&scratch[..out.len()]);
        Ok(())
    }

    fn read_u64(&self, scratch: &Vec<f64>, out: &mut [u64]) -> BackendResult<()> {
        out.iter_mut().zip(scratch).for_each(|(o, v)| *o = v.to_bits());
        Ok(())
    }

    unsafe fn launch(&self, _stem: &'static str, name: &'static str, g: Geometry, args: &[KArg]) -> BackendResult<()> {
        let symbol = format!("emu_{name}");
        // SAFETY: every emu_<kernel> symbol has the EmuEntry signature (generated below).
        let entry: libloading::Symbol<EmuEntry> = unsafe { self.emu.lib.get(symbol.as_bytes()) }
            .map_err(|e| BackendError::Cuda { context: format!("emulating {name}"), message: e.to_string() })?;
        let geometry = [g.grid.0, g.grid.1, g.grid.2, g.block.0, g.block.1, g.block.2, g.shared_bytes];
        // SAFETY: the caller guarantees the arguments match the kernel and cover the grid.
        let status = with_kernel_params(args, |params| unsafe { entry(geometry.as_ptr(), params.as_mut_ptr()) });
        if status != 0 {
            return Err(BackendError::Cuda {
                context: format!("emulating {name}"),
                message: format!("bad launch geometry {g:?}"),
            });
        }
        Ok(())
    }

    fn multiprocessors(&self) -> usize {
        self.multiprocessors
    }
}

/// C++ for one kernel file: the program NVRTC would compile, made host-runnable, plus one
/// `emu_<kernel>(geometry, params)` entry per kernel that unpacks CUDA's `void**` params.
fn emulation_source(stem: &str) -> String {
    let kernel = KERNEL_FILES.iter().find(|k| k.stem == stem).expect("embedded kernel");
    let program = kernel_program(kernel)
        .replace("extern __shared__ float smem[];", "float* smem = reinterpret_cast<float*>(emu_dynamic_smem);");
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

fn build_emulator() -> Result<Emulator, String> {
    let out_dir = std::env::temp_dir().join(format!("chromax-emu-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("emu");
    let mut sources = Vec::new();
    for kernel in KERNEL_FILES {
        let path = out_dir.join(format!("{}.cpp", kernel.stem));
        let mut f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        f.write_all(emulation_source(kernel.stem).as_bytes()).map_err(|e| e.to_string())?;
        sources.push(path);
    }
    let lib_path: PathBuf = out_dir.join("libchromax_emu.so");
    let output = std::process::Command::new("g++")
        .args([
            "-std=c++20",
            "-O1",
            "-g",
            "-shared",
            "-fPIC",
            "-pthread",
            "-Wall",
            "-Wno-unknown-pragmas",
            "-Wno-unused-variable",
        ])
        .arg(format!("-I{}", include.display()))
        .args(&sources)
        .arg("-o")
        .arg(&lib_path)
        .output()
        .map_err(|e| format!("g++ not runnable: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "g++ failed to compile the kernels for the host:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // SAFETY: the library was just built from our own sources and has no initialisers.
    let lib = unsafe { libloading::Library::new(&lib_path) }.map_err(|e| e.to_string())?;
    // Loaded libraries stay mapped after their file is gone.
    let _ = std::fs::remove_dir_all(&out_dir);
    Ok(Emulator { lib })
}

/// The emulator, or `None` after a visible skip line when g++ is missing.
fn emulator(test: &str) -> Option<&'static Emulator> {
    static EMU: OnceLock<Result<Emulator, String>> = OnceLock::new();
    let built = EMU.get_or_init(|| match std::process::Command::new("g++").arg("--version").output() {
        Ok(o) if o.status.success() => build_emulator(),
        _ => Err("skipped: g++ not found".to_string()),
    });
    match built {
        Ok(emu) => Some(emu),
        Err(e) if e.starts_with("skipped") && std::env::var("CHROMAX_REQUIRE_EMULATOR").map_or(true, |v| v != "1") => {
            let _ = writeln!(std::io::stderr(), "{test}: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// SplitMix64 values in [lo, hi).
fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            lo + (hi - lo) * ((z >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn ptr(v: &[f32]) -> u64 {
    v.as_ptr() as u64
}

fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| !((*g - *w).abs() <= atol + rtol * w.abs()))
        .take(6)
        .map(|(i, (g, w))| format!("[{i}] emulated {g} cpu {w}"))
        .collect();
    assert!(bad.is_empty(), "{what}: {}", bad.join("; "));
}

/// (batch, c_in, c_out, len, kernel, dilation): awkward shapes, small enough to emulate.
const CONV_SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (2, 15, 15, 1500, 51, 8), // the denoiser's conv: tiles, halo beyond the tile, two batch items
    (1, 3, 5, 1, 3, 1),
    (2, 4, 3, 37, 51, 8),
    (3, 7, 9, 1000, 5, 3),
    (2, 15, 1, 700, 1, 1),
    (1, 5, 6, 777, 4, 2),
    (1, 40, 20, 600, 9, 4), // several input-channel tiles
];

#[test]
fn emulated_conv1d_matches_cpu() {
    let Some(emu) = emulator("emulated_conv1d_matches_cpu") else {
        return;
    };
    for (i, &(batch, c_in, c_out, len, kernel, dilation)) in CONV_SHAPES.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        // 132 SMs as on an H200, and 1 to force a single chunk per batch item.
        for sms in [132, 1] {
            let dev = EmuDevice { emu, multiprocessors: sms };
            let seed = 10 * i as u64;
            let (x, w, b, dy) = (
                values(p.input_len(), seed, -1.0, 1.0),
                values(p.weight_len(), seed + 1, -0.2, 0.2),
                values(p.c_out, seed + 2, -1.0, 1.0),
                values(p.output_len(), seed + 3, -1.0, 1.0),
            );
            let mut want = vec![0.0f32; p.output_len()];
            cpu::conv1d_fwd(&p, &x, &w, Some(&b), &mut want).expect("cpu");
            let got = vec![f32::NAN; p.output_len()];
            // SAFETY: host buffers of the lengths p gives.
            unsafe { conv1d::conv1d_fwd(&dev, &p, ptr(&x), ptr(&w), Some(ptr(&b)), ptr(&got)) }.expect("emulated fwd");
            assert_close(&format!("fwd {p:?}"), &got, &want, 1e-4, 1e-4);

            let mut want = vec![0.0f32; p.input_len()];
            cpu::conv1d_bwd_input(&p, &dy, &w, &mut want).expect("cpu");
            let got = vec![f32::NAN; p.input_len()];
            // SAFETY: as above.
            unsafe { conv1d::conv1d_bwd_input(&dev, &p, ptr(&dy), ptr(&w), ptr(&got)) }.expect("emulated bwd_input");
            assert_close(&format!("bwd_input {p:?}"), &got, &want, 1e-4, 1e-4);

            let (mut want_w, mut want_b) = (vec![0.0f32; p.weight_len()], vec![0.0f32; p.c_out]);
            cpu::conv1d_bwd_weight(&p, &x, &dy, &mut want_w, Some(&mut want_b)).expect("cpu");
            let (got_w, got_b) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; p.c_out]);
            // SAFETY: as above.
            unsafe { conv1d::conv1d_bwd_weight(&dev, &p, ptr(&x), ptr(&dy), ptr(&got_w), Some(ptr(&got_b))) }
                .expect("emulated bwd_weight");
            let atol = 1e-5 * ((batch * len) as f32).sqrt().max(1.0) * 4.0;
            assert_close(&format!("dw {p:?} sms {sms}"), &got_w, &want_w, atol, 1e-4);
            assert_close(&format!("dbias {p:?} sms {sms}"), &got_b, &want_b, atol, 1e-4);
        }
    }
}

#[test]
fn emulated_elementwise_and_adam_match_cpu() {
    let Some(emu) = emulator("emulated_elementwise_and_adam_match_cpu") else {
        return;
    };
    let dev = EmuDevice { emu, multiprocessors: 2 };
    for n in [1usize, 255, 257, 40_000] {
        let (x, b) = (values(n, 1, -20.0, 20.0), values(n, 2, -1.0, 1.0));
        let mut want = vec![0.0f32; n];
        let got = vec![f32::NAN; n];
        // SAFETY (all launches below): host buffers of n floats.
        unsafe {
            cpu::relu_fwd(&x, &mut want).expect("cpu");
            elementwise::unary(&dev, "relu_fwd_f32", ptr(&x), ptr(&got), n).expect("emu");
            assert_close("relu_fwd", &got, &want, 0.0, 0.0);
            let y = want.clone();
            cpu::relu_bwd(&y, &b, &mut want).expect("cpu");
            elementwise::binary(&dev, "relu_bwd_f32", ptr(&y), ptr(&b), ptr(&got), n).expect("emu");
            assert_close("relu_bwd", &got, &want, 0.0, 0.0);
            cpu::add_fwd(&x, &b, &mut want).expect("cpu");
            elementwise::binary(&dev, "add_fwd_f32", ptr(&x), ptr(&b), ptr(&got), n).expect("emu");
            assert_close("add_fwd", &got, &want, 0.0, 0.0);
            cpu::sigmoid_fwd(&x, &mut want).expect("cpu");
            elementwise::unary(&dev, "sigmoid_fwd_f32", ptr(&x), ptr(&got), n).expect("emu");
            assert_close("sigmoid_fwd", &got, &want, 1e-7, 1e-6);
            let s = want.clone();
            cpu::sigmoid_bwd(&s, &b, &mut want).expect("cpu");
            elementwise::binary(&dev, "sigmoid_bwd_f32", ptr(&s), ptr(&b), ptr(&got), n).expect("emu");
            assert_close("sigmoid_bwd", &got, &want, 1e-8, 1e-6);
            cpu::gelu_fwd(&x, &mut want).expect("cpu");
            elementwise::unary(&dev, "gelu_fwd_f32", ptr(&x), ptr(&got), n).expect("emu");
            assert_close("gelu_fwd", &got, &want, 1e-6, 1e-5);
            cpu::gelu_bwd(&x, &b, &mut want).expect("cpu");
            elementwise::binary(&dev, "gelu_bwd_f32", ptr(&x), ptr(&b), ptr(&got), n).expect("emu");
            assert_close("gelu_bwd", &got, &want, 1e-6, 1e-5);

            let mut theta = values(n, 3, -1.0, 1.0);
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            let (gt, gm, gv) = (theta.clone(), m.clone(), v.clone());
            for step in 1..=3 {
                let grad = values(n, 10 + step, -1.0, 1.0);
                let p = AdamParams { weight_decay: 1e-3, ..AdamParams::new(1e-2, step) };
                cpu::adam_step(&p, &mut theta, &grad, &mut m, &mut v).expect("cpu");
                optim::adam_step(&dev, &p, ptr(&gt), ptr(&grad), ptr(&gm), ptr(&gv), n).expect("emu");
            }
            assert_close("adam θ", &gt, &theta, 1e-7, 1e-6);
        }
    }
}

#[test]
fn emulated_denoise_loss_matches_cpu() {
    let Some(emu) = emulator("emulated_denoise_loss_matches_cpu") else {
        return;
    };
    let dev = EmuDevice { emu, multiprocessors: 2 };
    let cases = [
        DenoiseLossParams::atacworks(2, 6_000, 500),
        DenoiseLossParams { batch: 1, len: 3, pad: 1, mse_weight: 1.0, pearson_weight: 1.0, bce_weight: 1.0 },
        DenoiseLossParams { batch: 3, len: 1001, pad: 0, mse_weight: 0.3, pearson_weight: 2.0, bce_weight: 0.5 },
    ];
    for (i, p) in cases.iter().enumerate() {
        let n = p.batch * p.len;
        let clean = values(n, 100 + i as u64, 0.0, 20.0);
        let noise = values(n, 200 + i as u64, 0.0, 5.0);
        let reg: Vec<f32> = clean.iter().zip(&noise).map(|(c, e)| 0.5 * c + e).collect();
        let logits = values(n, 300 + i as u64, -8.0, 8.0);
        let mask: Vec<f32> =
            values(n, 400 + i as u64, 0.0, 1.0).iter().map(|&u| if u < 0.1 { 1.0 } else { 0.0 }).collect();
        let (mut dr, mut dc) = (vec![0.0f32; n], vec![0.0f32; n]);
        let want = cpu::denoise_loss(p, &reg, &clean, &logits, &mask, &mut dr, &mut dc).expect("cpu");
        let (gdr, gdc) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        // SAFETY: host buffers of batch·len floats.
        let got = unsafe {
            loss::denoise_loss(&dev, p, ptr(&reg), ptr(&clean), ptr(&logits), ptr(&mask), ptr(&gdr), ptr(&gdc))
        }
        .expect("emu");
        for (name, g, c) in [
            ("total", got.total, want.total),
            ("mse", got.mse, want.mse),
            ("r", got.pearson, want.pearson),
            ("bce", got.bce, want.bce),
        ] {
            assert!((g - c).abs() <= 1e-10 + 1e-9 * c.abs(), "{name}: emulated {g} cpu {c} ({p:?})");
        }
        let scale = 1.0 / (p.batch * p.cropped_len()) as f32;
        assert_close(&format!("d_reg {p:?}"), &gdr, &dr, 1e-6 * scale, 1e-5);
        assert_close(&format!("d_cls {p:?}"), &gdc, &dc, 1e-6 * scale, 1e-5);
    }
}

/// Random sorted CSR rows (row 0 empty, the last row full).
fn csr_rows(batch: usize, cells: usize, density: f32, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let u = values(batch * cells, seed, 0.0, 1.0);
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for i in 0..batch {
        for c in 0..cells {
            if i != 0 && (i == batch - 1 || u[i * cells + c] < density) {
                indices.push(c as u32);
            }
        }
        indptr.push(indices.len() as u32);
    }
    (indptr, indices)
}

#[test]
fn emulated_sparse_head_matches_cpu() {
    let Some(emu) = emulator("emulated_sparse_head_matches_cpu") else { return };
    // Several cell tiles, a ragged last tile, row tiles with a tail, dims below the maximum.
    for (i, &(batch, cells, dim, sms)) in
        [(5usize, 300usize, 32usize, 132usize), (33, 129, 7, 1), (1, 1, 1, 2), (20, 260, 64, 1)].iter().enumerate()
    {
        let dev = EmuDevice { emu, multiprocessors: sms };
        let p = SparseHeadParams { batch, cells, dim };
        let seed = 500 + 10 * i as u64;
        let (z, w, b) = (
            values(batch * dim, seed, -1.0, 1.0),
            values(cells * dim, seed + 1, -1.0, 1.0),
            values(cells, seed + 2, -2.0, 1.0),
        );
        let (indptr, indices) = csr_rows(batch, cells, 0.1, seed + 3);
        let (mut dz, mut dw, mut db) = (vec![0f32; batch * dim], vec![0f32; cells * dim], vec![0f32; cells]);
        let want = cpu::sparse_head(&p, &z, &w, &b, &indptr, &indices, &mut dz, &mut dw, &mut db).expect("cpu");
        let (gz, gw, gb) = (vec![f32::NAN; batch * dim], vec![f32::NAN; cells * dim], vec![f32::NAN; cells]);
        let indices_dev = if indices.is_empty() { vec![0u32] } else { indices.clone() };
        // SAFETY: host buffers of the lengths p gives; CSR rows built above.
        let got = unsafe {
            sparse_head::sparse_head(
                &dev,
                &p,
                ptr(&z),
                ptr(&w),
                ptr(&b),
                indptr.as_ptr() as u64,
                indices_dev.as_ptr() as u64,
                ptr(&gz),
                ptr(&gw),
                ptr(&gb),
            )
        }
        .expect("emulated");
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-3), "loss {got} vs {want} ({p:?})");
        // f32 dot products of ≤ 64 terms against f64: a few ulps of values of order 1/N.
        let scale = 1.0 / (batch * cells) as f32;
        assert_close(&format!("dz {p:?}"), &gz, &dz, 1e-4 * scale * cells as f32, 1e-4);
        assert_close(&format!("dw {p:?}"), &gw, &dw, 1e-5 * scale * batch as f32, 1e-4);
        assert_close(&format!("db {p:?}"), &gb, &db, 1e-5 * scale * batch as f32, 1e-4);
    }
}

#[test]
fn emulated_maxpool_matches_cpu() {
    let Some(emu) = emulator("emulated_maxpool_matches_cpu") else { return };
    let dev = EmuDevice { emu, multiprocessors: 2 };
    for (i, &(batch, channels, len, pool)) in
        [(2usize, 3usize, 1344usize, 3usize), (1, 5, 449, 2), (3, 2, 7, 3), (1, 1, 1, 2)].iter().enumerate()
    {
        let p = MaxPoolParams { batch, channels, len, pool };
        let x = values(batch * channels * len, 700 + i as u64, -1.0, 1.0);
        let dy = values(batch * channels * p.out_len(), 800 + i as u64, -1.0, 1.0);
        let (mut y, mut dx) = (vec![0f32; dy.len()], vec![0f32; x.len()]);
        cpu::maxpool_fwd(&p, &x, &mut y).expect("cpu");
        cpu::maxpool_bwd(&p, &x, &dy, &mut dx).expect("cpu");
        let (gy, gdx) = (vec![f32::NAN; dy.len()], vec![f32::NAN; x.len()]);
        // SAFETY: host buffers of the lengths p gives.
        unsafe {
            pool::maxpool_fwd(&dev, &p, ptr(&x), ptr(&gy)).expect("emu");
            pool::maxpool_bwd(&dev, &p, ptr(&x), ptr(&dy), ptr(&gdx)).expect("emu");
        }
        // Selection only: exact.
        assert_close(&format!("maxpool_fwd {p:?}"), &gy, &y, 0.0, 0.0);
        assert_close(&format!("maxpool_bwd {p:?}"), &gdx, &dx, 0.0, 0.0);
    }
}

#[test]
fn emulated_one_hot_matches_cpu() {
    let Some(emu) = emulator("emulated_one_hot_matches_cpu") else { return };
    let dev = EmuDevice { emu, multiprocessors: 2 };
    // scBasset's 1,344 bases with shifts of both signs up to the largest allowed, and a short
    // odd length whose shifts uncover most of it.
    for (len, shift) in [(1344usize, [0i32, 3, -3, 1343, -1343, 0]), (7, [6, -6, 0, 1, -2, 5])] {
        let batch = shift.len();
        let codes: Vec<u8> = values(batch * len, 42, 0.0, 5.0).iter().map(|&v| (v as u8).min(4)).collect();
        let reverse = [false, true, true, false, true, false];
        let mut want = vec![0f32; batch * 4 * len];
        cpu::one_hot_shifted(batch, len, &codes, &reverse, &shift, &mut want).expect("cpu");
        let flags: Vec<u8> = reverse.iter().map(|&r| u8::from(r)).collect();
        let got = vec![f32::NAN; batch * 4 * len];
        // SAFETY: host buffers: batch·len codes, batch flags and shifts (|shift| < len),
        // batch·4·len floats.
        unsafe {
            onehot::one_hot(
                &dev,
                batch,
                len,
                codes.as_ptr() as u64,
                flags.as_ptr() as u64,
                shift.as_ptr() as u64,
                ptr(&got),
            )
        }
        .expect("emu");
        // Exact: 0, 0.25 and 1 only.
        assert_close(&format!("one_hot len {len} shifts {shift:?}"), &got, &want, 0.0, 0.0);
    }
}

#[test]
fn emulated_dropout_matches_cpu_bit_for_bit() {
    let Some(emu) = emulator("emulated_dropout_matches_cpu_bit_for_bit") else { return };
    // One element, a block and one more, several grid-stride rounds (2 SMs → 64 blocks).
    for (n, rate, seed) in [(1usize, 0.5f32, 1u64), (257, 0.1, 2), (40_000, 0.3, u64::MAX), (70_001, 0.0, 0)] {
        let dev = EmuDevice { emu, multiprocessors: 2 };
        let p = DropoutParams { rate, seed };
        let x = values(n, seed ^ 5, -3.0, 3.0);
        let (mut y, mut dx) = (vec![0f32; n], vec![0f32; n]);
        cpu::dropout_fwd(&p, &x, &mut y).expect("cpu");
        cpu::dropout_bwd(&p, &x, &mut dx).expect("cpu");
        let (gy, gdx) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        // SAFETY: host buffers of n floats.
        unsafe {
            dropout::dropout(&dev, "dropout_fwd_f32", &p, ptr(&x), ptr(&gy), n).expect("emu");
            dropout::dropout(&dev, "dropout_bwd_f32", &p, ptr(&x), ptr(&gdx), n).expect("emu");
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert!(bits(&gy) == bits(&y), "dropout_fwd n {n} {p:?}: masks or scales differ");
        assert!(bits(&gdx) == bits(&dx), "dropout_bwd n {n} {p:?}: masks or scales differ");
    }
}

#[test]
fn emulated_head_roc_histogram_matches_cpu() {
    let Some(emu) = emulator("emulated_head_roc_histogram_matches_cpu") else { return };
    // Row tiles with a tail (20 = 2·8 + 4), ragged cell tiles, one row, one cell, dim at the
    // kernel's maximum; 132 SMs as on an H200 (several cell splits) and 1 (one split).
    for (i, &(batch, cells, dim, sms)) in
        [(20usize, 600usize, 32usize, 132usize), (9, 300, 7, 1), (1, 1, 1, 2), (8, 257, 64, 132)].iter().enumerate()
    {
        let dev = EmuDevice { emu, multiprocessors: sms };
        let p = SparseHeadParams { batch, cells, dim };
        let seed = 1500 + 10 * i as u64;
        // Logits spread over ±20 so the outer bins and the clamping are exercised.
        let (z, w, b) = (
            values(batch * dim, seed, -2.0, 2.0),
            values(cells * dim, seed + 1, -2.0, 2.0),
            values(cells, seed + 2, -4.0, 2.0),
        );
        let (indptr, indices) = csr_rows(batch, cells, 0.1, seed + 3);
        let indices_dev = if indices.is_empty() { vec![0u32] } else { indices.clone() };
        for per_row in [false, true] {
            let want = cpu::head_roc_histogram(&p, &z, &w, &b, &indptr, &indices, per_row).expect("cpu");
            // SAFETY: host buffers of the lengths p gives; CSR rows built above.
            let got = unsafe {
                sparse_head::head_roc_histogram(
                    &dev,
                    &p,
                    ptr(&z),
                    ptr(&w),
                    ptr(&b),
                    indptr.as_ptr() as u64,
                    indices_dev.as_ptr() as u64,
                    per_row,
                )
            }
            .expect("emulated");
            assert_eq!(got.len(), want.len(), "{p:?} per_row {per_row}");
            // The kernel sums the logit in f64 in the CPU's order: the same bins, exactly.
            let bad: Vec<String> = got
                .iter()
                .zip(&want)
                .enumerate()
                .filter(|(_, (g, w))| g != w)
                .take(6)
                .map(|(k, (g, w))| {
                    let (row, kind, bin) = (k / (2 * ROC_BINS), k % (2 * ROC_BINS) / ROC_BINS, k % ROC_BINS);
                    format!("[row {row} {} bin {bin}] emulated {g} cpu {w}", ["pos", "neg"][kind])
                })
                .collect();
            assert!(bad.is_empty(), "histogram {p:?} per_row {per_row}: {}", bad.join("; "));
        }
    }
}

#[test]
fn emulated_batchnorm_matches_cpu() {
    let Some(emu) = emulator("emulated_batchnorm_matches_cpu") else { return };
    let dev = EmuDevice { emu, multiprocessors: 2 };
    for (i, &(batch, channels, len)) in [(4usize, 3usize, 300usize), (16, 5, 1), (1, 2, 7)].iter().enumerate() {
        let p = BatchNormParams { batch, channels, len, eps: 1e-3, momentum: 0.9 };
        let n = batch * channels * len;
        let seed = 900 + 10 * i as u64;
        let (x, dy) = (values(n, seed, -2.0, 5.0), values(n, seed + 1, -1.0, 1.0));
        let (gamma, beta) = (values(channels, seed + 2, 0.5, 1.5), values(channels, seed + 3, -0.5, 0.5));
        let (mut y, mut m, mut s) = (vec![0f32; n], vec![0f32; channels], vec![0f32; channels]);
        let (mut rm, mut rv) = (values(channels, seed + 4, -0.1, 0.1), values(channels, seed + 5, 0.9, 1.1));
        let (grm, grv) = (rm.clone(), rv.clone());
        cpu::batchnorm_fwd_train(&p, &x, &gamma, &beta, &mut y, &mut m, &mut s, &mut rm, &mut rv).expect("cpu");
        let (mut yi, mut dx, mut dg, mut db) =
            (vec![0f32; n], vec![0f32; n], vec![0f32; channels], vec![0f32; channels]);
        cpu::batchnorm_fwd_infer(&p, &x, &gamma, &beta, &rm, &rv, &mut yi).expect("cpu");
        cpu::batchnorm_bwd(&p, &x, &dy, &gamma, &m, &s, &mut dx, &mut dg, &mut db).expect("cpu");
        let (gy, gm, gs, gyi, gdx, gdg, gdb) = (
            vec![f32::NAN; n],
            vec![f32::NAN; channels],
            vec![f32::NAN; channels],
            vec![f32::NAN; n],
            vec![f32::NAN; n],
            vec![f32::NAN; channels],
            vec![f32::NAN; channels],
        );
        // SAFETY: host buffers of the lengths p gives.
        unsafe {
            norm::fwd_train(
                &dev,
                &p,
                ptr(&x),
                ptr(&gamma),
                ptr(&beta),
                ptr(&gy),
                ptr(&gm),
                ptr(&gs),
                ptr(&grm),
                ptr(&grv),
            )
            .expect("emu");
            norm::fwd_infer(&dev, &p, ptr(&x), ptr(&gamma), ptr(&beta), ptr(&grm), ptr(&grv), ptr(&gyi)).expect("emu");
            norm::bwd(&dev, &p, ptr(&x), ptr(&dy), ptr(&gamma), ptr(&gm), ptr(&gs), ptr(&gdx), ptr(&gdg), ptr(&gdb))
                .expect("emu");
        }
        // Both sum in f64 and round once: an ulp or two.
        for (what, got, want) in [
            ("y", &gy, &y),
            ("mean", &gm, &m),
            ("invstd", &gs, &s),
            ("running_mean", &grm, &rm),
            ("running_var", &grv, &rv),
            ("y infer", &gyi, &yi),
            ("dx", &gdx, &dx),
            ("dgamma", &gdg, &dg),
            ("dbeta", &gdb, &db),
        ] {
            assert_close(&format!("{what} {p:?}"), got, want, 1e-6, 1e-5);
        }
    }
}
