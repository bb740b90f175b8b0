//! A zero-filled file made ready in the background for the next segment.
//!
//! A segment preallocated with `fallocate` is made of unwritten extents on ext4: the first
//! write into each part converts it, and the `fdatasync` after it then commits that
//! metadata too. Measured here (`coracle-bench log --mode append --entry-size 4KiB`, same
//! minute): a 4 KiB append-and-sync p50 of 206 µs in fallocated segments against 152 µs in
//! segments written beforehand, with the disk's own written-file floor at 150–166 µs.
//! So a log writes its next segment full of zeroes ahead of time and renames it into place
//! when it rolls.
//!
//! Zero-filling costs disk bandwidth, which a streaming log needs for itself, while a log
//! that streams (flushes of 512 KiB and more) hardly pays for unwritten extents: one
//! conversion per megabytes. So the preparation waits while its log streams, and otherwise
//! writes 512 KiB at a time between two of the log's flushes. A log that
//! rolls before its spare is ready falls back to `fallocate` — it never waits for a spare.
//! A spare is a convenience, not state: open deletes those of other processes, and a log
//! removes its own when it is dropped.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glommio::io::OpenOptions;

use crate::flush_job::FlushShared;
use crate::segment_file::round_up;

const SPARE_SUFFIX: &str = ".spare";
const PREPARING_SUFFIX: &str = ".spare.tmp";
/// Zeroes written (and synced) per turn. 512 KiB: 64 turns per 32 MiB segment, each
/// delaying one flush by about 2 ms — under 1% of 4 KiB appends, so p99 stays where it
/// was (128 KiB turns delayed 3% of them by ~0.7 ms and doubled p99).
const CHUNK_BYTES: usize = 512 * 1024;
/// A log whose last flush wrote this much is streaming: its spare waits.
const STREAMING_FLUSH_BYTES: u64 = 512 * 1024;
/// How long a waiting preparation sleeps before looking again.
const BACK_OFF: Duration = Duration::from_millis(5);
/// A log that completed no flush for this long idles: its spare may write at once.
const IDLE: Duration = Duration::from_millis(1);

/// Distinguishes the spares of logs opened one after the other in one process.
static NEXT_SPARE_ID: AtomicU64 = AtomicU64::new(0);

/// The spare of one log: at most one, ready or being prepared.
#[derive(Default)]
pub struct Spare {
    /// The log's flush state, once a preparation started.
    shared: RefCell<Option<Rc<FlushShared>>>,
    ready: RefCell<Option<PathBuf>>,
    preparing: Cell<bool>,
    /// Set when the log closes: the preparation stops and removes its file.
    closed: Cell<bool>,
}

impl Spare {
    /// Takes the ready spare, if there is one.
    pub fn take(&self) -> Option<PathBuf> {
        self.ready.borrow_mut().take()
    }

    /// The log is closing: removes a ready spare, and makes a preparation in progress stop
    /// and remove its own file. (No one else removes a spare of this process while it may be
    /// being opened: glommio panics if a file vanishes while `dma_open` runs.)
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(shared) = self.shared.borrow().as_ref() {
            // Wake a preparation waiting for a turn: it sees the log closed and stops.
            release_handoff(shared);
            shared.handoff_signal.signal(1);
        }
        if let Some(path) = self.ready.borrow_mut().take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Starts preparing a spare of `size_bytes` in `directory` in the background, unless
    /// one is ready or being prepared.
    pub fn replenish(self: &Rc<Self>, directory: &Path, size_bytes: u64, shared: &Rc<FlushShared>) {
        if self.closed.get() || self.preparing.get() || self.ready.borrow().is_some() {
            return;
        }
        self.preparing.set(true);
        *self.shared.borrow_mut() = Some(Rc::clone(shared));
        let id = NEXT_SPARE_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{id}", std::process::id());
        let path = directory.join(format!("{name}{SPARE_SUFFIX}"));
        let preparing = directory.join(format!("{name}{PREPARING_SUFFIX}"));
        let spare = Rc::clone(self);
        let shared = Rc::clone(shared);
        glommio::spawn_local(async move {
            let prepared = prepare(&preparing, &path, size_bytes, &shared, &spare.closed).await;
            spare.preparing.set(false);
            if prepared.is_ok() && spare.closed.get() {
                let _ = std::fs::remove_file(&path);
            } else if prepared.is_ok() {
                *spare.ready.borrow_mut() = Some(path);
            } else {
                // Best effort: without a spare the next roll uses `fallocate`.
                let _ = std::fs::remove_file(&preparing);
            }
        })
        .detach();
    }
}

async fn prepare(
    preparing: &Path,
    path: &Path,
    size_bytes: u64,
    shared: &Rc<FlushShared>,
    closed: &Cell<bool>,
) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(preparing)
        .await?;
    let mut at = 0;
    while at < round_up(size_bytes) {
        // Small flushes pay for unwritten extents in latency, large ones hardly (one
        // conversion per megabytes): write between the flushes of a log that writes little
        // at a time, and keep away from one that streams.
        if shared.stopped.get() || closed.get() {
            release_handoff(shared);
            return Err(std::io::Error::other("the log stopped or closed"));
        }
        if shared.last_flush_bytes.get() >= STREAMING_FLUSH_BYTES {
            release_handoff(shared);
            glommio::timer::sleep(BACK_OFF).await;
            continue;
        }
        // Take turns: wait for the flush in flight to hand its permit over when it ends
        // (see `FlushShared::handoff`), so that the next flush waits for one chunk. Never
        // take a released permit directly — glommio's semaphore gives it to whoever asks
        // first, and the preparation would then keep it from a waiting flush for its
        // whole length. Only a log that flushed nothing for IDLE is written to at once.
        shared.spare_waiting.set(true);
        let handed = futures_lite::future::or(
            async { shared.handoff_signal.acquire(1).await.is_ok() },
            async {
                glommio::timer::sleep(IDLE).await;
                false
            },
        )
        .await;
        let turn = if handed {
            // Empty after a signal that found no one waiting (the log closing, or a
            // hand-over that came just after the idle wait ended and was released).
            let Some(turn) = shared.handoff.borrow_mut().take() else {
                continue;
            };
            Some(turn)
        } else {
            // Idle: write without the permit, so that a flush that begins meanwhile is
            // not refused (it shares the disk with one chunk at most).
            release_handoff(shared);
            None
        };
        if shared.stopped.get() || closed.get() {
            return Err(std::io::Error::other("the log stopped or closed"));
        }
        // Whole blocks, and no further than the segment's size (rounded up to a block).
        let remaining = usize::try_from(round_up(size_bytes) - at).unwrap_or(CHUNK_BYTES);
        let length = remaining.min(CHUNK_BYTES);
        let mut zeros = file.alloc_dma_buffer(length);
        zeros.as_bytes_mut().fill(0);
        file.write_at(zeros, at).await?;
        // Sync each chunk within its turn: the filesystem's journal is shared, and a spare
        // synced once at the end made the append syncing beside it wait ~35 ms here.
        file.fdatasync().await?;
        drop(turn);
        at += length as u64;
    }
    file.fdatasync().await?;
    file.close().await?;
    std::fs::rename(preparing, path)
}

/// Gives back a permit a flush handed over while the preparation was not taking turns.
fn release_handoff(shared: &FlushShared) {
    shared.spare_waiting.set(false);
    drop(shared.handoff.borrow_mut().take());
}

/// Deletes spares (ready or half made) left in `directory` by earlier processes. Spares of
/// this process belong to logs that remove their own when they close.
///
/// # Errors
/// The directory cannot be listed, or a spare cannot be removed.
pub fn remove_spares(directory: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    // Spares of this process belong to logs that remove their own when they close; one of
    // them may be inside `dma_open` right now, which panics if its file vanishes.
    let ours = format!("{}-", std::process::id());
    for item in std::fs::read_dir(directory)? {
        let item = item?;
        let is_spare = item.file_name().to_str().is_some_and(|name| {
            (name.ends_with(SPARE_SUFFIX) || name.ends_with(PREPARING_SUFFIX))
                && !name.starts_with(&ours)
        });
        if is_spare {
            std::fs::remove_file(item.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
