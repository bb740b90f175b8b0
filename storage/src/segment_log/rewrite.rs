//! Compaction's storage half: rewriting sealed segments without the entries the state
//! machine released (SPEC §J3). Which entries may go is the engine's policy; this file only
//! makes the rewrite crash-safe.
//!
//! One call rewrites a run of neighbouring sealed segments into one (a minor compaction is
//! a run of one, a major one merges several). The new segment keeps the first one's id and
//! first index, bumps the rewrite version, and holds the retained entries; removed entries
//! become holes. The last entry of the run is always kept: it ends the segment's range and
//! its term answers the log-matching check of the entry after it.
//!
//! Crash safety: the new segment is written under a temporary name (which the listing of
//! segments ignores), synced, and renamed over the first segment's file — atomic, so that
//! file is either the old or the new one — then the directory is synced and the other
//! segments of the run are deleted. A crash after the rename leaves those others behind,
//! overlapping the new segment's range; `open` deletes a segment whose range lies inside
//! the one before it (the earlier, rewritten one wins, as in Copycat PR #188). A crash
//! before the rename leaves a temporary file, which `open` deletes.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use coracle_engine::entry_codec::encoded_size_bytes;
use coracle_engine::Entry;
use glommio::io::OpenOptions;

use super::SegmentLog;
use crate::error::StorageError;
use crate::offset_index::OffsetIndex;
use crate::segment::{encode_batch, EntryPosition, SegmentHeader, BATCH_HEADER_SIZE_BYTES};
use crate::segment_file::{
    glommio_io, round_down, round_up, segment_path, std_io, sync_directory, SegmentFile,
};

/// The suffix of a segment being rewritten (not a `.segment` file until renamed).
pub const REWRITE_FILE_SUFFIX: &str = ".segment.rewrite";
/// Entries of a rewritten segment are written in batches of about this size.
const REWRITE_BATCH_SIZE_BYTES: usize = 1024 * 1024;

/// What one rewrite did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Segments rewritten into one.
    pub segments_merged: usize,
    /// Entries kept.
    pub entries_kept: usize,
    /// Entries removed (now holes).
    pub entries_removed: usize,
    /// Bytes of segment data before and after.
    pub bytes_before: u64,
    /// Bytes of the new segment's data.
    pub bytes_after: u64,
}

fn rewrite_path(directory: &Path, id: u64) -> PathBuf {
    directory.join(format!("{id:016x}{REWRITE_FILE_SUFFIX}"))
}

/// Deletes temporary files of rewrites a crash interrupted; returns how many.
///
/// # Errors
/// The directory cannot be listed, or a file cannot be removed.
pub fn remove_interrupted_rewrites(directory: &Path) -> Result<usize, StorageError> {
    let mut removed = 0;
    let listing = std::fs::read_dir(directory).map_err(std_io("list", directory))?;
    for item in listing {
        let item = item.map_err(std_io("list", directory))?;
        let is_rewrite = item
            .file_name()
            .to_str()
            .is_some_and(|name| name.ends_with(REWRITE_FILE_SUFFIX));
        if is_rewrite {
            let path = item.path();
            std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_directory(directory)?;
    }
    Ok(removed)
}

impl SegmentLog {
    /// Rewrites the sealed segments with ids `first_id..=last_id` (neighbours, none of them
    /// the last segment, which takes appends) into one that keeps the entries `retain`
    /// accepts, plus the run's last entry. The caller promises every entry there is
    /// committed and that what it drops is no longer needed (SPEC §J2).
    ///
    /// # Errors
    /// `Refused` for ids that are not a run of sealed segments; `Stopped`; I/O errors
    /// (which stop the log) and corruption found while reading.
    pub async fn rewrite_segments(
        &mut self,
        first_id: u64,
        last_id: u64,
        retain: impl Fn(&Entry) -> bool,
    ) -> Result<RewriteReport, StorageError> {
        self.check_running()?;
        let position = |id: u64| self.segments.iter().position(|segment| segment.id == id);
        let (Some(from), Some(to)) = (position(first_id), position(last_id)) else {
            return Err(StorageError::Refused {
                reason: format!("segments {first_id}..={last_id} are not both in the log"),
            });
        };
        if from > to || to + 1 >= self.segments.len() {
            return Err(StorageError::Refused {
                reason: format!(
                    "segments {first_id}..={last_id} are not a run of sealed segments \
                     (the last segment takes appends)"
                ),
            });
        }
        let result = self.rewrite(from, to, retain).await;
        if matches!(result, Err(StorageError::Io { .. })) {
            self.shared.stopped.set(true);
        }
        result
    }

    async fn rewrite(
        &mut self,
        from: usize,
        to: usize,
        retain: impl Fn(&Entry) -> bool,
    ) -> Result<RewriteReport, StorageError> {
        let mut entries = Vec::new();
        let mut report = RewriteReport {
            segments_merged: to + 1 - from,
            ..RewriteReport::default()
        };
        for segment in &self.segments[from..=to] {
            segment
                .read(
                    segment.first_index(),
                    segment.last_index().next(),
                    &mut entries,
                )
                .await?;
            report.bytes_before += segment.end_offset;
        }
        let count = entries.len();
        let kept: Vec<Entry> = entries
            .into_iter()
            .enumerate()
            .filter(|(position, entry)| position + 1 == count || retain(entry))
            .map(|(_, entry)| entry)
            .collect();
        report.entries_kept = kept.len();
        report.entries_removed = count - kept.len();

        let first = &self.segments[from];
        let header = SegmentHeader {
            group: self.options.group,
            segment_id: first.id,
            first_index: first.first_index(),
            rewrite_version: self.segments[from..=to]
                .iter()
                .map(|segment| segment.header.rewrite_version)
                .max()
                .unwrap_or(0)
                + 1,
            created_ms: first.header.created_ms,
        };
        let mut bytes = header.encode().to_vec();
        let mut positions = Vec::with_capacity(kept.len());
        for batch in batches(&kept) {
            let mut offset = (bytes.len() + BATCH_HEADER_SIZE_BYTES) as u64;
            for entry in batch {
                let size = encoded_size_bytes(entry);
                positions.push(EntryPosition {
                    index: entry.index,
                    term: entry.term,
                    offset,
                    size_bytes: u32::try_from(size).expect("entries are bounded"),
                });
                offset += size as u64;
            }
            encode_batch(batch, &mut bytes);
        }
        let end_offset = bytes.len() as u64;
        report.bytes_after = end_offset;

        let directory = self.options.directory.clone();
        let temporary = rewrite_path(&directory, header.segment_id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&temporary)
            .await
            .map_err(glommio_io("create", &temporary))?;
        let length = usize::try_from(round_up(end_offset)).expect("fits");
        let mut buffer = file.alloc_dma_buffer(length);
        let data = buffer.as_bytes_mut();
        data[..bytes.len()].copy_from_slice(&bytes);
        data[bytes.len()..].fill(0);
        file.write_at(buffer, 0)
            .await
            .map_err(glommio_io("write", &temporary))?;
        file.fdatasync()
            .await
            .map_err(glommio_io("sync", &temporary))?;
        let path = segment_path(&directory, header.segment_id);
        std::fs::rename(&temporary, &path).map_err(std_io("rename", &temporary))?;
        sync_directory(&directory)?;
        // The new segment is in place; the rest of the run is now covered by it.
        for segment in &self.segments[from + 1..=to] {
            std::fs::remove_file(&segment.path).map_err(std_io("remove", &segment.path))?;
        }
        sync_directory(&directory)?;

        let tail_start = usize::try_from(round_down(end_offset)).expect("fits");
        let rewritten = SegmentFile {
            id: header.segment_id,
            path,
            file: Rc::new(OnceCell::from(file)),
            index: OffsetIndex::new(header.first_index, positions),
            end_offset,
            tail: bytes[tail_start..].to_vec(),
            header,
        };
        self.segments.splice(from..=to, [rewritten]);
        Ok(report)
    }
}

/// `entries` cut into batches of about [`REWRITE_BATCH_SIZE_BYTES`] (each at least one).
fn batches(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (position, entry) in entries.iter().enumerate() {
        let entry_size = encoded_size_bytes(entry);
        if position > start && size + entry_size > REWRITE_BATCH_SIZE_BYTES {
            batches.push(&entries[start..position]);
            start = position;
            size = 0;
        }
        size += entry_size;
    }
    if start < entries.len() {
        batches.push(&entries[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::entries;
    use crate::segment_file::segment_ids;
    use crate::segment_log::SegmentLogOptions;
    use crate::test_support::{run, scratch};
    use crate::LogStorage;
    use coracle_engine::{LogIndex, Term};

    fn options(directory: &Path) -> SegmentLogOptions {
        SegmentLogOptions {
            segment_entries_max: 10,
            tail_cache_entries: 0,
            ..SegmentLogOptions::new(directory, 3)
        }
    }

    /// A log of 45 entries in five segments of ten (the last one takes appends).
    async fn five_segments(directory: &Path) -> SegmentLog {
        let (mut log, _) = SegmentLog::open(options(directory)).await.expect("open");
        log.append(&entries(1, 45, 2)).await.expect("append");
        assert_eq!(log.segments.len(), 5);
        log
    }

    async fn read_all(log: &SegmentLog) -> Vec<Entry> {
        let mut read = Vec::new();
        log.read(log.first_index(), log.last_index().next(), &mut read)
            .await
            .expect("read");
        read
    }

    fn odd(entry: &Entry) -> bool {
        entry.index.0 % 2 == 1
    }

    fn expected_after_compaction(through: u64) -> Vec<Entry> {
        entries(1, 45, 2)
            .into_iter()
            .filter(|entry| entry.index.0 > through || entry.index.0 % 2 == 1)
            .chain(entries(through, through, 2))
            .fold(Vec::new(), |mut kept, entry| {
                if !kept.iter().any(|k: &Entry| k.index == entry.index) {
                    kept.push(entry);
                }
                kept.sort_by_key(|entry| entry.index);
                kept
            })
    }

    #[test]
    fn a_minor_rewrite_leaves_holes_that_survive_a_restart() {
        let directory = scratch("rewrite", "minor");
        let inside = directory.clone();
        run(move || async move {
            let mut log = five_segments(&inside).await;
            let id = log.segments[1].id;
            let report = log.rewrite_segments(id, id, odd).await.expect("rewrite");
            assert_eq!(report.segments_merged, 1);
            // 11..=20: the odd ones and 20, the last of the run.
            assert_eq!(report.entries_kept, 6);
            assert_eq!(report.entries_removed, 4);
            assert!(report.bytes_after < report.bytes_before);
            assert!(!log.segments[1].index.is_dense());
            assert_eq!(log.term_at(LogIndex(12)), None, "a hole");
            assert_eq!(log.term_at(LogIndex(13)), Some(Term(2)));
            assert_eq!(log.term_at(LogIndex(20)), Some(Term(2)), "the last stays");
            let mut expected: Vec<Entry> = entries(1, 45, 2)
                .into_iter()
                .filter(|entry| !(11..20).contains(&entry.index.0) || odd(entry))
                .collect();
            assert_eq!(read_all(&log).await, expected);
            log.append(&entries(46, 50, 3))
                .await
                .expect("appends go on");
            expected.extend(entries(46, 50, 3));
            drop(log);
            let (log, report) = SegmentLog::open(options(&inside)).await.expect("reopen");
            assert_eq!(report.covered_segments_deleted, 0);
            assert_eq!(read_all(&log).await, expected);
            assert_eq!(log.segments[1].header.rewrite_version, 1);
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn a_major_rewrite_merges_neighbours_into_one_file() {
        let directory = scratch("rewrite", "major");
        let inside = directory.clone();
        run(move || async move {
            let mut log = five_segments(&inside).await;
            let (first, last) = (log.segments[0].id, log.segments[2].id);
            let report = log
                .rewrite_segments(first, last, odd)
                .await
                .expect("rewrite");
            assert_eq!(report.segments_merged, 3);
            assert_eq!(log.segments.len(), 3);
            assert_eq!(segment_ids(&inside).expect("list").len(), 3);
            let expected = expected_after_compaction(30);
            assert_eq!(read_all(&log).await, expected);
            drop(log);
            let (log, _) = SegmentLog::open(options(&inside)).await.expect("reopen");
            assert_eq!(read_all(&log).await, expected);
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn a_crash_after_the_rename_leaves_covered_segments_that_open_deletes() {
        let directory = scratch("rewrite", "crash-after-rename");
        let inside = directory.clone();
        run(move || async move {
            let mut log = five_segments(&inside).await;
            let merged: Vec<(PathBuf, Vec<u8>)> = log.segments[1..3]
                .iter()
                .map(|segment| {
                    let bytes = std::fs::read(&segment.path).expect("read");
                    (segment.path.clone(), bytes)
                })
                .collect();
            let (first, last) = (log.segments[0].id, log.segments[2].id);
            log.rewrite_segments(first, last, odd)
                .await
                .expect("rewrite");
            drop(log);
            // As if the crash came before the deletions reached the disk.
            for (path, bytes) in &merged {
                std::fs::write(path, bytes).expect("restore");
            }
            let (log, report) = SegmentLog::open(options(&inside)).await.expect("reopen");
            assert_eq!(report.covered_segments_deleted, 2);
            assert_eq!(report.stale_segments_deleted, 0);
            assert_eq!(read_all(&log).await, expected_after_compaction(30));
            assert_eq!(segment_ids(&inside).expect("list").len(), 3);
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_segments() {
        let directory = scratch("rewrite", "crash-before-rename");
        let inside = directory.clone();
        run(move || async move {
            let log = five_segments(&inside).await;
            let id = log.segments[0].id;
            drop(log);
            // A half-written rewrite under its temporary name.
            std::fs::write(rewrite_path(&inside, id), [7u8; 100]).expect("write");
            let (log, report) = SegmentLog::open(options(&inside)).await.expect("reopen");
            assert_eq!(report.interrupted_rewrites_removed, 1);
            assert_eq!(read_all(&log).await, entries(1, 45, 2));
            assert!(!rewrite_path(&inside, id).exists());
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn the_segment_taking_appends_is_not_rewritten() {
        let directory = scratch("rewrite", "refused");
        let inside = directory.clone();
        run(move || async move {
            let mut log = five_segments(&inside).await;
            let last = log.segments[4].id;
            let first = log.segments[0].id;
            for (from, to) in [(last, last), (first, last), (last, first), (99, 99)] {
                assert!(matches!(
                    log.rewrite_segments(from, to, odd).await,
                    Err(StorageError::Refused { .. })
                ));
            }
            assert_eq!(read_all(&log).await, entries(1, 45, 2));
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn a_segment_reaching_past_the_one_before_it_is_corruption() {
        let directory = scratch("rewrite", "bad-overlap");
        let inside = directory.clone();
        run(move || async move {
            let log = five_segments(&inside).await;
            let second = log.segments[1].path.clone();
            drop(log);
            // Segment 2 made to start inside segment 1 while still ending at 20.
            let mut bytes = std::fs::read(&second).expect("read");
            let mut header = SegmentHeader::decode(&bytes).expect("header");
            header.first_index = LogIndex(5);
            header.rewrite_version = 1; // so that its own scan accepts the jump to 11
            bytes[..64].copy_from_slice(&header.encode());
            std::fs::write(&second, bytes).expect("write");
            match SegmentLog::open(options(&inside)).await {
                Err(StorageError::Corruption { path, reason, .. }) => {
                    assert_eq!(path, second);
                    assert!(reason.contains("inside the one before"), "{reason}");
                }
                Err(other) => panic!("expected corruption, got {other}"),
                Ok(_) => panic!("expected corruption, the log opened"),
            }
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }
}
