//! Newtypes for the identifiers and positions the core reasons about.

use std::fmt;

/// A Raft term. Terms only grow; a replica that sees a larger term steps down.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

impl Term {
    /// The term before any election.
    pub const ZERO: Term = Term(0);

    /// The term that follows this one.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0.checked_add(1).expect("terms never reach u64::MAX"))
    }
}

/// The position of an entry in the log. Index 0 is the empty prefix; the first entry is 1.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The position before the first entry.
    pub const ZERO: LogIndex = LogIndex(0);

    /// The index after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(
            self.0
                .checked_add(1)
                .expect("log indexes never reach u64::MAX"),
        )
    }

    /// The index before this one, saturating at zero.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// The identity of a server in a Raft group (in Copycat, a hash of the server address).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaId(pub u64);

/// Names one `Persist` action; `on_persisted(id)` says it and every earlier one are durable.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);

/// Time as the driver passes it in. The core never reads a clock.
///
/// `monotonic_ms` drives timers and never goes back; `wall_ms` is only stamped into
/// entries written by a leader (state-machine time is kept monotonic separately).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Time {
    /// Milliseconds on a clock that never jumps (drives elections and heartbeats).
    pub monotonic_ms: u64,
    /// Milliseconds since the Unix epoch on the server's wall clock (may jump, may drift).
    pub wall_ms: u64,
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
