//! Seeded, portable random streams.
//!
//! Every random draw in gpushare comes from a [`Xoshiro256PlusPlus`] stream derived from the
//! scenario seed, a purpose name and an index (a function, a GPU, …). Streams are independent:
//! adding a function or a draw in one place never shifts the numbers drawn anywhere else, and the
//! generator's output is fixed by its algorithm, not by the `rand` version (unlike `StdRng`).

use rand::SeedableRng;
pub use rand_xoshiro::Xoshiro256PlusPlus;

/// SplitMix64 finaliser: a bijective mix of 64 bits.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bits: a stable hash (the same on every platform and compiler version), also a
/// [`std::hash::Hasher`] for maps keyed by short, trusted strings (no SipHash cost).
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
}

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    std::hash::Hasher::write(&mut h, bytes);
    h.0
}

/// FNV-1a hash of a purpose name: stable across platforms and compiler versions.
fn name_hash(name: &str) -> u64 {
    fnv1a(name.as_bytes())
}

/// Derives a 64-bit sub-seed for (`seed`, `purpose`, `index`).
pub fn derive_seed(seed: u64, purpose: &str, index: u64) -> u64 {
    mix64(mix64(mix64(seed) ^ name_hash(purpose)) ^ index)
}

/// The random stream for (`seed`, `purpose`, `index`).
pub fn stream(seed: u64, purpose: &str, index: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, purpose, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = stream(7, "arrivals", 3).random();
        let b: u64 = stream(7, "arrivals", 3).random();
        let c: u64 = stream(7, "arrivals", 4).random();
        let d: u64 = stream(7, "durations", 3).random();
        let e: u64 = stream(8, "arrivals", 3).random();
        assert_eq!(a, b);
        assert!(a != c && a != d && a != e && c != d);
    }

    #[test]
    fn derivation_is_pinned() {
        // Pinned so that a change of the derivation (which would change every published result)
        // cannot slip in unnoticed.
        assert_eq!(derive_seed(0, "", 0), 12_014_417_281_350_144_652);
    }
}
