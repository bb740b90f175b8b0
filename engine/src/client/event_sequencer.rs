//! Completions in submission order, interleaved with session events in publishing order
//! (SPEC §B6, §F2–§F3).
//!
//! **Events.** The session's event index starts at the session id. A batch at or below it
//! is a duplicate and is ignored. A batch whose `previous_index` is not the local index
//! follows a gap: the client asks for a `ResetEvents` (the server resends everything after
//! the local index) and drops the batch. It asks once per gap: another reset for the same
//! local index only after a request timeout, so out-of-order pushes cannot start a storm of
//! full resends (Copycat #235). Otherwise the batch is *received* (the index advances, and
//! keep-alives acknowledge it) and then *delivered* to the user: at once when no operation
//! is outstanding, or else queued until the operations before it are settled.
//!
//! **Completions.** Results are held until every earlier operation has completed. A result
//! may also be *gated* on an event index (the session's last batch before the operation
//! ran): it is released only after every batch through that index was delivered, so at one
//! index the order is command response, then its events, then a query response.
//!
//! **Missing events (Copycat #293).** When the next result waits on a batch that does not
//! come, the sequencer asks for a reset after a request timeout, and again after each
//! further timeout, for as long as the session lives: servers keep every batch the client
//! has not acknowledged, so a reset fills the gap as soon as a server holding the client's
//! connection answers; after a second timeout the client moves to another server, which
//! pushes every unacknowledged batch when the client connects (the first server may be a
//! passive member far behind). The result is never released ahead of the events before it
//! (Copycat released it after a while; that broke the ordering promise under faults). If
//! the session ends first, the result fails with the session's error instead: its events
//! are gone with the session, and a command's outcome is then unknown to the client.
//!
//! **Bounds.** At most [`EVENT_BATCHES_QUEUED_MAX`] received batches wait for delivery. A
//! batch beyond that is dropped *unreceived* (the index does not advance); once the queue
//! has drained, the sequencer asks for a reset to fetch what it dropped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::client::action::{ClientAction, Completion, OperationId};
use crate::session::{ClientError, EventBatch, SessionId};
use crate::types::LogIndex;

/// Received batches waiting for earlier operations to complete.
pub const EVENT_BATCHES_QUEUED_MAX: usize = 256;

const _: () = assert!(EVENT_BATCHES_QUEUED_MAX > 0);

/// What became of a pushed batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Received in order (delivered or queued for delivery).
    Accepted,
    /// At or below the local index, or for another session, or while no session is open.
    Ignored,
    /// It follows a gap; dropped (a reset may have been asked for).
    Gap,
    /// The delivery queue is full; dropped unreceived.
    Overflow,
}

#[derive(Clone, Debug)]
struct Ready {
    result: Result<Completion, ClientError>,
    /// Deliver every batch through this index first.
    gate: Option<LogIndex>,
}

/// Orders completions and events for one client.
#[derive(Clone, Debug)]
pub struct EventSequencer {
    request_timeout_ms: u64,
    /// `None` while no session is open: batches are ignored.
    session: Option<SessionId>,
    /// Last batch received in order (what keep-alives acknowledge).
    received_index: LogIndex,
    /// Last batch handed to the user.
    delivered_index: LogIndex,
    /// Received, not delivered; contiguous, after `delivered_index`.
    queued: VecDeque<EventBatch>,
    overflowed: bool,
    /// The last reset asked for: the local index then, and when.
    last_reset: Option<(LogIndex, u64)>,
    reset_wanted: Option<LogIndex>,
    /// Submitted and not completed, in submission order.
    outstanding: BTreeSet<OperationId>,
    ready: BTreeMap<OperationId, Ready>,
    /// Since when the first outstanding result waits on a batch.
    blocked_since_ms: Option<u64>,
    blocked_resets: u32,
    move_wanted: bool,
}

impl EventSequencer {
    /// A sequencer with no session; `request_timeout_ms` paces resets.
    #[must_use]
    pub fn new(request_timeout_ms: u64) -> Self {
        assert!(request_timeout_ms > 0);
        EventSequencer {
            request_timeout_ms,
            session: None,
            received_index: LogIndex::ZERO,
            delivered_index: LogIndex::ZERO,
            queued: VecDeque::new(),
            overflowed: false,
            last_reset: None,
            reset_wanted: None,
            outstanding: BTreeSet::new(),
            ready: BTreeMap::new(),
            blocked_since_ms: None,
            blocked_resets: 0,
            move_wanted: false,
        }
    }

    /// The last batch received in order (for keep-alives and resets).
    #[must_use]
    pub fn received_index(&self) -> LogIndex {
        self.received_index
    }

    /// Operations submitted and not completed.
    #[must_use]
    pub fn outstanding_count(&self) -> usize {
        self.outstanding.len()
    }

    /// Batches received and waiting for delivery.
    #[must_use]
    pub fn queued_count(&self) -> usize {
        self.queued.len()
    }

    /// A reset the client should send now (the local index to send), if any.
    pub fn take_reset(&mut self) -> Option<LogIndex> {
        self.reset_wanted.take()
    }

    /// When `tick` has something to do.
    #[must_use]
    pub fn next_wake_ms(&self) -> Option<u64> {
        self.blocked_since_ms
            .map(|since| since.saturating_add(self.request_timeout_ms))
    }

    /// A session opened: events start after its id. Batches still queued from an earlier
    /// session are delivered first, and results gated on that session's indexes are no
    /// longer gated (they count in another session's numbering).
    pub fn start_session(&mut self, session: SessionId, now_ms: u64, out: &mut Vec<ClientAction>) {
        self.end_session(now_ms, out);
        self.session = Some(session);
        self.received_index = session.index();
        self.delivered_index = session.index();
        self.last_reset = None;
        assert!(self.queued.is_empty());
    }

    /// The session ended (expired, or closed): queued batches are delivered, gates lifted,
    /// and batches ignored until the next session starts.
    pub fn end_session(&mut self, now_ms: u64, out: &mut Vec<ClientAction>) {
        while let Some(batch) = self.queued.pop_front() {
            self.deliver(batch, out);
        }
        for ready in self.ready.values_mut() {
            ready.gate = None;
        }
        self.session = None;
        self.overflowed = false;
        self.reset_wanted = None;
        self.drain(now_ms, out);
        assert!(self.blocked_since_ms.is_none());
    }

    /// An operation was submitted; it completes after every one submitted before it.
    pub fn submitted(&mut self, operation: OperationId) {
        if let Some(&last) = self.outstanding.last() {
            assert!(operation > last, "operation ids grow");
        }
        let inserted = self.outstanding.insert(operation);
        assert!(inserted);
    }

    /// `operation` has its outcome; it is released in order, after the batches through
    /// `gate`.
    pub fn complete(
        &mut self,
        operation: OperationId,
        result: Result<Completion, ClientError>,
        gate: Option<LogIndex>,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) {
        assert!(self.outstanding.contains(&operation), "completes once");
        let previous = self.ready.insert(operation, Ready { result, gate });
        assert!(previous.is_none(), "completes once");
        self.drain(now_ms, out);
    }

    /// A pushed batch.
    pub fn on_batch(
        &mut self,
        batch: EventBatch,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> BatchOutcome {
        if self.session != Some(batch.session) || batch.event_index <= self.received_index {
            return BatchOutcome::Ignored;
        }
        if batch.previous_index != self.received_index {
            self.want_reset(false, now_ms);
            return BatchOutcome::Gap;
        }
        if self.queued.len() >= EVENT_BATCHES_QUEUED_MAX {
            self.overflowed = true;
            return BatchOutcome::Overflow;
        }
        self.received_index = batch.event_index;
        if self.outstanding.is_empty() {
            assert!(self.queued.is_empty());
            self.deliver(batch, out);
        } else {
            self.queued.push_back(batch);
            self.drain(now_ms, out);
        }
        BatchOutcome::Accepted
    }

    /// Timers: while a result waits on a missing batch, ask for a reset again after every
    /// request timeout.
    pub fn tick(&mut self, now_ms: u64, _out: &mut Vec<ClientAction>) {
        let Some(since) = self.blocked_since_ms else {
            return;
        };
        if now_ms < since.saturating_add(self.request_timeout_ms) {
            return;
        }
        if self.blocked_resets > 0 {
            // A reset already went unanswered for a whole timeout: this server does not
            // have the batch (a lagging passive member, say). Another may.
            self.move_wanted = true;
        }
        self.blocked_resets += 1;
        self.blocked_since_ms = Some(now_ms);
        self.want_reset(true, now_ms);
    }

    /// True once if the client should move to another server: a reset for a batch that a
    /// response waits on went unanswered for a request timeout.
    pub fn take_move(&mut self) -> bool {
        std::mem::take(&mut self.move_wanted)
    }

    /// Resets asked for while results waited on missing batches (for metrics and tests).
    #[must_use]
    pub fn blocked_resets(&self) -> u32 {
        self.blocked_resets
    }

    /// Completes every outstanding operation now, in order: with its outcome if it has one
    /// and the events before it were delivered, else with `error`; then delivers every
    /// queued batch.
    pub fn fail_all(&mut self, error: &ClientError, out: &mut Vec<ClientAction>) {
        while let Some(operation) = self.outstanding.pop_first() {
            let result = match self.ready.remove(&operation) {
                Some(ready) => {
                    let gate = ready.gate.unwrap_or(LogIndex::ZERO);
                    self.deliver_queued_through(gate, out);
                    if self.delivered_index >= gate {
                        ready.result
                    } else {
                        // Its events can no longer come: never complete it ahead of them.
                        Err(error.clone())
                    }
                }
                None => Err(error.clone()),
            };
            out.push(ClientAction::Complete { operation, result });
        }
        while let Some(batch) = self.queued.pop_front() {
            self.deliver(batch, out);
        }
        assert!(self.ready.is_empty());
        self.blocked_since_ms = None;
    }

    fn want_reset(&mut self, force: bool, now_ms: u64) {
        let allowed = match self.last_reset {
            Some((index, at_ms)) => {
                force
                    || index != self.received_index
                    || now_ms >= at_ms.saturating_add(self.request_timeout_ms)
            }
            None => true,
        };
        if allowed && self.session.is_some() {
            self.reset_wanted = Some(self.received_index);
            self.last_reset = Some((self.received_index, now_ms));
        }
    }

    /// Releases results in order while the first one's batches are delivered.
    fn drain(&mut self, now_ms: u64, out: &mut Vec<ClientAction>) {
        while let Some(&operation) = self.outstanding.first() {
            let Some(ready) = self.ready.get(&operation) else {
                break;
            };
            if let Some(gate) = ready.gate {
                self.deliver_queued_through(gate, out);
                if self.delivered_index < gate {
                    if self.blocked_since_ms.is_none() {
                        self.blocked_since_ms = Some(now_ms);
                    }
                    break;
                }
            }
            let ready = self.ready.remove(&operation).expect("looked up above");
            let first = self.outstanding.pop_first();
            assert_eq!(first, Some(operation));
            self.blocked_since_ms = None;
            out.push(ClientAction::Complete {
                operation,
                result: ready.result,
            });
        }
        if self.outstanding.is_empty() {
            while let Some(batch) = self.queued.pop_front() {
                self.deliver(batch, out);
            }
        }
        if self.overflowed && self.queued.is_empty() {
            self.overflowed = false;
            self.want_reset(true, now_ms);
        }
    }

    fn deliver_queued_through(&mut self, gate: LogIndex, out: &mut Vec<ClientAction>) {
        while self
            .queued
            .front()
            .is_some_and(|batch| batch.event_index <= gate)
        {
            let batch = self.queued.pop_front().expect("checked non-empty");
            self.deliver(batch, out);
        }
    }

    fn deliver(&mut self, batch: EventBatch, out: &mut Vec<ClientAction>) {
        assert!(
            batch.event_index > self.delivered_index,
            "delivered in order"
        );
        assert!(
            batch.event_index <= self.received_index,
            "received before delivered"
        );
        self.delivered_index = batch.event_index;
        for event in batch.events {
            out.push(ClientAction::Event {
                session: batch.session,
                event_index: batch.event_index,
                event,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::session::SessionEvent;

    const TIMEOUT_MS: u64 = 100;
    const SESSION: SessionId = SessionId(10);

    fn batch(previous: u64, index: u64, names: &[&str]) -> EventBatch {
        EventBatch {
            session: SESSION,
            event_index: LogIndex(index),
            previous_index: LogIndex(previous),
            events: names
                .iter()
                .map(|name| SessionEvent {
                    name: (*name).to_string(),
                    payload: Bytes::new(),
                })
                .collect(),
        }
    }

    fn ok(index: u64) -> Result<Completion, ClientError> {
        Ok(Completion {
            index: LogIndex(index),
            output: Ok(Bytes::new()),
        })
    }

    /// The actions as short strings: `e:name@index` and `c:operation`.
    fn trace(out: &[ClientAction]) -> Vec<String> {
        out.iter()
            .map(|action| match action {
                ClientAction::Event {
                    event_index, event, ..
                } => format!("e:{}@{}", event.name, event_index.0),
                ClientAction::Complete { operation, result } => match result {
                    Ok(_) => format!("c:{}", operation.0),
                    Err(error) => format!("c:{}:{}", operation.0, error.code()),
                },
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn started() -> EventSequencer {
        let mut sequencer = EventSequencer::new(TIMEOUT_MS);
        sequencer.start_session(SESSION, 0, &mut Vec::new());
        sequencer
    }

    #[test]
    fn events_deliver_at_once_when_nothing_is_outstanding() {
        let mut sequencer = started();
        let mut out = Vec::new();
        assert_eq!(
            sequencer.on_batch(batch(10, 12, &["a", "b"]), 0, &mut out),
            BatchOutcome::Accepted
        );
        assert_eq!(trace(&out), ["e:a@12", "e:b@12"]);
        assert_eq!(sequencer.received_index(), LogIndex(12));
    }

    #[test]
    fn results_complete_in_submission_order() {
        let mut sequencer = started();
        let mut out = Vec::new();
        for id in 1..=3 {
            sequencer.submitted(OperationId(id));
        }
        sequencer.complete(OperationId(3), ok(30), None, 0, &mut out);
        sequencer.complete(OperationId(2), ok(20), None, 0, &mut out);
        assert!(out.is_empty(), "held behind operation 1: {:?}", trace(&out));
        sequencer.complete(
            OperationId(1),
            Err(ClientError::Internal { reason: "x".into() }),
            None,
            0,
            &mut out,
        );
        assert_eq!(trace(&out), ["c:1:7", "c:2", "c:3"]);
        assert_eq!(sequencer.outstanding_count(), 0);
    }

    #[test]
    fn a_response_waits_for_the_events_before_it() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        sequencer.submitted(OperationId(2));
        // The second operation's response says batch 12 came before it.
        sequencer.complete(OperationId(1), ok(11), Some(LogIndex(10)), 0, &mut out);
        sequencer.complete(OperationId(2), ok(13), Some(LogIndex(12)), 0, &mut out);
        assert_eq!(trace(&out), ["c:1"]);
        out.clear();
        // Batch 12 arrives, and batch 14 (published after operation 2) waits for it too.
        sequencer.on_batch(batch(10, 12, &["a"]), 5, &mut out);
        assert_eq!(trace(&out), ["e:a@12", "c:2"]);
        out.clear();
        sequencer.on_batch(batch(12, 14, &["b"]), 5, &mut out);
        assert_eq!(trace(&out), ["e:b@14"]);
    }

    #[test]
    fn events_after_a_response_wait_until_it_completes() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        sequencer.on_batch(batch(10, 12, &["late"]), 0, &mut out);
        assert!(out.is_empty(), "operation 1 may have run before the event");
        sequencer.complete(OperationId(1), ok(11), Some(LogIndex(10)), 0, &mut out);
        assert_eq!(trace(&out), ["c:1", "e:late@12"]);
    }

    #[test]
    fn an_ungated_result_does_not_wait_for_events() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        sequencer.complete(OperationId(1), ok(13), None, 0, &mut out);
        assert_eq!(trace(&out), ["c:1"]);
    }

    #[test]
    fn duplicates_are_ignored_and_a_gap_asks_for_one_reset() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.on_batch(batch(10, 12, &["a"]), 0, &mut out);
        assert_eq!(
            sequencer.on_batch(batch(10, 12, &["a"]), 0, &mut out),
            BatchOutcome::Ignored
        );
        assert_eq!(
            sequencer.on_batch(batch(0, 11, &["old"]), 0, &mut out),
            BatchOutcome::Ignored
        );
        assert_eq!(trace(&out), ["e:a@12"]);
        assert_eq!(sequencer.take_reset(), None);
        // Batch 14 is missing: 16 and 18 follow it. One reset, not two.
        assert_eq!(
            sequencer.on_batch(batch(14, 16, &["c"]), 10, &mut out),
            BatchOutcome::Gap
        );
        assert_eq!(sequencer.take_reset(), Some(LogIndex(12)));
        assert_eq!(
            sequencer.on_batch(batch(16, 18, &["d"]), 20, &mut out),
            BatchOutcome::Gap
        );
        assert_eq!(sequencer.take_reset(), None);
        // A reset may have been lost: after a timeout, the next gap asks again.
        sequencer.on_batch(batch(16, 18, &["d"]), 10 + TIMEOUT_MS, &mut out);
        assert_eq!(sequencer.take_reset(), Some(LogIndex(12)));
        // The resend arrives in order.
        out.clear();
        sequencer.on_batch(batch(12, 14, &["b"]), 200, &mut out);
        sequencer.on_batch(batch(14, 16, &["c"]), 200, &mut out);
        assert_eq!(trace(&out), ["e:b@14", "e:c@16"]);
    }

    #[test]
    fn a_missing_batch_is_asked_for_until_it_comes_and_holds_the_result() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        sequencer.complete(OperationId(1), ok(13), Some(LogIndex(12)), 1000, &mut out);
        assert!(out.is_empty());
        assert_eq!(sequencer.next_wake_ms(), Some(1000 + TIMEOUT_MS));
        let mut now = 1000;
        for round in 1..=10 {
            now += TIMEOUT_MS;
            sequencer.tick(now, &mut out);
            assert_eq!(sequencer.take_reset(), Some(LogIndex(10)), "round {round}");
            assert!(out.is_empty(), "never released ahead of its events");
        }
        assert_eq!(sequencer.blocked_resets(), 10);
        // The batch comes: delivered, then the result.
        sequencer.on_batch(batch(10, 12, &["a"]), now, &mut out);
        assert_eq!(trace(&out), ["e:a@12", "c:1"]);
        assert_eq!(sequencer.next_wake_ms(), None);
    }

    #[test]
    fn a_result_whose_events_can_no_longer_come_fails_when_the_session_ends() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        sequencer.complete(OperationId(1), ok(13), Some(LogIndex(12)), 1000, &mut out);
        sequencer.fail_all(&ClientError::ClosedSession, &mut out);
        assert!(matches!(
            out.as_slice(),
            [ClientAction::Complete {
                result: Err(ClientError::ClosedSession),
                ..
            }]
        ));
    }

    #[test]
    fn a_full_queue_drops_batches_and_fetches_them_again() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        let mut index = 10;
        for _ in 0..EVENT_BATCHES_QUEUED_MAX {
            assert_eq!(
                sequencer.on_batch(batch(index, index + 1, &["x"]), 0, &mut out),
                BatchOutcome::Accepted
            );
            index += 1;
        }
        assert_eq!(
            sequencer.on_batch(batch(index, index + 1, &["y"]), 0, &mut out),
            BatchOutcome::Overflow
        );
        assert_eq!(sequencer.received_index(), LogIndex(index));
        assert_eq!(sequencer.queued_count(), EVENT_BATCHES_QUEUED_MAX);
        assert!(out.is_empty());
        sequencer.complete(OperationId(1), ok(1), None, 0, &mut out);
        assert_eq!(out.len(), 1 + EVENT_BATCHES_QUEUED_MAX);
        assert_eq!(sequencer.take_reset(), Some(LogIndex(index)));
    }

    #[test]
    fn a_new_session_delivers_the_old_queue_and_lifts_old_gates() {
        let mut sequencer = started();
        let mut out = Vec::new();
        sequencer.submitted(OperationId(1));
        sequencer.submitted(OperationId(2));
        sequencer.on_batch(batch(10, 12, &["old"]), 0, &mut out);
        sequencer.complete(OperationId(2), ok(20), Some(LogIndex(15)), 0, &mut out);
        sequencer.end_session(0, &mut out);
        assert_eq!(trace(&out), ["e:old@12"]);
        // Batches are ignored between sessions.
        assert_eq!(
            sequencer.on_batch(batch(12, 13, &["x"]), 0, &mut out),
            BatchOutcome::Ignored
        );
        sequencer.start_session(SessionId(30), 0, &mut out);
        assert_eq!(sequencer.received_index(), LogIndex(30));
        sequencer.complete(OperationId(1), ok(31), Some(LogIndex(30)), 0, &mut out);
        assert_eq!(trace(&out), ["e:old@12", "c:1", "c:2"]);
    }

    #[test]
    fn failing_all_keeps_order_and_known_outcomes() {
        let mut sequencer = started();
        let mut out = Vec::new();
        for id in 1..=3 {
            sequencer.submitted(OperationId(id));
        }
        sequencer.on_batch(batch(10, 12, &["a"]), 0, &mut out);
        sequencer.complete(OperationId(2), ok(20), Some(LogIndex(12)), 0, &mut out);
        sequencer.fail_all(&ClientError::ClosedSession, &mut out);
        assert_eq!(trace(&out), ["c:1:0", "e:a@12", "c:2", "c:3:0"]);
        assert_eq!(sequencer.outstanding_count(), 0);
    }
}
