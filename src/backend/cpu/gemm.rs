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
pub(super) const NR: usize = 32;
/// Positions per task of the forward pass.
pub(super) const NC: usize = 128;
/// Tasks of the weight gradient are summed in this many fixed groups.
const REDUCE_GROUPS: usize = 64;

/// Whether this path runs on this CPU.
pub(crate) fn available() -> bool {
    isa() == Isa::Avx512
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
pub(super) struct SharedOut(pub(super) *mut f32);
// SAFETY: every task writes a disjoint set of elements (its own positions).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer `i` elements on (a method, so closures capture the whole Sync struct).
    ///
    /// # Safety
    /// As `pointer::add`: `i` within the allocation.
    pub(super) unsafe fn add(self, i: usize) -> *mut f32 {
        self.0.add(i)
    }
}

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

/// Columns of global positions `q0 .. q0 + n` in tiles of NR positions: `col[(t·c_in·K +
/// ci·K + k)·NR + j] = x[b, ci, l + k·d − pad_left]` for position `q0 + t·NR + j` = (b, l),
/// zero outside the row and beyond the batch. Each tile's c_in·K × NR block is contiguous, so
/// the micro-kernel reads any range of reduction steps as one packed block.
fn im2col_tiles(s: &ConvShape, x: &[f32], q0: usize, n: usize, col: &mut [f32]) {
    let cink = s.c_in * s.kernel;
    let mut buf = [0.0f32; NR];
    for t in 0..n.div_ceil(NR) {
        let tile = TileTaps::new(s, q0, n, t);
        for ci in 0..s.c_in {
            for k in 0..s.kernel {
                let kk = ci * s.kernel + k;
                let row = tile.tap(s, x, ci, k, &mut buf);
                col[(t * cink + kk) * NR..(t * cink + kk + 1) * NR].copy_from_slice(row);
            }
        }
    }
}

/// [`im2col_tiles`] as bf16 pairs of reduction steps (`col[(t·rows + s)·NR + j]` = steps 2s
/// and 2s + 1 of position j of tile t, `rows` ≥ ⌈c_in·K/2⌉ per tile; a missing last step is
/// zero, rows past ⌈c_in·K/2⌉ are left as they are), converted as they are gathered: no f32
/// columns written and read again.
pub(super) fn im2col_tiles_bf16(s: &ConvShape, x: &[f32], q0: usize, n: usize, rows: usize, col: &mut [u32]) {
    let cink = s.c_in * s.kernel;
    let kp = cink.div_ceil(2);
    let (mut lo_buf, mut hi_buf) = ([0.0f32; NR], [0.0f32; NR]);
    for t in 0..n.div_ceil(NR) {
        let tile = TileTaps::new(s, q0, n, t);
        // (ci, k) of step 2·sp, advanced without divisions.
        let (mut ci, mut k) = (0, 0);
        let mut next = || {
            let at = (ci, k);
            k += 1;
            if k == s.kernel {
                (ci, k) = (ci + 1, 0);
            }
            at
        };
        for sp in 0..kp {
            let (lo_ci, lo_k) = next();
            let lo = tile.tap(s, x, lo_ci, lo_k, &mut lo_buf);
            let hi = (2 * sp + 1 < cink).then(|| {
                let (hi_ci, hi_k) = next();
                tile.tap(s, x, hi_ci, hi_k, &mut hi_buf)
            });
            pair_slices(lo, hi, &mut col[(t * rows + sp) * NR..(t * rows + sp + 1) * NR]);
        }
    }
}

/// Where tile t's NR positions (`q0 + t·NR + j`) lie: worked out once per tile, so that each
/// of its c_in·K taps is a slice of x (or a gathered row) without divisions.
pub(super) struct TileTaps {
    b: usize,
    l: usize,
    /// All NR positions in one row of the batch and within the task's n.
    whole: bool,
    q0: usize,
    n: usize,
    t: usize,
}

impl TileTaps {
    pub(super) fn new(s: &ConvShape, q0: usize, n: usize, t: usize) -> Self {
        let q = q0 + t * NR;
        let (b, l) = (q / s.len, q % s.len);
        TileTaps { b, l, whole: t * NR + NR <= n && l + NR <= s.len, q0, n, t }
    }

    /// Tap (ci, k) of the tile's positions: a slice of x where all are in range, else
    /// gathered into `buf` by [`tap_row`].
    #[inline]
    pub(super) fn tap<'a>(
        &self,
        s: &ConvShape,
        x: &'a [f32],
        ci: usize,
        k: usize,
        buf: &'a mut [f32; NR],
    ) -> &'a [f32] {
        let src = self.l as isize + (k * s.dilation) as isize - s.pad_left as isize;
        if self.whole && src >= 0 && src as usize + NR <= s.len {
            let start = (self.b * s.c_in + ci) * s.len + src as usize;
            return &x[start..start + NR];
        }
        tap_row(s, x, self.q0, self.n, self.t, ci * s.kernel + k, buf)
    }
}

/// Reduction step `kk` = ci·K + k of tile t's NR positions (`q0 + t·NR + j`, j < NR): straight
/// from x where the tile lies inside one row with its taps in range, else gathered into `buf`
/// (zero outside the row, beyond the task's n positions and beyond the batch).
#[inline]
pub(super) fn tap_row<'a>(
    s: &ConvShape,
    x: &'a [f32],
    q0: usize,
    n: usize,
    t: usize,
    kk: usize,
    buf: &'a mut [f32; NR],
) -> &'a [f32] {
    let total = s.batch * s.len;
    let (ci, k) = (kk / s.kernel, kk % s.kernel);
    let shift = (k * s.dilation) as isize - s.pad_left as isize;
    let q = q0 + t * NR;
    let (b, l) = (q / s.len, q % s.len);
    let src = l as isize + shift;
    if t * NR + NR <= n && l + NR <= s.len && src >= 0 && src as usize + NR <= s.len {
        let start = (b * s.c_in + ci) * s.len + src as usize;
        return &x[start..start + NR];
    }
    let mut j = 0;
    // Stretch by stretch of one batch item: a zero-padded piece of one input row.
    while j < NR && t * NR + j < n && q0 + t * NR + j < total {
        let q = q0 + t * NR + j;
        let (b, l) = (q / s.len, q % s.len);
        let run = (s.len - l).min(NR - j).min(n - t * NR - j);
        let x_row = &x[(b * s.c_in + ci) * s.len..(b * s.c_in + ci + 1) * s.len];
        copy_padded(x_row, l as isize + shift, &mut buf[j..j + run]);
        j += run;
    }
    buf[j..].fill(0.0);
    buf
}

/// What the accumulators of [`kernel_14x32`] start from.
#[derive(Clone, Copy)]
enum Init {
    Zero,
    /// The values already in `c` (a later block of reduction steps).
    Load,
    /// `bias[r]` in every column of row r.
    Bias(*const f32),
}

/// Starts a 14 × 32 block of zeroed accumulators as `init` says.
///
/// # Safety
/// AVX-512F must be present; with `Init::Load`, `c` holds `rows` rows of 32 at stride `ldc`;
/// a bias holds `rows` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn start(acc: &mut [[std::arch::x86_64::__m512; 2]; MR], c: *const f32, ldc: usize, rows: usize, init: Init) {
    use std::arch::x86_64::*;
    match init {
        Init::Zero => {}
        Init::Load => {
            for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                acc_r[0] = _mm512_loadu_ps(c.add(r * ldc));
                acc_r[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
            }
        }
        Init::Bias(bias) => {
            for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                let v = _mm512_set1_ps(*bias.add(r));
                *acc_r = [v, v];
            }
        }
    }
}

/// The first `rows` rows of a block of accumulators into `c` (rows of 32 at stride `ldc`).
///
/// # Safety
/// AVX-512F must be present; `c` holds `rows` rows of 32 at stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store(acc: &[[std::arch::x86_64::__m512; 2]; MR], c: *mut f32, ldc: usize, rows: usize) {
    use std::arch::x86_64::*;
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        _mm512_storeu_ps(c.add(r * ldc), acc_r[0]);
        _mm512_storeu_ps(c.add(r * ldc + 16), acc_r[1]);
    }
}

/// `c[r, j] = init + Σ_kk a[kk, r] · b[kk, j]` for r < `rows` ≤ 14, j < 32: `a` a packed
/// panel (14 per step), `b` rows of stride `ldb`, `c` rows of stride `ldc`. Rows from `rows`
/// to 14 are computed (the panel's padding) but neither read nor written.
///
/// # Safety
/// AVX-512F must be present; `a` holds 14·k values, `b` k rows of 32 at stride `ldb`, `c`
/// `rows` rows of 32 at stride `ldc`, a bias `rows` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_14x32(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    start(&mut acc, c, ldc, rows, init);
    let step = |acc: &mut [[__m512; 2]; MR], kk: usize| {
        let b0 = _mm512_loadu_ps(b.add(kk * ldb));
        let b1 = _mm512_loadu_ps(b.add(kk * ldb + 16));
        let ak = a.add(kk * MR);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ak.add(r));
            acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
        }
    };
    // Two steps per turn of the loop: half the loop's own instructions per FMA.
    let mut kk = 0;
    while kk + 2 <= k {
        step(&mut acc, kk);
        step(&mut acc, kk + 1);
        kk += 2;
    }
    if kk < k {
        step(&mut acc, kk);
    }
    store(&acc, c, ldc, rows);
}

/// Positions per block of the weight gradient: one tile's KC × NR block of colᵀ stays in L1
/// while every panel of dy passes over it.
const KC: usize = 256;

/// Reduction steps per block of the forward pass: one tile's KC_FWD × NR block of columns
/// stays in L1 while every panel of the weights passes over it, and the weights' KC_FWD-wide
/// slice of all panels stays in L2.
const KC_FWD: usize = 128;

/// `y = conv1d(x, w) + bias` of shape `s` on f32.
///
/// Tasks of NC positions of the whole batch: their columns in tiles of NR positions
/// ([`im2col_tiles`]), times the packed weights, KC_FWD reduction steps at a time. A tile
/// whose positions lie in one row is written straight into y (the bias as the accumulators'
/// start); the others (crossing rows, or past the batch's end) go through a scratch block.
/// Each value's sum runs over k in order, so its order depends on the shape alone.
///
/// With `bf16` (where [`bf16_available`]) the weights and columns are rounded to bf16 pairs and
/// multiplied by [`kernel_14x32_bf16`]: the same blocks, half the instructions.
pub(crate) fn conv1d_f32(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32], bf16: bool) {
    let ConvShape { batch, c_in, c_out, len, kernel, .. } = *s;
    let cink = c_in * kernel;
    let kp = cink.div_ceil(2);
    let (packed, packed_bf16) =
        if bf16 { (Vec::new(), pack_rows_bf16(w, c_out, cink)) } else { (pack_rows(w, c_out, cink), Vec::new()) };
    let panels = c_out.div_ceil(MR);
    let total = batch * len;
    assert!(y.len() == batch * c_out * len && bias.is_none_or(|b| b.len() == c_out) && available());
    assert!(!bf16 || bf16_available());
    let y_ptr = SharedOut(y.as_mut_ptr());
    let tasks: Vec<usize> = (0..total).step_by(NC).collect();
    // A few groups of tasks per thread, each with its own scratch allocated once (rayon's
    // for_each_init would allocate, and the allocator zero, per split).
    let per_group = tasks.len().div_ceil(4 * rayon::current_num_threads()).max(1);
    tasks.par_chunks(per_group).for_each(|group| {
        let mut col = vec![0.0f32; if bf16 { 0 } else { cink * NC }];
        let mut col_bf16 = vec![0u32; if bf16 { kp * NC } else { 0 }];
        let mut scratch = vec![0.0f32; panels * MR * NC];
        for &q0 in group {
            let n = NC.min(total - q0);
            let tiles = n.div_ceil(NR);
            if bf16 {
                im2col_tiles_bf16(s, x, q0, n, kp, &mut col_bf16);
            } else {
                im2col_tiles(s, x, q0, n, &mut col);
            }
            // Where each tile starts in y, when all its NR positions lie in one row.
            let in_row = |t: usize| {
                let (b, l) = ((q0 + t * NR) / len, (q0 + t * NR) % len);
                (l + NR <= len && t * NR + NR <= n).then_some(b * c_out * len + l)
            };
            for k0 in (0..cink).step_by(KC_FWD) {
                let kc = KC_FWD.min(cink - k0);
                for t in 0..tiles {
                    let direct = in_row(t);
                    for p in 0..panels {
                        let rows = MR.min(c_out - p * MR);
                        let (c, ldc, rows) = match direct {
                            // SAFETY (offset): rows p·MR .. p·MR + rows of batch item b, positions l .. l + NR, inside y.
                            Some(at) => (unsafe { y_ptr.add(at + p * MR * len) }, len, rows),
                            None => (scratch[p * MR * NC + t * NR..].as_mut_ptr(), NC, MR),
                        };
                        let init = match (k0, direct, bias) {
                            (0, Some(_), Some(b)) => Init::Bias(b[p * MR..].as_ptr()),
                            (0, _, _) => Init::Zero,
                            _ => Init::Load,
                        };
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: AVX-512F (and with bf16 AVX512-BF16) is present (asserted);
                        // panel p of the packed weights holds cink·MR values (kp·MR pairs),
                        // tile t of col cink·NR (kp·NR pairs), k0 is even; c holds `rows` rows
                        // of NR at stride ldc, written by this task alone (its positions), and
                        // a bias `rows` values.
                        unsafe {
                            if bf16 {
                                kernel_14x32_bf16(
                                    kc.div_ceil(2),
                                    packed_bf16.as_ptr().add((p * kp + k0 / 2) * MR),
                                    col_bf16.as_ptr().add((t * kp + k0 / 2) * NR),
                                    NR,
                                    c,
                                    ldc,
                                    rows,
                                    init,
                                );
                            } else {
                                kernel_14x32(
                                    kc,
                                    packed.as_ptr().add(p * MR * cink + k0 * MR),
                                    col.as_ptr().add((t * cink + k0) * NR),
                                    NR,
                                    c,
                                    ldc,
                                    rows,
                                    init,
                                );
                            }
                        }
                    }
                }
            }
            // The tiles that went through the scratch block: stretch by stretch of one batch
            // item, contiguous in each output row.
            for t in (0..tiles).filter(|&t| in_row(t).is_none()) {
                let mut j = t * NR;
                while j < n.min(t * NR + NR) {
                    let (b, l) = ((q0 + j) / len, (q0 + j) % len);
                    let run = (len - l).min(n.min(t * NR + NR) - j);
                    for co in 0..c_out {
                        let bias_co = bias.map_or(0.0, |b| b[co]);
                        let src = &scratch[co * NC + j..co * NC + j + run];
                        // SAFETY: (b, co, l .. l + run) lies inside y (asserted length) and
                        // positions q0 + j .. q0 + j + run belong to this task alone.
                        let dst = unsafe { std::slice::from_raw_parts_mut(y_ptr.add((b * c_out + co) * len + l), run) };
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d = v + bias_co;
                        }
                    }
                    j += run;
                }
            }
        }
    });
}

/// `dw[co, ci, k] = Σ_{b, l} dy[b, co, l] · x[b, ci, l + k·d − pad_left]`,
/// `dbias[co] = Σ_{b, l} dy[b, co, l]`, on f32 (f64 between tasks).
///
/// With `bf16`, dy and the taps are rounded to bf16 pairs of positions for the products
/// ([`kernel_14x32_bf16`]); the bias gradient stays f32 → f64.
pub(crate) fn conv1d_bwd_weight_f32(
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
    bf16: bool,
) {
    let ConvShape { batch, c_in, c_out, len, kernel, .. } = *s;
    let cink = c_in * kernel;
    let tiles = cink.div_ceil(NR);
    let ld = tiles * NR;
    let panels = c_out.div_ceil(MR);
    let total = batch * len;
    assert!(x.len() == batch * c_in * len && dy.len() == batch * c_out * len && available());
    assert!(!bf16 || bf16_available());
    let (per_task, tasks, group_size) = weight_gradient_tasks(total);
    let groups: Vec<(Vec<f64>, Vec<f64>)> = tasks
        .par_chunks(group_size)
        .map(|group| {
            let mut acc_w = vec![0.0f64; c_out * cink];
            let mut acc_b = vec![0.0f64; c_out];
            // KC positions at a time: colᵀ in tiles of NR taps ([tile][position][NR]) and dy
            // in panels of MR channels ([panel][position][MR]); both stay in L2, and each
            // tile's block in L1 while every panel passes over it.
            let mut col_t = vec![0.0f32; tiles * KC * NR];
            let mut a = vec![0.0f32; panels * KC * MR];
            let mut part = vec![0.0f32; panels * MR * ld];
            let pairs = if bf16 { KC / 2 } else { 0 };
            let mut col_bf16 = vec![0u32; tiles * pairs * NR];
            let mut a_bf16 = vec![0u32; panels * pairs * MR];
            for &q0 in group {
                let n = per_task.min(total - q0);
                for (block, p0) in (0..n).step_by(KC).enumerate() {
                    let m = KC.min(n - p0);
                    for j in 0..m {
                        let (b, l) = ((q0 + p0 + j) / len, (q0 + p0 + j) % len);
                        gather_taps(s, x, b, l, |kk, v| col_t[((kk / NR) * KC + j) * NR + kk % NR] = v);
                        for co in 0..c_out {
                            let v = dy[(b * c_out + co) * len + l];
                            a[((co / MR) * KC + j) * MR + co % MR] = v;
                            acc_b[co] += v as f64;
                        }
                    }
                    let init = if block == 0 { Init::Zero } else { Init::Load };
                    if bf16 {
                        // Pairs of positions: the taps' rows as they are (NR wide), dy's
                        // panels (MR wide) by the same pairing.
                        for t in 0..tiles {
                            pair_rows(&col_t[t * KC * NR..], m, &mut col_bf16[t * pairs * NR..(t + 1) * pairs * NR]);
                        }
                        for p in 0..panels {
                            let panel = &a[p * KC * MR..];
                            for s2 in 0..m.div_ceil(2) {
                                for r in 0..MR {
                                    let hi = if 2 * s2 + 1 < m { panel[(2 * s2 + 1) * MR + r] } else { 0.0 };
                                    a_bf16[(p * pairs + s2) * MR + r] = pair(panel[2 * s2 * MR + r], hi);
                                }
                            }
                        }
                    }
                    for t in 0..tiles {
                        for p in 0..panels {
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: AVX-512F (with bf16 AVX512-BF16) is present (asserted);
                            // panel p of a holds m·MR values (⌈m/2⌉·MR pairs), tile t of col_t
                            // m·NR (⌈m/2⌉·NR pairs), and part MR rows of ld ≥ (t+1)·NR.
                            unsafe {
                                let c = part.as_mut_ptr().add(p * MR * ld + t * NR);
                                if bf16 {
                                    kernel_14x32_bf16(
                                        m.div_ceil(2),
                                        a_bf16.as_ptr().add(p * pairs * MR),
                                        col_bf16.as_ptr().add(t * pairs * NR),
                                        NR,
                                        c,
                                        ld,
                                        MR,
                                        init,
                                    );
                                } else {
                                    kernel_14x32(
                                        m,
                                        a.as_ptr().add(p * KC * MR),
                                        col_t.as_ptr().add(t * KC * NR),
                                        NR,
                                        c,
                                        ld,
                                        MR,
                                        init,
                                    );
                                }
                            }
                        }
                    }
                }
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

/// How a weight gradient over `total` positions splits: positions per task, the tasks'
/// first positions, tasks per group (groups are summed in f64 in order). From the shape alone,
/// not the thread count, so results do not depend on it: at most 16 tasks' worth of f64
/// partial sums, at least 256 positions each.
pub(super) fn weight_gradient_tasks(total: usize) -> (usize, Vec<usize>, usize) {
    let per_task = (total / 16).clamp(256, 4096).next_multiple_of(64);
    let tasks: Vec<usize> = (0..total).step_by(per_task).collect();
    let group_size = tasks.len().div_ceil(REDUCE_GROUPS).max(1);
    (per_task, tasks, group_size)
}

/// `put(ci·K + k, x[b, ci, l + k·d − pad_left])` for every tap of position (b, l), in order,
/// 0 outside the row; rows whole in reach take the loop without bounds tests.
#[inline]
fn gather_taps(s: &ConvShape, x: &[f32], b: usize, l: usize, mut put: impl FnMut(usize, f32)) {
    let ConvShape { c_in, len, kernel, dilation, pad_left, .. } = *s;
    let first = l as isize - pad_left as isize;
    let inside = first >= 0 && first as usize + (kernel - 1) * dilation < len;
    for ci in 0..c_in {
        let row = &x[(b * c_in + ci) * len..(b * c_in + ci + 1) * len];
        if inside {
            let taps = &row[first as usize..first as usize + (kernel - 1) * dilation + 1];
            for (k, &v) in taps.iter().step_by(dilation).enumerate() {
                put(ci * kernel + k, v);
            }
        } else {
            for k in 0..kernel {
                let src = first + (k * dilation) as isize;
                put(ci * kernel + k, if src >= 0 && (src as usize) < len { row[src as usize] } else { 0.0 });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bf16 products, f32 sums: the same GEMMs with both operands rounded to bfloat16 (8 bits of
// significand, round to nearest even) and multiplied in pairs by AVX512-BF16's VDPBF16PS, which
// does two reduction steps per instruction where an FMA does one. Sums stay f32, in the same
// order of pairs for a given shape. Opt-in ([`crate::backend::cpu::CpuBackend::with_bf16_gemm`]):
// each product carries a relative error of at most 2^-8 (both roundings), so a sum of n
// products is within 2^-8 · Σ|a·b| of the f32 one, plus f32 rounding.
// ---------------------------------------------------------------------------------------------

/// Whether the bf16 kernels run on this CPU (AVX-512F and AVX512-BF16).
pub(crate) fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `v` rounded to bfloat16 (nearest, ties to even), as its 16 bits.
#[inline]
pub(crate) fn bf16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bfloat16 bits.
#[inline]
pub(crate) fn bf16_value(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Two values as one bf16 pair: `lo` in the low half (the earlier reduction step).
#[inline]
pub(super) fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) as u32 | (bf16_bits(hi) as u32) << 16
}

/// [`pack_rows`] in bf16 pairs: panels of MR rows, for each pair of reduction steps the MR
/// rows' pairs; an odd last step is paired with zero.
fn pack_rows_bf16(a: &[f32], m: usize, k: usize) -> Vec<u32> {
    let panels = m.div_ceil(MR);
    let kp = k.div_ceil(2);
    let mut p = vec![0u32; panels * MR * kp];
    for i in 0..m {
        let (panel, r) = (i / MR, i % MR);
        let row = &a[i * k..(i + 1) * k];
        for s in 0..kp {
            let hi = if 2 * s + 1 < k { row[2 * s + 1] } else { 0.0 };
            p[(panel * kp + s) * MR + r] = pair(row[2 * s], hi);
        }
    }
    p
}

/// `out[j] = pair(lo[j], hi[j])` (`hi` absent: zeros), 16 at a time with AVX512-BF16's
/// conversion (nearest even, as [`bf16_bits`]; it reads subnormal inputs as zero).
fn pair_slices(lo: &[f32], hi: Option<&[f32]>, out: &mut [u32]) {
    let n = out.len();
    assert!(lo.len() >= n && hi.is_none_or(|h| h.len() >= n) && bf16_available());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F and AVX512-BF16 are present (asserted); every access below is at
    // j .. j + 16 ≤ n, inside lo, hi and out (asserted lengths).
    let j = unsafe { pair_slices_avx512(lo.as_ptr(), hi.map(<[f32]>::as_ptr), out.as_mut_ptr(), n) };
    #[cfg(not(target_arch = "x86_64"))]
    let j = 0;
    for k in j..n {
        out[k] = pair(lo[k], hi.map_or(0.0, |h| h[k]));
    }
}

/// The whole 16s of [`pair_slices`]; returns how many were done.
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be present; `lo`, `hi` (when given) and `out` hold `n` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pair_slices_avx512(lo: *const f32, hi: Option<*const f32>, out: *mut u32, n: usize) -> usize {
    use std::arch::x86_64::*;
    let mut j = 0;
    while j + 16 <= n {
        let l: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(lo.add(j))));
        let mut v = _mm512_cvtepu16_epi32(l);
        if let Some(hi) = hi {
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(hi.add(j))));
            v = _mm512_or_si512(v, _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
        }
        _mm512_storeu_si512(out.add(j) as *mut _, v);
        j += 16;
    }
    j
}

/// Consecutive values as bf16 pairs: `out[i] = pair(v[2i], v[2i + 1])` (`v` of even length,
/// `out` half as long), 32 values at a time with AVX512-BF16's conversion.
#[inline]
pub(super) fn to_bf16_pairs(v: &[f32], out: &mut [u32]) {
    let n = out.len();
    assert!(v.len() == 2 * n && bf16_available());
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F and AVX512-BF16 are present (asserted); each step reads v[2i .. 2i + 32]
    // and writes out[i .. i + 16], inside both (asserted lengths).
    unsafe {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn sixteen_pairs(v: *const f32, out: *mut u32) {
            let h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(v.add(16)), _mm512_loadu_ps(v));
            _mm512_storeu_si512(out as *mut _, std::mem::transmute::<__m512bh, __m512i>(h));
        }
        while i + 16 <= n {
            sixteen_pairs(v.as_ptr().add(2 * i), out.as_mut_ptr().add(i));
            i += 16;
        }
    }
    for k in i..n {
        out[k] = pair(v[2 * k], v[2 * k + 1]);
    }
}

/// Rows `2s`, `2s + 1` of a block of f32 rows of NR (stride NR, `steps` rows) as NR pairs each,
/// for s < ⌈steps/2⌉; a missing odd row reads as zero.
fn pair_rows(f: &[f32], steps: usize, out: &mut [u32]) {
    for s in 0..steps.div_ceil(2) {
        let lo = &f[2 * s * NR..(2 * s + 1) * NR];
        let hi = (2 * s + 1 < steps).then(|| &f[(2 * s + 1) * NR..(2 * s + 2) * NR]);
        pair_slices(lo, hi, &mut out[s * NR..(s + 1) * NR]);
    }
}

/// [`kernel_14x32`] on bf16 pairs: `c[r, j] = init + Σ_s a[s, r] · b[s, j]` where each of
/// `a[s, r]` and `b[s, j]` is a pair of bf16 values and `·` their two products' sum.
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be present; `a` holds 14·kp pairs, `b` kp rows of 32 pairs
/// at stride `ldb`, `c` `rows` rows of 32 at stride `ldc`, a bias `rows` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_14x32_bf16(
    kp: usize,
    a: *const u32,
    b: *const u32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    start(&mut acc, c, ldc, rows, init);
    let step = |acc: &mut [[__m512; 2]; MR], s: usize| {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(s * ldb) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(s * ldb + 16) as *const _));
        let ak = a.add(s * MR);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ak.add(r) as i32));
            acc_r[0] = _mm512_dpbf16_ps(acc_r[0], av, b0);
            acc_r[1] = _mm512_dpbf16_ps(acc_r[1], av, b1);
        }
    };
    let mut s = 0;
    while s + 2 <= kp {
        step(&mut acc, s);
        step(&mut acc, s + 1);
        s += 2;
    }
    if s < kp {
        step(&mut acc, s);
    }
    store(&acc, c, ldc, rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_nearest_even_as_the_half_crate_rounds() {
        let mut state = 7u64;
        for i in 0..200_000u32 {
            state = crate::rng::mix(state.wrapping_add(i as u64));
            let v = f32::from_bits(state as u32);
            if !v.is_finite() {
                continue;
            }
            let want = half::bf16::from_f32(v);
            assert_eq!(bf16_bits(v), want.to_bits(), "{v:e}");
            assert_eq!(bf16_value(bf16_bits(v)), want.to_f32());
        }
        // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even one (1).
        assert_eq!(bf16_value(bf16_bits(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_value(bf16_bits(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(pair(1.0, -2.0), 0x3F80 | 0xC000 << 16);
    }
}
