//! A fixed-size set of small integers, used to record which operations are linearized.

/// A fixed-capacity bitset over `0..len`, stored as 64-bit words.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bitset {
    words: Box<[u64]>,
}

impl Bitset {
    /// An empty set able to hold the integers `0..len`.
    pub(crate) fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Adds `i` to the set.
    pub(crate) fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// Removes `i` from the set.
    pub(crate) fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// Whether `i` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// How many integers the set holds.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_contains() {
        let mut b = Bitset::new(130);
        assert_eq!(b.count(), 0);
        for i in [0, 63, 64, 129] {
            b.set(i);
            assert!(b.contains(i));
        }
        assert_eq!(b.count(), 4);
        b.clear(64);
        assert!(!b.contains(64));
        assert_eq!(b.count(), 3);
        let mut c = Bitset::new(130);
        for i in [0, 63, 129] {
            c.set(i);
        }
        assert_eq!(b, c);
    }
}
