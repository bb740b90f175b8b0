//! The sessions every server tracks by applying the log (SPEC §B4, §C4, §F4, §I).
//!
//! All of this is derived from committed entries only, so every server holds the same
//! sessions at the same index. Per session: its state, the log time it last showed life,
//! the command sequence applied so far with the outputs the client may still ask for again,
//! commands that arrived ahead of a gap, and the event batches the client has not
//! acknowledged.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::session::{ApplicationError, ClientId, EventBatch, SessionId};
use crate::types::LogIndex;

/// Commands held back by a gap in one session's sequence (a client pipelines at most its
/// pending-operation cap, so more means a faulty client).
pub const HELD_COMMANDS_MAX: usize = 1 << 12;
/// Unacknowledged event batches kept per session; the oldest is dropped beyond it, and a
/// client that falls that far behind sees a gap it cannot fill (it resets and goes on).
pub const EVENT_BATCHES_MAX: usize = 1 << 14;

/// A session's state as the servers see it (SPEC §B4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Alive.
    Open,
    /// Silent longer than its timeout in log time: suspect, not yet expired (SPEC §I1).
    Unstable,
}

/// A command's result, kept until the client acknowledges it (SPEC §C4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    /// The index of the command's entry.
    pub index: LogIndex,
    /// The session's last event batch before the command ran.
    pub event_index: LogIndex,
    /// What the state machine returned.
    pub output: Result<Bytes, ApplicationError>,
}

/// A command that arrived ahead of its session's next sequence number.
#[derive(Clone, Debug)]
pub(crate) struct HeldCommand {
    pub index: LogIndex,
    /// Empty for a no-op.
    pub operation: Option<Bytes>,
}

/// One open session.
#[derive(Clone, Debug)]
pub struct ServerSession {
    id: SessionId,
    client: ClientId,
    timeout_ms: u64,
    pub(crate) state: SessionState,
    pub(crate) last_active_ms: u64,
    pub(crate) last_active_index: LogIndex,
    pub(crate) command_sequence: u64,
    pub(crate) command_ack: u64,
    pub(crate) held: BTreeMap<u64, HeldCommand>,
    pub(crate) results: BTreeMap<u64, CommandResult>,
    pub(crate) event_index: LogIndex,
    pub(crate) event_ack: LogIndex,
    pub(crate) batches: VecDeque<EventBatch>,
}

impl ServerSession {
    pub(crate) fn new(id: SessionId, client: ClientId, timeout_ms: u64, now_ms: u64) -> Self {
        ServerSession {
            id,
            client,
            timeout_ms,
            state: SessionState::Open,
            last_active_ms: now_ms,
            last_active_index: id.index(),
            command_sequence: 0,
            command_ack: 0,
            held: BTreeMap::new(),
            results: BTreeMap::new(),
            // A client's event index starts at its session id (SPEC §F2).
            event_index: id.index(),
            event_ack: id.index(),
            batches: VecDeque::new(),
        }
    }

    /// The session's id (its register entry's index).
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The client that registered it.
    #[must_use]
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// Its timeout.
    #[must_use]
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Open or suspect.
    #[must_use]
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Log time of its last register, keep-alive or command.
    #[must_use]
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms
    }

    /// Index of its last register, keep-alive or command entry.
    #[must_use]
    pub fn last_active_index(&self) -> LogIndex {
        self.last_active_index
    }

    /// The highest command sequence applied.
    #[must_use]
    pub fn command_sequence(&self) -> u64 {
        self.command_sequence
    }

    /// The session's last event batch.
    #[must_use]
    pub fn event_index(&self) -> LogIndex {
        self.event_index
    }

    /// The highest batch the client acknowledged.
    #[must_use]
    pub fn event_ack(&self) -> LogIndex {
        self.event_ack
    }

    /// Event batches after `index`, oldest first (to resend after a reset or reconnect).
    pub fn batches_after(&self, index: LogIndex) -> impl Iterator<Item = &EventBatch> {
        self.batches
            .iter()
            .filter(move |batch| batch.event_index > index)
    }

    /// The cached result of a command, if the client may still ask for it.
    #[must_use]
    pub fn result(&self, sequence: u64) -> Option<&CommandResult> {
        self.results.get(&sequence)
    }

    /// Results cached (for tests and metrics).
    #[must_use]
    pub fn results_count(&self) -> usize {
        self.results.len()
    }

    /// Event batches kept (for tests and metrics).
    #[must_use]
    pub fn batches_count(&self) -> usize {
        self.batches.len()
    }

    /// Forgets what the client acknowledged: results through `command_sequence` and
    /// batches through `event_index` (SPEC §C4, §F4).
    pub(crate) fn acknowledge(&mut self, command_sequence: u64, event_index: LogIndex) {
        // A client never acknowledges a command it has not seen applied.
        let command_sequence = command_sequence.min(self.command_sequence);
        if command_sequence > self.command_ack {
            self.command_ack = command_sequence;
            self.results = self.results.split_off(&(command_sequence + 1));
        }
        let event_index = event_index.min(self.event_index);
        if event_index > self.event_ack {
            self.event_ack = event_index;
            while self
                .batches
                .front()
                .is_some_and(|batch| batch.event_index <= event_index)
            {
                self.batches.pop_front();
            }
        }
    }

    /// Records a batch published at `index`; returns it as sent (previous index raised to
    /// what the client acknowledged, SPEC §F1).
    pub(crate) fn push_batch(&mut self, mut batch: EventBatch) -> EventBatch {
        assert!(
            batch.event_index > self.event_index,
            "batches in index order"
        );
        batch.previous_index = self.event_index;
        self.event_index = batch.event_index;
        if self.batches.len() == EVENT_BATCHES_MAX {
            self.batches.pop_front();
        }
        self.batches.push_back(batch.clone());
        batch
    }
}

/// Every open session, by id and by client.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    by_id: BTreeMap<SessionId, ServerSession>,
    by_client: BTreeMap<ClientId, SessionId>,
}

impl Sessions {
    /// The session with this id, if open.
    #[must_use]
    pub fn get(&self, id: SessionId) -> Option<&ServerSession> {
        self.by_id.get(&id)
    }

    /// The open session of a client.
    #[must_use]
    pub fn of_client(&self, client: ClientId) -> Option<&ServerSession> {
        self.by_client
            .get(&client)
            .and_then(|id| self.by_id.get(id))
    }

    /// Open sessions in id order.
    pub fn iter(&self) -> impl Iterator<Item = &ServerSession> {
        self.by_id.values()
    }

    /// How many are open.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True if none is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub(crate) fn get_mut(&mut self, id: SessionId) -> Option<&mut ServerSession> {
        self.by_id.get_mut(&id)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut ServerSession> {
        self.by_id.values_mut()
    }

    pub(crate) fn insert(&mut self, session: ServerSession) {
        self.by_client.insert(session.client, session.id);
        let previous = self.by_id.insert(session.id, session);
        assert!(previous.is_none(), "a session id is a unique log index");
    }

    pub(crate) fn remove(&mut self, id: SessionId) -> Option<ServerSession> {
        let session = self.by_id.remove(&id)?;
        if self.by_client.get(&session.client) == Some(&id) {
            self.by_client.remove(&session.client);
        }
        Some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(index: u64) -> EventBatch {
        EventBatch {
            session: SessionId(1),
            event_index: LogIndex(index),
            previous_index: LogIndex::ZERO,
            events: Vec::new(),
        }
    }

    #[test]
    fn batches_chain_and_acknowledgements_free_them() {
        let mut session = ServerSession::new(SessionId(1), ClientId(9), 5_000, 0);
        assert_eq!(session.push_batch(batch(4)).previous_index, LogIndex(1));
        assert_eq!(session.push_batch(batch(7)).previous_index, LogIndex(4));
        session.acknowledge(0, LogIndex(4));
        assert_eq!(session.batches_count(), 1);
        assert_eq!(session.batches_after(LogIndex(1)).count(), 1);
        session.acknowledge(0, LogIndex(100));
        assert_eq!(
            session.event_ack(),
            LogIndex(7),
            "never past what was published"
        );
        assert_eq!(session.batches_count(), 0);
    }

    #[test]
    fn results_go_once_acknowledged_and_never_past_the_applied_sequence() {
        let mut session = ServerSession::new(SessionId(1), ClientId(9), 5_000, 0);
        for sequence in 1..=3 {
            session.command_sequence = sequence;
            session.results.insert(
                sequence,
                CommandResult {
                    index: LogIndex(sequence + 1),
                    event_index: LogIndex(1),
                    output: Ok(Bytes::new()),
                },
            );
        }
        session.acknowledge(2, LogIndex::ZERO);
        assert!(session.result(2).is_none());
        assert!(session.result(3).is_some());
        session.acknowledge(10, LogIndex::ZERO);
        assert_eq!(session.command_ack, 3);
        assert_eq!(session.results_count(), 0);
    }

    #[test]
    fn a_newer_session_of_the_same_client_replaces_the_lookup() {
        let mut sessions = Sessions::default();
        sessions.insert(ServerSession::new(SessionId(1), ClientId(9), 5_000, 0));
        sessions.insert(ServerSession::new(SessionId(5), ClientId(9), 5_000, 0));
        assert_eq!(
            sessions.of_client(ClientId(9)).map(ServerSession::id),
            Some(SessionId(5))
        );
        sessions.remove(SessionId(1));
        assert_eq!(
            sessions.of_client(ClientId(9)).map(ServerSession::id),
            Some(SessionId(5))
        );
        assert_eq!(sessions.len(), 1);
    }
}
