//! Identifiers of clients and sessions.

use std::fmt;

use crate::types::LogIndex;

/// A client's identity, chosen by the client (Copycat used a random UUID). Registering
/// again with the same id expires the client's older session (SPEC §B1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u128);

/// A session: the index of the entry that registered it, so every server derives the same
/// id without coordination (SPEC §B5).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The index of the register entry.
    #[must_use]
    pub fn index(self) -> LogIndex {
        LogIndex(self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {:032x}", self.0)
    }
}
