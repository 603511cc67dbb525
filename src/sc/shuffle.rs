//! The exact dinucleotide-preserving shuffle (Altschul & Erickson 1985, by Kandel et al.'s
//! Eulerian walk), seeded: the backgrounds of TF activity.
//!
//! A sequence is a walk through the graph whose vertices are the bases and whose edges are its
//! dinucleotides. A random Eulerian walk of that graph from the same first base uses every
//! dinucleotide exactly as often as the original. It is drawn by choosing, for each base but
//! the last, a random "last exit" such that the last exits form a tree into the final base
//! (which guarantees the walk cannot strand an edge), shuffling every other exit of each base,
//! and walking. Base codes are A C G T N = 0..4; N takes part like any base.

use crate::rng::SplitMix64;

const ALPHABET: usize = 5;

/// Fisher–Yates with the given generator.
fn shuffle<T>(v: &mut [T], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Whether following `last_exit` from every base with exits reaches `end`.
fn is_tree_into(last_exit: &[Option<u8>; ALPHABET], end: u8) -> bool {
    (0..ALPHABET as u8).all(|start| {
        let mut v = start;
        for _ in 0..=ALPHABET {
            if v == end {
                return true;
            }
            match last_exit[v as usize] {
                Some(next) => v = next,
                // A base never left (it only ends the sequence, or is absent): nothing to walk.
                None => return v == start,
            }
        }
        false
    })
}

/// A dinucleotide shuffle of `seq` (codes 0..4) drawn with `rng`: the same length, first and
/// last base and count of every dinucleotide.
pub fn dinucleotide_shuffle(seq: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    if seq.len() < 3 {
        return seq.to_vec();
    }
    let code = |b: u8| b.min(4);
    let mut exits: [Vec<u8>; ALPHABET] = Default::default();
    for w in seq.windows(2) {
        exits[code(w[0]) as usize].push(code(w[1]));
    }
    let end = code(seq[seq.len() - 1]);
    // The last exits: random ones until they form a tree into `end` (with five vertices this
    // takes a few draws); the original sequence's own last exits always do, as a fallback.
    let mut last: [Option<usize>; ALPHABET] = [None; ALPHABET];
    let mut found = false;
    for _ in 0..10_000 {
        for v in 0..ALPHABET {
            last[v] =
                (v as u8 != end && !exits[v].is_empty()).then(|| (rng.next_u64() % exits[v].len() as u64) as usize);
        }
        let targets = std::array::from_fn(|v| last[v].map(|i| exits[v][i]));
        if is_tree_into(&targets, end) {
            found = true;
            break;
        }
    }
    if !found {
        for v in 0..ALPHABET {
            last[v] = (v as u8 != end && !exits[v].is_empty()).then(|| exits[v].len() - 1);
        }
    }
    for v in 0..ALPHABET {
        match last[v] {
            Some(i) => {
                let n = exits[v].len();
                exits[v].swap(i, n - 1);
                shuffle(&mut exits[v][..n - 1], rng);
            }
            None => shuffle(&mut exits[v], rng),
        }
    }
    let mut out = Vec::with_capacity(seq.len());
    let mut next = [0usize; ALPHABET];
    let mut v = code(seq[0]);
    out.push(v);
    while out.len() < seq.len() {
        let e = &exits[v as usize];
        // Every exit is used once and the walk ends at `end` after the last one.
        let Some(&w) = e.get(next[v as usize]) else { break };
        next[v as usize] += 1;
        out.push(w);
        v = w;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &[u8]) -> [[usize; ALPHABET]; ALPHABET] {
        let mut c = [[0; ALPHABET]; ALPHABET];
        for w in s.windows(2) {
            c[w[0] as usize][w[1] as usize] += 1;
        }
        c
    }

    #[test]
    fn dinucleotide_counts_are_preserved_exactly() {
        let mut gen = SplitMix64::new(11);
        for case in 0..300 {
            let len = 3 + (gen.next_u64() % 1400) as usize;
            // Skewed compositions too: GC-rich, one base missing, runs of N.
            let seq: Vec<u8> = (0..len)
                .map(|i| match case % 4 {
                    0 => (gen.next_u64() % 4) as u8,
                    1 => [1, 2, 2, 1, 0][(gen.next_u64() % 5) as usize],
                    2 => (gen.next_u64() % 3) as u8,
                    _ => {
                        if i % 97 < 20 {
                            4
                        } else {
                            (gen.next_u64() % 4) as u8
                        }
                    }
                })
                .collect();
            let mut rng = SplitMix64::new(case);
            let out = dinucleotide_shuffle(&seq, &mut rng);
            assert_eq!(out.len(), seq.len(), "case {case}");
            assert_eq!(counts(&out), counts(&seq), "case {case}: dinucleotide counts differ");
            assert_eq!((out[0], out[len - 1]), (seq[0], seq[len - 1]), "case {case}: first/last base");
            if len > 200 && case % 4 != 3 {
                assert_ne!(out, seq, "case {case}: a long sequence came back unshuffled");
            }
        }
    }

    #[test]
    fn the_shuffle_is_seeded() {
        let seq: Vec<u8> = (0..500u64).map(|i| (crate::rng::mix(i) % 4) as u8).collect();
        let a = dinucleotide_shuffle(&seq, &mut SplitMix64::new(5));
        assert_eq!(a, dinucleotide_shuffle(&seq, &mut SplitMix64::new(5)));
        assert_ne!(a, dinucleotide_shuffle(&seq, &mut SplitMix64::new(6)));
    }
}
