//! DenoiseNet: the published parameter count, and the whole network's backward pass against
//! central finite differences in f64 on a tiny configuration.

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::backend::DenoiseLoss;
use chromax::backend::{Backend, DenoiseLossParams};
use chromax::models::{DenoiseConfig, DenoiseNet};
use chromax::nn::Module;
use common::Rng;

#[test]
fn the_default_configuration_has_atacworks_parameter_count() {
    let cfg = DenoiseConfig::default();
    assert_eq!(cfg.param_count(), 219_706);
    let net = DenoiseNet::new(&CpuBackend::new(), cfg, 1).expect("build");
    let counted: usize = net.params().iter().map(|p| p.len()).sum();
    assert_eq!(counted, 219_706);
    assert_eq!(cfg.receptive_radius(), 4200);
    // Extra input tracks add weights to the first block only (conv1 and its 1×1 skip).
    let two = DenoiseConfig { in_channels: 3, ..cfg };
    assert_eq!(two.param_count(), 219_706 + 2 * (15 * 51 + 15));
    // The demo's scaled-down model, as its documentation states.
    assert_eq!(DenoiseConfig::demo().param_count(), 9_801);
    let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"regression.block0.skip.weight") && names.contains(&"classification.head.bias"));
    assert!(
        !names.iter().any(|n| n.starts_with("regression") && n.ends_with("bias")),
        "no bias in the regression part"
    );
    assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), names.len(), "names are unique");
}

#[test]
fn whole_network_gradients_match_finite_differences() {
    let backend = CpuBackend::new_f64();
    let cfg = DenoiseConfig {
        in_channels: 2,
        reg_blocks: 2,
        reg_filters: 3,
        reg_kernel: 3,
        reg_dilation: 2,
        cls_blocks: 2,
        cls_filters: 2,
        cls_kernel: 4,
        cls_dilation: 1,
    };
    let (batch, len, pad) = (2, 24, 3);
    let loss = DenoiseLossParams { batch, len, pad, mse_weight: 0.3, pearson_weight: 1.0, bce_weight: 1.0 };
    let mut rng = Rng::new(17);
    let x = rng.vec_f64(batch * cfg.in_channels * len, 0.0, 3.0);
    let clean = rng.vec_f64(batch * len, 0.0, 5.0);
    let mask: Vec<f64> = (0..batch * len).map(|_| if rng.unit() < 0.3 { 1.0 } else { 0.0 }).collect();
    let mut net = DenoiseNet::new(&backend, cfg, 5).expect("build");
    // A head with positive weights, so the regression output (a ReLU) is not dead everywhere
    // and the check covers the whole network.
    for p in net.params_mut() {
        if p.name == "regression.head.weight" {
            p.value.iter_mut().for_each(|w| *w = w.abs() + 0.1);
        }
    }

    let objective = |net: &DenoiseNet<CpuBackend<f64>>| {
        let out = net.infer(&backend, &x, batch, len).expect("forward");
        let (mut dr, mut dc) = (vec![0.0; batch * len], vec![0.0; batch * len]);
        backend
            .denoise_loss(
                &loss,
                DenoiseLoss {
                    reg: &out.reg,
                    clean: &clean,
                    cls_logits: &out.logits,
                    mask: &mask,
                    d_reg: &mut dr,
                    d_cls: &mut dc,
                },
            )
            .expect("loss")
            .total
    };

    let (out, cache) = net.forward(&backend, x.clone(), batch, len).expect("forward");
    let (mut d_reg, mut d_cls) = (vec![0.0; batch * len], vec![0.0; batch * len]);
    backend
        .denoise_loss(
            &loss,
            DenoiseLoss {
                reg: &out.reg,
                clean: &clean,
                cls_logits: &out.logits,
                mask: &mask,
                d_reg: &mut d_reg,
                d_cls: &mut d_cls,
            },
        )
        .expect("loss");
    assert!(out.reg.iter().any(|&v| v > 0.0), "the regression output is not all zero");
    net.backward(&backend, &out, &cache, &d_reg, &d_cls).expect("backward");
    let analytic: Vec<(String, Vec<f64>)> = net.params().iter().map(|p| (p.name.clone(), p.grad.clone())).collect();

    let h = 1e-6;
    let mut checked = 0;
    for (pi, (name, grad)) in analytic.iter().enumerate() {
        let mut numeric = Vec::with_capacity(grad.len());
        for i in 0..grad.len() {
            let orig = net.params()[pi].value[i];
            net.params_mut()[pi].value[i] = orig + h;
            let up = objective(&net);
            net.params_mut()[pi].value[i] = orig - h;
            let down = objective(&net);
            net.params_mut()[pi].value[i] = orig;
            numeric.push((up - down) / (2.0 * h));
        }
        // Central differences of an f64 loss: agreement to ~1e-7 relative, looser only where a
        // ReLU sits within h of its kink (none does for this seed).
        common::assert_close(name, grad, &numeric, 1e-8, 1e-5);
        checked += grad.len();
    }
    assert_eq!(checked, cfg.param_count());
}
