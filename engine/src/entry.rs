//! Log entries as the core sees them (SPEC §H5).

use bytes::Bytes;

use crate::membership::Member;
use crate::types::{LogIndex, Term};

/// One log entry. Payloads are `Bytes`, so copies share one buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log.
    pub index: LogIndex,
    /// Term of the leader that wrote it.
    pub term: Term,
    /// The writing leader's wall-clock time in ms (never read by the core from a clock).
    pub timestamp_ms: u64,
    /// What the entry holds.
    pub body: EntryBody,
}

/// The kinds of entry the core writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryBody {
    /// The no-op a new leader writes first; configuration changes wait for it to commit.
    Initialize,
    /// A new membership, effective as soon as it is written.
    Configuration {
        /// Members sorted by id.
        members: Vec<Member>,
    },
    /// An opaque state-machine command.
    Command {
        /// The command as the client encoded it.
        payload: Bytes,
    },
}

impl Entry {
    /// The kind of entry, for traces and metrics.
    #[must_use]
    pub fn kind(&self) -> EntryKind {
        match self.body {
            EntryBody::Initialize => EntryKind::Initialize,
            EntryBody::Configuration { .. } => EntryKind::Configuration,
            EntryBody::Command { .. } => EntryKind::Command,
        }
    }

    /// Approximate encoded size in bytes, used to bound append messages.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        const ENTRY_HEADER_SIZE_BYTES: usize = 40;
        const MEMBER_SIZE_BYTES: usize = 24;
        ENTRY_HEADER_SIZE_BYTES
            + match &self.body {
                EntryBody::Initialize => 0,
                EntryBody::Configuration { members } => members.len() * MEMBER_SIZE_BYTES,
                EntryBody::Command { payload } => payload.len(),
            }
    }
}

/// Entry kinds, numbered as Copycat's serializer ids (SPEC §H5).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Copycat id −39.
    Initialize,
    /// Copycat id −37.
    Configuration,
    /// Copycat id −36.
    Command,
}
