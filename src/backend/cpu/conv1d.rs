//! conv1d forward and backward: the specification the CUDA kernels of `kernels/conv1d.cu`
//! are tested against.
//!
//! `y[b, co, l] = bias[co] + Σ_{ci, k} w[co, ci, k] · x[b, ci, l + k·d − pad_left]`, with
//! x read as zero outside `0..len`. Computed as the same sum in matrix form: for a chunk of
//! positions, the columns `col[ci·K + k, j] = x[b, ci, l0 + j + k·d − pad_left]` (im2col) are
//! multiplied by the weight matrix `(c_out, c_in·K)`. The GEMM is ndarray's (matrixmultiply
//! underneath); rayon runs over (batch item, chunk of positions).
//!
//! On f32, shapes with few output channels on long rows take the direct path of `direct.rs`
//! instead (the same sums in another order; DenoiseNet's every layer), and, where the CPU has
//! AVX-512, the others take the batch-wide GEMM of `gemm.rs` (SeqNet's layers); [`spec`]
//! keeps the im2col path callable on any shape, for the tests that compare them.
//!
//! The backward-input pass is the forward pass of the transposed, flipped weights
//! `wᵀ[ci, co, k] = w[co, ci, K−1−k]` with `pad_right` zeros on the left. The weight gradient
//! is a reduction over batch × length, accumulated in f64 in a fixed order, so results do not
//! depend on the number of threads.

use super::direct::{epilogue_in_place, ConvShape};
use super::{amx, direct, gemm, HostSlice, Real};
use crate::backend::{BackendResult, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, Epilogue};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ShapeBuilder};
use rayon::prelude::*;

/// Positions per task: the columns of one chunk (c_in·K × CHUNK) stay in L2.
const CHUNK: usize = 256;
/// Number of fixed groups the weight-gradient reduction is split into.
const REDUCE_GROUPS: usize = 64;

/// `dst[j] = row[start + j]`, zero where `start + j` falls outside the row: a stretch of a
/// zero-padded row (im2col's columns, the direct path's gathered rows, the GEMM path's).
pub(super) fn copy_padded<T: Real>(row: &[T], start: isize, dst: &mut [T]) {
    let n = dst.len() as isize;
    let lo = (-start).clamp(0, n) as usize;
    let hi = (row.len() as isize - start).clamp(0, n) as usize;
    dst[..lo].fill(T::zero());
    if hi > lo {
        let s = (start + lo as isize) as usize;
        dst[lo..hi].copy_from_slice(&row[s..s + (hi - lo)]);
    }
    dst[hi.max(lo)..].fill(T::zero());
}

/// Fills `col` (c_in·K, n) with `x_b[ci, l0 + j + k·d − pad_left]`, zero outside the sequence.
fn im2col<T: Real>(s: &ConvShape, x_b: &[T], l0: usize, n: usize, col: &mut [T]) {
    let ConvShape { c_in, len, kernel, dilation, pad_left, .. } = *s;
    for ci in 0..c_in {
        let x_row = &x_b[ci * len..(ci + 1) * len];
        for k in 0..kernel {
            let start = (l0 + k * dilation) as isize - pad_left as isize;
            copy_padded(x_row, start, &mut col[(ci * kernel + k) * n..(ci * kernel + k + 1) * n]);
        }
    }
}

/// Which implementation a convolution of `c_out` channels on rows of `len` takes on f32.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FastPath {
    Direct,
    Gemm,
}

/// Which implementations a convolution may take: the reference loops only, the fast paths in
/// f32, or the fast paths with the GEMM's products in bf16 (see `gemm.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Spec,
    Fast,
    FastBf16,
}

fn fast_path(mode: Mode, c_out: usize, len: usize) -> Option<FastPath> {
    if mode == Mode::Spec {
        None
    } else if direct::suits(c_out, len) {
        Some(FastPath::Direct)
    } else if gemm::available() {
        Some(FastPath::Gemm)
    } else {
        None
    }
}

/// The general "same-length" convolution with an explicit left padding; used by the forward
/// pass (`pad_left`) and by the backward-input pass (`pad_right`, transposed weights). Takes
/// a fast path on f32 where one suits ([`fast_path`]) unless `mode` is `Spec`.
///
/// `epilogue`, if any, is applied to every output value: by the direct path as it stores each
/// tile, by the others in a pass over the finished output.
fn conv1d_general<T: Real>(
    mode: Mode,
    s: &ConvShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    epilogue: Option<Epilogue<'_, [T]>>,
) {
    if let Some(path) = fast_path(mode, s.c_out, s.len) {
        let bias32 = bias.map(T::f32s);
        let epilogue32 = match epilogue {
            None => Some(None),
            Some(Epilogue::Relu) => Some(Some(Epilogue::Relu)),
            Some(Epilogue::AddRelu(r)) => T::f32s(r).map(|r| Some(Epilogue::AddRelu(r))),
        };
        if let (Some(x), Some(w), Some(y), None | Some(Some(_)), Some(epilogue)) =
            (T::f32s(x), T::f32s(w), T::f32s_mut(y), bias32, epilogue32)
        {
            let bias = bias32.flatten();
            match path {
                FastPath::Direct => return direct::conv1d_f32(s, x, w, bias, y, epilogue),
                FastPath::Gemm if mode == Mode::FastBf16 && amx::available() => amx::conv1d_f32(s, x, w, bias, y),
                FastPath::Gemm => gemm::conv1d_f32(s, x, w, bias, y, mode == Mode::FastBf16),
            }
            return epilogue_in_place(epilogue, y);
        }
    }
    conv1d_im2col(s, x, w, bias, y);
    epilogue_in_place(epilogue, y);
}

/// The specification: im2col columns times the weight matrix. x (batch, c_in, len), w
/// (c_out, c_in, kernel), bias (c_out), y (batch, c_out, len).
fn conv1d_im2col<T: Real>(s: &ConvShape, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    let ConvShape { c_in, c_out, len, kernel, .. } = *s;
    let cink = c_in * kernel;
    let w_mat = ArrayView2::from_shape((c_out, cink), w).expect("weight length checked by the caller");

    let tasks = row_tasks(y, c_out, len, CHUNK);

    tasks.into_par_iter().for_each_init(
        || (vec![T::zero(); cink * CHUNK], Array2::<T>::zeros((c_out, CHUNK))),
        |(col, out), (b, l0, mut rows)| {
            let n = rows[0].len();
            let x_b = &x[b * c_in * len..(b + 1) * c_in * len];
            im2col(s, x_b, l0, n, &mut col[..cink * n]);
            let col_mat = ArrayView2::from_shape((cink, n), &col[..cink * n]).expect("column buffer sized above");
            let mut out_n = out.slice_mut(ndarray::s![.., ..n]);
            general_mat_mul(T::one(), &w_mat, &col_mat, T::zero(), &mut out_n);
            for (co, row) in rows.iter_mut().enumerate() {
                let bias_co = bias.map_or(T::zero(), |b| b[co]);
                for (dst, &v) in row.iter_mut().zip(out_n.row(co).iter()) {
                    *dst = v + bias_co;
                }
            }
        },
    );
}

/// Forward: `y = conv1d(x, w) + bias` with "same" zero padding.
pub fn conv1d_fwd<T: Real, S: HostSlice<T> + ?Sized>(p: &Conv1dParams, b: Conv1dFwd<'_, S>) -> BackendResult<()> {
    fwd(Mode::Fast, p, b, None)
}

/// The forward pass with `epilogue`, if any, applied to its output (its residual checked to be
/// as long as y).
pub(crate) fn fwd<T: Real, S: HostSlice<T> + ?Sized>(
    mode: Mode,
    p: &Conv1dParams,
    b: Conv1dFwd<'_, S>,
    epilogue: Option<Epilogue<'_, [T]>>,
) -> BackendResult<()> {
    b.check(p)?;
    if let Some(e) = &epilogue {
        e.check(p)?;
    }
    let Conv1dFwd { x, w, bias, y } = b;
    let (x, w, bias, y) = (x.as_ref(), w.as_ref(), bias.map(AsRef::as_ref), y.as_mut());
    conv1d_general(mode, &ConvShape::forward(p), x, w, bias, y, epilogue);
    Ok(())
}

/// `wᵀ[ci, co, k] = w[co, ci, K−1−k]`: the weights of the backward-input convolution.
pub(crate) fn transpose_flip_weights<T: Real>(p: &Conv1dParams, w: &[T]) -> Vec<T> {
    let k_len = p.kernel;
    let mut wt = vec![T::zero(); p.weight_len()];
    for co in 0..p.c_out {
        for ci in 0..p.c_in {
            for k in 0..k_len {
                wt[(ci * p.c_out + co) * k_len + (k_len - 1 - k)] = w[(co * p.c_in + ci) * k_len + k];
            }
        }
    }
    wt
}

/// Backward w.r.t. the input: `dx[b, ci, j] = Σ_{co, k} w[co, ci, k] · dy[b, co, j − k·d + pad_left]`.
pub fn conv1d_bwd_input<T: Real, S: HostSlice<T> + ?Sized>(
    p: &Conv1dParams,
    b: Conv1dBwdInput<'_, S>,
) -> BackendResult<()> {
    bwd_input(Mode::Fast, p, b)
}

pub(crate) fn bwd_input<T: Real, S: HostSlice<T> + ?Sized>(
    mode: Mode,
    p: &Conv1dParams,
    b: Conv1dBwdInput<'_, S>,
) -> BackendResult<()> {
    b.check(p)?;
    let (dy, w, dx) = (b.dy.as_ref(), b.w.as_ref(), b.dx.as_mut());
    let wt = transpose_flip_weights(p, w);
    let s = ConvShape { c_in: p.c_out, c_out: p.c_in, pad_left: p.pad_right(), ..ConvShape::forward(p) };
    conv1d_general(mode, &s, dy, &wt, None, dx, None);
    Ok(())
}

/// Backward w.r.t. the weights and bias:
/// `dw[co, ci, k] = Σ_{b, l} dy[b, co, l] · x[b, ci, l + k·d − pad_left]`, `dbias[co] = Σ_{b, l} dy[b, co, l]`.
pub fn conv1d_bwd_weight<T: Real, S: HostSlice<T> + ?Sized>(
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, S>,
) -> BackendResult<()> {
    bwd_weight(Mode::Fast, p, b)
}

pub(crate) fn bwd_weight<T: Real, S: HostSlice<T> + ?Sized>(
    mode: Mode,
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, S>,
) -> BackendResult<()> {
    b.check(p)?;
    let Conv1dBwdWeight { x, dy, dw, dbias } = b;
    let (x, dy, dw, mut dbias) = (x.as_ref(), dy.as_ref(), dw.as_mut(), dbias.map(AsMut::as_mut));
    let (c_in, c_out, len, kernel) = (p.c_in, p.c_out, p.len, p.kernel);
    let s = ConvShape::forward(p);
    if let Some(path) = fast_path(mode, c_out, len) {
        let db32 = match dbias.as_deref_mut() {
            None => Some(None),
            Some(d) => T::f32s_mut(d).map(Some),
        };
        if let (Some(x), Some(dy), Some(dw), Some(db)) = (T::f32s(x), T::f32s(dy), T::f32s_mut(dw), db32) {
            match path {
                FastPath::Direct => direct::conv1d_bwd_weight_f32(&s, x, dy, dw, db),
                FastPath::Gemm if mode == Mode::FastBf16 && amx::available() => {
                    amx::conv1d_bwd_weight_f32(&s, x, dy, dw, db)
                }
                FastPath::Gemm => gemm::conv1d_bwd_weight_f32(&s, x, dy, dw, db, mode == Mode::FastBf16),
            }
            return Ok(());
        }
    }
    let cink = c_in * kernel;
    let n_chunks = len.div_ceil(CHUNK);
    let tasks: Vec<(usize, usize)> = (0..p.batch).flat_map(|b| (0..n_chunks).map(move |j| (b, j * CHUNK))).collect();
    let group_size = tasks.len().div_ceil(REDUCE_GROUPS).max(1);

    // Each fixed group of tasks sums its partial products in f64, in task order.
    let groups: Vec<(Vec<f64>, Vec<f64>)> = tasks
        .par_chunks(group_size)
        .map(|group| {
            let mut acc_w = vec![0.0f64; c_out * cink];
            let mut acc_b = vec![0.0f64; c_out];
            let mut col = vec![T::zero(); cink * CHUNK];
            let mut part = Array2::<T>::zeros((c_out, cink));
            for &(b, l0) in group {
                let n = CHUNK.min(len - l0);
                let x_b = &x[b * c_in * len..(b + 1) * c_in * len];
                im2col(&s, x_b, l0, n, &mut col[..cink * n]);
                let col_mat = ArrayView2::from_shape((cink, n), &col[..cink * n]).expect("column buffer sized above");
                let dy_b = &dy[b * c_out * len..(b + 1) * c_out * len];
                // dy chunk as a (c_out, n) view with row stride len, straight over the batch item.
                let dy_mat = ArrayView2::from_shape((c_out, n).strides((len, 1)), &dy_b[l0..])
                    .expect("chunk lies inside the batch item");
                general_mat_mul(T::one(), &dy_mat, &col_mat.t(), T::zero(), &mut part);
                for (a, &v) in acc_w.iter_mut().zip(part.iter()) {
                    *a += v.as_f64();
                }
                for (co, a) in acc_b.iter_mut().enumerate() {
                    *a += dy_mat.row(co).iter().map(|v| v.as_f64()).sum::<f64>();
                }
            }
            (acc_w, acc_b)
        })
        .collect();

    sum_groups(&groups, dw, dbias);
    Ok(())
}

/// One task per (batch item, chunk of `chunk` positions) of an output (batch, c_out, len): the
/// task owns the chunk's piece of every output row of its item.
#[allow(clippy::type_complexity)]
pub(super) fn row_tasks<T>(y: &mut [T], c_out: usize, len: usize, chunk: usize) -> Vec<(usize, usize, Vec<&mut [T]>)> {
    let n_chunks = len.div_ceil(chunk);
    let mut tasks: Vec<(usize, usize, Vec<&mut [T]>)> = Vec::new();
    for (b, y_b) in y.chunks_mut(c_out * len).enumerate() {
        let first = tasks.len();
        for j in 0..n_chunks {
            tasks.push((b, j * chunk, Vec::with_capacity(c_out)));
        }
        for row in y_b.chunks_mut(len) {
            for (j, piece) in row.chunks_mut(chunk).enumerate() {
                tasks[first + j].2.push(piece);
            }
        }
    }
    tasks
}

/// A weight gradient's fixed groups of partial sums (f64), added in group order into `dw` and
/// `dbias`: the same result whatever the thread count.
pub(super) fn sum_groups<T: Real>(groups: &[(Vec<f64>, Vec<f64>)], dw: &mut [T], dbias: Option<&mut [T]>) {
    let mut total_w = vec![0.0f64; dw.len()];
    let mut total_b = vec![0.0f64; groups.first().map_or(0, |g| g.1.len())];
    for (gw, gb) in groups {
        total_w.iter_mut().zip(gw).for_each(|(t, g)| *t += g);
        total_b.iter_mut().zip(gb).for_each(|(t, g)| *t += g);
    }
    dw.iter_mut().zip(&total_w).for_each(|(d, &t)| *d = T::of(t));
    if let Some(db) = dbias {
        db.iter_mut().zip(&total_b).for_each(|(d, &t)| *d = T::of(t));
    }
}

/// The im2col path on every shape and type: what the direct path is tested against.
pub mod spec {
    use super::*;

    pub fn conv1d_fwd<T: Real, S: HostSlice<T> + ?Sized>(p: &Conv1dParams, b: Conv1dFwd<'_, S>) -> BackendResult<()> {
        fwd(Mode::Spec, p, b, None)
    }

    pub fn conv1d_bwd_input<T: Real, S: HostSlice<T> + ?Sized>(
        p: &Conv1dParams,
        b: Conv1dBwdInput<'_, S>,
    ) -> BackendResult<()> {
        bwd_input(Mode::Spec, p, b)
    }

    pub fn conv1d_bwd_weight<T: Real, S: HostSlice<T> + ?Sized>(
        p: &Conv1dParams,
        b: Conv1dBwdWeight<'_, S>,
    ) -> BackendResult<()> {
        bwd_weight(Mode::Spec, p, b)
    }
}
