//! The warp-level tensor-core operations (kernels/warp.cuh) against tables written from the
//! PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point type"; "ldmatrix"), lane
//! by lane, through the one-warp probes of kernels/warp_probe.cu: on the kernel emulator
//! always, on a GPU where there is one (the same checks: the emulator's maps are the
//! hardware's). The emulator's cp.async model is held to its contract: data not yet waited
//! for reads as NaN.

mod common;

use chromax::backend::cuda::launch::{Geometry, KArg, KernelDevice};
use common::{cuda_or_skip, emulator_or_skip, Rng};

const LANES: usize = 32;

/// The ISA's A fragment (16 × 16, row-major), element i (0..8) of lane l: a register j holds
/// elements 2j and 2j + 1. row = groupID for a0, a1, a4, a5 and groupID + 8 for a2, a3, a6,
/// a7; col = threadID_in_group · 2 + (i & 1), + 8 for i ≥ 4.
fn a_element(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane / 4, lane % 4);
    let row = if matches!(i, 0 | 1 | 4 | 5) { group } else { group + 8 };
    let col = tig * 2 + (i & 1) + if i >= 4 { 8 } else { 0 };
    (row, col)
}

/// The ISA's B fragment (16 × 8, K × N), element i (0..4): row = threadID_in_group · 2 +
/// (i & 1), + 8 for i ≥ 2; col = groupID.
fn b_element(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane / 4, lane % 4);
    (tig * 2 + (i & 1) + if i >= 2 { 8 } else { 0 }, group)
}

/// The ISA's C / D fragment (16 × 8, f32), element i (0..4): row = groupID for c0, c1 and
/// groupID + 8 for c2, c3; col = threadID_in_group · 2 + (i & 1).
fn c_element(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane / 4, lane % 4);
    (if i < 2 { group } else { group + 8 }, tig * 2 + (i & 1))
}

/// The ISA's ldmatrix fragment of one 8 × 8 matrix of 16-bit elements: lane l's register
/// holds row l / 4, elements (l % 4) · 2 and + 1 (the first in the low half); with .trans the
/// matrix is transposed on the way.
fn ldmatrix_element(lane: usize, half: usize, trans: bool) -> (usize, usize) {
    let (r, c) = (lane / 4, (lane % 4) * 2 + half);
    if trans {
        (c, r)
    } else {
        (r, c)
    }
}

/// `v` as bfloat16 bits (nearest, ties to even: the `half` crate's rounding).
fn bf16_bits(v: f32) -> u16 {
    assert!(!v.is_nan());
    half::bf16::from_f32(v).to_bits()
}

fn bf16_value(h: u16) -> f32 {
    half::bf16::from_bits(h).to_f32()
}

/// 32-bit words as the f32 buffers of a backend carry them (bits unchanged).
fn words(w: &[u32]) -> Vec<f32> {
    w.iter().map(|&v| f32::from_bits(v)).collect()
}

fn launch<D: KernelDevice>(dev: &D, name: &'static str, threads: u32, args: &[KArg]) -> Result<(), String> {
    let g = Geometry { grid: (1, 1, 1), block: (threads, 1, 1), shared_bytes: 0 };
    // SAFETY: every probe takes exactly these arguments, with buffers of the sizes below.
    unsafe { dev.launch("warp_probe", name, g, args) }.map_err(|e| e.to_string())?;
    dev.synchronize().map_err(|e| e.to_string())
}

/// A (16 × 16) and B (16 × 8) in bf16, C (16 × 8) in f32, through the probe: D per lane.
fn run_mma<D: KernelDevice>(dev: &D, a: &[f32], b: &[f32], c: &[f32], threads: u32) -> Result<Vec<f32>, String> {
    let mut fa = vec![0u32; LANES * 4];
    let mut fb = vec![0u32; LANES * 2];
    let mut fc = vec![0f32; LANES * 4];
    for lane in 0..LANES {
        for i in 0..8 {
            let (r, k) = a_element(lane, i);
            fa[lane * 4 + i / 2] |= (bf16_bits(a[r * 16 + k]) as u32) << (16 * (i % 2));
        }
        for i in 0..4 {
            let (k, n) = b_element(lane, i);
            fb[lane * 2 + i / 2] |= (bf16_bits(b[k * 8 + n]) as u32) << (16 * (i % 2));
        }
        for i in 0..4 {
            let (r, n) = c_element(lane, i);
            fc[lane * 4 + i] = c[r * 8 + n];
        }
    }
    let up = |v: &[f32]| dev.upload(v).map_err(|e| e.to_string());
    let (ba, bb, bc) = (up(&words(&fa))?, up(&words(&fb))?, up(&fc)?);
    let mut bd = dev.zeros(LANES * 4).map_err(|e| e.to_string())?;
    let args =
        [KArg::Ptr(dev.ptr(&ba)), KArg::Ptr(dev.ptr(&bb)), KArg::Ptr(dev.ptr(&bc)), KArg::Ptr(dev.ptr_mut(&mut bd))];
    launch(dev, "warp_probe_mma_bf16", threads, &args)?;
    let mut fd = vec![0f32; LANES * 4];
    dev.download(&bd, &mut fd).map_err(|e| e.to_string())?;
    // Back to a 16 × 8 matrix through the ISA's D map.
    let mut d = vec![f32::NAN; 16 * 8];
    for lane in 0..LANES {
        for i in 0..4 {
            let (r, n) = c_element(lane, i);
            d[r * 8 + n] = fd[lane * 4 + i];
        }
    }
    Ok(d)
}

/// Exact A·B + C in f64 with Σ|terms| for a rounding bound.
fn reference(a: &[f32], b: &[f32], c: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let mut d = vec![0f64; 128];
    let mut mag = vec![0f64; 128];
    for r in 0..16 {
        for n in 0..8 {
            let mut s = c[r * 8 + n] as f64;
            let mut m = s.abs();
            for k in 0..16 {
                let p = bf16_value(bf16_bits(a[r * 16 + k])) as f64 * bf16_value(bf16_bits(b[k * 8 + n])) as f64;
                s += p;
                m += p.abs();
            }
            d[r * 8 + n] = s;
            mag[r * 8 + n] = m;
        }
    }
    (d, mag)
}

fn check_mma<D: KernelDevice>(dev: &D, who: &str) {
    let mut rng = Rng::new(16816);
    // Small integers: exact in bf16 and in any summation order, so D must be exact.
    for trial in 0..4 {
        let int = |rng: &mut Rng, n: usize, r: f64| -> Vec<f32> {
            (0..n).map(|_| rng.uniform(-r, r).round() as f32).collect()
        };
        let (a, b, c) = (int(&mut rng, 256, 8.0), int(&mut rng, 128, 8.0), int(&mut rng, 128, 100.0));
        let d = run_mma(dev, &a, &b, &c, 32).unwrap_or_else(|e| panic!("{who}: {e}"));
        let (want, _) = reference(&a, &b, &c);
        for (i, (&g, &w)) in d.iter().zip(&want).enumerate() {
            assert_eq!(g as f64, w, "{who}: integer trial {trial}: D[{}][{}]", i / 8, i % 8);
        }
    }
    // One-hot A and B: each D element names the (row, k, n) it came from, so a swapped pair of
    // lanes or halves cannot cancel out.
    for k in 0..16 {
        let mut a = vec![0f32; 256];
        let mut b = vec![0f32; 128];
        for r in 0..16 {
            a[r * 16 + k] = (r + 1) as f32;
        }
        for n in 0..8 {
            b[k * 8 + n] = (n + 1) as f32 * 32.0;
        }
        let c: Vec<f32> = (0..128).map(|i| (i % 7) as f32).collect();
        let d = run_mma(dev, &a, &b, &c, 32).unwrap_or_else(|e| panic!("{who}: {e}"));
        for r in 0..16 {
            for n in 0..8 {
                let want = ((r + 1) * (n + 1) * 32 + (r * 8 + n) % 7) as f32;
                assert_eq!(d[r * 8 + n], want, "{who}: one-hot k = {k}: D[{r}][{n}]");
            }
        }
    }
    // Random values: within f32 accumulation of exact products.
    let a = rng.vec_f32(256, -1.0, 1.0);
    let b = rng.vec_f32(128, -1.0, 1.0);
    let c = rng.vec_f32(128, -1.0, 1.0);
    let d = run_mma(dev, &a, &b, &c, 32).unwrap_or_else(|e| panic!("{who}: {e}"));
    let (want, mag) = reference(&a, &b, &c);
    for i in 0..128 {
        let bound = 17.0 * f32::EPSILON as f64 * mag[i];
        assert!(
            (d[i] as f64 - want[i]).abs() <= bound,
            "{who}: random D[{i}] = {} vs {} (bound {bound:e})",
            d[i],
            want[i]
        );
    }
    common::say(&format!(
        "{who}: mma.m16n8k16 bf16 matches the PTX ISA's fragment tables (integers exact, one-hot, random)"
    ));
}

fn run_ldmatrix<D: KernelDevice>(dev: &D, tile: &[u16], rows: &[i32], mode: i32) -> Vec<u32> {
    let packed: Vec<u32> = tile.chunks(2).map(|p| p[0] as u32 | (p[1] as u32) << 16).collect();
    let bt = dev.upload(&words(&packed)).expect("upload");
    let br = dev.upload(&rows.iter().map(|&r| f32::from_bits(r as u32)).collect::<Vec<_>>()).expect("upload");
    let mut bo = dev.zeros(LANES * 4).expect("zeros");
    let args = [KArg::Ptr(dev.ptr(&bt)), KArg::Ptr(dev.ptr(&br)), KArg::I32(mode), KArg::Ptr(dev.ptr_mut(&mut bo))];
    launch(dev, "warp_probe_ldmatrix", 32, &args).expect("ldmatrix probe");
    let mut out = vec![0f32; LANES * 4];
    dev.download(&bo, &mut out).expect("download");
    out.iter().map(|v| v.to_bits()).collect()
}

fn check_ldmatrix<D: KernelDevice>(dev: &D, who: &str) {
    // 32 rows of 8 distinct 16-bit values: value = row · 8 + element + 1.
    let tile: Vec<u16> = (0..256).map(|i| i as u16 + 1).collect();
    // Lanes point at rows in a scrambled order, so a lane ↔ row mix-up shows.
    let rows: Vec<i32> = (0..32).map(|l| (l * 13 + 5) % 32).collect();
    for (matrices, trans) in [(1, false), (2, false), (4, false), (1, true), (2, true), (4, true)] {
        let mode = matrices + if trans { 8 } else { 0 };
        let out = run_ldmatrix(dev, &tile, &rows, mode);
        for lane in 0..LANES {
            for j in 0..4 {
                let got = out[lane * 4 + j];
                if j >= matrices as usize {
                    assert_eq!(got, 0, "{who}: mode {mode}: lane {lane} register {j} should be untouched");
                    continue;
                }
                let mut want = 0u32;
                for half in 0..2 {
                    let (r, c) = ldmatrix_element(lane, half, trans);
                    let row = rows[8 * j + r] as usize;
                    want |= (tile[row * 8 + c] as u32) << (16 * half);
                }
                assert_eq!(
                    got,
                    want,
                    "{who}: ldmatrix x{matrices}{}: lane {lane} register {j}",
                    if trans { ".trans" } else { "" }
                );
            }
        }
    }
    common::say(&format!("{who}: ldmatrix x1/x2/x4 and .trans match the PTX ISA's fragment table"));
}

fn run_cp_async<D: KernelDevice>(
    dev: &D,
    src: &[f32],
    offset_bytes: u64,
    wait_newest: i32,
) -> Result<Vec<f32>, String> {
    let bs = dev.upload(src).map_err(|e| e.to_string())?;
    let mut bo = dev.zeros(256).map_err(|e| e.to_string())?;
    let args = [KArg::Ptr(dev.ptr(&bs) + offset_bytes), KArg::Ptr(dev.ptr_mut(&mut bo)), KArg::I32(wait_newest)];
    launch(dev, "warp_probe_cp_async", 32, &args)?;
    let mut out = vec![0f32; 256];
    dev.download(&bo, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Stage 1 as it reads after both copies landed: src, with lanes l % 4 == 3 zero-filled.
fn landed(src: &[f32], i: usize) -> f32 {
    if (i / 4) % 4 == 3 {
        0.0
    } else {
        src[128 + i]
    }
}

fn check_cp_async_waited<D: KernelDevice>(dev: &D, who: &str) {
    let src: Vec<f32> = (0..260).map(|i| i as f32 + 0.5).collect();
    let out = run_cp_async(dev, &src, 0, 0).unwrap_or_else(|e| panic!("{who}: {e}"));
    for i in 0..128 {
        assert_eq!(out[i], src[i], "{who}: cp.async stage 0 [{i}]");
        assert_eq!(out[128 + i], landed(&src, i), "{who}: cp.async stage 1 [{i}] (zero-fill on lanes 3, 7, …)");
    }
    common::say(&format!("{who}: cp.async copies and zero-fills after cp.async.wait_group 0"));
}

#[test]
fn warp_operations_follow_the_ptx_isa_in_the_emulator() {
    let Some(emu) = emulator_or_skip("warp_operations_follow_the_ptx_isa_in_the_emulator", 1) else { return };
    let dev = emu.device();
    check_mma(dev, "emulator");
    check_ldmatrix(dev, "emulator");
    check_cp_async_waited(dev, "emulator");
}

#[test]
fn warp_operations_follow_the_ptx_isa_on_the_gpu() {
    let Some(cuda) = cuda_or_skip("warp_operations_follow_the_ptx_isa_on_the_gpu") else { return };
    let dev = cuda.device();
    check_mma(dev, "cuda");
    check_ldmatrix(dev, "cuda");
    check_cp_async_waited(dev, "cuda");
}

/// The emulator's cp.async contract: what a thread reads before the wait that covers it is
/// NaN, so an early or missing `cp_async_wait` fails a parity test instead of passing by luck.
#[test]
fn the_emulator_shows_data_read_before_its_cp_async_wait() {
    let Some(emu) = emulator_or_skip("the_emulator_shows_data_read_before_its_cp_async_wait", 1) else { return };
    let dev = emu.device();
    let src: Vec<f32> = (0..260).map(|i| i as f32 + 0.5).collect();
    // Waiting for the older group only: stage 0 landed, stage 1 is still poisoned.
    let out = run_cp_async(dev, &src, 0, 1).expect("wait_group 1");
    for i in 0..128 {
        assert_eq!(out[i], src[i], "stage 0 [{i}] after wait_group 1");
        assert!(out[128 + i].is_nan(), "stage 1 [{i}] read before its wait should be NaN, got {}", out[128 + i]);
    }
    // No wait at all: both stages poisoned.
    let out = run_cp_async(dev, &src, 0, 2).expect("no wait");
    assert!(out.iter().all(|v| v.is_nan()), "a read before any wait should be NaN everywhere");
    // A source that is not 16-byte aligned fails the launch, naming why.
    let err = run_cp_async(dev, &src, 4, 0).expect_err("a misaligned cp.async source");
    assert!(err.contains("16-byte aligned"), "{err}");
}

/// mma is a whole-warp operation: the emulator refuses it in a partial warp instead of
/// computing with lanes that do not exist.
#[test]
fn the_emulator_refuses_a_warp_operation_in_a_partial_warp() {
    let Some(emu) = emulator_or_skip("the_emulator_refuses_a_warp_operation_in_a_partial_warp", 1) else { return };
    let z = vec![0f32; 256];
    let err = run_mma(emu.device(), &z[..256], &z[..128], &z[..128], 16).expect_err("16 threads");
    assert!(err.contains("fewer than 32 threads"), "{err}");
}
