//! The one random generator: SplitMix64 (Steele, Lea & Flood 2014), counter-based, so every
//! draw is a pure function of a seed and a counter and the same on every platform.
//!
//! * [`mix`] — the counter hash `finalize(z + γ)`. The dropout mask is
//!   `mix(seed ^ i·γ)` here ([`crate::backend::dropout_keep`]) and bit for bit the same in
//!   `kernels/dropout.cu` (`splitmix64_mix`, in `unsigned long long` arithmetic), which the
//!   kernel-emulation and CUDA parity tests check.
//! * [`SplitMix64`] — the sequential generator: draw k is `mix(seed + k·γ)`. Initialisation,
//!   shuffles, splits and the synthetic benchmark data all use it or [`mix`].
//!
//! All arithmetic wraps.

/// The golden-ratio increment γ = 2⁶⁴/φ, odd.
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser (Stafford's "Mix13"): a bijection of u64 with full avalanche.
pub fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The counter hash: SplitMix64's output for state `z`, `finalize(z + γ)`.
///
/// ```
/// use chromax::rng::{mix, SplitMix64};
/// let mut g = SplitMix64::new(7);
/// assert_eq!(g.next_u64(), mix(7));
/// assert_eq!(g.next_u64(), mix(7u64.wrapping_add(chromax::rng::GAMMA)));
/// ```
pub fn mix(z: u64) -> u64 {
    finalize(z.wrapping_add(GAMMA))
}

/// The top 53 bits of `z` as a uniform value in [0, 1).
pub fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A seeded sequence of 64-bit values: draw k (from 0) is `mix(seed + k·γ)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        let out = mix(self.state);
        self.state = self.state.wrapping_add(GAMMA);
        out
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn unit(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// A standard normal value (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A Fisher–Yates shuffle of `items` seeded by `seed`: the same order for the same seed on
/// every platform.
pub fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    let mut state = seed;
    for i in (1..v.len()).rev() {
        state = mix(state);
        let j = (state % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// The shuffle of `items` for round `round` (an epoch) of a run seeded by `seed`: each pair
/// gives its own permutation, the same on every platform.
pub fn shuffled_for<T: Clone>(items: &[T], seed: u64, round: usize) -> Vec<T> {
    shuffled(items, mix(seed ^ mix(round as u64 + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_of_the_reference_generator() {
        // SplitMix64 from seed 0 (the published reference sequence).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(g.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn shuffles_are_permutations_fixed_by_the_seed() {
        let items: Vec<u32> = (0..100).collect();
        let a = shuffled(&items, 3);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, items);
        assert_eq!(a, shuffled(&items, 3));
        assert_ne!(a, shuffled(&items, 4));
    }

    #[test]
    fn unit_values_lie_in_the_half_open_interval() {
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
