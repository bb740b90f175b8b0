//! One Raft group's snapshots (SPEC §J4): files written in chunks, completed atomically,
//! read back in chunks for `Install` messages to lagging members; older snapshots removed
//! once a newer one is complete, unless the store retains stale snapshots (§H1
//! `retainStaleSnapshots`).
//!
//! ## Files
//! A complete snapshot is `<index:016x>-<term:016x>.snapshot` (lower-case hex, so names sort
//! by index); while it is written it is `<index:016x>-<term:016x>.snapshot.tmp`. (Copycat
//! named its files by index and timestamp; the term identifies a snapshot, the timestamp is
//! in the descriptor.) The first 4 KiB block holds the 64-byte descriptor, zero-padded, so
//! that the data starts on a block boundary and chunk reads with direct I/O stay aligned:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "coracleP"
//!      8     4  format version (u32 LE), 1
//!     12     4  flags (u32 LE): bit 0 complete; every other bit zero
//!     16     8  index: the last log index the snapshot covers (u64 LE, at least 1)
//!     24     8  term of that entry (u64 LE)
//!     32     8  timestamp_ms: the leader's wall clock when it was taken (u64 LE)
//!     40     8  data size in bytes (u64 LE)
//!     48     4  CRC32C of the data
//!     52     8  reserved, zero
//!     60     4  CRC32C of bytes 0..60
//!     64  4032  zero
//!   4096     -  data, then zeroes to the next 4096-byte boundary
//! ```
//!
//! ## Writing
//! [`SnapshotStore::create`] (a snapshot taken here) and [`SnapshotStore::install`] (one a
//! leader sends) return a [`SnapshotWriter`]; [`SnapshotWriter::write`] appends data,
//! [`SnapshotWriter::write_at_offset`] appends an `Install` chunk and refuses a gap or an
//! overlap. [`SnapshotWriter::complete`] writes the last block, `fdatasync`s the data,
//! writes the descriptor with the complete flag, `fdatasync`s again, renames the file to its
//! final name, syncs the directory, makes the snapshot current, and then removes the older
//! ones. Until the rename nothing but a `.tmp` file exists: a writer dropped or abandoned,
//! or a crash, leaves only that, and [`SnapshotStore::open`] removes it. A crash after the
//! rename but before the older snapshots are gone leaves them; the next open removes them.
//!
//! ## Reading
//! [`SnapshotStore::reader`] opens a snapshot and verifies it before serving anything: the
//! descriptor (checksum, flags, name) and then the checksum of the whole data, read once
//! from start to end. A damaged snapshot is [`StorageError::Corruption`] with the file and
//! the offset (of the descriptor field, or of the start of the data: one checksum covers
//! all of it) and is never served. [`SnapshotReader::read_chunk`] then reads any range.
//! Verification costs one sequential read of the snapshot per reader; the data is not
//! checked again while chunks are served from the open file.
//!
//! Data goes through glommio's direct I/O (`DmaFile`), like the segments: no page cache
//! churn for large snapshots, and no blocking of the shard's executor. Directory work
//! (listing, renaming, removing, syncing the directory) uses `std::fs`, as the segment log
//! does: glommio has no directory listing or directory sync.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use coracle_engine::{LogIndex, Term};
use glommio::io::{DmaFile, OpenOptions};

use crate::atomic_file::sync_directory;
use crate::device::warm_up_device;
use crate::error::{check_written, glommio_io, std_io, StorageError};
use crate::segment_file::{round_down, round_up, BLOCK_SIZE_BYTES};
use coracle_engine::entry_codec::{u32_at, u64_at};

/// What a complete snapshot's file name ends with.
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snapshot";
/// What a snapshot's file name ends with while it is written.
pub const SNAPSHOT_TEMPORARY_FILE_SUFFIX: &str = ".snapshot.tmp";
/// Bytes of the descriptor at the front of a snapshot file.
pub const DESCRIPTOR_SIZE_BYTES: usize = 64;
/// Where the data starts in a snapshot file: after the descriptor's block.
pub const DATA_OFFSET: u64 = BLOCK_SIZE_BYTES;
/// The size of an `Install` chunk (SPEC §J4), a good `max_len` for
/// [`SnapshotReader::read_chunk`].
pub const INSTALL_CHUNK_SIZE_BYTES: usize = 32 * 1024;

/// A writer gathers this much data before it writes, and verification reads this much at
/// a time.
const IO_SIZE_BYTES: usize = 64 * 1024;
const MAGIC: [u8; 8] = *b"coracleP";
const FORMAT_VERSION: u32 = 1;
const FLAG_COMPLETE: u32 = 1;
/// File-name digits of the index and of the term.
const NAME_DIGITS: usize = 16;

const _: () = assert!(DESCRIPTOR_SIZE_BYTES as u64 <= DATA_OFFSET);
const _: () = assert!(DATA_OFFSET.is_multiple_of(BLOCK_SIZE_BYTES));
const _: () = assert!((IO_SIZE_BYTES as u64).is_multiple_of(BLOCK_SIZE_BYTES));
const _: () = assert!(INSTALL_CHUNK_SIZE_BYTES <= IO_SIZE_BYTES);

/// A complete snapshot, as its descriptor describes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotDescriptor {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
    /// The leader's wall clock (ms) when the snapshot was taken.
    pub timestamp_ms: u64,
    /// Bytes of data.
    pub data_size_bytes: u64,
    /// CRC32C of the data.
    pub data_checksum: u32,
}

/// What can go wrong with snapshots.
#[derive(Debug)]
pub enum SnapshotError {
    /// A file operation failed, stored bytes are damaged, or the writer stopped after an
    /// earlier error ([`StorageError::Stopped`]).
    Storage(StorageError),
    /// An `Install` chunk does not start where the data received so far ends: a gap (a
    /// chunk was lost) or an overlap (a chunk came twice). Nothing was written.
    UnexpectedOffset {
        /// Where the next chunk must start: the bytes received so far.
        expected_offset: u64,
        /// Where the refused chunk starts.
        offset: u64,
    },
    /// The snapshot is not newer than the current one, so it would replace nothing.
    NotNewer {
        /// The snapshot's index.
        index: LogIndex,
        /// The current snapshot's index.
        current_index: LogIndex,
    },
    /// Another writer is writing a snapshot with this index and term.
    AlreadyWriting {
        /// The snapshot's index.
        index: LogIndex,
        /// The snapshot's term.
        term: Term,
    },
    /// A read that starts past the end of the data.
    ChunkOutOfRange {
        /// Where the read starts.
        offset: u64,
        /// Bytes of data.
        data_size_bytes: u64,
    },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Storage(error) => write!(f, "{error}"),
            SnapshotError::UnexpectedOffset {
                expected_offset,
                offset,
            } => {
                let kind = if offset > expected_offset {
                    "gap"
                } else {
                    "overlap"
                };
                write!(
                    f,
                    "snapshot chunk at offset {offset} leaves a {kind}: the next chunk starts at \
                     {expected_offset}"
                )
            }
            SnapshotError::NotNewer {
                index,
                current_index,
            } => write!(
                f,
                "snapshot at index {index} is not newer than the current one at {current_index}"
            ),
            SnapshotError::AlreadyWriting { index, term } => write!(
                f,
                "a snapshot at index {index}, term {term} is already being written"
            ),
            SnapshotError::ChunkOutOfRange {
                offset,
                data_size_bytes,
            } => write!(
                f,
                "snapshot read at offset {offset} past the end of its {data_size_bytes} bytes"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::Storage(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StorageError> for SnapshotError {
    fn from(error: StorageError) -> SnapshotError {
        SnapshotError::Storage(error)
    }
}

/// Where a store keeps its files, and what it keeps.
#[derive(Clone, Debug)]
pub struct SnapshotStoreOptions {
    /// The group's directory (it may hold the log's files too: only `*.snapshot` and
    /// `*.snapshot.tmp` files are the store's).
    pub directory: PathBuf,
    /// Keep older snapshots once a newer one is complete (SPEC §H1, default false).
    pub retain_stale: bool,
}

impl SnapshotStoreOptions {
    /// Copycat's default (older snapshots removed) for the group in `directory`.
    #[must_use]
    pub fn new(directory: impl Into<PathBuf>) -> SnapshotStoreOptions {
        SnapshotStoreOptions {
            directory: directory.into(),
            retain_stale: false,
        }
    }
}

/// What opening found and cleaned up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOpenReport {
    /// Complete snapshots kept.
    pub snapshots_count: usize,
    /// `.tmp` files removed: snapshots whose writer was dropped or crashed.
    pub temporary_files_removed: usize,
    /// Older complete snapshots removed (a crash came before their removal).
    pub stale_snapshots_removed: usize,
}

/// The store's state, shared with its writers (one executor: `Rc`, never `Send`).
#[derive(Debug)]
struct Catalog {
    options: SnapshotStoreOptions,
    /// Complete snapshots, oldest first; the last is the current one.
    snapshots: Vec<SnapshotDescriptor>,
    /// (index, term) of the writers in progress.
    writing: BTreeSet<(u64, u64)>,
}

impl Catalog {
    fn current(&self) -> Option<SnapshotDescriptor> {
        self.snapshots.last().copied()
    }

    fn refuse_unless_newer(&self, index: LogIndex) -> Result<(), SnapshotError> {
        match self.current() {
            Some(current) if index <= current.index => Err(SnapshotError::NotNewer {
                index,
                current_index: current.index,
            }),
            _ => Ok(()),
        }
    }

    /// Removes every snapshot but the current one, unless stale ones are retained.
    fn remove_stale(&mut self) -> Result<usize, StorageError> {
        if self.options.retain_stale || self.snapshots.len() <= 1 {
            return Ok(0);
        }
        let stale: Vec<SnapshotDescriptor> =
            self.snapshots.drain(..self.snapshots.len() - 1).collect();
        for descriptor in &stale {
            let path = snapshot_path(&self.options.directory, descriptor.index, descriptor.term);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(std_io("remove", &path)(error)),
            }
        }
        assert_eq!(self.snapshots.len(), 1);
        Ok(stale.len())
    }
}

/// One Raft group's snapshots. See the module documentation.
#[derive(Debug)]
pub struct SnapshotStore {
    catalog: Rc<RefCell<Catalog>>,
}

impl SnapshotStore {
    /// Opens (or creates) the store in `options.directory`: warms up the device, removes
    /// `.tmp` files, reads every snapshot's descriptor, and removes stale snapshots unless
    /// they are retained. Data checksums are verified by [`SnapshotStore::reader`].
    ///
    /// # Errors
    /// I/O errors, and corruption (a damaged descriptor, a file shorter than its data, a
    /// `.snapshot` file whose name is not a snapshot's) with the file and offset.
    pub async fn open(
        options: SnapshotStoreOptions,
    ) -> Result<(SnapshotStore, SnapshotOpenReport), SnapshotError> {
        let directory = options.directory.clone();
        std::fs::create_dir_all(&directory).map_err(std_io("create directory", &directory))?;
        warm_up_device(&directory).await?;
        let mut report = SnapshotOpenReport::default();
        let mut snapshots = Vec::new();
        let listing = std::fs::read_dir(&directory).map_err(std_io("list", &directory))?;
        let mut names = Vec::new();
        for item in listing {
            let item = item.map_err(std_io("list", &directory))?;
            names.push(item.file_name());
        }
        names.sort(); // A deterministic order, whatever the file system's.
        for name in names {
            let Some(name) = name.to_str() else {
                continue; // Not a name this store writes.
            };
            let path = directory.join(name);
            if name.ends_with(SNAPSHOT_TEMPORARY_FILE_SUFFIX) {
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.temporary_files_removed += 1;
            } else if let Some(stem) = name.strip_suffix(SNAPSHOT_FILE_SUFFIX) {
                let Some((index, term)) = parse_stem(stem) else {
                    return Err(corruption(&path, 0, "not a snapshot file name".into()).into());
                };
                let descriptor = read_descriptor(&path).await?;
                if (descriptor.index, descriptor.term) != (index, term) {
                    return Err(corruption(
                        &path,
                        16,
                        format!(
                            "descriptor says index {}, term {}; the name says index {index}, \
                             term {term}",
                            descriptor.index, descriptor.term
                        ),
                    )
                    .into());
                }
                snapshots.push(descriptor);
            }
        }
        snapshots.sort_by_key(|descriptor| (descriptor.index, descriptor.term));
        let mut catalog = Catalog {
            options,
            snapshots,
            writing: BTreeSet::new(),
        };
        report.stale_snapshots_removed = catalog.remove_stale()?;
        report.snapshots_count = catalog.snapshots.len();
        if report.temporary_files_removed > 0 || report.stale_snapshots_removed > 0 {
            sync_directory(&directory)?;
        }
        let store = SnapshotStore {
            catalog: Rc::new(RefCell::new(catalog)),
        };
        Ok((store, report))
    }

    /// The newest complete snapshot, if there is one.
    #[must_use]
    pub fn current(&self) -> Option<SnapshotDescriptor> {
        self.catalog.borrow().current()
    }

    /// Every complete snapshot kept, oldest first (more than one only with `retain_stale`).
    #[must_use]
    pub fn snapshots(&self) -> Vec<SnapshotDescriptor> {
        self.catalog.borrow().snapshots.clone()
    }

    /// The options the store was opened with.
    #[must_use]
    pub fn options(&self) -> SnapshotStoreOptions {
        self.catalog.borrow().options.clone()
    }

    /// The file of the snapshot `descriptor` describes.
    #[must_use]
    pub fn path(&self, descriptor: &SnapshotDescriptor) -> PathBuf {
        snapshot_path(
            &self.catalog.borrow().options.directory,
            descriptor.index,
            descriptor.term,
        )
    }

    /// Starts writing a snapshot of the state machine through `index` (of `term`), taken at
    /// the leader's `timestamp_ms`.
    ///
    /// # Errors
    /// [`SnapshotError::NotNewer`] if the current snapshot is at `index` or later,
    /// [`SnapshotError::AlreadyWriting`] if another writer has this index and term, or I/O
    /// errors creating the file.
    ///
    /// # Panics
    /// If `index` is zero: a snapshot covers at least one entry.
    pub async fn create(
        &self,
        index: LogIndex,
        term: Term,
        timestamp_ms: u64,
    ) -> Result<SnapshotWriter, SnapshotError> {
        assert!(
            index > LogIndex::ZERO,
            "a snapshot covers at least one entry"
        );
        let path = {
            let mut catalog = self.catalog.borrow_mut();
            catalog.refuse_unless_newer(index)?;
            if !catalog.writing.insert((index.0, term.0)) {
                return Err(SnapshotError::AlreadyWriting { index, term });
            }
            temporary_path(&catalog.options.directory, index, term)
        };
        // From here the writer owns the (index, term) slot, and frees it when dropped.
        let mut writer = SnapshotWriter {
            catalog: Rc::clone(&self.catalog),
            path,
            file: None,
            index,
            term,
            timestamp_ms,
            data_size_bytes: 0,
            flushed_bytes: 0,
            data_checksum: 0,
            pending: Vec::with_capacity(IO_SIZE_BYTES),
            stopped: false,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&writer.path)
            .await
            .map_err(glommio_io("create", &writer.path))?;
        writer.file = Some(file);
        Ok(writer)
    }

    /// Starts receiving a snapshot a leader sends in `Install` chunks: the same writer as
    /// [`SnapshotStore::create`], fed with [`SnapshotWriter::write_at_offset`] and completed
    /// when the chunk marked complete has arrived.
    ///
    /// # Errors
    /// As [`SnapshotStore::create`].
    ///
    /// # Panics
    /// If `index` is zero.
    pub async fn install(
        &self,
        index: LogIndex,
        term: Term,
        timestamp_ms: u64,
    ) -> Result<SnapshotWriter, SnapshotError> {
        self.create(index, term, timestamp_ms).await
    }

    /// Opens the snapshot `descriptor` describes and verifies it (descriptor, then the
    /// checksum of all of its data) before anything is served from it.
    ///
    /// # Errors
    /// I/O errors (the snapshot may have been removed since `descriptor` was current), and
    /// corruption with the file and offset.
    pub async fn reader(
        &self,
        descriptor: &SnapshotDescriptor,
    ) -> Result<SnapshotReader, SnapshotError> {
        let path = self.path(descriptor);
        let file = DmaFile::open(&path)
            .await
            .map_err(glommio_io("open", &path))?;
        let reader = SnapshotReader {
            path,
            file,
            descriptor: *descriptor,
        };
        match reader.verify().await {
            Ok(()) => Ok(reader),
            Err(error) => {
                // The error is what matters; a failed close adds nothing to it.
                let _ = reader.file.close().await;
                Err(error)
            }
        }
    }
}

/// A snapshot being written. See the module documentation; dropping it abandons the
/// snapshot, leaving a `.tmp` file that the next [`SnapshotStore::open`] removes.
#[derive(Debug)]
pub struct SnapshotWriter {
    catalog: Rc<RefCell<Catalog>>,
    /// The `.tmp` file.
    path: PathBuf,
    /// Open until `complete` or `abort` takes it.
    file: Option<DmaFile>,
    index: LogIndex,
    term: Term,
    timestamp_ms: u64,
    /// Bytes of data accepted.
    data_size_bytes: u64,
    /// Bytes of data written to the file (a multiple of the I/O size until the last write).
    flushed_bytes: u64,
    /// CRC32C of the data accepted.
    data_checksum: u32,
    /// Data accepted and not written yet: less than `IO_SIZE_BYTES`.
    pending: Vec<u8>,
    /// An operation failed: nothing more is written (fail-stop).
    stopped: bool,
}

impl SnapshotWriter {
    /// The snapshot's index.
    #[must_use]
    pub fn index(&self) -> LogIndex {
        self.index
    }

    /// The snapshot's term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Bytes of data accepted so far: where the next `Install` chunk must start.
    #[must_use]
    pub fn data_size_bytes(&self) -> u64 {
        self.data_size_bytes
    }

    /// Appends `data` to the snapshot.
    ///
    /// # Errors
    /// I/O errors; the writer then refuses everything ([`StorageError::Stopped`]) and its
    /// snapshot never becomes visible.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        if self.stopped {
            return Err(StorageError::Stopped.into());
        }
        let result = self.write_unchecked(data).await;
        self.stopped = result.is_err();
        result
    }

    /// Appends an `Install` chunk that starts at `offset` in the snapshot's data.
    ///
    /// # Errors
    /// [`SnapshotError::UnexpectedOffset`] if `offset` is not where the data received so far
    /// ends (nothing is written, and the writer stays usable); otherwise as
    /// [`SnapshotWriter::write`].
    pub async fn write_at_offset(&mut self, offset: u64, data: &[u8]) -> Result<(), SnapshotError> {
        if self.stopped {
            return Err(StorageError::Stopped.into());
        }
        if offset != self.data_size_bytes {
            return Err(SnapshotError::UnexpectedOffset {
                expected_offset: self.data_size_bytes,
                offset,
            });
        }
        self.write(data).await
    }

    async fn write_unchecked(&mut self, mut data: &[u8]) -> Result<(), SnapshotError> {
        self.data_checksum = crc32c::crc32c_append(self.data_checksum, data);
        self.data_size_bytes += data.len() as u64;
        while !data.is_empty() {
            assert!(self.pending.len() < IO_SIZE_BYTES);
            let taken = (IO_SIZE_BYTES - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..taken]);
            data = &data[taken..];
            if self.pending.len() == IO_SIZE_BYTES {
                self.flush().await?;
            }
        }
        assert_eq!(
            self.flushed_bytes + self.pending.len() as u64,
            self.data_size_bytes
        );
        Ok(())
    }

    /// Writes the pending data, padded with zeroes to a whole block.
    async fn flush(&mut self) -> Result<(), SnapshotError> {
        assert!(!self.pending.is_empty());
        assert!(self.pending.len() <= IO_SIZE_BYTES);
        // Only the last write may end inside a block: every earlier one is a whole I/O size.
        assert_eq!(self.flushed_bytes % IO_SIZE_BYTES as u64, 0);
        let file = self.file.as_ref().expect("open until complete or abort");
        let length = usize::try_from(round_up(self.pending.len() as u64)).expect("small");
        let mut buffer = file.alloc_dma_buffer(length);
        let bytes = buffer.as_bytes_mut();
        bytes[..self.pending.len()].copy_from_slice(&self.pending);
        bytes[self.pending.len()..].fill(0);
        let written = file
            .write_at(buffer, DATA_OFFSET + self.flushed_bytes)
            .await
            .map_err(glommio_io("write", &self.path))?;
        check_written(&self.path, written, length)?;
        self.flushed_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Makes the snapshot durable and current, then removes older ones unless they are
    /// retained; returns its descriptor.
    ///
    /// # Errors
    /// I/O errors: the snapshot is then not visible (a `.tmp` file is left for the next
    /// open to remove), unless the error came from removing older snapshots, after the
    /// snapshot became current. [`SnapshotError::NotNewer`] if a newer snapshot was
    /// completed while this one was written (its file is removed).
    pub async fn complete(mut self) -> Result<SnapshotDescriptor, SnapshotError> {
        if self.stopped {
            return Err(StorageError::Stopped.into());
        }
        let result = self.complete_unchecked().await;
        self.stopped = result.is_err();
        result
    }

    async fn complete_unchecked(&mut self) -> Result<SnapshotDescriptor, SnapshotError> {
        // A newer snapshot makes this one useless: stop before writing more.
        let newer = self.catalog.borrow().refuse_unless_newer(self.index);
        if let Err(error) = newer {
            self.discard().await?;
            return Err(error);
        }
        if !self.pending.is_empty() {
            self.flush().await?;
        }
        assert_eq!(self.flushed_bytes, self.data_size_bytes);
        let file = self.file.take().expect("open until complete or abort");
        file.fdatasync()
            .await
            .map_err(glommio_io("sync", &self.path))?;
        let descriptor = SnapshotDescriptor {
            index: self.index,
            term: self.term,
            timestamp_ms: self.timestamp_ms,
            data_size_bytes: self.data_size_bytes,
            data_checksum: self.data_checksum,
        };
        let length = usize::try_from(DATA_OFFSET).expect("one block");
        let mut block = file.alloc_dma_buffer(length);
        block.as_bytes_mut().fill(0);
        block.as_bytes_mut()[..DESCRIPTOR_SIZE_BYTES]
            .copy_from_slice(&encode_descriptor(&descriptor));
        let written = file
            .write_at(block, 0)
            .await
            .map_err(glommio_io("write descriptor", &self.path))?;
        check_written(&self.path, written, length)?;
        file.fdatasync()
            .await
            .map_err(glommio_io("sync", &self.path))?;
        file.close()
            .await
            .map_err(glommio_io("close", &self.path))?;
        // Nothing below awaits: no other writer can complete between the check and the
        // catalog's update.
        let mut catalog = self.catalog.borrow_mut();
        if let Err(error) = catalog.refuse_unless_newer(self.index) {
            std::fs::remove_file(&self.path).map_err(std_io("remove", &self.path))?;
            return Err(error);
        }
        let directory = catalog.options.directory.clone();
        let path = snapshot_path(&directory, self.index, self.term);
        std::fs::rename(&self.path, &path).map_err(std_io("rename", &path))?;
        sync_directory(&directory)?;
        catalog.snapshots.push(descriptor);
        assert!(catalog
            .snapshots
            .windows(2)
            .all(|pair| pair[0].index < pair[1].index));
        // Removals need no directory sync: if a crash undoes them, the next open redoes them.
        catalog.remove_stale()?;
        assert_eq!(catalog.current(), Some(descriptor));
        Ok(descriptor)
    }

    /// Abandons the snapshot and removes its `.tmp` file now (dropping the writer leaves
    /// the file for the next open).
    ///
    /// # Errors
    /// I/O errors closing or removing the file.
    pub async fn abort(mut self) -> Result<(), SnapshotError> {
        self.stopped = true;
        self.discard().await
    }

    /// Closes the `.tmp` file if it is open, and removes it.
    async fn discard(&mut self) -> Result<(), SnapshotError> {
        if let Some(file) = self.file.take() {
            file.close()
                .await
                .map_err(glommio_io("close", &self.path))?;
        }
        std::fs::remove_file(&self.path).map_err(std_io("remove", &self.path))?;
        Ok(())
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        let removed = self
            .catalog
            .borrow_mut()
            .writing
            .remove(&(self.index.0, self.term.0));
        assert!(
            removed,
            "a writer holds its (index, term) slot until dropped"
        );
    }
}

/// A verified snapshot, open for reading in chunks.
#[derive(Debug)]
pub struct SnapshotReader {
    path: PathBuf,
    file: DmaFile,
    descriptor: SnapshotDescriptor,
}

impl SnapshotReader {
    /// The snapshot read.
    #[must_use]
    pub fn descriptor(&self) -> SnapshotDescriptor {
        self.descriptor
    }

    /// The snapshot's file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn verify(&self) -> Result<(), SnapshotError> {
        let stored = read_descriptor_from(&self.path, &self.file).await?;
        if stored != self.descriptor {
            return Err(corruption(
                &self.path,
                0,
                format!(
                    "the descriptor is {stored:?}, not the {:?} the store listed",
                    self.descriptor
                ),
            )
            .into());
        }
        let size = self.descriptor.data_size_bytes;
        let mut checksum = 0;
        let mut offset = 0;
        while offset < size {
            let length = (size - offset).min(IO_SIZE_BYTES as u64);
            let bytes = self.read_data(offset, length).await?;
            checksum = crc32c::crc32c_append(checksum, &bytes);
            offset += length;
        }
        assert_eq!(offset, size);
        if checksum != self.descriptor.data_checksum {
            return Err(corruption(
                &self.path,
                DATA_OFFSET,
                format!(
                    "data checksum mismatch over bytes {DATA_OFFSET}..{}: stored {:#010x}, \
                     computed {checksum:#010x}",
                    DATA_OFFSET + size,
                    self.descriptor.data_checksum
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Up to `max_len` bytes of data from `offset`: fewer only at the end of the data, and
    /// none at the end.
    ///
    /// # Errors
    /// [`SnapshotError::ChunkOutOfRange`] if `offset` is past the end; I/O errors; corruption
    /// if the file was cut short after it was verified.
    pub async fn read_chunk(&self, offset: u64, max_len: usize) -> Result<Bytes, SnapshotError> {
        let size = self.descriptor.data_size_bytes;
        if offset > size {
            return Err(SnapshotError::ChunkOutOfRange {
                offset,
                data_size_bytes: size,
            });
        }
        let length = (size - offset).min(max_len as u64);
        if length == 0 {
            return Ok(Bytes::new());
        }
        let bytes = self.read_data(offset, length).await?;
        assert_eq!(bytes.len() as u64, length);
        Ok(bytes)
    }

    async fn read_data(&self, offset: u64, length: u64) -> Result<Bytes, SnapshotError> {
        assert!(length > 0);
        assert!(offset + length <= self.descriptor.data_size_bytes);
        let start = DATA_OFFSET + offset;
        let end = start + length;
        let aligned = round_down(start);
        let read_length = usize::try_from(round_up(end) - aligned).expect("a chunk fits memory");
        let read = self
            .file
            .read_at_aligned(aligned, read_length)
            .await
            .map_err(glommio_io("read", &self.path))?;
        let from = usize::try_from(start - aligned).expect("within a block");
        let to = usize::try_from(end - aligned).expect("within the read");
        if read.len() < to {
            return Err(corruption(
                &self.path,
                aligned + read.len() as u64,
                format!("the file ends before its data does (at {end})"),
            )
            .into());
        }
        Ok(Bytes::copy_from_slice(&read[from..to]))
    }

    /// Closes the file.
    ///
    /// # Errors
    /// The close failed.
    pub async fn close(self) -> Result<(), SnapshotError> {
        self.file
            .close()
            .await
            .map_err(glommio_io("close", &self.path))?;
        Ok(())
    }
}

/// The descriptor of a complete snapshot.
#[must_use]
pub fn encode_descriptor(descriptor: &SnapshotDescriptor) -> [u8; DESCRIPTOR_SIZE_BYTES] {
    assert!(descriptor.index > LogIndex::ZERO);
    let mut bytes = [0u8; DESCRIPTOR_SIZE_BYTES];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..16].copy_from_slice(&FLAG_COMPLETE.to_le_bytes());
    bytes[16..24].copy_from_slice(&descriptor.index.0.to_le_bytes());
    bytes[24..32].copy_from_slice(&descriptor.term.0.to_le_bytes());
    bytes[32..40].copy_from_slice(&descriptor.timestamp_ms.to_le_bytes());
    bytes[40..48].copy_from_slice(&descriptor.data_size_bytes.to_le_bytes());
    bytes[48..52].copy_from_slice(&descriptor.data_checksum.to_le_bytes());
    let checksum = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Decodes a descriptor; the error says what is wrong and at which offset. Only a complete
/// snapshot's descriptor decodes.
///
/// # Errors
/// Wrong size, bad magic, bad checksum, unknown version or flags, not complete, non-zero
/// reserved bytes, or index zero.
pub fn decode_descriptor(bytes: &[u8]) -> Result<SnapshotDescriptor, (u64, String)> {
    if bytes.len() != DESCRIPTOR_SIZE_BYTES {
        return Err((
            bytes.len().min(DESCRIPTOR_SIZE_BYTES) as u64,
            format!("{} bytes, expected {DESCRIPTOR_SIZE_BYTES}", bytes.len()),
        ));
    }
    if bytes[0..8] != MAGIC {
        return Err((0, "not a coracle snapshot (bad magic)".into()));
    }
    let stored = u32_at(bytes, 60);
    let computed = crc32c::crc32c(&bytes[..60]);
    if stored != computed {
        return Err((
            60,
            format!(
                "descriptor checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        ));
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err((8, format!("unknown format version {version}")));
    }
    let flags = u32_at(bytes, 12);
    if flags & FLAG_COMPLETE == 0 {
        return Err((12, "the snapshot was never completed".into()));
    }
    if flags != FLAG_COMPLETE {
        return Err((12, format!("unknown flags {flags:#x}")));
    }
    if bytes[52..60].iter().any(|&byte| byte != 0) {
        return Err((52, "reserved bytes are not zero".into()));
    }
    let index = LogIndex(u64_at(bytes, 16));
    if index == LogIndex::ZERO {
        return Err((16, "index zero".into()));
    }
    Ok(SnapshotDescriptor {
        index,
        term: Term(u64_at(bytes, 24)),
        timestamp_ms: u64_at(bytes, 32),
        data_size_bytes: u64_at(bytes, 40),
        data_checksum: u32_at(bytes, 48),
    })
}

/// Reads and checks the descriptor of the snapshot file at `path`, and that the file holds
/// as much data as the descriptor says.
async fn read_descriptor(path: &Path) -> Result<SnapshotDescriptor, SnapshotError> {
    let file = DmaFile::open(path)
        .await
        .map_err(glommio_io("open", path))?;
    let result = read_descriptor_from(path, &file).await;
    file.close().await.map_err(glommio_io("close", path))?;
    result
}

async fn read_descriptor_from(
    path: &Path,
    file: &DmaFile,
) -> Result<SnapshotDescriptor, SnapshotError> {
    let read = file
        .read_at_aligned(0, usize::try_from(DATA_OFFSET).expect("one block"))
        .await
        .map_err(glommio_io("read descriptor", path))?;
    let available = read.len().min(DESCRIPTOR_SIZE_BYTES);
    let descriptor = decode_descriptor(&read[..available])
        .map_err(|(offset, reason)| corruption(path, offset, reason))?;
    let file_size = file.file_size().await.map_err(glommio_io("size", path))?;
    let end = DATA_OFFSET.saturating_add(descriptor.data_size_bytes);
    if file_size < end {
        return Err(corruption(
            path,
            file_size,
            format!("the file ends before its data does (at {end})"),
        )
        .into());
    }
    Ok(descriptor)
}

fn snapshot_name_stem(index: LogIndex, term: Term) -> String {
    format!("{:016x}-{:016x}", index.0, term.0)
}

fn snapshot_path(directory: &Path, index: LogIndex, term: Term) -> PathBuf {
    directory.join(format!(
        "{}{SNAPSHOT_FILE_SUFFIX}",
        snapshot_name_stem(index, term)
    ))
}

fn temporary_path(directory: &Path, index: LogIndex, term: Term) -> PathBuf {
    directory.join(format!(
        "{}{SNAPSHOT_TEMPORARY_FILE_SUFFIX}",
        snapshot_name_stem(index, term)
    ))
}

/// The index and term a complete snapshot's file name (without its suffix) gives.
fn parse_stem(stem: &str) -> Option<(LogIndex, Term)> {
    let (index, term) = stem.split_once('-')?;
    let number = |digits: &str| {
        let lower_hex = digits
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if digits.len() != NAME_DIGITS || !lower_hex {
            return None;
        }
        u64::from_str_radix(digits, 16).ok()
    };
    let index = LogIndex(number(index)?);
    let term = Term(number(term)?);
    (index > LogIndex::ZERO).then_some((index, term))
}

fn corruption(path: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corruption {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests;
