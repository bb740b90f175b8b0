//! The segment log: one Raft group's log in segment files written with glommio direct I/O.
//!
//! Segments are preallocated and zeroed, then written append-only in batches (see
//! `segment.rs`): each append is one batch, written over the partial last block (kept in
//! memory) and synced with `fdatasync` before `append` returns. Truncation deletes the
//! segments past the cut, then appends a record to the segment that keeps it; on open, a
//! segment that does not continue the one before it is a leftover and is deleted too.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use coracle_engine::entry_codec::{decode_entry, encoded_size_bytes};
use coracle_engine::{Entry, HardState, LogIndex, Term};
use glommio::io::{DmaFile, OpenOptions};

use crate::device::warm_up_device;
use crate::error::StorageError;
use crate::hard_state_file;
use crate::log_storage::{check_append, LogStorage};
use crate::segment::{
    encode_batch, encode_truncation, scan_segment, EntryPosition, SegmentHeader, TornTail,
    BATCH_HEADER_SIZE_BYTES, SEGMENT_HEADER_SIZE_BYTES,
};

/// Direct I/O works in whole blocks of this size.
const BLOCK_SIZE_BYTES: u64 = 4096;
/// Copycat's default segment size.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 32 * 1024 * 1024;
/// Copycat's default (and largest) number of entries in one segment.
pub const SEGMENT_ENTRIES_MAX: u32 = 1024 * 1024;
const SEGMENT_FILE_SUFFIX: &str = ".segment";

const _: () = assert!(SEGMENT_HEADER_SIZE_BYTES as u64 <= BLOCK_SIZE_BYTES);

/// Where and how a segment log keeps its files.
#[derive(Clone, Debug)]
pub struct SegmentLogOptions {
    /// The log's own directory (one per Raft group).
    pub directory: PathBuf,
    /// The Raft group, written into every segment header.
    pub group: u64,
    /// Segments roll once an append would pass this size (a larger batch gets its own).
    pub segment_size_bytes: u64,
    /// Segments roll once an append would pass this many entries (at most
    /// [`SEGMENT_ENTRIES_MAX`]).
    pub segment_entries_max: u32,
}

impl SegmentLogOptions {
    /// Copycat's defaults (32 MiB and 1 Mi entries per segment) for `group` in `directory`.
    #[must_use]
    pub fn new(directory: impl Into<PathBuf>, group: u64) -> SegmentLogOptions {
        SegmentLogOptions {
            directory: directory.into(),
            group,
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            segment_entries_max: SEGMENT_ENTRIES_MAX,
        }
    }
}

/// What opening found.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// Segments in use.
    pub segments_count: usize,
    /// Entries found.
    pub entries_count: usize,
    /// A torn last write that was dropped, with its file.
    pub torn: Option<(PathBuf, TornTail)>,
    /// Segments left behind by a truncation that a crash interrupted, now deleted.
    pub stale_segments_deleted: usize,
}

struct Segment {
    id: u64,
    path: PathBuf,
    file: DmaFile,
    first_index: LogIndex,
    positions: Vec<EntryPosition>,
    end_offset: u64,
    /// The bytes of the partial block at the end of the data (`end_offset` rounded down).
    tail: Vec<u8>,
}

impl Segment {
    fn last_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.positions.len() as u64 - 1)
    }

    fn position(&self, index: LogIndex) -> Option<&EntryPosition> {
        let offset = index.0.checked_sub(self.first_index.0)?;
        self.positions.get(usize::try_from(offset).ok()?)
    }
}

/// One Raft group's durable log on glommio direct I/O. See the module documentation.
pub struct SegmentLog {
    options: SegmentLogOptions,
    segments: Vec<Segment>,
    hard_state: HardState,
    /// Entries below this are no longer served (`truncate_before`).
    first_index: LogIndex,
    stopped: bool,
}

fn io(
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(glommio::GlommioError<()>) -> StorageError {
    let path = PathBuf::from(path);
    move |error| StorageError::Io {
        operation,
        path,
        source: error.into(),
    }
}

fn std_io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = PathBuf::from(path);
    move |source| StorageError::Io {
        operation,
        path,
        source,
    }
}

fn round_down(offset: u64) -> u64 {
    offset / BLOCK_SIZE_BYTES * BLOCK_SIZE_BYTES
}

fn round_up(offset: u64) -> u64 {
    offset.div_ceil(BLOCK_SIZE_BYTES) * BLOCK_SIZE_BYTES
}

impl SegmentLog {
    /// Opens (or creates) the log in `options.directory`: warms up the device, reads the
    /// hard state, scans every segment, drops a torn tail, deletes leftovers.
    ///
    /// # Errors
    /// I/O errors, and corruption with file and offset.
    pub async fn open(
        options: SegmentLogOptions,
    ) -> Result<(SegmentLog, OpenReport), StorageError> {
        let directory = options.directory.clone();
        std::fs::create_dir_all(&directory).map_err(std_io("create directory", &directory))?;
        warm_up_device(&directory).await?;
        let hard_state = hard_state_file::load(&directory)?;
        let mut ids = segment_ids(&directory)?;
        ids.sort_unstable();
        let mut log = SegmentLog {
            options,
            segments: Vec::new(),
            hard_state,
            first_index: LogIndex(1),
            stopped: false,
        };
        let mut report = OpenReport::default();
        let count = ids.len();
        for (position, id) in ids.into_iter().enumerate() {
            let path = segment_path(&directory, id);
            if report.stale_segments_deleted > 0 {
                // Everything after a leftover segment is a leftover too.
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.stale_segments_deleted += 1;
                continue;
            }
            let segment = open_segment(&path, id, position + 1 == count, &mut report).await?;
            let continues = log
                .segments
                .last()
                .is_none_or(|previous| segment.first_index == previous.last_index().next());
            if !continues {
                // A truncation cut the log below this segment and a crash came before the
                // segment's deletion was durable: it is not part of the log.
                segment.file.close().await.map_err(io("close", &path))?;
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.stale_segments_deleted += 1;
                continue;
            }
            log.segments.push(segment);
        }
        if report.stale_segments_deleted > 0 {
            sync_directory(&directory)?;
        }
        if log.segments.is_empty() {
            log.segment_create(LogIndex(1)).await?;
        }
        log.first_index = log.segments[0].first_index;
        report.segments_count = log.segments.len();
        report.entries_count = log
            .segments
            .iter()
            .map(|segment| segment.positions.len())
            .sum();
        Ok((log, report))
    }

    async fn segment_create(&mut self, first_index: LogIndex) -> Result<(), StorageError> {
        let id = self.segments.last().map_or(1, |segment| segment.id + 1);
        let path = segment_path(&self.options.directory, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .dma_open(&path)
            .await
            .map_err(io("create", &path))?;
        file.pre_allocate(self.options.segment_size_bytes, false)
            .await
            .map_err(io("preallocate", &path))?;
        let header = SegmentHeader {
            group: self.options.group,
            segment_id: id,
            first_index,
            rewrite_version: 0,
            created_ms: 0,
        }
        .encode();
        let mut block = file.alloc_dma_buffer(BLOCK_SIZE_BYTES as usize);
        block.as_bytes_mut().fill(0);
        block.as_bytes_mut()[..SEGMENT_HEADER_SIZE_BYTES].copy_from_slice(&header);
        file.write_at(block, 0)
            .await
            .map_err(io("write header", &path))?;
        file.fdatasync().await.map_err(io("sync", &path))?;
        sync_directory(&self.options.directory)?;
        self.segments.push(Segment {
            id,
            path,
            file,
            first_index,
            positions: Vec::new(),
            end_offset: SEGMENT_HEADER_SIZE_BYTES as u64,
            tail: header.to_vec(),
        });
        Ok(())
    }

    /// Writes `bytes` (whole batches) after the data of segment `which` and syncs.
    async fn segment_write(&mut self, which: usize, bytes: &[u8]) -> Result<u64, StorageError> {
        let segment = &mut self.segments[which];
        let start = segment.end_offset;
        let aligned = round_down(start);
        assert_eq!(
            segment.tail.len() as u64,
            start - aligned,
            "the tail is the partial block"
        );
        let end = start + bytes.len() as u64;
        let length = usize::try_from(round_up(end) - aligned).expect("bounded by the batch");
        let mut buffer = segment.file.alloc_dma_buffer(length);
        let data = buffer.as_bytes_mut();
        data.fill(0);
        data[..segment.tail.len()].copy_from_slice(&segment.tail);
        data[segment.tail.len()..segment.tail.len() + bytes.len()].copy_from_slice(bytes);
        let new_tail_start = usize::try_from(round_down(end) - aligned).expect("small");
        let new_tail =
            data[new_tail_start..usize::try_from(end - aligned).expect("small")].to_vec();
        let path = segment.path.clone();
        segment
            .file
            .write_at(buffer, aligned)
            .await
            .map_err(io("write", &path))?;
        segment.file.fdatasync().await.map_err(io("sync", &path))?;
        segment.end_offset = end;
        segment.tail = new_tail;
        Ok(start)
    }

    fn fail_stop<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if matches!(result, Err(StorageError::Io { .. })) {
            self.stopped = true;
        }
        result
    }

    fn segment_of(&self, index: LogIndex) -> Option<usize> {
        let position = self
            .segments
            .partition_point(|segment| segment.first_index <= index);
        position.checked_sub(1)
    }

    async fn append_batch(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        encode_batch(entries, &mut bytes);
        let active = self.segments.len() - 1;
        let full =
            self.segments[active].end_offset + bytes.len() as u64 > self.options.segment_size_bytes;
        if full && !self.segments[active].positions.is_empty() {
            self.segment_create(entries[0].index).await?;
        }
        let active = self.segments.len() - 1;
        let start = self.segment_write(active, &bytes).await?;
        let mut offset = start + BATCH_HEADER_SIZE_BYTES as u64;
        for entry in entries {
            let size = encoded_size_bytes(entry);
            self.segments[active].positions.push(EntryPosition {
                index: entry.index,
                term: entry.term,
                offset,
                size_bytes: u32::try_from(size).expect("entries are bounded"),
            });
            offset += size as u64;
        }
        Ok(())
    }

    async fn truncate_after_inner(&mut self, index: LogIndex) -> Result<(), StorageError> {
        // The segment that keeps `index` as its last entry (or holds nothing above it).
        let keep = self.segment_of(index.next()).unwrap_or(0);
        let (keeper_first, keeper_last) = (
            self.segments[keep].first_index,
            self.segments[keep].last_index(),
        );
        if index.next() == keeper_first && keep > 0 {
            // The cut is at the end of the segment before: this one goes too.
            return self.delete_segments_from(keep).await;
        }
        // Later segments go first, so that the truncation record below is always written to
        // the last segment: torn by a crash, it is then a torn tail, not damage in a sealed
        // segment that would refuse the next open.
        self.delete_segments_from(keep + 1).await?;
        if index < keeper_last {
            let mut record = Vec::new();
            encode_truncation(index, &mut record);
            self.segment_write(keep, &record).await?;
            let kept = usize::try_from(index.0 + 1 - keeper_first.0).expect("fits");
            self.segments[keep].positions.truncate(kept);
        }
        Ok(())
    }

    async fn delete_segments_from(&mut self, from: usize) -> Result<(), StorageError> {
        if from >= self.segments.len() {
            return Ok(());
        }
        while self.segments.len() > from {
            let segment = self.segments.pop().expect("checked");
            segment
                .file
                .close()
                .await
                .map_err(io("close", &segment.path))?;
            std::fs::remove_file(&segment.path).map_err(std_io("remove", &segment.path))?;
        }
        sync_directory(&self.options.directory)
    }

    async fn read_segment_range(
        &self,
        which: usize,
        start: LogIndex,
        end: LogIndex,
        into: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        let segment = &self.segments[which];
        let first = *segment
            .position(start)
            .ok_or(StorageError::OutOfRange { index: start })?;
        let last = *segment
            .position(end.prev())
            .ok_or(StorageError::OutOfRange { index: end.prev() })?;
        let aligned = round_down(first.offset);
        let length = round_up(last.offset + u64::from(last.size_bytes)) - aligned;
        let read = segment
            .file
            .read_at_aligned(aligned, usize::try_from(length).expect("bounded"))
            .await
            .map_err(io("read", &segment.path))?;
        let bytes = Bytes::copy_from_slice(&read);
        let mut index = start;
        while index < end {
            let position = segment.position(index).expect("checked above");
            let at = usize::try_from(position.offset - aligned).expect("small");
            let corruption = |reason: String| StorageError::Corruption {
                path: segment.path.clone(),
                offset: position.offset,
                reason,
            };
            let (entry, _) =
                decode_entry(&bytes, at).map_err(|error| corruption(error.to_string()))?;
            if entry.index != index {
                return Err(corruption(format!(
                    "entry {} where {index} was expected",
                    entry.index
                )));
            }
            into.push(entry);
            index = index.next();
        }
        Ok(())
    }
}

impl LogStorage for SegmentLog {
    async fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        if self.stopped {
            return Err(StorageError::Stopped);
        }
        let Some(first) = entries.first() else {
            return Ok(());
        };
        check_append(entries, self.first_index, self.last_index())?;
        let next = self.last_index().next();
        if first.index < next {
            let result = self.truncate_after_inner(first.index.prev()).await;
            self.fail_stop(result)?;
        }
        let result = self.append_batch(entries).await;
        self.fail_stop(result)
    }

    async fn read(
        &self,
        start: LogIndex,
        end: LogIndex,
        into: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        if self.stopped {
            return Err(StorageError::Stopped);
        }
        if start < self.first_index {
            return Err(StorageError::OutOfRange { index: start });
        }
        let mut index = start;
        while index < end {
            let which = self
                .segment_of(index)
                .ok_or(StorageError::OutOfRange { index })?;
            let segment = &self.segments[which];
            if index > segment.last_index() {
                return Err(StorageError::OutOfRange { index });
            }
            let until = end.min(segment.last_index().next());
            self.read_segment_range(which, index, until, into).await?;
            index = until;
        }
        Ok(())
    }

    async fn truncate_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        if self.stopped {
            return Err(StorageError::Stopped);
        }
        if index < self.first_index.prev() {
            return Err(StorageError::OutOfRange { index });
        }
        if index >= self.last_index() {
            return Ok(());
        }
        let result = self.truncate_after_inner(index).await;
        self.fail_stop(result)
    }

    async fn truncate_before(&mut self, index: LogIndex) -> Result<(), StorageError> {
        if index <= self.first_index {
            return Ok(());
        }
        if self.term_at(index.prev()).is_none() {
            return Err(StorageError::OutOfRange {
                index: index.prev(),
            });
        }
        // Entries below are no longer served; whole segments go with compaction (issue #4).
        self.first_index = index;
        Ok(())
    }

    async fn hard_state_save(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        if self.stopped {
            return Err(StorageError::Stopped);
        }
        let result = hard_state_file::save(&self.options.directory, hard_state);
        self.fail_stop(result)?;
        self.hard_state = hard_state;
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first_index(&self) -> LogIndex {
        self.first_index
    }

    fn last_index(&self) -> LogIndex {
        self.segments
            .last()
            .map_or(self.first_index.prev(), Segment::last_index)
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index < self.first_index.prev() {
            return None;
        }
        if index == LogIndex::ZERO {
            return Some(Term::ZERO);
        }
        let segment = &self.segments[self.segment_of(index)?];
        segment.position(index).map(|position| position.term)
    }
}

async fn open_segment(
    path: &Path,
    id: u64,
    last: bool,
    report: &mut OpenReport,
) -> Result<Segment, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(io("open", path))?;
    let size = file.file_size().await.map_err(io("size", path))?;
    let read = file
        .read_at_aligned(
            0,
            usize::try_from(round_up(size)).expect("segments fit in memory"),
        )
        .await
        .map_err(io("read", path))?;
    let length = read.len().min(usize::try_from(size).expect("fits"));
    let data = Bytes::copy_from_slice(&read[..length]);
    let scan = scan_segment(path, &data, last, None)?;
    let end = usize::try_from(scan.end_offset).expect("fits");
    let tail_start = usize::try_from(round_down(scan.end_offset)).expect("fits");
    let tail = data[tail_start..end].to_vec();
    let segment = Segment {
        id,
        path: PathBuf::from(path),
        file,
        first_index: scan.header.first_index,
        positions: scan.positions,
        end_offset: scan.end_offset,
        tail,
    };
    if let Some(torn) = scan.torn {
        // Zero what the torn write left, so that only zeroes follow the data again.
        segment.zero_after_data(torn.dropped_bytes).await?;
        report.torn = Some((PathBuf::from(path), torn));
    }
    Ok(segment)
}

impl Segment {
    /// Overwrites `length` bytes after the data with zeroes (keeping the data's tail).
    async fn zero_after_data(&self, length: u64) -> Result<(), StorageError> {
        let aligned = round_down(self.end_offset);
        let end = self.end_offset + length;
        let length = usize::try_from(round_up(end) - aligned).expect("bounded");
        let mut buffer = self.file.alloc_dma_buffer(length);
        let data = buffer.as_bytes_mut();
        data.fill(0);
        data[..self.tail.len()].copy_from_slice(&self.tail);
        self.file
            .write_at(buffer, aligned)
            .await
            .map_err(io("zero torn tail", &self.path))?;
        self.file
            .fdatasync()
            .await
            .map_err(io("sync", &self.path))?;
        Ok(())
    }
}

fn segment_path(directory: &Path, id: u64) -> PathBuf {
    directory.join(format!("{id:016x}{SEGMENT_FILE_SUFFIX}"))
}

fn segment_ids(directory: &Path) -> Result<Vec<u64>, StorageError> {
    let mut ids = Vec::new();
    let listing = std::fs::read_dir(directory).map_err(std_io("list", directory))?;
    for item in listing {
        let item = item.map_err(std_io("list", directory))?;
        let name = item.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|name| name.strip_suffix(SEGMENT_FILE_SUFFIX))
        else {
            continue;
        };
        match u64::from_str_radix(stem, 16) {
            Ok(id) => ids.push(id),
            Err(_) => {
                return Err(StorageError::Corruption {
                    path: item.path(),
                    offset: 0,
                    reason: "a segment file name that is not a segment id".into(),
                })
            }
        }
    }
    Ok(ids)
}

fn sync_directory(directory: &Path) -> Result<(), StorageError> {
    std::fs::File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(std_io("sync directory", directory))
}

impl SegmentLog {
    /// The options the log was opened with.
    #[must_use]
    pub fn options(&self) -> &SegmentLogOptions {
        &self.options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, entries};
    use glommio::{LocalExecutorBuilder, Placement};

    /// Locked memory is 8 MiB here and glommio registers io_memory three times per executor.
    const TEST_IO_MEMORY_BYTES: usize = 512 * 1024;

    fn run<F: std::future::Future<Output = ()>>(future: impl FnOnce() -> F + Send + 'static) {
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(TEST_IO_MEMORY_BYTES)
            .spawn(move || async move { future().await })
            .expect("an executor");
        handle.join().expect("the test ran");
    }

    fn scratch(name: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("coracle-segment-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        directory
    }

    fn options(directory: &Path, segment_size_bytes: u64) -> SegmentLogOptions {
        SegmentLogOptions {
            segment_size_bytes,
            ..SegmentLogOptions::new(directory, 1)
        }
    }

    async fn reopen(log: SegmentLog) -> SegmentLog {
        let options = log.options().clone();
        drop(log);
        SegmentLog::open(options).await.expect("reopen").0
    }

    #[test]
    fn segment_log_passes_the_conformance_suite() {
        let root = scratch("conformance");
        let cleanup = root.clone();
        run(move || async move {
            let mut made = 0u32;
            let root_for_make = root.clone();
            conformance::run_all(
                move || {
                    made += 1;
                    // Small segments, so the suite also crosses segment boundaries.
                    let options = options(&root_for_make.join(made.to_string()), 8 * 1024);
                    async move { SegmentLog::open(options).await.expect("open").0 }
                },
                reopen,
            )
            .await;
        });
        std::fs::remove_dir_all(cleanup).expect("clean up");
    }

    #[test]
    fn a_torn_last_write_is_dropped_and_reported_on_open() {
        let directory = scratch("torn");
        let inside = directory.clone();
        run(move || async move {
            let (mut log, _) = SegmentLog::open(options(&inside, 1 << 20))
                .await
                .expect("open");
            log.append(&entries(1, 5, 1)).await.expect("append");
            log.append(&entries(6, 8, 1)).await.expect("append");
            let segment = log.segments[0].path.clone();
            let last_batch = log.segments[0].positions[5].offset - BATCH_HEADER_SIZE_BYTES as u64;
            drop(log);
            // Tear the last write: its first bytes never reached the disk.
            let mut bytes = std::fs::read(&segment).expect("read");
            let at = usize::try_from(last_batch).expect("small");
            bytes[at..at + 20].iter_mut().for_each(|byte| *byte = 0);
            std::fs::write(&segment, bytes).expect("write");
            let (log, report) = SegmentLog::open(options(&inside, 1 << 20))
                .await
                .expect("open");
            assert_eq!(log.last_index(), LogIndex(5));
            let (path, torn) = report.torn.expect("the torn write is reported");
            assert_eq!(path, segment);
            assert_eq!(torn.offset, last_batch);
            drop(log);
            // Zeroed on open: a second open finds a clean log.
            let (mut log, report) = SegmentLog::open(options(&inside, 1 << 20))
                .await
                .expect("open");
            assert!(report.torn.is_none());
            log.append(&entries(6, 6, 2))
                .await
                .expect("append after recovery");
            assert_eq!(log.term_at(LogIndex(6)), Some(Term(2)));
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn corruption_before_the_tail_stops_the_open_with_file_and_offset() {
        let directory = scratch("corrupt");
        let inside = directory.clone();
        run(move || async move {
            let (mut log, _) = SegmentLog::open(options(&inside, 1 << 20))
                .await
                .expect("open");
            for first in (1..=40).step_by(4) {
                log.append(&entries(first, first + 3, 1))
                    .await
                    .expect("append");
            }
            let segment = log.segments[0].path.clone();
            let victim = log.segments[0].positions[10].offset + 12;
            drop(log);
            let mut bytes = std::fs::read(&segment).expect("read");
            bytes[usize::try_from(victim).expect("small")] ^= 0x08;
            std::fs::write(&segment, bytes).expect("write");
            match SegmentLog::open(options(&inside, 1 << 20)).await {
                Err(StorageError::Corruption { path, offset, .. }) => {
                    assert_eq!(path, segment);
                    assert!(
                        offset < victim && victim - offset < 200,
                        "offset {offset} names the batch"
                    );
                }
                Err(other) => panic!("expected corruption, got {other}"),
                Ok(_) => panic!("expected corruption, the log opened"),
            }
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn segments_roll_and_a_truncation_deletes_whole_segments_durably() {
        let directory = scratch("roll");
        let inside = directory.clone();
        run(move || async move {
            let (mut log, _) = SegmentLog::open(options(&inside, 8 * 1024))
                .await
                .expect("open");
            for first in (1..=400).step_by(10) {
                log.append(&entries(first, first + 9, 1))
                    .await
                    .expect("append");
            }
            let rolled = log.segments.len();
            assert!(rolled >= 3, "{rolled} segments");
            log.truncate_after(LogIndex(25)).await.expect("truncate");
            assert_eq!(
                log.segments.len(),
                segment_ids(&inside).expect("list").len()
            );
            log.append(&entries(26, 30, 3)).await.expect("append");
            let log = reopen(log).await;
            assert_eq!(log.last_index(), LogIndex(30));
            assert_eq!(log.term_at(LogIndex(26)), Some(Term(3)));
            let mut read = Vec::new();
            log.read(LogIndex(1), LogIndex(31), &mut read)
                .await
                .expect("read");
            let mut expected = entries(1, 25, 1);
            expected.extend(entries(26, 30, 3));
            assert_eq!(read, expected);
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }
}
