//! The segment log: one Raft group's log in segment files written with glommio direct I/O.
//!
//! Writing is split in two so that a shard can group-commit. [`SegmentLog::stage`] takes
//! entries at once (into the tail cache, readable immediately) and returns a ticket;
//! [`SegmentLog::flush_begin`] plans one flush of everything staged — one batch per
//! segment it touches, positions assigned — and hands back a [`FlushJob`] that owns the
//! I/O. While that job writes and syncs, the log goes on staging the next batch; the next
//! flush begins once the job is done. [`flush_all`] runs the flushes of many logs (a
//! shard's groups) together, so each file gets one write and one `fdatasync` per round.
//! The plain [`LogStorage::append`] is stage + flush + wait.
//!
//! Segments are preallocated and zeroed, then written append-only in batches (see
//! `segment.rs`), and roll when the next batch would pass their size or entry bound.
//! Truncation deletes the segments past the cut, then appends a record (or the replacing
//! batch) to the segment that keeps it; on open, a segment that does not continue the one
//! before it is a leftover and is deleted too. A prefix truncation deletes whole segments
//! and stores the new first index in `log-start`.

use std::path::PathBuf;
use std::rc::Rc;

mod rewrite;
pub use rewrite::{RewriteReport, REWRITE_FILE_SUFFIX};

use coracle_engine::entry_codec::encoded_size_bytes;
use coracle_engine::{Entry, HardState, LogIndex, Term};

use crate::configuration_file::{self, StoredConfiguration};
use crate::device::warm_up_device;
use crate::error::StorageError;
use crate::flush_job::{FlushJob, FlushShared, SegmentCreate, SegmentWrite, StopUnlessDone};
use crate::log_storage::{check_append, LogStorage};
use crate::offset_index::OffsetIndex;
use crate::segment::{
    encode_batch, encode_truncation, EntryPosition, SegmentHeader, TornTail,
    BATCH_HEADER_SIZE_BYTES, SEGMENT_HEADER_SIZE_BYTES,
};
use crate::segment_file::{
    read_whole, round_down, segment_ids, segment_path, std_io, sync_directory, SegmentFile,
    BLOCK_SIZE_BYTES,
};
use crate::spare_segment::{remove_spares, Spare};
use crate::tail_cache::{TailCache, TAIL_CACHE_ENTRIES_DEFAULT};
use crate::{hard_state_file, log_start_file};

/// Copycat's default segment size.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 32 * 1024 * 1024;
/// Copycat's default (and largest) number of entries in one segment.
pub const SEGMENT_ENTRIES_MAX: u32 = 1024 * 1024;

const _: () = assert!(SEGMENT_HEADER_SIZE_BYTES as u64 <= BLOCK_SIZE_BYTES);

/// Segments read at once while opening (each read whole: memory is this many segments).
const SEGMENT_READS_AHEAD: usize = 3;

/// Where and how a segment log keeps its files.
#[derive(Clone, Debug)]
pub struct SegmentLogOptions {
    /// The log's own directory (one per Raft group).
    pub directory: PathBuf,
    /// The Raft group, written into every segment header.
    pub group: u64,
    /// Segments roll once a batch would pass this size (an entry larger than a segment
    /// gets one of its own).
    pub segment_size_bytes: u64,
    /// Segments roll once a batch would pass this many entries (at most
    /// [`SEGMENT_ENTRIES_MAX`]).
    pub segment_entries_max: u32,
    /// Durable entries kept in memory after they are written (SPEC §H1 entryBufferSize);
    /// entries not yet durable are always kept.
    pub tail_cache_entries: usize,
    /// For benchmarks only: flushes write but never `fdatasync` segments, so "durable"
    /// means "handed to the device". A crash can lose acknowledged entries. Never set it
    /// in a server.
    pub unsynced_for_benchmarks_only: bool,
    /// Prepare the next segment in the background as a file of written zeroes, so that
    /// appends never write into unwritten extents (see `spare_segment.rs`; on by default).
    pub zero_fill_segments: bool,
}

impl SegmentLogOptions {
    /// Copycat's defaults (32 MiB and 1 Mi entries per segment, 1,024 cached entries) for
    /// `group` in `directory`.
    #[must_use]
    pub fn new(directory: impl Into<PathBuf>, group: u64) -> SegmentLogOptions {
        SegmentLogOptions {
            directory: directory.into(),
            group,
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            segment_entries_max: SEGMENT_ENTRIES_MAX,
            tail_cache_entries: TAIL_CACHE_ENTRIES_DEFAULT,
            unsynced_for_benchmarks_only: false,
            zero_fill_segments: true,
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
    /// Bytes of segment files read and scanned.
    pub bytes_scanned: u64,
    /// A torn last write that was dropped, with its file.
    pub torn: Option<(PathBuf, TornTail)>,
    /// Segments left behind by a truncation that a crash interrupted, now deleted.
    pub stale_segments_deleted: usize,
    /// Segments covered by a rewritten one before them (a compaction that a crash
    /// interrupted after its rename), now deleted.
    pub covered_segments_deleted: usize,
    /// Temporary files of rewrites a crash interrupted before their rename, now deleted.
    pub interrupted_rewrites_removed: usize,
    /// A last segment a crash left before its header was written (all zeroes), now
    /// deleted.
    pub unfinished_segment_deleted: bool,
}

/// One Raft group's durable log on glommio direct I/O. See the module documentation.
pub struct SegmentLog {
    options: SegmentLogOptions,
    /// In log order; never empty. The last one takes new batches.
    segments: Vec<SegmentFile>,
    next_segment_id: u64,
    /// The latest hard state staged (durable once its flush is).
    hard_state: HardState,
    /// The latest configuration staged, if any was ever stored.
    configuration: Option<StoredConfiguration>,
    /// Entries below this are no longer served (`truncate_before`).
    first_index: LogIndex,
    cache: TailCache,
    shared: Rc<FlushShared>,
    /// The next segment's file, zero-filled in the background.
    spare: Rc<Spare>,
    /// The ticket of the latest stage.
    ticket: u64,
    plan: Plan,
}

/// What the next flush must write, gathered by stages since the last one began.
#[derive(Default)]
struct Plan {
    /// The first staged entry not yet given a position (all later ones are in the cache).
    entries_from: Option<LogIndex>,
    /// The lowest cut below entries already written or being written.
    truncated_after: Option<LogIndex>,
    deletes: Vec<PathBuf>,
    hard_state: bool,
    configuration: bool,
    log_start: Option<LogIndex>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.entries_from.is_none()
            && self.truncated_after.is_none()
            && self.deletes.is_empty()
            && !self.hard_state
            && !self.configuration
            && self.log_start.is_none()
    }
}

impl SegmentLog {
    /// Opens (or creates) the log in `options.directory`: warms up the device, reads the
    /// hard state and the log start, scans every segment, drops a torn tail, deletes
    /// leftovers.
    ///
    /// # Errors
    /// I/O errors, and corruption with file and offset.
    pub async fn open(
        options: SegmentLogOptions,
    ) -> Result<(SegmentLog, OpenReport), StorageError> {
        assert!(
            options.segment_entries_max >= 1 && options.segment_entries_max <= SEGMENT_ENTRIES_MAX,
            "segment_entries_max must be in 1..={SEGMENT_ENTRIES_MAX}"
        );
        let directory = options.directory.clone();
        std::fs::create_dir_all(&directory).map_err(std_io("create directory", &directory))?;
        warm_up_device(&directory).await?;
        let hard_state = hard_state_file::load(&directory)?;
        let configuration = configuration_file::load(&directory)?;
        let log_start = log_start_file::load(&directory)?;
        let mut report = OpenReport {
            interrupted_rewrites_removed: rewrite::remove_interrupted_rewrites(&directory)?,
            ..OpenReport::default()
        };
        remove_spares(&directory).map_err(std_io("remove spares", &directory))?;
        let ids = segment_ids(&directory)?;
        let mut segments: Vec<SegmentFile> = Vec::new();
        let count = ids.len();
        let read_ahead = |position: usize| {
            ids.get(position)
                .map(|&id| glommio::spawn_local(read_whole(segment_path(&directory, id))).detach())
        };
        // Reads run ahead of the scan, several at once: the disk serves concurrent reads
        // faster than one at a time, and the scan's CPU work hides behind them.
        let mut reads: std::collections::VecDeque<_> =
            (0..SEGMENT_READS_AHEAD).filter_map(read_ahead).collect();
        for (position, &id) in ids.iter().enumerate() {
            let path = segment_path(&directory, id);
            let read = reads
                .pop_front()
                .expect("one read per segment")
                .await
                .ok_or(StorageError::Stopped)??;
            reads.extend(read_ahead(position + SEGMENT_READS_AHEAD));
            if report.stale_segments_deleted > 0 {
                // Everything after a leftover segment is a leftover too.
                drop(read);
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.stale_segments_deleted += 1;
                continue;
            }
            if position + 1 == count && read.data.iter().all(|&byte| byte == 0) {
                // Created (or renamed from a spare) but its header never reached the disk:
                // it never held an entry.
                drop(read);
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.unfinished_segment_deleted = true;
                continue;
            }
            let (segment, torn) = SegmentFile::open(read, id, position + 1 == count).await?;
            report.bytes_scanned += segment.end_offset;
            if let Some(torn) = torn {
                report.torn = Some((path.clone(), torn));
            }
            let previous_last = segments.last().map(SegmentFile::last_index);
            if let Some(previous_last) = previous_last.filter(|&l| segment.first_index() <= l) {
                if segment.last_index() > previous_last {
                    return Err(StorageError::Corruption {
                        path,
                        offset: 0,
                        reason: format!(
                            "segment starts at {} inside the one before it (which ends at \
                             {previous_last}) and goes past it",
                            segment.first_index()
                        ),
                    });
                }
                // Covered by the rewritten segment before it: a compaction renamed its new
                // segment into place and a crash came before this one was deleted.
                drop(segment);
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.covered_segments_deleted += 1;
                continue;
            }
            let continues = segments
                .last()
                .is_none_or(|previous| segment.first_index() == previous.last_index().next());
            if !continues {
                // A truncation cut the log below this segment and a crash came before the
                // segment's deletion was durable: it is not part of the log.
                drop(segment);
                std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
                report.stale_segments_deleted += 1;
                continue;
            }
            segments.push(segment);
        }
        let deleted = report.stale_segments_deleted + report.covered_segments_deleted;
        if deleted > 0 || report.unfinished_segment_deleted {
            sync_directory(&directory)?;
        }
        let next_segment_id = ids.last().map_or(1, |last| last + 1);
        let mut log = SegmentLog {
            cache: TailCache::new(options.tail_cache_entries),
            options,
            segments,
            next_segment_id,
            hard_state,
            configuration,
            first_index: LogIndex(1),
            shared: FlushShared::new(),
            spare: Rc::default(),
            ticket: 0,
            plan: Plan::default(),
        };
        if log.segments.is_empty() {
            // Created on disk by the first flush that writes to it.
            let segment = log.segment_plan(log_start.unwrap_or(LogIndex(1)));
            log.segments.push(segment);
        }
        if log.options.zero_fill_segments {
            log.spare
                .replenish(&directory, log.options.segment_size_bytes, &log.shared);
        }
        let held_from = log.segments[0].first_index();
        // A prefix truncation kept the segment holding its cut: hide what it dropped.
        log.first_index = log_start
            .unwrap_or(held_from)
            .max(held_from)
            .min(log.last_index().next());
        report.segments_count = log.segments.len();
        report.entries_count = log.segments.iter().map(|s| s.index.len()).sum();
        Ok((log, report))
    }

    /// The options the log was opened with.
    #[must_use]
    pub fn options(&self) -> &SegmentLogOptions {
        &self.options
    }

    /// Takes `entries` into the log at once — readable, and replacing a conflicting suffix
    /// if they start at or below the last index — and returns the ticket that says when
    /// they are durable ([`SegmentLog::is_durable`]). Nothing is written until a flush.
    ///
    /// # Errors
    /// `Stopped` after an I/O error; `NotContiguous` if the entries leave a hole.
    pub fn stage(&mut self, entries: &[Entry]) -> Result<u64, StorageError> {
        self.check_running()?;
        let Some(first) = entries.first() else {
            return Ok(self.ticket);
        };
        check_append(entries, self.first_index, self.last_index())?;
        if first.index <= self.last_index() {
            self.cut(first.index.prev());
        }
        self.ticket += 1;
        self.cache.stage(entries, self.ticket);
        self.plan.entries_from = Some(
            self.plan
                .entries_from
                .map_or(first.index, |from| from.min(first.index)),
        );
        self.cache.trim(self.shared.durable_ticket.get());
        Ok(self.ticket)
    }

    /// Stages a new hard state (term, vote), stored atomically by the next flush.
    ///
    /// # Errors
    /// `Stopped` after an I/O error.
    pub fn stage_hard_state(&mut self, hard_state: HardState) -> Result<u64, StorageError> {
        self.check_running()?;
        self.hard_state = hard_state;
        self.plan.hard_state = true;
        self.ticket += 1;
        Ok(self.ticket)
    }

    /// Stages the latest configuration (SPEC §G), stored atomically beside the hard state
    /// by the next flush.
    ///
    /// # Errors
    /// `Stopped` after an I/O error.
    pub fn stage_configuration(
        &mut self,
        configuration: StoredConfiguration,
    ) -> Result<u64, StorageError> {
        self.check_running()?;
        self.configuration = Some(configuration);
        self.plan.configuration = true;
        self.ticket += 1;
        Ok(self.ticket)
    }

    /// The latest configuration staged or stored, if any.
    #[must_use]
    pub fn configuration(&self) -> Option<&StoredConfiguration> {
        self.configuration.as_ref()
    }

    /// Stages dropping every entry above `index` (durable after the next flush).
    ///
    /// # Errors
    /// `Stopped` after an I/O error; `OutOfRange` below the first index.
    pub fn stage_truncate_after(&mut self, index: LogIndex) -> Result<u64, StorageError> {
        self.check_running()?;
        if index < self.first_index.prev() {
            return Err(StorageError::OutOfRange { index });
        }
        if index < self.last_index() {
            self.cut(index);
            self.ticket += 1;
        }
        Ok(self.ticket)
    }

    /// Stages dropping every entry below `index` (covered by a snapshot): whole segments
    /// are deleted, the rest hidden, and the new first index stored by the next flush. The
    /// entry just below `index` stays, for its term.
    ///
    /// # Errors
    /// `Stopped` after an I/O error; `OutOfRange` if the log does not hold `index - 1`.
    pub fn stage_truncate_before(&mut self, index: LogIndex) -> Result<u64, StorageError> {
        self.check_running()?;
        if index <= self.first_index {
            return Ok(self.ticket);
        }
        if self.term_at(index.prev()).is_none() {
            return Err(StorageError::OutOfRange {
                index: index.prev(),
            });
        }
        self.first_index = index;
        // The cache keeps what it holds: entries not yet written must still be written
        // (the flush writes whatever follows the last planned entry), and reads never go
        // below `first_index` anyway.
        // A segment goes once the next one starts at or below the entry that must stay.
        while self.segments.len() > 1 && self.segments[1].first_index() <= index.prev() {
            let segment = self.segments.remove(0);
            self.plan.deletes.push(segment.path);
        }
        self.plan.log_start = Some(index);
        self.ticket += 1;
        Ok(self.ticket)
    }

    /// Whether everything staged up to `ticket` is durable.
    #[must_use]
    pub fn is_durable(&self, ticket: u64) -> bool {
        ticket <= self.shared.durable_ticket.get()
    }

    /// The highest ticket that is durable.
    #[must_use]
    pub fn durable_ticket(&self) -> u64 {
        self.shared.durable_ticket.get()
    }

    /// Whether a flush is running.
    #[must_use]
    pub fn is_flushing(&self) -> bool {
        self.shared.permit.available() == 0
    }

    /// Plans a flush of everything staged, if there is something and the log's permit is
    /// free (no flush running, and not the spare segment's turn): assigns positions,
    /// encodes one batch per segment, and returns the job that writes them. Staging may go
    /// on while the job runs. [`SegmentLog::flush_through`] and [`flush_all`] wait for the
    /// permit instead.
    pub fn flush_begin(&mut self) -> Option<FlushJob> {
        if self.shared.stopped.get() {
            return None;
        }
        let permit = self.shared.permit.try_acquire_static_permit(1).ok()?;
        self.plan_flush(permit)
    }

    /// Completes once no flush holds the log's permit (the spare segment's turn, or a flush
    /// begun elsewhere), so that a driver whose `flush_begin` found it taken knows when to
    /// try again. It does not keep the permit. Completes at once if the log stopped.
    pub fn when_flushable(&self) -> impl std::future::Future<Output = ()> + 'static {
        let shared = Rc::clone(&self.shared);
        async move {
            if shared.stopped.get() {
                return;
            }
            // Taking a unit and giving it straight back: the driver's `flush_begin` right
            // after finds it free unless someone else took it first, and then it waits again.
            drop(shared.permit.acquire_static_permit(1).await);
        }
    }

    /// Flushes until everything staged up to `ticket` is durable, waiting for a flush that
    /// is already running.
    ///
    /// # Errors
    /// `Stopped`, or the I/O error that stopped the log.
    pub async fn flush_through(&mut self, ticket: u64) -> Result<(), StorageError> {
        while !self.is_durable(ticket) {
            self.check_running()?;
            let permit = self
                .shared
                .permit
                .acquire_static_permit(1)
                .await
                .map_err(|_| StorageError::Stopped)?;
            if self.is_durable(ticket) {
                break;
            }
            self.check_running()?;
            if let Some(job) = self.plan_flush(permit) {
                job.run().await?;
            }
        }
        self.cache.trim(self.shared.durable_ticket.get());
        Ok(())
    }

    /// Flushes everything staged so far and waits until it is durable.
    ///
    /// # Errors
    /// `Stopped`, or the I/O error that stopped the log.
    pub async fn flush(&mut self) -> Result<(), StorageError> {
        self.flush_through(self.ticket).await
    }

    /// Flushes that completed since the log was opened.
    #[must_use]
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.get()
    }

    /// `Ok` while the log runs.
    ///
    /// # Errors
    /// `Stopped` once an I/O error (or a dropped flush) stopped the log.
    pub fn check_running(&self) -> Result<(), StorageError> {
        if self.shared.stopped.get() {
            return Err(StorageError::Stopped);
        }
        Ok(())
    }

    /// A new segment starting at `first_index`, in memory only: the flush that first
    /// writes to it creates its file.
    fn segment_plan(&mut self, first_index: LogIndex) -> SegmentFile {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        let header = SegmentHeader {
            group: self.options.group,
            segment_id: id,
            first_index,
            rewrite_version: 0,
            created_ms: 0,
        };
        SegmentFile {
            id,
            path: segment_path(&self.options.directory, id),
            file: Rc::default(),
            index: OffsetIndex::new(first_index, Vec::new()),
            end_offset: SEGMENT_HEADER_SIZE_BYTES as u64,
            tail: header.encode().to_vec(),
            header,
        }
    }

    /// Drops every entry above `index` (at or above `first_index - 1`, below the last).
    fn cut(&mut self, index: LogIndex) {
        self.cache.truncate_after(index);
        while self.segments.len() > 1
            && self
                .segments
                .last()
                .is_some_and(|last| last.first_index() > index)
        {
            let segment = self.segments.pop().expect("more than one");
            self.plan.deletes.push(segment.path);
            // A cut still to be recorded was in the last segment: it goes with it.
            self.plan.truncated_after = None;
        }
        let keeper = self.segments.last_mut().expect("never empty");
        if keeper.last_index() > index {
            // Written (or being written): the next flush records the cut in this segment.
            keeper.index.truncate_after(index);
            self.plan.truncated_after = Some(
                self.plan
                    .truncated_after
                    .map_or(index, |cut| cut.min(index)),
            );
        }
    }

    fn plan_flush(&mut self, permit: glommio::sync::StaticPermit) -> Option<FlushJob> {
        if self.plan.is_empty() {
            // Whatever was staged has been flushed or cut away again.
            self.shared.durable_ticket.set(self.ticket);
            self.cache.trim(self.ticket);
            return None;
        }
        let plan = std::mem::take(&mut self.plan);
        let last = self.last_index();
        let pending: Vec<Entry> = match plan.entries_from {
            Some(from) if from <= last => self.cache.since(from).cloned().collect(),
            _ => Vec::new(),
        };
        let mut writes = Vec::new();
        let mut truncated_after = plan.truncated_after;
        let mut remaining = &pending[..];
        loop {
            let segment = self.segments.last().expect("never empty");
            let taken = self.entries_fitting(segment, remaining);
            if let Some(cut) = truncated_after {
                let replaces = taken > 0 && remaining[0].index == cut.next();
                if !replaces {
                    // Nothing for this segment starts right after the cut: write the cut.
                    let mut record = Vec::new();
                    encode_truncation(cut, &mut record);
                    let segment = self.segments.last_mut().expect("never empty");
                    writes.push(segment_write(segment, &record, &[], &self.options));
                }
                truncated_after = None;
            }
            if remaining.is_empty() {
                break;
            }
            if taken == 0 {
                let segment = self.segment_plan(remaining[0].index);
                self.segments.push(segment);
                continue;
            }
            let mut batch = Vec::new();
            encode_batch(&remaining[..taken], &mut batch);
            let segment = self.segments.last_mut().expect("never empty");
            writes.push(segment_write(
                segment,
                &batch,
                &remaining[..taken],
                &self.options,
            ));
            remaining = &remaining[taken..];
        }
        Some(FlushJob {
            guard: StopUnlessDone {
                shared: Rc::clone(&self.shared),
                done: false,
            },
            shared: Rc::clone(&self.shared),
            permit,
            ticket: self.ticket,
            directory: self.options.directory.clone(),
            deletes: plan.deletes,
            writes,
            hard_state: plan.hard_state.then_some(self.hard_state),
            configuration: if plan.configuration {
                self.configuration.clone()
            } else {
                None
            },
            sync: !self.options.unsynced_for_benchmarks_only,
            spare: self
                .options
                .zero_fill_segments
                .then(|| Rc::clone(&self.spare)),
            log_start: plan.log_start,
        })
    }

    /// How many of `entries` the segment takes in one batch: as many as fit its size and
    /// count bounds, and at least one if it holds none (an entry larger than a segment).
    fn entries_fitting(&self, segment: &SegmentFile, entries: &[Entry]) -> usize {
        let room_count =
            (self.options.segment_entries_max as usize).saturating_sub(segment.index.len());
        let mut end = segment.end_offset + BATCH_HEADER_SIZE_BYTES as u64;
        let mut taken = 0;
        for entry in entries.iter().take(room_count) {
            end += encoded_size_bytes(entry) as u64;
            if end > self.options.segment_size_bytes {
                break;
            }
            taken += 1;
        }
        if taken == 0 && segment.index.is_empty() && !entries.is_empty() {
            return 1;
        }
        taken
    }
}

/// Plans writing `batch` (holding `entries`, possibly none for a truncation record) after
/// the data of `segment`: updates where its entries are and where it ends.
fn segment_write(
    segment: &mut SegmentFile,
    batch: &[u8],
    entries: &[Entry],
    options: &SegmentLogOptions,
) -> SegmentWrite {
    let start = segment.end_offset;
    let aligned = round_down(start);
    assert_eq!(
        segment.tail.len() as u64,
        start - aligned,
        "the tail is the partial block"
    );
    let mut bytes = Vec::with_capacity(segment.tail.len() + batch.len());
    bytes.extend_from_slice(&segment.tail);
    bytes.extend_from_slice(batch);
    let mut offset = start + BATCH_HEADER_SIZE_BYTES as u64;
    for entry in entries {
        let size = encoded_size_bytes(entry);
        segment.index.push(EntryPosition {
            index: entry.index,
            term: entry.term,
            offset,
            size_bytes: u32::try_from(size).expect("entries are bounded"),
        });
        offset += size as u64;
    }
    let end = start + batch.len() as u64;
    let tail_from = usize::try_from(round_down(end) - aligned).expect("bounded by the batch");
    segment.tail = bytes[tail_from..].to_vec();
    segment.end_offset = end;
    let create = segment.file.get().is_none().then(|| SegmentCreate {
        header: segment.header.encode(),
        preallocate_bytes: options.segment_size_bytes,
    });
    SegmentWrite {
        path: segment.path.clone(),
        file: Rc::clone(&segment.file),
        create,
        offset: aligned,
        bytes,
    }
}

/// Flushes every log that has something staged, together, until all of it is durable:
/// the writes and syncs of all of them are in flight at once (one write and one
/// `fdatasync` per file per round), which is how the groups of one shard share the disk.
/// A log whose permit is taken (a flush of its own already running, or its spare segment's
/// turn) joins the next round.
///
/// # Errors
/// The first error; the logs that failed are stopped.
pub async fn flush_all(logs: &mut [&mut SegmentLog]) -> Result<(), StorageError> {
    loop {
        for log in logs.iter() {
            log.check_running()?;
        }
        if logs.iter().all(|log| log.is_durable(log.ticket)) {
            break;
        }
        let tasks: Vec<_> = logs
            .iter_mut()
            .filter_map(|log| log.flush_begin())
            .map(|job| glommio::spawn_local(job.run()))
            .collect();
        if tasks.is_empty() {
            glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
            continue;
        }
        let mut result = Ok(());
        for task in tasks {
            if let Err(error) = task.await {
                if result.is_ok() {
                    result = Err(error);
                }
            }
        }
        result?;
    }
    for log in logs.iter_mut() {
        log.cache.trim(log.shared.durable_ticket.get());
    }
    Ok(())
}

impl Drop for SegmentLog {
    fn drop(&mut self) {
        self.spare.close();
    }
}

impl LogStorage for SegmentLog {
    async fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let ticket = self.stage(entries)?;
        self.flush_through(ticket).await
    }

    async fn read(
        &self,
        start: LogIndex,
        end: LogIndex,
        into: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        self.check_running()?;
        if start < self.first_index {
            return Err(StorageError::OutOfRange { index: start });
        }
        if end > self.last_index().next() {
            let index = self.last_index().next().max(start);
            return Err(StorageError::OutOfRange { index });
        }
        let cached_from = self.cache.first_index().unwrap_or(end).max(start);
        let disk_end = end.min(cached_from);
        if start < disk_end {
            let first = self.segment_of(start).expect("start is held");
            for segment in &self.segments[first..] {
                if segment.first_index() >= disk_end {
                    break;
                }
                segment.read(start, disk_end, into).await?;
            }
        }
        if cached_from < end {
            self.cache.read(cached_from, end, into);
        }
        Ok(())
    }

    async fn truncate_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let ticket = self.stage_truncate_after(index)?;
        self.flush_through(ticket).await
    }

    async fn truncate_before(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let ticket = self.stage_truncate_before(index)?;
        self.flush_through(ticket).await
    }

    async fn hard_state_save(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        let ticket = self.stage_hard_state(hard_state)?;
        self.flush_through(ticket).await
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first_index(&self) -> LogIndex {
        self.first_index
    }

    fn last_index(&self) -> LogIndex {
        self.cache.last_index().unwrap_or_else(|| {
            self.segments
                .last()
                .expect("never empty")
                .last_index()
                .max(self.first_index.prev())
        })
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index < self.first_index.prev() || index > self.last_index() {
            return None;
        }
        if index == LogIndex::ZERO {
            return Some(Term::ZERO);
        }
        if let Some(term) = self.cache.term_at(index) {
            return Some(term);
        }
        self.segments[self.segment_of(index)?].index.term_at(index)
    }
}

impl SegmentLog {
    /// For tests and debugging: each segment's id, first index and last index.
    #[must_use]
    pub fn debug_segments(&self) -> Vec<(u64, LogIndex, LogIndex)> {
        self.segments
            .iter()
            .map(|segment| (segment.id, segment.first_index(), segment.last_index()))
            .collect()
    }

    fn segment_of(&self, index: LogIndex) -> Option<usize> {
        let position = self
            .segments
            .partition_point(|segment| segment.first_index() <= index);
        position.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, entries};
    use crate::test_support::run;
    use std::path::Path;

    fn scratch(name: &str) -> PathBuf {
        crate::test_support::scratch("segment-log", name)
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
            let last_batch =
                log.segments[0].index.positions()[5].offset - BATCH_HEADER_SIZE_BYTES as u64;
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
            let victim = log.segments[0].index.positions()[10].offset + 12;
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

    #[test]
    fn a_shard_flushes_many_logs_together_while_the_next_batches_fill() {
        let root = scratch("flush-all");
        let inside = root.clone();
        run(move || async move {
            let mut logs = Vec::new();
            for group in 0..8u64 {
                let options = SegmentLogOptions::new(inside.join(group.to_string()), group);
                logs.push(SegmentLog::open(options).await.expect("open").0);
            }
            let mut tickets = Vec::new();
            for log in &mut logs {
                tickets.push(log.stage(&entries(1, 3, 1)).expect("stage"));
            }
            let jobs: Vec<FlushJob> = logs
                .iter_mut()
                .filter_map(SegmentLog::flush_begin)
                .collect();
            assert_eq!(jobs.len(), 8);
            // While the first round is in flight: the next batches are staged and readable,
            // and no second flush of the same log can begin.
            for log in &mut logs {
                log.stage(&entries(4, 5, 1)).expect("stage");
                assert!(log.flush_begin().is_none(), "one flush per log at a time");
                assert_eq!(log.last_index(), LogIndex(5));
            }
            let tasks: Vec<_> = jobs
                .into_iter()
                .map(|job| glommio::spawn_local(job.run()))
                .collect();
            for task in tasks {
                task.await.expect("flush");
            }
            for (log, &ticket) in logs.iter().zip(&tickets) {
                assert!(log.is_durable(ticket));
                assert!(
                    !log.is_durable(ticket + 1),
                    "the second batch is not written yet"
                );
            }
            let mut refs: Vec<&mut SegmentLog> = logs.iter_mut().collect();
            flush_all(&mut refs).await.expect("flush all");
            for log in logs {
                let log = reopen(log).await;
                let mut read = Vec::new();
                log.read(LogIndex(1), LogIndex(6), &mut read)
                    .await
                    .expect("read");
                assert_eq!(read, entries(1, 5, 1));
            }
        });
        std::fs::remove_dir_all(root).expect("clean up");
    }

    #[test]
    fn segments_roll_at_the_entry_bound() {
        let directory = scratch("count-bound");
        let inside = directory.clone();
        run(move || async move {
            let options = SegmentLogOptions {
                segment_entries_max: 7,
                ..SegmentLogOptions::new(&inside, 1)
            };
            let (mut log, _) = SegmentLog::open(options).await.expect("open");
            log.append(&entries(1, 30, 1)).await.expect("append");
            log.append(&entries(31, 33, 1)).await.expect("append");
            let sizes: Vec<usize> = log.segments.iter().map(|s| s.index.len()).collect();
            assert_eq!(sizes, vec![7, 7, 7, 7, 5]);
            let log = reopen(log).await;
            assert_eq!(log.segments.len(), 5);
            assert_eq!(log.last_index(), LogIndex(33));
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn a_prefix_truncation_deletes_whole_segments_and_survives_a_restart() {
        let directory = scratch("prefix");
        let inside = directory.clone();
        run(move || async move {
            let options = SegmentLogOptions {
                segment_entries_max: 10,
                ..SegmentLogOptions::new(&inside, 1)
            };
            let (mut log, _) = SegmentLog::open(options).await.expect("open");
            log.append(&entries(1, 45, 1)).await.expect("append");
            log.truncate_before(LogIndex(25))
                .await
                .expect("truncate before");
            // 1..=10 and 11..=20 are gone; 21..=30 stays, for 24's term and 25 onwards.
            assert_eq!(segment_ids(&inside).expect("list").len(), 3);
            let log = reopen(log).await;
            assert_eq!(log.first_index(), LogIndex(25));
            assert_eq!(log.term_at(LogIndex(24)), Some(Term(1)));
            assert_eq!(log.term_at(LogIndex(23)), None);
            let mut read = Vec::new();
            assert!(log
                .read(LogIndex(24), LogIndex(26), &mut read)
                .await
                .is_err());
            log.read(LogIndex(25), LogIndex(46), &mut read)
                .await
                .expect("read");
            assert_eq!(read, entries(25, 45, 1));
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn recent_entries_are_served_from_the_tail_cache_without_a_copy() {
        let directory = scratch("tail-cache");
        let inside = directory.clone();
        run(move || async move {
            let (mut log, _) = SegmentLog::open(SegmentLogOptions::new(&inside, 1))
                .await
                .expect("open");
            let appended = entries(1, 3, 1);
            log.append(&appended).await.expect("append");
            let mut read = Vec::new();
            log.read(LogIndex(1), LogIndex(4), &mut read)
                .await
                .expect("read");
            assert_eq!(read, appended);
            let payload = |entry: &Entry| match &entry.body {
                coracle_engine::EntryBody::Command { payload } => payload.as_ptr(),
                _ => panic!("a command"),
            };
            assert_eq!(payload(&read[2]), payload(&appended[2]), "the same bytes");
            // After a restart the cache is empty: the same entries come from the disk.
            let log = reopen(log).await;
            let mut from_disk = Vec::new();
            log.read(LogIndex(1), LogIndex(4), &mut from_disk)
                .await
                .expect("read");
            assert_eq!(from_disk, appended);
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn hard_state_and_configuration_are_flushed_with_the_entries_and_reopen() {
        let directory = scratch("small-files");
        let inside = directory.clone();
        run(move || async move {
            let (mut log, _) = SegmentLog::open(SegmentLogOptions::new(&inside, 1))
                .await
                .expect("open");
            assert!(log.configuration().is_none());
            let configuration = StoredConfiguration::bootstrap(&[
                coracle_engine::ReplicaId(1),
                coracle_engine::ReplicaId(2),
                coracle_engine::ReplicaId(3),
            ]);
            let hard_state = HardState {
                term: Term(4),
                vote: Some(coracle_engine::ReplicaId(2)),
            };
            log.stage(&entries(1, 2, 4)).expect("stage");
            log.stage_hard_state(hard_state).expect("stage");
            let ticket = log
                .stage_configuration(configuration.clone())
                .expect("stage");
            assert!(!log.is_durable(ticket));
            let job = log.flush_begin().expect("work");
            job.run().await.expect("flush");
            assert!(log.is_durable(ticket));
            let log = reopen(log).await;
            assert_eq!(log.hard_state(), hard_state);
            assert_eq!(log.configuration(), Some(&configuration));
            assert_eq!(log.last_index(), LogIndex(2));
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }

    #[test]
    fn a_roll_takes_the_zero_filled_spare_and_an_unfinished_segment_is_dropped() {
        let directory = scratch("spare");
        let inside = directory.clone();
        run(move || async move {
            let options = options(&inside, 8 * 1024);
            let (mut log, _) = SegmentLog::open(options.clone()).await.expect("open");
            let spare_ready = || {
                std::fs::read_dir(&inside).expect("list").any(|item| {
                    item.expect("item")
                        .file_name()
                        .to_str()
                        .is_some_and(|name| name.ends_with(".spare"))
                })
            };
            for _ in 0..2000 {
                if spare_ready() {
                    break;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert!(spare_ready(), "a spare is prepared in the background");
            log.append(&entries(1, 2, 1)).await.expect("append");
            let first_file = log.segments[0].path.clone();
            assert!(!spare_ready(), "the first segment took the spare");
            assert_eq!(
                std::fs::metadata(&first_file).expect("segment").len(),
                8 * 1024,
                "a spare has the segment's size"
            );
            for first in (3..=400).step_by(8) {
                log.append(&entries(first, first + 7, 1))
                    .await
                    .expect("append");
            }
            assert!(log.segments.len() > 2, "rolled");
            let next_id = log.segments.last().expect("segments").id + 1;
            drop(log);
            // A crash right after the next segment was created, before its header landed.
            std::fs::write(segment_path(&inside, next_id), vec![0u8; 8 * 1024]).expect("write");
            let (log, report) = SegmentLog::open(options).await.expect("reopen");
            assert!(report.unfinished_segment_deleted);
            assert!(!segment_path(&inside, next_id).exists());
            let mut read = Vec::new();
            log.read(LogIndex(1), LogIndex(403), &mut read)
                .await
                .expect("read");
            assert_eq!(read, entries(1, 402, 1));
        });
        std::fs::remove_dir_all(directory).expect("clean up");
    }
}
