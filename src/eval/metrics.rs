//! Exact metrics over up to billions of bases: no sampling, no binning.
//!
//! * Pearson and MSE: one pass for the means, one for the centred sums, in f64.
//! * Spearman: the Pearson correlation of average ranks (ties share their mean rank). Ranks
//!   come from sorting `(value, index)` packed into one u64 per base (an order-preserving key
//!   of the f32 value in the high half), in parallel; twice the average rank is an integer,
//!   so the rank correlation is summed exactly in i128. Memory: 12 bytes per base (12 GB at
//!   10⁹ bases).
//! * AUROC and AUPRC: one sort of `(score, label)` packed in a u64 per base (8 GB at 10⁹),
//!   then a sweep from the highest score down with tied scores taken together: AUROC is the
//!   Mann–Whitney probability (ties count ½), AUPRC the average precision
//!   `Σ (recall_k − recall_{k−1}) · precision_k` over distinct thresholds (as scikit-learn).

use rayon::prelude::*;

/// An order-preserving u32 key of a finite f32.
fn key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Elements per partial sum.
const CHUNK: usize = 1 << 16;

/// `K` sums of `term(a, b)` over the pairs of `x` and `y`, in f64: partial sums of fixed
/// chunks in parallel, then added in chunk order, so the result is the same on every run and
/// for any number of threads.
fn sums<const K: usize>(x: &[f32], y: &[f32], term: impl Fn(f64, f64) -> [f64; K] + Sync) -> [f64; K] {
    let partials: Vec<[f64; K]> = x
        .par_chunks(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .map(|(x, y)| {
            x.iter().zip(y).fold([0.0; K], |mut acc, (&a, &b)| {
                acc.iter_mut().zip(term(a as f64, b as f64)).for_each(|(s, t)| *s += t);
                acc
            })
        })
        .collect();
    partials.iter().fold([0.0; K], |mut total, p| {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        total
    })
}

/// Pearson's r in f64 (0 when either side is constant).
pub fn pearson(x: &[f32], y: &[f32]) -> f64 {
    let n = x.len() as f64;
    if x.is_empty() {
        return f64::NAN;
    }
    let [sx, sy] = sums(x, y, |a, b| [a, b]);
    let (mx, my) = (sx / n, sy / n);
    let [sxy, sxx, syy] = sums(x, y, |a, b| {
        let (da, db) = (a - mx, b - my);
        [da * db, da * da, db * db]
    });
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Mean squared error in f64.
pub fn mse(x: &[f32], y: &[f32]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let [sq] = sums(x, y, |a, b| [(a - b) * (a - b)]);
    sq / x.len() as f64
}

/// Twice the average rank (1-based) of every element, ties sharing their mean rank.
fn doubled_ranks(values: &[f32], keys: &mut Vec<u64>) -> Vec<u32> {
    keys.clear();
    keys.par_extend(values.par_iter().enumerate().map(|(i, &v)| ((key(v) as u64) << 32) | i as u64));
    keys.par_sort_unstable();
    let mut ranks = vec![0u32; values.len()];
    let mut a = 0;
    while a < keys.len() {
        let k = keys[a] >> 32;
        let mut b = a + 1;
        while b < keys.len() && keys[b] >> 32 == k {
            b += 1;
        }
        let doubled = (a + 1 + b) as u32; // (a+1 + b) / 2 is the mean of ranks a+1 ..= b
        for &entry in &keys[a..b] {
            ranks[(entry & 0xFFFF_FFFF) as usize] = doubled;
        }
        a = b;
    }
    ranks
}

/// Spearman's ρ, exact (see the module documentation). At most 2³¹ − 1 values.
pub fn spearman(x: &[f32], y: &[f32]) -> f64 {
    let n = x.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut keys = Vec::with_capacity(n);
    let rx = doubled_ranks(x, &mut keys);
    let ry = doubled_ranks(y, &mut keys);
    drop(keys);
    let mean = (n + 1) as i128; // the mean of the doubled ranks
    let (sxy, sxx, syy) = rx
        .par_iter()
        .zip(&ry)
        .map(|(&a, &b)| {
            let (da, db) = (a as i128 - mean, b as i128 - mean);
            (da * db, da * da, db * db)
        })
        .reduce(|| (0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    if sxx == 0 || syy == 0 {
        0.0
    } else {
        sxy as f64 / ((sxx as f64) * (syy as f64)).sqrt()
    }
}

/// (AUROC, AUPRC) of `scores` against 0/1 `labels` (non-zero = positive); NaN when a class is
/// missing.
pub fn auroc_auprc(scores: &[f32], labels: &[f32]) -> (f64, f64) {
    let Some((keys, positives, negatives)) = ranked(scores, labels) else {
        return (f64::NAN, f64::NAN);
    };
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut auc_sum, mut ap) = (0.0f64, 0.0f64);
    for (pos, neg) in tie_groups(&keys) {
        // Negatives at this score beat the positives above it and tie with those here.
        auc_sum += neg as f64 * (tp as f64 + 0.5 * pos as f64);
        tp += pos;
        fp += neg;
        if pos > 0 {
            ap += (pos as f64 / positives as f64) * (tp as f64 / (tp + fp) as f64);
        }
    }
    // auc_sum counts, for each negative, the positives scored above it: P(score_neg < score_pos).
    (auc_sum / (positives as f64 * negatives as f64), ap)
}

/// One u64 key (score, label) per value, sorted highest score first, with the counts of
/// positives and negatives; None when a class is missing.
fn ranked(scores: &[f32], labels: &[f32]) -> Option<(Vec<u64>, u64, u64)> {
    let mut keys: Vec<u64> =
        scores.par_iter().zip(labels).map(|(&s, &l)| ((key(s) as u64) << 1) | u64::from(l != 0.0)).collect();
    keys.par_sort_unstable_by(|a, b| b.cmp(a));
    let positives = keys.iter().filter(|&&k| k & 1 == 1).count() as u64;
    let negatives = keys.len() as u64 - positives;
    (positives > 0 && negatives > 0).then_some((keys, positives, negatives))
}

/// `(positives, negatives)` of each distinct score of `ranked` keys, in their order.
fn tie_groups(keys: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    keys.chunk_by(|a, b| a >> 1 == b >> 1).map(|g| {
        let pos = g.iter().filter(|&&k| k & 1 == 1).count() as u64;
        (pos, g.len() as u64 - pos)
    })
}

/// Points of the ROC curve (false-positive rate, true-positive rate) and of the
/// precision–recall curve (recall, precision), one per distinct score from the highest down,
/// thinned to at most `max_points` each (the first and last kept); empty when a class is
/// missing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RankCurves {
    pub roc: Vec<(f64, f64)>,
    pub pr: Vec<(f64, f64)>,
    /// Fraction of positives: the precision of a random ranking.
    pub prevalence: f64,
}

/// The ROC and precision–recall curves of `scores` against 0/1 `labels` (non-zero =
/// positive), over the same ranking as [`auroc_auprc`].
pub fn rank_curves(scores: &[f32], labels: &[f32], max_points: usize) -> RankCurves {
    let Some((keys, positives, negatives)) = ranked(scores, labels) else {
        return RankCurves::default();
    };
    let (p, n) = (positives as f64, negatives as f64);
    let (mut roc, mut pr) = (vec![(0.0, 0.0)], Vec::new());
    let (mut tp, mut fp) = (0u64, 0u64);
    for (pos, neg) in tie_groups(&keys) {
        tp += pos;
        fp += neg;
        roc.push((fp as f64 / n, tp as f64 / p));
        pr.push((tp as f64 / p, tp as f64 / (tp + fp) as f64));
    }
    let thin = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        if v.len() <= max_points.max(2) {
            return v;
        }
        let step = (v.len() - 1) as f64 / (max_points.max(2) - 1) as f64;
        (0..max_points.max(2)).map(|i| v[((i as f64 * step).round() as usize).min(v.len() - 1)]).collect()
    };
    RankCurves { roc: thin(roc), pr: thin(pr), prevalence: p / (p + n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_curves_run_from_corner_to_corner_and_hold_the_auroc() {
        let scores: Vec<f32> = (0..10_000u32).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let labels: Vec<f32> =
            scores.iter().enumerate().map(|(i, &s)| f32::from(s + (i % 7) as f32 * 0.1 > 0.7)).collect();
        let c = rank_curves(&scores, &labels, 100_000);
        assert_eq!((c.roc[0], *c.roc.last().expect("end")), ((0.0, 0.0), (1.0, 1.0)));
        assert_eq!(c.pr.last().expect("end").0, 1.0);
        // The trapezoids under the unthinned ROC are the tie-aware AUROC.
        let area: f64 = c.roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        let (auroc, _) = auroc_auprc(&scores, &labels);
        assert!((area - auroc).abs() < 1e-12, "{area} vs {auroc}");
        let positives = labels.iter().filter(|&&l| l != 0.0).count() as f64;
        assert_eq!(c.prevalence, positives / 10_000.0);
        let thin = rank_curves(&scores, &labels, 50);
        assert_eq!(thin.roc.len(), 50);
        assert_eq!((thin.roc[0], thin.roc[49]), ((0.0, 0.0), (1.0, 1.0)));
        assert!(rank_curves(&scores, &vec![0.0; 10_000], 10).roc.is_empty());
    }

    #[test]
    fn sums_do_not_depend_on_the_threads() {
        let x: Vec<f32> = (0..1_000_003u64).map(|i| ((i * 7919 % 10007) as f32).sqrt()).collect();
        let y: Vec<f32> = (0..1_000_003u64).map(|i| ((i * 104_729 % 10009) as f32).ln_1p()).collect();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| (pearson(&x, &y).to_bits(), mse(&x, &y).to_bits()))
        };
        let one = on(1);
        assert_eq!(on(3), one);
        assert_eq!(on(4), one);
    }

    fn naive_spearman(x: &[f32], y: &[f32]) -> f64 {
        let ranks = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&a| {
                    let less = v.iter().filter(|&&b| b < a).count() as f32;
                    let equal = v.iter().filter(|&&b| b == a).count() as f32;
                    less + (equal + 1.0) / 2.0
                })
                .collect()
        };
        pearson(&ranks(x), &ranks(y))
    }

    /// AUROC by comparing every positive with every negative.
    fn naive_auroc(s: &[f32], l: &[f32]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &si) in s.iter().enumerate() {
            for (j, &sj) in s.iter().enumerate() {
                if l[i] != 0.0 && l[j] == 0.0 {
                    pairs += 1.0;
                    wins += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
                let _ = (i, j);
            }
        }
        wins / pairs
    }

    /// Average precision by walking thresholds from the top (as scikit-learn).
    fn naive_ap(s: &[f32], l: &[f32]) -> f64 {
        let mut thresholds: Vec<f32> = s.to_vec();
        thresholds.sort_by(|a, b| b.partial_cmp(a).expect("finite"));
        thresholds.dedup();
        let p = l.iter().filter(|&&v| v != 0.0).count() as f64;
        let (mut prev_recall, mut ap) = (0.0, 0.0);
        for t in thresholds {
            let tp = s.iter().zip(l).filter(|(&a, &b)| a >= t && b != 0.0).count() as f64;
            let all = s.iter().filter(|&&a| a >= t).count() as f64;
            let recall = tp / p;
            ap += (recall - prev_recall) * tp / all;
            prev_recall = recall;
        }
        ap
    }

    #[test]
    fn exact_metrics_match_naive_definitions_with_ties() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let x: Vec<f32> = (0..300).map(|_| (next() % 20) as f32 - 5.0).collect(); // many ties
        let y: Vec<f32> = x.iter().map(|&v| v * 0.5 + (next() % 7) as f32).collect();
        assert!((spearman(&x, &y) - naive_spearman(&x, &y)).abs() < 1e-12);
        let labels: Vec<f32> = y.iter().map(|&v| if v > 4.0 { 1.0 } else { 0.0 }).collect();
        let (auroc, auprc) = auroc_auprc(&x, &labels);
        assert!((auroc - naive_auroc(&x, &labels)).abs() < 1e-12, "{auroc}");
        assert!((auprc - naive_ap(&x, &labels)).abs() < 1e-12, "{auprc} vs {}", naive_ap(&x, &labels));
        // Perfect and reversed rankings; negative values and zeros order correctly.
        let s = [-2.0f32, -0.0, 0.5, 3.0];
        assert_eq!(auroc_auprc(&s, &[0.0, 0.0, 1.0, 1.0]), (1.0, 1.0));
        assert_eq!(auroc_auprc(&s, &[1.0, 1.0, 0.0, 0.0]).0, 0.0);
        assert!((spearman(&s, &[1.0, 2.0, 3.0, 4.0]) - 1.0).abs() < 1e-15);
        assert!(auroc_auprc(&s, &[0.0; 4]).0.is_nan());
    }
}
