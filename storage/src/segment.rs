//! The format of one segment file and the scan that recovers it.
//!
//! A segment is a 64-byte header followed by entries in the engine's entry format
//! (`coracle_engine::entry_codec`), consecutive by index, then zeroes to the end of the
//! (preallocated) file. The writer keeps that last promise: whatever follows the last entry
//! is zero, because truncation zeroes what it drops.
//!
//! ```text
//! offset size  header field
//!      0    8  magic "coracle\x01"
//!      8    2  format version (u16 LE)
//!     10    6  reserved (zero)
//!     16    8  group (u64 LE)
//!     24    8  segment id (u64 LE)
//!     32    8  first index (u64 LE)
//!     40    8  rewrite version (u64 LE): +1 each time compaction rewrites the segment
//!     48    8  created_ms (u64 LE)
//!     56    4  reserved (zero)
//!     60    4  checksum: CRC32C of bytes 0..60
//! ```
//!
//! Recovery tells a torn tail from corruption: damage in the last segment that no valid
//! entry follows is the tail of a write that never completed (dropped, and reported);
//! damage followed by a valid entry, or any damage in an earlier segment, is corruption,
//! reported with the file and the offset and never skipped.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use coracle_engine::entry_codec::{decode_entry, EntryDecodeError};
use coracle_engine::{Entry, LogIndex, Term};

use crate::error::StorageError;

/// Bytes of the segment header.
pub const SEGMENT_HEADER_SIZE_BYTES: usize = 64;
/// The format this code writes and reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
const MAGIC: [u8; 8] = *b"coracle\x01";

/// What the header of a segment says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The Raft group the segment belongs to.
    pub group: u64,
    /// The segment's id (increasing along the log).
    pub segment_id: u64,
    /// Index of the first entry the segment holds (or would hold).
    pub first_index: LogIndex,
    /// Bumped each time compaction rewrites the segment.
    pub rewrite_version: u64,
    /// Wall-clock ms when the segment was created.
    pub created_ms: u64,
}

impl SegmentHeader {
    /// The 64 header bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_SIZE_BYTES];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.group.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.segment_id.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.first_index.0.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.rewrite_version.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.created_ms.to_le_bytes());
        let checksum = crc32c::crc32c(&bytes[..60]);
        bytes[60..64].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Reads a header; the error says what is wrong.
    ///
    /// # Errors
    /// Too short, bad magic, bad checksum, unknown version, or first index zero.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_SIZE_BYTES {
            return Err(format!("header needs 64 bytes, file has {}", bytes.len()));
        }
        if bytes[0..8] != MAGIC {
            return Err("not a coracle segment (bad magic)".into());
        }
        let stored = u32::from_le_bytes(bytes[60..64].try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(&bytes[..60]);
        if stored != computed {
            return Err(format!(
                "header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        let version = u16::from_le_bytes(bytes[8..10].try_into().expect("2 bytes"));
        if version != SEGMENT_FORMAT_VERSION {
            return Err(format!(
                "segment format version {version}, this build reads {SEGMENT_FORMAT_VERSION}"
            ));
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let header = SegmentHeader {
            group: word(16),
            segment_id: word(24),
            first_index: LogIndex(word(32)),
            rewrite_version: word(40),
            created_ms: word(48),
        };
        if header.first_index == LogIndex::ZERO {
            return Err("first index zero".into());
        }
        Ok(header)
    }
}

/// Where one entry sits in a segment (the offset index is built from these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryPosition {
    /// The entry's index.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// Byte offset of its encoding in the file.
    pub offset: u64,
    /// Bytes of its encoding.
    pub size_bytes: u32,
}

/// A tail dropped because a write never completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Offset where the incomplete write starts (the new end of data).
    pub offset: u64,
    /// Non-zero bytes dropped from there.
    pub dropped_bytes: u64,
}

/// What a scan found in one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// The header.
    pub header: SegmentHeader,
    /// Every whole entry, in order.
    pub positions: Vec<EntryPosition>,
    /// Offset just past the last whole entry: where the next append goes.
    pub end_offset: u64,
    /// A torn tail that was dropped, if any (last segment only).
    pub torn: Option<TornTail>,
}

/// Scans a segment's bytes (the whole file). `last` says whether it is the log's last
/// segment, the only one whose tail may be torn. Entries found are returned decoded
/// through `entries` when given (payloads share `data`).
///
/// # Errors
/// Corruption with the file and offset; never a panic, whatever `data` holds.
pub fn scan_segment(
    path: &Path,
    data: &Bytes,
    last: bool,
    mut entries: Option<&mut Vec<Entry>>,
) -> Result<SegmentScan, StorageError> {
    let corruption = |offset: u64, reason: String| StorageError::Corruption {
        path: PathBuf::from(path),
        offset,
        reason,
    };
    let header = SegmentHeader::decode(data).map_err(|reason| corruption(0, reason))?;
    let mut positions = Vec::new();
    let mut offset = SEGMENT_HEADER_SIZE_BYTES;
    let mut expected = header.first_index;
    let mut term = Term::ZERO;
    loop {
        match decode_entry(data, offset) {
            Ok((entry, size)) => {
                if entry.index != expected {
                    let reason = format!("entry {} where {expected} was expected", entry.index);
                    return Err(corruption(offset as u64, reason));
                }
                if entry.term < term {
                    let reason = format!("term {} after term {term}", entry.term);
                    return Err(corruption(offset as u64, reason));
                }
                term = entry.term;
                positions.push(EntryPosition {
                    index: entry.index,
                    term,
                    offset: offset as u64,
                    size_bytes: u32::try_from(size).expect("entries are bounded"),
                });
                if let Some(out) = entries.as_deref_mut() {
                    out.push(entry);
                }
                expected = expected.next();
                offset += size;
            }
            Err(error) => {
                let end = offset;
                let damage = match error {
                    EntryDecodeError::End => None,
                    EntryDecodeError::Truncated {
                        available_bytes: 0, ..
                    } => None,
                    other => Some(other),
                };
                if let Some(later) = valid_entry_after(data, end + 1) {
                    let what = damage.map_or("zeroes".to_string(), |error| error.to_string());
                    let reason = format!("{what}, yet a whole entry follows at offset {later}");
                    return Err(corruption(end as u64, reason));
                }
                let Some(damage) = damage else {
                    return Ok(SegmentScan {
                        header,
                        positions,
                        end_offset: end as u64,
                        torn: None,
                    });
                };
                if !last {
                    return Err(corruption(
                        end as u64,
                        format!("{damage} in a sealed segment"),
                    ));
                }
                let non_zero_end = data
                    .iter()
                    .rposition(|&byte| byte != 0)
                    .map_or(end, |at| at + 1);
                let torn = TornTail {
                    offset: end as u64,
                    dropped_bytes: non_zero_end.saturating_sub(end) as u64,
                };
                return Ok(SegmentScan {
                    header,
                    positions,
                    end_offset: end as u64,
                    torn: Some(torn),
                });
            }
        }
    }
}

/// The offset of the first whole entry (valid checksum) at or after `from`, if any.
fn valid_entry_after(data: &Bytes, from: usize) -> Option<usize> {
    (from..data.len()).find(|&offset| {
        // Only a non-zero size field can start an entry; skip the zeroed tail quickly.
        data[offset] != 0 && decode_entry(data, offset).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::entries;
    use coracle_engine::entry_codec::encode_entry;

    fn header() -> SegmentHeader {
        SegmentHeader {
            group: 7,
            segment_id: 3,
            first_index: LogIndex(101),
            rewrite_version: 0,
            created_ms: 5,
        }
    }

    /// A segment of `count` entries from index 101, zero-padded to `size` bytes; also the
    /// offset where each entry starts.
    fn segment(count: u64, size: usize) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = header().encode().to_vec();
        let mut starts = Vec::new();
        for entry in entries(101, 100 + count, 4) {
            starts.push(bytes.len());
            encode_entry(&entry, &mut bytes);
        }
        assert!(bytes.len() <= size);
        bytes.resize(size, 0);
        (bytes, starts)
    }

    fn scan(bytes: Vec<u8>, last: bool) -> Result<SegmentScan, StorageError> {
        scan_segment(Path::new("seg-3"), &Bytes::from(bytes), last, None)
    }

    fn corruption_offset(result: Result<SegmentScan, StorageError>) -> u64 {
        match result {
            Err(StorageError::Corruption { offset, path, .. }) => {
                assert_eq!(path, PathBuf::from("seg-3"), "the error names the file");
                offset
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let encoded = header().encode();
        assert_eq!(SegmentHeader::decode(&encoded), Ok(header()));
        for byte in 0..SEGMENT_HEADER_SIZE_BYTES {
            let mut damaged = encoded;
            damaged[byte] ^= 0x40;
            assert!(
                SegmentHeader::decode(&damaged).is_err(),
                "byte {byte} flipped"
            );
        }
        let (mut bytes, _) = segment(3, 4096);
        bytes[20] ^= 1;
        assert_eq!(corruption_offset(scan(bytes, true)), 0);
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let (bytes, starts) = segment(20, 8192);
        let mut decoded = Vec::new();
        let result = scan_segment(
            Path::new("seg-3"),
            &Bytes::from(bytes),
            true,
            Some(&mut decoded),
        );
        let scanned = result.expect("clean");
        assert_eq!(scanned.positions.len(), 20);
        assert_eq!(scanned.torn, None);
        assert_eq!(scanned.positions[5].offset, starts[5] as u64);
        assert_eq!(decoded, entries(101, 120, 4));
    }

    #[test]
    fn a_torn_last_entry_at_every_byte_recovers_the_entries_before_it() {
        let (full, starts) = segment(10, 4096);
        let last_start = starts[9];
        let last_end = full.iter().rposition(|&byte| byte != 0).expect("data") + 1;
        for cut in last_start..last_end {
            let mut torn = full.clone();
            torn[cut..].iter_mut().for_each(|byte| *byte = 0);
            let scanned = scan(torn, true).unwrap_or_else(|error| panic!("cut {cut}: {error}"));
            assert_eq!(scanned.positions.len(), 9, "cut at {cut}");
            assert_eq!(scanned.end_offset, last_start as u64);
            if cut > last_start {
                let torn = scanned.torn.expect("the partial write is reported");
                assert_eq!(torn.offset, last_start as u64);
                assert!(torn.dropped_bytes > 0);
            }
        }
    }

    #[test]
    fn a_flipped_bit_before_the_tail_is_corruption_not_a_torn_tail() {
        let (full, starts) = segment(10, 4096);
        for (entry, &start) in starts.iter().enumerate().take(9) {
            let mut damaged = full.clone();
            damaged[start + 12] ^= 0x10;
            assert_eq!(
                corruption_offset(scan(damaged, true)),
                start as u64,
                "entry {entry}"
            );
        }
    }

    #[test]
    fn a_zeroed_sector_in_the_middle_is_corruption() {
        let (full, starts) = segment(200, 64 * 1024);
        let sector_start = 4096;
        let mut damaged = full.clone();
        damaged[sector_start..sector_start + 512]
            .iter_mut()
            .for_each(|byte| *byte = 0);
        let first_hit = starts
            .iter()
            .rposition(|&start| start <= sector_start)
            .expect("an entry");
        assert_eq!(
            corruption_offset(scan(damaged, true)),
            starts[first_hit] as u64
        );
    }

    #[test]
    fn damage_in_a_sealed_segment_is_corruption_even_at_its_tail() {
        let (full, starts) = segment(10, 4096);
        let mut torn = full.clone();
        let cut = starts[9] + 3;
        torn[cut..].iter_mut().for_each(|byte| *byte = 0);
        assert_eq!(
            corruption_offset(scan(torn.clone(), false)),
            starts[9] as u64
        );
        assert!(
            scan(torn, true).is_ok(),
            "the same bytes as the last segment are a torn tail"
        );
    }

    #[test]
    fn out_of_sequence_entries_are_corruption() {
        let mut bytes = header().encode().to_vec();
        let mut list = entries(101, 102, 4);
        list.push(crate::conformance::entry(104, 4));
        for entry in &list {
            encode_entry(entry, &mut bytes);
        }
        bytes.resize(1024, 0);
        assert!(corruption_offset(scan(bytes, true)) > 64);
    }

    #[test]
    fn random_damage_never_panics() {
        let (full, _) = segment(30, 4096);
        let mut prng = coracle_engine::Prng::new(11);
        for _ in 0..300 {
            let mut damaged = full.clone();
            for _ in 0..prng.range(1, 6) {
                let at = usize::try_from(prng.range(0, damaged.len() as u64)).expect("small");
                damaged[at] = damaged[at].wrapping_add(1 + prng.range(0, 255) as u8);
            }
            let cut = usize::try_from(prng.range(0, damaged.len() as u64 + 1)).expect("small");
            damaged.truncate(cut);
            let _ = scan(damaged, prng.chance(1, 2));
        }
    }
}
