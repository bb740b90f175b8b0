//! [`ClientSession`]: one client's session protocol as a sans-IO state machine (SPEC §B,
//! §C3, §D2, §F2–§F3). The module documentation of [`crate::client`] describes the
//! behaviour; this file wires the parts together.

use bytes::Bytes;

use crate::client::action::{ClientAction, ClientState, Completion, OperationId, SubmitError};
use crate::client::config::{ClientConfig, PENDING_OPERATIONS_MAX};
use crate::client::connection::{Connection, Purpose};
use crate::client::event_sequencer::EventSequencer;
use crate::client::strategies::{retry_delay_ms, RecoveryStrategy};
use crate::client::submitter::{OperationKind, Submitter};
use crate::session::{
    ClientError, ClientResponse, CommandConsistency, QueryConsistency, RequestBody, ResponseBody,
    SessionId, ToClient,
};
use crate::types::{LogIndex, ReplicaId};

/// A session timeout below this from a server is raised to it (a keep-alive interval of
/// zero would make the client spin).
const SESSION_TIMEOUT_MS_MIN: u64 = 2;

/// Where the session is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Created; `open` not called.
    Idle,
    /// Registering a session: the first, or a new one after an expiry (RECOVER).
    Registering,
    /// A session is registered.
    Open(OpenSession),
    /// `close` was called: unregistering.
    Closing(SessionId),
    /// For good.
    Closed,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct OpenSession {
    id: SessionId,
    timeout_ms: u64,
    /// When the latest request whose answer showed the session alive (its register, a
    /// keep-alive, a command) was sent: the servers saw the session alive no earlier.
    last_alive_ms: u64,
    /// When the latest answered keep-alive (or the register) was sent.
    last_ack_ms: u64,
    /// What it acknowledged: (command sequence, event index).
    acked: (u64, LogIndex),
    /// What the keep-alive in flight acknowledges.
    acking: (u64, LogIndex),
}

/// One client's session protocol. Inputs: `open`, `submit_*`, `close`, `on_message`,
/// `on_connection_lost`, `tick`; every effect is appended to the caller's buffer.
#[derive(Clone, Debug)]
pub struct ClientSession {
    config: ClientConfig,
    now_ms: u64,
    state: ClientState,
    phase: Phase,
    connection: Connection,
    submitter: Submitter,
    sequencer: EventSequencer,
    last_operation: u64,
    /// The highest log index in any response (queries see at least it).
    response_index: LogIndex,
    /// The register, keep-alive or unregister in flight.
    control_request: Option<u64>,
    /// A keep-alive must go now (to reset a new leader's sequence).
    keep_alive_forced: bool,
    /// Since when no server has answered (the session is UNSTABLE).
    unstable_since_ms: Option<u64>,
}

impl ClientSession {
    /// A client that will talk to `servers` (at least one); it does nothing until `open`.
    #[must_use]
    pub fn new(config: ClientConfig, servers: Vec<ReplicaId>, now_ms: u64) -> ClientSession {
        assert!(config.request_timeout_ms > 0, "requests need a timeout");
        let backoff_unit_ms = config.backoff_unit_ms;
        assert!(!servers.is_empty(), "a client needs at least one server");
        let connection = Connection::new(
            config.selection,
            &servers,
            config.request_timeout_ms,
            config.seed,
        );
        let sequencer = EventSequencer::new(config.request_timeout_ms);
        let mut submitter = Submitter::new();
        submitter.set_backoff_unit_ms(backoff_unit_ms);
        ClientSession {
            config,
            now_ms,
            state: ClientState::Closed,
            phase: Phase::Idle,
            connection,
            submitter,
            sequencer,
            last_operation: 0,
            response_index: LogIndex::ZERO,
            control_request: None,
            keep_alive_forced: false,
            unstable_since_ms: None,
        }
    }

    /// The client's state.
    #[must_use]
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The registered session, while one is open or closing.
    #[must_use]
    pub fn session(&self) -> Option<SessionId> {
        match self.phase {
            Phase::Open(open) => Some(open.id),
            Phase::Closing(session) => Some(session),
            Phase::Idle | Phase::Registering | Phase::Closed => None,
        }
    }

    /// The servers as known now (refreshed by responses).
    #[must_use]
    pub fn servers(&self) -> &[ReplicaId] {
        self.connection.selector().servers()
    }

    /// The leader, if known.
    #[must_use]
    pub fn leader(&self) -> Option<ReplicaId> {
        self.connection.selector().leader()
    }

    /// The server the client is connected or connecting to.
    #[must_use]
    pub fn server(&self) -> Option<ReplicaId> {
        self.connection.linked()
    }

    /// Operations submitted and not completed.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.sequencer.outstanding_count()
    }

    /// When `tick` next has something to do. Right after a `tick` it is always later than
    /// that tick's time, so a driver sleeping until then never spins; after another input
    /// it may be due already.
    #[must_use]
    pub fn next_wake_ms(&self) -> Option<u64> {
        if matches!(self.phase, Phase::Idle | Phase::Closed) {
            return None;
        }
        let mut wake = [
            self.connection.next_wake_ms(),
            self.sequencer.next_wake_ms(),
            self.submitter.next_wake_ms(self.now_ms),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut earlier = |at: u64| wake = Some(wake.map_or(at, |wake| wake.min(at)));
        if let Phase::Open(open) = self.phase {
            if self.connection.connected().is_some() && self.control_request.is_none() {
                earlier(self.keep_alive_due_ms(&open));
            }
            if self.unstable_since_ms.is_none() {
                earlier(open.last_alive_ms.saturating_add(open.timeout_ms));
            }
        }
        if let Some(since) = self.unstable_since_ms {
            if self.config.unstability_timeout_ms > 0 {
                earlier(since.saturating_add(self.config.unstability_timeout_ms));
            }
        }
        wake
    }

    /// Connects and registers a session. Only the first call does anything.
    pub fn open(&mut self, now_ms: u64, out: &mut Vec<ClientAction>) {
        self.advance(now_ms);
        if self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Registering;
        self.set_state(ClientState::Suspended, out);
        self.pump(out);
    }

    /// Submits a command; it completes (in submission order) with a
    /// [`ClientAction::Complete`].
    ///
    /// # Errors
    /// The client is not open (or is closing), or too many operations are pending.
    pub fn submit_command(
        &mut self,
        operation: Bytes,
        consistency: CommandConsistency,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> Result<OperationId, SubmitError> {
        self.advance(now_ms);
        let id = self.admit()?;
        self.submitter.add_command(id, operation, consistency);
        self.sequencer.submitted(id);
        self.pump(out);
        Ok(id)
    }

    /// Submits a query; it completes (in submission order) with a
    /// [`ClientAction::Complete`].
    ///
    /// # Errors
    /// The client is not open (or is closing), or too many operations are pending.
    pub fn submit_query(
        &mut self,
        operation: Bytes,
        consistency: QueryConsistency,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> Result<OperationId, SubmitError> {
        self.advance(now_ms);
        let id = self.admit()?;
        self.submitter.add_query(id, operation, consistency);
        self.sequencer.submitted(id);
        self.pump(out);
        Ok(id)
    }

    /// Closes the client: pending operations complete at once (those answered with their
    /// outcome, the rest with `ClosedSession`), then the session is unregistered. If no
    /// server answers, the client is SUSPENDED and keeps trying.
    pub fn close(&mut self, now_ms: u64, out: &mut Vec<ClientAction>) {
        self.advance(now_ms);
        match self.phase {
            Phase::Idle => self.phase = Phase::Closed,
            Phase::Registering => self.close_locally(out),
            Phase::Open(open) => {
                self.sequencer.fail_all(&ClientError::ClosedSession, out);
                self.submitter.clear();
                self.connection.withdraw_session_requests();
                self.control_request = None;
                self.keep_alive_forced = false;
                self.phase = Phase::Closing(open.id);
            }
            Phase::Closing(_) | Phase::Closed => {}
        }
        self.pump(out);
    }

    /// A message from server `from`.
    pub fn on_message(
        &mut self,
        from: ReplicaId,
        message: ToClient,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) {
        self.advance(now_ms);
        match message {
            ToClient::Response(response) => self.on_response(from, response, out),
            ToClient::Publish(batch) => {
                if matches!(self.phase, Phase::Open(_) | Phase::Closing(_)) {
                    self.sequencer.on_batch(batch, self.now_ms, out);
                }
            }
        }
        self.pump(out);
    }

    /// The connection to `server` failed (or could not be made).
    pub fn on_connection_lost(
        &mut self,
        server: ReplicaId,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) {
        self.advance(now_ms);
        if self.connection.linked() == Some(server) {
            self.server_failed(out);
        }
        self.pump(out);
    }

    /// Timers: request timeouts, back-off, keep-alives, instability, missing events.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<ClientAction>) {
        self.advance(now_ms);
        if matches!(self.phase, Phase::Idle | Phase::Closed) {
            return;
        }
        if self.connection.timed_out(now_ms) {
            self.server_failed(out);
        }
        if let Phase::Open(open) = self.phase {
            let silent_since = open.last_alive_ms.saturating_add(open.timeout_ms);
            if self.unstable_since_ms.is_none() && now_ms >= silent_since {
                self.mark_unstable(out);
            }
        }
        if let Some(since) = self.unstable_since_ms {
            let limit_ms = self.config.unstability_timeout_ms;
            if limit_ms > 0 && now_ms >= since.saturating_add(limit_ms) {
                // STALE: unstable for too long.
                self.close_locally(out);
                return;
            }
        }
        self.sequencer.tick(now_ms, out);
        if self.sequencer.take_move() && self.connection.linked().is_some() {
            self.server_failed(out);
        }
        self.pump(out);
    }

    // ----- Internals -----

    fn advance(&mut self, now_ms: u64) {
        assert!(now_ms >= self.now_ms, "time never goes back");
        self.now_ms = now_ms;
    }

    fn admit(&mut self) -> Result<OperationId, SubmitError> {
        match self.phase {
            Phase::Registering | Phase::Open(_) => {}
            Phase::Idle | Phase::Closing(_) | Phase::Closed => return Err(SubmitError::Closed),
        }
        if self.submitter.len() >= PENDING_OPERATIONS_MAX
            || self.sequencer.outstanding_count() >= PENDING_OPERATIONS_MAX
        {
            return Err(SubmitError::TooManyPending {
                pending_max: PENDING_OPERATIONS_MAX,
            });
        }
        self.last_operation += 1;
        Ok(OperationId(self.last_operation))
    }

    fn set_state(&mut self, state: ClientState, out: &mut Vec<ClientAction>) {
        if state != self.state {
            self.state = state;
            out.push(ClientAction::StateChanged(state));
        }
    }

    fn mark_unstable(&mut self, out: &mut Vec<ClientAction>) {
        assert!(matches!(self.phase, Phase::Open(_) | Phase::Closing(_)));
        if self.unstable_since_ms.is_none() {
            self.unstable_since_ms = Some(self.now_ms);
        }
        self.set_state(ClientState::Suspended, out);
    }

    /// An answer showed the session alive through `from`, as of `sent_ms`.
    fn session_alive(&mut self, from: ReplicaId, sent_ms: u64, out: &mut Vec<ClientAction>) {
        let Phase::Open(open) = &mut self.phase else {
            unreachable!("only an open session's requests are answered");
        };
        open.last_alive_ms = open.last_alive_ms.max(sent_ms);
        self.connection.succeeded(from);
        self.unstable_since_ms = None;
        self.set_state(ClientState::Connected, out);
    }

    /// Sends whatever can go now; connects (or gives up) when there is no link.
    fn pump(&mut self, out: &mut Vec<ClientAction>) {
        let now_ms = self.now_ms;
        if matches!(self.phase, Phase::Idle | Phase::Closed) {
            return;
        }
        if self.connection.linked().is_none() {
            if !self.connection.waiting(now_ms)
                && !self
                    .connection
                    .connect_next(self.config.client, now_ms, out)
            {
                self.pass_failed(out);
            }
            return;
        }
        if self.connection.connected().is_none() {
            return;
        }
        match self.phase {
            Phase::Registering | Phase::Closing(_) if self.control_request.is_some() => {}
            Phase::Registering => {
                let body = RequestBody::Register {
                    client: self.config.client,
                    timeout_ms: self.config.session_timeout_ms,
                };
                self.control_request =
                    Some(self.connection.send(body, Purpose::Register, now_ms, out));
            }
            Phase::Open(open) => self.pump_open(open, out),
            Phase::Closing(session) => {
                let body = RequestBody::Unregister { session };
                self.control_request =
                    Some(self.connection.send(body, Purpose::Unregister, now_ms, out));
            }
            Phase::Idle | Phase::Closed => unreachable!("returned above"),
        }
    }

    fn pump_open(&mut self, open: OpenSession, out: &mut Vec<ClientAction>) {
        let now_ms = self.now_ms;
        if let Some(index) = self.sequencer.take_reset() {
            let body = RequestBody::ResetEvents {
                session: open.id,
                index,
            };
            self.connection.send_one_way(body, out);
        }
        if self.control_request.is_none()
            && (self.keep_alive_forced || now_ms >= self.keep_alive_due_ms(&open))
        {
            let acking = (
                self.submitter.answered_through(),
                self.sequencer.received_index(),
            );
            let body = RequestBody::KeepAlive {
                session: open.id,
                command_sequence: acking.0,
                event_index: acking.1,
            };
            self.control_request =
                Some(self.connection.send(body, Purpose::KeepAlive, now_ms, out));
            if let Phase::Open(open) = &mut self.phase {
                open.acking = acking;
            }
        }
        for id in self.submitter.sendable(now_ms) {
            let body = self
                .submitter
                .request_body(id, open.id, self.response_index);
            let request_id = self
                .connection
                .send(body, Purpose::Operation(id), now_ms, out);
            self.submitter.mark_sent(id, request_id);
        }
    }

    /// A keep-alive is due timeout/2 after the session last showed life (a command
    /// answered counts, Copycat #311), and in any case one session timeout after the last
    /// keep-alive if there is something new to acknowledge, so the servers' caches of
    /// outputs and events are trimmed at least that often.
    fn keep_alive_due_ms(&self, open: &OpenSession) -> u64 {
        let interval_ms = (open.timeout_ms / 2).max(1);
        let idle_due_ms = open.last_alive_ms.saturating_add(interval_ms);
        let acks = (
            self.submitter.answered_through(),
            self.sequencer.received_index(),
        );
        if acks == open.acked {
            idle_due_ms
        } else {
            idle_due_ms.min(open.last_ack_ms.saturating_add(open.timeout_ms))
        }
    }

    /// A back-off table's delay (counted in Copycat's seconds) in this client's unit.
    fn scaled(&self, delay_ms: u64) -> u64 {
        delay_ms * self.config.backoff_unit_ms / crate::client::config::BACKOFF_UNIT_MS_DEFAULT
    }

    fn pass_failed(&mut self, out: &mut Vec<ClientAction>) {
        let passes = self.connection.pass_failed();
        let delay_ms = match self.phase {
            Phase::Registering => match self.config.connection.delay_ms(passes) {
                Some(delay_ms) => self.scaled(delay_ms),
                None => {
                    self.close_locally(out);
                    return;
                }
            },
            Phase::Open(_) | Phase::Closing(_) => {
                self.mark_unstable(out);
                self.scaled(retry_delay_ms(passes))
            }
            Phase::Idle | Phase::Closed => unreachable!("no passes while idle or closed"),
        };
        self.connection
            .wait_until(self.now_ms.saturating_add(delay_ms));
    }

    /// The linked server failed: forget it (and the leader); everything goes again.
    fn server_failed(&mut self, out: &mut Vec<ClientAction>) {
        self.connection.drop_link(true, out);
        self.control_request = None;
        self.submitter.unsend_all();
    }

    fn switch_if_unwanted(&mut self, out: &mut Vec<ClientAction>) {
        if self
            .connection
            .switch_if_unwanted(self.config.client, self.now_ms, out)
        {
            self.control_request = None;
            self.submitter.unsend_all();
        }
    }

    /// Closed for good without unregistering: every pending operation fails.
    fn close_locally(&mut self, out: &mut Vec<ClientAction>) {
        self.sequencer.fail_all(&ClientError::ClosedSession, out);
        self.sequencer.end_session(self.now_ms, out);
        self.submitter.clear();
        self.connection.stop(out);
        self.control_request = None;
        self.keep_alive_forced = false;
        self.unstable_since_ms = None;
        self.phase = Phase::Closed;
        self.set_state(ClientState::Closed, out);
    }

    /// The servers do not know the session: it EXPIRED.
    fn expire(&mut self, out: &mut Vec<ClientAction>) {
        // Closing withdrew every request but the unregister, whose answer is handled apart.
        assert!(
            matches!(self.phase, Phase::Open(_)),
            "only an open session's requests are answered"
        );
        // The old session stops here: nothing more is sent for it (Copycat #156/#157).
        self.connection.withdraw_session_requests();
        self.control_request = None;
        self.keep_alive_forced = false;
        self.unstable_since_ms = None;
        self.submitter.unsend_all();
        self.set_state(ClientState::Suspended, out);
        match self.config.recovery {
            RecoveryStrategy::Close => self.close_locally(out),
            RecoveryStrategy::Recover => {
                // CONNECTED again only once the new session exists (Copycat #228).
                self.sequencer.end_session(self.now_ms, out);
                self.phase = Phase::Registering;
            }
        }
    }

    fn note_index(&mut self, index: LogIndex) {
        self.response_index = self.response_index.max(index);
    }

    fn on_response(
        &mut self,
        from: ReplicaId,
        response: ClientResponse,
        out: &mut Vec<ClientAction>,
    ) {
        let Some(in_flight) = self.connection.take(from, response.request_id) else {
            return; // Unknown, stale (a retry went out since), or from another server.
        };
        if matches!(
            in_flight.purpose,
            Purpose::Register | Purpose::KeepAlive | Purpose::Unregister
        ) {
            assert_eq!(self.control_request, Some(response.request_id));
            self.control_request = None;
        }
        match in_flight.purpose {
            Purpose::Connect => self.on_connect_response(from, response.body, out),
            Purpose::Register => {
                self.on_register_response(from, in_flight.sent_ms, response.body, out)
            }
            Purpose::KeepAlive => {
                self.on_keep_alive_response(from, in_flight.sent_ms, response.body, out)
            }
            Purpose::Unregister => match response.body {
                Ok(ResponseBody::Unregister) | Err(ClientError::UnknownSession) => {
                    assert!(matches!(self.phase, Phase::Closing(_)));
                    self.close_locally(out);
                }
                _ => self.server_failed(out),
            },
            Purpose::Operation(id) => {
                self.on_operation_response(from, id, in_flight.sent_ms, response.body, out);
            }
        }
    }

    fn on_connect_response(
        &mut self,
        from: ReplicaId,
        body: Result<ResponseBody, ClientError>,
        out: &mut Vec<ClientAction>,
    ) {
        let Ok(ResponseBody::Connect { leader, members }) = body else {
            return self.server_failed(out);
        };
        self.connection.on_connected(from);
        self.connection.update_view(leader, &members);
        // The server pushes every batch not acknowledged yet to a client that connects, so
        // a new connection needs no reset of its own.
        self.switch_if_unwanted(out);
    }

    fn on_register_response(
        &mut self,
        from: ReplicaId,
        sent_ms: u64,
        body: Result<ResponseBody, ClientError>,
        out: &mut Vec<ClientAction>,
    ) {
        assert_eq!(self.phase, Phase::Registering);
        let Ok(ResponseBody::Register {
            session,
            timeout_ms,
            leader,
            members,
        }) = body
        else {
            return self.server_failed(out);
        };
        let acked = (0, session.index());
        self.phase = Phase::Open(OpenSession {
            id: session,
            timeout_ms: timeout_ms.max(SESSION_TIMEOUT_MS_MIN),
            last_alive_ms: sent_ms,
            last_ack_ms: sent_ms,
            acked,
            acking: acked,
        });
        self.unstable_since_ms = None;
        self.note_index(session.index());
        self.submitter.renumber();
        self.sequencer.start_session(session, self.now_ms, out);
        self.connection.succeeded(from);
        self.connection.update_view(leader, &members);
        out.push(ClientAction::SessionOpened { session });
        self.set_state(ClientState::Connected, out);
        self.switch_if_unwanted(out);
    }

    fn on_keep_alive_response(
        &mut self,
        from: ReplicaId,
        sent_ms: u64,
        body: Result<ResponseBody, ClientError>,
        out: &mut Vec<ClientAction>,
    ) {
        match body {
            Ok(ResponseBody::KeepAlive { leader, members }) => {
                let Phase::Open(open) = &mut self.phase else {
                    unreachable!("keep-alives are withdrawn when the session ends");
                };
                open.last_ack_ms = open.last_ack_ms.max(sent_ms);
                open.acked = open.acking;
                self.keep_alive_forced = false;
                self.submitter.keep_alive_answered();
                self.session_alive(from, sent_ms, out);
                self.connection.update_view(leader, &members);
                self.switch_if_unwanted(out);
            }
            Err(ClientError::UnknownSession) => self.expire(out),
            _ => self.server_failed(out),
        }
    }

    fn on_operation_response(
        &mut self,
        from: ReplicaId,
        id: OperationId,
        sent_ms: u64,
        body: Result<ResponseBody, ClientError>,
        out: &mut Vec<ClientAction>,
    ) {
        let now_ms = self.now_ms;
        let pending = self
            .submitter
            .get(id)
            .expect("operations in flight are pending");
        let (kind, filler, sequence) = (pending.kind, pending.is_filler(), pending.sequence());
        match (kind, body) {
            (
                OperationKind::Command(consistency),
                Ok(ResponseBody::Command {
                    index,
                    event_index,
                    output,
                }),
            ) => {
                self.submitter.answered(id);
                self.note_index(index);
                self.session_alive(from, sent_ms, out);
                if !filler {
                    // Only a linearizable command waits for the events published before it.
                    let gate = (consistency == CommandConsistency::Linearizable
                        && !self.config.planted_bugs.response_before_events)
                        .then_some(event_index);
                    let result = Ok(Completion { index, output });
                    self.sequencer.complete(id, result, gate, now_ms, out);
                }
            }
            (
                OperationKind::Query(_),
                Ok(ResponseBody::Query {
                    index,
                    event_index,
                    output,
                }),
            ) => {
                self.submitter.answered(id);
                self.note_index(index);
                self.connection.succeeded(from);
                let result = Ok(Completion { index, output });
                let gate =
                    (!self.config.planted_bugs.response_before_events).then_some(event_index);
                self.sequencer.complete(id, result, gate, now_ms, out);
            }
            // The wrong kind of answer: the server is broken.
            (_, Ok(_)) => self.server_failed(out),
            // Any operation can learn that the session expired (Copycat #277).
            (_, Err(ClientError::UnknownSession)) => self.expire(out),
            (OperationKind::Command(_), Err(ClientError::Command { last_sequence }))
                if sequence > 0 =>
            {
                let gap = self.submitter.on_gap(id, last_sequence, now_ms);
                if gap.applied_without_output && !filler {
                    let result = Err(ClientError::Command { last_sequence });
                    self.sequencer.complete(id, result, None, now_ms, out);
                }
                for request_id in gap.withdrawn {
                    self.connection.withdraw(request_id);
                }
                if gap.keep_alive_first {
                    self.keep_alive_forced = true;
                }
            }
            (
                _,
                Err(
                    ClientError::NoLeader
                    | ClientError::Query { .. }
                    | ClientError::IllegalMemberState { .. }
                    | ClientError::Command { .. },
                ),
            ) => self.server_failed(out),
            (_, Err(ClientError::Application(error))) => {
                self.submitter.answered(id);
                if !filler {
                    let result = Err(ClientError::Application(error));
                    self.sequencer.complete(id, result, None, now_ms, out);
                }
            }
            // Internal, configuration, or a server claiming the client-side error: this
            // operation fails for good; a command's sequence is filled with a no-op.
            (kind, Err(error)) => {
                if !filler {
                    self.sequencer.complete(id, Err(error), None, now_ms, out);
                }
                match kind {
                    OperationKind::Command(_) => {
                        self.submitter.make_filler(id, now_ms);
                    }
                    OperationKind::Query(_) => {
                        self.submitter.answered(id);
                    }
                }
            }
        }
    }
}
