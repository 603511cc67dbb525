//! SeqNet: scBasset's parameter count for several cell counts, the whole network's backward
//! pass (augmentation, batch norm in training mode, seeded dropout, the sparse head) against
//! central finite differences in f64. (One full training step on every implementation against
//! the CPU is in tests/model_parity.rs.)

mod common;

use chromax::backend::cpu::CpuBackend;
use chromax::nn::Module;

use chromax::models::{SeqBatch, SeqConfig, SeqNet};
use common::Rng;

#[test]
fn the_scbasset_configuration_has_its_published_parameter_count() {
    for cells in [1usize, 100, 2_711, 1_114_621] {
        assert_eq!(SeqConfig::scbasset(cells).param_count(), 4_513_960 + 33 * cells, "{cells} cells");
    }
    for cells in [1usize, 37] {
        let net = SeqNet::new(&CpuBackend::new(), SeqConfig::scbasset(cells), 1, None).expect("build");
        let counted: usize = net.params().iter().map(|p| p.len()).sum();
        assert_eq!(counted, 4_513_960 + 33 * cells);
        let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), names.len(), "names are unique");
        assert!(names.contains(&"stem.conv.weight") && names.contains(&"tower5.conv.weight"));
        assert!(names.contains(&"final.conv.weight") && names.contains(&"bottleneck.dense.weight"));
        assert!(!names.iter().any(|n| n.ends_with("conv.bias")), "convolutions have no bias");
        // Running statistics of all eight batch norms are kept, and not counted as parameters.
        assert_eq!(net.stats().len(), 2 * 9);
    }
    let cfg = SeqConfig::scbasset(1);
    assert_eq!(cfg.lengths(), vec![1344, 448, 224, 112, 56, 28, 14, 7, 7]);
    assert_eq!(cfg.flat_len(), 1792);
    // ARCHITECTURE.md: ≈0.93 GFLOP per sequence forward.
    let gflop = cfg.flops_per_sequence() / 1e9;
    assert!((0.90..0.96).contains(&gflop), "{gflop} GFLOP");
}

fn tiny(cells: usize) -> SeqConfig {
    SeqConfig {
        seq_len: 26,
        stem_filters: 3,
        stem_kernel: 5,
        stem_pool: 3,
        tower_filters: vec![4, 3],
        tower_kernel: 3,
        tower_pool: 2,
        final_filters: 2,
        bottleneck: 3,
        dropout: 0.25,
        bn_momentum: 0.9,
        bn_eps: 1e-3,
        cells,
        batches: 0,
    }
}

/// A batch with every augmentation: reverse complements, shifts both ways, an N.
fn batch(rng: &mut Rng, n: usize, len: usize) -> (Vec<u8>, Vec<bool>, Vec<i32>) {
    let mut codes: Vec<u8> = (0..n * len).map(|_| (rng.next_u64() % 4) as u8).collect();
    codes[5] = 4;
    let reverse = (0..n).map(|i| i % 2 == 1).collect();
    let shift = (0..n).map(|i| [0, 3, -2, 1][i % 4]).collect();
    (codes, reverse, shift)
}

fn rows(rng: &mut Rng, n: usize, cells: usize) -> (Vec<u32>, Vec<u32>) {
    let (mut indptr, mut indices) = (vec![0u32], Vec::new());
    for _ in 0..n {
        for c in 0..cells as u32 {
            if rng.unit() < 0.4 {
                indices.push(c);
            }
        }
        indptr.push(indices.len() as u32);
    }
    (indptr, indices)
}

/// Every parameter's gradient, with and without the batch-correction path (two batches: the
/// batch embeddings' gradient and the cell embeddings' through the effective weights).
#[test]
fn whole_network_gradients_match_finite_differences() {
    for batches in [0, 2] {
        check_gradients(batches);
    }
}

fn check_gradients(batches: usize) {
    let backend = CpuBackend::new_f64();
    let cfg = SeqConfig { batches, ..tiny(5) };
    let n = 4;
    let mut rng = Rng::new(23);
    let (codes, reverse, shift) = batch(&mut rng, n, cfg.seq_len);
    let (indptr, indices) = rows(&mut rng, n, cfg.cells);
    let seqs = SeqBatch { codes: &codes, reverse: &reverse, shift: &shift };
    let mut net = SeqNet::new(&backend, cfg.clone(), 3, None).expect("build");
    if batches > 0 {
        net.set_cell_batches(&backend, &[0, 1, 1, 0, 1]).expect("batches");
    }
    // Non-trivial γ, β, intercepts and batch embeddings, so their gradients are checked away
    // from the start.
    for p in net.params_mut() {
        if p.name.ends_with("gamma")
            || p.name.ends_with("beta")
            || p.name == "head.bias"
            || p.name == "head.batch_weight"
        {
            p.value.iter_mut().for_each(|v| *v = 0.5 + rng.unit());
        }
    }
    let dropout_seed = 99;

    let (z, cache) = net.forward_train(&backend, &seqs, dropout_seed).expect("forward");
    let (loss, dz) = net.head_loss(&backend, &z, &indptr, &indices).expect("head");
    assert!(loss.is_finite() && loss > 0.0);
    net.backward(&backend, cache, &dz).expect("backward");
    let analytic: Vec<(String, Vec<f64>)> = net.params().iter().map(|p| (p.name.clone(), p.grad.clone())).collect();
    // Dropout really dropped something in this batch (else the check would not cover it).
    assert!(z.iter().any(|&v| v == 0.0), "no element dropped");

    let objective = |net: &mut SeqNet<CpuBackend<f64>>| {
        let (z, _) = net.forward_train(&backend, &seqs, dropout_seed).expect("forward");
        net.head_loss(&backend, &z, &indptr, &indices).expect("head").0
    };
    let h = 1e-6;
    let mut checked = 0;
    for (pi, (name, grad)) in analytic.iter().enumerate() {
        let mut numeric = Vec::with_capacity(grad.len());
        for i in 0..grad.len() {
            let orig = net.params()[pi].value[i];
            net.params_mut()[pi].value[i] = orig + h;
            let up = objective(&mut net);
            net.params_mut()[pi].value[i] = orig - h;
            let down = objective(&mut net);
            net.params_mut()[pi].value[i] = orig;
            numeric.push((up - down) / (2.0 * h));
        }
        common::assert_close(&format!("{name} ({batches} batches)"), grad, &numeric, 1e-8, 1e-5);
        checked += grad.len();
    }
    assert_eq!(checked, cfg.param_count());
}

#[test]
fn inference_uses_the_running_statistics_and_no_dropout() {
    let backend = CpuBackend::new();
    let cfg = tiny(4);
    let mut rng = Rng::new(5);
    let (codes, _, _) = batch(&mut rng, 6, cfg.seq_len);
    let (rev, shift) = (vec![false; 6], vec![0; 6]);
    let seqs = SeqBatch { codes: &codes, reverse: &rev, shift: &shift };
    let mut net = SeqNet::new(&backend, cfg, 1, None).expect("build");
    let before = net.embed_peaks(&backend, &seqs).expect("embed");
    assert_eq!(before, net.embed_peaks(&backend, &seqs).expect("embed"), "inference is deterministic");
    let stats_before: Vec<Vec<f32>> = net.stats().iter().map(|(_, b)| (*b).clone()).collect();
    let _ = net.forward_train(&backend, &seqs, 1).expect("train forward");
    let stats_after: Vec<Vec<f32>> = net.stats().iter().map(|(_, b)| (*b).clone()).collect();
    assert_ne!(stats_before, stats_after, "a training pass moves the running statistics");
    assert_ne!(before, net.embed_peaks(&backend, &seqs).expect("embed"), "and inference follows them");
}
