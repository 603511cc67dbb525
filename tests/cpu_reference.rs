//! The CPU backend against independent, plainly written definitions: the direct sum of the
//! convolution, closed forms of the loss and Adam, and bit-for-bit independence from the
//! number of threads.

mod common;

use chromax::backend::cpu::{self, CpuBackend};
use chromax::backend::{AdamParams, Backend, Conv1dParams, DenoiseLossParams};
use chromax::backend::{AdamStep, Conv1dBwdWeight, Conv1dFwd, DenoiseLoss, OneHot, OneHotParams};
use common::Rng;

/// `y[b, co, l] = bias[co] + Σ_{ci, k} w[co, ci, k] · x[b, ci, l + k·d − pad_left]`, literally.
fn conv1d_direct(p: &Conv1dParams, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let pad = ((p.kernel - 1) * p.dilation / 2) as isize;
    let mut y = vec![0.0; p.output_len()];
    for b in 0..p.batch {
        for co in 0..p.c_out {
            for l in 0..p.len {
                let mut s = bias.map_or(0.0, |b| b[co]);
                for ci in 0..p.c_in {
                    for k in 0..p.kernel {
                        let src = l as isize + (k * p.dilation) as isize - pad;
                        if src >= 0 && (src as usize) < p.len {
                            s += w[(co * p.c_in + ci) * p.kernel + k] * x[(b * p.c_in + ci) * p.len + src as usize];
                        }
                    }
                }
                y[(b * p.c_out + co) * p.len + l] = s;
            }
        }
    }
    y
}

#[test]
fn conv1d_forward_equals_the_direct_sum() {
    let shapes = [
        (1, 1, 1, 4, 3, 1),
        (2, 15, 15, 3000, 51, 8), // the denoiser's layer on a shorter interval
        (3, 7, 9, 1000, 5, 3),
        (2, 4, 3, 37, 51, 8), // shorter than the receptive field (401)
        (1, 5, 6, 777, 4, 2),
        (2, 15, 1, 500, 1, 1),
        (1, 3, 5, 1, 3, 1),
    ];
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in shapes.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        let mut rng = Rng::new(seed as u64);
        let x = rng.vec_f64(p.input_len(), -1.0, 1.0);
        let w = rng.vec_f64(p.weight_len(), -0.2, 0.2);
        let bias = rng.vec_f64(p.c_out, -1.0, 1.0);
        let want = conv1d_direct(&p, &x, &w, Some(&bias));

        let mut y64 = vec![f64::NAN; p.output_len()];
        cpu::conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: Some(&bias), y: &mut y64 }).expect("valid shapes");
        // f64 GEMM against the f64 direct sum: only summation order differs.
        common::assert_close(&format!("f64 {p:?}"), &y64, &want, 1e-12, 1e-12);

        let (x32, w32, b32): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            x.iter().map(|&v| v as f32).collect(),
            w.iter().map(|&v| v as f32).collect(),
            bias.iter().map(|&v| v as f32).collect(),
        );
        let mut y32 = vec![f32::NAN; p.output_len()];
        cpu::conv1d_fwd(&p, Conv1dFwd { x: &x32, w: &w32, bias: Some(&b32), y: &mut y32 }).expect("valid shapes");
        // f32 inputs rounded (2^-24 relative) and up to 765 f32 products summed: ~1e-5 absolute.
        common::assert_close(&format!("f32 {p:?}"), &y32, &want, 3e-5, 1e-5);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let p = Conv1dParams { batch: 3, c_in: 15, c_out: 15, len: 5000, kernel: 51, dilation: 8 };
    let mut rng = Rng::new(99);
    let x = rng.vec_f32(p.input_len(), -1.0, 1.0);
    let dy = rng.vec_f32(p.output_len(), -1.0, 1.0);
    let lp = DenoiseLossParams::atacworks(3, 5000, 500);
    let (reg, clean, logits, mask) = (
        rng.vec_f32(3 * 5000, 0.0, 3.0),
        rng.vec_f32(3 * 5000, 0.0, 3.0),
        rng.vec_f32(3 * 5000, -3.0, 3.0),
        rng.mask_f32(3 * 5000, 0.2),
    );
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(|| {
            let mut dw = vec![0.0f32; p.weight_len()];
            let mut db = vec![0.0f32; p.c_out];
            cpu::conv1d_bwd_weight(&p, Conv1dBwdWeight { x: &x, dy: &dy, dw: &mut dw, dbias: Some(&mut db) })
                .expect("valid shapes");
            let (mut dr, mut dc) = (vec![0.0f32; 15000], vec![0.0f32; 15000]);
            let parts = cpu::denoise_loss(
                &lp,
                DenoiseLoss {
                    reg: &reg,
                    clean: &clean,
                    cls_logits: &logits,
                    mask: &mask,
                    d_reg: &mut dr,
                    d_cls: &mut dc,
                },
            )
            .expect("valid shapes");
            (dw, db, parts.total.to_bits(), dr)
        })
    };
    let (one, three) = (run(1), run(3));
    assert!(one.0 == three.0 && one.1 == three.1, "weight gradient differs between 1 and 3 threads");
    assert_eq!(one.2, three.2, "loss differs between 1 and 3 threads");
    assert!(one.3 == three.3, "loss gradient differs between 1 and 3 threads");
}

#[test]
fn denoise_loss_matches_closed_forms() {
    let cpu = CpuBackend::new();
    // Prediction = 2·clean + 1: r = 1, MSE = mean((clean + 1)²); logits 0: BCE = ln 2.
    let (batch, len, pad) = (2, 10, 2);
    let clean: Vec<f32> = (0..batch * len).map(|i| (i % 7) as f32).collect();
    let reg: Vec<f32> = clean.iter().map(|c| 2.0 * c + 1.0).collect();
    let logits = vec![0.0f32; batch * len];
    let mask: Vec<f32> = (0..batch * len).map(|i| (i % 2) as f32).collect();
    let p = DenoiseLossParams { batch, len, pad, mse_weight: 0.5, pearson_weight: 2.0, bce_weight: 3.0 };
    let (mut dr, mut dc) = (vec![0.0f32; batch * len], vec![0.0f32; batch * len]);
    let parts = cpu
        .denoise_loss(
            &p,
            DenoiseLoss { reg: &reg, clean: &clean, cls_logits: &logits, mask: &mask, d_reg: &mut dr, d_cls: &mut dc },
        )
        .expect("valid shapes");
    let cropped: Vec<usize> = (0..batch).flat_map(|b| (pad..len - pad).map(move |l| b * len + l)).collect();
    let mse = cropped.iter().map(|&i| ((clean[i] + 1.0) as f64).powi(2)).sum::<f64>() / cropped.len() as f64;
    assert!((parts.mse - mse).abs() < 1e-12 * mse, "{parts:?} vs mse {mse}");
    assert!((parts.pearson - 1.0).abs() < 1e-7, "{parts:?}");
    assert!((parts.bce - std::f64::consts::LN_2).abs() < 1e-12, "{parts:?}");
    let total = 0.5 * mse + 2.0 * (1.0 - parts.pearson) + 3.0 * std::f64::consts::LN_2;
    assert!((parts.total - total).abs() < 1e-12, "{parts:?} vs {total}");
    // ∂BCE/∂z at z = 0 is (0.5 − y)/N, times the weight.
    for &i in &cropped {
        let want = 3.0 * (0.5 - mask[i] as f64) / cropped.len() as f64;
        assert!((dc[i] as f64 - want).abs() < 1e-7, "d_cls[{i}] = {} want {want}", dc[i]);
    }
    // Extreme logits stay finite (stable BCE).
    let big = vec![80.0f32; batch * len];
    let parts = cpu
        .denoise_loss(
            &p,
            DenoiseLoss { reg: &reg, clean: &clean, cls_logits: &big, mask: &mask, d_reg: &mut dr, d_cls: &mut dc },
        )
        .expect("valid shapes");
    assert!(parts.bce.is_finite() && (parts.bce - 40.0).abs() < 1e-9, "{parts:?}");
}

#[test]
fn adam_matches_a_scalar_reference() {
    let mut rng = Rng::new(5);
    let n = 1000;
    let mut theta = rng.vec_f32(n, -1.0, 1.0);
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut want: Vec<(f64, f64, f64)> = theta.iter().map(|&t| (t as f64, 0.0, 0.0)).collect();
    for step in 1..=5u64 {
        let grad = rng.vec_f32(n, -2.0, 2.0);
        let p = AdamParams { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, step };
        cpu::adam_step(&p, AdamStep { param: &mut theta, grad: &grad, m: &mut m, v: &mut v }).expect("same lengths");
        for ((t, m, v), &g) in want.iter_mut().zip(&grad) {
            let g = g as f64 + 0.01 * *t;
            *m = 0.9 * *m + 0.1 * g;
            *v = 0.999 * *v + 0.001 * g * g;
            let (mh, vh) = (*m / (1.0 - 0.9f64.powi(step as i32)), *v / (1.0 - 0.999f64.powi(step as i32)));
            *t -= 1e-2 * mh / (vh.sqrt() + 1e-8);
        }
    }
    let want_theta: Vec<f64> = want.iter().map(|w| w.0).collect();
    // f32 arithmetic over five steps against f64: a few ulps of θ.
    common::assert_close("adam θ", &theta, &want_theta, 1e-6, 1e-5);
}

#[test]
fn shape_errors_name_the_op_and_buffer() {
    let cpu = CpuBackend::new();
    let p = Conv1dParams { batch: 1, c_in: 2, c_out: 3, len: 10, kernel: 3, dilation: 1 };
    let (x, w) = (vec![0.0f32; 20], vec![0.0f32; 17]);
    let mut y = vec![0.0f32; 30];
    let err =
        cpu.conv1d_fwd(&p, Conv1dFwd { x: &x, w: &w, bias: None, y: &mut y }).expect_err("w is one short").to_string();
    assert!(err.contains("conv1d_fwd") && err.contains("'w'") && err.contains("17") && err.contains("18"), "{err}");
    let zero = Conv1dParams { len: 0, ..p };
    let err = cpu
        .conv1d_fwd(&zero, Conv1dFwd { x: &Vec::new(), w: &w, bias: None, y: &mut Vec::new() })
        .expect_err("empty length")
        .to_string();
    assert!(err.contains("len must be at least 1"), "{err}");
    let lp = DenoiseLossParams::atacworks(1, 10, 5);
    let mut d = vec![0.0f32; 10];
    let err = cpu
        .denoise_loss(
            &lp,
            DenoiseLoss {
                reg: &d.clone(),
                clean: &d.clone(),
                cls_logits: &d.clone(),
                mask: &d.clone(),
                d_reg: &mut d.clone(),
                d_cls: &mut d,
            },
        )
        .expect_err("all cropped");
    assert!(err.to_string().contains("leave no bases"), "{err}");
}

#[test]
fn one_hot_encodes_and_reverse_complements() {
    // ACGTN and its reverse complement NACGT.
    let codes = [0u8, 1, 2, 3, 4, 0, 1, 2, 3, 4];
    let mut out = vec![f32::NAN; 2 * 4 * 5];
    let p = OneHotParams { batch: 2, len: 5 };
    cpu::one_hot(&p, OneHot { codes: &codes, reverse: &[false, true], shift: &[0, 0], out: &mut out }).expect("valid");
    let row = |b: usize, ch: usize| out[(b * 4 + ch) * 5..(b * 4 + ch + 1) * 5].to_vec();
    assert_eq!(row(0, 0), [1.0, 0.0, 0.0, 0.0, 0.0]); // A at 0
    assert_eq!(row(0, 3), [0.0, 0.0, 0.0, 1.0, 0.0]); // T at 3, N at 4 is all zeros
    assert_eq!(row(1, 0), [0.0, 1.0, 0.0, 0.0, 0.0]); // reverse complement N A C G T
    assert_eq!(row(1, 1), [0.0, 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(row(1, 3), [0.0, 0.0, 0.0, 0.0, 1.0]);
    assert!((0..5).all(|l| (0..4).map(|ch| row(1, ch)[l]).sum::<f32>() == if l == 0 { 0.0 } else { 1.0 }));
    let p = OneHotParams { batch: 1, len: 2 };
    let bufs = OneHot { codes: &[0, 7], reverse: &[false], shift: &[0], out: &mut vec![0f32; 8] };
    let err = cpu::one_hot(&p, bufs).expect_err("7 is not a code").to_string();
    assert!(err.contains("code 7 at 1"), "{err}");
}
