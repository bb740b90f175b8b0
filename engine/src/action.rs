//! The effects the core asks its driver to carry out, in emission order.

use crate::entry::Entry;
use crate::message::Message;
use crate::types::{LogIndex, PersistId, ReplicaId, Term};

/// Most actions one input may emit before the driver drains the buffer.
pub const ACTIONS_MAX: usize = 1 << 16;

/// Term and vote: what must survive a crash so that a server never votes twice in a term.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this server has seen.
    pub term: Term,
    /// Whom it voted for in `term`, if anyone.
    pub vote: Option<crate::types::ReplicaId>,
}

/// One effect.
#[derive(Clone, Debug)]
pub enum Action {
    /// Make durable, in order after every earlier `Persist`: the hard state (if given), then
    /// the entries. If `entries` starts at or below the last entry already written, the
    /// stored log is first truncated to `entries[0].index - 1`. When this and every earlier
    /// persist are durable, call `Replica::on_persisted(id)`.
    Persist {
        /// Names this persist for `on_persisted`.
        id: PersistId,
        /// New term or vote, if either changed.
        hard_state: Option<HardState>,
        /// Entries to write (possibly replacing a conflicting suffix).
        entries: Vec<Entry>,
    },
    /// Send a message; the network may lose, delay, duplicate or reorder it.
    Send {
        /// The receiver.
        to: ReplicaId,
        /// The message.
        message: Message,
    },
    /// These committed entries are next to apply, in order; call `on_applied` afterwards.
    Apply {
        /// Consecutive committed entries.
        entries: Vec<Entry>,
    },
    /// A server's role or leader changed (for listeners and traces).
    RoleChanged {
        /// The new role.
        role: crate::replica::Role,
        /// The term it holds in.
        term: Term,
        /// The leader known, if any.
        leader: Option<ReplicaId>,
    },
    /// The commit index advanced (for metrics and clients waiting on an index).
    Committed {
        /// The new commit index.
        index: LogIndex,
    },
    /// A majority of voters acknowledged this leader's confirmation round `round` (or a
    /// later one) of `term`: every round through `round` is confirmed, so a caller of
    /// `Replica::confirm_leadership` given a round at most `round` knows this server still
    /// led at some time after its call (SPEC §D5). Emitted only when the confirmed round
    /// advances past some caller's round, and never for a round of an older term. If the
    /// leader steps down first, nothing is emitted for the rounds still pending: the driver
    /// sees `RoleChanged` and must fail the reads waiting on them itself.
    LeadershipConfirmed {
        /// The leader's term.
        term: Term,
        /// The highest confirmed round.
        round: u64,
    },
    /// The answer to a membership request this server sent with `request_membership`.
    MembershipOutcome {
        /// The id given to `request_membership`.
        request_id: u64,
        /// The committed configuration, or why the change was refused.
        outcome: Result<crate::membership::Configuration, crate::membership::ConfigurationError>,
    },
}

/// A caller-owned buffer that inputs append actions to; the driver drains it.
#[derive(Debug, Default)]
pub struct Actions {
    list: Vec<Action>,
}

impl Actions {
    /// An empty buffer.
    #[must_use]
    pub fn new() -> Actions {
        Actions {
            list: Vec::with_capacity(64),
        }
    }

    /// Appends one action.
    pub fn push(&mut self, action: Action) {
        assert!(self.list.len() < ACTIONS_MAX, "driver must drain actions");
        self.list.push(action);
    }

    /// Takes every action out, leaving the buffer empty (and its capacity for reuse).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.list.drain(..)
    }

    /// The actions emitted so far.
    #[must_use]
    pub fn as_slice(&self) -> &[Action] {
        &self.list
    }

    /// Number of actions waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True if no action is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
