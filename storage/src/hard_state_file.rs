//! Term and vote in a small file, replaced atomically ([`crate::atomic_file`]): write a new
//! file, fsync it, rename it over the old one, fsync the directory. A crash leaves the old
//! state or the new one.
//!
//! ```text
//! offset size  field
//!      0    8  magic "coracleH"
//!      8    8  term (u64 LE)
//!     16    1  1 if a vote follows, else 0
//!     17    8  vote (u64 LE; zero without a vote)
//!     25    4  CRC32C of bytes 0..25
//! ```

use std::path::Path;

use coracle_engine::{HardState, ReplicaId, Term};

use crate::atomic_file;
use crate::error::StorageError;

/// The file's name in a log's directory.
pub const HARD_STATE_FILE_NAME: &str = "hard-state";
const MAGIC: [u8; 8] = *b"coracleH";
const SIZE_BYTES: usize = 29;

/// The encoding of `hard_state`.
#[must_use]
pub fn encode(hard_state: HardState) -> [u8; SIZE_BYTES] {
    let mut bytes = [0u8; SIZE_BYTES];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..16].copy_from_slice(&hard_state.term.0.to_le_bytes());
    if let Some(vote) = hard_state.vote {
        bytes[16] = 1;
        bytes[17..25].copy_from_slice(&vote.0.to_le_bytes());
    }
    let checksum = crc32c::crc32c(&bytes[..25]);
    bytes[25..29].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Decodes a hard-state file's bytes; the error says what is wrong and where.
///
/// # Errors
/// Wrong size, bad magic, bad checksum, or a bad vote flag, with the byte offset.
pub fn decode(bytes: &[u8]) -> Result<HardState, (u64, String)> {
    if bytes.len() != SIZE_BYTES {
        return Err((0, format!("{} bytes, expected {SIZE_BYTES}", bytes.len())));
    }
    if bytes[0..8] != MAGIC {
        return Err((0, "not a coracle hard-state file (bad magic)".into()));
    }
    let stored = u32::from_le_bytes(bytes[25..29].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&bytes[..25]);
    if stored != computed {
        return Err((
            25,
            format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let term = Term(u64::from_le_bytes(
        bytes[8..16].try_into().expect("8 bytes"),
    ));
    let vote = u64::from_le_bytes(bytes[17..25].try_into().expect("8 bytes"));
    let vote = match bytes[16] {
        0 if vote == 0 => None,
        1 => Some(ReplicaId(vote)),
        _ => return Err((16, "bad vote flag".into())),
    };
    Ok(HardState { term, vote })
}

/// Reads the hard state stored in `directory`; the default (term 0, no vote) if none is.
///
/// # Errors
/// I/O errors, or corruption naming the file and offset.
pub fn load(directory: &Path) -> Result<HardState, StorageError> {
    // Never read more than a hard state can be, whatever the file's size.
    let Some(bytes) = atomic_file::load(directory, HARD_STATE_FILE_NAME, SIZE_BYTES as u64)? else {
        return Ok(HardState::default());
    };
    decode(&bytes).map_err(|(offset, reason)| StorageError::Corruption {
        path: directory.join(HARD_STATE_FILE_NAME),
        offset,
        reason,
    })
}

/// Stores `hard_state` in `directory` atomically and durably (see [`atomic_file::replace`]).
///
/// # Errors
/// Any I/O error; the old state is then still the stored one (or the new one, if only the
/// directory sync failed: callers must treat an error as fatal, not retry).
pub fn save(directory: &Path, hard_state: HardState) -> Result<(), StorageError> {
    atomic_file::replace(directory, HARD_STATE_FILE_NAME, &encode(hard_state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const TEMPORARY_FILE_NAME: &str = "hard-state.tmp";

    fn scratch(name: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("coracle-hard-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).expect("scratch directory");
        directory
    }

    #[test]
    fn missing_file_is_the_initial_state_and_saves_round_trip() {
        let directory = scratch("round-trip");
        assert_eq!(load(&directory).expect("load"), HardState::default());
        for hard_state in [
            HardState {
                term: Term(3),
                vote: None,
            },
            HardState {
                term: Term(4),
                vote: Some(ReplicaId(9)),
            },
        ] {
            save(&directory, hard_state).expect("save");
            assert_eq!(load(&directory).expect("load"), hard_state);
        }
        assert!(
            !directory.join(TEMPORARY_FILE_NAME).exists(),
            "the new file was renamed"
        );
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_state() {
        let directory = scratch("crash");
        let old = HardState {
            term: Term(5),
            vote: Some(ReplicaId(1)),
        };
        save(&directory, old).expect("save");
        // A half-written new file, as a crash between write and rename leaves it.
        let new = encode(HardState {
            term: Term(6),
            vote: Some(ReplicaId(2)),
        });
        std::fs::write(directory.join(TEMPORARY_FILE_NAME), &new[..10]).expect("write");
        assert_eq!(load(&directory).expect("load"), old);
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn every_flipped_bit_is_reported_with_file_and_offset() {
        let directory = scratch("corrupt");
        let good = encode(HardState {
            term: Term(7),
            vote: Some(ReplicaId(3)),
        });
        for bit in 0..SIZE_BYTES * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(directory.join(HARD_STATE_FILE_NAME), bad).expect("write");
            match load(&directory) {
                Err(StorageError::Corruption { path, .. }) => {
                    assert_eq!(path, directory.join(HARD_STATE_FILE_NAME));
                }
                other => panic!("bit {bit}: expected corruption, got {other:?}"),
            }
        }
        std::fs::write(directory.join(HARD_STATE_FILE_NAME), vec![0u8; 1 << 20]).expect("write");
        assert!(matches!(
            load(&directory),
            Err(StorageError::Corruption { offset: 0, .. })
        ));
        std::fs::remove_dir_all(&directory).expect("clean up");
    }
}
