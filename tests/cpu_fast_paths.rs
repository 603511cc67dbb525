//! The CPU backend's fast paths against its reference loops (`cpu::spec`, the im2col
//! convolution): op by op on every instruction set this machine has, including tails and the
//! shapes of both models, and whole models on `CpuBackend::new()` against `CpuBackend::spec()`.

mod common;

use chromax::backend::cpu::direct::ConvShape;
use chromax::backend::cpu::{self, direct, spec, CpuBackend};
use chromax::backend::{
    Backend, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, DenoiseLossParams, Elementwise, ElementwiseOp,
    Epilogue,
};
use chromax::denoise::train::forward_backward;
use chromax::models::{DenoiseConfig, DenoiseNet, SeqBatch, SeqConfig, SeqNet};
use chromax::nn::Module;
use common::Rng;

/// (batch, c_in, c_out, len, kernel, dilation): DenoiseNet's layers (both configurations),
/// lengths that end mid-tile and mid-chunk, one output channel, and every tile height.
const SHAPES: [(usize, usize, usize, usize, usize, usize); 12] = [
    (2, 15, 15, 3000, 51, 8),
    (1, 1, 15, 2049, 51, 8),
    (2, 15, 1, 1500, 1, 1),
    (1, 15, 15, 700, 1, 1),
    (2, 8, 8, 1025, 21, 4),
    (1, 1, 8, 300, 21, 4),
    (3, 7, 9, 1000, 5, 3),
    (1, 3, 13, 259, 7, 2),
    (1, 4, 32, 1111, 3, 1),
    (2, 5, 6, 256, 51, 8), // shorter than the receptive field (401)
    (1, 2, 11, 4100, 4, 5),
    (1, 6, 1, 333, 2, 1),
];

/// Shapes the batch-wide GEMM path takes where the CPU has AVX-512 (more than 32 output
/// channels, or rows shorter than 256): SeqNet's stem, tower, final and dense layers, its
/// head, and odd sizes that end mid-tile.
const GEMM_SHAPES: [(usize, usize, usize, usize, usize, usize); 9] = [
    (6, 288, 323, 224, 5, 1),
    (2, 4, 288, 300, 17, 1),
    (3, 288, 323, 56, 5, 1),
    (5, 456, 512, 14, 5, 1),
    (4, 512, 256, 7, 1, 1),
    (33, 1792, 32, 1, 1, 1),
    (7, 32, 1000, 1, 1, 1),
    (2, 37, 50, 13, 3, 2),
    (1, 15, 15, 100, 51, 8),
];

fn data(p: &Conv1dParams, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    (
        rng.vec_f32(p.input_len(), -1.0, 1.0),
        rng.vec_f32(p.weight_len(), -0.2, 0.2),
        rng.vec_f32(p.c_out, -1.0, 1.0),
        rng.vec_f32(p.output_len(), -1.0, 1.0),
    )
}

#[test]
fn forward_equals_the_reference_on_every_instruction_set() {
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in SHAPES.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        let (x, w, bias, _) = data(&p, seed as u64);
        let mut want = vec![f32::NAN; p.output_len()];
        spec::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut want }).expect("valid shapes");
        for isa in direct::available() {
            let mut got = vec![f32::NAN; p.output_len()];
            direct::conv1d_f32_on(isa, &ConvShape::forward(&p), &x, &w, Some(&bias), &mut got, None);
            // Both sum ≤ 765 f32 products of magnitude ≤ 0.2 in different orders.
            common::assert_close(&format!("{isa:?} {p:?}"), &got, &want, 2e-5, 1e-5);
            let mut no_bias = vec![f32::NAN; p.output_len()];
            direct::conv1d_f32_on(isa, &ConvShape::forward(&p), &x, &w, None, &mut no_bias, None);
            let shifted: Vec<f32> = no_bias.iter().enumerate().map(|(i, v)| v + bias[(i / len) % c_out]).collect();
            common::assert_close(&format!("{isa:?} {p:?} without bias"), &shifted, &want, 2e-5, 1e-5);
        }
        // And through the op itself, which picks the path.
        let mut got = vec![f32::NAN; p.output_len()];
        cpu::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut got }).expect("valid shapes");
        common::assert_close(&format!("op {p:?}"), &got, &want, 2e-5, 1e-5);
    }
}

/// `y` with the epilogue applied by the element-wise ops it stands for, on `backend`.
fn unfused<B: Backend<Elem = f32, Buf = Vec<f32>>>(backend: &B, y: &[f32], residual: Option<&Vec<f32>>) -> Vec<f32> {
    let mut sum = y.to_vec();
    if let Some(r) = residual {
        let bufs = Elementwise { a: &y.to_vec(), b: Some(r), out: &mut sum };
        backend.elementwise(ElementwiseOp::Add, bufs).expect("add");
    }
    let mut out = vec![f32::NAN; y.len()];
    backend.elementwise(ElementwiseOp::ReluFwd, Elementwise { a: &sum, b: None, out: &mut out }).expect("relu");
    out
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits()) {
        panic!("{what}: element {i}: fused {} but the element-wise ops give {}", got[i], want[i]);
    }
}

/// The residual blocks' epilogues (ReLU; residual add and ReLU) fused into the convolution
/// give the bits of the convolution followed by the element-wise ops: on the direct path of
/// every instruction set, on every backend configuration (fast, reference loops, bf16
/// products and operands where the CPU has them) and every path they take (direct, GEMM,
/// AMX, im2col); a residual of the wrong length is refused, naming it.
#[test]
fn fused_epilogues_equal_the_element_wise_ops_on_every_path() {
    let mut backends = vec![("fast", CpuBackend::new()), ("spec", CpuBackend::spec())];
    if let Ok(b) = CpuBackend::with_bf16_gemm() {
        backends.push(("bf16 products", b.with_bf16_convolutions(true)));
    }
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in SHAPES.iter().chain(&GEMM_SHAPES).enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        let (x, w, bias, residual) = data(&p, 500 + seed as u64);
        if seed < SHAPES.len() {
            for isa in direct::available() {
                let shape = ConvShape::forward(&p);
                let mut plain = vec![f32::NAN; p.output_len()];
                direct::conv1d_f32_on(isa, &shape, &x, &w, Some(&bias), &mut plain, None);
                let cpu = CpuBackend::new();
                for (epilogue, r) in [(Epilogue::Relu, None), (Epilogue::AddRelu(&residual[..]), Some(&residual))] {
                    let mut got = vec![f32::NAN; p.output_len()];
                    direct::conv1d_f32_on(isa, &shape, &x, &w, Some(&bias), &mut got, Some(epilogue));
                    same_bits(&format!("{isa:?} {p:?} residual={}", r.is_some()), &got, &unfused(&cpu, &plain, r));
                }
            }
        }
        for (name, backend) in &backends {
            let mut plain = vec![f32::NAN; p.output_len()];
            backend.conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut plain }).expect("fwd");
            for r in [None, Some(&residual)] {
                let e = r.map_or(Epilogue::Relu, Epilogue::AddRelu);
                let mut got = vec![f32::NAN; p.output_len()];
                let bufs = Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut got };
                backend.conv1d_fwd_then(&p, bufs, e).expect("fwd_then");
                same_bits(&format!("{name} {p:?} residual={}", r.is_some()), &got, &unfused(backend, &plain, r));
            }
        }
    }
    let p = Conv1dParams { batch: 1, c_in: 2, c_out: 3, len: 300, kernel: 3, dilation: 1 };
    let (x, w, _, _) = data(&p, 9);
    let short = vec![0.0; p.output_len() - 1];
    let mut y = vec![0.0; p.output_len()];
    for (name, backend) in &backends {
        let e = backend
            .conv1d_fwd_then(&p, Conv1dFwd { x: &x, w: &w, bias: None, y: &mut y }, Epilogue::AddRelu(&short))
            .expect_err("short residual");
        assert!(e.to_string().contains("'residual'"), "{name}: {e}");
    }
}

#[test]
fn backward_passes_equal_the_reference_on_every_instruction_set() {
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in SHAPES.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        let (x, w, _, dy) = data(&p, 100 + seed as u64);

        let (mut want_dx, mut got_dx) = (vec![f32::NAN; p.input_len()], vec![f32::NAN; p.input_len()]);
        spec::conv1d_bwd_input(&p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut want_dx }).expect("valid shapes");
        cpu::conv1d_bwd_input(&p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut got_dx }).expect("valid shapes");
        common::assert_close(&format!("dx {p:?}"), &got_dx, &want_dx, 2e-5, 1e-5);

        let (mut want_dw, mut want_db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
        spec::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut want_dw, dbias: Some(&mut want_db) })
            .expect("valid shapes");
        // dw sums batch·len products of magnitude ≤ 1: f32 partial sums over 1,024 positions.
        let atol = 2e-6 * (batch * len) as f64;
        for isa in direct::available() {
            let (mut dw, mut db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
            direct::conv1d_bwd_weight_f32_on(isa, &ConvShape::forward(&p), &x, &dy, &mut dw, Some(&mut db));
            common::assert_close(&format!("{isa:?} dw {p:?}"), &dw, &want_dw, atol, 1e-5);
            common::assert_close(&format!("{isa:?} dbias {p:?}"), &db, &want_db, 1e-6, 1e-6);
            let mut dw_only = vec![f32::NAN; p.weight_len()];
            direct::conv1d_bwd_weight_f32_on(isa, &ConvShape::forward(&p), &x, &dy, &mut dw_only, None);
            assert!(
                dw_only.iter().zip(&dw).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa:?} {p:?}: dw depends on dbias"
            );
        }
        let (mut dw, mut db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
        cpu::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut dw, dbias: Some(&mut db) })
            .expect("valid shapes");
        common::assert_close(&format!("op dw {p:?}"), &dw, &want_dw, atol, 1e-5);
    }
}

#[test]
fn wide_layers_equal_the_reference() {
    if !direct::available().contains(&direct::Isa::Avx512) {
        common::say("wide_layers_equal_the_reference: no AVX-512 on this CPU, the GEMM path is not exercised (the op runs the reference)");
    }
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in GEMM_SHAPES.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        let (x, w, bias, dy) = data(&p, 200 + seed as u64);
        let (mut want, mut got) = (vec![f32::NAN; p.output_len()], vec![f32::NAN; p.output_len()]);
        spec::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut want }).expect("valid shapes");
        cpu::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut got }).expect("valid shapes");
        // Up to c_in·K = 2,280 products of magnitude ≤ 0.2 summed in another order.
        common::assert_close(&format!("y {p:?}"), &got, &want, 5e-5, 1e-5);

        let (mut want_dx, mut got_dx) = (vec![f32::NAN; p.input_len()], vec![f32::NAN; p.input_len()]);
        spec::conv1d_bwd_input(&p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut want_dx }).expect("valid shapes");
        cpu::conv1d_bwd_input(&p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut got_dx }).expect("valid shapes");
        common::assert_close(&format!("dx {p:?}"), &got_dx, &want_dx, 5e-5, 1e-5);

        let (mut want_dw, mut want_db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
        let (mut dw, mut db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
        spec::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut want_dw, dbias: Some(&mut want_db) })
            .expect("valid shapes");
        cpu::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut dw, dbias: Some(&mut db) })
            .expect("valid shapes");
        let atol = 2e-6 * (batch * len) as f64 + 1e-6;
        common::assert_close(&format!("dw {p:?}"), &dw, &want_dw, atol, 1e-5);
        common::assert_close(&format!("dbias {p:?}"), &db, &want_db, 1e-6, 1e-6);
        let mut dw_no_bias = vec![f32::NAN; p.weight_len()];
        cpu::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut dw_no_bias, dbias: None })
            .expect("valid shapes");
        assert!(dw_no_bias.iter().zip(&dw).all(|(a, b)| a.to_bits() == b.to_bits()), "{p:?}: dw depends on dbias");
    }
}

/// Values rounded to bfloat16 (nearest, ties to even; the `half` crate's rounding, not
/// chromax's), back in f32.
fn bf16_rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect()
}

/// The bf16 GEMM against the reference loops run on bf16-rounded inputs: a product of two
/// bf16 values is exact in f32, so the only difference left is the order of f32 sums (the
/// tolerances of the f32 path). Against the unrounded reference the difference stays within
/// the stated bound, 2^-8 · Σ|w·x| per output.
#[test]
fn bf16_products_are_the_reference_on_rounded_inputs() {
    let Ok(backend) = CpuBackend::with_bf16_gemm() else {
        common::say("bf16_products_are_the_reference_on_rounded_inputs: skipped: no AVX512-BF16 on this CPU");
        return;
    };
    assert!(backend.bf16_gemm());
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in GEMM_SHAPES.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        assert!(!direct::suits(c_out, len), "{p:?} is not a GEMM shape");
        let (x, w, bias, dy) = data(&p, 300 + seed as u64);
        let (xr, wr, dyr) = (bf16_rounded(&x), bf16_rounded(&w), bf16_rounded(&dy));
        let (mut want, mut got) = (vec![f32::NAN; p.output_len()], vec![f32::NAN; p.output_len()]);
        spec::conv1d_fwd(&p, Conv1dFwd { x: &xr, w: &wr, bias: Some(&bias), y: &mut want }).expect("valid shapes");
        backend.conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut got }).expect("valid shapes");
        common::assert_close(&format!("bf16 y {p:?}"), &got, &want, 5e-5, 1e-5);
        // Against f32 inputs: within 2^-8 of Σ|w|·|x| (the absolute products' sum).
        let mut exact = vec![f32::NAN; p.output_len()];
        let (xa, wa): (Vec<f32>, Vec<f32>) = (x.iter().map(|v| v.abs()).collect(), w.iter().map(|v| v.abs()).collect());
        let mut scale = vec![f32::NAN; p.output_len()];
        spec::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut exact }).expect("valid shapes");
        spec::conv1d_fwd(&p, Conv1dFwd { x: &xa, w: &wa, bias: None, y: &mut scale }).expect("valid shapes");
        for ((g, e), s) in got.iter().zip(&exact).zip(&scale) {
            assert!((g - e).abs() as f64 <= s.abs() as f64 / 256.0 + 5e-5, "{p:?}: {g} vs {e}, bound {}", s / 256.0);
        }

        // The backward-input pass is a forward convolution to c_in channels: the GEMM's (bf16)
        // where that shape takes it, else the direct path's (f32).
        let (dy_in, w_in) = if direct::suits(c_in, len) { (&dy, &w) } else { (&dyr, &wr) };
        let (mut want_dx, mut got_dx) = (vec![f32::NAN; p.input_len()], vec![f32::NAN; p.input_len()]);
        spec::conv1d_bwd_input(&p, Conv1dBwdInput { dy: dy_in, w: w_in, dx: &mut want_dx }).expect("valid shapes");
        backend.conv1d_bwd_input(&p, Conv1dBwdInput { dy: &dy, w: &w, dx: &mut got_dx }).expect("valid shapes");
        common::assert_close(&format!("bf16 dx {p:?}"), &got_dx, &want_dx, 5e-5, 1e-5);

        let (mut want_dw, mut want_db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
        let (mut dw, mut db) = (vec![f32::NAN; p.weight_len()], vec![f32::NAN; c_out]);
        spec::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &xr, dy: &dyr, dw: &mut want_dw, dbias: None })
            .expect("valid shapes");
        spec::conv1d_bwd_weight(
            &p,
            Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut vec![0.0; p.weight_len()], dbias: Some(&mut want_db) },
        )
        .expect("valid shapes");
        backend
            .conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut dw, dbias: Some(&mut db) })
            .expect("valid shapes");
        let atol = 2e-6 * (batch * len) as f64 + 1e-6;
        common::assert_close(&format!("bf16 dw {p:?}"), &dw, &want_dw, atol, 1e-5);
        common::assert_close(&format!("bf16 dbias (f32 dy) {p:?}"), &db, &want_db, 1e-6, 1e-6);
    }
}

/// SeqNet (scBasset's shape, a small head) on the fast paths against the reference loops: the
/// embedding, the loss and every parameter's gradient of a training step.
#[test]
fn seqnet_on_fast_paths_equals_the_reference() {
    let (batch, cells) = (6, 50);
    let cfg = SeqConfig::scbasset(cells);
    let mut rng = Rng::new(8);
    let codes: Vec<u8> = (0..batch * cfg.seq_len).map(|_| (rng.next_u64() % 5) as u8).collect();
    let reverse: Vec<bool> = (0..batch).map(|i| i % 2 == 1).collect();
    let shift: Vec<i32> = (0..batch as i32).map(|i| i % 3 - 1).collect();
    let seqs = SeqBatch { codes: &codes, reverse: &reverse, shift: &shift };
    let mut indptr = vec![0u32];
    let mut indices = Vec::new();
    for _ in 0..batch {
        indices.extend((0..cells as u32).filter(|_| rng.unit() < 0.2));
        indptr.push(indices.len() as u32);
    }
    let step = |backend: &CpuBackend| {
        let mut net = SeqNet::new(backend, cfg.clone(), 4, None).expect("build");
        let (z, cache) = net.forward_train(backend, &seqs, 9).expect("forward");
        let (loss, dz) = net.head_loss(backend, &z, &indptr, &indices).expect("head");
        net.backward(backend, cache, &dz).expect("backward");
        let grads: Vec<(String, Vec<f32>)> = net.params().iter().map(|p| (p.name.clone(), p.grad.clone())).collect();
        let probs = net.predict(backend, &seqs).expect("predict");
        (z, loss, grads, probs)
    };
    let (za, la, ga, pa) = step(&CpuBackend::new());
    let (zb, lb, gb, pb) = step(&CpuBackend::spec());
    common::assert_close("bottleneck z", &za, &zb, 1e-4, 1e-3);
    assert!((la - lb).abs() <= 1e-5 * lb.abs(), "loss {la} vs {lb}");
    common::assert_close("probabilities", &pa, &pb, 1e-5, 1e-4);
    // Per parameter, relative to the gradient's norm: a forward value that differs in its last
    // bits can move a max-pool's choice between two near-equal inputs, which moves a few
    // gradient elements whole; the gradient as a vector stays put.
    for ((name, a), (_, b)) in ga.iter().zip(&gb) {
        let diff = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt();
        let norm = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
        common::say(&format!("{name}: relative difference {:.2e}", diff / norm.max(1e-30)));
        assert!(diff <= 1e-2 * norm + 1e-12, "gradient of {name}: relative difference {:.3e}", diff / norm);
    }
}

#[test]
fn fast_path_bits_do_not_depend_on_threads_or_the_window() {
    let p = Conv1dParams { batch: 1, c_in: 15, c_out: 15, len: 6000, kernel: 51, dilation: 8 };
    let (x, w, bias, _) = data(&p, 7);
    let run = |threads: usize, x: &[f32], len: usize| {
        let q = Conv1dParams { len, ..p };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(|| {
            let mut y = vec![0.0f32; q.output_len()];
            cpu::conv1d_fwd(&q, Conv1dFwd { x, w: &w, bias: Some(&bias), y: &mut y }).expect("valid shapes");
            y
        })
    };
    let (one, three) = (run(1, &x, p.len), run(3, &x, p.len));
    assert!(one.iter().zip(&three).all(|(a, b)| a.to_bits() == b.to_bits()), "1 and 3 threads differ");
    // A window [1000, 4337) of the rows: the values whose taps stay inside it are the same bits.
    let (from, to) = (1000, 4337);
    let window: Vec<f32> = (0..15).flat_map(|c| x[c * 6000 + from..c * 6000 + to].to_vec()).collect();
    let part = run(2, &window, to - from);
    let reach = p.pad_left();
    for c in 0..15 {
        for l in from + reach..to - reach {
            let (a, b) = (one[c * 6000 + l], part[c * (to - from) + l - from]);
            assert_eq!(a.to_bits(), b.to_bits(), "channel {c} position {l}: {a} in the whole row, {b} in the window");
        }
    }
}

/// DenoiseNet on the fast paths against the reference loops: inference, the loss, and every
/// parameter's gradient of a training step, on a coverage-like input.
#[test]
fn denoisenet_on_fast_paths_equals_the_reference() {
    for cfg in [DenoiseConfig::default(), DenoiseConfig::demo()] {
        let (n, width, pad) = (2, 12_000, 1_000);
        let mut rng = Rng::new(3);
        let x: Vec<f32> =
            (0..n * width).map(|i| if (i / 300) % 3 == 0 { 0.0 } else { (8.0 * rng.unit()).floor() as f32 }).collect();
        let clean: Vec<f32> = x.iter().map(|v| 1.3 * v + 0.5).collect();
        let mask: Vec<f32> = x.iter().map(|&v| f32::from(v > 5.0)).collect();
        let loss =
            DenoiseLossParams { batch: n, len: width, pad, mse_weight: 0.0005, pearson_weight: 1.0, bce_weight: 1.0 };
        let fast = CpuBackend::new();
        let reference = CpuBackend::spec();
        let mut net_fast = DenoiseNet::new(&fast, cfg, 5).expect("build");
        let mut net_ref = DenoiseNet::new(&reference, cfg, 5).expect("build");

        let a = net_fast.infer(&fast, &x, n, width).expect("infer");
        let b = net_ref.infer(&reference, &x, n, width).expect("infer");
        let scale = b.reg.iter().fold(1.0f32, |m, v| m.max(v.abs())) as f64;
        common::assert_close(&format!("{cfg:?} regression output"), &a.reg, &b.reg, 1e-5 * scale, 1e-4);
        common::assert_close(&format!("{cfg:?} peak logits"), &a.logits, &b.logits, 1e-4, 1e-4);

        let la = forward_backward(&fast, &mut net_fast, x.clone(), &clean, &mask, &loss).expect("step");
        let lb = forward_backward(&reference, &mut net_ref, x.clone(), &clean, &mask, &loss).expect("step");
        assert!(
            (la.total - lb.total).abs() <= 1e-5 * lb.total.abs().max(1.0),
            "{cfg:?} loss {} vs {}",
            la.total,
            lb.total
        );
        for (pa, pb) in net_fast.params().iter().zip(net_ref.params()) {
            let g_scale = pb.grad.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
            common::assert_close(
                &format!("{cfg:?} gradient of {}", pb.name),
                &pa.grad,
                &pb.grad,
                1e-4 * g_scale + 1e-9,
                1e-3,
            );
        }
    }
}

#[test]
fn the_reference_backend_takes_no_fast_path() {
    // The same f32 op through both backends: the spec backend must match `spec::` bit for bit.
    let p = Conv1dParams { batch: 1, c_in: 15, c_out: 15, len: 2000, kernel: 51, dilation: 8 };
    let (x, w, bias, _) = data(&p, 9);
    let mut want = vec![0.0f32; p.output_len()];
    spec::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut want }).expect("valid shapes");
    let reference = CpuBackend::spec();
    let mut got = reference.zeros(p.output_len()).expect("zeros");
    let (xb, wb, bb) = (x.clone(), w.clone(), bias.clone());
    reference.conv1d_fwd(&p, Conv1dFwd { x: &xb, w: &wb, bias: Some(&bb), y: &mut got }).expect("valid shapes");
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
    let mut fast = vec![0.0f32; p.output_len()];
    CpuBackend::new()
        .conv1d_fwd(&p, Conv1dFwd { x: &xb, w: &wb, bias: Some(&bb), y: &mut fast })
        .expect("valid shapes");
    assert!(
        fast.iter().zip(&want).any(|(a, b)| a.to_bits() != b.to_bits()),
        "the fast path should sum in another order"
    );
}

/// The vector path of the σ-based ops (sigmoid, GELU forward and backward) against the scalar
/// op over the whole range: within 5e-7 of the result's scale (a few f32 rounding steps; for
/// GELU's backward the scale is that of its two terms, |dy|·(s + |1.702·x|·s·(1 − s)), which
/// cancel near x = −0.9), within 1e-35 where the result is tiny (σ of −87 and below leaves
/// f32's normal range: one path flushes it to 0, the other keeps a subnormal), and the same
/// where it is ±∞ or NaN.
#[test]
fn sigma_ops_equal_the_scalar_op() {
    use chromax::backend::{Elementwise, ElementwiseOp};
    if !direct::available().contains(&direct::Isa::Avx512) {
        common::say("sigma_ops_equal_the_scalar_op: no AVX-512 on this CPU, the vector path is not exercised");
    }
    let mut x: Vec<f32> = (-24_000..=24_000).map(|i| i as f32 * 0.005).collect();
    x.extend([0.0, -0.0, 1e-30, -1e-30, 88.0, 89.5, -87.0, -104.5, 200.0, -200.0]);
    x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN, f32::MIN_POSITIVE]);
    // 48,017 values: not a multiple of 16, so the masked tail runs too.
    let mut rng = Rng::new(9);
    let dy = rng.vec_f32(x.len(), -2.0, 2.0);
    for op in [ElementwiseOp::SigmoidFwd, ElementwiseOp::GeluFwd, ElementwiseOp::GeluBwd] {
        let b = (op == ElementwiseOp::GeluBwd).then_some(&dy);
        let (mut got, mut want) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
        cpu::elementwise(op, Elementwise { a: &x, b, out: &mut got }).expect("same lengths");
        spec::elementwise(op, Elementwise { a: &x, b, out: &mut want }).expect("same lengths");
        let mut worst = 0.0f64;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let ok = if !w.is_finite() {
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())
            } else {
                let err = (g as f64 - w as f64).abs();
                let scale = if op == ElementwiseOp::GeluBwd {
                    let (xi, k) = (x[i] as f64, chromax::backend::GELU_SLOPE);
                    let s = 1.0 / (1.0 + (-k * xi).exp());
                    dy[i].abs() as f64 * (s + (k * xi).abs() * s * (1.0 - s))
                } else {
                    w.abs() as f64
                };
                if scale >= 1e-30 {
                    worst = worst.max(err / scale);
                }
                err <= 1e-35 + 5e-7 * scale
            };
            assert!(ok, "{}: x = {:e}: vector {g:e}, scalar {w:e}", op.name(), x[i]);
        }
        common::say(&format!("{}: worst difference {worst:.2e} of the scale", op.name()));
    }
}
