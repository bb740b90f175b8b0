//! A small deterministic hash (FNV-1a, 64-bit) for trace hashes and entry digests.

/// Folds bytes and integers into one 64-bit value; the same inputs give the same value on
/// every run and every machine.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64 {
    state: u64,
}

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64::new()
    }
}

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;

    /// The empty hash.
    #[must_use]
    pub fn new() -> Fnv64 {
        Fnv64 {
            state: Self::OFFSET,
        }
    }

    /// Folds in bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &byte in bytes {
            self.state ^= u64::from(byte);
            self.state = self.state.wrapping_mul(Self::PRIME);
        }
        self
    }

    /// Folds in an integer.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// The hash so far.
    #[must_use]
    pub fn finish(&self) -> u64 {
        self.state
    }
}
