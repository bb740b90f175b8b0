//! A zero-filled file made ready in the background for the next segment.
//!
//! A segment preallocated with `fallocate` is made of unwritten extents on ext4: the first
//! write into each part converts it, and the `fdatasync` after it then commits that
//! metadata too. Measured here (`coracle-bench log --mode append --entry-size 4KiB`): a
//! 4 KiB append-and-sync p50 of 253 µs in a fallocated segment against 194 µs in one whose
//! blocks were written beforehand, with the disk's own written-file floor at 143–158 µs.
//! So a log writes its next segment full of zeroes ahead of time and renames it into place
//! when it rolls.
//!
//! Zero-filling costs disk bandwidth, which a busy log needs for itself: the preparation
//! writes 1 MiB at a time and waits while a flush of its log is in flight. A log that rolls
//! before its spare is ready falls back to `fallocate` — it never waits for a spare. A spare
//! is a convenience, not state: open deletes any it finds.

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
const CHUNK_BYTES: usize = 1024 * 1024;
/// How long the preparation waits before looking again when a flush is in flight.
const BACK_OFF: Duration = Duration::from_millis(1);

/// Distinguishes the spares of logs opened one after the other in one process.
static NEXT_SPARE_ID: AtomicU64 = AtomicU64::new(0);

/// The spare of one log: at most one, ready or being prepared.
#[derive(Default)]
pub struct Spare {
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
    shared: &FlushShared,
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
        while shared.permit.available() == 0 && !shared.stopped.get() {
            glommio::timer::sleep(BACK_OFF).await;
        }
        if shared.stopped.get() || closed.get() {
            return Err(std::io::Error::other("the log stopped or closed"));
        }
        // Whole blocks, and no further than the segment's size (rounded up to a block).
        let remaining = usize::try_from(round_up(size_bytes) - at).unwrap_or(CHUNK_BYTES);
        let length = remaining.min(CHUNK_BYTES);
        let mut zeros = file.alloc_dma_buffer(length);
        zeros.as_bytes_mut().fill(0);
        file.write_at(zeros, at).await?;
        at += length as u64;
    }
    file.fdatasync().await?;
    file.close().await?;
    std::fs::rename(preparing, path)
}

/// Deletes spares (ready or half made) left in `directory` by earlier processes. Spares of
/// this process belong to logs that remove their own when they close.
///
/// # Errors
/// The directory cannot be listed, or a spare cannot be removed.
pub fn remove_spares(directory: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for item in std::fs::read_dir(directory)? {
        let item = item?;
        let is_spare = item
            .file_name()
            .to_str()
            .is_some_and(|name| name.ends_with(SPARE_SUFFIX) || name.ends_with(PREPARING_SUFFIX));
        if is_spare {
            std::fs::remove_file(item.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
