//! The wide convolutions' bf16 products on AMX, the tile unit of Intel Xeons since Sapphire
//! Rapids: one TDPBF16PS multiplies a 16 × 32 bf16 tile by a 32 × 16 one into 16 × 16 f32
//! sums (8,192 products), where VDPBF16PS does 32 and an AVX-512 FMA 16.
//!
//! The same GEMMs, on the same numbers, as the AVX512-BF16 path of `gemm.rs` (operands rounded
//! to bf16 by the same conversion, every product exact in f32, sums f32 within a task and f64
//! between tasks in a fixed order): only the order of the f32 sums differs. Blocks of 32 rows
//! × 32 columns stay in four accumulator tiles while, per 32 reduction steps, two A tiles
//! (16 rows × 16 bf16 pairs, packed) and two B tiles (16 pairs × 16 columns, read at a row
//! stride straight from pair-interleaved buffers) pass through.
//!
//! * Forward (and backward-input, a forward convolution with flipped weights): A = the weights
//!   (c_out × c_in·K), B = `gemm.rs`'s pair-interleaved columns of 32 positions, C written
//!   straight into y where a block's 32 positions lie in one row and its 32 channels exist.
//! * Weight gradient: turned around (A = the taps, whose 32 positions are contiguous in x, B =
//!   dy's pairs of positions per channel), so the transposition is of dy (c_out rows) instead
//!   of the taps (c_in·K rows); the blocks of dwᵀ are turned back as each task's sums are added.
//!
//! Tiles are configured per thread (`ldtilecfg`) for each group of tasks and released after.

use super::direct::ConvShape;
use super::gemm::{
    bf16_available, im2col_tiles_bf16, pair, to_bf16_pairs, weight_gradient_tasks, SharedOut, TileTaps, NC, NR,
};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows (and columns) of a block: two tiles of 16.
const BLOCK: usize = 32;
/// Reduction steps per chunk: one tile's 16 bf16 pairs.
const CHUNK: usize = 32;
/// The u32 pairs of one chunk of A for a block: two tiles of 16 rows × 16 pairs.
const A_CHUNK: usize = 2 * 16 * 16;
/// Chunks per pass of the forward's block loop: up to 2,048 reduction steps, SeqNet's whole
/// c_in·K, so a block's accumulators are loaded and stored once (8 chunks a pass, with the
/// columns in L1, measured no faster on a Sapphire Rapids class Xeon: ±5% noise).
const FWD_CHUNKS: usize = 64;
/// Positions per block of the weight gradient.
const WG_POSITIONS: usize = 256;

/// Whether the AMX path runs here: AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22),
/// AVX512-BF16 for the conversions, and Linux's leave for this process to use tile data
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid_count, __get_cpuid_max};
    if !bf16_available() {
        return false;
    }
    // Leaf 7 is read only where the CPU has it.
    let amx = __get_cpuid_max(0).0 >= 7 && __cpuid_count(7, 0).edx & (1 << 22 | 1 << 24) == (1 << 22 | 1 << 24);
    if !amx {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a system call that takes two integers and touches no memory of this process.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// This thread's tiles configured as eight of 16 rows × 64 bytes, released when dropped.
struct Tiles;

impl Tiles {
    /// # Safety
    /// [`available`] must have returned true.
    #[cfg(target_arch = "x86_64")]
    unsafe fn configure() -> Tiles {
        let mut cfg = [0u8; 64];
        cfg[0] = 1; // palette 1
        for t in 0..8 {
            cfg[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
            cfg[48 + t] = 16;
        }
        std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
        Tiles
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by this thread (`configure`); releasing them
        // returns the tile state to its initial one.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// What a block's accumulator tiles start from.
#[derive(Clone, Copy)]
enum Start {
    Zero,
    /// The block's values in `c` (a later pass over the reduction).
    Load,
    /// 32 rows of 16 f32 (row r: the bias of the block's row r, in every column).
    Bias(*const f32),
}

/// `c[32 × 32] = start + Σ_{chunks} a · b`: per chunk, `a` two packed tiles (rows 0–15, then
/// 16–31; 16 pairs a row) and `b` 16 rows of 32 pairs `ldb` bytes apart (two tiles side by
/// side); chunk k's `a` starts k·A_CHUNK pairs on, its `b` 16 rows on. `c` rows are `ldc`
/// bytes apart.
///
/// # Safety
/// The tiles must be configured on this thread ([`Tiles::configure`]); `a` holds
/// chunks·A_CHUNK pairs, `b` chunks·16 rows of 32 pairs at stride `ldb`, `c` 32 rows of 32
/// f32 at stride `ldc`, a bias 32·16 f32.
#[cfg(target_arch = "x86_64")]
unsafe fn block(chunks: usize, a: *const u32, b: *const u32, ldb: usize, c: *mut f32, ldc: usize, start: Start) {
    use std::arch::asm;
    let c_low = c.byte_add(16 * ldc);
    match start {
        Start::Zero => {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem))
        }
        Start::Load => asm!(
            "tileloadd tmm0, [{c0} + {ldc}*1]",
            "tileloadd tmm1, [{c1} + {ldc}*1]",
            "tileloadd tmm2, [{c2} + {ldc}*1]",
            "tileloadd tmm3, [{c3} + {ldc}*1]",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16),
            c2 = in(reg) c_low,
            c3 = in(reg) c_low.add(16),
            ldc = in(reg) ldc,
            options(nostack, readonly)
        ),
        Start::Bias(bias) => asm!(
            "tileloadd tmm0, [{b0} + {s}*1]",
            "tileloadd tmm1, [{b0} + {s}*1]",
            "tileloadd tmm2, [{b1} + {s}*1]",
            "tileloadd tmm3, [{b1} + {s}*1]",
            b0 = in(reg) bias,
            b1 = in(reg) bias.add(16 * 16),
            s = in(reg) 64usize,
            options(nostack, readonly)
        ),
    }
    for k in 0..chunks {
        let (ak, bk) = (a.add(k * A_CHUNK), b.byte_add(k * 16 * ldb));
        asm!(
            "tileloadd tmm4, [{a0} + {s}*1]",
            "tileloadd tmm5, [{a1} + {s}*1]",
            "tileloadd tmm6, [{b0} + {ldb}*1]",
            "tileloadd tmm7, [{b1} + {ldb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) ak,
            a1 = in(reg) ak.add(16 * 16),
            b0 = in(reg) bk,
            b1 = in(reg) bk.add(16),
            ldb = in(reg) ldb,
            s = in(reg) 64usize,
            options(nostack, readonly)
        );
    }
    asm!(
        "tilestored [{c0} + {ldc}*1], tmm0",
        "tilestored [{c1} + {ldc}*1], tmm1",
        "tilestored [{c2} + {ldc}*1], tmm2",
        "tilestored [{c3} + {ldc}*1], tmm3",
        c0 = in(reg) c,
        c1 = in(reg) c.add(16),
        c2 = in(reg) c_low,
        c3 = in(reg) c_low.add(16),
        ldc = in(reg) ldc,
        options(nostack)
    );
}

/// Row `i` of a block's A in the packed layout: pairs `16·k .. 16·k + 16` of the row at
/// `(k·2 + i/16)·256 + (i%16)·16` within the block (k: chunk).
#[inline]
fn a_at(chunk: usize, i: usize) -> usize {
    chunk * A_CHUNK + (i / 16) * 256 + (i % 16) * 16
}

/// `m × k` row-major (f32) as bf16 pairs in A tiles: blocks of 32 rows, each `chunks` chunks
/// ([`a_at`]); rows past m and pairs past k are zero.
fn pack_a(a: &[f32], m: usize, k: usize, chunks: usize) -> Vec<u32> {
    let mut p = vec![0u32; m.div_ceil(BLOCK) * chunks * A_CHUNK];
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        let base = (i / BLOCK) * chunks * A_CHUNK;
        for s in 0..k.div_ceil(2) {
            let hi = if 2 * s + 1 < k { row[2 * s + 1] } else { 0.0 };
            p[base + a_at(s / 16, i % BLOCK) + s % 16] = pair(row[2 * s], hi);
        }
    }
    p
}

/// `y = conv1d(x, w) + bias` of shape `s`, bf16 products on AMX (see the module's text).
///
/// Tasks of NC positions of the whole batch as in `gemm.rs`: their columns as bf16 pairs in
/// tiles of NR = 32 positions, padded with zero pairs to whole chunks; FWD_CHUNKS chunks at a
/// time, every block of 32 channels over every tile of positions.
pub(crate) fn conv1d_f32(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let ConvShape { batch, c_out, len, .. } = *s;
    let cink = s.c_in * s.kernel;
    let chunks = cink.div_ceil(CHUNK);
    let kq = chunks * 16; // pairs per tile of columns, whole chunks
    let blocks = c_out.div_ceil(BLOCK);
    let total = batch * len;
    assert!(NR == BLOCK && y.len() == batch * c_out * len && bias.is_none_or(|b| b.len() == c_out) && available());
    let packed = pack_a(w, c_out, cink, chunks);
    let bias_tiles: Option<Vec<f32>> = bias.map(|b| {
        let mut t = vec![0.0f32; blocks * BLOCK * 16];
        for (co, &v) in b.iter().enumerate() {
            t[co * 16..(co + 1) * 16].fill(v);
        }
        t
    });
    let y_ptr = SharedOut(y.as_mut_ptr());
    let tasks: Vec<usize> = (0..total).step_by(NC).collect();
    let per_group = tasks.len().div_ceil(4 * rayon::current_num_threads()).max(1);
    tasks.par_chunks(per_group).for_each(|group| {
        let tiles_per_task = NC / NR;
        let mut col = vec![0u32; tiles_per_task * kq * NR];
        let mut scratch = vec![0.0f32; tiles_per_task * blocks * BLOCK * BLOCK];
        // Written by the tiles and read back through this one pointer.
        let scratch = scratch.as_mut_ptr();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AMX is available (asserted).
        let _tiles = unsafe { Tiles::configure() };
        for &q0 in group {
            let n = NC.min(total - q0);
            let tiles = n.div_ceil(NR);
            im2col_tiles_bf16(s, x, q0, n, kq, &mut col);
            let in_row = |t: usize| {
                let (b, l) = ((q0 + t * NR) / len, (q0 + t * NR) % len);
                (l + NR <= len && t * NR + NR <= n).then_some(b * c_out * len + l)
            };
            // Where block (t, g) accumulates: straight in y (its 32 positions in one row, its
            // 32 channels all there), or its place in the scratch.
            let direct = |t: usize, g: usize| in_row(t).filter(|_| (g + 1) * BLOCK <= c_out);
            let place = |t: usize, g: usize| -> (*mut f32, usize) {
                match direct(t, g) {
                    // SAFETY (offset): channels 32g .. 32g + 32 ≤ c_out of batch item b,
                    // positions l .. l + 32, inside y.
                    Some(at) => (unsafe { y_ptr.add(at + g * BLOCK * len) }, len * 4),
                    // SAFETY (offset): block (t, g) of the scratch, t < NC/NR, g < blocks.
                    None => (unsafe { scratch.add((t * blocks + g) * BLOCK * BLOCK) }, BLOCK * 4),
                }
            };
            for k0 in (0..chunks).step_by(FWD_CHUNKS) {
                let kc = FWD_CHUNKS.min(chunks - k0);
                for t in 0..tiles {
                    for g in 0..blocks {
                        let (c, ldc) = place(t, g);
                        let start = match (k0, &bias_tiles) {
                            (0, Some(bt)) => Start::Bias(bt[g * BLOCK * 16..].as_ptr()),
                            (0, None) => Start::Zero,
                            _ => Start::Load,
                        };
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: tiles configured on this thread; block g of the packed
                        // weights holds `chunks` chunks, tile t of col kq = 16·chunks rows of
                        // NR pairs (k0 + kc ≤ chunks); c holds 32 rows of 32 at ldc (in y:
                        // this task's positions alone, 32 existing channels), a bias 32·16.
                        unsafe {
                            block(
                                kc,
                                packed.as_ptr().add((g * chunks + k0) * A_CHUNK),
                                col.as_ptr().add((t * kq + k0 * 16) * NR),
                                NR * 4,
                                c,
                                ldc,
                                start,
                            );
                        }
                    }
                }
            }
            // Blocks that went through the scratch: stretch by stretch of one batch item.
            for t in 0..tiles {
                for g in 0..blocks {
                    if direct(t, g).is_some() {
                        continue;
                    }
                    let rows = BLOCK.min(c_out - g * BLOCK);
                    let sc = (t * blocks + g) * BLOCK * BLOCK;
                    let mut j = t * NR;
                    while j < n.min(t * NR + NR) {
                        let (b, l) = ((q0 + j) / len, (q0 + j) % len);
                        let run = (len - l).min(n.min(t * NR + NR) - j);
                        for r in 0..rows {
                            let co = g * BLOCK + r;
                            // SAFETY: row r of block (t, g) of the scratch holds 32 values
                            // (j − 32t + run ≤ 32); (b, co, l .. l + run) lies inside y (asserted
                            // length) and positions q0 + j .. q0 + j + run belong to this task.
                            unsafe {
                                let src = scratch.add(sc + r * BLOCK + j - t * NR);
                                std::ptr::copy_nonoverlapping(src, y_ptr.add((b * c_out + co) * len + l), run);
                            }
                        }
                        j += run;
                    }
                }
            }
        }
    });
}

/// `dw[co, ci, k] = Σ_{b, l} dy[b, co, l] · x[b, ci, l + k·d − pad_left]`,
/// `dbias[co] = Σ_{b, l} dy[b, co, l]`, bf16 products on AMX (see the module's text): per
/// block of WG_POSITIONS positions, dwᵀ (c_in·K × c_out) += taps · dyᵀ in the tiles; tasks of
/// positions (from the shape alone, as `gemm.rs` sizes them) summed in f64 in a fixed order.
pub(crate) fn conv1d_bwd_weight_f32(s: &ConvShape, x: &[f32], dy: &[f32], dw: &mut [f32], dbias: Option<&mut [f32]>) {
    let ConvShape { batch, c_in, c_out, len, kernel, .. } = *s;
    let cink = c_in * kernel;
    let total = batch * len;
    assert!(x.len() == batch * c_in * len && dy.len() == batch * c_out * len && available());
    let (m_blocks, n_blocks) = (cink.div_ceil(BLOCK), c_out.div_ceil(BLOCK));
    let ldp = n_blocks * BLOCK; // columns of dwᵀ, and of dy's pairs
    const MAX_CHUNKS: usize = WG_POSITIONS / CHUNK;
    let (per_task, tasks, group_size) = weight_gradient_tasks(total);
    let groups: Vec<(Vec<f64>, Vec<f64>)> = tasks
        .par_chunks(group_size)
        .map(|group| {
            let mut acc_wt: Vec<f64> = Vec::with_capacity(cink * c_out);
            let mut acc_b = vec![0.0f64; c_out];
            // The taps as A: blocks of 32 taps, MAX_CHUNKS chunks of 32 positions.
            let mut a = vec![0u32; m_blocks * MAX_CHUNKS * A_CHUNK];
            // dy's rows (positions contiguous), then as B: per pair of positions, every channel.
            let mut dy_rows = vec![0.0f32; c_out * WG_POSITIONS];
            let mut dy_pairs = vec![0u32; c_out * WG_POSITIONS / 2];
            let mut b = vec![0u32; WG_POSITIONS / 2 * ldp];
            let mut part = vec![0.0f32; m_blocks * BLOCK * ldp];
            let mut buf = [0.0f32; NR];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AMX is available (asserted).
            let _tiles = unsafe { Tiles::configure() };
            for &q0 in group {
                let n = per_task.min(total - q0);
                for (pass, p0) in (0..n).step_by(WG_POSITIONS).enumerate() {
                    let m = WG_POSITIONS.min(n - p0);
                    let chunks = m.div_ceil(CHUNK);
                    // dy by stretches of one batch item; zeros past m to the chunk's end.
                    let mut j = 0;
                    while j < m {
                        let (bi, l) = ((q0 + p0 + j) / len, (q0 + p0 + j) % len);
                        let run = (len - l).min(m - j);
                        for co in 0..c_out {
                            let src = &dy[(bi * c_out + co) * len + l..(bi * c_out + co) * len + l + run];
                            dy_rows[co * WG_POSITIONS + j..co * WG_POSITIONS + j + run].copy_from_slice(src);
                        }
                        j += run;
                    }
                    for co in 0..c_out {
                        let row = &mut dy_rows[co * WG_POSITIONS..co * WG_POSITIONS + chunks * CHUNK];
                        row[m..].fill(0.0);
                        // The bias gradient in eight f64 lanes (eight dependency chains, not
                        // one), combined in a fixed order.
                        let mut lanes = [0.0f64; 8];
                        for (i, &v) in row[..m].iter().enumerate() {
                            lanes[i % 8] += v as f64;
                        }
                        acc_b[co] += ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                            + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
                        to_bf16_pairs(row, &mut dy_pairs[co * WG_POSITIONS / 2..co * WG_POSITIONS / 2 + chunks * 16]);
                    }
                    // B[pair s][co] = dy_pairs[co][s]: dy turned (c_out × pairs → pairs × c_out).
                    for sp in 0..chunks * 16 {
                        let row = &mut b[sp * ldp..sp * ldp + c_out];
                        for (co, v) in row.iter_mut().enumerate() {
                            *v = dy_pairs[co * WG_POSITIONS / 2 + sp];
                        }
                    }
                    // A: each tap's 32 positions of a chunk as 16 pairs (zero past m).
                    for t in 0..chunks {
                        let tile = TileTaps::new(s, q0 + p0, m, t);
                        for ci in 0..c_in {
                            for k in 0..kernel {
                                let kk = ci * kernel + k;
                                let row = tile.tap(s, x, ci, k, &mut buf);
                                let at = (kk / BLOCK) * MAX_CHUNKS * A_CHUNK + a_at(t, kk % BLOCK);
                                to_bf16_pairs(row, &mut a[at..at + 16]);
                            }
                        }
                    }
                    let start = if pass == 0 { Start::Zero } else { Start::Load };
                    for gm in 0..m_blocks {
                        for gn in 0..n_blocks {
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: tiles configured on this thread; block gm of a holds
                            // `chunks` ≤ MAX_CHUNKS chunks, b 16·chunks rows of ldp ≥ 32·(gn+1)
                            // pairs, part 32 rows of ldp from row 32·gm at column 32·gn.
                            unsafe {
                                block(
                                    chunks,
                                    a.as_ptr().add(gm * MAX_CHUNKS * A_CHUNK),
                                    b.as_ptr().add(gn * BLOCK),
                                    ldp * 4,
                                    part.as_mut_ptr().add(gm * BLOCK * ldp + gn * BLOCK),
                                    ldp * 4,
                                    start,
                                );
                            }
                        }
                    }
                }
                // dwᵀ as the tiles hold it (rows of taps: both sides contiguous), started by
                // the group's first task (no zeroed buffer) and turned once, after the groups.
                for kk in 0..cink {
                    let row = &part[kk * ldp..kk * ldp + c_out];
                    if acc_wt.len() < cink * c_out {
                        acc_wt.extend(row.iter().map(|&v| v as f64));
                    } else {
                        for (acc, &v) in acc_wt[kk * c_out..(kk + 1) * c_out].iter_mut().zip(row) {
                            *acc += v as f64;
                        }
                    }
                }
            }
            (acc_wt, acc_b)
        })
        .collect();
    // The groups' sums in their fixed order, then dwᵀ turned into dw.
    let mut dw_t = vec![0.0f32; cink * c_out];
    super::conv1d::sum_groups(&groups, &mut dw_t, dbias);
    for (kk, row) in dw_t.chunks_exact(c_out).enumerate() {
        for (co, &v) in row.iter().enumerate() {
            dw[co * cink + kk] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv1d::{bwd_input, bwd_weight, fwd, Mode};
    use super::super::gemm;
    use super::*;
    use crate::backend::{Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams};
    use crate::rng::SplitMix64 as Rng;

    /// Small integers: every product and every sum of these shapes is exact in f32 (and the
    /// values exact in bf16), so any order of summation gives the same bits.
    fn ints(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| (rng.next_u64() % 5) as f32 - 2.0).collect()
    }

    /// (y, dx, dw, dbias) of `p` taken by `mode`.
    fn passes(mode: Mode, p: &Conv1dParams, x: &[f32], w: &[f32], bias: &[f32], dy: &[f32]) -> [Vec<f32>; 4] {
        let mut y = vec![f32::NAN; p.output_len()];
        fwd(mode, p, Conv1dFwd { x, w, bias: Some(bias), y: &mut y[..] }, None).expect("shapes");
        let mut dx = vec![f32::NAN; p.input_len()];
        bwd_input(mode, p, Conv1dBwdInput { dy, w, dx: &mut dx[..] }).expect("shapes");
        let (mut dw, mut db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; p.c_out]);
        bwd_weight(mode, p, Conv1dBwdWeight { x, dy, dw: &mut dw[..], dbias: Some(&mut db[..]) }).expect("shapes");
        [y, dx, dw, db]
    }

    /// The AMX path, on small integers, gives the reference loops' bits in every pass
    /// (forward, backward-input, weight gradient with its bias), and so the AVX512-BF16
    /// kernels' bits; blocks of 32 channels and 32 positions cut anywhere: channels not a
    /// multiple of 32, rows shorter than a block, reductions not a multiple of 32, tasks of
    /// positions crossing batch items; on 1 and on 3 threads.
    #[test]
    fn amx_passes_equal_the_reference_on_small_integers() {
        if !available() {
            eprintln!("amx_passes_equal_the_reference_on_small_integers: skipped: no AMX on this CPU");
            return;
        }
        let shapes = [
            // batch, c_in, c_out, len, kernel, dilation
            (3, 40, 45, 37, 5, 1),
            (2, 33, 64, 100, 3, 2),
            (5, 17, 32, 7, 5, 1),
            (2, 288, 288, 56, 5, 1),
            (1, 64, 70, 300, 1, 1),
        ];
        for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in shapes.iter().enumerate() {
            let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
            let mut rng = Rng::new(40 + seed as u64);
            let (x, w, bias, dy) = (
                ints(&mut rng, p.input_len()),
                ints(&mut rng, p.weight_len()),
                ints(&mut rng, c_out),
                ints(&mut rng, p.output_len()),
            );
            let want = passes(Mode::Spec, &p, &x, &w, &bias, &dy);
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                pool.install(|| passes(Mode::FastBf16, &p, &x, &w, &bias, &dy))
            };
            for threads in [1, 3] {
                let got = on(threads);
                for (name, (g, w)) in ["y", "dx", "dw", "dbias"].iter().zip(got.iter().zip(&want)) {
                    let same = g.len() == w.len() && g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{p:?} {name}, {threads} threads: AMX differs from the reference");
                }
            }
            // The AVX512-BF16 kernels on the same numbers: the same bits.
            let s = super::super::direct::ConvShape::forward(&p);
            let mut y = vec![f32::NAN; p.output_len()];
            gemm::conv1d_f32(&s, &x, &w, Some(&bias), &mut y, true);
            assert!(y.iter().zip(&want[0]).all(|(a, b)| a.to_bits() == b.to_bits()), "{p:?}: AVX512-BF16 y");
        }
    }

    /// Non-integer inputs: the AMX forward and weight gradient within f32 summation of the
    /// AVX512-BF16 kernels' results on the same bf16 operands (only the order of sums differs).
    #[test]
    fn amx_and_avx512_bf16_agree_within_f32_summation() {
        if !available() {
            eprintln!("amx_and_avx512_bf16_agree_within_f32_summation: skipped: no AMX on this CPU");
            return;
        }
        let p = Conv1dParams { batch: 4, c_in: 96, c_out: 77, len: 61, kernel: 5, dilation: 1 };
        let s = super::super::direct::ConvShape::forward(&p);
        let mut rng = Rng::new(9);
        let mut uniform = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.unit() as f32 - 0.5).collect() };
        let (x, w, bias, dy) = (uniform(p.input_len()), uniform(p.weight_len()), uniform(77), uniform(p.output_len()));
        let (mut y_amx, mut y_avx) = (vec![0.0; p.output_len()], vec![0.0; p.output_len()]);
        conv1d_f32(&s, &x, &w, Some(&bias), &mut y_amx);
        gemm::conv1d_f32(&s, &x, &w, Some(&bias), &mut y_avx, true);
        // 480 products of magnitude ≤ 1/4 each: f32 sums in two orders differ by at most
        // 480 · 2⁻²⁴ · 120 (the sum of magnitudes' bound), far under 1e-4.
        for (a, b) in y_amx.iter().zip(&y_avx) {
            assert!((a - b).abs() <= 1e-4, "y: {a} vs {b}");
        }
        let (mut dw_amx, mut dw_avx) = (vec![0.0; p.weight_len()], vec![0.0; p.weight_len()]);
        conv1d_bwd_weight_f32(&s, &x, &dy, &mut dw_amx, None);
        gemm::conv1d_bwd_weight_f32(&s, &x, &dy, &mut dw_avx, None, true);
        // 244 positions a weight, f32 within a task of positions, f64 between tasks.
        for (a, b) in dw_amx.iter().zip(&dw_avx) {
            assert!((a - b).abs() <= 1e-4, "dw: {a} vs {b}");
        }
        assert!(y_amx.iter().chain(&dw_amx).any(|v| v.abs() > 0.1), "the outputs are not all near zero");
    }
}
