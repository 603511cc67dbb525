//! Launches of `kernels/conv1d_mma.cu`: convolutions of at most 16 channels on the tensor
//! cores (bf16 operands, f32 sums), DenoiseNet's 15 → 15 width-51 layers. The host keeps the
//! f32 (B, C, L) buffers of the other ops; the kernels convert to bf16 channels-last rows as
//! they load. Used by [`super::KernelBackend`] with bf16 convolutions on, for the shapes
//! [`eligible`] accepts; everything else (the first convolution, whose input is coverage:
//! values above 256 lose precision in bf16; 1 × 1 convolutions; wide layers) stays f32.

use super::as_i32;
use super::conv1d::SMEM_BYTES;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{
    BackendResult, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, Epilogue, Pack, PackParams, Unpack,
};

// These mirror the #defines of kernels/conv1d_mma.cu (a unit test below compares them).
pub(crate) const MMA_WARPS: u32 = 4;
const MMA_MT: usize = 4;
/// Positions per forward block.
pub(crate) const MMA_TILE: usize = MMA_WARPS as usize * MMA_MT * 16;
pub(crate) const MMA_WG_WARPS: u32 = 8;
const MMA_WG_TAPS: usize = 7;
const MMA_WG_STEP: usize = 128;
/// Weight-gradient blocks per multiprocessor the chunking aims for.
const WGRAD_BLOCKS_PER_SM: usize = 4;

/// Whether the tensor-core kernels take this convolution: 2 to 16 input and at most 16 output
/// channels, a width above 1, a batch within the grid's y (65,535), at most
/// MMA_WG_WARPS·MMA_WG_TAPS = 56 taps, and the shared memory of both kernels within a block's
/// default 48 KiB.
pub(crate) fn eligible(p: &Conv1dParams) -> bool {
    // The CPU's bf16 mode (CpuBackend::with_bf16_convolutions) rounds exactly these shapes.
    (2..=16).contains(&p.c_in)
        && (1..=16).contains(&p.c_out)
        && p.kernel > 1
        && p.batch <= 65_535
        && p.kernel <= MMA_WG_WARPS as usize * MMA_WG_TAPS
        && fwd_shared_bytes(p) <= SMEM_BYTES
        && wgrad_shared_bytes(p) <= SMEM_BYTES
}

fn halo(p: &Conv1dParams) -> usize {
    (p.kernel - 1) * p.dilation
}

fn fwd_shared_bytes(p: &Conv1dParams) -> usize {
    p.kernel * 512 + (MMA_TILE + halo(p)) * 32
}

/// The forward kernels' launch: a block per MMA_TILE positions of each batch item.
fn fwd_geometry(p: &Conv1dParams) -> Geometry {
    Geometry {
        grid: (p.len.div_ceil(MMA_TILE) as u32, p.batch as u32, 1),
        block: (MMA_WARPS * 32, 1, 1),
        shared_bytes: fwd_shared_bytes(p) as u32,
    }
}

fn wgrad_shared_bytes(p: &Conv1dParams) -> usize {
    (2 * MMA_WG_STEP + halo(p)) * 32
}

/// The shape as the kernels' ints: c_in, c_out, len, kernel, dilation.
fn ints(op: &'static str, p: &Conv1dParams) -> BackendResult<[i32; 5]> {
    as_i32(op, "batch × channels × len", p.input_len().max(p.output_len()))?;
    Ok([
        as_i32(op, "c_in", p.c_in)?,
        as_i32(op, "c_out", p.c_out)?,
        as_i32(op, "len", p.len)?,
        as_i32(op, "kernel", p.kernel)?,
        as_i32(op, "dilation", p.dilation)?,
    ])
}

/// w (C_out, C_in, K) as the kernels' bf16 rows (K, 16, 16); `flip` for the input gradient.
fn prepared_weights<D: KernelDevice>(d: &D, p: &Conv1dParams, w: &D::Buf, flip: bool) -> BackendResult<D::Scratch> {
    let [c_in, c_out, _, k, _] = ints("conv1d_mma_prep_weights", p)?;
    let mut wh = d.scratch(p.kernel * 512)?;
    let args = [
        KArg::Ptr(d.ptr(w)),
        KArg::Ptr(d.scratch_ptr(&mut wh)),
        KArg::I32(c_in),
        KArg::I32(c_out),
        KArg::I32(k),
        KArg::I32(flip as i32),
    ];
    // SAFETY: conv1d_mma_prep_weights(const float* w, unsigned short* wh, int cin, int cout,
    // int K, int flip); w holds c_out·c_in·K floats (checked by the caller), wh K·256 bf16.
    unsafe {
        d.launch(
            "conv1d_mma",
            "conv1d_mma_prep_weights",
            Geometry::linear(grid_stride_blocks(d, p.kernel * 256), THREADS),
            &args,
        )?
    };
    Ok(wh)
}

/// One tensor-core convolution pass: `x` (B, n_in, L) into `y` (B, n_out, L) with prepared
/// weights, `pad` zeros on the left.
#[allow(clippy::too_many_arguments)]
fn pass<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    x: u64,
    wh: &mut D::Scratch,
    bias: u64,
    y: u64,
    (residual, relu): (u64, i32),
    n_in: i32,
    n_out: i32,
    pad: usize,
) -> BackendResult<()> {
    let [_, _, len, k, dil] = ints("conv1d_mma_fwd", p)?;
    let geometry = fwd_geometry(p);
    let args = [
        KArg::Ptr(x),
        KArg::Ptr(d.scratch_ptr(wh)),
        KArg::Ptr(bias),
        KArg::Ptr(y),
        KArg::Ptr(residual),
        KArg::I32(relu),
        KArg::I32(n_in),
        KArg::I32(n_out),
        KArg::I32(len),
        KArg::I32(k),
        KArg::I32(dil),
        KArg::I32(pad as i32),
    ];
    // SAFETY: conv1d_mma_fwd(const float* x, const unsigned short* wh, const float* bias,
    // float* y, const float* residual, int relu, int nin, int nout, int L, int K, int d, int
    // pad); x holds batch·n_in·len and y (and the residual, if any) batch·n_out·len floats
    // (checked by the caller), wh K·256 bf16, bias n_out floats or null;
    // the grid covers len in MMA_TILE tiles × batch and the kernel guards l < L, n < nout; the
    // shared memory is what the kernel indexes (eligible() kept it within 48 KiB).
    unsafe { d.launch("conv1d_mma", "conv1d_mma_fwd", geometry, &args) }
}

/// Forward on the tensor cores, with an epilogue fused into its stores (`None`: none). Shapes
/// as [`super::conv1d::conv1d_fwd`].
pub(crate) fn conv1d_fwd_then<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dFwd<'_, D::Buf>,
    epilogue: Option<Epilogue<'_, D::Buf>>,
) -> BackendResult<()> {
    super::conv1d::check_fwd(p, &b, epilogue.as_ref())?;
    let mut wh = prepared_weights(d, p, b.w, false)?;
    let bias = b.bias.map_or(0, |bias| d.ptr(bias));
    let post = super::conv1d::epilogue_args(d, epilogue);
    let (x, y) = (d.ptr(b.x), d.ptr_mut(b.y));
    pass(d, p, x, &mut wh, bias, y, post, p.c_in as i32, p.c_out as i32, p.pad_left())
}

/// Forward on the tensor cores.
pub(crate) fn conv1d_fwd<D: KernelDevice>(d: &D, p: &Conv1dParams, b: Conv1dFwd<'_, D::Buf>) -> BackendResult<()> {
    conv1d_fwd_then(d, p, b, None)
}

/// 32-bit words of a packed activation of `batch` × `len` positions: 16 bf16 channels, two a
/// word.
pub(crate) fn packed_len(batch: usize, len: usize) -> usize {
    batch * len * 8
}

/// Forward on the tensor cores from packed x into packed y (and a packed residual), see
/// [`crate::backend::Backend::conv1d_fwd_packed`].
pub(crate) fn conv1d_fwd_packed<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dFwd<'_, D::Buf>,
    epilogue: Option<Epilogue<'_, D::Buf>>,
) -> BackendResult<()> {
    const OP: &str = "conv1d_mma_fwd_packed";
    let n = packed_len(p.batch, p.len);
    b.check_packed(p, n)?;
    if let Some(e) = &epilogue {
        e.check_packed(n)?;
    }
    let [_, c_out, len, k, dil] = ints(OP, p)?;
    as_i32(OP, "packed words", n)?;
    let mut wh = prepared_weights(d, p, b.w, false)?;
    let (residual, relu) = super::conv1d::epilogue_args(d, epilogue);
    let geometry = fwd_geometry(p);
    let args = [
        KArg::Ptr(d.ptr(b.x)),
        KArg::Ptr(d.scratch_ptr(&mut wh)),
        KArg::Ptr(b.bias.map_or(0, |bias| d.ptr(bias))),
        KArg::Ptr(d.ptr_mut(b.y)),
        KArg::Ptr(residual),
        KArg::I32(relu),
        KArg::I32(c_out),
        KArg::I32(len),
        KArg::I32(k),
        KArg::I32(dil),
        KArg::I32(p.pad_left() as i32),
    ];
    // SAFETY: conv1d_mma_fwd_packed(const uint4* x, const unsigned short* wh, const float* bias,
    // unsigned* y, const unsigned* residual, int relu, int nout, int L, int K, int d, int pad);
    // x, y and the residual (if any) hold batch·len·8 words = batch·len·2 uint4 (checked
    // above; device buffers are 256-byte aligned), wh K·256 bf16, bias c_out floats or null; the
    // grid covers len in MMA_TILE tiles × batch and the kernel guards l < L; the shared memory
    // is what the kernel indexes (eligible() kept it within 48 KiB).
    unsafe { d.launch("conv1d_mma", OP, geometry, &args) }
}

/// f32 (B, C, L) into packed rows (see [`crate::backend::Backend::pack`]).
pub(crate) fn pack<D: KernelDevice>(d: &D, p: &PackParams, b: Pack<'_, D::Buf>) -> BackendResult<()> {
    const OP: &str = "conv1d_mma_pack";
    b.check(p, packed_len(p.batch, p.len))?;
    let args = [
        KArg::Ptr(d.ptr(b.x)),
        KArg::Ptr(d.ptr_mut(b.packed)),
        KArg::I32(as_i32(OP, "channels", p.channels)?),
        KArg::I32(as_i32(OP, "len", p.len)?),
        KArg::I64((p.batch * p.len) as i64),
    ];
    let positions = p.batch * p.len;
    // SAFETY: conv1d_mma_pack(const float* x, uint4* packed, int C, int L, long long positions);
    // x holds batch·C·len floats and packed batch·len·8 words = 2 uint4 a position (checked
    // above; device buffers are 256-byte aligned); one thread a position, grid-stride.
    unsafe { d.launch("conv1d_mma", OP, Geometry::linear(grid_stride_blocks(d, positions), THREADS), &args) }
}

/// Packed rows into f32 (B, C, L) (see [`crate::backend::Backend::unpack`]).
pub(crate) fn unpack<D: KernelDevice>(d: &D, p: &PackParams, b: Unpack<'_, D::Buf>) -> BackendResult<()> {
    const OP: &str = "conv1d_mma_unpack";
    b.check(p, packed_len(p.batch, p.len))?;
    as_i32(OP, "values", p.values())?;
    let positions = p.batch * p.len;
    let args = [
        KArg::Ptr(d.ptr(b.packed)),
        KArg::Ptr(d.ptr_mut(b.x)),
        KArg::I32(as_i32(OP, "channels", p.channels)?),
        KArg::I32(as_i32(OP, "len", p.len)?),
        KArg::I64(positions as i64),
    ];
    // SAFETY: conv1d_mma_unpack(const uint4* packed, float* x, int C, int L, long long
    // positions); packed holds batch·len·8 words (2 uint4 a position, 256-byte aligned) and x
    // batch·C·len floats, C ≤ 16 (checked above); one thread a position, grid-stride.
    unsafe { d.launch("conv1d_mma", OP, Geometry::linear(grid_stride_blocks(d, positions), THREADS), &args) }
}

/// Input gradient on the tensor cores: the forward pass of dy with flipped, transposed
/// weights.
pub(crate) fn conv1d_bwd_input<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdInput<'_, D::Buf>,
) -> BackendResult<()> {
    b.check(p)?;
    let mut wh = prepared_weights(d, p, b.w, true)?;
    let (dy, dx) = (d.ptr(b.dy), d.ptr_mut(b.dx));
    pass(d, p, dy, &mut wh, 0, dx, (0, 0), p.c_out as i32, p.c_in as i32, p.pad_right())
}

/// Chunks of positions for the weight gradient: enough (chunk, batch item) blocks to fill the
/// device, each chunk whole steps of MMA_WG_STEP.
pub(crate) fn wgrad_chunks(p: &Conv1dParams, multiprocessors: usize) -> (usize, usize) {
    let target = WGRAD_BLOCKS_PER_SM * multiprocessors.max(1);
    let n = target.div_ceil(p.batch.max(1)).clamp(1, p.len.div_ceil(MMA_WG_STEP).max(1));
    let chunk_len = p.len.div_ceil(n).div_ceil(MMA_WG_STEP) * MMA_WG_STEP;
    (p.len.div_ceil(chunk_len).max(1), chunk_len)
}

/// Weight gradient on the tensor cores (the bias gradient, where asked, by conv1d.cu's f32
/// kernels: it has no products).
pub(crate) fn conv1d_bwd_weight<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, D::Buf>,
) -> BackendResult<()> {
    b.check(p)?;
    wgrad(d, p, b, "conv1d_mma_wgrad_partial")
}

/// Weight gradient with x packed (see [`crate::backend::Backend::conv1d_bwd_weight_packed`]).
pub(crate) fn conv1d_bwd_weight_packed<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, D::Buf>,
) -> BackendResult<()> {
    b.check_packed(p, packed_len(p.batch, p.len))?;
    wgrad(d, p, b, "conv1d_mma_wgrad_partial_packed")
}

/// The weight gradient by kernel `op` (x f32 or packed, checked by the caller).
fn wgrad<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, D::Buf>,
    op: &'static str,
) -> BackendResult<()> {
    const OP: &str = "conv1d_mma_wgrad_partial";
    let [c_in, c_out, len, k, dil] = ints(OP, p)?;
    let (n_chunks, chunk_len) = wgrad_chunks(p, d.multiprocessors());
    let n_parts = p.batch * n_chunks;
    let mut partial_mem = d.scratch(n_parts * p.weight_len() * 4)?;
    let partial = d.scratch_ptr(&mut partial_mem);
    let geometry = Geometry {
        grid: (n_chunks as u32, p.batch as u32, 1),
        block: (MMA_WG_WARPS * 32, 1, 1),
        shared_bytes: wgrad_shared_bytes(p) as u32,
    };
    let args = [
        KArg::Ptr(d.ptr(b.x)),
        KArg::Ptr(d.ptr(b.dy)),
        KArg::Ptr(partial),
        KArg::I32(c_in),
        KArg::I32(c_out),
        KArg::I32(len),
        KArg::I32(k),
        KArg::I32(dil),
        KArg::I32(p.pad_left() as i32),
        KArg::I32(as_i32(OP, "chunk", chunk_len)?),
    ];
    // SAFETY: conv1d_mma_wgrad_partial(const float* x, const float* dy, float* partial, int cin,
    // int cout, int L, int K, int d, int pad_left, int chunk_len), and its _packed twin with
    // const uint4* x; x (batch·cin·len floats, or batch·len·8 words packed) and dy have the
    // lengths of p (checked by the caller); partial holds batch·n_chunks·c_out·c_in·K floats, block (chunk, b)
    // writing part b·n_chunks + chunk (gridDim.x = n_chunks); every weight of every part is
    // written (each tap by one warp); shared memory as the kernel indexes, within 48 KiB.
    unsafe { d.launch("conv1d_mma", op, geometry, &args)? };
    super::conv1d::reduce_weight_partials(d, p, partial, n_parts, d.ptr_mut(b.dw))?;
    if let Some(db) = b.dbias {
        super::conv1d::bias_grad(d, p, d.ptr(b.dy), d.ptr_mut(db))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_kernel_defines() {
        let define = |name: &str| crate::kernels::kernel_define_number("conv1d_mma", name);
        assert_eq!(define("MMA_WARPS"), MMA_WARPS as usize);
        assert_eq!(define("MMA_MT"), MMA_MT);
        assert_eq!(define("MMA_WG_WARPS"), MMA_WG_WARPS as usize);
        assert_eq!(define("MMA_WG_TAPS"), MMA_WG_TAPS);
        assert_eq!(define("MMA_WG_STEP"), MMA_WG_STEP);
    }

    #[test]
    fn denoisenet_layers_are_eligible_and_the_rest_is_not() {
        let p = |c_in, c_out, kernel, dilation| Conv1dParams { batch: 4, c_in, c_out, len: 6000, kernel, dilation };
        assert!(eligible(&p(15, 15, 51, 8)));
        assert!(eligible(&p(15, 1, 51, 8)));
        assert!(eligible(&p(16, 16, 5, 1)));
        assert!(!eligible(&p(1, 15, 51, 8)), "coverage input stays f32");
        assert!(!eligible(&p(15, 15, 1, 1)), "1 × 1 stays f32");
        assert!(!eligible(&p(288, 288, 5, 1)), "wide layers are not this kernel's");
        assert!(!eligible(&p(15, 15, 51, 16)), "a halo beyond 48 KiB of shared memory");
        let big_batch = Conv1dParams { batch: 65_536, ..p(15, 15, 51, 8) };
        assert!(!eligible(&big_batch), "the grid's y holds the batch: at most 65,535");
        // DenoiseNet's layer needs 46 KiB.
        assert_eq!(fwd_shared_bytes(&p(15, 15, 51, 8)), 51 * 512 + (256 + 400) * 32);
    }

    #[test]
    fn weight_gradient_chunks_cover_the_length_once() {
        for (batch, len, sms) in [(1, 100, 132), (4, 6000, 132), (64, 60_000, 132), (2, 129, 1)] {
            let p = Conv1dParams { batch, c_in: 15, c_out: 15, len, kernel: 51, dilation: 8 };
            let (n, chunk) = wgrad_chunks(&p, sms);
            assert_eq!(chunk % MMA_WG_STEP, 0);
            assert!(n * chunk >= len && (n - 1) * chunk < len, "{p:?}: {n} × {chunk}");
        }
    }
}
