//! The tensor-core convolutions (kernels/conv1d_mma.cu: bf16 operands, f32 sums) against the
//! CPU specification, on the kernel emulator (exact warp-level mma/ldmatrix/cp.async) and on a
//! GPU where there is one:
//! * small-integer inputs, exact in bf16 and in any summation order: bit-identical to the CPU
//!   op, forward (alone and with the residual blocks' epilogues fused), input gradient, weight
//!   and bias gradients;
//! * random inputs: within f32 summation of the same bf16 products (the CPU op on bf16-rounded
//!   operands: at most n·2⁻²⁴ of Σ|terms| for n terms per output), and within the bf16 rounding
//!   of the operands of the f32 op (each product off by at most 2⁻⁸ of itself).

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::backend::{Backend, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, Conv1dParams, Epilogue};
use chromax::nn::download_f32;
use common::{cuda_or_skip, emulator_or_skip, Rng};

/// The shapes, and whether the weight gradient is bf16 too (all are now; the flag stays for
/// kernels that keep an f32 weight gradient). conv1d_mma.cu (≤ 16 channels):
/// DenoiseNet's layer (dilation 8: the kernel's shared-fragment path) over a whole tile and a
/// partial one, its 15 → 1 output layer, a general dilation, 16 channels. conv1d_igemm.cu
/// (wide, dilation 1): a stem-like 4 → 40 of width 17 (channels
/// padded to 8, rows of two items in one tile; its input gradient splits its K), 20 → 70 over
/// two column blocks, 33 → 24 (an input gradient of 24 → 33), a 1 × 1, a split K.
fn shapes() -> Vec<(Conv1dParams, &'static str, bool)> {
    let p = |batch, c_in, c_out, len, kernel, dilation| Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
    vec![
        (p(2, 15, 15, 300, 51, 8), "DenoiseNet's 15 → 15, width 51, dilation 8", true),
        (p(1, 15, 1, 300, 51, 8), "15 → 1", true),
        (p(2, 5, 7, 200, 5, 3), "a general dilation (3), 5 → 7", true),
        (p(1, 16, 16, 130, 3, 1), "16 → 16, width 3", true),
        (p(2, 4, 40, 37, 17, 1), "implicit GEMM: 4 → 40, width 17", true),
        (p(3, 20, 70, 21, 5, 1), "implicit GEMM: 20 → 70, width 5", true),
        (p(1, 33, 24, 9, 3, 1), "implicit GEMM: 33 → 24, width 3", true),
        (p(2, 64, 48, 50, 1, 1), "implicit GEMM: 64 → 48, 1 × 1", true),
        (p(1, 64, 40, 20, 9, 1), "implicit GEMM, split K (18 slices in 2): 64 → 40, width 9", true),
    ]
}

/// `v` rounded to bfloat16 (nearest, ties to even: the `half` crate's rounding), in f32.
fn bf16(v: f32) -> f32 {
    half::bf16::from_f32(v).to_f32()
}

struct Out {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    /// The forward pass with the residual blocks' epilogues: ReLU, and dy added then ReLU.
    y_relu: Vec<f32>,
    y_add_relu: Vec<f32>,
}

/// Forward (with bias), input gradient, weight and bias gradients of one shape; with
/// `epilogues`, the forward pass with each epilogue too (empty otherwise).
fn run<B: Backend<Elem = f32>>(
    b: &B,
    p: &Conv1dParams,
    (x, w, bias, dy): (&[f32], &[f32], &[f32], &[f32]),
    epilogues: bool,
) -> Out {
    let up = |v: &[f32]| b.upload(v).expect("upload");
    // NaN-filled outputs, so an element the op does not write shows.
    let nan = |n: usize| up(&vec![f32::NAN; n]);
    let (gx, gw, gb, gdy) = (up(x), up(w), up(bias), up(dy));
    let (mut y, mut dx, mut dw, mut db) = (nan(p.output_len()), nan(p.input_len()), nan(p.weight_len()), nan(p.c_out));
    b.conv1d_fwd(p, Conv1dFwd { x: &gx, w: &gw, bias: Some(&gb), y: &mut y }).expect("forward");
    b.conv1d_bwd_input(p, Conv1dBwdInput { dy: &gdy, w: &gw, dx: &mut dx }).expect("input gradient");
    b.conv1d_bwd_weight(p, Conv1dBwdWeight { x: &gx, dy: &gdy, dw: &mut dw, dbias: Some(&mut db) })
        .expect("weight gradient");
    let down = |v: &B::Buf| download_f32(b, v).expect("download");
    let (mut y_relu, mut y_add_relu) = (Vec::new(), Vec::new());
    if epilogues {
        let fwd = |e| {
            let mut y = nan(p.output_len());
            b.conv1d_fwd_then(p, Conv1dFwd { x: &gx, w: &gw, bias: Some(&gb), y: &mut y }, e).expect("epilogue");
            down(&y)
        };
        y_relu = fwd(Epilogue::Relu);
        y_add_relu = fwd(Epilogue::AddRelu(&gdy));
    }
    Out { y: down(&y), dx: down(&dx), dw: down(&dw), db: down(&db), y_relu, y_add_relu }
}

/// Small-integer inputs: every product and sum exact in f32 (and in bf16), so any summation
/// order gives the same bits: `imp` must equal the CPU specification exactly in y, dx, dw and
/// dbias.
fn check_integers<B: Backend<Elem = f32>>(imp: &B, p: &Conv1dParams, what: &str, rng: &mut Rng, epilogues: bool) {
    let cpu = CpuBackend::new();
    let who = imp.describe();
    let int =
        |rng: &mut Rng, n: usize, r: f64| -> Vec<f32> { (0..n).map(|_| rng.uniform(-r, r).round() as f32).collect() };
    let (x, w, bias, dy) = (
        int(rng, p.input_len(), 4.0),
        int(rng, p.weight_len(), 3.0),
        int(rng, p.c_out, 9.0),
        int(rng, p.output_len(), 4.0),
    );
    let got = run(imp, p, (&x, &w, &bias, &dy), epilogues);
    let want = run(&cpu, p, (&x, &w, &bias, &dy), epilogues);
    for (name, g, e) in [
        ("y", &got.y, &want.y),
        ("dx", &got.dx, &want.dx),
        ("dw", &got.dw, &want.dw),
        ("dbias", &got.db, &want.db),
        ("y with ReLU", &got.y_relu, &want.y_relu),
        ("y with the residual added and ReLU", &got.y_add_relu, &want.y_add_relu),
    ] {
        let bad = g.iter().zip(e.iter()).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            bad.is_none(),
            "{who}: {what}: integer {name}[{}] = {} vs the CPU's {}",
            bad.unwrap(),
            g[bad.unwrap()],
            e[bad.unwrap()]
        );
    }
}

fn check<B: Backend<Elem = f32>>(imp: &B, who: &str) {
    let cpu = CpuBackend::new();
    let mut rng = Rng::new(1616);
    for (p, what, wgrad_bf16) in shapes() {
        check_integers(imp, &p, what, &mut rng, true);

        // Random values against the CPU on bf16-rounded operands and on the f32 ones.
        let (x, w, bias, dy) = (
            rng.vec_f32(p.input_len(), -2.0, 2.0),
            rng.vec_f32(p.weight_len(), -0.2, 0.2),
            rng.vec_f32(p.c_out, -1.0, 1.0),
            rng.vec_f32(p.output_len(), -1.0, 1.0),
        );
        let got = run(imp, &p, (&x, &w, &bias, &dy), false);
        let r = |v: &[f32]| v.iter().map(|&a| bf16(a)).collect::<Vec<f32>>();
        let mut rounded = run(&cpu, &p, (&r(&x), &r(&w), &bias, &r(&dy)), false);
        let exact = run(&cpu, &p, (&x, &w, &bias, &dy), false);
        if !wgrad_bf16 {
            // The wide kernels' weight gradient is f32: its reference is the f32 op.
            rounded.dw = exact.dw.clone();
        }
        // Σ|terms| per output: the same convolution of absolute values (bias 0).
        let a = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<f32>>();
        let mag = run(&cpu, &p, (&a(&x), &a(&w), &vec![0.0; p.c_out], &a(&dy)), false);
        // Terms per output: c_in·K (forward), c_out·K (input gradient), and per weight the
        // positions of one chunk (partials then summed in f64): at most batch·len.
        let terms = [(p.c_in * p.kernel) as f64, (p.c_out * p.kernel) as f64, (p.batch * p.len) as f64];
        let sets = [
            ("y", &got.y, &rounded.y, &exact.y, &mag.y, terms[0]),
            ("dx", &got.dx, &rounded.dx, &exact.dx, &mag.dx, terms[1]),
            ("dw", &got.dw, &rounded.dw, &exact.dw, &mag.dw, terms[2]),
        ];
        let mut worst = [0f64; 2];
        for (name, g, rd, ex, m, n) in sets {
            for i in 0..g.len() {
                let (g, rd, ex, m) = (g[i] as f64, rd[i] as f64, ex[i] as f64, m[i] as f64);
                let sum_bound = n * f32::EPSILON as f64 / 2.0 * m + 1e-30;
                assert!(
                    (g - rd).abs() <= sum_bound,
                    "{who}: {what}: {name}[{i}] = {g} vs the CPU on bf16 operands {rd} (bound {sum_bound:e})"
                );
                // bf16 rounding of both operands: |x̃ỹ − xy| ≤ (2·2⁻⁹ + 2⁻¹⁸)|xy|, plus the sums.
                let bf16_bound = (2.0f64.powi(-8) + 2.0f64.powi(-18)) * m + 2.0 * sum_bound;
                assert!(
                    (g - ex).abs() <= bf16_bound,
                    "{who}: {what}: {name}[{i}] = {g} vs f32 {ex} (bound {bf16_bound:e})"
                );
                worst[0] = worst[0].max((g - rd).abs() / m.max(1e-30));
                worst[1] = worst[1].max((g - ex).abs() / m.max(1e-30));
            }
        }
        // The tensor cores ran: f32 products would agree with f32 to its rounding (~1e-7).
        assert!(worst[1] > 1e-5, "{who}: {what}: the result equals f32's to {:.1e}: was bf16 used?", worst[1]);
        assert_eq!(got.db, exact.db, "{who}: {what}: the bias gradient has no products: the f32 kernels give it");
        common::say(&format!(
            "{who}: {what}: integers bit-identical; random: worst |Δ|/Σ|terms| {:.1e} vs CPU on bf16 operands, {:.1e} vs f32",
            worst[0], worst[1]
        ));
    }
}

#[test]
fn tensor_core_convolutions_match_the_cpu_in_the_emulator() {
    let Some(emu) = emulator_or_skip("tensor_core_convolutions_match_the_cpu_in_the_emulator", 132) else { return };
    check(&emu.with_bf16_convolutions(true), "emulator");
}

#[test]
fn tensor_core_convolutions_match_the_cpu_on_the_gpu() {
    let Some(cuda) = cuda_or_skip("tensor_core_convolutions_match_the_cpu_on_the_gpu") else { return };
    check(&cuda.with_bf16_convolutions(true), "cuda");
}

/// Every convolution shape of the op table (tests/ops.rs) with the tensor-core convolutions
/// on: small-integer inputs bit-identical to the CPU, whichever kernel takes the shape (the
/// bf16 ones where eligible, the f32 ones elsewhere). The real-sized rows run on a GPU only.
fn check_op_table<B: Backend<Elem = f32>>(imp: &B, with_real: bool) {
    let mut rng = Rng::new(1717);
    let mut ran = 0;
    for (p, real, why) in common::op_table_convs() {
        if real && !with_real {
            continue;
        }
        // (The epilogues: in `check`'s shapes, and tests/ops.rs's table with bf16 off.)
        check_integers(imp, &p, why, &mut rng, false);
        ran += 1;
    }
    common::say(&format!("{}: {ran} op-table convolution shapes bit-identical to the CPU on integers", imp.describe()));
}

#[test]
fn the_op_tables_convolutions_match_the_cpu_with_bf16_on_in_the_emulator() {
    let test = "the_op_tables_convolutions_match_the_cpu_with_bf16_on_in_the_emulator";
    let Some(emu) = emulator_or_skip(test, 132) else { return };
    check_op_table(&emu.with_bf16_convolutions(true), false);
}

#[test]
fn the_op_tables_convolutions_match_the_cpu_with_bf16_on_on_the_gpu() {
    let Some(cuda) = cuda_or_skip("the_op_tables_convolutions_match_the_cpu_with_bf16_on_on_the_gpu") else { return };
    check_op_table(&cuda.with_bf16_convolutions(true), true);
}

/// The packed ops (conv1d_fwd_packed: x, y and the residual channels-last bf16;
/// conv1d_bwd_weight_packed: x packed) on `imp` against the CPU's reference of them, for the
/// few-channel shapes of [`shapes`], the forward with each epilogue: small integers
/// bit-identical (the sums are exact, so both round the same f32 to bf16), random values within
/// one bf16 rounding of the output (forward) or the f32 summation bound (weight gradient); the
/// padding channels (c_out..16) zero.
fn check_packed<B: Backend<Elem = f32>>(imp: &B, who: &str) {
    use chromax::backend::{Pack, PackParams, Unpack, PACKED_CHANNELS};
    let cpu = CpuBackend::new().with_bf16_convolutions(true);
    let mut rng = Rng::new(1818);
    let mut ran = 0;
    for (p, what, _) in shapes() {
        if !imp.packs(&p) {
            continue;
        }
        assert!(cpu.packs(&p), "{what}: the CPU's reference must pack what {who} packs");
        for integers in [true, false] {
            let vals = |rng: &mut Rng, n: usize, r: f64| -> Vec<f32> {
                (0..n)
                    .map(|_| if integers { rng.uniform(-r, r).round() as f32 } else { rng.uniform(-r, r) as f32 })
                    .collect()
            };
            let (x, w, bias, res) = if integers {
                (
                    vals(&mut rng, p.input_len(), 4.0),
                    vals(&mut rng, p.weight_len(), 3.0),
                    vals(&mut rng, p.c_out, 9.0),
                    vals(&mut rng, p.output_len(), 4.0),
                )
            } else {
                (
                    vals(&mut rng, p.input_len(), 2.0),
                    vals(&mut rng, p.weight_len(), 0.2),
                    vals(&mut rng, p.c_out, 1.0),
                    vals(&mut rng, p.output_len(), 1.0),
                )
            };
            for epilogue in 0..3 {
                // Returns all 16 channels of the packed output, unpacked.
                let run = |b: &dyn PackedRunner| b.run(&p, (&x, &w, &bias, &res), epilogue);
                let got = run(&Runner(imp));
                let want = run(&Runner(&cpu));
                let name = ["no epilogue", "ReLU", "the residual added and ReLU"][epilogue];
                for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                    let (l, c, b) = (i % p.len, (i / p.len) % PACKED_CHANNELS, i / (p.len * PACKED_CHANNELS));
                    if c >= p.c_out {
                        assert_eq!(g.to_bits(), 0, "{who}: {what}: padding channel {c} at ({b}, {l}) is {g}");
                        continue;
                    }
                    assert_eq!(g, bf16(g), "{who}: {what}: y[{b}, {c}, {l}] = {g} is not a bf16 value");
                    if integers {
                        assert_eq!(
                            g.to_bits(),
                            e.to_bits(),
                            "{who}: {what}, {name}: integer y[{b}, {c}, {l}] = {g} vs the CPU's {e}"
                        );
                    } else {
                        // Sums in another order may round to the neighbouring bf16 value: one
                        // unit in the last place (2⁻⁷ relative at most) apart.
                        let bound = e.abs().max(g.abs()) * 2f32.powi(-7) + 1e-6;
                        assert!(
                            (g - e).abs() <= bound,
                            "{who}: {what}, {name}: y[{b}, {c}, {l}] = {g} vs the CPU's {e}"
                        );
                    }
                }
                ran += 1;
            }
        }
        // The weight gradient from packed x (dy f32): integers bit-identical, random values
        // within f32 summation of the same bf16 products (at most batch·len terms a weight).
        for integers in [true, false] {
            let r = if integers { 4.0 } else { 2.0 };
            let vals = |rng: &mut Rng, n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| if integers { rng.uniform(-r, r).round() as f32 } else { rng.uniform(-r, r) as f32 })
                    .collect()
            };
            let (x, dy) = (vals(&mut rng, p.input_len()), vals(&mut rng, p.output_len()));
            let got = wgrad_packed(imp, &p, &x, &dy);
            let want = wgrad_packed(&cpu, &p, &x, &dy);
            let a = |v: &[f32]| v.iter().map(|&a| bf16(a).abs()).collect::<Vec<f32>>();
            let mag =
                run(&CpuBackend::new(), &p, (&a(&x), &vec![0.0; p.weight_len()], &vec![0.0; p.c_out], &a(&dy)), false)
                    .dw;
            for (i, ((&g, &e), &m)) in got.0.iter().zip(&want.0).zip(&mag).enumerate() {
                if integers {
                    assert_eq!(
                        g.to_bits(),
                        e.to_bits(),
                        "{who}: {what}: integer packed dw[{i}] = {g} vs the CPU's {e}"
                    );
                } else {
                    let bound = (p.batch * p.len) as f64 * f32::EPSILON as f64 / 2.0 * m as f64 + 1e-30;
                    assert!(
                        ((g - e) as f64).abs() <= bound,
                        "{who}: {what}: packed dw[{i}] = {g} vs the CPU's {e} (bound {bound:e})"
                    );
                }
            }
            assert_eq!(got.1, want.1, "{who}: {what}: the bias gradient (from f32 dy)");
            ran += 1;
        }
        // Pack and unpack themselves: the same values as the CPU's, bit for bit.
        let pp = PackParams { batch: p.batch, channels: p.c_in, len: p.len };
        let x = rng.vec_f32(pp.values(), -300.0, 300.0);
        let (gx, mut gp) = (imp.upload(&x).unwrap(), imp.zeros(imp.packed_len(p.batch, p.len)).unwrap());
        imp.pack(&pp, Pack { x: &gx, packed: &mut gp }).expect("pack");
        let mut back = imp.zeros(pp.values()).unwrap();
        imp.unpack(&pp, Unpack { packed: &gp, x: &mut back }).expect("unpack");
        let back = download_f32(imp, &back).unwrap();
        let want: Vec<f32> = x.iter().map(|&v| bf16(v)).collect();
        assert!(back.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{who}: {what}: pack → unpack");
    }
    assert!(ran >= 16, "{who}: {ran} packed cases ran: does the backend pack DenoiseNet's layers?");
    common::say(&format!(
        "{who}: {ran} packed cases (shapes × integers/random × forward with each epilogue, weight gradient) match \
         the CPU's reference"
    ));
}

/// The weight and bias gradients from x packed on `b` ([`Backend::conv1d_bwd_weight_packed`]).
fn wgrad_packed<B: Backend<Elem = f32>>(b: &B, p: &Conv1dParams, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let up = |v: &[f32]| b.upload(v).expect("upload");
    let xp = chromax::nn::pack(b, &up(x), p.batch, p.c_in, p.len).expect("pack");
    let gdy = up(dy);
    let (mut dw, mut db) = (up(&vec![f32::NAN; p.weight_len()]), up(&vec![f32::NAN; p.c_out]));
    b.conv1d_bwd_weight_packed(p, Conv1dBwdWeight { x: &xp, dy: &gdy, dw: &mut dw, dbias: Some(&mut db) })
        .expect("packed weight gradient");
    (download_f32(b, &dw).expect("dw"), download_f32(b, &db).expect("db"))
}

/// Runs one packed forward pass on a backend and returns its output's 16 channels unpacked
/// (batch, 16, len); `epilogue` 0: none, 1: ReLU, 2: residual add and ReLU.
trait PackedRunner {
    fn run(&self, p: &Conv1dParams, data: (&[f32], &[f32], &[f32], &[f32]), epilogue: usize) -> Vec<f32>;
}

struct Runner<'a, B>(&'a B);

impl<B: Backend<Elem = f32>> PackedRunner for Runner<'_, B> {
    fn run(&self, p: &Conv1dParams, (x, w, bias, res): (&[f32], &[f32], &[f32], &[f32]), epilogue: usize) -> Vec<f32> {
        use chromax::backend::PACKED_CHANNELS;
        use chromax::nn::{pack, unpack};
        let b = self.0;
        let up = |v: &[f32]| b.upload(v).expect("upload");
        let (gx, gw, gb, gr) = (up(x), up(w), up(bias), up(res));
        let xp = pack(b, &gx, p.batch, p.c_in, p.len).expect("pack x");
        let rp = pack(b, &gr, p.batch, p.c_out, p.len).expect("pack residual");
        // NaN-filled (as f32, and both bf16 halves of a CUDA word), so a value the op does not
        // write shows.
        let mut yp = up(&vec![f32::from_bits(0x7fc0_7fc0); b.packed_len(p.batch, p.len)]);
        let e = match epilogue {
            0 => None,
            1 => Some(Epilogue::Relu),
            _ => Some(Epilogue::AddRelu(&rp)),
        };
        b.conv1d_fwd_packed(p, Conv1dFwd { x: &xp, w: &gw, bias: Some(&gb), y: &mut yp }, e).expect("packed forward");
        download_f32(b, &unpack(b, &yp, p.batch, PACKED_CHANNELS, p.len).expect("unpack")).expect("download")
    }
}

#[test]
fn packed_convolutions_match_the_cpu_in_the_emulator() {
    let Some(emu) = emulator_or_skip("packed_convolutions_match_the_cpu_in_the_emulator", 132) else { return };
    check_packed(&emu.with_bf16_convolutions(true), "emulator");
}

#[test]
fn packed_convolutions_match_the_cpu_on_the_gpu() {
    let Some(cuda) = cuda_or_skip("packed_convolutions_match_the_cpu_on_the_gpu") else { return };
    check_packed(&cuda.with_bf16_convolutions(true), "cuda");
}

/// The f32-operand ops (conv1d_fwd_f32, conv1d_bwd_weight_f32: a convolution reading a
/// coverage track) on a backend with bf16 convolutions on, for a shape the tensor cores would
/// take (2 → 8 channels: an input with an extra track): f32's results to f32 summation, where
/// the ordinary ops round values like 257 + 3i.
fn check_f32_operands<B: Backend<Elem = f32>>(imp: &B, who: &str) {
    let p = Conv1dParams { batch: 2, c_in: 2, c_out: 8, len: 300, kernel: 21, dilation: 4 };
    let mut rng = Rng::new(1919);
    let x: Vec<f32> = (0..p.input_len()).map(|i| 257.0 + 3.0 * (i % 700) as f32).collect();
    let (w, dy) = (rng.vec_f32(p.weight_len(), -0.2, 0.2), rng.vec_f32(p.output_len(), -1.0, 1.0));
    let up = |v: &[f32]| imp.upload(v).expect("upload");
    let (gx, gw, gdy) = (up(&x), up(&w), up(&dy));
    let (mut y, mut y_bf16, mut dw) =
        (imp.zeros(p.output_len()).unwrap(), imp.zeros(p.output_len()).unwrap(), imp.zeros(p.weight_len()).unwrap());
    imp.conv1d_fwd_f32(&p, Conv1dFwd { x: &gx, w: &gw, bias: None, y: &mut y }, Some(Epilogue::Relu)).expect("fwd f32");
    imp.conv1d_fwd_then(&p, Conv1dFwd { x: &gx, w: &gw, bias: None, y: &mut y_bf16 }, Epilogue::Relu).expect("fwd");
    imp.conv1d_bwd_weight_f32(&p, Conv1dBwdWeight { x: &gx, dy: &gdy, dw: &mut dw, dbias: None }).expect("wgrad f32");
    let cpu = CpuBackend::new();
    let want = run(&cpu, &p, (&x, &w, &vec![0.0; p.c_out], &dy), true);
    let a = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<f32>>();
    let mag = run(&cpu, &p, (&a(&x), &a(&w), &vec![0.0; p.c_out], &a(&dy)), false);
    let (y, y_bf16, dw) =
        (download_f32(imp, &y).unwrap(), download_f32(imp, &y_bf16).unwrap(), download_f32(imp, &dw).unwrap());
    let eps = f32::EPSILON as f64 / 2.0;
    let mut bf16_off = 0f64;
    for i in 0..y.len() {
        let bound = (p.c_in * p.kernel) as f64 * eps * mag.y[i] as f64 + 1e-30;
        assert!(
            ((y[i] - want.y_relu[i]) as f64).abs() <= bound,
            "{who}: f32-operand y[{i}] = {} vs f32 {}",
            y[i],
            want.y_relu[i]
        );
        bf16_off = bf16_off.max(((y_bf16[i] - want.y_relu[i]) as f64).abs() / bound);
    }
    assert!(
        bf16_off > 10.0,
        "{who}: the ordinary forward is within f32's bound too ({bf16_off:.1}×): not a bf16 shape?"
    );
    for (i, &m) in mag.dw.iter().enumerate() {
        let bound = (p.batch * p.len) as f64 * eps * m as f64 + 1e-30;
        assert!(
            ((dw[i] - want.dw[i]) as f64).abs() <= bound,
            "{who}: f32-operand dw[{i}] = {} vs f32 {}",
            dw[i],
            want.dw[i]
        );
    }
    common::say(&format!("{who}: f32-operand forward and weight gradient within f32 summation; the bf16 forward {bf16_off:.0}× beyond it"));
}

#[test]
fn f32_operand_convolutions_stay_f32_with_bf16_on_in_the_emulator() {
    check_f32_operands(&CpuBackend::new().with_bf16_convolutions(true), "cpu reference");
    let Some(emu) = emulator_or_skip("f32_operand_convolutions_stay_f32_with_bf16_on_in_the_emulator", 132) else {
        return;
    };
    check_f32_operands(&emu.with_bf16_convolutions(true), "emulator");
}

#[test]
fn f32_operand_convolutions_stay_f32_with_bf16_on_on_the_gpu() {
    let Some(cuda) = cuda_or_skip("f32_operand_convolutions_stay_f32_with_bf16_on_on_the_gpu") else { return };
    check_f32_operands(&cuda.with_bf16_convolutions(true), "cuda");
}
