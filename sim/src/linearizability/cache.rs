//! The search's memo of configurations already explored.

use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::bitset::Bitset;

/// The set of (linearized operations, model state) configurations the search has reached.
///
/// Reaching a configuration twice means the second visit can only repeat the first one's
/// failure, so the search prunes it (the memoization of Lowe's improvement to Wing & Gong).
pub(crate) struct Cache<S> {
    // The checker only inserts into and probes this set, never iterates it, so the unordered
    // std set cannot make results depend on hashing order; it is much faster than a BTreeSet
    // here, which would have to compare whole bitsets and states at every level.
    #[allow(clippy::disallowed_types)]
    seen: std::collections::HashSet<(Bitset, S), BuildHasherDefault<FxHasher>>,
}

impl<S: Eq + Hash> Cache<S> {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Cache {
            seen: Default::default(),
        }
    }

    /// Records the configuration; returns false if it had been recorded before.
    pub(crate) fn insert(&mut self, linearized: Bitset, state: S) -> bool {
        self.seen.insert((linearized, state))
    }

    /// How many configurations are recorded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

/// A small, fast, non-cryptographic hasher (the "Fx" multiply-rotate hash used by rustc),
/// with a final mix so the high bits that the std table relies on are well distributed.
#[derive(Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // A murmur3-style finalizer: every input bit affects the high bits.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_reports_novelty() {
        let mut cache = Cache::new();
        let mut a = Bitset::new(70);
        a.set(3);
        assert!(cache.insert(a.clone(), 7u32));
        assert!(!cache.insert(a.clone(), 7u32));
        assert!(cache.insert(a.clone(), 8u32));
        a.set(69);
        assert!(cache.insert(a, 7u32));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn hasher_distinguishes_lengths() {
        let hash = |bytes: &[u8]| {
            let mut h = FxHasher::default();
            h.write(bytes);
            h.finish()
        };
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b""), hash(b"\0"));
    }
}
