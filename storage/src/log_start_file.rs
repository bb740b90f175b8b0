//! The first index a segment log serves, kept across restarts.
//!
//! A prefix truncation (`truncate_before`, below a snapshot) removes whole segments only;
//! the entries it drops from the segment it keeps would come back on the next open without
//! this file. Replaced atomically like the hard state.
//!
//! ```text
//! offset size  field
//!      0    8  magic "coracleS"
//!      8    8  first index (u64 LE)
//!     16    4  CRC32C of bytes 0..16
//! ```

use std::path::Path;

use coracle_engine::LogIndex;

use crate::atomic_file;
use crate::error::StorageError;

/// The file's name in a log's directory.
pub const LOG_START_FILE_NAME: &str = "log-start";
const MAGIC: [u8; 8] = *b"coracleS";
const SIZE_BYTES: usize = 20;

fn encode(first_index: LogIndex) -> [u8; SIZE_BYTES] {
    let mut bytes = [0u8; SIZE_BYTES];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..16].copy_from_slice(&first_index.0.to_le_bytes());
    let checksum = crc32c::crc32c(&bytes[..16]);
    bytes[16..20].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Result<LogIndex, (u64, String)> {
    if bytes.len() != SIZE_BYTES {
        return Err((0, format!("{} bytes, expected {SIZE_BYTES}", bytes.len())));
    }
    if bytes[0..8] != MAGIC {
        return Err((0, "not a coracle log-start file (bad magic)".into()));
    }
    let stored = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&bytes[..16]);
    if stored != computed {
        return Err((
            16,
            format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let index = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if index == 0 {
        return Err((8, "first index 0 (indexes start at 1)".into()));
    }
    Ok(LogIndex(index))
}

/// The first index stored in `directory`, if a prefix was ever truncated.
///
/// # Errors
/// I/O errors, or corruption naming the file and offset.
pub fn load(directory: &Path) -> Result<Option<LogIndex>, StorageError> {
    let Some(bytes) = atomic_file::load(directory, LOG_START_FILE_NAME, SIZE_BYTES as u64)? else {
        return Ok(None);
    };
    decode(&bytes)
        .map(Some)
        .map_err(|(offset, reason)| StorageError::Corruption {
            path: directory.join(LOG_START_FILE_NAME),
            offset,
            reason,
        })
}

/// Stores `first_index` in `directory` atomically and durably.
///
/// # Errors
/// Any I/O error (fatal for the log: it stops).
pub fn save(directory: &Path, first_index: LogIndex) -> Result<(), StorageError> {
    atomic_file::replace(directory, LOG_START_FILE_NAME, &encode(first_index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flipped_bit_is_caught() {
        let good = encode(LogIndex(12345));
        assert_eq!(decode(&good), Ok(LogIndex(12345)));
        for bit in 0..SIZE_BYTES * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad).is_err(), "bit {bit}");
        }
        assert!(decode(&good[..10]).is_err());
        assert!(decode(&encode(LogIndex(0))).is_err());
    }
}
