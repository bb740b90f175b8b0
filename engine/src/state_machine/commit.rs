//! What a handler receives: one committed operation with its place in the log (SPEC §E2).
//!
//! A commit is released when its handler drops it: the log entry is no longer needed to
//! rebuild the state and compaction may remove it. A state machine that keeps its state as
//! the commits that produced it (Copycat's style for maps and locks under log compaction)
//! calls [`Commit::retain`] and holds the [`Retained`] handle; the entry stays needed until
//! the last clone of the handle is dropped. The release set is what the compaction policy
//! reads.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::session::SessionId;
use crate::types::LogIndex;

/// Entries still needed, with how many handles hold each. Shared by the host and every
/// retained commit (one thread: the state machine's).
#[derive(Clone, Debug, Default)]
pub struct Retention {
    held: Rc<RefCell<BTreeMap<LogIndex, u32>>>,
}

impl Retention {
    fn hold(&self, index: LogIndex) {
        *self.held.borrow_mut().entry(index).or_insert(0) += 1;
    }

    fn release(&self, index: LogIndex) {
        let mut held = self.held.borrow_mut();
        let count = held
            .get_mut(&index)
            .expect("a retained index is held until its last handle drops");
        *count -= 1;
        if *count == 0 {
            held.remove(&index);
        }
    }

    /// True if no retained commit holds the entry at `index`.
    #[must_use]
    pub fn is_released(&self, index: LogIndex) -> bool {
        !self.held.borrow().contains_key(&index)
    }

    /// The indexes still held, ascending.
    #[must_use]
    pub fn held_indexes(&self) -> Vec<LogIndex> {
        self.held.borrow().keys().copied().collect()
    }
}

/// One committed command (or, for a query, the state it reads at).
#[derive(Debug)]
pub struct Commit<T> {
    index: LogIndex,
    time_ms: u64,
    session: SessionId,
    operation: T,
    retention: Option<Retention>,
}

impl<T> Commit<T> {
    pub(crate) fn new(
        index: LogIndex,
        time_ms: u64,
        session: SessionId,
        operation: T,
        retention: Option<Retention>,
    ) -> Commit<T> {
        Commit {
            index,
            time_ms,
            session,
            operation,
            retention,
        }
    }

    /// The command's log index: unique, the same on every server. A query sees the index
    /// it ran at (the server's last applied).
    #[must_use]
    pub fn index(&self) -> LogIndex {
        self.index
    }

    /// The state machine's clock: the leader's timestamp, never going back.
    #[must_use]
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// The session that submitted it.
    #[must_use]
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The operation.
    #[must_use]
    pub fn operation(&self) -> &T {
        &self.operation
    }

    /// The operation, consuming the commit (which is then released).
    #[must_use]
    pub fn into_operation(self) -> T {
        self.operation
    }

    /// Keeps the entry needed until the returned handle (and every clone) is dropped. On a
    /// query's commit this holds nothing: queries are not in the log.
    #[must_use]
    pub fn retain(self) -> Retained<T> {
        if let Some(retention) = &self.retention {
            retention.hold(self.index);
        }
        Retained {
            inner: Rc::new(RetainedInner { commit: self }),
        }
    }
}

#[derive(Debug)]
struct RetainedInner<T> {
    commit: Commit<T>,
}

impl<T> Drop for RetainedInner<T> {
    fn drop(&mut self) {
        if let Some(retention) = &self.commit.retention {
            retention.release(self.commit.index);
        }
    }
}

/// A commit kept past its handler; cloning shares it (Copycat's `acquire`), and the entry
/// is released when the last clone drops (Copycat's `release`/`close`).
#[derive(Debug)]
pub struct Retained<T> {
    inner: Rc<RetainedInner<T>>,
}

impl<T> Clone for Retained<T> {
    fn clone(&self) -> Self {
        Retained {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<T> Retained<T> {
    /// The commit.
    #[must_use]
    pub fn commit(&self) -> &Commit<T> {
        &self.inner.commit
    }

    /// How many handles share it (Copycat's `references`).
    #[must_use]
    pub fn references(&self) -> usize {
        Rc::strong_count(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_released_when_the_last_handle_drops() {
        let retention = Retention::default();
        let commit = Commit::new(LogIndex(7), 1, SessionId(1), "put", Some(retention.clone()));
        assert!(retention.is_released(LogIndex(7)), "not retained yet");
        let first = commit.retain();
        let second = first.clone();
        assert_eq!(second.references(), 2);
        assert!(!retention.is_released(LogIndex(7)));
        drop(first);
        assert!(!retention.is_released(LogIndex(7)));
        drop(second);
        assert!(retention.is_released(LogIndex(7)));
        assert!(retention.held_indexes().is_empty());
    }

    #[test]
    fn two_commits_at_different_indexes_are_tracked_apart() {
        let retention = Retention::default();
        let a = Commit::new(LogIndex(1), 0, SessionId(1), 1u8, Some(retention.clone())).retain();
        let b = Commit::new(LogIndex(2), 0, SessionId(1), 2u8, Some(retention.clone())).retain();
        assert_eq!(retention.held_indexes(), vec![LogIndex(1), LogIndex(2)]);
        drop(a);
        assert_eq!(retention.held_indexes(), vec![LogIndex(2)]);
        assert_eq!(*b.commit().operation(), 2);
    }
}
