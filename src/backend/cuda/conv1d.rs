//! Launches of `kernels/conv1d.cu`.
//!
//! Strategy: a direct convolution from shared-memory tiles (input span and weights of a
//! channel tile), each thread holding CO_TILE × pos accumulators, pos (positions per thread)
//! chosen per shape so that a short row does not launch a mostly idle tile. The weight
//! gradient is split over (chunk of positions, channel-pair tile, batch item) blocks whose
//! partials a second kernel sums in f64, in a fixed order, so the result is deterministic.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, Epilogue};
use crate::error::BackendError;

// These mirror the #defines of kernels/conv1d.cu (a unit test below compares them).
pub(crate) const CONV_THREADS: u32 = 128;
const MAX_POS: usize = 4;
const CO_TILE: usize = 16;
pub(crate) const WG_THREADS: u32 = 256;
const WT: usize = 128;
const WCO: usize = 8;
const WCI: usize = 8;

/// Dynamic shared memory a block may use without opting in to more (bytes).
pub(crate) const SMEM_BYTES: usize = 48 * 1024;
const SMEM_FLOATS: usize = SMEM_BYTES / 4;
/// Blocks per multiprocessor the weight-gradient pass aims to keep in flight.
const WGRAD_BLOCKS_PER_SM: usize = 4;

/// The shape as the kernels' ints: c_in, c_out, len, kernel, dilation.
fn conv_ints(op: &'static str, p: &Conv1dParams) -> BackendResult<[KArg; 5]> {
    as_i32(op, "batch × channels × len", p.input_len().max(p.output_len()))?;
    if p.batch > 65_535 {
        return Err(BackendError::Unsupported { op, what: format!("batch {} exceeds 65,535 on CUDA", p.batch) });
    }
    Ok([
        KArg::I32(as_i32(op, "c_in", p.c_in)?),
        KArg::I32(as_i32(op, "c_out", p.c_out)?),
        KArg::I32(as_i32(op, "len", p.len)?),
        KArg::I32(as_i32(op, "kernel", p.kernel)?),
        KArg::I32(as_i32(op, "dilation", p.dilation)?),
    ])
}

/// Share of the FMA units' issue rate the direct convolution's inner loop keeps busy at 1, 2
/// and 4 positions per thread (FFMA per instruction in its sm_90 machine code, or the
/// shared-memory limit where lower; `benches/sass_mix.sh`): 64 FFMA in 97, 87 and 80
/// instructions.
const LOOP_SHARE: [(usize, f64); 3] = [(1, 0.66), (2, 0.74), (MAX_POS, 0.80)];

/// Resident blocks per SM the direct convolution's registers allow (95 registers × 128
/// threads on a 64 Ki-register SM; tests/nvrtc_compile.rs checks it against ptxas).
pub const CONV_BLOCKS_BY_REGISTERS: usize = 5;
/// Shared memory of one SM of CC 9.0 (bytes), and what the driver reserves per block.
const SM_SHARED_BYTES: usize = 228 * 1024;
const BLOCK_RESERVED_BYTES: usize = 1024;

/// How the direct convolution runs: the launch, the input channels per shared-memory pass and
/// the positions per thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirectPlan {
    pub geometry: Geometry,
    pub ci_tile: usize,
    pub pos: usize,
}

/// The plan of the direct convolution from `c_in_pass` to `c_out_pass` channels (c_in → c_out
/// forward, c_out → c_in for the input gradient) on a device of `multiprocessors` SMs.
///
/// The positions per thread (1, 2 or 4: tiles of 128, 256 or 512) are chosen per shape, for
/// the best expected rate = inner-loop share × used share of the tiles × wave efficiency (the
/// blocks over whole waves of resident blocks): short rows get small tiles (SeqNet's late
/// layers), and a long row takes smaller tiles where that fills the last wave (DenoiseNet's
/// 8 × 60,000 at 16 channels: 944 blocks of 512 fill 1.4 waves of 660, 1,880 of 256 fill 2.8).
pub(crate) fn direct_plan(
    op: &'static str,
    p: &Conv1dParams,
    c_in_pass: usize,
    c_out_pass: usize,
    multiprocessors: usize,
) -> BackendResult<DirectPlan> {
    let mut best: Option<(f64, DirectPlan)> = None;
    for (pos, loop_share) in LOOP_SHARE {
        let tile = CONV_THREADS as usize * pos;
        let span = tile + (p.kernel - 1) * p.dilation;
        let per_channel = span + CO_TILE * p.kernel;
        let fits = SMEM_FLOATS / per_channel;
        if fits == 0 {
            continue;
        }
        // As many passes as the shared memory needs, the channels spread evenly over them
        // (15 channels at 7 per pass: 5 + 5 + 5, not 7 + 7 + 1).
        let passes = c_in_pass.max(1).div_ceil(fits);
        let ci_tile = c_in_pass.max(1).div_ceil(passes);
        let shared = 4 * ci_tile * per_channel;
        let tiles = p.len.div_ceil(tile);
        let blocks = tiles * c_out_pass.div_ceil(CO_TILE) * p.batch;
        let per_sm = CONV_BLOCKS_BY_REGISTERS.min(SM_SHARED_BYTES / (shared + BLOCK_RESERVED_BYTES)).max(1);
        let slots = per_sm * multiprocessors.max(1);
        let waves = blocks.div_ceil(slots).max(1);
        let rate = loop_share * p.len as f64 / (tiles * tile) as f64 * blocks as f64 / (waves * slots) as f64;
        let geometry = Geometry {
            grid: (tiles as u32, c_out_pass.div_ceil(CO_TILE) as u32, p.batch as u32),
            block: (CONV_THREADS, 1, 1),
            shared_bytes: shared as u32,
        };
        if best.as_ref().is_none_or(|(r, _)| rate >= *r) {
            best = Some((rate, DirectPlan { geometry, ci_tile, pos }));
        }
    }
    // The kernel runs any pos other than 1 and 2 as MAX_POS: the grid must agree.
    debug_assert!(best.as_ref().is_none_or(|(_, plan)| matches!(plan.pos, 1 | 2 | MAX_POS)));
    best.map(|(_, plan)| plan).ok_or_else(|| BackendError::Unsupported {
        op,
        what: format!(
            "receptive field (kernel−1)·dilation+1 = {} is wider than the CUDA kernel's shared-memory tile allows (at most {})",
            (p.kernel - 1) * p.dilation + 1,
            SMEM_FLOATS.saturating_sub(CONV_THREADS as usize + CO_TILE * p.kernel) + 1
        ),
    })
}

/// Forward. x (B, C_in, L), w (C_out, C_in, K), bias (C_out) or none, y (B, C_out, L).
pub(crate) fn conv1d_fwd<D: KernelDevice>(d: &D, p: &Conv1dParams, b: Conv1dFwd<'_, D::Buf>) -> BackendResult<()> {
    conv1d_fwd_then(d, p, b, None)
}

/// The forward pass with an epilogue fused into its stores (`None`: none).
pub(crate) fn conv1d_fwd_then<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dFwd<'_, D::Buf>,
    epilogue: Option<Epilogue<'_, D::Buf>>,
) -> BackendResult<()> {
    const OP: &str = "conv1d_fwd";
    check_fwd(p, &b, epilogue.as_ref())?;
    let ints = conv_ints(OP, p)?;
    let plan = direct_plan(OP, p, p.c_in, p.c_out, d.multiprocessors())?;
    let bias = b.bias.map_or(0, |bias| d.ptr(bias));
    let (residual, relu) = epilogue_args(d, epilogue);
    let head = [
        KArg::Ptr(d.ptr(b.x)),
        KArg::Ptr(d.ptr(b.w)),
        KArg::Ptr(bias),
        KArg::Ptr(d.ptr_mut(b.y)),
        KArg::Ptr(residual),
        KArg::I32(relu),
    ];
    let tail = [KArg::I32(p.pad_left() as i32), KArg::I32(plan.ci_tile as i32), KArg::I32(plan.pos as i32)];
    // SAFETY: conv1d_fwd_f32(const float* x, const float* w, const float* bias, float* y,
    // const float* residual, int relu, int c_in, int c_out, int L, int K, int d, int pad_left,
    // int ci_tile, int pos); the buffers have the lengths of p (checked above; the residual, if
    // any, y's); the grid covers len × c_out × batch in tiles of
    // CONV_THREADS·pos positions and the kernel guards l < len and co < c_out; the shared
    // memory holds the ci_tile·(span + CO_TILE·K) floats the kernel indexes.
    unsafe { d.launch("conv1d", "conv1d_fwd_f32", plan.geometry, &[&head[..], &ints[..], &tail[..]].concat()) }
}

/// A forward pass's buffers and its epilogue's residual, if any, against the shape.
pub(crate) fn check_fwd<S: crate::backend::BufLen>(
    p: &Conv1dParams,
    b: &Conv1dFwd<'_, S>,
    epilogue: Option<&Epilogue<'_, S>>,
) -> BackendResult<()> {
    b.check(p)?;
    epilogue.map_or(Ok(()), |e| e.check(p))
}

/// An epilogue as the forward kernels take it: the residual's address (0: none) and the ReLU
/// flag.
pub(crate) fn epilogue_args<D: KernelDevice>(d: &D, epilogue: Option<Epilogue<'_, D::Buf>>) -> (u64, i32) {
    match epilogue {
        None => (0, 0),
        Some(Epilogue::Relu) => (0, 1),
        Some(Epilogue::AddRelu(r)) => (d.ptr(r), 1),
    }
}

/// Input gradient. dy (B, C_out, L), w (C_out, C_in, K), dx (B, C_in, L).
pub(crate) fn conv1d_bwd_input<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdInput<'_, D::Buf>,
) -> BackendResult<()> {
    const OP: &str = "conv1d_bwd_input";
    b.check(p)?;
    let ints = conv_ints(OP, p)?;
    // The pass convolves dy (c_out channels) into dx (c_in channels).
    let plan = direct_plan(OP, p, p.c_out, p.c_in, d.multiprocessors())?;
    let head = [KArg::Ptr(d.ptr(b.dy)), KArg::Ptr(d.ptr(b.w)), KArg::Ptr(d.ptr_mut(b.dx))];
    let tail = [KArg::I32(p.pad_right() as i32), KArg::I32(plan.ci_tile as i32), KArg::I32(plan.pos as i32)];
    // SAFETY: conv1d_bwd_input_f32(const float* dy, const float* w, float* dx, int c_in,
    // int c_out, int L, int K, int d, int pad_right, int ci_tile, int pos); lengths from p
    // (checked); the grid covers len × c_in × batch with guards in the kernel; shared memory as
    // for the forward pass with c_out input channels.
    unsafe { d.launch("conv1d", "conv1d_bwd_input_f32", plan.geometry, &[&head[..], &ints[..], &tail[..]].concat()) }
}

/// How the weight-gradient pass splits its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WeightGradPlan {
    pub geometry: Geometry,
    pub chunk_len: usize,
    pub n_chunks: usize,
    pub n_ci_tiles: usize,
}

pub(crate) fn weight_grad_plan(
    op: &'static str,
    p: &Conv1dParams,
    multiprocessors: usize,
) -> BackendResult<WeightGradPlan> {
    let span = WT + (p.kernel - 1) * p.dilation;
    // The tiles of dy (rows padded to WT + 4) and x; afterwards the same memory holds the
    // threads' 4 × 4 sums (16 floats per thread).
    let smem_floats = (WCO * (WT + 4) + WCI * (span | 1)).max(WG_THREADS as usize * 16);
    if smem_floats > SMEM_FLOATS {
        return Err(BackendError::Unsupported {
            op,
            what: format!(
                "kernel {} with dilation {} needs {} KiB of shared memory per block, more than {} KiB",
                p.kernel,
                p.dilation,
                smem_floats * 4 / 1024,
                SMEM_BYTES / 1024
            ),
        });
    }
    let n_ci_tiles = p.c_in.div_ceil(WCI);
    let tiles = p.c_out.div_ceil(WCO) * n_ci_tiles;
    if tiles > 65_535 {
        return Err(BackendError::Unsupported {
            op,
            what: format!("{} × {} channels are too many for one launch", p.c_out, p.c_in),
        });
    }
    // Enough chunks of positions to fill the device; chunk lengths are whole tiles.
    let target_blocks = WGRAD_BLOCKS_PER_SM * multiprocessors.max(1);
    let n_chunks = target_blocks.div_ceil(tiles * p.batch).clamp(1, p.len.div_ceil(WT));
    let chunk_len = p.len.div_ceil(n_chunks).div_ceil(WT) * WT;
    let n_chunks = p.len.div_ceil(chunk_len);
    let geometry = Geometry {
        grid: (n_chunks as u32, tiles as u32, p.batch as u32),
        block: (WG_THREADS, 1, 1),
        shared_bytes: (4 * smem_floats) as u32,
    };
    Ok(WeightGradPlan { geometry, chunk_len, n_chunks, n_ci_tiles })
}

/// Slices of the positions for the bias gradient: (splits, positions per slice), enough
/// (channel, slice) blocks to fill the device, slices of at least one block's width.
pub(crate) fn bias_splits(p: &Conv1dParams, multiprocessors: usize) -> (usize, usize) {
    let target = WGRAD_BLOCKS_PER_SM * multiprocessors.max(1);
    let splits = target.div_ceil(p.c_out.max(1)).clamp(1, p.len.div_ceil(THREADS as usize).max(1));
    let chunk = p.len.div_ceil(splits).max(1);
    (p.len.div_ceil(chunk).max(1), chunk)
}

/// Weight (and bias) gradient. x (B, C_in, L), dy (B, C_out, L), dw (C_out, C_in, K),
/// dbias (C_out) or none.
pub(crate) fn conv1d_bwd_weight<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, D::Buf>,
) -> BackendResult<()> {
    const OP: &str = "conv1d_bwd_weight";
    b.check(p)?;
    let (x, dy, dw) = (d.ptr(b.x), d.ptr(b.dy), d.ptr_mut(b.dw));
    let dbias = b.dbias.map(|db| d.ptr_mut(db));
    let ints = conv_ints(OP, p)?;
    let plan = weight_grad_plan(OP, p, d.multiprocessors())?;
    let n_parts = p.batch * plan.n_chunks;
    let mut partial_mem = d.scratch(n_parts * p.weight_len() * 4)?;
    let partial = d.scratch_ptr(&mut partial_mem);
    let head = [KArg::Ptr(x), KArg::Ptr(dy), KArg::Ptr(partial)];
    let tail = [KArg::I32(p.pad_left() as i32), KArg::I32(plan.chunk_len as i32), KArg::I32(plan.n_ci_tiles as i32)];
    // SAFETY: conv1d_bwd_weight_partial_f32(const float* x, const float* dy, float* partial,
    // int c_in, int c_out, int L, int K, int d, int pad_left, int chunk_len, int n_ci_tiles);
    // x and dy have the lengths of p (checked above); partial holds batch·n_chunks·C_out·C_in·K
    // floats, indexed by (blockIdx.z·gridDim.x + blockIdx.x) with gridDim.x = n_chunks; the
    // kernel guards channel indices; the shared memory is exactly what the kernel indexes.
    unsafe {
        d.launch("conv1d", "conv1d_bwd_weight_partial_f32", plan.geometry, &[&head[..], &ints[..], &tail[..]].concat())?
    };

    reduce_weight_partials(d, p, partial, n_parts, dw)?;
    if let Some(db) = dbias {
        bias_grad(d, p, dy, db)?;
    }
    Ok(())
}

/// dw = the `n_parts` partial weight gradients (part, C_out, C_in, K) at `partial`, summed in
/// f64 in part order (deterministic).
pub(crate) fn reduce_weight_partials<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    partial: u64,
    n_parts: usize,
    dw: u64,
) -> BackendResult<()> {
    let n_parts_i = as_i32("conv1d_bwd_weight", "partial sums", n_parts)?;
    let reduce = Geometry::linear(grid_stride_blocks(d, p.weight_len()), THREADS);
    let args = [KArg::Ptr(partial), KArg::Ptr(dw), KArg::I32(n_parts_i), KArg::I64(p.weight_len() as i64)];
    // SAFETY: conv1d_bwd_weight_reduce_f32(const float*, float*, int, long long); the caller's
    // partial holds n_parts·n_weights floats and dw n_weights.
    unsafe { d.launch("conv1d", "conv1d_bwd_weight_reduce_f32", reduce, &args) }
}

/// dbias[co] = Σ_{b,l} dy[b,co,l] into `db` (C_out floats), in f64 trees then in slice order.
pub(crate) fn bias_grad<D: KernelDevice>(d: &D, p: &Conv1dParams, dy: u64, db: u64) -> BackendResult<()> {
    let ints = conv_ints("conv1d_bwd_weight", p)?;
    let (splits, chunk) = bias_splits(p, d.multiprocessors());
    let mut part_mem = d.scratch(p.c_out * splits * 8)?;
    let part = d.scratch_ptr(&mut part_mem);
    let args = [KArg::Ptr(dy), KArg::Ptr(part), KArg::I32(p.batch as i32), ints[1], ints[2], KArg::I32(chunk as i32)];
    let geometry = Geometry { grid: (p.c_out as u32, splits as u32, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
    // SAFETY: conv1d_bwd_bias_f32(const float* dy, double* part, int B, int c_out, int L,
    // int chunk); dy has batch·c_out·len floats (checked by the caller); part holds
    // c_out·splits doubles, block (co, s) writing part[co·splits + s]; splits·chunk ≥ len.
    unsafe { d.launch("conv1d", "conv1d_bwd_bias_f32", geometry, &args)? };
    let args = [KArg::Ptr(part), KArg::Ptr(db), KArg::I32(splits as i32), ints[1]];
    let reduce = Geometry::linear(grid_stride_blocks(d, p.c_out), THREADS);
    // SAFETY: conv1d_bwd_bias_reduce_f64(const double* part, float* dbias, int n_splits,
    // int c_out); part holds c_out·splits doubles, dbias c_out floats (checked by the caller).
    unsafe { d.launch("conv1d", "conv1d_bwd_bias_reduce_f64", reduce, &args) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The launch geometry above must match the kernel file's #defines.
    #[test]
    fn constants_match_kernel_defines() {
        let src = crate::kernels::kernel_file("conv1d").expect("conv1d.cu is embedded").text;
        let define = |name: &str| -> usize {
            let value = crate::kernels::kernel_define(src, name)
                .unwrap_or_else(|| panic!("#define {name} missing from conv1d.cu"));
            let first = value.split_whitespace().next().unwrap_or(value);
            first.parse().unwrap_or_else(|_| panic!("#define {name} is not a plain number: {value}"))
        };
        assert_eq!(define("CONV_THREADS"), CONV_THREADS as usize);
        assert_eq!(define("MAX_POS"), MAX_POS);
        assert_eq!(define("CO_TILE"), CO_TILE);
        assert_eq!(define("WG_THREADS"), WG_THREADS as usize);
        assert_eq!(define("WT"), WT);
        assert_eq!(define("WCO"), WCO);
        assert_eq!(define("WCI"), WCI);
        let common = crate::kernels::HEADER_FILES.iter().find(|h| h.stem == "common").expect("common.cuh").text;
        assert!(common.contains(&format!("#define CHROMAX_THREADS {THREADS}")));
    }

    /// Tiles per shape on an H200 (132 SMs): SeqNet's short rows get small tiles, never more
    /// than twice the row unless it is the smallest; DenoiseNet's long rows take 256-position
    /// tiles, which fill whole waves; channel passes are even and the shared memory fits.
    #[test]
    fn direct_tiles_are_chosen_per_shape() {
        let seq = |c_in, c_out, len| Conv1dParams { batch: 128, c_in, c_out, len, kernel: 5, dilation: 1 };
        for (p, pos) in [
            (seq(288, 288, 448), 2),
            (seq(288, 323, 224), 2),
            (seq(323, 363, 112), 1),
            (seq(363, 407, 56), 1),
            (seq(456, 512, 14), 1),
        ] {
            let plan = direct_plan("test", &p, p.c_in, p.c_out, 132).expect("fits");
            assert_eq!(plan.pos, pos, "{p:?}");
            let tile = CONV_THREADS as usize * plan.pos;
            assert!(tile <= (2 * p.len).max(CONV_THREADS as usize), "{p:?}: tile {tile}");
            assert!(plan.geometry.shared_bytes as usize <= SMEM_BYTES);
            assert!(plan.ci_tile * p.c_in.div_ceil(plan.ci_tile) >= p.c_in);
        }
        let p = Conv1dParams { batch: 8, c_in: 15, c_out: 15, len: 60_000, kernel: 51, dilation: 8 };
        let plan = direct_plan("test", &p, 15, 15, 132).expect("fits");
        assert_eq!((plan.pos, plan.ci_tile, plan.geometry.grid), (2, 8, (235, 1, 8)));
        // One SM: every tile size fills its waves, so the loop's share decides: 4 per thread.
        assert_eq!(direct_plan("test", &p, 15, 15, 1).expect("fits").pos, 4);
        // A receptive field wider than any tile's shared memory is refused, naming it.
        let wide = Conv1dParams { batch: 1, c_in: 1, c_out: 1, len: 100, kernel: 2, dilation: 20_000 };
        let err = direct_plan("conv1d_fwd", &wide, 1, 1, 132).expect_err("too wide").to_string();
        assert!(err.contains("receptive field") && err.contains("20001"), "{err}");
    }

    #[test]
    fn bias_slices_cover_the_length_exactly_once_and_fill_the_device() {
        for (len, c_out, sms) in [(60_000, 15, 132), (1, 1, 132), (14, 512, 132), (300, 7, 1), (70_000, 1, 132)] {
            let p = Conv1dParams { batch: 2, c_in: 3, c_out, len, kernel: 5, dilation: 1 };
            let (splits, chunk) = bias_splits(&p, sms);
            assert!(splits * chunk >= len && (splits - 1) * chunk < len, "len {len}: {splits} × {chunk}");
            assert!(splits * c_out >= (WGRAD_BLOCKS_PER_SM * sms).min(c_out * len.div_ceil(256)), "len {len}");
        }
        let p = Conv1dParams { batch: 8, c_in: 15, c_out: 15, len: 60_000, kernel: 51, dilation: 8 };
        assert_eq!(bias_splits(&p, 132), (36, 1667));
    }

    #[test]
    fn weight_grad_chunks_cover_the_length_exactly_once() {
        for (len, batch, sms) in [(60_000, 2, 132), (1, 1, 132), (37, 3, 1), (5000, 64, 132), (129, 1, 2)] {
            let p = Conv1dParams { batch, c_in: 15, c_out: 15, len, kernel: 51, dilation: 8 };
            let plan = weight_grad_plan("test", &p, sms).expect("fits");
            assert_eq!(plan.chunk_len % WT, 0);
            assert!(
                plan.n_chunks * plan.chunk_len >= len && (plan.n_chunks - 1) * plan.chunk_len < len,
                "{plan:?} len {len}"
            );
            assert_eq!(plan.geometry.grid.0 as usize, plan.n_chunks);
        }
    }
}
