//! The fast path of conv1d on f32: a direct convolution vectorised over positions, for the
//! shapes where im2col + GEMM is a poor fit (DenoiseNet's 15 channels: M = 15, K = 765).
//!
//! It computes the same sums as the im2col path of `conv1d.rs` (the specification, which the
//! tests compare it with, op by op and model by model), in another order: every output
//! value is `bias + Σ_ci Σ_k w[co, ci, k] · x[ci, l + k·d − pad_left]`, accumulated in f32
//! from 0 over ci, then k, with fused multiply-adds where the CPU has them. The order depends
//! on nothing but the shape, so a value is the same bits whatever the thread count, the task
//! it fell in, or the window it was computed in (what the exact skipping of empty coverage
//! relies on).
//!
//! Work is cut into tasks of (batch item, chunk of `CHUNK` positions). A task copies the
//! input rows it reads, zero-padded, into a buffer that stays in L1/L2, then walks micro-tiles
//! of `MR` output channels × `TILE` positions whose accumulators live in registers: per
//! (ci, k), `TILE / LANES` vector loads of x and `MR` broadcasts of w feed `MR · TILE / LANES`
//! FMAs. The weight gradient uses the same buffers with micro-tiles of `MR` output channels
//! × `KT` taps, reducing over positions.
//!
//! Instruction sets are chosen at run time ([`isa`]): AVX-512F, AVX2 + FMA, or portable Rust
//! (which the compiler vectorises as it can, without fused multiply-adds).

use super::conv1d::copy_padded;
use crate::backend::ops::epilogue_value;
use crate::backend::{Conv1dParams, Epilogue};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Positions per task (a multiple of every TILE).
const CHUNK: usize = 1024;
/// Most output channels per micro-tile.
const MAX_MR: usize = 6;
/// Most taps per weight-gradient micro-tile.
const MAX_KT: usize = 4;

/// The instruction set the fast path runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
    Portable,
}

impl Isa {
    /// Positions per micro-tile.
    fn tile(self) -> usize {
        match self {
            Isa::Avx512 => 64,
            Isa::Avx2Fma | Isa::Portable => 16,
        }
    }
}

/// The best instruction set this CPU offers (detected once). `CHROMAX_CPU_ISA=portable`
/// (or `avx2`) forces a lesser one, for tests and comparisons.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let detected = detect();
        match std::env::var("CHROMAX_CPU_ISA").as_deref() {
            Ok("portable") => Isa::Portable,
            Ok("avx2") if detected != Isa::Portable => Isa::Avx2Fma,
            _ => detected,
        }
    })
}

/// Every instruction set this CPU can run (the portable one always).
pub fn available() -> Vec<Isa> {
    match detect() {
        Isa::Avx512 => vec![Isa::Avx512, Isa::Avx2Fma, Isa::Portable],
        Isa::Avx2Fma => vec![Isa::Avx2Fma, Isa::Portable],
        Isa::Portable => vec![Isa::Portable],
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if std::arch::is_x86_feature_detected!("avx512f") {
        Isa::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        Isa::Avx2Fma
    } else {
        Isa::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Portable
}

/// Whether the direct path is the better one for this shape: few output channels on long
/// rows (the GEMM path wins where c_out is large, as in SeqNet's tower, or rows are short,
/// as in a dense layer written as a length-1 convolution).
pub fn suits(c_out: usize, len: usize) -> bool {
    c_out <= 32 && len >= 256
}

/// `c_out` cut into near-equal tiles of at most `MAX_MR` channels: (first channel, size).
fn co_tiles(c_out: usize) -> Vec<(usize, usize)> {
    let n = c_out.div_ceil(MAX_MR).max(1);
    let (base, extra) = (c_out / n, c_out % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let size = base + usize::from(i < extra);
            let t = (start, size);
            start += size;
            t
        })
        .collect()
}

/// w (c_out, c_in, K) repacked per tile as [ci][k][m], so a tile's broadcasts are adjacent.
fn pack_weights(w: &[f32], c_in: usize, kernel: usize, tiles: &[(usize, usize)]) -> Vec<f32> {
    let mut packed = Vec::with_capacity(w.len());
    for &(start, mr) in tiles {
        for ci in 0..c_in {
            for k in 0..kernel {
                for m in 0..mr {
                    packed.push(w[((start + m) * c_in + ci) * kernel + k]);
                }
            }
        }
    }
    packed
}

/// Copies rows `x_b[ci, from .. from + span]` (zero outside `0..len`) into `buf` (c_in × span).
fn gather_rows(x_b: &[f32], c_in: usize, len: usize, from: isize, span: usize, buf: &mut [f32]) {
    for ci in 0..c_in {
        copy_padded(&x_b[ci * len..(ci + 1) * len], from, &mut buf[ci * span..(ci + 1) * span]);
    }
}

/// The shape of one convolution, as the micro-kernels see it.
#[derive(Clone, Copy)]
struct Geom {
    c_in: usize,
    kernel: usize,
    dilation: usize,
    /// Row stride of the gathered input.
    span: usize,
}

/// One "same"-length convolution: its sizes and the zeros on its left. (The backward-input
/// pass is a forward one with the channels swapped, flipped weights and the right padding.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub len: usize,
    pub kernel: usize,
    pub dilation: usize,
    pub pad_left: usize,
}

impl ConvShape {
    /// The forward pass (and the weight gradient) of `p`.
    pub fn forward(p: &Conv1dParams) -> Self {
        let Conv1dParams { batch, c_in, c_out, len, kernel, dilation } = *p;
        ConvShape { batch, c_in, c_out, len, kernel, dilation, pad_left: p.pad_left() }
    }
}

/// `epilogue` (if any) applied to a whole output `y` already holding the convolution plus
/// bias: the paths that do not fuse it into their stores.
pub(crate) fn epilogue_in_place<T: super::Real>(epilogue: Option<Epilogue<'_, [T]>>, y: &mut [T]) {
    const CHUNK: usize = 1 << 14;
    let Some(e) = epilogue else { return };
    y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, y)| {
        let first = c * CHUNK;
        for (j, v) in y.iter_mut().enumerate() {
            *v = match e {
                Epilogue::Relu => epilogue_value(*v, None),
                Epilogue::AddRelu(r) => epilogue_value(*v, Some(r[first + j])),
            };
        }
    });
}

/// `f(j)` stored at `dst[j]` through `epilogue` (if any), whose residual is read from `first` on.
#[inline(always)]
fn store_row(epilogue: Option<Epilogue<'_, [f32]>>, dst: &mut [f32], first: usize, mut f: impl FnMut(usize) -> f32) {
    match epilogue {
        None => dst.iter_mut().enumerate().for_each(|(j, d)| *d = f(j)),
        Some(Epilogue::Relu) => dst.iter_mut().enumerate().for_each(|(j, d)| *d = epilogue_value(f(j), None)),
        Some(Epilogue::AddRelu(r)) => {
            let r = &r[first..first + dst.len()];
            dst.iter_mut().zip(r).enumerate().for_each(|(j, (d, &r))| *d = epilogue_value(f(j), Some(r)));
        }
    }
}

/// `y = conv1d(x, w) + bias` of shape `s` on f32, with the instruction set [`isa`] chose.
pub(crate) fn conv1d_f32(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    epilogue: Option<Epilogue<'_, [f32]>>,
) {
    conv1d_f32_on(isa(), s, x, w, bias, y, epilogue)
}

/// [`conv1d_f32`] with a given instruction set (one the CPU has: see [`available`]), for the
/// tests of every path on one machine. Buffer lengths as `conv1d_fwd` checks them; the
/// epilogue's residual, if any, as long as y.
pub fn conv1d_f32_on(
    isa: Isa,
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    epilogue: Option<Epilogue<'_, [f32]>>,
) {
    let ConvShape { c_in, c_out, len, kernel, dilation, pad_left, .. } = *s;
    let tile = isa.tile();
    let tiles = co_tiles(c_out);
    let packed = pack_weights(w, c_in, kernel, &tiles);
    let reach = (kernel - 1) * dilation;
    let tasks = super::conv1d::row_tasks(y, c_out, len, CHUNK);
    let span_max = CHUNK + reach;
    tasks.into_par_iter().for_each_init(
        || (vec![0.0f32; c_in * span_max], vec![0.0f32; MAX_MR * CHUNK]),
        |(xbuf, obuf), (b, l0, mut rows)| {
            let n = rows[0].len();
            let n_pad = n.div_ceil(tile) * tile;
            let span = n_pad + reach;
            let x_b = &x[b * c_in * len..(b + 1) * c_in * len];
            gather_rows(x_b, c_in, len, l0 as isize - pad_left as isize, span, &mut xbuf[..c_in * span]);
            let g = Geom { c_in, kernel, dilation, span };
            for &(start, mr) in &tiles {
                let wp = &packed[start * c_in * kernel..(start + mr) * c_in * kernel];
                let out = &mut obuf[..mr * n_pad];
                for p0 in (0..n_pad).step_by(tile) {
                    forward_tile(isa, mr, g, &xbuf[..c_in * span], wp, p0, out, n_pad);
                }
                for m in 0..mr {
                    let bias_co = bias.map_or(0.0, |b| b[start + m]);
                    let src = &out[m * n_pad..m * n_pad + n];
                    store_row(epilogue, rows[start + m], (b * c_out + start + m) * len + l0, |j| src[j] + bias_co);
                }
            }
        },
    );
}

/// One micro-tile of the forward pass: `out[m, p0 + j]` for m < mr, j < tile.
#[allow(clippy::too_many_arguments)]
fn forward_tile(isa: Isa, mr: usize, g: Geom, xbuf: &[f32], wp: &[f32], p0: usize, out: &mut [f32], stride: usize) {
    debug_assert!(xbuf.len() >= g.c_in * g.span && p0 + isa.tile() + (g.kernel - 1) * g.dilation <= g.span);
    debug_assert!(wp.len() == mr * g.c_in * g.kernel && out.len() >= (mr - 1) * stride + p0 + isa.tile());
    macro_rules! dispatch {
        ($f:ident) => {
            match mr {
                1 => $f::<1>(g, xbuf, wp, p0, out, stride),
                2 => $f::<2>(g, xbuf, wp, p0, out, stride),
                3 => $f::<3>(g, xbuf, wp, p0, out, stride),
                4 => $f::<4>(g, xbuf, wp, p0, out, stride),
                5 => $f::<5>(g, xbuf, wp, p0, out, stride),
                _ => $f::<6>(g, xbuf, wp, p0, out, stride),
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => dispatch!(fwd_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => dispatch!(fwd_avx2),
        _ => dispatch!(fwd_portable),
    }
}

#[cfg(target_arch = "x86_64")]
fn fwd_avx512<const MR: usize>(g: Geom, xbuf: &[f32], wp: &[f32], p0: usize, out: &mut [f32], stride: usize) {
    // SAFETY: only reached when `isa()` detected AVX-512F; every access below is inside the
    // slices, as the debug assertions of `forward_tile` state.
    unsafe { fwd_avx512_inner::<MR>(g, xbuf, wp, p0, out, stride) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fwd_avx512_inner<const MR: usize>(
    g: Geom,
    xbuf: &[f32],
    wp: &[f32],
    p0: usize,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::x86_64::*;
    const NV: usize = 4;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let (xp, wpp) = (xbuf.as_ptr(), wp.as_ptr());
    for ci in 0..g.c_in {
        let xr = xp.add(ci * g.span + p0);
        let wr = wpp.add(ci * g.kernel * MR);
        for k in 0..g.kernel {
            let xk = xr.add(k * g.dilation);
            let xv = [
                _mm512_loadu_ps(xk),
                _mm512_loadu_ps(xk.add(16)),
                _mm512_loadu_ps(xk.add(32)),
                _mm512_loadu_ps(xk.add(48)),
            ];
            for (m, acc_m) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*wr.add(k * MR + m));
                for v in 0..NV {
                    acc_m[v] = _mm512_fmadd_ps(wv, xv[v], acc_m[v]);
                }
            }
        }
    }
    let op = out.as_mut_ptr();
    for (m, acc_m) in acc.iter().enumerate() {
        for (v, a) in acc_m.iter().enumerate() {
            _mm512_storeu_ps(op.add(m * stride + p0 + 16 * v), *a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn fwd_avx2<const MR: usize>(g: Geom, xbuf: &[f32], wp: &[f32], p0: usize, out: &mut [f32], stride: usize) {
    // SAFETY: only reached when `isa()` detected AVX2 and FMA; accesses as in `forward_tile`.
    unsafe { fwd_avx2_inner::<MR>(g, xbuf, wp, p0, out, stride) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_avx2_inner<const MR: usize>(
    g: Geom,
    xbuf: &[f32],
    wp: &[f32],
    p0: usize,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (xp, wpp) = (xbuf.as_ptr(), wp.as_ptr());
    for ci in 0..g.c_in {
        let xr = xp.add(ci * g.span + p0);
        let wr = wpp.add(ci * g.kernel * MR);
        for k in 0..g.kernel {
            let xk = xr.add(k * g.dilation);
            let xv = [_mm256_loadu_ps(xk), _mm256_loadu_ps(xk.add(8))];
            for (m, acc_m) in acc.iter_mut().enumerate() {
                let wv = _mm256_set1_ps(*wr.add(k * MR + m));
                acc_m[0] = _mm256_fmadd_ps(wv, xv[0], acc_m[0]);
                acc_m[1] = _mm256_fmadd_ps(wv, xv[1], acc_m[1]);
            }
        }
    }
    let op = out.as_mut_ptr();
    for (m, acc_m) in acc.iter().enumerate() {
        _mm256_storeu_ps(op.add(m * stride + p0), acc_m[0]);
        _mm256_storeu_ps(op.add(m * stride + p0 + 8), acc_m[1]);
    }
}

fn fwd_portable<const MR: usize>(g: Geom, xbuf: &[f32], wp: &[f32], p0: usize, out: &mut [f32], stride: usize) {
    const T: usize = 16;
    let mut acc = [[0.0f32; T]; MR];
    for ci in 0..g.c_in {
        let xr = &xbuf[ci * g.span + p0..];
        let wr = &wp[ci * g.kernel * MR..(ci + 1) * g.kernel * MR];
        for k in 0..g.kernel {
            let xk: &[f32; T] = xr[k * g.dilation..k * g.dilation + T].try_into().expect("tile inside the row");
            for (m, acc_m) in acc.iter_mut().enumerate() {
                let wv = wr[k * MR + m];
                for (a, &xv) in acc_m.iter_mut().zip(xk) {
                    *a += wv * xv;
                }
            }
        }
    }
    for (m, acc_m) in acc.iter().enumerate() {
        out[m * stride + p0..m * stride + p0 + T].copy_from_slice(acc_m);
    }
}

/// The CPU's FMA roof as measured: every rayon thread runs independent chains of fused
/// multiply-adds on the widest vectors [`isa`] found for about `seconds`; returns GFLOP/s
/// (2 per lane per FMA). What the benchmarks state their share of.
pub fn measured_fma_peak(seconds: f64) -> f64 {
    let threads = rayon::current_num_threads().max(1);
    let started = std::time::Instant::now();
    let flops: f64 = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut total = 0.0;
            while started.elapsed().as_secs_f64() < seconds {
                total += fma_burst(isa(), t as f32);
            }
            total
        })
        .sum();
    flops / started.elapsed().as_secs_f64() / 1e9
}

/// One burst of FMA chains: the FLOPs done.
fn fma_burst(isa: Isa, seed: f32) -> f64 {
    const ROUNDS: usize = 1 << 20;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: AVX-512F was detected.
            let sink = unsafe { fma_chains_avx512(ROUNDS, seed) };
            std::hint::black_box(sink);
            (ROUNDS * 12 * 16 * 2) as f64
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            // SAFETY: AVX2 and FMA were detected.
            let sink = unsafe { fma_chains_avx2(ROUNDS, seed) };
            std::hint::black_box(sink);
            (ROUNDS * 12 * 8 * 2) as f64
        }
        _ => {
            let mut acc = [seed; 12];
            for _ in 0..ROUNDS {
                for a in &mut acc {
                    *a = *a * 0.999_999 + 1e-7;
                }
            }
            std::hint::black_box(acc);
            (ROUNDS * 12 * 2) as f64
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(rounds: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(seed); 12];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(rounds: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(seed); 12];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut out = [0.0f32; 8];
    let mut total = 0.0;
    for a in acc {
        _mm256_storeu_ps(out.as_mut_ptr(), a);
        total += out.iter().sum::<f32>();
    }
    total
}

/// Tasks of the weight gradient are summed in this many fixed groups (in f64, in task
/// order), so the result does not depend on the thread count.
const REDUCE_GROUPS: usize = 64;

/// `dw[co, ci, k] = Σ_{b, l} dy[b, co, l] · x[b, ci, l + k·d − pad_left]` and
/// `dbias[co] = Σ_{b, l} dy[b, co, l]`, on f32 (f64 between chunks).
pub(crate) fn conv1d_bwd_weight_f32(s: &ConvShape, x: &[f32], dy: &[f32], dw: &mut [f32], dbias: Option<&mut [f32]>) {
    conv1d_bwd_weight_f32_on(isa(), s, x, dy, dw, dbias)
}

/// [`conv1d_bwd_weight_f32`] with a given instruction set, as [`conv1d_f32_on`].
pub fn conv1d_bwd_weight_f32_on(
    isa: Isa,
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
) {
    let ConvShape { batch, c_in, c_out, len, kernel, dilation, pad_left } = *s;
    let tile = isa.tile();
    let tiles = co_tiles(c_out);
    let reach = (kernel - 1) * dilation;
    let n_chunks = len.div_ceil(CHUNK);
    let tasks: Vec<(usize, usize)> = (0..batch).flat_map(|b| (0..n_chunks).map(move |j| (b, j * CHUNK))).collect();
    let group_size = tasks.len().div_ceil(REDUCE_GROUPS).max(1);
    let wlen = c_out * c_in * kernel;

    let groups: Vec<(Vec<f64>, Vec<f64>)> = tasks
        .par_chunks(group_size)
        .map(|group| {
            let mut acc_w = vec![0.0f64; wlen];
            let mut acc_b = vec![0.0f64; c_out];
            let mut xbuf = vec![0.0f32; c_in * (CHUNK + reach)];
            let mut dybuf = vec![0.0f32; c_out * CHUNK];
            let mut part = vec![0.0f32; MAX_MR * MAX_KT];
            for &(b, l0) in group {
                let n = CHUNK.min(len - l0);
                let n_pad = n.div_ceil(tile) * tile;
                let span = n_pad + reach;
                let x_b = &x[b * c_in * len..(b + 1) * c_in * len];
                gather_rows(x_b, c_in, len, l0 as isize - pad_left as isize, span, &mut xbuf[..c_in * span]);
                let dy_b = &dy[b * c_out * len..(b + 1) * c_out * len];
                for co in 0..c_out {
                    let src = &dy_b[co * len + l0..co * len + l0 + n];
                    let dst = &mut dybuf[co * n_pad..(co + 1) * n_pad];
                    dst[..n].copy_from_slice(src);
                    dst[n..].fill(0.0);
                    acc_b[co] += src.iter().map(|&v| v as f64).sum::<f64>();
                }
                let g = Geom { c_in, kernel, dilation, span };
                for &(start, mr) in &tiles {
                    let dyt = &dybuf[start * n_pad..(start + mr) * n_pad];
                    for ci in 0..c_in {
                        let xr = &xbuf[ci * span..(ci + 1) * span];
                        for k0 in (0..kernel).step_by(MAX_KT) {
                            let kt = MAX_KT.min(kernel - k0);
                            weight_tile(isa, mr, kt, g, xr, dyt, n_pad, k0, &mut part);
                            for m in 0..mr {
                                let base = ((start + m) * c_in + ci) * kernel + k0;
                                for t in 0..kt {
                                    acc_w[base + t] += part[m * MAX_KT + t] as f64;
                                }
                            }
                        }
                    }
                }
            }
            (acc_w, acc_b)
        })
        .collect();

    super::conv1d::sum_groups(&groups, dw, dbias);
}

/// `part[m · MAX_KT + t] = Σ_{s < n} dyt[m, s] · xr[s + (k0 + t)·d]` for m < mr, t < kt.
#[allow(clippy::too_many_arguments)]
fn weight_tile(
    isa: Isa,
    mr: usize,
    kt: usize,
    g: Geom,
    xr: &[f32],
    dyt: &[f32],
    n: usize,
    k0: usize,
    part: &mut [f32],
) {
    debug_assert!(n.is_multiple_of(isa.tile()) && dyt.len() >= mr * n);
    debug_assert!(xr.len() >= n + (k0 + kt - 1) * g.dilation && part.len() >= MAX_MR * MAX_KT);
    macro_rules! by_kt {
        ($f:ident, $m:literal) => {
            match kt {
                1 => $f::<$m, 1>(g, xr, dyt, n, k0, part),
                2 => $f::<$m, 2>(g, xr, dyt, n, k0, part),
                3 => $f::<$m, 3>(g, xr, dyt, n, k0, part),
                _ => $f::<$m, 4>(g, xr, dyt, n, k0, part),
            }
        };
    }
    macro_rules! dispatch {
        ($f:ident) => {
            match mr {
                1 => by_kt!($f, 1),
                2 => by_kt!($f, 2),
                3 => by_kt!($f, 3),
                4 => by_kt!($f, 4),
                5 => by_kt!($f, 5),
                _ => by_kt!($f, 6),
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => dispatch!(wgrad_avx512),
        _ => dispatch!(wgrad_portable),
    }
}

#[cfg(target_arch = "x86_64")]
fn wgrad_avx512<const MR: usize, const KT: usize>(
    g: Geom,
    xr: &[f32],
    dyt: &[f32],
    n: usize,
    k0: usize,
    part: &mut [f32],
) {
    // SAFETY: only reached when `isa()` detected AVX-512F; accesses as `weight_tile` asserts.
    unsafe { wgrad_avx512_inner::<MR, KT>(g, xr, dyt, n, k0, part) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn wgrad_avx512_inner<const MR: usize, const KT: usize>(
    g: Geom,
    xr: &[f32],
    dyt: &[f32],
    n: usize,
    k0: usize,
    part: &mut [f32],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); KT]; MR];
    let (xp, dp) = (xr.as_ptr().add(k0 * g.dilation), dyt.as_ptr());
    for s in (0..n).step_by(16) {
        let mut dv = [_mm512_setzero_ps(); MR];
        for (m, d) in dv.iter_mut().enumerate() {
            *d = _mm512_loadu_ps(dp.add(m * n + s));
        }
        for t in 0..KT {
            let xv = _mm512_loadu_ps(xp.add(s + t * g.dilation));
            for m in 0..MR {
                acc[m][t] = _mm512_fmadd_ps(dv[m], xv, acc[m][t]);
            }
        }
    }
    for m in 0..MR {
        for t in 0..KT {
            part[m * MAX_KT + t] = _mm512_reduce_add_ps(acc[m][t]);
        }
    }
}

#[allow(clippy::needless_range_loop)]
fn wgrad_portable<const MR: usize, const KT: usize>(
    g: Geom,
    xr: &[f32],
    dyt: &[f32],
    n: usize,
    k0: usize,
    part: &mut [f32],
) {
    const T: usize = 16;
    let mut acc = [[[0.0f32; T]; KT]; MR];
    for s in (0..n).step_by(T) {
        for t in 0..KT {
            let off = s + (k0 + t) * g.dilation;
            let xv: &[f32; T] = xr[off..off + T].try_into().expect("tile inside the row");
            for (m, acc_m) in acc.iter_mut().enumerate() {
                let dv: &[f32; T] = dyt[m * n + s..m * n + s + T].try_into().expect("tile inside the row");
                for ((a, &d), &xx) in acc_m[t].iter_mut().zip(dv).zip(xv) {
                    *a += d * xx;
                }
            }
        }
    }
    for m in 0..MR {
        for t in 0..KT {
            part[m * MAX_KT + t] = acc[m][t].iter().sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_tiles_cover_every_channel_once() {
        for c_out in 1..40 {
            let tiles = co_tiles(c_out);
            assert_eq!(tiles.iter().map(|t| t.1).sum::<usize>(), c_out);
            assert!(tiles.iter().all(|&(_, m)| (1..=MAX_MR).contains(&m)));
            assert!(tiles.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        }
        assert_eq!(co_tiles(15), vec![(0, 5), (5, 5), (10, 5)]);
    }
}
