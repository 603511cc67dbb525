//! The op table: every op, forward and backward, over one table of shapes (the models' real
//! ones and awkward ones), run on every implementation against the CPU specification — the
//! kernel emulator always (g++ needed; CHROMAX_REQUIRE_EMULATOR=1 makes its absence a
//! failure), CUDA when a device is usable ("skipped: no CUDA device" otherwise;
//! CHROMAX_REQUIRE_CUDA=1 fails instead).
//!
//! Outputs are poisoned with NaN before each call, so an element an implementation fails to
//! write shows. Each op has one tolerance, `|got − want| ≤ atol + rtol·|want|`, with its
//! reason beside it in [`Case::check`]. Rows marked `real` are real-sized layers that take
//! minutes in the emulator: they run on CUDA only.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::backend::unfused_conv1d_fwd_then;
use chromax::backend::{
    AdamParams, AdamStep, Backend, BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, BatchNormParams, Conv1dBwdInput,
    Conv1dBwdWeight, Conv1dFwd, Conv1dParams, DenoiseLoss, DenoiseLossParams, DropoutBwd, DropoutFwd, DropoutParams,
    Elementwise, ElementwiseOp, Epilogue, HeadLogits, HeadRows, MaxPoolBwd, MaxPoolFwd, MaxPoolParams, OneHot,
    OneHotParams, SparseHead, SparseHeadParams, ROC_BINS,
};
use chromax::nn::download_f32;
use common::{assert_close, cuda_or_skip, emulator_or_skip, say, Rng};

/// A tolerance and why it is what it is.
#[derive(Debug, Clone, Copy)]
struct Tol {
    atol: f64,
    rtol: f64,
}

const EXACT: Tol = Tol { atol: 0.0, rtol: 0.0 };

/// How the shifts of a one-hot row are drawn.
#[derive(Debug, Clone, Copy)]
enum Shifts {
    None,
    /// scBasset's ±3.
    Small,
    /// ±(len − 1), the largest allowed.
    Largest,
}

/// One op at one shape.
#[derive(Debug, Clone)]
enum Case {
    Conv(Conv1dParams),
    Elementwise(usize),
    Loss(DenoiseLossParams),
    Adam(usize),
    Head(SparseHeadParams, f64),
    Histogram(SparseHeadParams, f64),
    Pool(MaxPoolParams),
    OneHot(OneHotParams, Shifts),
    Dropout(usize, DropoutParams),
    BatchNorm(BatchNormParams),
}

struct Row {
    case: Case,
    /// A real-sized layer: CUDA only (the emulator would take minutes).
    real: bool,
    why: &'static str,
}

fn row(case: Case, why: &'static str) -> Row {
    Row { case, real: false, why }
}

fn real(case: Case, why: &'static str) -> Row {
    Row { case, real: true, why }
}

fn head(batch: usize, cells: usize, dim: usize) -> SparseHeadParams {
    SparseHeadParams { batch, cells, dim }
}

fn table() -> Vec<Row> {
    let loss = |batch, len, pad, w: [f32; 3]| {
        Case::Loss(DenoiseLossParams { batch, len, pad, mse_weight: w[0], pearson_weight: w[1], bce_weight: w[2] })
    };
    let pool = |batch, channels, len, pool| Case::Pool(MaxPoolParams { batch, channels, len, pool });
    let bn = |batch, channels, len| Case::BatchNorm(BatchNormParams { batch, channels, len, eps: 1e-3, momentum: 0.9 });
    let dropout = |n, rate, seed| Case::Dropout(n, DropoutParams { rate, seed });
    let one_hot = |batch, len, s| Case::OneHot(OneHotParams { batch, len }, s);
    let convs = common::op_table_convs().into_iter().map(|(p, real, why)| Row { case: Case::Conv(p), real, why });
    convs
        .chain([
            real(Case::Elementwise(2 * 15 * 60_000), "one real interval's activations"),
            real(Case::Elementwise(3_000_001), "more elements than one grid-stride round"),
            row(Case::Elementwise(1), "one element"),
            row(Case::Elementwise(257), "a block and one"),
            row(Case::Elementwise(40_000), "several grid-stride rounds on 2 SMs"),
            real(loss(2, 60_000, 5_000, [0.0005, 1.0, 1.0]), "two real intervals"),
            real(loss(64, 6_000, 500, [0.0005, 1.0, 1.0]), "a full batch of shorter intervals"),
            row(loss(2, 6_000, 500, [0.0005, 1.0, 1.0]), "AtacWorks' weights"),
            row(loss(1, 3, 1, [1.0, 1.0, 1.0]), "one scored base"),
            row(loss(3, 1001, 0, [0.3, 2.0, 0.5]), "no padding, other weights"),
            real(Case::Adam(1_000_003), "more parameters than a grid-stride round"),
            row(Case::Adam(219_706), "DenoiseNet's parameter count"),
            row(Case::Adam(1), "one parameter"),
            row(Case::Adam(257), "a block and one"),
            real(Case::Head(head(128, 300_001, 32), 0.03), "scBasset's batch over 300k cells"),
            real(Case::Head(head(128, 10_000, 32), 0.03), "scBasset's batch and bottleneck"),
            row(Case::Head(head(128, 1, 32), 0.5), "one cell"),
            row(Case::Head(head(5, 300, 32), 0.1), "several cell tiles, a ragged last one"),
            row(Case::Head(head(33, 129, 7), 0.1), "row tiles with a tail, dim below the maximum"),
            row(Case::Head(head(20, 260, 64), 0.1), "dim at the kernel's maximum"),
            real(Case::Histogram(head(128, 300_001, 32), 0.03), "scBasset's batch over 300k cells"),
            real(Case::Histogram(head(128, 10_000, 32), 0.03), "scBasset's batch and bottleneck"),
            row(Case::Histogram(head(20, 600, 32), 0.1), "row tiles with a tail (20 = 2·8 + 4), cell splits"),
            row(Case::Histogram(head(13, 257, 64), 0.2), "ragged cell tiles, dim at the maximum"),
            row(Case::Histogram(head(1, 1, 1), 0.5), "one row, one cell"),
            real(pool(128, 288, 1344, 3), "SeqNet's stem pool on a full batch"),
            real(pool(128, 323, 448, 2), "a tower pool on a full batch"),
            row(pool(2, 3, 1344, 3), "the stem pool's length"),
            row(pool(1, 5, 449, 2), "odd length: Keras padding on the right"),
            row(pool(3, 2, 7, 3), "window larger than the remainder"),
            row(pool(1, 1, 1, 2), "length 1"),
            real(one_hot(128, 1344, Shifts::Small), "scBasset's batch with ±3 shifts"),
            row(one_hot(6, 1344, Shifts::None), "scBasset's length, no shift"),
            row(one_hot(6, 1344, Shifts::Largest), "the largest shifts both ways"),
            row(one_hot(6, 7, Shifts::Small), "a short sequence most of which a shift uncovers"),
            real(dropout(128 * 288 * 448, 0.2, 7), "a tower activation of SeqNet's batch"),
            row(dropout(1, 0.5, 1), "one element"),
            row(dropout(257, 0.1, 2), "a block and one"),
            row(dropout(40_000, 0.3, u64::MAX), "several grid-stride rounds, the largest seed"),
            row(dropout(70_001, 0.0, 0), "rate 0 keeps everything"),
            row(dropout(1001, 0.9, 3), "rate 0.9"),
            real(bn(128, 288, 448), "a tower block's activations"),
            row(bn(128, 32, 1), "the bottleneck's 32 units"),
            row(bn(4, 3, 300), "a few channels"),
            row(bn(1, 2, 7), "one batch item"),
        ])
        .collect()
}

fn up<B: Backend<Elem = f32>>(b: &B, v: &[f32]) -> B::Buf {
    b.upload(v).expect("upload")
}

fn down<B: Backend<Elem = f32>>(b: &B, buf: &B::Buf) -> Vec<f32> {
    download_f32(b, buf).expect("download")
}

/// A buffer of NaN, so an element the op fails to write shows.
fn nan<B: Backend<Elem = f32>>(b: &B, len: usize) -> B::Buf {
    up(b, &vec![f32::NAN; len])
}

/// Random sorted CSR rows with the given density; with more than one row, the first is
/// empty and the last full.
fn csr_rows(rng: &mut Rng, batch: usize, cells: usize, density: f64) -> (Vec<u32>, Vec<u32>) {
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for i in 0..batch {
        let fill = match i {
            0 if batch > 1 => 0.0,
            _ if batch > 1 && i == batch - 1 => 1.0,
            _ => density,
        };
        indices.extend((0..cells as u32).filter(|_| rng.unit() < fill));
        indptr.push(indices.len() as u32);
    }
    (indptr, indices)
}

impl Case {
    /// Runs the op on `imp` and on the CPU specification and compares every output.
    fn check<B: Backend<Elem = f32>>(&self, imp: &B, seed: u64) {
        let cpu = CpuBackend::new();
        let mut rng = Rng::new(seed);
        match self {
            Case::Conv(p) => {
                let x = rng.vec_f32(p.input_len(), -1.0, 1.0);
                let w = rng.vec_f32(p.weight_len(), -0.2, 0.2);
                let bias = rng.vec_f32(p.c_out, -1.0, 1.0);
                let dy = rng.vec_f32(p.output_len(), -1.0, 1.0);
                let (gx, gw, gb, gdy) = (up(imp, &x), up(imp, &w), up(imp, &bias), up(imp, &dy));
                // Forward and input gradient: f32 sums of ≤ c_in·K = 765 products of O(0.2)
                // terms in different orders: ~sqrt(765)·2⁻²⁴ of the terms, with room to spare.
                let sum = Tol { atol: 1e-4, rtol: 1e-4 };
                for with_bias in [true, false] {
                    let mut want = vec![0f32; p.output_len()];
                    let bias = with_bias.then_some(&bias);
                    cpu.conv1d_fwd(p, Conv1dFwd { x: &x, w: &w, bias, y: &mut want }).expect("cpu");
                    let mut got = nan(imp, p.output_len());
                    let bias = with_bias.then_some(&gb);
                    imp.conv1d_fwd(p, Conv1dFwd { x: &gx, w: &gw, bias, y: &mut got }).expect("fwd");
                    close(&format!("conv1d_fwd bias={with_bias}"), &down(imp, &got), &want, sum);
                }
                // With the residual blocks' epilogues: ReLU, and the residual add then ReLU.
                let residual = rng.vec_f32(p.output_len(), -1.0, 1.0);
                let gr = up(imp, &residual);
                for add in [false, true] {
                    let mut want = vec![0f32; p.output_len()];
                    let e = if add { Epilogue::AddRelu(&residual) } else { Epilogue::Relu };
                    let bufs = Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut want };
                    cpu.conv1d_fwd_then(p, bufs, e).expect("cpu");
                    let mut got = nan(imp, p.output_len());
                    let e = if add { Epilogue::AddRelu(&gr) } else { Epilogue::Relu };
                    let bufs = Conv1dFwd { x: &gx, w: &gw, bias: Some(&gb), y: &mut got };
                    imp.conv1d_fwd_then(p, bufs, e).expect("fwd_then");
                    let got = down(imp, &got);
                    close(&format!("conv1d_fwd_then add={add}"), &got, &want, sum);
                    if !add {
                        continue;
                    }
                    // Fused or through the element-wise ops: the same operations on one device
                    // (the residual's path holds the ReLU's).
                    let mut unfused = nan(imp, p.output_len());
                    let e = if add { Epilogue::AddRelu(&gr) } else { Epilogue::Relu };
                    let bufs = Conv1dFwd { x: &gx, w: &gw, bias: Some(&gb), y: &mut unfused };
                    unfused_conv1d_fwd_then(imp, p, bufs, e).expect("unfused");
                    close(&format!("conv1d_fwd_then add={add}, fused vs not"), &got, &down(imp, &unfused), EXACT);
                }
                let mut want = vec![0f32; p.input_len()];
                cpu.conv1d_bwd_input(p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut want }).expect("cpu");
                let mut got = nan(imp, p.input_len());
                imp.conv1d_bwd_input(p, Conv1dBwdInput { dy: &gdy, w: &gw, dx: &mut got }).expect("bwd_input");
                close("conv1d_bwd_input", &down(imp, &got), &want, sum);
                // Weight gradient: sums over batch·len terms of O(1) with random signs, values of
                // O(sqrt(batch·len)); partial sums in other orders: 1e-5 of that scale.
                let wsum = Tol { atol: 4e-5 * ((p.batch * p.len) as f64).sqrt().max(1.0), rtol: 1e-4 };
                let (mut want_w, mut want_b) = (vec![0f32; p.weight_len()], vec![0f32; p.c_out]);
                let bufs = Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut want_w, dbias: Some(&mut want_b) };
                cpu.conv1d_bwd_weight(p, bufs).expect("cpu");
                let (mut got_w, mut got_b) = (nan(imp, p.weight_len()), nan(imp, p.c_out));
                let bufs = Conv1dBwdWeight { x: &gx, dy: &gdy, dw: &mut got_w, dbias: Some(&mut got_b) };
                imp.conv1d_bwd_weight(p, bufs).expect("bwd_weight");
                close("conv1d_bwd_weight dw", &down(imp, &got_w), &want_w, wsum);
                close("conv1d_bwd_weight dbias", &down(imp, &got_b), &want_b, wsum);
            }
            Case::Elementwise(n) => {
                let n = *n;
                let (x, b) = (rng.vec_f32(n, -30.0, 30.0), rng.vec_f32(n, -1.0, 1.0));
                // The backward ops read forward outputs: feed them what the forward gives.
                let mut relu_y = vec![0f32; n];
                cpu.elementwise(ElementwiseOp::ReluFwd, Elementwise { a: &x, b: None, out: &mut relu_y }).expect("cpu");
                let mut sig_y = vec![0f32; n];
                cpu.elementwise(ElementwiseOp::SigmoidFwd, Elementwise { a: &x, b: None, out: &mut sig_y })
                    .expect("cpu");
                for op in ElementwiseOp::ALL {
                    let a = match op {
                        ElementwiseOp::ReluBwd => &relu_y,
                        ElementwiseOp::SigmoidBwd => &sig_y,
                        _ => &x,
                    };
                    let second = (op.arity() == 2).then_some(&b);
                    let mut want = vec![0f32; n];
                    cpu.elementwise(op, Elementwise { a, b: second, out: &mut want }).expect("cpu");
                    let (ga, gb) = (up(imp, a), up(imp, &b));
                    let mut got = nan(imp, n);
                    let second = (op.arity() == 2).then_some(&gb);
                    imp.elementwise(op, Elementwise { a: &ga, b: second, out: &mut got }).expect("elementwise");
                    let tol = match op {
                        // Comparisons and one f32 add: exact.
                        ElementwiseOp::ReluFwd | ElementwiseOp::ReluBwd | ElementwiseOp::Add => EXACT,
                        // expf differs by a couple of ulps between libm and CUDA's expf.
                        ElementwiseOp::SigmoidFwd => Tol { atol: 1e-7, rtol: 1e-6 },
                        // Two f32 products, possibly fused into an FMA: an ulp or two.
                        ElementwiseOp::SigmoidBwd => Tol { atol: 1e-8, rtol: 1e-6 },
                        // expf and an FMA or two: a few ulps of values up to |x| = 30.
                        ElementwiseOp::GeluFwd | ElementwiseOp::GeluBwd => Tol { atol: 1e-6, rtol: 1e-5 },
                    };
                    close(op.name(), &down(imp, &got), &want, tol);
                }
            }
            Case::Loss(p) => {
                let n = p.batch * p.len;
                let clean = rng.vec_f32(n, 0.0, 20.0);
                let reg: Vec<f32> = clean.iter().map(|&c| 0.5 * c + rng.uniform(0.0, 5.0) as f32).collect();
                let logits = rng.vec_f32(n, -8.0, 8.0);
                let mask = rng.mask_f32(n, 0.1);
                let (mut dr, mut dc) = (vec![0f32; n], vec![0f32; n]);
                let bufs = DenoiseLoss {
                    reg: &reg,
                    clean: &clean,
                    cls_logits: &logits,
                    mask: &mask,
                    d_reg: &mut dr,
                    d_cls: &mut dc,
                };
                let want = cpu.denoise_loss(p, bufs).expect("cpu");
                let (gr, gc, gl, gm) = (up(imp, &reg), up(imp, &clean), up(imp, &logits), up(imp, &mask));
                let (mut gdr, mut gdc) = (nan(imp, n), nan(imp, n));
                let bufs =
                    DenoiseLoss { reg: &gr, clean: &gc, cls_logits: &gl, mask: &gm, d_reg: &mut gdr, d_cls: &mut gdc };
                let got = imp.denoise_loss(p, bufs).expect("loss");
                // The loss: both sum in f64 from the same f32 inputs in different orders.
                let value = Tol { atol: 1e-10, rtol: 1e-9 };
                for (name, g, w) in [
                    ("total", got.total, want.total),
                    ("mse", got.mse, want.mse),
                    ("r", got.pearson, want.pearson),
                    ("bce", got.bce, want.bce),
                ] {
                    close(&format!("denoise_loss {name}"), &[g], &[w], value);
                }
                // Gradients: f64, rounded to f32 once; exp/log1p differ by ulps; values ~1/N.
                let grad = Tol { atol: 1e-6 / (p.batch * p.cropped_len()) as f64, rtol: 1e-5 };
                close("denoise_loss d_reg", &down(imp, &gdr), &dr, grad);
                close("denoise_loss d_cls", &down(imp, &gdc), &dc, grad);
            }
            Case::Adam(n) => {
                let n = *n;
                let mut theta = rng.vec_f32(n, -1.0, 1.0);
                let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
                let (mut gt, mut gm, mut gv) = (up(imp, &theta), up(imp, &m), up(imp, &v));
                for step in 1..=3 {
                    let grad = rng.vec_f32(n, -1.0, 1.0);
                    let p = AdamParams { weight_decay: 1e-3, ..AdamParams::new(1e-2, step) };
                    cpu.adam_step(&p, AdamStep { param: &mut theta, grad: &grad, m: &mut m, v: &mut v }).expect("cpu");
                    let g = up(imp, &grad);
                    imp.adam_step(&p, AdamStep { param: &mut gt, grad: &g, m: &mut gm, v: &mut gv }).expect("adam");
                }
                // The same f32 formula; a GPU may fuse multiply-adds: an ulp or two per step.
                close("adam θ", &down(imp, &gt), &theta, Tol { atol: 1e-7, rtol: 1e-6 });
                close("adam m", &down(imp, &gm), &m, Tol { atol: 1e-8, rtol: 1e-5 });
                close("adam v", &down(imp, &gv), &v, Tol { atol: 1e-10, rtol: 1e-5 });
            }
            Case::Head(p, density) => {
                let (batch, cells, dim) = (p.batch, p.cells, p.dim);
                let z = rng.vec_f32(batch * dim, -1.0, 1.0);
                let w = rng.vec_f32(cells * dim, -0.5, 0.5);
                let b = rng.vec_f32(cells, -3.0, 0.0);
                let (indptr, indices) = csr_rows(&mut rng, batch, cells, *density);
                let (mut dz, mut dw, mut db) = (vec![0f32; batch * dim], vec![0f32; cells * dim], vec![0f32; cells]);
                let logits = HeadLogits { z: &z, w: &w, bias: &b, rows: &HeadRows::host(&indptr, &indices) };
                let want =
                    cpu.sparse_head(p, SparseHead { logits, dz: &mut dz, dw: &mut dw, dbias: &mut db }).expect("cpu");
                let (gz, gw, gb) = (up(imp, &z), up(imp, &w), up(imp, &b));
                let (mut gdz, mut gdw, mut gdb) = (nan(imp, batch * dim), nan(imp, cells * dim), nan(imp, cells));
                // The rows as training passes them: uploaded once (Backend::upload_rows).
                let on_device = imp.upload_rows(&indptr, &indices).expect("upload rows");
                assert!(on_device.is_some(), "a device backend keeps the rows on the device");
                let rows = HeadRows::with_device(&indptr, &indices, &on_device);
                let logits = HeadLogits { z: &gz, w: &gw, bias: &gb, rows: &rows };
                let got = imp
                    .sparse_head(p, SparseHead { logits, dz: &mut gdz, dw: &mut gdw, dbias: &mut gdb })
                    .expect("sparse_head");
                // Logits summed in f32 (≤ 64 terms) against the CPU's f64: relative 1e-6 on the
                // loss; gradients are means over N = batch·cells of terms of O(1).
                close("sparse_head loss", &[got], &[want], Tol { atol: 1e-9, rtol: 1e-6 });
                let per = 1.0 / (batch * cells) as f64;
                close("sparse_head dz", &down(imp, &gdz), &dz, Tol { atol: 1e-4 * per * cells as f64, rtol: 1e-4 });
                close("sparse_head dw", &down(imp, &gdw), &dw, Tol { atol: 1e-5 * per * batch as f64, rtol: 1e-4 });
                close("sparse_head db", &down(imp, &gdb), &db, Tol { atol: 1e-5 * per * batch as f64, rtol: 1e-4 });
            }
            Case::Histogram(p, density) => {
                let (batch, cells, dim) = (p.batch, p.cells, p.dim);
                // Logits spread over ±20, so the outer bins and the clamping are exercised.
                let z = rng.vec_f32(batch * dim, -2.0, 2.0);
                let w = rng.vec_f32(cells * dim, -2.0, 2.0);
                let b = rng.vec_f32(cells, -4.0, 2.0);
                let (indptr, indices) = csr_rows(&mut rng, batch, cells, *density);
                let (gz, gw, gb) = (up(imp, &z), up(imp, &w), up(imp, &b));
                let on_device = imp.upload_rows(&indptr, &indices).expect("upload rows");
                for per_row in [false, true] {
                    let logits = HeadLogits { z: &z, w: &w, bias: &b, rows: &HeadRows::host(&indptr, &indices) };
                    let want = cpu.head_roc_histogram(p, logits, per_row).expect("cpu");
                    // Both ways of passing rows: copied by the op, and uploaded beforehand.
                    let rows = if per_row {
                        HeadRows::with_device(&indptr, &indices, &on_device)
                    } else {
                        HeadRows::host(&indptr, &indices)
                    };
                    let logits = HeadLogits { z: &gz, w: &gw, bias: &gb, rows: &rows };
                    let got = imp.head_roc_histogram(p, logits, per_row).expect("histogram");
                    histogram_close(&format!("head_roc_histogram per_row={per_row}"), &got, &want);
                }
            }
            Case::Pool(p) => {
                let x = rng.vec_f32(p.input_len(), -1.0, 1.0);
                let dy = rng.vec_f32(p.output_len(), -1.0, 1.0);
                let (mut y, mut dx) = (vec![0f32; p.output_len()], vec![0f32; p.input_len()]);
                cpu.maxpool_fwd(p, MaxPoolFwd { x: &x, y: &mut y }).expect("cpu");
                cpu.maxpool_bwd(p, MaxPoolBwd { x: &x, dy: &dy, dx: &mut dx }).expect("cpu");
                let (gx, gdy) = (up(imp, &x), up(imp, &dy));
                let (mut gy, mut gdx) = (nan(imp, p.output_len()), nan(imp, p.input_len()));
                imp.maxpool_fwd(p, MaxPoolFwd { x: &gx, y: &mut gy }).expect("maxpool_fwd");
                imp.maxpool_bwd(p, MaxPoolBwd { x: &gx, dy: &gdy, dx: &mut gdx }).expect("maxpool_bwd");
                // A selection, not arithmetic: exact.
                close("maxpool_fwd", &down(imp, &gy), &y, EXACT);
                close("maxpool_bwd", &down(imp, &gdx), &dx, EXACT);
            }
            Case::OneHot(p, shifts) => {
                let (batch, len) = (p.batch, p.len);
                let codes: Vec<u8> = (0..batch * len).map(|_| (rng.unit() * 5.0) as u8).collect();
                let reverse: Vec<bool> = (0..batch).map(|b| b % 3 == 1 || rng.unit() < 0.3).collect();
                let shift: Vec<i32> = (0..batch)
                    .map(|b| match shifts {
                        Shifts::None => 0,
                        Shifts::Small => (rng.unit() * 7.0) as i32 - 3,
                        Shifts::Largest => [len as i32 - 1, 1 - len as i32, 0][b % 3],
                    })
                    .map(|s| s.clamp(1 - len as i32, len as i32 - 1))
                    .collect();
                let mut want = vec![0f32; batch * 4 * len];
                let bufs = OneHot { codes: &codes, reverse: &reverse, shift: &shift, out: &mut want };
                cpu.one_hot(p, bufs).expect("cpu");
                let mut got = nan(imp, batch * 4 * len);
                imp.one_hot(p, OneHot { codes: &codes, reverse: &reverse, shift: &shift, out: &mut got })
                    .expect("one_hot");
                // Exact: 0, 0.25 and 1 only.
                close("one_hot", &down(imp, &got), &want, EXACT);
            }
            Case::Dropout(n, p) => {
                let x = rng.vec_f32(*n, -3.0, 3.0);
                let (mut y, mut dx) = (vec![0f32; *n], vec![0f32; *n]);
                cpu.dropout_fwd(p, DropoutFwd { x: &x, y: &mut y }).expect("cpu");
                cpu.dropout_bwd(p, DropoutBwd { dy: &x, dx: &mut dx }).expect("cpu");
                let gx = up(imp, &x);
                let (mut gy, mut gdx) = (nan(imp, *n), nan(imp, *n));
                imp.dropout_fwd(p, DropoutFwd { x: &gx, y: &mut gy }).expect("dropout_fwd");
                imp.dropout_bwd(p, DropoutBwd { dy: &gx, dx: &mut gdx }).expect("dropout_bwd");
                // The same mask from the same integer hash and the same f32 scale: bit for bit.
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                assert!(bits(&down(imp, &gy)) == bits(&y), "dropout_fwd: masks or scales differ");
                assert!(bits(&down(imp, &gdx)) == bits(&dx), "dropout_bwd: masks or scales differ");
            }
            Case::BatchNorm(p) => {
                let (n, c) = (p.batch * p.channels * p.len, p.channels);
                let (x, dy) = (rng.vec_f32(n, -2.0, 5.0), rng.vec_f32(n, -1.0, 1.0));
                let (gamma, beta) = (rng.vec_f32(c, 0.5, 1.5), rng.vec_f32(c, -0.5, 0.5));
                let (rm0, rv0) = (rng.vec_f32(c, -0.1, 0.1), rng.vec_f32(c, 0.9, 1.1));
                let (mut y, mut mean, mut invstd) = (vec![0f32; n], vec![0f32; c], vec![0f32; c]);
                let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
                let bufs = BatchNormFwdTrain {
                    x: &x,
                    gamma: &gamma,
                    beta: &beta,
                    y: &mut y,
                    mean: &mut mean,
                    invstd: &mut invstd,
                    running_mean: &mut rm,
                    running_var: &mut rv,
                };
                cpu.batchnorm_fwd_train(p, bufs).expect("cpu");
                let mut yi = vec![0f32; n];
                let bufs = BatchNormFwdInfer {
                    x: &x,
                    gamma: &gamma,
                    beta: &beta,
                    running_mean: &rm,
                    running_var: &rv,
                    y: &mut yi,
                };
                cpu.batchnorm_fwd_infer(p, bufs).expect("cpu");
                let (mut dx, mut dg, mut db) = (vec![0f32; n], vec![0f32; c], vec![0f32; c]);
                let bufs = BatchNormBwd {
                    x: &x,
                    dy: &dy,
                    gamma: &gamma,
                    mean: &mean,
                    invstd: &invstd,
                    dx: &mut dx,
                    dgamma: &mut dg,
                    dbeta: &mut db,
                };
                cpu.batchnorm_bwd(p, bufs).expect("cpu");

                let (gx, gdy, gg, gbeta) = (up(imp, &x), up(imp, &dy), up(imp, &gamma), up(imp, &beta));
                let (mut gy, mut gmean, mut ginv) = (nan(imp, n), nan(imp, c), nan(imp, c));
                let (mut grm, mut grv) = (up(imp, &rm0), up(imp, &rv0));
                let bufs = BatchNormFwdTrain {
                    x: &gx,
                    gamma: &gg,
                    beta: &gbeta,
                    y: &mut gy,
                    mean: &mut gmean,
                    invstd: &mut ginv,
                    running_mean: &mut grm,
                    running_var: &mut grv,
                };
                imp.batchnorm_fwd_train(p, bufs).expect("batchnorm_fwd_train");
                let mut gyi = nan(imp, n);
                let bufs = BatchNormFwdInfer {
                    x: &gx,
                    gamma: &gg,
                    beta: &gbeta,
                    running_mean: &grm,
                    running_var: &grv,
                    y: &mut gyi,
                };
                imp.batchnorm_fwd_infer(p, bufs).expect("batchnorm_fwd_infer");
                let (mut gdx, mut gdg, mut gdb) = (nan(imp, n), nan(imp, c), nan(imp, c));
                let bufs = BatchNormBwd {
                    x: &gx,
                    dy: &gdy,
                    gamma: &gg,
                    mean: &gmean,
                    invstd: &ginv,
                    dx: &mut gdx,
                    dgamma: &mut gdg,
                    dbeta: &mut gdb,
                };
                imp.batchnorm_bwd(p, bufs).expect("batchnorm_bwd");
                // Sums in f64 in different orders, rounded once to f32: an ulp or two of the
                // normalised values; dγ and dβ sum batch·len terms of O(1).
                let norm = Tol { atol: 1e-6, rtol: 1e-5 };
                let sums = Tol { atol: 1e-4, rtol: 1e-4 };
                for (what, got, want, tol) in [
                    ("y", &gy, &y, norm),
                    ("mean", &gmean, &mean, norm),
                    ("invstd", &ginv, &invstd, norm),
                    ("running_mean", &grm, &rm, norm),
                    ("running_var", &grv, &rv, norm),
                    ("y (inference)", &gyi, &yi, norm),
                    ("dx", &gdx, &dx, Tol { atol: 1e-6, rtol: 1e-4 }),
                    ("dgamma", &gdg, &dg, sums),
                    ("dbeta", &gdb, &db, sums),
                ] {
                    close(&format!("batchnorm {what}"), &down(imp, got), want, tol);
                }
            }
        }
    }
}

fn close<A: Copy + Into<f64>, B: Copy + Into<f64>>(what: &str, got: &[A], want: &[B], tol: Tol) {
    assert_close(what, got, want, tol.atol, tol.rtol);
}

/// Both sides sum each logit in f64 in one order and round it once, so the bins agree
/// exactly; a logit on a bin edge may still land one bin over where a device's f64 differs
/// in the last ulp: the earth mover's distance (in bins) may be at most 0.1 % of the logits,
/// and every block must hold exactly as many logits.
fn histogram_close(what: &str, got: &[u64], want: &[u64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    let total: u64 = want.iter().sum();
    let mut emd = 0u64;
    for (k, (g, c)) in got.chunks(ROC_BINS).zip(want.chunks(ROC_BINS)).enumerate() {
        assert_eq!(g.iter().sum::<u64>(), c.iter().sum::<u64>(), "{what}: total of block {k}");
        let mut carry = 0i64;
        for (&gv, &cv) in g.iter().zip(c) {
            carry += gv as i64 - cv as i64;
            emd += carry.unsigned_abs();
        }
    }
    let first: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, c))| g != c)
        .take(6)
        .map(|(k, (g, c))| format!("[{k}] got {g} want {c}"))
        .collect();
    assert!(emd * 1000 <= total, "{what}: {emd} bin moves among {total} logits: {}", first.join("; "));
    if emd > 0 {
        say(&format!("{what}: {emd} bin moves among {total} logits"));
    }
}

/// Every row the implementation runs, each with its own seed; panics at the first mismatch
/// with the row's shape and reason.
fn run_table<B: Backend<Elem = f32>>(imp: &B, include_real: bool) {
    let name = imp.describe();
    let mut ran = 0;
    for (i, row) in table().iter().enumerate() {
        if row.real && !include_real {
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| row.case.check(imp, 1000 + i as u64)));
        if let Err(e) = outcome {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{name}, row {i} ({}: {:?}): {}", row.why, row.case, msg.unwrap_or_default());
        }
        ran += 1;
    }
    say(&format!("{name}: {ran} rows of the op table match the CPU specification"));
}

#[test]
fn the_kernel_emulator_matches_the_cpu_specification() {
    // 132 SMs as on an H200, and 1, which makes every op that splits its work by the device's
    // size take its other branch (one weight-gradient chunk per batch item, one head block).
    for sms in [132, 1] {
        let Some(emu) = emulator_or_skip("the_kernel_emulator_matches_the_cpu_specification", sms) else { return };
        run_table(&emu, false);
    }
}

#[test]
fn cuda_matches_the_cpu_specification() {
    let Some(gpu) = cuda_or_skip("cuda_matches_the_cpu_specification") else { return };
    run_table(&gpu, true);
}

/// The checks are shared, so every implementation refuses what the CPU refuses, with the
/// same message naming the op and the buffer.
fn bad_shapes<B: Backend<Elem = f32>>(imp: &B) -> Vec<String> {
    let p = Conv1dParams { batch: 1, c_in: 2, c_out: 3, len: 10, kernel: 3, dilation: 1 };
    let (x, w, mut y) = (up(imp, &[0.0; 20]), up(imp, &[0.0; 17]), nan(imp, 30));
    let mut errors = vec![imp.conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: None, y: &mut y }).expect_err("w short")];
    let mut out = nan(imp, 20);
    errors.push(imp.elementwise(ElementwiseOp::Add, Elementwise { a: &x, b: None, out: &mut out }).expect_err("arity"));
    let mut short = nan(imp, 19);
    errors.push(
        imp.elementwise(ElementwiseOp::ReluBwd, Elementwise { a: &x, b: Some(&x), out: &mut short })
            .expect_err("short dx"),
    );
    let hp = head(2, 3, 2);
    let (z, wh, b) = (up(imp, &[0.0; 4]), up(imp, &[0.0; 6]), up(imp, &[0.0; 3]));
    let rows = HeadRows::host(&[0, 2, 3], &[2, 0, 1]);
    let logits = HeadLogits { z: &z, w: &wh, bias: &b, rows: &rows };
    errors.push(imp.head_roc_histogram(&hp, logits, false).expect_err("unsorted row"));
    let op = OneHotParams { batch: 1, len: 4 };
    let mut oh = nan(imp, 16);
    let bufs = OneHot { codes: &[0, 1, 2, 3], reverse: &[false], shift: &[4], out: &mut oh };
    errors.push(imp.one_hot(&op, bufs).expect_err("shift 4 of a length 4"));
    let bp = BatchNormParams { batch: 1, channels: 2, len: 3, eps: 1e-3, momentum: 0.9 };
    let (bx, g2, g1) = (up(imp, &[0.0; 6]), up(imp, &[1.0; 2]), up(imp, &[0.0; 1]));
    let (mut by, mut bm, mut bs, mut brm, mut brv) = (nan(imp, 6), nan(imp, 2), nan(imp, 2), nan(imp, 2), nan(imp, 2));
    let bufs = BatchNormFwdTrain {
        x: &bx,
        gamma: &g2,
        beta: &g1,
        y: &mut by,
        mean: &mut bm,
        invstd: &mut bs,
        running_mean: &mut brm,
        running_var: &mut brv,
    };
    errors.push(imp.batchnorm_fwd_train(&bp, bufs).expect_err("beta short"));
    errors.into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn every_implementation_refuses_bad_shapes_as_the_cpu_does() {
    let cpu = bad_shapes(&CpuBackend::new());
    for (got, needles) in cpu.iter().zip([
        ["conv1d_fwd", "'w'"],
        ["add_fwd", "takes 2 input(s): a, b"],
        ["relu_bwd", "'dx'"],
        ["head_roc_histogram", "row 0"],
        ["one_hot", "shift 4"],
        ["batchnorm_fwd_train", "'beta'"],
    ]) {
        assert!(needles.iter().all(|n| got.contains(n)), "{got} should name {needles:?}");
    }
    if let Some(emu) = emulator_or_skip("every_implementation_refuses_bad_shapes_as_the_cpu_does", 2) {
        assert_eq!(bad_shapes(&emu), cpu);
    }
    if let Some(gpu) = cuda_or_skip("every_implementation_refuses_bad_shapes_as_the_cpu_does") {
        assert_eq!(bad_shapes(&gpu), cpu);
    }
}

#[test]
fn the_table_covers_every_op_with_emulated_rows() {
    // A new op must get rows here: each kind of case appears, and each has emulated rows.
    let rows = table();
    let kinds = |emulated: bool| -> std::collections::BTreeSet<String> {
        rows.iter()
            .filter(|r| !emulated || !r.real)
            .map(|r| format!("{:?}", r.case).split('(').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(kinds(false).len(), 10, "{:?}", kinds(false));
    assert_eq!(kinds(true), kinds(false));
}
