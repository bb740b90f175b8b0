//! The format of one segment file and the scan that recovers it.
//!
//! A segment is a 64-byte header followed by batches, then zeroes to the end of the
//! (preallocated) file. A batch is what one write put down: a 16-byte batch header, then
//! entries in the engine's entry format (`coracle_engine::entry_codec`), consecutive by
//! index. The log is append-only: a batch that starts at or below the last index replaces
//! the suffix from there, and a truncation record drops one, so synced bytes are never
//! rewritten. The writer keeps two promises: whatever follows the last batch is zero
//! (segments are preallocated and zeroed), and a batch is written only after the one before
//! it is synced, so at most the last batch can be torn — and a torn batch may have any of
//! its sectors on disk, in any order.
//!
//! ```text
//! offset size  batch header field
//!      0    4  entries_size_bytes (u32 LE): bytes of entries after this header; 0 = end
//!      4    4  entries_count (u32 LE)
//!      8    4  CRC32C of bytes 0..8 and of the entries
//!     12    4  CRC32C of bytes 0..12 (so the size can be trusted before the body is read)
//! ```
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
//! Recovery tells a torn tail from corruption: a damaged batch in the last segment that no
//! whole batch follows is a write that never completed (dropped, and reported); a damaged
//! batch followed by a whole batch, or any damage in an earlier segment, is corruption,
//! reported with the file and the offset and never skipped.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use coracle_engine::entry_codec::{decode_entry, encode_entry, ENTRY_BODY_SIZE_BYTES_MAX};
use coracle_engine::{Entry, LogIndex, Term};

use crate::error::StorageError;

/// Bytes of the segment header.
pub const SEGMENT_HEADER_SIZE_BYTES: usize = 64;
/// The format this code writes and reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
/// Bytes of a batch header.
pub const BATCH_HEADER_SIZE_BYTES: usize = 16;
/// Largest batch: one write of entries.
pub const BATCH_SIZE_BYTES_MAX: usize = ENTRY_BODY_SIZE_BYTES_MAX + 1024;
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
    /// Entries the dropped write held, when its batch header arrived whole (its own
    /// checksum vouches for the count); `None` when the header itself is torn.
    pub dropped_entries: Option<u32>,
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

/// The entries count that marks a truncation record instead of entries.
const TRUNCATION_COUNT: u32 = u32::MAX;

/// Appends one batch holding `entries` (consecutive) to `out`: what one write puts down.
/// A batch whose first index is at or below the log's last replaces the suffix from there
/// (the later write wins), so replacing a conflicting tail never rewrites synced bytes.
///
/// # Panics
/// If `entries` is empty or larger than [`BATCH_SIZE_BYTES_MAX`].
pub fn encode_batch(entries: &[Entry], out: &mut Vec<u8>) {
    assert!(!entries.is_empty(), "a batch holds at least one entry");
    let start = out.len();
    out.extend_from_slice(&[0; BATCH_HEADER_SIZE_BYTES]);
    for entry in entries {
        encode_entry(entry, out);
    }
    let count = u32::try_from(entries.len()).expect("bounded by size");
    assert!(count != TRUNCATION_COUNT);
    finish_batch(out, start, count);
}

/// Appends a truncation record: every entry above `after` written before it is dropped.
/// Truncating by appending keeps the log append-only: a torn record is a torn tail, and
/// the entries it would have dropped are simply still there (they were never replaced).
pub fn encode_truncation(after: LogIndex, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; BATCH_HEADER_SIZE_BYTES]);
    out.extend_from_slice(&after.0.to_le_bytes());
    finish_batch(out, start, TRUNCATION_COUNT);
}

fn finish_batch(out: &mut [u8], start: usize, count: u32) {
    let size = out.len() - start - BATCH_HEADER_SIZE_BYTES;
    assert!(
        size > 0 && size <= BATCH_SIZE_BYTES_MAX,
        "batch size out of range"
    );
    let size = u32::try_from(size).expect("bounded above");
    out[start..start + 4].copy_from_slice(&size.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&count.to_le_bytes());
    let body = crc32c::crc32c_append(
        crc32c::crc32c(&out[start..start + 8]),
        &out[start + BATCH_HEADER_SIZE_BYTES..],
    );
    out[start + 8..start + 12].copy_from_slice(&body.to_le_bytes());
    let header = crc32c::crc32c(&out[start..start + 12]);
    out[start + 12..start + 16].copy_from_slice(&header.to_le_bytes());
}

/// A batch found whole (both checksums good) at some offset: its count and total size.
struct WholeBatch {
    count: u32,
    size_bytes: usize,
}

/// Why the bytes at an offset are not a whole batch.
enum BatchDamage {
    /// Zeroes: nothing was written here.
    End,
    /// Anything else, described.
    Damaged(String),
}

fn batch_at(data: &[u8], offset: usize) -> Result<WholeBatch, BatchDamage> {
    let available = data.len().saturating_sub(offset);
    let header_end = offset
        .saturating_add(BATCH_HEADER_SIZE_BYTES)
        .min(data.len());
    let header = &data[offset.min(data.len())..header_end];
    if header.iter().all(|&byte| byte == 0) {
        return Err(BatchDamage::End);
    }
    if available < BATCH_HEADER_SIZE_BYTES {
        return Err(BatchDamage::Damaged(format!(
            "batch header cut short ({available} bytes)"
        )));
    }
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    if word(12) != crc32c::crc32c(&header[..12]) {
        return Err(BatchDamage::Damaged(
            "batch header checksum mismatch".into(),
        ));
    }
    let size = usize::try_from(word(0)).unwrap_or(usize::MAX);
    if size == 0 || size > BATCH_SIZE_BYTES_MAX {
        return Err(BatchDamage::Damaged(format!(
            "batch size {size} out of range"
        )));
    }
    let total = BATCH_HEADER_SIZE_BYTES + size;
    if available < total {
        return Err(BatchDamage::Damaged(format!(
            "batch of {total} bytes cut short at {available}"
        )));
    }
    let body = &data[offset + BATCH_HEADER_SIZE_BYTES..offset + total];
    if word(8) != crc32c::crc32c_append(crc32c::crc32c(&header[..8]), body) {
        return Err(BatchDamage::Damaged("batch checksum mismatch".into()));
    }
    Ok(WholeBatch {
        count: word(4),
        size_bytes: total,
    })
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
    entries: Option<&mut Vec<Entry>>,
) -> Result<SegmentScan, StorageError> {
    let corruption = |offset: usize, reason: String| StorageError::Corruption {
        path: PathBuf::from(path),
        offset: offset as u64,
        reason,
    };
    let header = SegmentHeader::decode(data).map_err(|reason| corruption(0, reason))?;
    let mut state = ScanState {
        positions: Vec::new(),
        first_index: header.first_index,
        expected: header.first_index,
        rewritten: header.rewrite_version > 0,
        entries,
    };
    let mut offset = SEGMENT_HEADER_SIZE_BYTES;
    loop {
        let damage = match batch_at(data, offset) {
            Ok(batch) => {
                state.apply(data, offset, &batch, &corruption)?;
                offset += batch.size_bytes;
                continue;
            }
            Err(BatchDamage::End) => None,
            Err(BatchDamage::Damaged(reason)) => Some(reason),
        };
        if let Some(later) = whole_batch_after(data, offset + 1) {
            let what = damage.unwrap_or_else(|| "zeroes".to_string());
            return Err(corruption(
                offset,
                format!("{what}, yet a whole batch follows at {later}"),
            ));
        }
        let end_offset = offset as u64;
        let non_zero_end = data
            .iter()
            .rposition(|&byte| byte != 0)
            .map_or(offset, |at| at + 1);
        if non_zero_end <= offset {
            let positions = state.positions;
            return Ok(SegmentScan {
                header,
                positions,
                end_offset,
                torn: None,
            });
        }
        let what = damage.unwrap_or_else(|| "non-zero bytes after the end of data".to_string());
        if !last {
            return Err(corruption(offset, format!("{what} in a sealed segment")));
        }
        // The last write never completed: drop it, whichever of its sectors arrived.
        let dropped_bytes = (non_zero_end - offset) as u64;
        let torn = Some(TornTail {
            offset: end_offset,
            dropped_bytes,
            dropped_entries: torn_batch_count(data, offset),
        });
        let positions = state.positions;
        return Ok(SegmentScan {
            header,
            positions,
            end_offset,
            torn,
        });
    }
}

/// What a scan has found so far in one segment.
struct ScanState<'a> {
    positions: Vec<EntryPosition>,
    first_index: LogIndex,
    /// The index the next entry takes if it extends the log.
    expected: LogIndex,
    /// Written by compaction (rewrite version above zero): entries may skip indexes.
    rewritten: bool,
    entries: Option<&'a mut Vec<Entry>>,
}

impl ScanState<'_> {
    /// Keeps entries through `index`.
    fn truncate_after(&mut self, index: LogIndex) {
        assert!(index >= self.first_index.prev() && index < self.expected);
        // By search, not by arithmetic: a rewritten segment has holes.
        let keep = self
            .positions
            .partition_point(|position| position.index <= index);
        self.positions.truncate(keep);
        if let Some(entries) = self.entries.as_deref_mut() {
            entries.truncate(keep);
        }
        self.expected = index.next();
    }

    /// Takes in a whole batch (both checksums good): anything wrong inside is corruption.
    fn apply(
        &mut self,
        data: &Bytes,
        offset: usize,
        batch: &WholeBatch,
        corruption: &dyn Fn(usize, String) -> StorageError,
    ) -> Result<(), StorageError> {
        let body = offset + BATCH_HEADER_SIZE_BYTES;
        let batch_end = offset + batch.size_bytes;
        if batch.count == TRUNCATION_COUNT {
            if batch.size_bytes != BATCH_HEADER_SIZE_BYTES + 8 {
                return Err(corruption(
                    offset,
                    "truncation record of the wrong size".into(),
                ));
            }
            let after = LogIndex(u64::from_le_bytes(
                data[body..body + 8].try_into().expect("8"),
            ));
            if after < self.first_index.prev() || after >= self.expected {
                let reason = format!("truncation after {after} outside the segment's entries");
                return Err(corruption(offset, reason));
            }
            self.truncate_after(after);
            return Ok(());
        }
        let mut at = body;
        for position in 0..batch.count {
            let (entry, size) = decode_entry(data, at)
                .map_err(|error| corruption(at, format!("in a whole batch: {error}")))?;
            if at + size > batch_end {
                return Err(corruption(at, "entry overruns its batch".into()));
            }
            if position == 0 && entry.index < self.expected && entry.index >= self.first_index {
                // A later write replacing a conflicting suffix: the later write wins.
                self.truncate_after(entry.index.prev());
            }
            if self.rewritten && entry.index > self.expected {
                // Compaction removed the entries in between: a hole, not a gap.
                self.expected = entry.index;
            }
            if entry.index != self.expected {
                let reason = format!("entry {} where {} was expected", entry.index, self.expected);
                return Err(corruption(at, reason));
            }
            let term = self.positions.last().map_or(Term::ZERO, |last| last.term);
            if entry.term < term {
                return Err(corruption(
                    at,
                    format!("term {} after term {term}", entry.term),
                ));
            }
            self.positions.push(EntryPosition {
                index: entry.index,
                term: entry.term,
                offset: at as u64,
                size_bytes: u32::try_from(size).expect("entries are bounded"),
            });
            if let Some(out) = self.entries.as_deref_mut() {
                out.push(entry);
            }
            self.expected = self.expected.next();
            at += size;
        }
        if at != batch_end {
            return Err(corruption(
                at,
                "batch holds more bytes than its entries".into(),
            ));
        }
        Ok(())
    }
}

/// The entries count of the batch starting at `offset`, if its header is whole (a
/// truncation record counts none).
fn torn_batch_count(data: &[u8], offset: usize) -> Option<u32> {
    let header = data.get(offset..offset.checked_add(BATCH_HEADER_SIZE_BYTES)?)?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    if word(12) != crc32c::crc32c(&header[..12]) {
        return None;
    }
    let count = word(4);
    Some(if count == TRUNCATION_COUNT { 0 } else { count })
}

/// The offset of the first whole batch at or after `from`, if any.
fn whole_batch_after(data: &[u8], from: usize) -> Option<usize> {
    // Only a non-zero size field can start a batch, which skips a zeroed tail quickly.
    (from..data.len()).find(|&offset| data[offset] != 0 && batch_at(data, offset).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::entries;

    fn header() -> SegmentHeader {
        SegmentHeader {
            group: 7,
            segment_id: 3,
            first_index: LogIndex(101),
            rewrite_version: 0,
            created_ms: 5,
        }
    }

    /// A segment of `count` entries from index 101 in batches of `batch` entries,
    /// zero-padded to `size` bytes; also the offset where each batch starts.
    fn segment_batched(count: u64, batch: usize, size: usize) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = header().encode().to_vec();
        let mut starts = Vec::new();
        for chunk in entries(101, 100 + count, 4).chunks(batch) {
            starts.push(bytes.len());
            encode_batch(chunk, &mut bytes);
        }
        assert!(bytes.len() <= size);
        bytes.resize(size, 0);
        (bytes, starts)
    }

    /// One entry per batch.
    fn segment(count: u64, size: usize) -> (Vec<u8>, Vec<usize>) {
        segment_batched(count, 1, size)
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
        let batch_header = BATCH_HEADER_SIZE_BYTES as u64;
        assert_eq!(scanned.positions[5].offset, starts[5] as u64 + batch_header);
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
                let header_whole = cut >= last_start + BATCH_HEADER_SIZE_BYTES;
                assert_eq!(
                    torn.dropped_entries,
                    header_whole.then_some(1),
                    "cut at {cut}"
                );
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
    fn a_torn_multi_entry_batch_is_dropped_whole_whatever_sectors_reached_the_disk() {
        // Batches of 16 entries (about 1 KiB each); the last batch is the torn write.
        let (full, starts) = segment_batched(64, 16, 16 * 1024);
        let last_start = starts[3];
        let last_end = full.iter().rposition(|&byte| byte != 0).expect("data") + 1;
        for cut in (last_start..last_end).step_by(7) {
            let mut torn = full.clone();
            torn[cut..].iter_mut().for_each(|byte| *byte = 0);
            let scanned = scan(torn, true).unwrap_or_else(|error| panic!("cut {cut}: {error}"));
            assert_eq!(scanned.positions.len(), 48, "cut at {cut}");
        }
        // Out of order: the batch's first sector never made it, its later ones did.
        let mut torn = full.clone();
        let sector = (last_start / 512 + 1) * 512;
        torn[last_start..sector]
            .iter_mut()
            .for_each(|byte| *byte = 0);
        let scanned = scan(torn, true).expect("a torn tail, not corruption");
        assert_eq!(scanned.positions.len(), 48);
        assert_eq!(
            scanned.torn.map(|torn| torn.offset),
            Some(last_start as u64)
        );
    }

    fn scan_entries(bytes: Vec<u8>) -> Result<(SegmentScan, Vec<Entry>), StorageError> {
        let mut decoded = Vec::new();
        let scanned = scan_segment(
            Path::new("seg-3"),
            &Bytes::from(bytes),
            true,
            Some(&mut decoded),
        )?;
        assert_eq!(scanned.positions.len(), decoded.len());
        Ok((scanned, decoded))
    }

    #[test]
    fn a_later_batch_replaces_a_conflicting_suffix_and_a_truncation_record_drops_one() {
        let mut bytes = header().encode().to_vec();
        encode_batch(&entries(101, 110, 4), &mut bytes);
        encode_batch(&entries(106, 107, 5), &mut bytes);
        let replaced_at = bytes.len();
        bytes.resize(4096, 0);
        let (scanned, decoded) = scan_entries(bytes.clone()).expect("clean");
        let mut expected = entries(101, 105, 4);
        expected.extend(entries(106, 107, 5));
        assert_eq!(decoded, expected, "the later write wins");
        assert_eq!(scanned.end_offset, replaced_at as u64);

        bytes.truncate(replaced_at);
        encode_truncation(LogIndex(103), &mut bytes);
        encode_batch(&entries(104, 104, 6), &mut bytes);
        bytes.resize(4096, 0);
        let (_, decoded) = scan_entries(bytes).expect("clean");
        let mut expected = entries(101, 103, 4);
        expected.extend(entries(104, 104, 6));
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_torn_truncation_record_truncates_nothing() {
        let mut bytes = header().encode().to_vec();
        encode_batch(&entries(101, 105, 4), &mut bytes);
        let record_at = bytes.len();
        encode_truncation(LogIndex(102), &mut bytes);
        bytes[record_at + 17] ^= 0xff; // The record's body never fully reached the disk.
        bytes.resize(4096, 0);
        let (scanned, decoded) = scan_entries(bytes).expect("a torn tail");
        assert_eq!(decoded, entries(101, 105, 4));
        assert_eq!(scanned.torn.map(|torn| torn.offset), Some(record_at as u64));
    }

    #[test]
    fn records_that_reach_outside_the_segment_are_corruption() {
        let mut bytes = header().encode().to_vec();
        encode_batch(&entries(101, 105, 4), &mut bytes);
        let mut beyond = bytes.clone();
        encode_truncation(LogIndex(107), &mut beyond);
        beyond.resize(4096, 0);
        assert!(corruption_offset(scan(beyond, true)) > 64);
        let mut below = bytes.clone();
        encode_truncation(LogIndex(50), &mut below);
        below.resize(4096, 0);
        assert!(corruption_offset(scan(below, true)) > 64);
        let mut older_term = bytes;
        encode_batch(&entries(104, 104, 3), &mut older_term);
        older_term.resize(4096, 0);
        assert!(
            corruption_offset(scan(older_term, true)) > 64,
            "a replacement of an older term"
        );
    }

    #[test]
    fn out_of_sequence_entries_are_corruption() {
        let mut bytes = header().encode().to_vec();
        let mut list = entries(101, 102, 4);
        list.push(crate::conformance::entry(104, 4));
        encode_batch(&list, &mut bytes);
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
