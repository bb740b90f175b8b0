//! Operations on their way to the cluster: sequence numbers, what goes out next, and what
//! goes out again (SPEC §C3, §D2).
//!
//! An operation stays here from submission until the server answers it. It is either in
//! flight (as one request id) or waiting to be sent; sending happens in submission order
//! and stops at the first operation that must wait, so commands reach the leader in
//! sequence order and a query never overtakes the command it must observe.
//!
//! - **Sequences.** Commands are numbered 1, 2, 3, ... per session; a command with
//!   consistency NONE carries 0 and is neither ordered nor deduplicated (a retry may apply
//!   twice). A query carries the sequence of the last command submitted before it.
//! - **Failover.** When the connection fails, everything in flight is sent again on the
//!   next server with the *same* sequence numbers: the leader applies each once.
//! - **Gaps.** `Command { last_sequence }` says the leader is missing a command after
//!   `last_sequence`. Every pending command after it goes again, in order, and the requests
//!   it was in flight as are withdrawn: their answers (the rest of the same burst of errors)
//!   are ignored, so a burst resubmits each command once. (A failed command at or below
//!   `last_sequence` was applied but its output is gone: it completes with the error.) If the client's own answered sequence is *ahead* of
//!   `last_sequence`, the leader is new and behind: commands wait until a keep-alive
//!   carrying the answered sequence has reset it (Copycat #282). Repeated gap errors with
//!   no command answered in between back off 1, 1, 2, 3, 5 s.
//! - **No-op fillers.** A command that fails for good (an internal error: neither a session
//!   error nor a retryable one) completes with that error, but its sequence number has to
//!   reach the log or every later command would wait on the gap. It is sent again with an
//!   *empty* operation, which the server logs as `LogOperation::NoOp` (the wire has no
//!   no-op request). A filler that fails again backs off 1, 1, 2, 3, 5 s: a broken server
//!   cannot make the client spin.
//! - **A new session** (recovery) renumbers every pending command 1, 2, 3, ... in order
//!   and drops fillers: the new session has no gap to fill.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::client::action::OperationId;
use crate::client::strategies::retry_delay_ms;
use crate::session::{CommandConsistency, QueryConsistency, RequestBody, SessionId};
use crate::types::LogIndex;

/// What kind of operation is pending.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// A command.
    Command(CommandConsistency),
    /// A query.
    Query(QueryConsistency),
}

/// One pending operation.
#[derive(Clone, Debug)]
pub struct PendingOperation {
    /// Command or query, and how consistent.
    pub kind: OperationKind,
    operation: Bytes,
    /// A command's sequence (0 for NONE); a query's last command sequence before it.
    sequence: u64,
    /// The user's outcome is settled; this only fills the sequence number.
    filler: bool,
    /// The request id it is in flight as.
    request: Option<u64>,
    not_before_ms: u64,
    /// Failures of the filler in a row.
    filler_failures: u32,
}

impl PendingOperation {
    /// The sequence number it carries.
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether it only fills a sequence number.
    #[must_use]
    pub fn is_filler(&self) -> bool {
        self.filler
    }

    /// A command that takes part in session ordering (sequence > 0).
    fn is_sequenced_command(&self) -> bool {
        matches!(self.kind, OperationKind::Command(_)) && self.sequence > 0
    }
}

/// What to do about a gap error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapResubmission {
    /// Requests withdrawn (their answers must now be ignored).
    pub withdrawn: Vec<u64>,
    /// Send a keep-alive first; commands wait until it is answered.
    pub keep_alive_first: bool,
    /// The failed command is at or below `last_sequence`: the leader applied it but has no
    /// output for it any more. It left; nothing was resubmitted.
    pub applied_without_output: bool,
}

/// The pending operations of one client.
#[derive(Clone, Debug, Default)]
pub struct Submitter {
    pending: BTreeMap<OperationId, PendingOperation>,
    /// The last sequence number given in this session.
    last_sequence: u64,
    /// Commands wait for a keep-alive to reset the leader's sequence.
    hold_for_keep_alive: bool,
    gap_errors_in_row: u32,
    /// One step of the retry back-off table.
    backoff_unit_ms: u64,
}

impl Submitter {
    /// Nothing pending.
    #[must_use]
    pub fn new() -> Self {
        Submitter {
            backoff_unit_ms: crate::client::config::BACKOFF_UNIT_MS_DEFAULT,
            ..Submitter::default()
        }
    }

    /// Scales the retry back-off (see `ClientConfig::backoff_unit_ms`).
    pub fn set_backoff_unit_ms(&mut self, unit_ms: u64) {
        self.backoff_unit_ms = unit_ms;
    }

    fn retry_delay_ms(&self, failures: u32) -> u64 {
        retry_delay_ms(failures) * self.backoff_unit_ms
            / crate::client::config::BACKOFF_UNIT_MS_DEFAULT
    }

    /// Operations pending (fillers included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The last sequence number given in this session.
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Whether commands wait for a keep-alive.
    #[must_use]
    pub fn holds_for_keep_alive(&self) -> bool {
        self.hold_for_keep_alive
    }

    /// The highest sequence through which every command was answered: what keep-alives
    /// acknowledge.
    #[must_use]
    pub fn answered_through(&self) -> u64 {
        let first_unanswered = self
            .pending
            .values()
            .find(|pending| pending.is_sequenced_command())
            .map(|pending| pending.sequence);
        let answered = first_unanswered.map_or(self.last_sequence, |sequence| sequence - 1);
        assert!(answered <= self.last_sequence);
        answered
    }

    /// An operation pending.
    #[must_use]
    pub fn get(&self, operation: OperationId) -> Option<&PendingOperation> {
        self.pending.get(&operation)
    }

    /// Adds a command; returns its sequence number.
    pub fn add_command(
        &mut self,
        id: OperationId,
        operation: Bytes,
        consistency: CommandConsistency,
    ) -> u64 {
        let sequence = if consistency == CommandConsistency::None {
            0
        } else {
            self.last_sequence += 1;
            self.last_sequence
        };
        self.insert(id, OperationKind::Command(consistency), operation, sequence);
        sequence
    }

    /// Adds a query, ordered after the last command submitted before it.
    pub fn add_query(&mut self, id: OperationId, operation: Bytes, consistency: QueryConsistency) {
        let sequence = self.last_sequence;
        self.insert(id, OperationKind::Query(consistency), operation, sequence);
    }

    fn insert(&mut self, id: OperationId, kind: OperationKind, operation: Bytes, sequence: u64) {
        if let Some((&last, _)) = self.pending.last_key_value() {
            assert!(id > last, "operation ids grow");
        }
        let pending = PendingOperation {
            kind,
            operation,
            sequence,
            filler: false,
            request: None,
            not_before_ms: 0,
            filler_failures: 0,
        };
        self.pending.insert(id, pending);
    }

    /// The operations to send now, in order: unsent ones up to the first that must wait.
    #[must_use]
    pub fn sendable(&self, now_ms: u64) -> Vec<OperationId> {
        let mut ready = Vec::new();
        for (&id, pending) in &self.pending {
            if pending.request.is_some() {
                continue;
            }
            let is_command = matches!(pending.kind, OperationKind::Command(_));
            if pending.not_before_ms > now_ms || (is_command && self.hold_for_keep_alive) {
                break;
            }
            ready.push(id);
        }
        ready
    }

    /// When the first waiting operation may go (if one waits on time).
    #[must_use]
    pub fn next_wake_ms(&self, now_ms: u64) -> Option<u64> {
        self.pending
            .values()
            .find(|pending| pending.request.is_none())
            .map(|pending| pending.not_before_ms)
            .filter(|&at| at > now_ms)
    }

    /// The request to send for `id`.
    #[must_use]
    pub fn request_body(
        &self,
        id: OperationId,
        session: SessionId,
        index: LogIndex,
    ) -> RequestBody {
        let pending = self
            .pending
            .get(&id)
            .expect("only pending operations are sent");
        match pending.kind {
            OperationKind::Command(_) => RequestBody::Command {
                session,
                sequence: pending.sequence,
                operation: if pending.filler {
                    Bytes::new()
                } else {
                    pending.operation.clone()
                },
            },
            OperationKind::Query(consistency) => RequestBody::Query {
                session,
                sequence: pending.sequence,
                index,
                consistency,
                operation: pending.operation.clone(),
            },
        }
    }

    /// `id` went out as `request_id`.
    pub fn mark_sent(&mut self, id: OperationId, request_id: u64) {
        let pending = self
            .pending
            .get_mut(&id)
            .expect("only pending operations are sent");
        assert!(
            pending.request.is_none(),
            "one request in flight per operation"
        );
        pending.request = Some(request_id);
    }

    /// The connection failed: everything goes again on the next one.
    pub fn unsend_all(&mut self) {
        for pending in self.pending.values_mut() {
            pending.request = None;
        }
    }

    /// The server answered `id`: it leaves.
    pub fn answered(&mut self, id: OperationId) -> PendingOperation {
        let pending = self
            .pending
            .remove(&id)
            .expect("answers come for pending operations");
        if pending.is_sequenced_command() {
            self.gap_errors_in_row = 0;
        }
        pending
    }

    /// A command failed for good: its sequence goes again as a no-op (see the module
    /// documentation). Returns false if it had no sequence to fill (it left instead).
    pub fn make_filler(&mut self, id: OperationId, now_ms: u64) -> bool {
        let unit_ms = self.backoff_unit_ms;
        let backoff = |failures| {
            retry_delay_ms(failures) * unit_ms / crate::client::config::BACKOFF_UNIT_MS_DEFAULT
        };
        let pending = self
            .pending
            .get_mut(&id)
            .expect("fillers replace pending commands");
        assert!(matches!(pending.kind, OperationKind::Command(_)));
        if pending.sequence == 0 {
            self.pending.remove(&id);
            return false;
        }
        pending.filler = true;
        pending.operation = Bytes::new();
        pending.request = None;
        pending.filler_failures += 1;
        pending.not_before_ms = if pending.filler_failures > 1 {
            now_ms.saturating_add(backoff(pending.filler_failures - 1))
        } else {
            now_ms
        };
        true
    }

    /// `Command { last_sequence }` came back for command `id`. Every command after
    /// `last_sequence` goes again (the caller ignores answers to the withdrawn requests,
    /// so the other errors of the same burst never arrive here and each command is
    /// resubmitted once per round).
    pub fn on_gap(&mut self, id: OperationId, last_sequence: u64, now_ms: u64) -> GapResubmission {
        let failed = self
            .pending
            .get(&id)
            .expect("gap errors come for pending commands");
        assert!(failed.is_sequenced_command());
        if failed.sequence <= last_sequence {
            self.pending.remove(&id);
            return GapResubmission {
                withdrawn: Vec::new(),
                keep_alive_first: false,
                applied_without_output: true,
            };
        }
        self.gap_errors_in_row += 1;
        let not_before_ms = if self.gap_errors_in_row > 1 {
            now_ms.saturating_add(self.retry_delay_ms(self.gap_errors_in_row - 1))
        } else {
            now_ms
        };
        let keep_alive_first = last_sequence < self.answered_through();
        let mut withdrawn = Vec::new();
        for pending in self.pending.values_mut() {
            // With a keep-alive first, every pending command is after `last_sequence`.
            if pending.is_sequenced_command() && pending.sequence > last_sequence {
                withdrawn.extend(pending.request.take());
                pending.not_before_ms = pending.not_before_ms.max(not_before_ms);
            }
        }
        if keep_alive_first {
            self.hold_for_keep_alive = true;
        }
        assert!(self
            .pending
            .get(&id)
            .is_some_and(|failed| failed.request.is_none()));
        GapResubmission {
            withdrawn,
            keep_alive_first,
            applied_without_output: false,
        }
    }

    /// A keep-alive was answered: commands held for it may go.
    pub fn keep_alive_answered(&mut self) {
        self.hold_for_keep_alive = false;
    }

    /// A new session: every pending command is renumbered in order, fillers are dropped,
    /// nothing is in flight.
    pub fn renumber(&mut self) {
        self.pending.retain(|_, pending| !pending.filler);
        self.last_sequence = 0;
        self.hold_for_keep_alive = false;
        self.gap_errors_in_row = 0;
        for pending in self.pending.values_mut() {
            pending.request = None;
            pending.not_before_ms = 0;
            match pending.kind {
                OperationKind::Command(CommandConsistency::None) => pending.sequence = 0,
                OperationKind::Command(_) => {
                    self.last_sequence += 1;
                    pending.sequence = self.last_sequence;
                }
                OperationKind::Query(_) => pending.sequence = self.last_sequence,
            }
        }
    }

    /// Forgets everything (the client closed).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.hold_for_keep_alive = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: SessionId = SessionId(5);

    fn op(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    /// (sequence, operation text) of each command `sendable` returns.
    fn send_all(submitter: &mut Submitter, now: u64, first_request: u64) -> Vec<(u64, String)> {
        let mut sent = Vec::new();
        for (offset, id) in submitter.sendable(now).into_iter().enumerate() {
            match submitter.request_body(id, SESSION, LogIndex(0)) {
                RequestBody::Command {
                    sequence,
                    operation,
                    ..
                } => {
                    sent.push((sequence, String::from_utf8_lossy(&operation).into_owned()));
                }
                RequestBody::Query { sequence, .. } => sent.push((sequence, "query".to_string())),
                other => panic!("{other:?}"),
            }
            submitter.mark_sent(id, first_request + offset as u64);
        }
        sent
    }

    fn three_commands() -> Submitter {
        let mut submitter = Submitter::new();
        for (id, text) in [(1, "a"), (2, "b"), (3, "c")] {
            submitter.add_command(OperationId(id), op(text), CommandConsistency::Linearizable);
        }
        submitter
    }

    #[test]
    fn commands_are_numbered_and_queries_follow_the_last_command() {
        let mut submitter = Submitter::new();
        assert_eq!(
            submitter.add_command(OperationId(1), op("a"), CommandConsistency::Linearizable),
            1
        );
        assert_eq!(
            submitter.add_command(OperationId(2), op("n"), CommandConsistency::None),
            0
        );
        submitter.add_query(OperationId(3), op("q"), QueryConsistency::Sequential);
        assert_eq!(
            submitter.add_command(OperationId(4), op("b"), CommandConsistency::Sequential),
            2
        );
        let sent = send_all(&mut submitter, 0, 100);
        assert_eq!(
            sent,
            vec![
                (1, "a".into()),
                (0, "n".into()),
                (1, "query".into()),
                (2, "b".into())
            ]
        );
        assert_eq!(submitter.answered_through(), 0);
        submitter.answered(OperationId(1));
        assert_eq!(submitter.answered_through(), 1);
        submitter.answered(OperationId(4));
        assert_eq!(submitter.answered_through(), 2);
    }

    #[test]
    fn failover_resends_the_same_sequences_in_order() {
        let mut submitter = three_commands();
        send_all(&mut submitter, 0, 10);
        assert!(submitter.sendable(0).is_empty());
        submitter.unsend_all();
        let again = send_all(&mut submitter, 0, 20);
        assert_eq!(
            again,
            vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
        );
    }

    #[test]
    fn a_gap_resubmits_every_later_command_in_order() {
        let mut submitter = three_commands();
        send_all(&mut submitter, 0, 10); // requests 10, 11, 12
        submitter.answered(OperationId(1));
        // Command 2 was lost; 3 comes back with last_sequence 1: 2 and 3 go again.
        let gap = submitter.on_gap(OperationId(3), 1, 0);
        let expected = GapResubmission {
            withdrawn: vec![11, 12],
            keep_alive_first: false,
            applied_without_output: false,
        };
        assert_eq!(gap, expected);
        assert_eq!(
            send_all(&mut submitter, 0, 20),
            vec![(2, "b".into()), (3, "c".into())]
        );
    }

    #[test]
    fn a_command_the_leader_has_applied_leaves_without_resubmission() {
        let mut submitter = three_commands();
        send_all(&mut submitter, 0, 10);
        let gap = submitter.on_gap(OperationId(2), 2, 0);
        assert!(gap.applied_without_output);
        assert!(gap.withdrawn.is_empty());
        assert!(submitter.get(OperationId(2)).is_none());
        assert!(submitter.sendable(0).is_empty(), "nothing else goes again");
    }

    #[test]
    fn a_leader_behind_the_answered_sequence_gets_a_keep_alive_first() {
        let mut submitter = three_commands();
        send_all(&mut submitter, 0, 10);
        submitter.answered(OperationId(1));
        submitter.answered(OperationId(2));
        // A new leader knows the session only through sequence 1.
        let gap = submitter.on_gap(OperationId(3), 1, 0);
        assert!(gap.keep_alive_first);
        assert_eq!(gap.withdrawn, vec![12]);
        assert!(submitter.holds_for_keep_alive());
        assert!(
            submitter.sendable(0).is_empty(),
            "commands wait for the keep-alive"
        );
        submitter.keep_alive_answered();
        assert_eq!(send_all(&mut submitter, 0, 20), vec![(3, "c".into())]);
    }

    #[test]
    fn repeated_gaps_back_off() {
        let mut submitter = three_commands();
        send_all(&mut submitter, 0, 10);
        submitter.on_gap(OperationId(2), 0, 0);
        assert_eq!(send_all(&mut submitter, 0, 20).len(), 3);
        // The resubmission failed too: the next round waits a second.
        submitter.on_gap(OperationId(2), 0, 100);
        assert!(submitter.sendable(100).is_empty());
        assert_eq!(submitter.next_wake_ms(100), Some(1100));
        assert_eq!(send_all(&mut submitter, 1100, 30).len(), 3);
        submitter.on_gap(OperationId(2), 0, 1200);
        assert_eq!(submitter.next_wake_ms(1200), Some(2200));
        assert_eq!(send_all(&mut submitter, 2200, 40).len(), 3);
        submitter.on_gap(OperationId(2), 0, 2300);
        assert_eq!(submitter.next_wake_ms(2300), Some(4300));
        assert_eq!(send_all(&mut submitter, 4300, 50).len(), 3);
        // An answer ends the streak.
        submitter.answered(OperationId(1));
        submitter.on_gap(OperationId(3), 1, 5000);
        assert_eq!(send_all(&mut submitter, 5000, 60).len(), 2);
    }

    #[test]
    fn a_failed_command_becomes_an_empty_filler_with_the_same_sequence() {
        let mut submitter = three_commands();
        send_all(&mut submitter, 0, 10);
        assert!(submitter.make_filler(OperationId(2), 0));
        assert_eq!(send_all(&mut submitter, 0, 20), vec![(2, String::new())]);
        assert!(submitter
            .get(OperationId(2))
            .is_some_and(PendingOperation::is_filler));
        // Failing again backs off.
        assert!(submitter.make_filler(OperationId(2), 50));
        assert!(submitter.sendable(50).is_empty());
        assert_eq!(send_all(&mut submitter, 1050, 30), vec![(2, String::new())]);
        // A NONE command has no sequence to fill.
        submitter.add_command(OperationId(4), op("n"), CommandConsistency::None);
        assert!(!submitter.make_filler(OperationId(4), 0));
        assert!(submitter.get(OperationId(4)).is_none());
    }

    #[test]
    fn a_new_session_renumbers_and_drops_fillers() {
        let mut submitter = three_commands();
        submitter.add_query(OperationId(4), op("q"), QueryConsistency::Linearizable);
        send_all(&mut submitter, 0, 10);
        submitter.answered(OperationId(1));
        submitter.make_filler(OperationId(2), 0);
        submitter.renumber();
        assert_eq!(submitter.len(), 2);
        assert_eq!(
            send_all(&mut submitter, 0, 20),
            vec![(1, "c".into()), (1, "query".into())]
        );
        assert_eq!(submitter.answered_through(), 0);
    }
}
