//! Whole models on every implementation against the CPU: a DenoiseNet training step, the
//! denoising pipeline (pinned batch buffers, the prefetch thread, the model, the read-back)
//! and a SeqNet training step. The kernel emulator runs small shapes (always; g++ needed);
//! CUDA runs the real ones when a device is usable.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::backend::{AdamParams, AdamStep, Backend, Conv1dParams, DenoiseLoss, DenoiseLossParams};
use chromax::models::{DenoiseConfig, DenoiseNet, SeqBatch, SeqConfig, SeqNet};
use chromax::nn::{download_f32, upload_f32, Module};
use common::{assert_close, cuda_or_skip, emulator_or_skip, Rng};

/// Forward, loss and backward of one interval on `imp` and on the CPU (f32).
fn denoisenet_step_matches<B: Backend<Elem = f32>>(imp: &B, cfg: DenoiseConfig, width: usize, pad: usize) {
    // Seven blocks of f32 sums in different orders: ~1e-5 relative through the network.
    denoisenet_step_within(imp, &CpuBackend::new(), cfg, width, pad, (1e-3, 1e-4, 1e-3));
}

/// Forward, loss and backward of one interval on `imp` and on the CPU backend `cpu`: outputs
/// within `tol.0` (absolute and relative), the loss within `tol.1` relative, each gradient
/// within `tol.2` of its tensor's largest entry (1e-2 relative beyond). Returns the losses
/// (imp's, the CPU's).
fn denoisenet_step_within<B: Backend<Elem = f32>>(
    imp: &B,
    cpu: &CpuBackend,
    cfg: DenoiseConfig,
    width: usize,
    pad: usize,
    tol: (f64, f64, f64),
) -> (f64, f64) {
    let batch = 1;
    let mut rng = Rng::new(404);
    let x: Vec<f32> =
        (0..width).map(|i| (5.0 + 4.0 * ((i as f64) * 0.002).sin() + rng.uniform(0.0, 3.0)) as f32).collect();
    let clean: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
    let mask: Vec<f32> = x.iter().map(|&v| if v > 8.0 { 1.0 } else { 0.0 }).collect();
    let loss = DenoiseLossParams::atacworks(batch, width, pad);
    let mut cpu_net = DenoiseNet::new(cpu, cfg, 3).expect("cpu net");
    let mut imp_net = DenoiseNet::new(imp, cfg, 3).expect("net");

    let (co, cc) = cpu_net.forward(cpu, x.clone(), batch, width).expect("cpu fwd");
    let (mut cdr, mut cdc) = (vec![0f32; width], vec![0f32; width]);
    let bufs = DenoiseLoss {
        reg: &co.reg,
        clean: &clean,
        cls_logits: &co.logits,
        mask: &mask,
        d_reg: &mut cdr,
        d_cls: &mut cdc,
    };
    let cpu_loss = cpu.denoise_loss(&loss, bufs).expect("cpu loss");
    cpu_net.backward(cpu, &co, &cc, &cdr, &cdc).expect("cpu bwd");

    let (go, gc) = imp_net.forward(imp, upload_f32(imp, &x).expect("x"), batch, width).expect("fwd");
    let (mut gdr, mut gdc) = (imp.zeros(width).expect("d"), imp.zeros(width).expect("d"));
    let (gclean, gmask) = (upload_f32(imp, &clean).expect("clean"), upload_f32(imp, &mask).expect("mask"));
    let bufs = DenoiseLoss {
        reg: &go.reg,
        clean: &gclean,
        cls_logits: &go.logits,
        mask: &gmask,
        d_reg: &mut gdr,
        d_cls: &mut gdc,
    };
    let imp_loss = imp.denoise_loss(&loss, bufs).expect("loss");
    imp_net.backward(imp, &go, &gc, &gdr, &gdc).expect("bwd");

    assert_close("reg", &download_f32(imp, &go.reg).expect("reg"), &co.reg, tol.0, tol.0);
    assert_close("logits", &download_f32(imp, &go.logits).expect("logits"), &co.logits, tol.0, tol.0);
    assert!(
        (imp_loss.total - cpu_loss.total).abs() < tol.1 * cpu_loss.total.abs().max(1.0),
        "{imp_loss:?} vs {cpu_loss:?}"
    );
    let mut worst = 0f64;
    for (g, c) in imp_net.params().iter().zip(cpu_net.params()) {
        let got = download_f32(imp, &g.grad).expect("grad");
        let scale = c.grad.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        // Gradients sum over every position: compare against the tensor's largest entry.
        assert_close(&format!("grad {}", c.name), &got, &c.grad, tol.2 * scale.max(1e-6), 1e-2);
        let diff = got.iter().zip(&c.grad).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
        worst = worst.max(diff / scale.max(1e-30));
    }
    common::say(&format!(
        "{}: DenoiseNet step vs {}: loss {:.9} vs {:.9}, worst gradient difference {worst:.2e} of its tensor's largest",
        imp.describe(),
        cpu.describe(),
        imp_loss.total,
        cpu_loss.total
    ));
    (imp_loss.total, cpu_loss.total)
}

/// Denoising whole chromosomes of a random track through the pipeline on `imp` and the CPU
/// (f32).
fn pipeline_matches<B: Backend<Elem = f32>>(imp: &B, cfg: DenoiseConfig, interval: u64, pad: u64, name: &str) {
    let chroms = [("a", 123_457), ("b", 60_001)];
    let (got, want) = pipeline_outputs(imp, &[&CpuBackend::new()], &chroms, cfg, interval, pad, name);
    assert_close("denoised", &got.0, &want[0].0, 1e-3, 1e-3);
    assert_close("probability", &got.1, &want[0].1, 1e-4, 1e-3);
}

/// The pipeline's outputs: the denoised track and the probabilities.
type Outputs = (Vec<f32>, Vec<f32>);

/// The outputs over a random track on chromosomes `chroms` (name, length) on `imp` and on each
/// CPU backend of `references`.
fn pipeline_outputs<B: Backend<Elem = f32>>(
    imp: &B,
    references: &[&CpuBackend],
    chroms: &[(&str, u64)],
    cfg: DenoiseConfig,
    interval: u64,
    pad: u64,
    name: &str,
) -> (Outputs, Vec<Outputs>) {
    use chromax::denoise::infer::{open_inputs, resolve_spans};
    use chromax::denoise::model::{load_model, write_model, ModelConfig};
    use chromax::io::ChromSizes;
    let dir = std::env::temp_dir().join(format!("chromax-parity-pipeline-{name}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("model")).expect("dir");
    let sizes: String = chroms.iter().map(|(c, l)| format!("{c}\t{l}\n")).collect();
    std::fs::write(dir.join("g.sizes"), sizes).expect("sizes");
    let mut rng = Rng::new(8);
    let mut bg = String::new();
    for &(chrom, len) in chroms {
        let mut p = 0;
        while p < len {
            let e = (p + 1 + (rng.unit() * 300.0) as u64).min(len);
            bg.push_str(&format!("{chrom}\t{p}\t{e}\t{}\n", (rng.unit() * 20.0).floor()));
            p = e;
        }
    }
    std::fs::write(dir.join("noisy.bedGraph"), bg).expect("bedGraph");
    let cpu = CpuBackend::new();
    let net = DenoiseNet::new(&cpu, cfg, 9).expect("net");
    let config = ModelConfig::new(cfg, interval, pad, vec![], serde_json::Value::Null);
    write_model(&cpu, &dir.join("model"), &config, &net).expect("model");
    let sizes = ChromSizes::read(dir.join("g.sizes")).expect("sizes");
    let spans = resolve_spans(&[], &sizes).expect("spans");
    let model = dir.join("model");
    let (_, model_cfg) = load_model(&cpu, &model).expect("model");
    let set = open_inputs(&model_cfg, &dir.join("noisy.bedGraph"), &[], &sizes).expect("inputs");
    let got = denoise_all(imp, &model, &set, &spans);
    let want: Vec<Outputs> = references.iter().map(|r| denoise_all(*r, &model, &set, &spans)).collect();
    for out in std::iter::once(&got).chain(&want) {
        assert_eq!(out.0.len() as u64, sizes.total());
    }
    let _ = std::fs::remove_dir_all(&dir);
    (got, want)
}

/// The pipeline's outputs over `spans` with the model at `model` loaded on `backend`.
fn denoise_all<C: Backend<Elem = f32>>(
    backend: &C,
    model: &std::path::Path,
    set: &chromax::data::TrackSet,
    spans: &[chromax::denoise::infer::Span],
) -> Outputs {
    let (net, cfg) = chromax::denoise::model::load_model(backend, model).expect("model");
    let (mut reg, mut prob) = (vec![], vec![]);
    chromax::denoise::infer::denoise_spans(backend, &net, &cfg, set.clone(), spans, 3, &mut |_, _, r, p| {
        reg.extend_from_slice(r);
        prob.extend_from_slice(p);
        Ok(())
    })
    .expect("denoise");
    (reg, prob)
}

/// One SeqNet training step (augmentation, batch norm, dropout, the sparse head, Adam).
fn seqnet_step_matches<B: Backend<Elem = f32>>(imp: &B) {
    let cpu = CpuBackend::new();
    let cfg = SeqConfig {
        seq_len: 200,
        stem_filters: 24,
        stem_kernel: 9,
        tower_filters: vec![24, 32],
        final_filters: 16,
        bottleneck: 8,
        ..SeqConfig::scbasset(300)
    };
    let n = 16;
    let mut rng = Rng::new(77);
    let mut codes: Vec<u8> = (0..n * cfg.seq_len).map(|_| (rng.next_u64() % 4) as u8).collect();
    codes[5] = 4;
    let reverse: Vec<bool> = (0..n).map(|i| i % 2 == 1).collect();
    let shift: Vec<i32> = (0..n).map(|i| [0, 3, -2, 1][i % 4]).collect();
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for _ in 0..n {
        indices.extend((0..cfg.cells as u32).filter(|_| rng.unit() < 0.4));
        indptr.push(indices.len() as u32);
    }
    let seqs = SeqBatch { codes: &codes, reverse: &reverse, shift: &shift };

    fn step<B: Backend>(
        b: &B,
        cfg: &SeqConfig,
        seqs: &SeqBatch,
        indptr: &[u32],
        indices: &[u32],
    ) -> (f64, Vec<f32>, Vec<(String, Vec<f32>)>) {
        let mut net = SeqNet::new(b, cfg.clone(), 4, None).expect("build");
        let (z, cache) = net.forward_train(b, seqs, 8).expect("forward");
        let (loss, dz) = net.head_loss(b, &z, indptr, indices).expect("head");
        net.backward(b, cache, &dz).expect("backward");
        let adam = AdamParams { beta1: 0.95, beta2: 0.9995, eps: 1e-7, ..AdamParams::new(0.01, 1) };
        let mut out = Vec::new();
        for p in net.params_mut() {
            out.push((format!("{} grad", p.name), download_f32(b, &p.grad).expect("grad")));
            let (mut m, mut v) = (b.zeros(p.len()).expect("m"), b.zeros(p.len()).expect("v"));
            b.adam_step(&adam, AdamStep { param: &mut p.value, grad: &p.grad, m: &mut m, v: &mut v }).expect("adam");
        }
        for p in net.params() {
            out.push((p.name.clone(), download_f32(b, &p.value).expect("value")));
        }
        for (name, buf) in net.stats() {
            out.push((name, download_f32(b, buf).expect("stat")));
        }
        (loss, download_f32(b, &z).expect("z"), out)
    }

    let (loss_c, z_c, t_c) = step(&cpu, &cfg, &seqs, &indptr, &indices);
    let (loss_g, z_g, t_g) = step(imp, &cfg, &seqs, &indptr, &indices);
    assert!((loss_c - loss_g).abs() <= 1e-5 * loss_c.abs(), "loss {loss_c} vs {loss_g}");
    assert_close("z", &z_g, &z_c, 1e-4, 1e-3);
    for ((name, want), (_, got)) in t_c.iter().zip(&t_g) {
        // Gradients pass through batch norm and max pooling: compare relative to the tensor's scale.
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert_close(name, got, want, 1e-3 * scale + 1e-7, 1e-3);
    }
}

#[test]
fn denoisenet_step_matches_the_cpu() {
    if let Some(emu) = emulator_or_skip("denoisenet_step_matches_the_cpu", 132) {
        denoisenet_step_matches(&emu, DenoiseConfig::demo(), 3_000, 300);
    }
    if let Some(gpu) = cuda_or_skip("denoisenet_step_matches_the_cpu") {
        // One real interval of AtacWorks' model.
        denoisenet_step_matches(&gpu, DenoiseConfig::default(), 60_000, 5_000);
    }
}

/// A DenoiseNet training step with the tensor-core convolutions on: the residual blocks'
/// activations saved packed (bf16 channels-last), their weight gradients read packed. Against
/// the CPU's reference of those numerics, and the reference's loss against f32's (the issue's
/// bound for a bf16 training step: 1e-3 relative).
#[test]
fn a_packed_bf16_denoisenet_step_matches_the_cpus_reference() {
    let test = "a_packed_bf16_denoisenet_step_matches_the_cpus_reference";
    let reference = CpuBackend::new().with_bf16_convolutions(true);
    let (bf16, f32) =
        denoisenet_step_within(&reference, &CpuBackend::new(), DenoiseConfig::demo(), 3_000, 300, (1.0, 1.0, 1.0));
    assert!(bf16 != f32, "the bf16 reference computed f32's loss");
    assert!((bf16 - f32).abs() <= 1e-3 * f32.abs(), "bf16 step loss {bf16} vs f32 {f32}: beyond 1e-3 relative");
    if let Some(emu) = emulator_or_skip(test, 132) {
        denoisenet_step_within(
            &emu.with_bf16_convolutions(true),
            &reference,
            DenoiseConfig::demo(),
            3_000,
            300,
            (1e-3, 1e-4, 1e-3),
        );
    }
    if let Some(gpu) = cuda_or_skip("a_packed_bf16_denoisenet_step_matches_the_cpus_reference") {
        let cfg = DenoiseConfig::default();
        denoisenet_step_within(&gpu.with_bf16_convolutions(true), &reference, cfg, 60_000, 5_000, (1e-3, 1e-4, 1e-3));
    }
}

#[test]
fn the_denoising_pipeline_matches_the_cpu() {
    if let Some(emu) = emulator_or_skip("the_denoising_pipeline_matches_the_cpu", 132) {
        pipeline_matches(&emu, DenoiseConfig::demo(), 20_000, 500, "emu");
    }
    if let Some(gpu) = cuda_or_skip("the_denoising_pipeline_matches_the_cpu") {
        pipeline_matches(&gpu, DenoiseConfig::default(), 50_000, 5_000, "cuda");
    }
}

/// With the tensor-core convolutions on, the pipeline keeps the residual blocks' activations
/// packed (bf16 channels-last) between convolutions; the CPU's reference does the same. The
/// two round the same f32 sums to bf16 except where sums in another order fall on the other
/// side of a rounding boundary: then one activation is one bf16 unit (2⁻⁸ relative) apart,
/// which later layers carry on. Measured on the emulator (demo model, 13,458 bases; 183,458 in
/// a longer run): Pearson r = 1.0000000 to 8 places, largest probability difference 8.0e-5
/// (1.8e-4), every call the same.
fn packed_pipeline_matches<B: Backend<Elem = f32>>(imp: &B, cfg: DenoiseConfig, interval: u64, pad: u64, name: &str) {
    let reference = CpuBackend::new().with_bf16_convolutions(true);
    let filters = Conv1dParams {
        batch: 1,
        c_in: cfg.reg_filters,
        c_out: cfg.reg_filters,
        len: 1000,
        kernel: cfg.reg_kernel,
        dilation: cfg.reg_dilation,
    };
    assert!(imp.packs(&filters) && reference.packs(&filters), "{name}: the blocks' activations are not packed");
    let chroms = [("a", 9_001), ("b", 4_457)];
    let (got, want) = pipeline_outputs(imp, &[&reference, &CpuBackend::new()], &chroms, cfg, interval, pad, name);
    let (reg, prob) = ((&got.0, &want[0].0), (&got.1, &want[0].1));
    let f32_reg = &want[1].0;
    let r = common::pearson(reg.0, reg.1);
    let r32 = common::pearson(reg.0, f32_reg);
    let max_prob = prob.0.iter().zip(prob.1).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let same = prob.0.iter().zip(prob.1).filter(|(a, b)| (**a >= 0.5) == (**b >= 0.5)).count();
    common::say(&format!(
        "{name}: packed bf16 pipeline vs the CPU's reference over {} bases: track Pearson r = {r:.8} (vs f32: {r32:.8}), \
         largest probability difference {max_prob:.2e}, calls identical on {same} bases",
        reg.0.len()
    ));
    assert!(reg.0 != f32_reg, "{name}: the bf16 pipeline gave f32's bits: were activations packed?");
    assert!(r >= 0.999999, "{name}: track Pearson r {r} against the CPU's reference");
    assert!(max_prob <= 2e-3, "{name}: a probability {max_prob} away from the CPU's reference");
    assert!(same as f64 >= 0.9999 * prob.0.len() as f64, "{name}: calls identical on {same} bases");
}

#[test]
fn the_packed_bf16_denoising_pipeline_matches_the_cpus_reference() {
    let test = "the_packed_bf16_denoising_pipeline_matches_the_cpus_reference";
    if let Some(emu) = emulator_or_skip(test, 132) {
        packed_pipeline_matches(&emu.with_bf16_convolutions(true), DenoiseConfig::demo(), 4_000, 500, "emu-bf16");
    }
    if let Some(gpu) = cuda_or_skip("the_packed_bf16_denoising_pipeline_matches_the_cpus_reference") {
        packed_pipeline_matches(
            &gpu.with_bf16_convolutions(true),
            DenoiseConfig::default(),
            50_000,
            5_000,
            "cuda-bf16",
        );
    }
}

#[test]
fn seqnet_step_matches_the_cpu() {
    if let Some(emu) = emulator_or_skip("seqnet_step_matches_the_cpu", 132) {
        seqnet_step_matches(&emu);
    }
    if let Some(gpu) = cuda_or_skip("seqnet_step_matches_the_cpu") {
        seqnet_step_matches(&gpu);
    }
}

/// The single-cell analyses and the batch-corrected head on `imp` against the CPU: the
/// effective head weights, the head's loss and gradients with the batch path, streamed
/// imputation, ISM and the per-cell sums of TF activity.
fn seqnet_analyses_match<B: Backend<Elem = f32>>(imp: &B, seq_len: usize) {
    use chromax::sc::analyses::{embed_sequences, ism_window, sum_denoised, Head};
    use chromax::sc::impute::impute_streamed;
    let cpu = CpuBackend::new();
    let cfg = SeqConfig {
        seq_len,
        stem_filters: 8,
        stem_kernel: 9,
        tower_filters: vec![8, 12],
        final_filters: 4,
        bottleneck: 8,
        batches: 2,
        ..SeqConfig::scbasset(30)
    };
    let mut rng = Rng::new(91);
    let of_cell: Vec<u32> = (0..30).map(|c| (c % 2) as u32).collect();
    let batch_w: Vec<f32> = rng.vec_f32(16, -0.5, 0.5);
    let mut cpu_net = SeqNet::new(&cpu, cfg.clone(), 5, None).expect("cpu net");
    cpu_net.set_cell_batches(&cpu, &of_cell).expect("batches");
    cpu_net.batch_w.as_mut().expect("batch path").value = batch_w.clone();
    let mut imp_net = SeqNet::new(imp, cfg.clone(), 5, None).expect("net");
    imp_net.set_cell_batches(imp, &of_cell).expect("batches");
    imp_net.batch_w.as_mut().expect("batch path").value = upload_f32(imp, &batch_w).expect("upload");
    let cpu_eff = cpu_net.batch_head_weights(&cpu).expect("cpu").expect("batch-corrected");
    let imp_eff =
        download_f32(imp, &imp_net.batch_head_weights(imp).expect("imp").expect("batch-corrected")).expect("down");
    assert_close("effective head weights", &imp_eff, &cpu_eff, 1e-6, 1e-6);

    let n = 6;
    let codes: Vec<u8> = (0..n * seq_len).map(|_| (rng.next_u64() % 4) as u8).collect();
    let (indptr, indices): (Vec<u32>, Vec<u32>) =
        (vec![0, 3, 3, 5, 9, 10, 12], vec![1, 4, 20, 0, 29, 2, 3, 4, 5, 7, 11, 28]);
    let z_cpu = embed_sequences(&cpu, &cpu_net, &codes, 4).expect("cpu z");
    let z_imp = embed_sequences(imp, &imp_net, &codes, 4).expect("z");
    assert_close("z", &z_imp, &z_cpu, 1e-4, 1e-3);
    let zc = upload_f32(&cpu, &z_cpu).expect("z");
    let zi = upload_f32(imp, &z_cpu).expect("z");
    let (lc, dzc) = cpu_net.head_loss(&cpu, &zc, &indptr, &indices).expect("cpu head");
    let (li, dzi) = imp_net.head_loss(imp, &zi, &indptr, &indices).expect("head");
    assert!((lc - li).abs() < 1e-5 * lc.abs().max(1.0), "loss {li} vs {lc}");
    assert_close("dz", &download_f32(imp, &dzi).expect("down"), &download_f32(&cpu, &dzc).expect("down"), 1e-6, 1e-4);
    assert_close(
        "head.weight grad",
        &download_f32(imp, &imp_net.head_w.grad).expect("d"),
        &cpu_net.head_w.grad,
        1e-6,
        1e-4,
    );
    let (ib, cb) = (imp_net.batch_w.as_ref().expect("b"), cpu_net.batch_w.as_ref().expect("b"));
    assert_close("head.batch_weight grad", &download_f32(imp, &ib.grad).expect("d"), &cb.grad, 1e-6, 1e-4);

    let (hc, hi) = (Head::of(&cpu, &cpu_net).expect("head"), Head::of(imp, &imp_net).expect("head"));
    let sums_c = sum_denoised(&cpu, &cpu_net, &z_cpu, 4).expect("sums");
    let sums_i = sum_denoised(imp, &imp_net, &z_cpu, 4).expect("sums");
    assert_close("TF activity sums", &sums_i, &sums_c, 1e-5, 1e-5);
    let cells = [0u32, 7, 29, 12];
    let mut out = [Vec::new(), Vec::new()];
    impute_streamed(&cpu, &cpu_net, &hc, &codes, &cells, true, 4, 4, &mut |p| {
        out[0].extend_from_slice(p);
        Ok(())
    })
    .expect("cpu");
    impute_streamed(imp, &imp_net, &hi, &codes, &cells, true, 4, 4, &mut |p| {
        out[1].extend_from_slice(p);
        Ok(())
    })
    .expect("imp");
    assert_close("imputed", &out[1], &out[0], 1e-4, 1e-3);
    let group_w = hc.w[..2 * 8].to_vec();
    let ism_c = ism_window(&cpu, &cpu_net, &codes[..seq_len], &group_w, 64).expect("cpu ism");
    let ism_i = ism_window(imp, &imp_net, &codes[..seq_len], &group_w, 64).expect("ism");
    assert_close("ISM", &ism_i, &ism_c, 1e-4, 1e-2);
}

#[test]
fn seqnet_analyses_match_the_cpu() {
    if let Some(emu) = emulator_or_skip("seqnet_analyses_match_the_cpu", 132) {
        seqnet_analyses_match(&emu, 32);
    }
    if let Some(gpu) = cuda_or_skip("seqnet_analyses_match_the_cpu") {
        seqnet_analyses_match(&gpu, 1344);
    }
}
