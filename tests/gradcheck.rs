//! Finite-difference checks of every backward pass, in f64 on the CPU specification.
//!
//! For an op y = f(θ) the scalar J = Σ y ⊙ g (g random) has ∂J/∂θ = the op's backward
//! applied to g. Each element of each input is nudged by ±h and
//! (J(θ + h) − J(θ − h)) / 2h is compared with the analytic gradient.

mod common;

use chromax::backend::cpu;
use chromax::backend::{
    BatchNormBwd, BatchNormFwdInfer, BatchNormFwdTrain, Conv1dBwdInput, Conv1dBwdWeight, Conv1dFwd, DenoiseLoss,
    DropoutBwd, DropoutFwd, Elementwise, ElementwiseOp, HeadLogits, MaxPoolBwd, MaxPoolFwd, SparseHead,
};
use chromax::backend::{Conv1dParams, DenoiseLossParams};
use common::Rng;

/// Central difference of `f` with respect to every element of `theta`.
fn numeric_grad(theta: &[f64], h: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut t = theta.to_vec();
    (0..theta.len())
        .map(|i| {
            let orig = t[i];
            t[i] = orig + h;
            let up = f(&t);
            t[i] = orig - h;
            let down = f(&t);
            t[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Relative agreement for f64 central differences: rounding of J over h, nothing more.
const ATOL: f64 = 1e-7;
const RTOL: f64 = 1e-6;

fn conv_case(p: Conv1dParams, with_bias: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec_f64(p.input_len(), -1.0, 1.0);
    let w = rng.vec_f64(p.weight_len(), -1.0, 1.0);
    let bias = rng.vec_f64(p.c_out, -1.0, 1.0);
    let g = rng.vec_f64(p.output_len(), -1.0, 1.0);
    let bias_opt = with_bias.then_some(bias.as_slice());

    let objective = |x: &[f64], w: &[f64], b: Option<&[f64]>| {
        let mut y = vec![0.0; p.output_len()];
        cpu::conv1d_fwd(&p, Conv1dFwd { x: x, w: w, bias: b, y: &mut y }).expect("valid shapes");
        dot(&y, &g)
    };

    let mut dx = vec![f64::NAN; p.input_len()];
    cpu::conv1d_bwd_input(&p, Conv1dBwdInput { dy: &g, w: &w, dx: &mut dx }).expect("valid shapes");
    let mut dw = vec![f64::NAN; p.weight_len()];
    let mut db = vec![f64::NAN; p.c_out];
    cpu::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &g, dw: &mut dw, dbias: Some(&mut db) })
        .expect("valid shapes");

    let h = 1e-6;
    let what = format!("{p:?} bias={with_bias}");
    let num_dx = numeric_grad(&x, h, |x| objective(x, &w, bias_opt));
    common::assert_close(&format!("dx {what}"), &dx, &num_dx, ATOL, RTOL);
    let num_dw = numeric_grad(&w, h, |w| objective(&x, w, bias_opt));
    common::assert_close(&format!("dw {what}"), &dw, &num_dw, ATOL, RTOL);
    if with_bias {
        let num_db = numeric_grad(&bias, h, |b| objective(&x, &w, Some(b)));
        common::assert_close(&format!("dbias {what}"), &db, &num_db, ATOL, RTOL);
    }
}

#[test]
fn conv1d_backward_matches_finite_differences() {
    let shapes = [
        // (batch, c_in, c_out, len, kernel, dilation)
        (2, 3, 2, 9, 3, 1),
        (2, 3, 2, 11, 3, 2),  // dilation > 1
        (1, 2, 3, 10, 4, 1),  // even kernel: one more zero on the right than on the left
        (2, 2, 2, 13, 4, 3),  // even kernel with dilation
        (1, 3, 2, 8, 1, 1),   // 1×1
        (2, 2, 3, 1, 3, 2),   // length 1
        (1, 2, 2, 5, 5, 3),   // length < receptive field (13)
        (1, 5, 3, 300, 3, 2), // more than one CPU chunk of positions
    ];
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in shapes.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        conv_case(p, true, 100 + seed as u64);
        conv_case(p, false, 200 + seed as u64);
    }
}

#[test]
fn relu_sigmoid_add_backward_match_finite_differences() {
    let mut rng = Rng::new(7);
    let n = 257;
    // Keep ReLU inputs away from the kink, where the derivative is undefined.
    let x: Vec<f64> = rng.vec_f64(n, -2.0, 2.0).into_iter().map(|v| if v.abs() < 0.05 { v + 0.1 } else { v }).collect();
    let g = rng.vec_f64(n, -1.0, 1.0);
    let h = 1e-6;

    let relu_j = |x: &[f64]| {
        let mut y = vec![0.0; n];
        cpu::elementwise(ElementwiseOp::ReluFwd, Elementwise { a: x, b: None, out: &mut y }).expect("same lengths");
        dot(&y, &g)
    };
    let mut y = vec![0.0; n];
    cpu::elementwise(ElementwiseOp::ReluFwd, Elementwise { a: &x, b: None, out: &mut y }).expect("same lengths");
    let mut dx = vec![f64::NAN; n];
    cpu::elementwise(ElementwiseOp::ReluBwd, Elementwise { a: &y, b: Some(&g), out: &mut dx }).expect("same lengths");
    common::assert_close("relu dx", &dx, &numeric_grad(&x, h, relu_j), ATOL, RTOL);

    let sigmoid_j = |x: &[f64]| {
        let mut y = vec![0.0; n];
        cpu::elementwise(ElementwiseOp::SigmoidFwd, Elementwise { a: x, b: None, out: &mut y }).expect("same lengths");
        dot(&y, &g)
    };
    cpu::elementwise(ElementwiseOp::SigmoidFwd, Elementwise { a: &x, b: None, out: &mut y }).expect("same lengths");
    cpu::elementwise(ElementwiseOp::SigmoidBwd, Elementwise { a: &y, b: Some(&g), out: &mut dx })
        .expect("same lengths");
    common::assert_close("sigmoid dx", &dx, &numeric_grad(&x, h, sigmoid_j), ATOL, RTOL);

    let gelu_j = |x: &[f64]| {
        let mut y = vec![0.0; n];
        cpu::elementwise(ElementwiseOp::GeluFwd, Elementwise { a: x, b: None, out: &mut y }).expect("same lengths");
        dot(&y, &g)
    };
    cpu::elementwise(ElementwiseOp::GeluBwd, Elementwise { a: &x, b: Some(&g), out: &mut dx }).expect("same lengths");
    common::assert_close("gelu dx", &dx, &numeric_grad(&x, h, gelu_j), ATOL, RTOL);

    // y = a + b: the backward hands dy to both inputs unchanged.
    let b = rng.vec_f64(n, -1.0, 1.0);
    let add_j = |a: &[f64]| {
        let mut y = vec![0.0; n];
        cpu::elementwise(ElementwiseOp::Add, Elementwise { a: a, b: Some(&b), out: &mut y }).expect("same lengths");
        dot(&y, &g)
    };
    common::assert_close("add da", &g, &numeric_grad(&x, h, add_j), ATOL, RTOL);
}

fn loss_case(p: DenoiseLossParams, seed: u64) {
    let mut rng = Rng::new(seed);
    let n = p.batch * p.len;
    let reg = rng.vec_f64(n, 0.0, 5.0);
    // A clean track correlated with the prediction, as in training.
    let clean: Vec<f64> = reg.iter().map(|r| 0.7 * r + rng.uniform(0.0, 2.0)).collect();
    let logits = rng.vec_f64(n, -4.0, 4.0);
    let mask: Vec<f64> = (0..n).map(|_| if rng.unit() < 0.3 { 1.0 } else { 0.0 }).collect();

    let total = |reg: &[f64], logits: &[f64]| {
        let (mut dr, mut dc) = (vec![0.0; n], vec![0.0; n]);
        cpu::denoise_loss(
            &p,
            DenoiseLoss { reg: reg, clean: &clean, cls_logits: logits, mask: &mask, d_reg: &mut dr, d_cls: &mut dc },
        )
        .expect("valid shapes")
        .total
    };
    let (mut d_reg, mut d_cls) = (vec![f64::NAN; n], vec![f64::NAN; n]);
    let parts = cpu::denoise_loss(
        &p,
        DenoiseLoss {
            reg: &reg,
            clean: &clean,
            cls_logits: &logits,
            mask: &mask,
            d_reg: &mut d_reg,
            d_cls: &mut d_cls,
        },
    )
    .expect("valid shapes");
    assert!(parts.total.is_finite() && parts.pearson > 0.0 && parts.pearson < 1.0, "{parts:?}");

    let h = 1e-5;
    common::assert_close(&format!("d_reg {p:?}"), &d_reg, &numeric_grad(&reg, h, |r| total(r, &logits)), 1e-9, 1e-5);
    common::assert_close(&format!("d_cls {p:?}"), &d_cls, &numeric_grad(&logits, h, |z| total(&reg, z)), 1e-9, 1e-5);
    // The padding is cropped: its gradients are exactly zero.
    for b in 0..p.batch {
        for l in (0..p.pad).chain(p.len - p.pad..p.len) {
            assert_eq!((d_reg[b * p.len + l], d_cls[b * p.len + l]), (0.0, 0.0), "padding at ({b}, {l})");
        }
    }
}

#[test]
fn denoise_loss_gradients_match_finite_differences() {
    loss_case(DenoiseLossParams::atacworks(2, 16, 3), 11);
    loss_case(
        DenoiseLossParams { batch: 3, len: 9, pad: 0, mse_weight: 0.7, pearson_weight: 1.3, bce_weight: 0.4 },
        12,
    );
    loss_case(
        DenoiseLossParams { batch: 1, len: 40, pad: 10, mse_weight: 1.0, pearson_weight: 0.0, bce_weight: 2.0 },
        13,
    );
}

/// Random sorted CSR rows: each of `batch` rows holds each of `cells` cells with probability
/// `p` (row 0 empty and the last row full, to cover both ends).
pub fn random_rows(rng: &mut Rng, batch: usize, cells: usize, p: f64) -> (Vec<u32>, Vec<u32>) {
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for i in 0..batch {
        for c in 0..cells {
            let keep = if i == 0 {
                false
            } else if i == batch - 1 {
                true
            } else {
                rng.unit() < p
            };
            if keep {
                indices.push(c as u32);
            }
        }
        indptr.push(indices.len() as u32);
    }
    (indptr, indices)
}

#[test]
fn sparse_head_gradients_match_finite_differences_and_a_dense_reference() {
    use chromax::backend::{HeadRows, SparseHeadParams};
    let mut rng = Rng::new(23);
    let p = SparseHeadParams { batch: 4, cells: 9, dim: 3 };
    let z = rng.vec_f64(p.batch * p.dim, -1.5, 1.5);
    let w = rng.vec_f64(p.cells * p.dim, -1.5, 1.5);
    let b = rng.vec_f64(p.cells, -1.0, 1.0);
    let (indptr, indices) = random_rows(&mut rng, p.batch, p.cells, 0.4);
    let loss = |z: &[f64], w: &[f64], b: &[f64]| {
        let (mut dz, mut dw, mut db) = (vec![0.0; z.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
        cpu::sparse_head(
            &p,
            SparseHead {
                logits: HeadLogits { z: z, w: w, bias: b, rows: &HeadRows::host(&indptr, &indices) },
                dz: &mut dz,
                dw: &mut dw,
                dbias: &mut db,
            },
        )
        .expect("valid")
    };
    let (mut dz, mut dw, mut db) = (vec![0.0; z.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    let value = cpu::sparse_head(
        &p,
        SparseHead {
            logits: HeadLogits { z: &z, w: &w, bias: &b, rows: &HeadRows::host(&indptr, &indices) },
            dz: &mut dz,
            dw: &mut dw,
            dbias: &mut db,
        },
    )
    .expect("valid");
    let h = 1e-6;
    common::assert_close("sparse head dz", &dz, &numeric_grad(&z, h, |z| loss(z, &w, &b)), 1e-9, 1e-6);
    common::assert_close("sparse head dw", &dw, &numeric_grad(&w, h, |w| loss(&z, w, &b)), 1e-9, 1e-6);
    common::assert_close("sparse head db", &db, &numeric_grad(&b, h, |b| loss(&z, &w, b)), 1e-9, 1e-6);

    // The dense definition: the whole batch × cells logit matrix.
    let mut dense_loss = 0.0;
    let n = (p.batch * p.cells) as f64;
    for i in 0..p.batch {
        let row = &indices[indptr[i] as usize..indptr[i + 1] as usize];
        for c in 0..p.cells {
            let l = b[c] + (0..p.dim).map(|k| z[i * p.dim + k] * w[c * p.dim + k]).sum::<f64>();
            let y = if row.contains(&(c as u32)) { 1.0 } else { 0.0 };
            let s = 1.0 / (1.0 + (-l).exp());
            dense_loss -= y * s.ln() + (1.0 - y) * (1.0 - s).ln();
        }
    }
    assert!((value - dense_loss / n).abs() < 1e-12, "{value} vs {}", dense_loss / n);
}

#[test]
fn maxpool_follows_keras_same_padding_and_its_backward_matches_finite_differences() {
    use chromax::backend::MaxPoolParams;
    // Keras/TF "same": len 7, pool 3 → 3 outputs, 2 padding positions, 1 on the left:
    // windows [-1, 2), [2, 5), [5, 8) ∩ [0, 7).
    let p = MaxPoolParams { batch: 1, channels: 1, len: 7, pool: 3 };
    let x = [5.0, 1.0, 2.0, 9.0, 3.0, 4.0, 8.0];
    let mut y = [0.0; 3];
    cpu::maxpool_fwd(&p, MaxPoolFwd { x: &x[..], y: &mut y[..] }).expect("valid");
    assert_eq!(y, [5.0, 9.0, 8.0]);
    let mut dx = [f64::NAN; 7];
    cpu::maxpool_bwd(&p, MaxPoolBwd { x: &x[..], dy: &[1.0, 2.0, 3.0][..], dx: &mut dx[..] }).expect("valid");
    assert_eq!(dx, [1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0]);

    for (batch, channels, len, pool) in
        [(2, 3, 10, 2), (1, 2, 9, 4), (2, 1, 5, 5), (1, 1, 3, 4), (2, 2, 9, 3), (1, 2, 11, 3), (1, 1, 7, 2)]
    {
        let p = MaxPoolParams { batch, channels, len, pool };
        let mut rng = Rng::new(31 + len as u64);
        // Distinct values, so no window has a tie within h.
        let x: Vec<f64> = (0..batch * channels * len).map(|i| i as f64 * 0.37 % 1.0 + rng.uniform(0.0, 0.01)).collect();
        let g = rng.vec_f64(batch * channels * p.out_len(), -1.0, 1.0);
        let j = |x: &[f64]| {
            let mut y = vec![0.0; g.len()];
            cpu::maxpool_fwd(&p, MaxPoolFwd { x: x, y: &mut y }).expect("valid");
            dot(&y, &g)
        };
        let mut dx = vec![f64::NAN; x.len()];
        cpu::maxpool_bwd(&p, MaxPoolBwd { x: &x, dy: &g, dx: &mut dx }).expect("valid");
        common::assert_close(&format!("maxpool dx {p:?}"), &dx, &numeric_grad(&x, 1e-7, j), ATOL, RTOL);
    }
}

#[test]
fn batchnorm_backward_matches_finite_differences_and_running_statistics_move() {
    use chromax::backend::BatchNormParams;
    let p = BatchNormParams { batch: 3, channels: 2, len: 5, eps: 1e-3, momentum: 0.9 };
    let mut rng = Rng::new(41);
    let n = p.batch * p.channels * p.len;
    let x = rng.vec_f64(n, -2.0, 3.0);
    let gamma = rng.vec_f64(p.channels, 0.5, 1.5);
    let beta = rng.vec_f64(p.channels, -0.5, 0.5);
    let g = rng.vec_f64(n, -1.0, 1.0);
    let forward = |x: &[f64], gamma: &[f64], beta: &[f64]| {
        let (mut y, mut m, mut s, mut rm, mut rv) =
            (vec![0.0; n], vec![0.0; 2], vec![0.0; 2], vec![0.0; 2], vec![1.0; 2]);
        cpu::batchnorm_fwd_train(
            &p,
            BatchNormFwdTrain {
                x: x,
                gamma: gamma,
                beta: beta,
                y: &mut y,
                mean: &mut m,
                invstd: &mut s,
                running_mean: &mut rm,
                running_var: &mut rv,
            },
        )
        .expect("valid");
        (y, m, s, rm, rv)
    };
    let (y, mean, invstd, rm, rv) = forward(&x, &gamma, &beta);
    // Each channel of y has mean β and variance γ² · var/(var + ε).
    let m = (p.batch * p.len) as f64;
    for c in 0..p.channels {
        let vals: Vec<f64> = (0..p.batch)
            .flat_map(|b| (0..p.len).map(move |i| (b, i)))
            .map(|(b, i)| y[(b * p.channels + c) * p.len + i])
            .collect();
        let mu = vals.iter().sum::<f64>() / m;
        assert!((mu - beta[c]).abs() < 1e-12);
        // Running statistics: momentum·(0, 1) + (1 − momentum)·(batch mean, batch variance).
        let xs: Vec<f64> = (0..p.batch)
            .flat_map(|b| (0..p.len).map(move |i| (b, i)))
            .map(|(b, i)| x[(b * p.channels + c) * p.len + i])
            .collect();
        let xm = xs.iter().sum::<f64>() / m;
        let xv = xs.iter().map(|v| (v - xm).powi(2)).sum::<f64>() / m;
        assert!((mean[c] - xm).abs() < 1e-12 && (invstd[c] - 1.0 / (xv + 1e-3f32 as f64).sqrt()).abs() < 1e-9);
        let mom = 0.9f32 as f64; // the momentum is an f32 setting
        assert!((rm[c] - (1.0 - mom) * xm).abs() < 1e-12 && (rv[c] - (mom + (1.0 - mom) * xv)).abs() < 1e-12);
    }
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; n], vec![0.0; 2], vec![0.0; 2]);
    cpu::batchnorm_bwd(
        &p,
        BatchNormBwd {
            x: &x,
            dy: &g,
            gamma: &gamma,
            mean: &mean,
            invstd: &invstd,
            dx: &mut dx,
            dgamma: &mut dgamma,
            dbeta: &mut dbeta,
        },
    )
    .expect("valid");
    let h = 1e-6;
    common::assert_close("bn dx", &dx, &numeric_grad(&x, h, |x| dot(&forward(x, &gamma, &beta).0, &g)), 1e-8, 1e-5);
    common::assert_close(
        "bn dgamma",
        &dgamma,
        &numeric_grad(&gamma, h, |gm| dot(&forward(&x, gm, &beta).0, &g)),
        1e-8,
        1e-6,
    );
    common::assert_close(
        "bn dbeta",
        &dbeta,
        &numeric_grad(&beta, h, |bt| dot(&forward(&x, &gamma, bt).0, &g)),
        1e-8,
        1e-6,
    );

    // Inference normalises by the running statistics.
    let mut yi = vec![0.0; n];
    cpu::batchnorm_fwd_infer(
        &p,
        BatchNormFwdInfer { x: &x, gamma: &gamma, beta: &beta, running_mean: &rm, running_var: &rv, y: &mut yi },
    )
    .expect("valid");
    let c = 1;
    let want = gamma[c] * (x[p.len] - rm[c]) / (rv[c] + 1e-3f32 as f64).sqrt() + beta[c];
    assert!((yi[p.len] - want).abs() < 1e-12);
}

#[test]
fn dropout_backward_matches_finite_differences() {
    use chromax::backend::cpu::CpuBackend;
    use chromax::backend::{Backend, DropoutParams};
    // Through the Backend trait in f64: y = mask ⊙ x/(1 − rate) is linear in x, so the central
    // difference is exact up to rounding, dropped elements included (gradient 0).
    let cpu64 = CpuBackend::new_f64();
    let n = 300;
    let mut rng = Rng::new(53);
    let x = rng.vec_f64(n, -2.0, 2.0);
    let g = rng.vec_f64(n, -1.0, 1.0);
    for (rate, seed) in [(0.0f32, 1u64), (0.25, 2), (0.7, 3)] {
        let p = DropoutParams { rate, seed };
        let j = |x: &[f64]| {
            let mut y = vec![0.0; n];
            cpu64.dropout_fwd(&p, DropoutFwd { x: &x.to_vec(), y: &mut y }).expect("valid");
            dot(&y, &g)
        };
        let mut dx = vec![f64::NAN; n];
        cpu64.dropout_bwd(&p, DropoutBwd { dy: &g, dx: &mut dx }).expect("valid");
        common::assert_close(&format!("dropout dx {p:?}"), &dx, &numeric_grad(&x, 1e-6, j), ATOL, RTOL);
        let dropped = dx.iter().filter(|&&v| v == 0.0).count();
        if rate > 0.0 {
            assert!(dropped > 0 && dropped < n, "rate {rate}: {dropped} of {n} dropped");
        } else {
            assert_eq!(dropped, 0);
        }
    }
}
