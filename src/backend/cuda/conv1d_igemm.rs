//! Launches of `kernels/conv1d_igemm.cu`: wide convolutions of dilation 1 (SeqNet's stem and
//! towers) as implicit GEMMs on the tensor cores, bf16 operands and f32 sums: the forward pass,
//! the input gradient and the weight gradient (split over the positions, the splits summed in
//! a fixed order). Inputs are converted to bf16 channels-last rows first (B·L·cp·2 bytes of
//! scratch), the weights to bf16 (np·kp·2 bytes).

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams};

// These mirror the #defines of kernels/conv1d_igemm.cu (a unit test below compares them).
const IG_BM: usize = 64;
const IG_BN: usize = 64;
const IG_BK: usize = 32;
const IG_WN: usize = 64;
const IG_WK: usize = 32;
pub(crate) const IG_THREADS: u32 = 128;
/// Weight-gradient blocks per multiprocessor the position splits aim for.
const WGRAD_BLOCKS_PER_SM: usize = 4;
/// Forward blocks per multiprocessor below which a layer splits its K (6 fit by registers).
const FWD_BLOCKS_PER_SM: usize = 3;
/// The shortest K split, in slices of IG_BK.
const MIN_SPLIT_SLICES: usize = 8;

/// Whether the implicit GEMM takes this convolution: dilation 1 and more than 16 output
/// channels (16 or fewer are `conv1d_mma`'s), within the grid's limits.
pub(crate) fn eligible(p: &Conv1dParams) -> bool {
    p.dilation == 1
        && p.c_out > 16
        && p.kernel >= 1
        && (p.batch * p.len).div_ceil(IG_BM) < i32::MAX as usize
        && p.c_out.max(p.c_in).div_ceil(IG_BN) <= 65_535
}

/// `x` (B, channels, L) f32 as bf16 channels-last rows (B, L, cp), channels ≥ `channels` zero.
fn to_rows<D: KernelDevice>(d: &D, p: &Conv1dParams, x: u64, channels: usize, cp: usize) -> BackendResult<D::Scratch> {
    const OP: &str = "conv1d_igemm_to_rows";
    let rows = p.batch * p.len;
    let i = |what: &str, v: usize| as_i32(OP, what, v).map(KArg::I32);
    as_i32(OP, "positions × channels", rows * cp)?;
    let mut xh = d.scratch(rows * cp * 2)?;
    let args = [
        KArg::Ptr(x),
        KArg::Ptr(d.scratch_ptr(&mut xh)),
        i("batch", p.batch)?,
        i("channels", channels)?,
        i("len", p.len)?,
        i("cp", cp)?,
    ];
    // SAFETY: conv1d_igemm_to_rows(const float* x, unsigned short* xh, int B, int C, int L,
    // int cp); x holds batch·channels·len floats (checked by the caller), xh batch·len·cp bf16.
    unsafe { d.launch("conv1d_igemm", OP, Geometry::linear(grid_stride_blocks(d, rows * cp), THREADS), &args)? };
    Ok(xh)
}

/// One pass: `x` (B, n_in, L) f32 into `y` (B, n_out, L) with w prepared (flipped for the
/// input gradient), `pad` zeros on the left.
#[allow(clippy::too_many_arguments)]
fn pass<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    x: u64,
    w: u64,
    bias: u64,
    y: u64,
    n_in: usize,
    n_out: usize,
    pad: usize,
    flip: bool,
) -> BackendResult<()> {
    const OP: &str = "conv1d_igemm_fwd";
    let cp = n_in.div_ceil(8) * 8;
    let kcp = p.kernel * cp;
    let kp = kcp.div_ceil(IG_BK) * IG_BK;
    let np = n_out.div_ceil(IG_BN) * IG_BN;
    let rows = p.batch * p.len;
    let i = |what: &str, v: usize| as_i32(OP, what, v).map(KArg::I32);
    let mut xh = to_rows(d, p, x, n_in, cp)?;
    let mut wh = d.scratch(np * kp * 2)?;
    let (xh_ptr, wh_ptr) = (d.scratch_ptr(&mut xh), d.scratch_ptr(&mut wh));
    let (c_in, c_out) = (p.c_in, p.c_out);
    let args = [
        KArg::Ptr(w),
        KArg::Ptr(wh_ptr),
        i("c_in", c_in)?,
        i("c_out", c_out)?,
        i("kernel", p.kernel)?,
        i("cp", cp)?,
        i("kp", kp)?,
        i("np", np)?,
        KArg::I32(flip as i32),
    ];
    // SAFETY: conv1d_igemm_prep_weights(const float* w, unsigned short* wh, int cin, int cout,
    // int K, int cp, int kp, int np, int flip); w holds c_out·c_in·K floats (checked by the
    // caller), wh np·kp bf16; with flip the kernel reads w[c, n, ·] for n < c_in, c < c_out.
    unsafe {
        d.launch(
            "conv1d_igemm",
            "conv1d_igemm_prep_weights",
            Geometry::linear(grid_stride_blocks(d, np * kp), THREADS),
            &args,
        )?
    };
    let tiles = rows.div_ceil(IG_BM) * (np / IG_BN);
    let (splits, per_split) = fwd_splits(tiles, kp / IG_BK, d.multiprocessors());
    let mut part_mem = if splits > 1 { Some(d.scratch(splits * rows * n_out * 4)?) } else { None };
    let part = part_mem.as_mut().map_or(0, |m| d.scratch_ptr(m));
    let geometry = Geometry {
        grid: (rows.div_ceil(IG_BM) as u32, (np / IG_BN) as u32, as_i32(OP, "splits", splits)? as u32),
        block: (IG_THREADS, 1, 1),
        shared_bytes: 0,
    };
    let args = [
        KArg::Ptr(xh_ptr),
        KArg::Ptr(wh_ptr),
        KArg::Ptr(bias),
        KArg::Ptr(y),
        i("batch", p.batch)?,
        i("len", p.len)?,
        i("cp", cp)?,
        i("kcp", kcp)?,
        i("kp", kp)?,
        i("n_out", n_out)?,
        i("pad", pad)?,
        i("slices per split", per_split)?,
        KArg::Ptr(part),
    ];
    // SAFETY: conv1d_igemm_fwd(const unsigned short* xh, const unsigned short* wh, const float*
    // bias, float* y, int B, int L, int cp, int kcp, int kp, int nout, int pad, int
    // slices_per_split, float* part); xh and wh as written above; y holds batch·n_out·len
    // floats (checked by the caller), bias n_out floats or null; part null (one split: the
    // kernel writes y) or splits·rows·n_out floats; the grid covers batch·len in IG_BM rows
    // (guarded m < M), np in IG_BN columns (wh rows up to np exist; outputs guarded n < nout)
    // and the splits of kp / IG_BK slices; static shared memory only.
    unsafe { d.launch("conv1d_igemm", OP, geometry, &args)? };
    if splits > 1 {
        let args = [
            KArg::Ptr(part),
            KArg::Ptr(bias),
            KArg::Ptr(y),
            i("splits", splits)?,
            i("batch", p.batch)?,
            i("len", p.len)?,
            i("n_out", n_out)?,
        ];
        let reduce = Geometry::linear(grid_stride_blocks(d, rows * n_out), THREADS);
        // SAFETY: conv1d_igemm_splitk_reduce(const float* part, const float* bias, float* y,
        // int splits, int B, int L, int nout); part holds splits·rows·n_out floats, every one
        // written above (each split's block writes its rows m < M and n < nout); y
        // batch·n_out·len floats.
        unsafe { d.launch("conv1d_igemm", "conv1d_igemm_splitk_reduce", reduce, &args)? };
    }
    Ok(())
}

/// Split-K of the forward GEMM: (splits, slices per split). A layer whose tiles do not fill
/// the device (SeqNet's late towers: 14 positions × 128 items = 28 × 8 tiles) splits its K
/// slices so that about FWD_BLOCKS_PER_SM blocks per SM run, each split at least
/// MIN_SPLIT_SLICES slices long; the partials are then summed in split order.
pub(crate) fn fwd_splits(tiles: usize, slices: usize, multiprocessors: usize) -> (usize, usize) {
    let target = FWD_BLOCKS_PER_SM * multiprocessors.max(1);
    let most = (slices / MIN_SPLIT_SLICES).max(1);
    let wanted = if tiles >= target { 1 } else { target.div_ceil(tiles.max(1)).min(most) };
    let per_split = slices.max(1).div_ceil(wanted);
    (slices.max(1).div_ceil(per_split), per_split)
}

/// Forward on the tensor cores. Shapes as [`super::conv1d::conv1d_fwd`].
pub(crate) fn conv1d_fwd<D: KernelDevice>(d: &D, p: &Conv1dParams, b: Conv1dFwd<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    let bias = b.bias.map_or(0, |bias| d.ptr(bias));
    pass(d, p, d.ptr(b.x), d.ptr(b.w), bias, d.ptr_mut(b.y), p.c_in, p.c_out, p.pad_left(), false)
}

/// Input gradient on the tensor cores: the forward pass of dy with flipped, transposed weights.
pub(crate) fn conv1d_bwd_input<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdInput<'_, D::Buf>,
) -> BackendResult<()> {
    b.check(p)?;
    pass(d, p, d.ptr(b.dy), d.ptr(b.w), 0, d.ptr_mut(b.dx), p.c_out, p.c_in, p.pad_right(), true)
}

/// Splits of the positions for the weight gradient: (splits, slices of IG_WK per split), enough
/// blocks to fill the device.
pub(crate) fn wgrad_splits(p: &Conv1dParams, tiles: usize, multiprocessors: usize) -> (usize, usize) {
    let slices = (p.batch * p.len).div_ceil(IG_WK).max(1);
    let wanted = (WGRAD_BLOCKS_PER_SM * multiprocessors.max(1)).div_ceil(tiles.max(1)).clamp(1, slices);
    let per_split = slices.div_ceil(wanted);
    (slices.div_ceil(per_split), per_split)
}

/// Weight gradient on the tensor cores (the bias gradient, where asked, by conv1d.cu's f32
/// kernels): split over the positions, the splits' partials summed in a fixed order.
pub(crate) fn conv1d_bwd_weight<D: KernelDevice>(
    d: &D,
    p: &Conv1dParams,
    b: Conv1dBwdWeight<'_, D::Buf>,
) -> BackendResult<()> {
    const OP: &str = "conv1d_igemm_wgrad_partial";
    b.check(p)?;
    let (cp, cop) = (p.c_in.div_ceil(8) * 8, p.c_out.div_ceil(8) * 8);
    let kcp = p.kernel * cp;
    let kp2 = kcp.div_ceil(IG_WN) * IG_WN;
    let np = p.c_out.div_ceil(IG_BN) * IG_BN;
    let mut xh = to_rows(d, p, d.ptr(b.x), p.c_in, cp)?;
    let mut dyh = to_rows(d, p, d.ptr(b.dy), p.c_out, cop)?;
    let tiles = (np / IG_BN) * (kp2 / IG_WN);
    let (splits, per_split) = wgrad_splits(p, tiles, d.multiprocessors());
    let mut part_mem = d.scratch(splits * np * kp2 * 4)?;
    let part = d.scratch_ptr(&mut part_mem);
    let i = |what: &str, v: usize| as_i32(OP, what, v).map(KArg::I32);
    let geometry = Geometry {
        grid: ((np / IG_BN) as u32, (kp2 / IG_WN) as u32, as_i32(OP, "splits", splits)? as u32),
        block: (IG_THREADS, 1, 1),
        shared_bytes: 0,
    };
    let args = [
        KArg::Ptr(d.scratch_ptr(&mut xh)),
        KArg::Ptr(d.scratch_ptr(&mut dyh)),
        KArg::Ptr(part),
        i("batch", p.batch)?,
        i("len", p.len)?,
        i("cp", cp)?,
        i("kcp", kcp)?,
        i("kp2", kp2)?,
        i("cop", cop)?,
        i("np", np)?,
        i("pad", p.pad_left())?,
        i("slices per split", per_split)?,
    ];
    // SAFETY: conv1d_igemm_wgrad_partial(const unsigned short* xh, const unsigned short* dyh,
    // float* part, int B, int L, int cp, int kcp, int kp2, int cop, int np, int pad, int
    // slices_per_split); xh holds batch·len·cp and dyh batch·len·cop bf16 (written above);
    // part splits·np·kp2 floats, block (x, y, z) writing the 64 × 64 tile (x, y) of split z
    // whole; loads guarded by position, channel and kk; static shared memory only.
    unsafe { d.launch("conv1d_igemm", OP, geometry, &args)? };
    let args = [
        KArg::Ptr(part),
        KArg::Ptr(d.ptr_mut(b.dw)),
        i("splits", splits)?,
        i("c_in", p.c_in)?,
        i("c_out", p.c_out)?,
        i("kernel", p.kernel)?,
        i("cp", cp)?,
        i("np", np)?,
        i("kp2", kp2)?,
    ];
    let reduce = Geometry::linear(grid_stride_blocks(d, p.weight_len()), THREADS);
    // SAFETY: conv1d_igemm_wgrad_reduce(const float* part, float* dw, int splits, int cin,
    // int cout, int K, int cp, int np, int kp2); part as written above (co < c_out ≤ np,
    // k·cp + ci < kcp ≤ kp2), dw c_out·c_in·K floats (checked above).
    unsafe { d.launch("conv1d_igemm", "conv1d_igemm_wgrad_reduce", reduce, &args)? };
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
        let define = |name: &str| crate::kernels::kernel_define_number("conv1d_igemm", name);
        assert_eq!(define("IG_BM"), IG_BM);
        assert_eq!(define("IG_BN"), IG_BN);
        assert_eq!(define("IG_BK"), IG_BK);
        assert_eq!(define("IG_THREADS"), IG_THREADS as usize);
        assert_eq!(define("IG_WN"), IG_WN);
        assert_eq!(define("IG_WK"), IG_WK);
    }

    #[test]
    fn short_layers_split_their_k_and_long_ones_do_not() {
        // SeqNet batch 128 on 132 SMs: tower 1 (448 positions, 288 → 288, K 5) and tower 6
        // (14 positions, 456 → 512).
        let tower1 = ((128 * 448usize).div_ceil(IG_BM) * 5, 1440 / IG_BK);
        assert_eq!(fwd_splits(tower1.0, tower1.1, 132), (1, 45));
        let tower6 = ((128 * 14usize).div_ceil(IG_BM) * 8, 2304 / IG_BK);
        let (splits, per) = fwd_splits(tower6.0, tower6.1, 132);
        assert!(splits > 1 && tower6.0 * splits >= 396, "tower 6: {splits} splits of {per}");
        assert!(splits * per >= tower6.1 && (splits - 1) * per < tower6.1 && per >= MIN_SPLIT_SLICES);
        // Few slices never split below MIN_SPLIT_SLICES.
        assert_eq!(fwd_splits(1, 5, 132), (1, 5));
    }

    #[test]
    fn weight_gradient_splits_cover_the_positions_once() {
        for (batch, len, tiles, sms) in [(128, 448, 5 * 23, 132), (2, 37, 1, 132), (1, 9, 4, 1), (128, 14, 8 * 32, 132)]
        {
            let p = Conv1dParams { batch, c_in: 8, c_out: 64, len, kernel: 5, dilation: 1 };
            let (splits, per) = wgrad_splits(&p, tiles, sms);
            let slices = (batch * len).div_ceil(IG_WK);
            assert!(splits * per >= slices && (splits - 1) * per < slices, "{p:?}: {splits} × {per} for {slices}");
        }
    }

    #[test]
    fn seqnet_layers_are_eligible_and_denoisenet_layers_are_not() {
        let p = |c_in, c_out, len, kernel, dilation| Conv1dParams { batch: 128, c_in, c_out, len, kernel, dilation };
        assert!(eligible(&p(4, 288, 1344, 17, 1)), "the stem");
        assert!(eligible(&p(288, 323, 224, 5, 1)), "a tower");
        assert!(eligible(&p(512, 256, 7, 1, 1)), "the 1 × 1");
        assert!(!eligible(&p(15, 15, 60_000, 51, 8)), "DenoiseNet's: conv1d_mma");
        assert!(!eligible(&p(64, 64, 100, 3, 2)), "dilation 2");
    }
}
