//! The analyses of a trained SeqNet on the planted-motif simulation (three cell types, each
//! opened by its own JASPAR motif), on the CPU:
//! * TF activity ranks each planted TF first in its own type, and its z-scores separate the
//!   types;
//! * ISM's largest |Δ| for a type falls inside that type's planted motif in ≥ 90% of held-out
//!   regions that hold it;
//! * a variant breaking a planted motif lowers its type's prediction more than ten random
//!   variants outside motifs.

mod common;
#[path = "common/planted.rs"]
mod planted;

use chromax::backend::cpu::CpuBackend;
use chromax::rng::SplitMix64;
use chromax::sc::analyses::{background_means, ism_window, tf_activity, variant_effects, Head, TfActivityOptions};
use chromax::sc::data::{split_peaks, Split};
use chromax::sc::groups::Groups;
use chromax::sc::model::load_seq_model;
use chromax::sc::shuffle::dinucleotide_shuffle;
use chromax::sc::train::{train_seq, ScTrainOptions};
use common::say;
use planted::{jaspar, sim_options, simulate, Control, PLANTED};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("chromax-scan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn planted_motifs_are_found_by_tf_activity_ism_and_variants() {
    let backend = CpuBackend::new();
    let sim = simulate(41, Control::None);
    // Trained longer than the training tests' 12 epochs: the analyses need the motifs learnt.
    let opts = ScTrainOptions { epochs: 40, ..sim_options(sim.data.seq_len) };
    let dir = temp_dir("planted");
    train_seq(&backend, &sim.data, &opts, &dir, false, &mut |_| {}).expect("train");
    let (net, _, _) = load_seq_model(&backend, &dir).expect("load");
    let head = Head::of(&backend, &net).expect("head");
    let len = sim.data.seq_len;
    let types = Groups {
        names: vec!["type0".into(), "type1".into(), "type2".into()],
        members: (0..3).map(|t| (0..72u32).filter(|&c| sim.cell_type[c as usize] == t).collect()).collect(),
    };

    // TF activity: the three planted motifs among five others, backgrounds shuffled peaks.
    let mut ids: Vec<&str> = PLANTED.to_vec();
    ids.extend(["MA0035.4", "MA0004.1", "MA0006.1", "MA0019.1", "MA0030.1"]);
    let motifs = jaspar(&ids);
    let n_bg = 300;
    let mut background = Vec::with_capacity(n_bg * len);
    for i in 0..n_bg {
        let p = (i * 7) % 900;
        background
            .extend(dinucleotide_shuffle(&sim.data.codes[p * len..(p + 1) * len], &mut SplitMix64::new(i as u64)));
    }
    let tf_opts = TfActivityOptions { instances: 300, background: n_bg, seed: 5, batch: 64 };
    let means = background_means(&backend, &net, &background, 64).expect("background");
    let act = tf_activity(&backend, &net, &background, &means, &motifs, &tf_opts, &mut |_| {}).expect("tf activity");
    let m = motifs.len();
    let mean_over = |values: &[f32], t: usize, k: usize| -> f64 {
        let cells = &types.members[t];
        cells.iter().map(|&c| values[c as usize * m + k] as f64).sum::<f64>() / cells.len() as f64
    };
    let type_mean = |t: usize, k: usize| mean_over(&act.scores, t, k);
    // A motif's specificity for a type: its mean activity in the type's cells minus that in
    // the other cells (in the activity's own units: the z-scores of a motif that does little
    // still spread to ±1 across cells, and a motif that opens any type lifts every cell a
    // little through the embeddings' shared direction).
    let specificity = |t: usize, k: usize| {
        let others: Vec<usize> = (0..3).filter(|&o| o != t).collect();
        mean_over(&act.raw, t, k) - others.iter().map(|&o| mean_over(&act.raw, o, k)).sum::<f64>() / 2.0
    };
    for (t, planted) in PLANTED.iter().enumerate() {
        let row: Vec<f64> = (0..m).map(|k| specificity(t, k)).collect();
        let first = (0..m).max_by(|&a, &b| row[a].total_cmp(&row[b])).expect("motifs");
        say(&format!(
            "TF activity, type {t}: specificity per motif {:?}; mean z {:?}",
            row.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>(),
            (0..m).map(|k| format!("{:.2}", type_mean(t, k))).collect::<Vec<_>>()
        ));
        assert_eq!(first, t, "type {t}: the planted motif {planted} is not ranked first");
        for other in (0..3).filter(|&o| o != t) {
            assert!(
                type_mean(t, t) > type_mean(other, t) + 1.0,
                "motif {} z-scores do not separate type {t} ({:.2}) from type {other} ({:.2})",
                planted,
                type_mean(t, t),
                type_mean(other, t)
            );
        }
    }

    // ISM on held-out peaks holding a planted motif: where is each type's largest |Δ|?
    let group_w = types.mean_rows(&head.w, head.dim);
    let split = split_peaks(&sim.data.peaks, &opts).expect("split");
    let test: Vec<usize> = (0..900).filter(|&p| split[p] == Split::Test && !sim.sites[p].is_empty()).collect();
    let (mut hits, mut cases) = (0, 0);
    let mut by_type = [(0usize, 0usize); 3];
    let (mut alone_hits, mut alone_cases) = (0, 0);
    for &p in &test {
        let window = &sim.data.codes[p * len..(p + 1) * len];
        let delta = ism_window(&backend, &net, window, &group_w, 128).expect("ism");
        for &(t, _, _) in &sim.sites[p] {
            // A position's |Δ|: the largest over its three substitutions.
            let importance = |pos: usize| (0..4).map(|b| delta[(pos * 4 + b) * 3 + t].abs()).fold(0.0f32, f32::max);
            let peak_pos = (0..len).max_by(|&a, &b| importance(a).total_cmp(&importance(b))).expect("positions");
            let inside = sim.sites[p].iter().any(|&(tt, a, ww)| tt == t && (a..a + ww).contains(&peak_pos));
            let alone = sim.sites[p].iter().all(|&(tt, _, _)| tt == t);
            alone_hits += usize::from(inside && alone);
            alone_cases += usize::from(alone);
            hits += usize::from(inside);
            cases += 1;
            by_type[t].0 += usize::from(inside);
            by_type[t].1 += 1;
        }
    }
    let frac = hits as f64 / cases as f64;
    say(&format!("ISM: the largest |Δ| of a type lies in its planted motif in {hits} of {cases} cases ({frac:.3}); by type {by_type:?}; alone {alone_hits} of {alone_cases}"));
    assert!(cases >= 20 && frac >= 0.9, "ISM finds the planted motifs in {hits} of {cases} cases");

    // Variants: break a planted site at its most informative position, against ten random
    // substitutions outside every site of the same peak.
    let mut wins = 0;
    let mut tried = 0;
    let mut rng = SplitMix64::new(77);
    for &p in test.iter().take(20) {
        let (t, at, _) = sim.sites[p][0];
        let motif = &motifs[t];
        let j = (0..motif.width())
            .max_by(|&a, &b| {
                motif.probs[a]
                    .iter()
                    .cloned()
                    .fold(0.0, f64::max)
                    .total_cmp(&motif.probs[b].iter().cloned().fold(0.0, f64::max))
            })
            .expect("positions");
        let window = &sim.data.codes[p * len..(p + 1) * len];
        let weakest =
            (0..4u8).min_by(|&a, &b| motif.probs[j][a as usize].total_cmp(&motif.probs[j][b as usize])).expect("bases");
        let mut windows = Vec::new();
        let mut push = |pos: usize, base: u8| {
            windows.extend_from_slice(window);
            let at = windows.len();
            windows.extend_from_slice(window);
            windows[at + pos] = base;
        };
        if window[at + j] == weakest {
            continue;
        }
        push(at + j, weakest);
        let mut outside = 0;
        while outside < 10 {
            let pos = (rng.next_u64() % len as u64) as usize;
            if sim.sites[p].iter().any(|&(_, a, w)| (a..a + w).contains(&pos)) {
                continue;
            }
            push(pos, (window[pos] + 1 + (rng.next_u64() % 3) as u8) % 4);
            outside += 1;
        }
        let fx = variant_effects(&backend, &net, &windows, &head, &types, 64).expect("effects");
        let broken = fx.logit[t];
        let lowest_random = (1..11).map(|v| fx.logit[v * 3 + t]).fold(f32::INFINITY, f32::min);
        wins += usize::from(broken < lowest_random);
        tried += 1;
    }
    say(&format!(
        "variants: breaking the motif lowers its type more than all ten random variants in {wins} of {tried} peaks"
    ));
    assert!(tried >= 10 && wins as f64 >= 0.9 * tried as f64, "{wins} of {tried}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Over every cell's `k` nearest other cells (cosine similarity of the embeddings): the mean
/// fraction from the other batch, and the mean fraction of the same type.
fn neighbour_mixing(emb: &[f32], dim: usize, batch: &[usize], types: &[usize], k: usize) -> (f64, f64) {
    let n = batch.len();
    let unit = planted::unit_rows(emb, dim, n);
    let (mut mixing, mut agreement) = (0.0, 0.0);
    for a in 0..n {
        let mut others: Vec<(f64, usize)> = (0..n)
            .filter(|&b| b != a)
            .map(|b| (unit[a].iter().zip(&unit[b]).map(|(p, q)| p * q).sum::<f64>(), b))
            .collect();
        others.sort_by(|x, y| y.0.total_cmp(&x.0));
        let near = &others[..k];
        mixing += near.iter().filter(|&&(_, b)| batch[b] != batch[a]).count() as f64 / k as f64;
        agreement += near.iter().filter(|&&(_, b)| types[b] == types[a]).count() as f64 / k as f64;
    }
    (mixing / n as f64, agreement / n as f64)
}

/// Two batches, each opening the peaks of its own motif in all its cells: without batch
/// correction a cell's neighbours are mostly of its batch; with it they mix while the types
/// stay apart. The batch path is saved with the model and its embeddings exported apart.
#[test]
fn batch_correction_mixes_batches_and_keeps_types() {
    use chromax::sc::data::CellBatches;
    use chromax::sc::embed::{read_batch_embeddings, read_cell_embeddings};
    let backend = CpuBackend::new();
    let mut sim = planted::simulate_with(43, Control::None, true);
    let opts = ScTrainOptions { epochs: 40, ..sim_options(sim.data.seq_len) };
    let mut results = Vec::new();
    for corrected in [false, true] {
        sim.data.batches = corrected
            .then(|| CellBatches::from_labels(&sim.batch.iter().map(|b| format!("run{}", b + 1)).collect::<Vec<_>>()));
        let dir = temp_dir(&format!("bc-{corrected}"));
        // With the batch path alone the cell embeddings learn the batch as fast as it does
        // (other-batch neighbours 0.14 here); an L2 penalty on them, as scBasset advises when
        // batches do not mix, leaves the shared shift to the unpenalised batch path. (3e-4
        // suits this 72-cell loss; 1e-3 mixes to 0.38 but blurs the types to 0.85.)
        let opts = ScTrainOptions { l2: if corrected { 3e-4 } else { 0.0 }, ..opts.clone() };
        train_seq(&backend, &sim.data, &opts, &dir, false, &mut |_| {}).expect("train");
        let e = read_cell_embeddings(&dir).expect("embeddings");
        let (mixing, agreement) = neighbour_mixing(&e.embeddings, e.dim, &sim.batch, &sim.cell_type, 10);
        say(&format!(
            "batch correction {}: other-batch neighbours {mixing:.3} (0.5 = perfect mixing), same-type neighbours {agreement:.3}",
            if corrected { "on" } else { "off" }
        ));
        results.push((mixing, agreement));
        if corrected {
            let b = read_batch_embeddings(&dir).expect("batch embeddings");
            assert_eq!(
                (b.barcodes.clone(), b.embeddings.len()),
                (vec!["run1".to_string(), "run2".to_string()], 2 * e.dim)
            );
            assert!(b.embeddings.iter().any(|&v| v != 0.0), "the batch path learnt nothing");
            let (net, config, _) = load_seq_model(&backend, &dir).expect("a batch-corrected model loads");
            assert_eq!((config.model.batches, net.batch_onehot.is_some()), (2, true));
        } else {
            assert!(read_batch_embeddings(&dir).is_err(), "a model without batch correction has no batch embeddings");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    let [(mix_off, _), (mix_on, agree_on)] = [results[0], results[1]];
    assert!(mix_off < 0.35, "without batch correction the neighbours are mostly of the same batch: {mix_off}");
    assert!(mix_on >= 0.35, "with batch correction the batches mix: {mix_on}");
    assert!(agree_on >= 0.9, "with batch correction the types stay apart: {agree_on}");
}

/// Streamed imputation equals the dense computation σ(z·w_c) (+ b_c with the depth kept),
/// whatever the chunk, and a chunk's buffers stay within the stated bound.
#[test]
fn streamed_imputation_equals_the_dense_matrix_within_its_memory_bound() {
    use chromax::models::{SeqConfig, SeqNet};
    use chromax::sc::analyses::embed_sequences;
    use chromax::sc::impute::{chunk_bytes, impute_groups, impute_streamed};
    let backend = CpuBackend::new();
    let cfg = SeqConfig { cells: 40, ..planted::small_model(160) };
    let net = SeqNet::new(&backend, cfg.clone(), 7, Some(&(0..40).map(|c| -1.0 + 0.05 * c as f32).collect::<Vec<_>>()))
        .expect("net");
    let head = Head::of(&backend, &net).expect("head");
    let mut rng = SplitMix64::new(1);
    let n_peaks = 23;
    let codes: Vec<u8> = (0..n_peaks * 160).map(|_| (rng.next_u64() % 4) as u8).collect();
    let cells: Vec<u32> = vec![3, 0, 17, 39, 8];
    let z = embed_sequences(&backend, &net, &codes, 64).expect("z");
    for keep_depth in [false, true] {
        let dense: Vec<f64> = (0..n_peaks)
            .flat_map(|p| {
                let (z, head) = (&z[p * 8..(p + 1) * 8], &head);
                cells.iter().map(move |&c| {
                    let x: f64 = z
                        .iter()
                        .zip(&head.w[c as usize * 8..(c as usize + 1) * 8])
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
                        + if keep_depth { head.b[c as usize] as f64 } else { 0.0 };
                    1.0 / (1.0 + (-x).exp())
                })
            })
            .collect();
        let mut first: Option<Vec<f32>> = None;
        for chunk in [1, 7, 23] {
            let mut got = Vec::new();
            let stats = impute_streamed(&backend, &net, &head, &codes, &cells, keep_depth, chunk, 4, &mut |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .expect("impute");
            common::assert_close(&format!("chunk {chunk}, depth kept {keep_depth}"), &got, &dense, 1e-6, 1e-5);
            assert!(stats.peak_chunk_bytes <= chunk_bytes(chunk, 160, 8, cells.len()), "{stats:?}");
            match &first {
                Some(f) => {
                    assert!(f.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "chunk {chunk} changes bits")
                }
                None => first = Some(got),
            }
        }
    }
    // A chunk of one peak holds one peak's worth, whatever the number of peaks.
    assert_eq!(chunk_bytes(1, 160, 8, 5), 160 + 32 + 60);
    let groups = Groups { names: vec!["a".into(), "b".into()], members: vec![vec![3, 0], vec![17, 39, 8]] };
    let (pseudo, _) = impute_groups(&backend, &net, &head, &codes, &groups, false, 5, 4).expect("groups");
    let mut per_cell = Vec::new();
    impute_streamed(&backend, &net, &head, &codes, &[0, 3, 8, 17, 39], false, 5, 4, &mut |p| {
        per_cell.extend_from_slice(p);
        Ok(())
    })
    .expect("impute");
    for p in 0..n_peaks {
        let v = |i: usize| per_cell[p * 5 + i] as f64;
        let (a, b) = ((v(0) + v(1)) / 2.0, (v(2) + v(3) + v(4)) / 3.0);
        assert!((pseudo[p] as f64 - a).abs() < 1e-6 && (pseudo[n_peaks + p] as f64 - b).abs() < 1e-6, "peak {p}");
    }
}
