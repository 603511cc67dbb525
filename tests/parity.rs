//! CUDA against the CPU specification, op by op, forward and backward, over a table of
//! shapes that includes the denoiser's real layer and awkward ones. Without a CUDA device
//! every test prints "skipped: no CUDA device" (set CHROMAX_REQUIRE_CUDA=1 to fail instead).
//!
//! Tolerance: `|gpu − cpu| ≤ atol + rtol·|cpu|`, set per op below with its reason.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::backend::cuda::CudaBackend;
use chromax::backend::{AdamParams, Backend, Conv1dParams, DenoiseLossParams};
use common::{assert_close, cuda_or_skip, Rng};

/// (batch, c_in, c_out, len, kernel, dilation)
const CONV_SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (2, 15, 15, 60_000, 51, 8), // the denoiser's residual-block conv on one real interval
    (1, 3, 5, 1, 3, 1),         // length 1
    (2, 4, 3, 37, 51, 8),       // length < receptive field (401)
    (3, 7, 9, 1000, 5, 3),      // odd channel counts, not multiples of the 8-channel tiles
    (2, 15, 1, 5000, 1, 1),     // 1×1 conv (regression head)
    (1, 1, 15, 2000, 51, 8),    // one input channel (the first block's input)
    (1, 5, 6, 777, 4, 2),       // even kernel: padding one longer on the right
    (1, 40, 20, 600, 9, 4),     // more input channels than one shared-memory tile
];

fn upload(gpu: &CudaBackend, v: &[f32]) -> cudarc::driver::CudaSlice<f32> {
    gpu.upload(v).expect("upload")
}

fn download(gpu: &CudaBackend, b: &cudarc::driver::CudaSlice<f32>) -> Vec<f32> {
    let mut host = vec![f32::NAN; gpu.buf_len(b)];
    gpu.download(b, &mut host).expect("download");
    host
}

/// A device buffer filled with NaN, so an element the kernel fails to write shows.
fn poisoned(gpu: &CudaBackend, len: usize) -> cudarc::driver::CudaSlice<f32> {
    upload(gpu, &vec![f32::NAN; len])
}

#[test]
fn conv1d_cuda_matches_cpu() {
    let Some(gpu) = cuda_or_skip("conv1d_cuda_matches_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    for (seed, &(batch, c_in, c_out, len, kernel, dilation)) in CONV_SHAPES.iter().enumerate() {
        let p = Conv1dParams { batch, c_in, c_out, len, kernel, dilation };
        let mut rng = Rng::new(1000 + seed as u64);
        let x = rng.vec_f32(p.input_len(), -1.0, 1.0);
        let w = rng.vec_f32(p.weight_len(), -0.2, 0.2);
        let bias = rng.vec_f32(p.c_out, -1.0, 1.0);
        let dy = rng.vec_f32(p.output_len(), -1.0, 1.0);
        let (gx, gw, gb, gdy) = (upload(&gpu, &x), upload(&gpu, &w), upload(&gpu, &bias), upload(&gpu, &dy));

        // Forward: sums of c_in·K ≤ 765 f32 products of O(0.2) terms; both sides accumulate in
        // f32 in different orders, so ~sqrt(765)·2^-24·|terms| absolute, with room to spare.
        let (fwd_atol, fwd_rtol) = (1e-4, 1e-4);
        for with_bias in [true, false] {
            let mut want = vec![0.0f32; p.output_len()];
            cpu.conv1d_fwd(&p, &x, &w, with_bias.then_some(&bias), &mut want).expect("cpu fwd");
            let mut gy = poisoned(&gpu, p.output_len());
            gpu.conv1d_fwd(&p, &gx, &gw, with_bias.then_some(&gb), &mut gy).expect("cuda fwd");
            assert_close(
                &format!("conv1d_fwd bias={with_bias} {p:?}"),
                &download(&gpu, &gy),
                &want,
                fwd_atol,
                fwd_rtol,
            );
        }

        // Backward-input: the same kind of sum (c_out·K terms).
        let mut want_dx = vec![0.0f32; p.input_len()];
        cpu.conv1d_bwd_input(&p, &dy, &w, &mut want_dx).expect("cpu bwd_input");
        let mut gdx = poisoned(&gpu, p.input_len());
        gpu.conv1d_bwd_input(&p, &gdy, &gw, &mut gdx).expect("cuda bwd_input");
        assert_close(&format!("conv1d_bwd_input {p:?}"), &download(&gpu, &gdx), &want_dx, fwd_atol, fwd_rtol);

        // Backward-weight: sums over batch·len terms of O(1) with random signs, so values of
        // O(sqrt(batch·len)); f32 partial sums differ in order: relative 1e-5 of that scale.
        let terms = (p.batch * p.len) as f64;
        let (wgt_atol, wgt_rtol) = (1e-5 * terms.sqrt().max(1.0) * 4.0, 1e-4);
        let mut want_dw = vec![0.0f32; p.weight_len()];
        let mut want_db = vec![0.0f32; p.c_out];
        cpu.conv1d_bwd_weight(&p, &x, &dy, &mut want_dw, Some(&mut want_db)).expect("cpu bwd_weight");
        let mut gdw = poisoned(&gpu, p.weight_len());
        let mut gdb = poisoned(&gpu, p.c_out);
        gpu.conv1d_bwd_weight(&p, &gx, &gdy, &mut gdw, Some(&mut gdb)).expect("cuda bwd_weight");
        assert_close(&format!("conv1d_bwd_weight dw {p:?}"), &download(&gpu, &gdw), &want_dw, wgt_atol, wgt_rtol);
        assert_close(&format!("conv1d_bwd_weight dbias {p:?}"), &download(&gpu, &gdb), &want_db, wgt_atol, wgt_rtol);
        common::say(&format!("conv1d parity ok: {p:?}"));
    }
}

#[test]
fn elementwise_cuda_matches_cpu() {
    let Some(gpu) = cuda_or_skip("elementwise_cuda_matches_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    for (seed, &n) in [1usize, 7, 1000, 2 * 15 * 60_000, 3_000_001].iter().enumerate() {
        let mut rng = Rng::new(seed as u64);
        let x = rng.vec_f32(n, -30.0, 30.0);
        let b = rng.vec_f32(n, -1.0, 1.0);
        let (gx, gb) = (upload(&gpu, &x), upload(&gpu, &b));
        let mut want = vec![0.0f32; n];
        let mut got = poisoned(&gpu, n);

        // ReLU, its backward and the add are exact in f32: no tolerance.
        cpu.relu_fwd(&x, &mut want).expect("cpu");
        gpu.relu_fwd(&gx, &mut got).expect("cuda");
        assert_close(&format!("relu_fwd n={n}"), &download(&gpu, &got), &want, 0.0, 0.0);
        let y = want.clone();
        let gy = upload(&gpu, &y);
        cpu.relu_bwd(&y, &b, &mut want).expect("cpu");
        gpu.relu_bwd(&gy, &gb, &mut got).expect("cuda");
        assert_close(&format!("relu_bwd n={n}"), &download(&gpu, &got), &want, 0.0, 0.0);
        cpu.add_fwd(&x, &b, &mut want).expect("cpu");
        gpu.add_fwd(&gx, &gb, &mut got).expect("cuda");
        assert_close(&format!("add_fwd n={n}"), &download(&gpu, &got), &want, 0.0, 0.0);

        // Sigmoid: expf differs by a couple of ulps between libm and CUDA's expf.
        cpu.sigmoid_fwd(&x, &mut want).expect("cpu");
        gpu.sigmoid_fwd(&gx, &mut got).expect("cuda");
        assert_close(&format!("sigmoid_fwd n={n}"), &download(&gpu, &got), &want, 1e-7, 1e-6);
        let s = want.clone();
        let gs = upload(&gpu, &s);
        cpu.sigmoid_bwd(&s, &b, &mut want).expect("cpu");
        gpu.sigmoid_bwd(&gs, &gb, &mut got).expect("cuda");
        // Two f32 products, possibly fused into an FMA on the GPU: an ulp or two.
        assert_close(&format!("sigmoid_bwd n={n}"), &download(&gpu, &got), &want, 1e-8, 1e-6);

        // GELU: expf and an FMA or two: a few ulps of values up to |x| = 30.
        cpu.gelu_fwd(&x, &mut want).expect("cpu");
        gpu.gelu_fwd(&gx, &mut got).expect("cuda");
        assert_close(&format!("gelu_fwd n={n}"), &download(&gpu, &got), &want, 1e-6, 1e-5);
        cpu.gelu_bwd(&x, &b, &mut want).expect("cpu");
        gpu.gelu_bwd(&gx, &gb, &mut got).expect("cuda");
        assert_close(&format!("gelu_bwd n={n}"), &download(&gpu, &got), &want, 1e-6, 1e-5);
    }
}

#[test]
fn denoise_loss_cuda_matches_cpu() {
    let Some(gpu) = cuda_or_skip("denoise_loss_cuda_matches_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    let cases = [
        DenoiseLossParams::atacworks(2, 60_000, 5_000), // two real intervals
        DenoiseLossParams::atacworks(64, 6_000, 500),   // a full batch of shorter ones
        DenoiseLossParams { batch: 1, len: 3, pad: 1, mse_weight: 1.0, pearson_weight: 1.0, bce_weight: 1.0 },
        DenoiseLossParams { batch: 3, len: 1001, pad: 0, mse_weight: 0.3, pearson_weight: 2.0, bce_weight: 0.5 },
    ];
    for (seed, p) in cases.iter().enumerate() {
        let n = p.batch * p.len;
        let mut rng = Rng::new(50 + seed as u64);
        let clean = rng.vec_f32(n, 0.0, 20.0);
        let reg: Vec<f32> = clean.iter().map(|&c| 0.5 * c + rng.uniform(0.0, 5.0) as f32).collect();
        let logits = rng.vec_f32(n, -8.0, 8.0);
        let mask = rng.mask_f32(n, 0.1);
        let (mut dr, mut dc) = (vec![0.0f32; n], vec![0.0f32; n]);
        let want = cpu.denoise_loss(p, &reg, &clean, &logits, &mask, &mut dr, &mut dc).expect("cpu loss");
        let (mut gdr, mut gdc) = (poisoned(&gpu, n), poisoned(&gpu, n));
        let got = gpu
            .denoise_loss(
                p,
                &upload(&gpu, &reg),
                &upload(&gpu, &clean),
                &upload(&gpu, &logits),
                &upload(&gpu, &mask),
                &mut gdr,
                &mut gdc,
            )
            .expect("cuda loss");
        // Both sum in f64 from the same f32 inputs, in different orders: ~1e-12 relative.
        for (name, g, c) in [
            ("total", got.total, want.total),
            ("mse", got.mse, want.mse),
            ("r", got.pearson, want.pearson),
            ("bce", got.bce, want.bce),
        ] {
            assert!((g - c).abs() <= 1e-10 + 1e-9 * c.abs(), "{name}: cuda {g} cpu {c} ({p:?})");
        }
        // Gradients are computed in f64 and rounded to f32 once; exp/log1p differ by ulps.
        let scale = 1.0 / (p.batch * p.cropped_len()) as f64;
        assert_close(&format!("d_reg {p:?}"), &download(&gpu, &gdr), &dr, 1e-6 * scale, 1e-5);
        assert_close(&format!("d_cls {p:?}"), &download(&gpu, &gdc), &dc, 1e-6 * scale, 1e-5);
    }
}

#[test]
fn adam_cuda_matches_cpu() {
    let Some(gpu) = cuda_or_skip("adam_cuda_matches_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    for (seed, &n) in [1usize, 219_706, 1_000_003].iter().enumerate() {
        let mut rng = Rng::new(70 + seed as u64);
        let mut theta = rng.vec_f32(n, -1.0, 1.0);
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut gt, mut gm, mut gv) = (upload(&gpu, &theta), upload(&gpu, &m), upload(&gpu, &v));
        for step in 1..=3 {
            let grad = rng.vec_f32(n, -1.0, 1.0);
            let p = AdamParams { weight_decay: 1e-3, ..AdamParams::new(2e-4, step) };
            cpu.adam_step(&p, &mut theta, &grad, &mut m, &mut v).expect("cpu adam");
            gpu.adam_step(&p, &mut gt, &upload(&gpu, &grad), &mut gm, &mut gv).expect("cuda adam");
        }
        // Same f32 formula; the GPU may fuse multiply-adds: an ulp or two per step.
        assert_close(&format!("adam θ n={n}"), &download(&gpu, &gt), &theta, 1e-7, 1e-6);
        assert_close(&format!("adam m n={n}"), &download(&gpu, &gm), &m, 1e-8, 1e-5);
        assert_close(&format!("adam v n={n}"), &download(&gpu, &gv), &v, 1e-10, 1e-5);
    }
}

#[test]
fn cuda_rejects_bad_shapes_like_the_cpu() {
    let Some(gpu) = cuda_or_skip("cuda_rejects_bad_shapes_like_the_cpu") else {
        return;
    };
    let p = Conv1dParams { batch: 1, c_in: 2, c_out: 3, len: 10, kernel: 3, dilation: 1 };
    let (x, w) = (upload(&gpu, &[0.0; 20]), upload(&gpu, &[0.0; 17]));
    let mut y = poisoned(&gpu, 30);
    let err = gpu.conv1d_fwd(&p, &x, &w, None, &mut y).expect_err("w is one short").to_string();
    assert!(err.contains("conv1d_fwd") && err.contains("'w'"), "{err}");
}

#[test]
fn denoisenet_cuda_matches_cpu_on_one_real_sized_interval() {
    use chromax::models::{DenoiseConfig, DenoiseNet};
    use chromax::nn::{download_f32, upload_f32};
    let Some(gpu) = cuda_or_skip("denoisenet_cuda_matches_cpu_on_one_real_sized_interval") else { return };
    let cpu = CpuBackend::new();
    let cfg = DenoiseConfig::default();
    let (batch, width, pad) = (1, 60_000, 5_000);
    let mut rng = Rng::new(404);
    let x: Vec<f32> =
        (0..width).map(|i| (5.0 + 4.0 * ((i as f64) * 0.002).sin() + rng.uniform(0.0, 3.0)) as f32).collect();
    let clean: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
    let mask: Vec<f32> = x.iter().map(|&v| if v > 8.0 { 1.0 } else { 0.0 }).collect();
    let loss = DenoiseLossParams::atacworks(batch, width, pad);
    let mut cpu_net = DenoiseNet::new(&cpu, cfg, 3).expect("cpu net");
    let mut gpu_net = DenoiseNet::new(&gpu, cfg, 3).expect("gpu net");

    let (co, cc) = cpu_net.forward(&cpu, x.clone(), batch, width).expect("cpu fwd");
    let (mut cdr, mut cdc) = (vec![0f32; width], vec![0f32; width]);
    let cpu_loss = cpu.denoise_loss(&loss, &co.reg, &clean, &co.logits, &mask, &mut cdr, &mut cdc).expect("cpu loss");
    cpu_net.backward(&cpu, &co, &cc, &cdr, &cdc).expect("cpu bwd");

    let (go, gc) = gpu_net.forward(&gpu, upload_f32(&gpu, &x).expect("x"), batch, width).expect("gpu fwd");
    let (mut gdr, mut gdc) = (gpu.zeros(width).expect("d"), gpu.zeros(width).expect("d"));
    let (gclean, gmask) = (upload_f32(&gpu, &clean).expect("clean"), upload_f32(&gpu, &mask).expect("mask"));
    let gpu_loss = gpu.denoise_loss(&loss, &go.reg, &gclean, &go.logits, &gmask, &mut gdr, &mut gdc).expect("gpu loss");
    gpu_net.backward(&gpu, &go, &gc, &gdr, &gdc).expect("gpu bwd");

    // Seven blocks of f32 sums in different orders: ~1e-5 relative through the network.
    assert_close("reg", &download_f32(&gpu, &go.reg).expect("reg"), &co.reg, 1e-3, 1e-3);
    assert_close("logits", &download_f32(&gpu, &go.logits).expect("logits"), &co.logits, 1e-3, 1e-3);
    assert!(
        (gpu_loss.total - cpu_loss.total).abs() < 1e-4 * cpu_loss.total.abs().max(1.0),
        "{gpu_loss:?} vs {cpu_loss:?}"
    );
    for (g, c) in gpu_net.params().iter().zip(cpu_net.params()) {
        let got = download_f32(&gpu, &g.grad).expect("grad");
        let scale = c.grad.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        // Gradients sum over 60,000 positions: compare against the tensor's largest entry.
        assert_close(&format!("grad {}", c.name), &got, &c.grad, 1e-3 * scale.max(1e-6), 1e-2);
    }
}

#[test]
fn denoising_through_the_pipeline_on_cuda_matches_cpu() {
    use chromax::infer::{denoise_spans, open_inputs, resolve_spans};
    use chromax::io::ChromSizes;
    use chromax::models::DenoiseConfig;
    use chromax::train::checkpoint::{weight_tensors, write_json, write_tensors, ModelConfig};
    use chromax::train::denoise::load_model;
    let Some(gpu) = cuda_or_skip("denoising_through_the_pipeline_on_cuda_matches_cpu") else { return };
    // Pinned batch buffers, the prefetch thread, the model and the read-back, on real shapes.
    let dir = std::env::temp_dir().join(format!("chromax-parity-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("model")).expect("dir");
    std::fs::write(dir.join("g.sizes"), "a\t123457\nb\t60001\n").expect("sizes");
    let mut rng = Rng::new(8);
    let mut bg = String::new();
    for (chrom, len) in [("a", 123_457u64), ("b", 60_001)] {
        let mut p = 0;
        while p < len {
            let e = (p + 1 + (rng.unit() * 300.0) as u64).min(len);
            bg.push_str(&format!("{chrom}\t{p}\t{e}\t{}\n", (rng.unit() * 20.0).floor()));
            p = e;
        }
    }
    std::fs::write(dir.join("noisy.bedGraph"), bg).expect("bedGraph");
    let cpu = CpuBackend::new();
    let cfg = DenoiseConfig::default();
    let net = chromax::models::DenoiseNet::new(&cpu, cfg, 9).expect("net");
    let config = ModelConfig {
        format: "chromax-denoise-1".into(),
        model: cfg,
        interval: 50_000,
        pad: 5_000,
        extra_tracks: vec![],
        training: serde_json::Value::Null,
        created_by: "test".into(),
    };
    write_json(&dir.join("model/config.json"), &config).expect("config");
    write_tensors(&dir.join("model/model.safetensors"), &weight_tensors(&cpu, &net).expect("weights"))
        .expect("weights");
    let sizes = ChromSizes::read(dir.join("g.sizes")).expect("sizes");
    let spans = resolve_spans(&[], &sizes).expect("spans");
    let (mut c_reg, mut c_prob, mut g_reg, mut g_prob) = (vec![], vec![], vec![], vec![]);
    let (cpu_net, cpu_cfg) = load_model(&cpu, &dir.join("model")).expect("cpu model");
    let set = open_inputs(&cpu_cfg, &dir.join("noisy.bedGraph"), &[], &sizes).expect("inputs");
    denoise_spans(&cpu, &cpu_net, &cpu_cfg, set.clone(), &spans, 3, &mut |_, _, reg, prob| {
        c_reg.extend_from_slice(reg);
        c_prob.extend_from_slice(prob);
        Ok(())
    })
    .expect("cpu");
    let (gpu_net, gpu_cfg) = load_model(&gpu, &dir.join("model")).expect("gpu model");
    denoise_spans(&gpu, &gpu_net, &gpu_cfg, set, &spans, 3, &mut |_, _, reg, prob| {
        g_reg.extend_from_slice(reg);
        g_prob.extend_from_slice(prob);
        Ok(())
    })
    .expect("gpu");
    assert_eq!(c_reg.len() as u64, sizes.total());
    assert_close("denoised", &g_reg, &c_reg, 1e-3, 1e-3);
    assert_close("probability", &g_prob, &c_prob, 1e-4, 1e-3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sparse_head_cuda_matches_cpu() {
    use chromax::backend::SparseHeadParams;
    let Some(gpu) = cuda_or_skip("sparse_head_cuda_matches_cpu") else { return };
    let cpu = CpuBackend::new();
    // scBasset's batch and bottleneck; cells from one tile to several thousand tiles.
    for (seed, &(batch, cells, dim, density)) in
        [(128usize, 1usize, 32usize, 0.5f64), (128, 10_000, 32, 0.03), (128, 300_001, 32, 0.03), (7, 129, 64, 0.2)]
            .iter()
            .enumerate()
    {
        let p = SparseHeadParams { batch, cells, dim };
        let mut rng = Rng::new(900 + seed as u64);
        let z = rng.vec_f32(batch * dim, -1.0, 1.0);
        let w = rng.vec_f32(cells * dim, -0.5, 0.5);
        let b = rng.vec_f32(cells, -3.0, 0.0);
        let (mut indptr, mut indices) = (vec![0u32], Vec::new());
        for _ in 0..batch {
            for c in 0..cells {
                if rng.unit() < density {
                    indices.push(c as u32);
                }
            }
            indptr.push(indices.len() as u32);
        }
        let (mut dz, mut dw, mut db) = (vec![0f32; batch * dim], vec![0f32; cells * dim], vec![0f32; cells]);
        let want = cpu.sparse_head(&p, &z, &w, &b, &indptr, &indices, &mut dz, &mut dw, &mut db).expect("cpu");
        let (mut gz, mut gw, mut gb) =
            (poisoned(&gpu, batch * dim), poisoned(&gpu, cells * dim), poisoned(&gpu, cells));
        let got = gpu
            .sparse_head(
                &p,
                &upload(&gpu, &z),
                &upload(&gpu, &w),
                &upload(&gpu, &b),
                &indptr,
                &indices,
                &mut gz,
                &mut gw,
                &mut gb,
            )
            .expect("cuda");
        // The GPU sums logits in f32 (≤ 64 terms), the CPU in f64: relative 1e-6 on the loss.
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-3), "loss {got} vs {want} ({p:?})");
        let scale = 1.0 / (batch * cells) as f64;
        assert_close(&format!("dz {p:?}"), &download(&gpu, &gz), &dz, 1e-4 * scale * cells as f64, 1e-4);
        assert_close(&format!("dw {p:?}"), &download(&gpu, &gw), &dw, 1e-5 * scale * batch as f64, 1e-4);
        assert_close(&format!("db {p:?}"), &download(&gpu, &gb), &db, 1e-5 * scale * batch as f64, 1e-4);
    }
}

#[test]
fn maxpool_cuda_matches_cpu() {
    use chromax::backend::MaxPoolParams;
    let Some(gpu) = cuda_or_skip("maxpool_cuda_matches_cpu") else { return };
    let cpu = CpuBackend::new();
    // SeqNet's pools: the stem's 3 over 1,344 bases, then 2 over odd and even lengths.
    for (seed, &(batch, channels, len, pool)) in
        [(128usize, 288usize, 1344usize, 3usize), (128, 323, 448, 2), (128, 512, 7, 2), (3, 5, 1, 2)].iter().enumerate()
    {
        let p = MaxPoolParams { batch, channels, len, pool };
        let mut rng = Rng::new(1200 + seed as u64);
        let x = rng.vec_f32(batch * channels * len, -1.0, 1.0);
        let dy = rng.vec_f32(batch * channels * p.out_len(), -1.0, 1.0);
        let (mut y, mut dx) = (vec![0f32; dy.len()], vec![0f32; x.len()]);
        cpu.maxpool_fwd(&p, &x, &mut y).expect("cpu");
        cpu.maxpool_bwd(&p, &x, &dy, &mut dx).expect("cpu");
        let (gx, gdy) = (upload(&gpu, &x), upload(&gpu, &dy));
        let (mut gy, mut gdx) = (poisoned(&gpu, dy.len()), poisoned(&gpu, x.len()));
        gpu.maxpool_fwd(&p, &gx, &mut gy).expect("cuda");
        gpu.maxpool_bwd(&p, &gx, &gdy, &mut gdx).expect("cuda");
        // A selection, not arithmetic: exact.
        assert_close(&format!("maxpool_fwd {p:?}"), &download(&gpu, &gy), &y, 0.0, 0.0);
        assert_close(&format!("maxpool_bwd {p:?}"), &download(&gpu, &gdx), &dx, 0.0, 0.0);
    }
}

#[test]
fn one_hot_cuda_matches_cpu() {
    let Some(gpu) = cuda_or_skip("one_hot_cuda_matches_cpu") else { return };
    let cpu = CpuBackend::new();
    let (batch, len) = (128usize, 1344usize);
    let mut rng = Rng::new(77);
    let codes: Vec<u8> = (0..batch * len).map(|_| (rng.unit() * 5.0) as u8).collect();
    let reverse: Vec<bool> = (0..batch).map(|_| rng.unit() < 0.5).collect();
    // No shift, scBasset's ±3, and the largest shifts allowed.
    let shifts: [Vec<i32>; 3] = [
        vec![0; batch],
        (0..batch).map(|_| (rng.unit() * 7.0) as i32 - 3).collect(),
        (0..batch).map(|b| if b % 2 == 0 { len as i32 - 1 } else { 1 - len as i32 }).collect(),
    ];
    for shift in &shifts {
        let mut want = vec![0f32; batch * 4 * len];
        cpu.one_hot(batch, len, &codes, &reverse, shift, &mut want).expect("cpu");
        let mut got = poisoned(&gpu, batch * 4 * len);
        gpu.one_hot(batch, len, &codes, &reverse, shift, &mut got).expect("cuda");
        // Exact: 0, 0.25 and 1 only.
        assert_close(&format!("one_hot shifts {:?}…", &shift[..4]), &download(&gpu, &got), &want, 0.0, 0.0);
    }
}

#[test]
fn dropout_cuda_matches_cpu_bit_for_bit() {
    use chromax::backend::DropoutParams;
    let Some(gpu) = cuda_or_skip("dropout_cuda_matches_cpu_bit_for_bit") else { return };
    let cpu = CpuBackend::new();
    // A tower activation of SeqNet's batch (more elements than one grid-stride round), odd sizes.
    for (n, rate, seed) in [(128 * 288 * 448, 0.2f32, 7u64), (1, 0.5, 1), (1001, 0.0, 3), (70_001, 0.9, u64::MAX)] {
        let p = DropoutParams { rate, seed };
        let mut rng = Rng::new(seed ^ 11);
        let x = rng.vec_f32(n, -3.0, 3.0);
        let (mut y, mut dx) = (vec![0f32; n], vec![0f32; n]);
        cpu.dropout_fwd(&p, &x, &mut y).expect("cpu");
        cpu.dropout_bwd(&p, &x, &mut dx).expect("cpu");
        let gx = upload(&gpu, &x);
        let (mut gy, mut gdx) = (poisoned(&gpu, n), poisoned(&gpu, n));
        gpu.dropout_fwd(&p, &gx, &mut gy).expect("cuda");
        gpu.dropout_bwd(&p, &gx, &mut gdx).expect("cuda");
        // The same mask from the same integer hash and the same f32 scale: bit for bit.
        assert_close(&format!("dropout_fwd n {n} {p:?}"), &download(&gpu, &gy), &y, 0.0, 0.0);
        assert_close(&format!("dropout_bwd n {n} {p:?}"), &download(&gpu, &gdx), &dx, 0.0, 0.0);
    }
}

#[test]
fn head_roc_histogram_cuda_matches_cpu() {
    use chromax::backend::{SparseHeadParams, ROC_BINS};
    let Some(gpu) = cuda_or_skip("head_roc_histogram_cuda_matches_cpu") else { return };
    let cpu = CpuBackend::new();
    for (seed, &(batch, cells, dim, density)) in
        [(128usize, 10_000usize, 32usize, 0.03f64), (128, 300_001, 32, 0.03), (13, 257, 64, 0.2), (1, 1, 1, 0.5)]
            .iter()
            .enumerate()
    {
        let p = SparseHeadParams { batch, cells, dim };
        let mut rng = Rng::new(1900 + seed as u64);
        let z = rng.vec_f32(batch * dim, -1.0, 1.0);
        let w = rng.vec_f32(cells * dim, -1.0, 1.0);
        let b = rng.vec_f32(cells, -3.0, 1.0);
        let (mut indptr, mut indices) = (vec![0u32], Vec::new());
        for _ in 0..batch {
            for c in 0..cells {
                if rng.unit() < density {
                    indices.push(c as u32);
                }
            }
            indptr.push(indices.len() as u32);
        }
        let (gz, gw, gb) = (upload(&gpu, &z), upload(&gpu, &w), upload(&gpu, &b));
        for per_row in [false, true] {
            let want = cpu.head_roc_histogram(&p, &z, &w, &b, &indptr, &indices, per_row).expect("cpu");
            let got = gpu.head_roc_histogram(&p, &gz, &gw, &gb, &indptr, &indices, per_row).expect("cuda");
            let what = format!("{p:?} per_row {per_row}");
            assert_eq!(got.len(), want.len(), "{what}");
            // Both sum the logit in f64 in one order and round once, so the bins should agree
            // exactly; allow logits on a bin edge to land one bin over: the earth mover's
            // distance (in bins) at most 0.1 % of the logits. Every block must add up exactly.
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
                .zip(&want)
                .enumerate()
                .filter(|(_, (g, c))| g != c)
                .take(6)
                .map(|(k, (g, c))| format!("[{k}] gpu {g} cpu {c}"))
                .collect();
            assert!(emd * 1000 <= total, "{what}: {emd} bin moves among {total} logits: {}", first.join("; "));
            if emd > 0 {
                common::say(&format!("head_roc_histogram {what}: {emd} bin moves among {total} logits"));
            }
        }
        if seed == 0 {
            let all = cpu.head_roc_histogram(&p, &z, &w, &b, &indptr, &indices, false).expect("cpu");
            assert_eq!(all.iter().sum::<u64>(), (batch * cells) as u64);
            assert_eq!(all[..ROC_BINS].iter().sum::<u64>(), indices.len() as u64);
        }
    }
}

#[test]
fn batchnorm_cuda_matches_cpu() {
    use chromax::backend::BatchNormParams;
    let Some(gpu) = cuda_or_skip("batchnorm_cuda_matches_cpu") else { return };
    let cpu = CpuBackend::new();
    // SeqNet's norms: a tower block's activations and the 32-unit bottleneck.
    for (seed, &(batch, channels, len)) in [(128usize, 288usize, 448usize), (128, 32, 1), (3, 5, 7)].iter().enumerate()
    {
        let p = BatchNormParams { batch, channels, len, eps: 1e-3, momentum: 0.9 };
        let n = batch * channels * len;
        let mut rng = Rng::new(1300 + seed as u64);
        let (x, dy) = (rng.vec_f32(n, -2.0, 5.0), rng.vec_f32(n, -1.0, 1.0));
        let (gamma, beta) = (rng.vec_f32(channels, 0.5, 1.5), rng.vec_f32(channels, -0.5, 0.5));
        let (mut y, mut m, mut s, mut rm, mut rv) =
            (vec![0f32; n], vec![0f32; channels], vec![0f32; channels], vec![0f32; channels], vec![1f32; channels]);
        cpu.batchnorm_fwd_train(&p, &x, &gamma, &beta, &mut y, &mut m, &mut s, &mut rm, &mut rv).expect("cpu");
        let (mut dx, mut dg, mut db) = (vec![0f32; n], vec![0f32; channels], vec![0f32; channels]);
        cpu.batchnorm_bwd(&p, &x, &dy, &gamma, &m, &s, &mut dx, &mut dg, &mut db).expect("cpu");
        let (gx, gdy, gg, gb) = (upload(&gpu, &x), upload(&gpu, &dy), upload(&gpu, &gamma), upload(&gpu, &beta));
        let (mut gy, mut gm, mut gs) = (poisoned(&gpu, n), poisoned(&gpu, channels), poisoned(&gpu, channels));
        let (mut grm, mut grv) = (upload(&gpu, &vec![0f32; channels]), upload(&gpu, &vec![1f32; channels]));
        gpu.batchnorm_fwd_train(&p, &gx, &gg, &gb, &mut gy, &mut gm, &mut gs, &mut grm, &mut grv).expect("cuda");
        let (mut gdx, mut gdg, mut gdb) = (poisoned(&gpu, n), poisoned(&gpu, channels), poisoned(&gpu, channels));
        gpu.batchnorm_bwd(&p, &gx, &gdy, &gg, &gm, &gs, &mut gdx, &mut gdg, &mut gdb).expect("cuda");
        // f64 sums in different orders, rounded once to f32.
        assert_close(&format!("y {p:?}"), &download(&gpu, &gy), &y, 1e-6, 1e-5);
        assert_close(&format!("running_var {p:?}"), &download(&gpu, &grv), &rv, 1e-6, 1e-5);
        assert_close(&format!("dx {p:?}"), &download(&gpu, &gdx), &dx, 1e-6, 1e-4);
        assert_close(&format!("dgamma {p:?}"), &download(&gpu, &gdg), &dg, 1e-4, 1e-4);
        assert_close(&format!("dbeta {p:?}"), &download(&gpu, &gdb), &db, 1e-4, 1e-4);
    }
}
