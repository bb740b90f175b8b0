//! One segment of a segment log: its file, where its entries are, and where it ends.
//!
//! The in-memory view runs ahead of the disk: a flush assigns positions to the entries it
//! is about to write before it writes them, and a segment created by a flush gets its file
//! only when that flush runs. The file therefore sits in a shared cell that the flush
//! fills; reads only ever reach entries that are durable, whose files exist.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use coracle_engine::entry_codec::decode_entry;
use coracle_engine::{Entry, LogIndex};
use glommio::io::{DmaFile, OpenOptions};

pub use crate::atomic_file::sync_directory;
use crate::error::StorageError;
pub use crate::error::{glommio_io, std_io};
use crate::offset_index::OffsetIndex;
use crate::segment::{scan_segment, SegmentHeader, TornTail};

/// Direct I/O works in whole blocks of this size.
pub const BLOCK_SIZE_BYTES: u64 = 4096;
const SEGMENT_FILE_SUFFIX: &str = ".segment";

/// A segment's file, filled once the file exists.
pub type FileCell = Rc<OnceCell<DmaFile>>;

/// One segment: the in-memory view of one file.
pub struct SegmentFile {
    /// Increasing along the log; names the file.
    pub id: u64,
    /// The file's path.
    pub path: PathBuf,
    /// The open file (empty until the flush that creates it has run).
    pub file: FileCell,
    /// Where each entry is.
    pub index: OffsetIndex,
    /// Where the next batch goes (past everything written or being written).
    pub end_offset: u64,
    /// The bytes of the partial block at the end (`end_offset` rounded down to a block):
    /// direct I/O rewrites that block with the next batch after it.
    pub tail: Vec<u8>,
    /// The header, written when the file is created.
    pub header: SegmentHeader,
}

impl SegmentFile {
    /// Index of the first entry the segment holds or would hold.
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.index.first_index()
    }

    /// Index of the last entry held (`first_index - 1` when none).
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.index.last_index()
    }

    /// Reads the held entries in `start..end` (all durable) from the file.
    ///
    /// One read covers the range; entries are decoded from one buffer, and command
    /// payloads are slices of it (one copy out of the DMA buffer, none per entry).
    pub async fn read(
        &self,
        start: LogIndex,
        end: LogIndex,
        into: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        let positions = self.index.range(start, end);
        let (Some(first), Some(last)) = (positions.first(), positions.last()) else {
            return Ok(());
        };
        let file = self
            .file
            .get()
            .expect("durable entries are in a file that exists");
        let aligned = round_down(first.offset);
        let length = round_up(last.offset + u64::from(last.size_bytes)) - aligned;
        let read = file
            .read_at_aligned(aligned, usize::try_from(length).expect("bounded"))
            .await
            .map_err(glommio_io("read", &self.path))?;
        let bytes = Bytes::copy_from_slice(&read);
        for position in positions {
            let at = usize::try_from(position.offset - aligned).expect("small");
            let corruption = |reason: String| StorageError::Corruption {
                path: self.path.clone(),
                offset: position.offset,
                reason,
            };
            let (entry, _) =
                decode_entry(&bytes, at).map_err(|error| corruption(error.to_string()))?;
            if entry.index != position.index || entry.term != position.term {
                return Err(corruption(format!(
                    "entry {} of term {} where {} of term {} was written",
                    entry.index, entry.term, position.index, position.term
                )));
            }
            into.push(entry);
        }
        Ok(())
    }

    /// Scans a segment read by [`read_whole`]. `last` says whether it is the log's last
    /// segment (the only one whose tail may be torn); a torn tail is zeroed on disk, so
    /// that only zeroes follow the data again, and returned.
    pub async fn open(
        read: WholeSegment,
        id: u64,
        last: bool,
    ) -> Result<(SegmentFile, Option<TornTail>), StorageError> {
        let WholeSegment { path, file, data } = read;
        let scan = scan_segment(&path, &data, last, None)?;
        let end = usize::try_from(scan.end_offset).expect("fits");
        let tail_start = usize::try_from(round_down(scan.end_offset)).expect("fits");
        let segment = SegmentFile {
            id,
            path,
            file: Rc::new(OnceCell::from(file)),
            index: OffsetIndex::new(scan.header.first_index, scan.positions),
            end_offset: scan.end_offset,
            tail: data[tail_start..end].to_vec(),
            header: scan.header,
        };
        if let Some(torn) = scan.torn {
            segment.zero_after_data(torn.dropped_bytes).await?;
        }
        Ok((segment, scan.torn))
    }

    /// Overwrites `length` bytes after the data with zeroes (keeping the data's tail).
    async fn zero_after_data(&self, length: u64) -> Result<(), StorageError> {
        let file = self.file.get().expect("an opened segment has its file");
        let aligned = round_down(self.end_offset);
        let end = self.end_offset + length;
        let length = usize::try_from(round_up(end) - aligned).expect("bounded");
        let mut buffer = file.alloc_dma_buffer(length);
        let data = buffer.as_bytes_mut();
        data.fill(0);
        data[..self.tail.len()].copy_from_slice(&self.tail);
        file.write_at(buffer, aligned)
            .await
            .map_err(glommio_io("zero torn tail", &self.path))?;
        file.fdatasync()
            .await
            .map_err(glommio_io("sync", &self.path))?;
        Ok(())
    }
}

/// A segment file opened and read whole, ready to scan.
pub struct WholeSegment {
    /// Its path.
    pub path: PathBuf,
    /// The open file.
    pub file: DmaFile,
    /// Every byte of it.
    pub data: Bytes,
}

/// Opens the segment file at `path` and reads all of it with one direct read. `open`
/// reads the next segment this way while it scans the current one, so that the scan's CPU
/// work hides behind the disk.
///
/// # Errors
/// I/O errors.
pub async fn read_whole(path: PathBuf) -> Result<WholeSegment, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(glommio_io("open", &path))?;
    let size = file.file_size().await.map_err(glommio_io("size", &path))?;
    let read = file
        .read_at_aligned(
            0,
            usize::try_from(round_up(size)).expect("segments fit in memory"),
        )
        .await
        .map_err(glommio_io("read", &path))?;
    let length = read.len().min(usize::try_from(size).expect("fits"));
    // One copy: glommio's buffers are not `Send`, so `Bytes` cannot own them.
    let data = Bytes::copy_from_slice(&read[..length]);
    Ok(WholeSegment { path, file, data })
}

/// The path of segment `id` in `directory`.
#[must_use]
pub fn segment_path(directory: &Path, id: u64) -> PathBuf {
    directory.join(format!("{id:016x}{SEGMENT_FILE_SUFFIX}"))
}

/// The ids of the segment files in `directory`, ascending.
///
/// # Errors
/// The directory cannot be listed, or holds a `.segment` file whose name is not an id.
pub fn segment_ids(directory: &Path) -> Result<Vec<u64>, StorageError> {
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
    ids.sort_unstable();
    Ok(ids)
}

/// `offset` rounded down to a block.
#[must_use]
pub fn round_down(offset: u64) -> u64 {
    offset / BLOCK_SIZE_BYTES * BLOCK_SIZE_BYTES
}

/// `offset` rounded up to a block.
#[must_use]
pub fn round_up(offset: u64) -> u64 {
    offset.div_ceil(BLOCK_SIZE_BYTES) * BLOCK_SIZE_BYTES
}
