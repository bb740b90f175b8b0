//! The I/O of one flush of a segment log, detached from the log so that the next batch can
//! be staged while this one is written and synced (group commit).
//!
//! A flush is planned by `SegmentLog::flush_begin` (positions assigned, bytes encoded) and
//! run here: segment files removed by a truncation first (and the directory synced), then
//! one write and one `fdatasync` per segment written to, in log order, then the small
//! atomic files. Only one flush of a log runs at a time — the next one's bytes continue
//! this one's — which a one-permit semaphore shared with the log enforces. When it ends,
//! the flush publishes its ticket as durable, or stops the log for good on any error
//! (fail-stop: nothing is retried as if it had been written).

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use coracle_engine::{HardState, LogIndex};
use glommio::io::OpenOptions;
use glommio::sync::{Semaphore, StaticPermit};

use crate::configuration_file::{self, StoredConfiguration};
use crate::error::{check_written, StorageError};
use crate::hard_state_file;
use crate::segment::SEGMENT_HEADER_SIZE_BYTES;
use crate::segment_file::{
    glommio_io, round_up, std_io, sync_directory, FileCell, BLOCK_SIZE_BYTES,
};
use crate::spare_segment::Spare;

/// What a log and its flushes share.
pub struct FlushShared {
    /// One permit: held by the flush in flight.
    pub permit: Rc<Semaphore>,
    /// Set by a flush that failed; the log refuses everything afterwards.
    pub stopped: Cell<bool>,
    /// Every stage up to this ticket is durable.
    pub durable_ticket: Cell<u64>,
    /// Flushes that completed.
    pub flushes: Cell<u64>,
    /// Segment bytes the last completed flush wrote.
    pub last_flush_bytes: Cell<u64>,
    /// The spare-segment preparation waits for a turn between two flushes.
    pub spare_waiting: Cell<bool>,
    /// Where a flush leaves its permit for the waiting preparation (glommio's semaphore
    /// gives a released permit to whoever asks first, and a log appending back to back
    /// always asks first).
    pub handoff: RefCell<Option<StaticPermit>>,
    /// Signalled when a permit is left in `handoff` (or the log closes).
    pub handoff_signal: Rc<Semaphore>,
}

impl FlushShared {
    /// A log's shared flush state, with nothing staged yet.
    #[must_use]
    pub fn new() -> Rc<FlushShared> {
        Rc::new(FlushShared {
            permit: Rc::new(Semaphore::new(1)),
            stopped: Cell::new(false),
            durable_ticket: Cell::new(0),
            flushes: Cell::new(0),
            last_flush_bytes: Cell::new(0),
            spare_waiting: Cell::new(false),
            handoff: RefCell::new(None),
            handoff_signal: Rc::new(Semaphore::new(0)),
        })
    }
}

/// A segment file to create before writing to it.
pub struct SegmentCreate {
    /// The header bytes.
    pub header: [u8; SEGMENT_HEADER_SIZE_BYTES],
    /// Bytes to preallocate (zeroed).
    pub preallocate_bytes: u64,
}

/// One write to one segment: its partial last block followed by new batches.
pub struct SegmentWrite {
    /// The segment's file.
    pub path: PathBuf,
    /// Its file, filled here when `create` is set.
    pub file: FileCell,
    /// Set for a segment this flush creates.
    pub create: Option<SegmentCreate>,
    /// Where the bytes go (block-aligned).
    pub offset: u64,
    /// The bytes (padded with zeroes to whole blocks when written).
    pub bytes: Vec<u8>,
}

/// One flush's I/O. Run it with [`FlushJob::run`]; see the module documentation.
pub struct FlushJob {
    pub(crate) shared: Rc<FlushShared>,
    /// Held while the job runs; released when it ends (or handed to the spare).
    pub(crate) permit: StaticPermit,
    pub(crate) ticket: u64,
    pub(crate) directory: PathBuf,
    pub(crate) deletes: Vec<PathBuf>,
    pub(crate) writes: Vec<SegmentWrite>,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) log_start: Option<LogIndex>,
    pub(crate) configuration: Option<StoredConfiguration>,
    /// False only in the benchmarks' unsynced mode: segments are written, never synced.
    pub(crate) sync: bool,
    /// The log's spare segment, when it zero-fills segments.
    pub(crate) spare: Option<Rc<Spare>>,
    pub(crate) guard: StopUnlessDone,
}

/// Stops the log if a planned flush is dropped before it ran to the end: the log's view
/// already counts its bytes as written, so nothing written after could be trusted.
pub(crate) struct StopUnlessDone {
    pub(crate) shared: Rc<FlushShared>,
    pub(crate) done: bool,
}

impl Drop for StopUnlessDone {
    fn drop(&mut self) {
        if !self.done {
            self.shared.stopped.set(true);
        }
    }
}

impl FlushJob {
    /// The ticket that is durable once this flush succeeds.
    #[must_use]
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Bytes this flush writes to segments.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.writes.iter().map(|write| write.bytes.len()).sum()
    }

    /// Writes and syncs; returns the ticket now durable.
    ///
    /// # Errors
    /// `Stopped` if the log already stopped; any I/O error, which also stops the log.
    pub async fn run(mut self) -> Result<u64, StorageError> {
        if self.shared.stopped.get() {
            return Err(StorageError::Stopped);
        }
        self.io().await?;
        assert!(
            self.shared.durable_ticket.get() <= self.ticket,
            "flushes run in order"
        );
        self.shared.durable_ticket.set(self.ticket);
        self.shared.flushes.set(self.shared.flushes.get() + 1);
        self.shared.last_flush_bytes.set(self.bytes() as u64);
        self.guard.done = true;
        if self.shared.spare_waiting.replace(false) {
            // One short zero-fill write goes before the next flush begins.
            *self.shared.handoff.borrow_mut() = Some(self.permit);
            self.shared.handoff_signal.signal(1);
        }
        // Otherwise the permit goes with `self`: the next flush may begin.
        Ok(self.ticket)
    }

    async fn io(&self) -> Result<(), StorageError> {
        if !self.deletes.is_empty() {
            // Before any write: a truncation's record must land in the last segment.
            for path in &self.deletes {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    // A segment planned by a flush that never created it.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(std_io("remove", path)(error)),
                }
            }
            sync_directory(&self.directory)?;
        }
        for write in &self.writes {
            write_segment(write, &self.directory, self.sync, self.spare.as_deref()).await?;
            if let (Some(spare), Some(create)) = (&self.spare, &write.create) {
                spare.replenish(&self.directory, create.preallocate_bytes, &self.shared);
            }
        }
        if let Some(configuration) = &self.configuration {
            configuration_file::save(&self.directory, configuration)?;
        }
        if let Some(log_start) = self.log_start {
            crate::log_start_file::save(&self.directory, log_start)?;
        }
        if let Some(hard_state) = self.hard_state {
            hard_state_file::save(&self.directory, hard_state)?;
        }
        Ok(())
    }
}

async fn write_segment(
    write: &SegmentWrite,
    directory: &std::path::Path,
    sync: bool,
    spare: Option<&Spare>,
) -> Result<(), StorageError> {
    let path = &write.path;
    if let Some(create) = &write.create {
        let file = match spare.and_then(Spare::take) {
            Some(spare) => {
                // Zero-filled ahead of time: no unwritten extents to convert while appending.
                std::fs::rename(&spare, path).map_err(std_io("rename spare", &spare))?;
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .dma_open(path)
                    .await
                    .map_err(glommio_io("open", path))?
            }
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .dma_open(path)
                    .await
                    .map_err(glommio_io("create", path))?;
                file.pre_allocate(create.preallocate_bytes, false)
                    .await
                    .map_err(glommio_io("preallocate", path))?;
                file
            }
        };
        // The header gets its own write and sync: a header torn together with a batch
        // would make the last segment unreadable instead of merely torn.
        let mut block = file.alloc_dma_buffer(BLOCK_SIZE_BYTES as usize);
        block.as_bytes_mut().fill(0);
        block.as_bytes_mut()[..SEGMENT_HEADER_SIZE_BYTES].copy_from_slice(&create.header);
        file.write_at(block, 0)
            .await
            .map_err(glommio_io("write header", path))?;
        file.fdatasync().await.map_err(glommio_io("sync", path))?;
        sync_directory(directory)?;
        assert!(write.file.set(file).is_ok(), "a segment is created once");
    }
    let file = write.file.get().expect("created above or earlier");
    let length = usize::try_from(round_up(write.bytes.len() as u64)).expect("bounded");
    let mut buffer = file.alloc_dma_buffer(length);
    let data = buffer.as_bytes_mut();
    data[..write.bytes.len()].copy_from_slice(&write.bytes);
    data[write.bytes.len()..].fill(0);
    let written = file
        .write_at(buffer, write.offset)
        .await
        .map_err(glommio_io("write", path))?;
    check_written(path, written, length)?;
    if sync {
        file.fdatasync().await.map_err(glommio_io("sync", path))?;
    }
    Ok(())
}
