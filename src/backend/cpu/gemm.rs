//! The fast path of conv1d on f32 for wide layers (SeqNet's): im2col over positions of the
//! whole batch, times the weights, with an AVX-512 micro-kernel of 14 output channels × 32
//! positions (28 accumulators in registers; per reduction step 2 vector loads and 14
//! broadcasts feed 28 FMAs).
//!
//! Positions of all batch items are one axis (q = b·len + l), so SeqNet's short rows (448
//! down to 7 positions) still make full tiles. The weight gradient is the same micro-kernel
//! with the roles turned: output channels × (c_in·K) over positions, summed per task in f32
//! and between tasks in f64 in a fixed order, so results do not depend on the thread count.
//! Only used where [`direct::isa`] found AVX-512F; elsewhere the im2col + matrixmultiply
//! specification runs.

use super::conv1d::copy_padded;
use super::direct::{isa, ConvShape, Isa};
use rayon::prelude::*;

const MR: usize = 14;
const NR: usize = 32;
/// Positions per task of the forward pass.
const NC: usize = 128;
/// Tasks of the weight gradient are summed in this many fixed groups.
const REDUCE_GROUPS: usize = 64;

/// Whether this path runs on this CPU.
pub(crate) fn available() -> bool {
    isa() == Isa::Avx512
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes a disjoint set of elements (its own positions).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `m × k` row-major packed in panels of MR rows, k-major inside a panel, rows beyond m zero.
fn pack_rows(a: &[f32], m: usize, k: usize) -> Vec<f32> {
    let panels = m.div_ceil(MR);
    let mut p = vec![0.0f32; panels * MR * k];
    for i in 0..m {
        let (panel, r) = (i / MR, i % MR);
        let base = panel * MR * k;
        for (kk, &v) in a[i * k..(i + 1) * k].iter().enumerate() {
            p[base + kk * MR + r] = v;
        }
    }
    p
}

/// `x[b, ci, l + k·d − pad_left]`, 0 outside the row.
#[inline]
fn tap(s: &ConvShape, x: &[f32], b: usize, ci: usize, l: usize, k: usize) -> f32 {
    let src = (l + k * s.dilation) as isize - s.pad_left as isize;
    if src >= 0 && (src as usize) < s.len {
        x[(b * s.c_in + ci) * s.len + src as usize]
    } else {
        0.0
    }
}

/// Columns of global positions `q0 .. q0 + n` into `col` (c_in·K × ld, row-major), zero
/// beyond the batch.
fn im2col(s: &ConvShape, x: &[f32], q0: usize, n: usize, ld: usize, col: &mut [f32]) {
    let total = s.batch * s.len;
    for ci in 0..s.c_in {
        for k in 0..s.kernel {
            let row = &mut col[(ci * s.kernel + k) * ld..(ci * s.kernel + k + 1) * ld];
            let shift = (k * s.dilation) as isize - s.pad_left as isize;
            let mut j = 0;
            // Batch item by batch item: each stretch is a zero-padded piece of one input row.
            while j < n && q0 + j < total {
                let (b, l) = ((q0 + j) / s.len, (q0 + j) % s.len);
                let run = (s.len - l).min(n - j);
                let x_row = &x[(b * s.c_in + ci) * s.len..(b * s.c_in + ci + 1) * s.len];
                copy_padded(x_row, l as isize + shift, &mut row[j..j + run]);
                j += run;
            }
            row[j..].fill(0.0);
        }
    }
}

/// `c[r, j] (+)= Σ_kk a[kk, r] · b[kk, j]` for r < 14, j < 32: `a` a packed panel (14 per
/// step), `b` rows of stride `ldb`, `c` rows of stride `ldc`; adds to `c` when `accumulate`.
///
/// # Safety
/// AVX-512F must be present; `a` holds 14·k values, `b` k rows of 32 at stride `ldb`, `c` 14
/// rows of 32 at stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_14x32(k: usize, a: *const f32, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, accumulate: bool) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if accumulate {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            acc_r[0] = _mm512_loadu_ps(c.add(r * ldc));
            acc_r[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
        }
    }
    for kk in 0..k {
        let b0 = _mm512_loadu_ps(b.add(kk * ldb));
        let b1 = _mm512_loadu_ps(b.add(kk * ldb + 16));
        let ak = a.add(kk * MR);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ak.add(r));
            acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        _mm512_storeu_ps(c.add(r * ldc), acc_r[0]);
        _mm512_storeu_ps(c.add(r * ldc + 16), acc_r[1]);
    }
}

/// Reduction steps per block: a packed block of b (KC × 32) and a panel's slice of a
/// (14 × KC) stay in L1 while every panel of a passes over it.
const KC: usize = 256;

/// `out (m_pad × ld) = packed_a (m_pad × k) · b (k × ld)`, ld a multiple of 32. Wide b (the
/// weight gradient's c_in·K columns) is taken in blocks of KC reduction steps, packed. The
/// sum over k runs in order either way, so each value's order depends on the shape alone.
fn gemm(packed_a: &[f32], m: usize, k: usize, b: &[f32], ld: usize, out: &mut [f32]) {
    let panels = m.div_ceil(MR);
    assert!(packed_a.len() >= panels * MR * k && b.len() >= k * ld && out.len() >= panels * MR * ld);
    assert!(ld.is_multiple_of(NR) && available());
    if ld <= NC {
        // Narrow b (the forward pass: 128 positions): each panel of a stays in L2 while it
        // passes over the few panels of b, whole k at once.
        for p in 0..panels {
            for j in (0..ld).step_by(NR) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as below.
                unsafe {
                    kernel_14x32(
                        k,
                        packed_a.as_ptr().add(p * MR * k),
                        b.as_ptr().add(j),
                        ld,
                        out.as_mut_ptr().add(p * MR * ld + j),
                        ld,
                        false,
                    );
                }
            }
        }
        return;
    }
    let mut bpack = [0.0f32; KC * NR];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for j in (0..ld).step_by(NR) {
            for kk in 0..kc {
                bpack[kk * NR..(kk + 1) * NR].copy_from_slice(&b[(k0 + kk) * ld + j..(k0 + kk) * ld + j + NR]);
            }
            for p in 0..panels {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F is present (`available`); the slices hold what the kernel
                // reads and writes, as the assertions above state.
                unsafe {
                    kernel_14x32(
                        kc,
                        packed_a.as_ptr().add(p * MR * k + k0 * MR),
                        bpack.as_ptr(),
                        NR,
                        out.as_mut_ptr().add(p * MR * ld + j),
                        ld,
                        k0 > 0,
                    );
                }
            }
        }
    }
}

/// `y = conv1d(x, w) + bias` of shape `s` on f32.
pub(crate) fn conv1d_f32(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let ConvShape { batch, c_in, c_out, len, kernel, .. } = *s;
    let cink = c_in * kernel;
    let packed = pack_rows(w, c_out, cink);
    let m_pad = c_out.div_ceil(MR) * MR;
    let total = batch * len;
    assert_eq!(y.len(), batch * c_out * len);
    let out_ptr = SharedOut(y.as_mut_ptr());
    let tasks: Vec<usize> = (0..total).step_by(NC).collect();
    tasks.into_par_iter().for_each_init(
        || (vec![0.0f32; cink * NC], vec![0.0f32; m_pad * NC]),
        |(col, out), q0| {
            let n = NC.min(total - q0);
            im2col(s, x, q0, n, NC, col);
            gemm(&packed, c_out, cink, col, NC, out);
            let dst = out_ptr;
            // Stretch by stretch of one batch item: contiguous in each output row.
            let mut j = 0;
            while j < n {
                let (b, l) = ((q0 + j) / len, (q0 + j) % len);
                let run = (len - l).min(n - j);
                for co in 0..c_out {
                    let bias_co = bias.map_or(0.0, |b| b[co]);
                    let src = &out[co * NC + j..co * NC + j + run];
                    // SAFETY: (b, co, l .. l + run) lies inside y (asserted length) and
                    // positions q0 + j .. q0 + j + run belong to this task alone.
                    let dst = unsafe { std::slice::from_raw_parts_mut(dst.0.add((b * c_out + co) * len + l), run) };
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = v + bias_co;
                    }
                }
                j += run;
            }
        },
    );
}

/// `dw[co, ci, k] = Σ_{b, l} dy[b, co, l] · x[b, ci, l + k·d − pad_left]`,
/// `dbias[co] = Σ_{b, l} dy[b, co, l]`, on f32 (f64 between tasks).
pub(crate) fn conv1d_bwd_weight_f32(s: &ConvShape, x: &[f32], dy: &[f32], dw: &mut [f32], dbias: Option<&mut [f32]>) {
    let ConvShape { batch, c_in, c_out, len, kernel, .. } = *s;
    let cink = c_in * kernel;
    let ld = cink.div_ceil(NR) * NR;
    let m_pad = c_out.div_ceil(MR) * MR;
    let total = batch * len;
    // Positions per task from the shape alone (not the thread count): at most 16 tasks' worth
    // of f64 partial sums, at least 256 positions each.
    let per_task = (total / 16).clamp(256, 4096).next_multiple_of(64);
    let tasks: Vec<usize> = (0..total).step_by(per_task).collect();
    let group_size = tasks.len().div_ceil(REDUCE_GROUPS).max(1);
    let groups: Vec<(Vec<f64>, Vec<f64>)> = tasks
        .par_chunks(group_size)
        .map(|group| {
            let mut acc_w = vec![0.0f64; c_out * cink];
            let mut acc_b = vec![0.0f64; c_out];
            let mut col_t = vec![0.0f32; per_task * ld];
            let mut a = vec![0.0f32; m_pad * per_task];
            let mut part = vec![0.0f32; m_pad * ld];
            for &q0 in group {
                let n = per_task.min(total - q0);
                // colᵀ: one row of c_in·K taps per position; dy packed in panels of MR channels.
                col_t.fill(0.0);
                a.fill(0.0);
                for j in 0..n {
                    let (b, l) = ((q0 + j) / len, (q0 + j) % len);
                    let row = &mut col_t[j * ld..j * ld + cink];
                    for ci in 0..c_in {
                        for k in 0..kernel {
                            row[ci * kernel + k] = tap(s, x, b, ci, l, k);
                        }
                    }
                    for co in 0..c_out {
                        let v = dy[(b * c_out + co) * len + l];
                        a[(co / MR) * MR * per_task + j * MR + co % MR] = v;
                        acc_b[co] += v as f64;
                    }
                }
                gemm(&a, c_out, per_task, &col_t, ld, &mut part);
                for co in 0..c_out {
                    for (acc, &v) in acc_w[co * cink..(co + 1) * cink].iter_mut().zip(&part[co * ld..co * ld + cink]) {
                        *acc += v as f64;
                    }
                }
            }
            (acc_w, acc_b)
        })
        .collect();
    super::conv1d::sum_groups(&groups, dw, dbias);
}
