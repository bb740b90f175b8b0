//! The contract every durable log of one Raft group implements.

use coracle_engine::{Entry, HardState, LogIndex, Term};

use crate::error::StorageError;

/// Durable log of one Raft group on one shard: `MemLog` (tests, simulator) and the segment
/// log (glommio direct I/O), both checked by [`crate::conformance`].
///
/// Contract: writes complete in order and leave no holes; `append` returns once the entries
/// are durable; after `truncate_after(i)` no entry above `i` is ever read again, and after
/// `truncate_before(i)` none below `i`. After an I/O error every call fails with
/// `StorageError::Stopped` (fail-stop).
#[allow(async_fn_in_trait)] // Deliberately not Send: one executor per core.
pub trait LogStorage {
    /// Appends consecutive entries. If the first is at or below the last index, the stored
    /// suffix from there is replaced (a follower's conflicting tail). Returns once durable.
    async fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    /// Reads entries `start..end` (end exclusive) into `into`, in order.
    async fn read(
        &self,
        start: LogIndex,
        end: LogIndex,
        into: &mut Vec<Entry>,
    ) -> Result<(), StorageError>;

    /// Drops every entry above `index`, durably.
    async fn truncate_after(&mut self, index: LogIndex) -> Result<(), StorageError>;

    /// Drops every entry below `index` (it was compacted or is covered by a snapshot).
    async fn truncate_before(&mut self, index: LogIndex) -> Result<(), StorageError>;

    /// Stores term and vote durably (atomically: the old or the new, never a mix).
    async fn hard_state_save(&mut self, hard_state: HardState) -> Result<(), StorageError>;

    /// The last hard state saved.
    fn hard_state(&self) -> HardState;

    /// Index of the first entry held (`last_index + 1` when empty).
    fn first_index(&self) -> LogIndex;

    /// Index of the last entry held (`first_index - 1` when empty).
    fn last_index(&self) -> LogIndex;

    /// Term of the entry at `index`, if held; `Some(Term::ZERO)` at index zero of a log
    /// that starts at one.
    fn term_at(&self, index: LogIndex) -> Option<Term>;
}

/// Checks that `entries` may be appended to a log holding `first_index..=last_index`:
/// consecutive, starting no later than `last_index + 1` and not before `first_index`.
///
/// # Errors
/// `NotContiguous`, naming the first index out of place.
pub fn check_append(
    entries: &[Entry],
    first_index: LogIndex,
    last_index: LogIndex,
) -> Result<(), StorageError> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    let next = last_index.next();
    if first.index > next || first.index < first_index {
        return Err(StorageError::NotContiguous {
            expected_at_most: next,
            got: first.index,
        });
    }
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index.next() {
            let expected_at_most = pair[0].index.next();
            return Err(StorageError::NotContiguous {
                expected_at_most,
                got: pair[1].index,
            });
        }
    }
    Ok(())
}
