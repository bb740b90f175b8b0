//! The latest Raft configuration, in a small file beside the hard state and replaced the
//! same way ([`crate::atomic_file`]): write `configuration.tmp`, fsync it, rename it over
//! `configuration`, fsync the directory. A crash leaves the old configuration or the new one.
//!
//! ```text
//! offset      size  field
//!      0         8  magic "coracleC"
//!      8         4  format version (u32 LE), 1
//!     12         8  index of the configuration entry (u64 LE; 0 for the bootstrap list)
//!     20         8  term of the entry (u64 LE; 0 with index 0)
//!     28         8  time_ms: the leader's timestamp of the entry (u64 LE)
//!     36         2  members count n (u16 LE), at most MEMBERS_MAX (64)
//!     38    18 × n  members sorted by id: id (u64 LE), type (u8), status (u8), updated_ms (u64 LE)
//! 38+18n         4  CRC32C of every byte before it
//! ```
//!
//! A member record is the one a Configuration entry's payload holds
//! (`coracle_engine::entry_codec`; a test checks that they stay the same): type 1 RESERVE,
//! 2 PASSIVE, 3 ACTIVE (INACTIVE members are never stored), status 1 AVAILABLE,
//! 2 UNAVAILABLE. The engine does not export its member codec on its own, and a whole
//! encoded entry could not hold the bootstrap configuration (the entry codec refuses index
//! 0), so this module writes the records itself.
//!
//! Decoding checks the size and magic, then the checksum before believing any field, then
//! every field; it never panics and never allocates more than the file's bounded size.

use std::path::Path;

use coracle_engine::entry_codec::{
    member_status_code, member_status_from, member_type_code, member_type_from, u32_at, u64_at,
};
use coracle_engine::membership::MEMBERS_MAX;
use coracle_engine::{Configuration, LogIndex, Member, ReplicaId, Term};

use crate::atomic_file;
use crate::error::StorageError;

/// The file's name in a group's directory.
pub const CONFIGURATION_FILE_NAME: &str = "configuration";
/// What the file stores: the engine's configuration (entry index, term, leader time, members).
pub type StoredConfiguration = Configuration;

const MAGIC: [u8; 8] = *b"coracleC";
const FORMAT_VERSION: u32 = 1;
const MEMBERS_OFFSET: usize = 38;
const MEMBER_SIZE_BYTES: usize = 18;
const CHECKSUM_SIZE_BYTES: usize = 4;
/// The size of a configuration without members.
const SIZE_BYTES_MIN: usize = MEMBERS_OFFSET + CHECKSUM_SIZE_BYTES;
/// The size of a configuration with [`MEMBERS_MAX`] members.
pub const SIZE_BYTES_MAX: usize = SIZE_BYTES_MIN + MEMBERS_MAX * MEMBER_SIZE_BYTES;

const _: () = assert!(MEMBERS_MAX <= u16::MAX as usize);
const _: () = assert!(MEMBERS_OFFSET == 8 + 4 + 8 + 8 + 8 + 2);

/// The encoding of `configuration`.
///
/// # Panics
/// If the configuration is not valid (unsorted, duplicate or INACTIVE members, too many, or
/// a term without an index): the engine never builds one.
#[must_use]
pub fn encode(configuration: &StoredConfiguration) -> Vec<u8> {
    configuration.assert_valid();
    if configuration.index == LogIndex::ZERO {
        assert_eq!(
            configuration.term,
            Term::ZERO,
            "the bootstrap list has no term"
        );
    }
    let count = u16::try_from(configuration.members.len()).expect("at most MEMBERS_MAX");
    let size = SIZE_BYTES_MIN + configuration.members.len() * MEMBER_SIZE_BYTES;
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&configuration.index.0.to_le_bytes());
    bytes.extend_from_slice(&configuration.term.0.to_le_bytes());
    bytes.extend_from_slice(&configuration.time_ms.to_le_bytes());
    bytes.extend_from_slice(&count.to_le_bytes());
    assert_eq!(bytes.len(), MEMBERS_OFFSET);
    for member in &configuration.members {
        bytes.extend_from_slice(&member.id.0.to_le_bytes());
        bytes.push(member_type_code(member.member_type));
        bytes.push(member_status_code(member.status));
        bytes.extend_from_slice(&member.updated_ms.to_le_bytes());
    }
    let checksum = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    assert_eq!(bytes.len(), size);
    assert!(size <= SIZE_BYTES_MAX);
    bytes
}

/// Decodes a configuration file's bytes; the error says what is wrong and at which offset.
///
/// # Errors
/// Wrong size, bad magic, bad checksum, unknown version, a member count that does not match
/// the size, an unknown member type or status, or members out of order.
pub fn decode(bytes: &[u8]) -> Result<StoredConfiguration, (u64, String)> {
    let size = bytes.len();
    if size < SIZE_BYTES_MIN {
        return Err((
            size as u64,
            format!("{size} bytes, fewer than the {SIZE_BYTES_MIN} of an empty configuration"),
        ));
    }
    if size > SIZE_BYTES_MAX {
        return Err((
            SIZE_BYTES_MAX as u64,
            format!("more than the {SIZE_BYTES_MAX} bytes a configuration may take"),
        ));
    }
    if bytes[0..8] != MAGIC {
        return Err((0, "not a coracle configuration file (bad magic)".into()));
    }
    let checksum_offset = size - CHECKSUM_SIZE_BYTES;
    let stored = u32_at(bytes, checksum_offset);
    let computed = crc32c::crc32c(&bytes[..checksum_offset]);
    if stored != computed {
        return Err((
            checksum_offset as u64,
            format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    // The checksum matched: what follows is a writer's bug or a foreign format, not damage.
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err((8, format!("unknown format version {version}")));
    }
    let index = LogIndex(u64_at(bytes, 12));
    let term = Term(u64_at(bytes, 20));
    if index == LogIndex::ZERO && term != Term::ZERO {
        return Err((20, format!("term {term} without an entry index")));
    }
    let time_ms = u64_at(bytes, 28);
    let count = usize::from(u16::from_le_bytes([bytes[36], bytes[37]]));
    if count > MEMBERS_MAX {
        return Err((36, format!("{count} members, more than {MEMBERS_MAX}")));
    }
    if checksum_offset - MEMBERS_OFFSET != count * MEMBER_SIZE_BYTES {
        return Err((36, format!("{count} members do not fill {size} bytes")));
    }
    let mut members: Vec<Member> = Vec::with_capacity(count);
    for (position, record) in bytes[MEMBERS_OFFSET..checksum_offset]
        .chunks_exact(MEMBER_SIZE_BYTES)
        .enumerate()
    {
        let offset = (MEMBERS_OFFSET + position * MEMBER_SIZE_BYTES) as u64;
        let id = ReplicaId(u64_at(record, 0));
        let Some(member_type) = member_type_from(record[8]) else {
            return Err((offset + 8, format!("unknown member type {}", record[8])));
        };
        let Some(status) = member_status_from(record[9]) else {
            return Err((offset + 9, format!("unknown member status {}", record[9])));
        };
        if members.last().is_some_and(|last| last.id >= id) {
            return Err((offset, format!("member {id} out of order or repeated")));
        }
        members.push(Member {
            id,
            member_type,
            status,
            updated_ms: u64_at(record, 10),
        });
    }
    let configuration = Configuration {
        index,
        term,
        time_ms,
        members,
    };
    configuration.assert_valid(); // Checked field by field above: it cannot fail.
    Ok(configuration)
}

/// Reads the configuration stored in `directory`, or `None` if none was ever saved there.
/// A leftover `configuration.tmp` (a crash before the rename) is ignored.
///
/// # Errors
/// I/O errors, or corruption naming the file and offset.
pub fn load(directory: &Path) -> Result<Option<StoredConfiguration>, StorageError> {
    let Some(bytes) = atomic_file::load(directory, CONFIGURATION_FILE_NAME, SIZE_BYTES_MAX as u64)?
    else {
        return Ok(None);
    };
    decode(&bytes)
        .map(Some)
        .map_err(|(offset, reason)| StorageError::Corruption {
            path: directory.join(CONFIGURATION_FILE_NAME),
            offset,
            reason,
        })
}

/// Stores `configuration` in `directory` atomically and durably.
///
/// # Errors
/// Any I/O error; the old configuration is then still the stored one (or the new one, if
/// only the directory sync failed: callers must treat an error as fatal, not retry).
///
/// # Panics
/// If the configuration is not valid (see [`encode`]).
pub fn save(directory: &Path, configuration: &StoredConfiguration) -> Result<(), StorageError> {
    atomic_file::replace(directory, CONFIGURATION_FILE_NAME, &encode(configuration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use coracle_engine::entry_codec::{encode_entry, ENTRY_BODY_HEADER_SIZE_BYTES};
    use coracle_engine::{Entry, EntryBody, Prng};
    use coracle_engine::{MemberStatus, MemberType};
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let directory = std::env::temp_dir().join(format!(
            "coracle-configuration-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).expect("scratch directory");
        directory
    }

    fn sample() -> StoredConfiguration {
        Configuration::from_members(
            LogIndex(42),
            Term(7),
            1_700_000_000_123,
            vec![
                Member::new(ReplicaId(3), MemberType::Active),
                Member {
                    id: ReplicaId(1),
                    member_type: MemberType::Passive,
                    status: MemberStatus::Unavailable,
                    updated_ms: 99,
                },
                Member::new(ReplicaId(9), MemberType::Reserve),
                Member::new(ReplicaId(u64::MAX), MemberType::Active),
            ],
        )
    }

    fn largest() -> StoredConfiguration {
        let members = (1..=MEMBERS_MAX as u64)
            .map(|id| Member::new(ReplicaId(id), MemberType::Active))
            .collect();
        Configuration::from_members(LogIndex(u64::MAX), Term(u64::MAX), u64::MAX, members)
    }

    #[test]
    fn configurations_round_trip_through_the_file() {
        let directory = scratch("round-trip");
        assert_eq!(load(&directory).expect("load"), None);
        let empty = Configuration::from_members(LogIndex(5), Term(2), 0, Vec::new());
        let bootstrap = Configuration::bootstrap(&[ReplicaId(1), ReplicaId(2), ReplicaId(3)]);
        for configuration in [bootstrap, empty, sample(), largest()] {
            save(&directory, &configuration).expect("save");
            assert_eq!(load(&directory).expect("load"), Some(configuration));
        }
        assert_eq!(encode(&largest()).len(), SIZE_BYTES_MAX);
        assert!(!directory
            .join(atomic_file::temporary_name(CONFIGURATION_FILE_NAME))
            .exists());
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn a_leftover_temporary_file_is_ignored() {
        let directory = scratch("leftover");
        let old = sample();
        save(&directory, &old).expect("save");
        let new = encode(&largest());
        let temporary = directory.join(atomic_file::temporary_name(CONFIGURATION_FILE_NAME));
        std::fs::write(&temporary, &new[..100]).expect("write");
        assert_eq!(load(&directory).expect("load"), Some(old));
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn every_flipped_bit_is_reported_with_file_and_offset() {
        let directory = scratch("flip");
        let path = directory.join(CONFIGURATION_FILE_NAME);
        let good = encode(&sample());
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &bad).expect("write");
            match load(&directory) {
                Err(StorageError::Corruption {
                    path: reported,
                    offset,
                    ..
                }) => {
                    assert_eq!(reported, path);
                    assert!(offset < good.len() as u64, "bit {bit}: offset {offset}");
                }
                other => panic!("bit {bit}: expected corruption, got {other:?}"),
            }
        }
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn every_truncation_and_extension_is_detected() {
        let good = encode(&sample());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut} decoded");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let directory = scratch("huge");
        std::fs::write(directory.join(CONFIGURATION_FILE_NAME), vec![0u8; 1 << 20]).expect("write");
        assert!(matches!(
            load(&directory),
            Err(StorageError::Corruption { offset, .. }) if offset == SIZE_BYTES_MAX as u64
        ));
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    /// Damage behind a valid checksum (a writer's bug) is still refused, at its offset.
    #[test]
    fn fields_are_checked_behind_the_checksum() {
        let reseal = |mut bytes: Vec<u8>| {
            let end = bytes.len() - CHECKSUM_SIZE_BYTES;
            let checksum = crc32c::crc32c(&bytes[..end]);
            bytes[end..].copy_from_slice(&checksum.to_le_bytes());
            bytes
        };
        let good = encode(&sample());
        let first_type = MEMBERS_OFFSET + 8;
        let cases: [(usize, u8, u64); 5] = [
            (8, 2, 8),                                  // version
            (36, 5, 36),                                // member count
            (first_type, 0, first_type as u64),         // INACTIVE
            (first_type + 1, 3, first_type as u64 + 1), // status
            (
                MEMBERS_OFFSET,
                200,
                MEMBERS_OFFSET as u64 + MEMBER_SIZE_BYTES as u64,
            ), // order
        ];
        for (at, value, expected_offset) in cases {
            let mut bad = good.clone();
            bad[at] = value;
            match decode(&reseal(bad)) {
                Err((offset, _)) => assert_eq!(offset, expected_offset, "byte {at} = {value}"),
                Ok(decoded) => panic!("byte {at} = {value} decoded as {decoded:?}"),
            }
        }
        let mut term_without_index = encode(&Configuration::bootstrap(&[ReplicaId(1)]));
        term_without_index[20] = 1;
        assert_eq!(
            decode(&reseal(term_without_index)).map_err(|e| e.0),
            Err(20)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut prng = Prng::new(11);
        let good = encode(&sample());
        for round in 0..20_000 {
            let mut bytes: Vec<u8> = if round % 2 == 0 {
                let length = usize::try_from(prng.range(0, 200)).expect("small");
                (0..length)
                    .map(|_| prng.next_u64().to_le_bytes()[0])
                    .collect()
            } else {
                good.clone()
            };
            if !bytes.is_empty() {
                // Damage some bytes, then (sometimes) reseal so the decoder reads the fields.
                for _ in 0..prng.range(1, 4) {
                    let at = usize::try_from(prng.range(0, bytes.len() as u64)).expect("small");
                    bytes[at] = prng.next_u64().to_le_bytes()[0];
                }
            }
            if prng.chance(1, 2) && bytes.len() >= SIZE_BYTES_MIN {
                bytes[..8].copy_from_slice(&MAGIC);
                let end = bytes.len() - CHECKSUM_SIZE_BYTES;
                let checksum = crc32c::crc32c(&bytes[..end]);
                bytes[end..].copy_from_slice(&checksum.to_le_bytes());
            }
            if let Ok(configuration) = decode(&bytes) {
                assert_eq!(
                    encode(&configuration),
                    bytes,
                    "a decoded file re-encodes exactly"
                );
            }
        }
    }

    /// The member records are the ones a Configuration entry carries in the log.
    #[test]
    fn member_records_match_the_entry_codec() {
        let configuration = sample();
        let mut entry = Vec::new();
        encode_entry(
            &Entry {
                index: configuration.index,
                term: configuration.term,
                timestamp_ms: configuration.time_ms,
                body: EntryBody::Configuration {
                    members: configuration.members.clone(),
                },
            },
            &mut entry,
        );
        // The entry's payload: its prefix (8) and body header, then count and records.
        let payload = Bytes::from(entry).slice(8 + ENTRY_BODY_HEADER_SIZE_BYTES..);
        let file = encode(&configuration);
        assert_eq!(&payload[..], &file[36..file.len() - CHECKSUM_SIZE_BYTES]);
    }
}
