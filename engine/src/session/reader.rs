//! A bounds-checked little-endian reader for the session codecs: bytes from a log or a
//! socket are untrusted, so every read checks the length first and a bad input is an error
//! value, never a panic, and never an allocation larger than the input.

use bytes::Bytes;

/// Why bytes do not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the value did.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the read.
        offset: usize,
    },
    /// A tag or field holds a value no writer produces.
    Invalid {
        /// What is wrong.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// Bytes were left after the value.
    Trailing {
        /// How many.
        bytes: usize,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { what, offset } => {
                write!(f, "input ends inside {what} at offset {offset}")
            }
            DecodeError::Invalid { what, value } => write!(f, "invalid {what}: {value}"),
            DecodeError::Trailing { bytes } => write!(f, "{bytes} bytes after the value"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads fields in order from shared bytes; slices it hands out share the buffer.
#[derive(Debug)]
pub struct Reader {
    bytes: Bytes,
    offset: usize,
}

impl Reader {
    /// A reader at the start of `bytes`.
    #[must_use]
    pub fn new(bytes: Bytes) -> Reader {
        Reader { bytes, offset: 0 }
    }

    fn take(&mut self, size: usize, what: &'static str) -> Result<&[u8], DecodeError> {
        let end = self
            .offset
            .checked_add(size)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::Truncated {
                what,
                offset: self.offset,
            })?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    /// One byte.
    ///
    /// # Errors
    /// If the input has ended.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// A little-endian u32.
    ///
    /// # Errors
    /// If the input has ended.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(word))
    }

    /// A little-endian u64.
    ///
    /// # Errors
    /// If the input has ended.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(word))
    }

    /// A little-endian u128.
    ///
    /// # Errors
    /// If the input has ended.
    pub fn u128(&mut self, what: &'static str) -> Result<u128, DecodeError> {
        let mut word = [0u8; 16];
        word.copy_from_slice(self.take(16, what)?);
        Ok(u128::from_le_bytes(word))
    }

    /// A u32 length followed by that many bytes, shared with the input.
    ///
    /// # Errors
    /// If the length runs past the input.
    pub fn bytes(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let size = self.u32(what)? as usize;
        let start = self.offset;
        self.take(size, what)?;
        Ok(self.bytes.slice(start..start + size))
    }

    /// A u32 length followed by that many bytes of UTF-8 text.
    ///
    /// # Errors
    /// If the length runs past the input, or the bytes are not UTF-8 (the error names the
    /// first bad byte).
    pub fn text(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|error| DecodeError::Invalid {
            what,
            value: error.utf8_error().valid_up_to() as u64,
        })
    }

    /// Everything not read yet, shared with the input.
    pub fn rest(&mut self) -> Bytes {
        let rest = self.bytes.slice(self.offset..);
        self.offset = self.bytes.len();
        rest
    }

    /// Succeeds only if every byte was read.
    ///
    /// # Errors
    /// [`DecodeError::Trailing`] otherwise.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            bytes => Err(DecodeError::Trailing { bytes }),
        }
    }
}

/// Appends a u32 length and the bytes.
///
/// # Panics
/// If `bytes` is 4 GiB or longer (no operation is).
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let size = u32::try_from(bytes.len()).expect("field under 4 GiB");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_and_checks_bounds() {
        let mut out = vec![7u8];
        out.extend_from_slice(&9u64.to_le_bytes());
        put_bytes(&mut out, b"abc");
        let mut reader = Reader::new(Bytes::from(out));
        assert_eq!(reader.u8("tag"), Ok(7));
        assert_eq!(reader.u64("word"), Ok(9));
        assert_eq!(reader.bytes("payload").unwrap().as_ref(), b"abc");
        assert!(matches!(
            reader.u8("more"),
            Err(DecodeError::Truncated { .. })
        ));
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn a_length_past_the_input_is_an_error_not_an_allocation() {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = Reader::new(Bytes::from(out));
        assert!(matches!(
            reader.bytes("payload"),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
