//! A small deterministic RNG (SplitMix64) for seeded timing sweeps.
//!
//! SplitMix64 passes BigCrush, has no bad seeds (0 works), needs one word of
//! state and no multiplication wider than 64 bits: enough for choosing delays,
//! and simple enough to reproduce by hand from a seed in a bug report.

/// A seeded pseudo-random sequence: the same seed gives the same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator for one test: the run's seed mixed with the test's name,
    /// so a test sees the same numbers whether it runs alone (`filter=`), after
    /// a resume (`skip=`), or in the full suite.
    pub const fn for_test(seed: u64, name: &str) -> Self {
        Self::new(seed ^ fnv1a(name.as_bytes()))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..bound` (0 when `bound` is 0). Multiply-high instead of
    /// `%`: the bias is below 2^-32 for any bound a test uses, and it has no
    /// division.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A number in `lo..=hi`; the bounds may come in either order.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(), // the whole u64 range
        }
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// FNV-1a, 64-bit: a const-friendly string hash for seeding.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn matches_the_reference_splitmix64() {
        // First outputs of the reference C implementation seeded with 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn per_test_streams_differ_and_repeat() {
        let a = Rng::for_test(7, "boot::nmi_all_to_all").next_u64();
        assert_eq!(a, Rng::for_test(7, "boot::nmi_all_to_all").next_u64());
        assert_ne!(a, Rng::for_test(7, "boot::selftest").next_u64());
    }

    #[test]
    fn bounded_draws_stay_in_bounds() {
        let mut r = Rng::new(3);
        assert_eq!(r.below(0), 0);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let x = r.between(100, 5);
            assert!((5..=100).contains(&x));
            assert_eq!(r.between(9, 9), 9);
        }
        let _ = r.between(0, u64::MAX); // no overflow
        assert!(r.chance(1));
    }
}
