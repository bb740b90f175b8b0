//! The byte format of one log entry, shared by segments on disk and (later) append frames
//! on the wire, so that a follower can journal what it receives without re-encoding.
//!
//! ```text
//! offset  size  field
//!      0     4  body_size_bytes (u32 LE): bytes after the checksum; 0 marks the end of data
//!      4     4  checksum (u32 LE): CRC32C of bytes 0..4 and of the body
//!      8     8  index (u64 LE)                 -- the body starts here
//!     16     8  term (u64 LE)
//!     24     1  kind (Copycat's ids, negated: 39 Initialize, 37 Configuration, 36 Command)
//!     25     8  timestamp_ms (u64 LE): the writing leader's wall clock
//!     33     -  payload: a command's bytes, or a configuration's members
//! ```
//! A configuration's payload is a member count (u16 LE) and, per member, id (u64 LE),
//! type (u8), status (u8) and updated_ms (u64 LE).
//!
//! Bytes from a disk or a socket are untrusted: every decode checks sizes before it reads
//! and the checksum before it believes anything; bad input is an error value, never a panic,
//! and never an allocation larger than the input.

use bytes::Bytes;

use crate::entry::{Entry, EntryBody};
use crate::membership::{Member, MemberStatus, MemberType, MEMBERS_MAX};
use crate::types::{LogIndex, ReplicaId, Term};

/// Bytes before the body: size and checksum.
pub const ENTRY_PREFIX_SIZE_BYTES: usize = 8;
/// Bytes of the body before the payload: index, term, kind, timestamp.
pub const ENTRY_BODY_HEADER_SIZE_BYTES: usize = 25;
/// Largest body accepted (a corrupted size field must not make a reader allocate more).
pub const ENTRY_BODY_SIZE_BYTES_MAX: usize = 64 * 1024 * 1024;
const MEMBER_SIZE_BYTES: usize = 18;

const KIND_INITIALIZE: u8 = 39;
const KIND_CONFIGURATION: u8 = 37;
const KIND_COMMAND: u8 = 36;

const _: () = assert!(ENTRY_BODY_SIZE_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(ENTRY_BODY_HEADER_SIZE_BYTES == 8 + 8 + 1 + 8);

/// Why bytes are not an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryDecodeError {
    /// The size field is zero: no entry was written here (the end of the data).
    End,
    /// Fewer bytes than the entry needs: a torn write, or a buffer cut short.
    Truncated {
        /// Bytes the entry needs from its start.
        needed_bytes: usize,
        /// Bytes there are.
        available_bytes: usize,
    },
    /// The size field is larger than any entry may be.
    SizeTooLarge {
        /// The size read.
        body_size_bytes: usize,
    },
    /// The checksum does not match: corruption (or a torn write, at the tail).
    Checksum {
        /// The checksum stored.
        stored: u32,
        /// The checksum computed.
        computed: u32,
    },
    /// The checksum matched but the contents are not a valid entry (a writer bug).
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
}

impl std::fmt::Display for EntryDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryDecodeError::End => write!(f, "end of data (size 0)"),
            EntryDecodeError::Truncated {
                needed_bytes,
                available_bytes,
            } => {
                write!(
                    f,
                    "truncated entry: needs {needed_bytes} bytes, {available_bytes} remain"
                )
            }
            EntryDecodeError::SizeTooLarge { body_size_bytes } => {
                write!(
                    f,
                    "entry size {body_size_bytes} exceeds {ENTRY_BODY_SIZE_BYTES_MAX}"
                )
            }
            EntryDecodeError::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            EntryDecodeError::Malformed { reason } => write!(f, "malformed entry: {reason}"),
        }
    }
}

impl std::error::Error for EntryDecodeError {}

/// Bytes `entry` takes when encoded.
#[must_use]
pub fn encoded_size_bytes(entry: &Entry) -> usize {
    ENTRY_PREFIX_SIZE_BYTES + ENTRY_BODY_HEADER_SIZE_BYTES + payload_size_bytes(&entry.body)
}

fn payload_size_bytes(body: &EntryBody) -> usize {
    match body {
        EntryBody::Initialize => 0,
        EntryBody::Configuration { members } => 2 + members.len() * MEMBER_SIZE_BYTES,
        EntryBody::Command { payload } => payload.len(),
    }
}

/// Appends the encoding of `entry` to `out`.
///
/// # Panics
/// If the entry is larger than [`ENTRY_BODY_SIZE_BYTES_MAX`] (the leader refuses such
/// commands before they become entries).
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    let body_size = ENTRY_BODY_HEADER_SIZE_BYTES + payload_size_bytes(&entry.body);
    assert!(
        body_size <= ENTRY_BODY_SIZE_BYTES_MAX,
        "entry too large to encode"
    );
    let start = out.len();
    let size_field = u32::try_from(body_size)
        .expect("bounded above")
        .to_le_bytes();
    out.extend_from_slice(&size_field);
    out.extend_from_slice(&[0; 4]); // The checksum, filled in below.
    out.extend_from_slice(&entry.index.0.to_le_bytes());
    out.extend_from_slice(&entry.term.0.to_le_bytes());
    let kind = match &entry.body {
        EntryBody::Initialize => KIND_INITIALIZE,
        EntryBody::Configuration { .. } => KIND_CONFIGURATION,
        EntryBody::Command { .. } => KIND_COMMAND,
    };
    out.push(kind);
    out.extend_from_slice(&entry.timestamp_ms.to_le_bytes());
    match &entry.body {
        EntryBody::Initialize => {}
        EntryBody::Configuration { members } => {
            assert!(members.len() <= MEMBERS_MAX);
            let count = u16::try_from(members.len()).expect("MEMBERS_MAX fits u16");
            out.extend_from_slice(&count.to_le_bytes());
            for member in members {
                out.extend_from_slice(&member.id.0.to_le_bytes());
                out.push(member_type_code(member.member_type));
                out.push(member_status_code(member.status));
                out.extend_from_slice(&member.updated_ms.to_le_bytes());
            }
        }
        EntryBody::Command { payload } => out.extend_from_slice(payload),
    }
    let checksum = checksum(
        &out[start..start + 4],
        &out[start + ENTRY_PREFIX_SIZE_BYTES..],
    );
    out[start + 4..start + 8].copy_from_slice(&checksum.to_le_bytes());
    assert_eq!(out.len() - start, ENTRY_PREFIX_SIZE_BYTES + body_size);
}

fn checksum(size_field: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(size_field), body)
}

/// Decodes the entry that starts at `offset` in `buffer`; returns it and its encoded size.
/// A command's payload is a slice of `buffer` (no copy).
///
/// # Errors
/// See [`EntryDecodeError`]; nothing in `buffer` can make this panic.
pub fn decode_entry(buffer: &Bytes, offset: usize) -> Result<(Entry, usize), EntryDecodeError> {
    let available_bytes = buffer.len().saturating_sub(offset);
    if available_bytes < ENTRY_PREFIX_SIZE_BYTES {
        if buffer[offset.min(buffer.len())..]
            .iter()
            .all(|&byte| byte == 0)
            && available_bytes > 0
        {
            return Err(EntryDecodeError::End);
        }
        return Err(EntryDecodeError::Truncated {
            needed_bytes: ENTRY_PREFIX_SIZE_BYTES,
            available_bytes,
        });
    }
    let bytes = &buffer[offset..];
    let body_size = usize::try_from(u32_at(bytes, 0)).unwrap_or(usize::MAX);
    if body_size == 0 {
        return Err(EntryDecodeError::End);
    }
    if body_size > ENTRY_BODY_SIZE_BYTES_MAX {
        return Err(EntryDecodeError::SizeTooLarge {
            body_size_bytes: body_size,
        });
    }
    let total = ENTRY_PREFIX_SIZE_BYTES + body_size;
    if available_bytes < total {
        return Err(EntryDecodeError::Truncated {
            needed_bytes: total,
            available_bytes,
        });
    }
    let stored = u32_at(bytes, 4);
    let computed = checksum(&bytes[..4], &bytes[ENTRY_PREFIX_SIZE_BYTES..total]);
    if stored != computed {
        return Err(EntryDecodeError::Checksum { stored, computed });
    }
    if body_size < ENTRY_BODY_HEADER_SIZE_BYTES {
        return Err(EntryDecodeError::Malformed {
            reason: "body shorter than its header",
        });
    }
    let body = &bytes[ENTRY_PREFIX_SIZE_BYTES..total];
    let index = LogIndex(u64_at(body, 0));
    let term = Term(u64_at(body, 8));
    let timestamp_ms = u64_at(body, 17);
    let payload_start = offset + ENTRY_PREFIX_SIZE_BYTES + ENTRY_BODY_HEADER_SIZE_BYTES;
    let payload_end = offset + total;
    let body = match body[16] {
        KIND_INITIALIZE if payload_end == payload_start => EntryBody::Initialize,
        KIND_INITIALIZE => {
            return Err(EntryDecodeError::Malformed {
                reason: "initialize with a payload",
            })
        }
        KIND_CONFIGURATION => EntryBody::Configuration {
            members: decode_members(&buffer[payload_start..payload_end])?,
        },
        KIND_COMMAND => EntryBody::Command {
            payload: buffer.slice(payload_start..payload_end),
        },
        _ => {
            return Err(EntryDecodeError::Malformed {
                reason: "unknown entry kind",
            })
        }
    };
    if index == LogIndex::ZERO {
        return Err(EntryDecodeError::Malformed {
            reason: "index zero",
        });
    }
    Ok((
        Entry {
            index,
            term,
            timestamp_ms,
            body,
        },
        total,
    ))
}

fn decode_members(payload: &[u8]) -> Result<Vec<Member>, EntryDecodeError> {
    let malformed = |reason| Err(EntryDecodeError::Malformed { reason });
    if payload.len() < 2 {
        return malformed("configuration without a member count");
    }
    let count = usize::from(u16::from_le_bytes([payload[0], payload[1]]));
    if count > MEMBERS_MAX || payload.len() != 2 + count * MEMBER_SIZE_BYTES {
        return malformed("configuration size does not match its member count");
    }
    let mut members: Vec<Member> = Vec::with_capacity(count);
    for record in payload[2..].chunks_exact(MEMBER_SIZE_BYTES) {
        let id = ReplicaId(u64_at(record, 0));
        let Some(member_type) = member_type_from(record[8]) else {
            return malformed("unknown member type");
        };
        let Some(status) = member_status_from(record[9]) else {
            return malformed("unknown member status");
        };
        if members.last().is_some_and(|last| last.id >= id) {
            return malformed("members not sorted by id");
        }
        members.push(Member {
            id,
            member_type,
            status,
            updated_ms: u64_at(record, 10),
        });
    }
    Ok(members)
}

/// The wire code of a member type (1 RESERVE, 2 PASSIVE, 3 ACTIVE).
#[must_use]
pub fn member_type_code(member_type: MemberType) -> u8 {
    match member_type {
        MemberType::Inactive => 0,
        MemberType::Reserve => 1,
        MemberType::Passive => 2,
        MemberType::Active => 3,
    }
}

/// The member type of a wire code, if it is one.
#[must_use]
pub fn member_type_from(code: u8) -> Option<MemberType> {
    match code {
        1 => Some(MemberType::Reserve),
        2 => Some(MemberType::Passive),
        3 => Some(MemberType::Active),
        _ => None, // INACTIVE members are never stored: leaving removes them.
    }
}

/// The wire code of a member status (1 AVAILABLE, 2 UNAVAILABLE).
#[must_use]
pub fn member_status_code(status: MemberStatus) -> u8 {
    match status {
        MemberStatus::Available => 1,
        MemberStatus::Unavailable => 2,
    }
}

/// The member status of a wire code, if it is one.
#[must_use]
pub fn member_status_from(code: u8) -> Option<MemberStatus> {
    match code {
        1 => Some(MemberStatus::Available),
        2 => Some(MemberStatus::Unavailable),
        _ => None,
    }
}

/// The little-endian `u32` at `at`. Callers check the length first (it panics past the
/// end); shared by every fixed-layout format in the workspace.
#[must_use]
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// The little-endian `u64` at `at`. Callers check the length first (it panics past the
/// end).
#[must_use]
pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prng::Prng;

    fn entries() -> Vec<Entry> {
        let members = vec![
            Member::new(ReplicaId(1), MemberType::Active),
            Member {
                id: ReplicaId(7),
                member_type: MemberType::Passive,
                status: MemberStatus::Unavailable,
                updated_ms: 99,
            },
            Member::new(ReplicaId(9), MemberType::Reserve),
        ];
        vec![
            Entry {
                index: LogIndex(1),
                term: Term(1),
                timestamp_ms: 10,
                body: EntryBody::Initialize,
            },
            Entry {
                index: LogIndex(2),
                term: Term(1),
                timestamp_ms: 11,
                body: EntryBody::Configuration { members },
            },
            Entry {
                index: LogIndex(3),
                term: Term(2),
                timestamp_ms: 12,
                body: EntryBody::Command {
                    payload: Bytes::from_static(b"hello"),
                },
            },
            Entry {
                index: LogIndex(4),
                term: Term(2),
                timestamp_ms: 13,
                body: EntryBody::Command {
                    payload: Bytes::new(),
                },
            },
        ]
    }

    fn encode_all(entries: &[Entry]) -> Bytes {
        let mut out = Vec::new();
        for entry in entries {
            encode_entry(entry, &mut out);
        }
        Bytes::from(out)
    }

    #[test]
    fn round_trip_every_kind() {
        let entries = entries();
        let buffer = encode_all(&entries);
        let mut offset = 0;
        for expected in &entries {
            let (entry, size) = decode_entry(&buffer, offset).expect("decodes");
            assert_eq!(&entry, expected);
            assert_eq!(size, encoded_size_bytes(expected));
            offset += size;
        }
        assert_eq!(offset, buffer.len());
        assert_eq!(
            decode_entry(&buffer, offset),
            Err(EntryDecodeError::Truncated {
                needed_bytes: 8,
                available_bytes: 0
            })
        );
    }

    #[test]
    fn zeroes_mark_the_end() {
        let buffer = Bytes::from(vec![0u8; 64]);
        assert_eq!(decode_entry(&buffer, 0), Err(EntryDecodeError::End));
        assert_eq!(decode_entry(&buffer, 60), Err(EntryDecodeError::End));
    }

    #[test]
    fn every_truncation_is_detected() {
        let entries = entries();
        for entry in &entries {
            let full = encode_all(std::slice::from_ref(entry));
            for cut in 0..full.len() {
                let short = full.slice(..cut);
                let result = decode_entry(&short, 0);
                assert!(result.is_err(), "cut at {cut} decoded: {result:?}");
            }
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let full = encode_all(&entries()[1..3]);
        for bit in 0..full.len() * 8 {
            let mut bytes = full.to_vec();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let flipped = Bytes::from(bytes);
            let first = decode_entry(&flipped, 0);
            let second = first
                .as_ref()
                .ok()
                .map(|(_, size)| decode_entry(&flipped, *size));
            let intact = matches!((&first, &second), (Ok(_), Some(Ok(_))));
            assert!(!intact, "bit {bit} flipped and both entries still decoded");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut prng = Prng::new(3);
        for _ in 0..20_000 {
            let length = usize::try_from(prng.range(0, 96)).expect("small");
            let mut bytes: Vec<u8> = (0..length)
                .map(|_| prng.next_u64().to_le_bytes()[0])
                .collect();
            if prng.chance(1, 2) && bytes.len() >= 4 {
                // A plausible size field makes the decoder go further.
                let size = u32::try_from(prng.range(0, 80)).expect("small");
                bytes[..4].copy_from_slice(&size.to_le_bytes());
            }
            let buffer = Bytes::from(bytes);
            let offset = usize::try_from(prng.range(0, length as u64 + 2)).expect("small");
            let _ = decode_entry(&buffer, offset);
        }
    }

    #[test]
    fn oversized_length_is_refused_without_allocating() {
        let mut bytes = vec![0u8; 16];
        bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let result = decode_entry(&Bytes::from(bytes), 0);
        assert!(matches!(result, Err(EntryDecodeError::SizeTooLarge { .. })));
    }

    #[test]
    fn payload_is_a_slice_of_the_buffer() {
        let buffer = encode_all(&entries()[2..3]);
        let (entry, _) = decode_entry(&buffer, 0).expect("decodes");
        let EntryBody::Command { payload } = entry.body else {
            panic!("a command")
        };
        let start = buffer.as_ptr() as usize;
        let at = payload.as_ptr() as usize;
        assert!(
            at >= start && at < start + buffer.len(),
            "payload shares the buffer"
        );
    }
}
