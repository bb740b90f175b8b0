//! One server of a group: the Raft replica, the state-machine host, and the session layer
//! between them and the clients (SPEC §B–§F, §I). Pure like the replica: inputs in,
//! [`ServerOutput`]s out, no clock, no I/O.
//!
//! This file holds the state, the inputs, and the loop that carries out the replica's
//! actions (applying committed entries and answering whoever waits on them). Client
//! requests are in `requests.rs`, queries in `queries.rs`, the leader's session expiry in
//! `expiry.rs`.

use std::collections::BTreeMap;

use crate::action::{Action, Actions};
use crate::membership::MemberType;
use crate::replica::{Replica, Role};
use crate::server::config::ServerConfig;
use crate::server::output::{ConnectionId, Origin, ServerOutput};
use crate::server::peer_message::PeerMessage;
use crate::server::queries::PendingQuery;
use crate::session::{
    ClientError, ClientId, ClientRequest, ClientResponse, RequestBody, ResponseBody, SessionId,
    ToClient,
};
use crate::state_machine::{Applied, Outcome, StateMachine, StateMachineHost};
use crate::types::{LogIndex, PersistId, ReplicaId, Term, Time};
use crate::Envelope;

/// A request forwarded to the leader, waiting for its reply.
#[derive(Clone, Debug)]
pub(crate) struct Forwarded {
    pub origin: Origin,
    /// The request, to send again if the leader changes before it answers.
    pub request: RequestBody,
    /// The leader it went to.
    pub leader: ReplicaId,
    pub deadline_ms: u64,
}

/// What this server does while it leads: who waits on which entry, and what it knows of
/// each session beyond the applied state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Leadership {
    pub term: Term,
    /// When this leadership began (monotonic): no session is expired for silence shorter
    /// than its timeout measured from here.
    pub since_ms: u64,
    /// Register, keep-alive, unregister and unsequenced commands, by their entry's index.
    /// A leader never truncates its own log, so an index names the same entry for the
    /// whole leadership.
    pub by_index: BTreeMap<LogIndex, Origin>,
    /// Sequenced commands, by (session, sequence): a command held back by a gap is answered
    /// when it runs, at a later entry.
    pub by_sequence: BTreeMap<(SessionId, u64), Origin>,
    /// The highest sequence logged per session during this leadership.
    pub logged_sequence: BTreeMap<SessionId, u64>,
    /// When this leader last heard from each session's client (monotonic).
    pub heard_ms: BTreeMap<SessionId, u64>,
    /// Sessions whose expiry was logged and when, so it is not logged again at once.
    pub expiring: BTreeMap<SessionId, u64>,
    /// The highest confirmation round known confirmed.
    pub confirmed_round: u64,
}

/// Counters for metrics and the simulator's report.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests forwarded to the leader.
    pub forwarded: u64,
    /// Queries served, by where they ran: here as leader, here as non-leader.
    pub queries_leader: u64,
    /// Queries served by a follower or passive member.
    pub queries_local: u64,
    /// Queries served on the lease, without a round.
    pub queries_lease: u64,
    /// Sessions this server expired as leader.
    pub expiries_logged: u64,
    /// Event batches sent to clients.
    pub batches_sent: u64,
    /// Resends that skipped batches dropped for falling too far behind.
    pub batches_lost: u64,
}

/// One server.
pub struct Server<S: StateMachine> {
    pub(crate) config: ServerConfig,
    pub(crate) replica: Replica,
    pub(crate) host: StateMachineHost<S>,
    pub(crate) actions: Actions,
    pub(crate) applied: Applied,
    pub(crate) now: Time,
    /// The connection each client last used here: its events go there.
    pub(crate) connections: BTreeMap<ClientId, ConnectionId>,
    pub(crate) leadership: Option<Leadership>,
    pub(crate) forwards: BTreeMap<u64, Forwarded>,
    pub(crate) next_forward_id: u64,
    pub(crate) queries: BTreeMap<u64, PendingQuery>,
    pub(crate) next_query_id: u64,
    pub(crate) stats: ServerStats,
}

impl<S: StateMachine> Server<S> {
    /// A server around a replica (new or restarted) and a state machine at its initial
    /// state; committed entries are replayed into it as the replica learns the commit
    /// index.
    ///
    /// # Panics
    /// If `config` is invalid.
    pub fn new(config: ServerConfig, replica: Replica, machine: S, now: Time) -> Server<S> {
        if let Err(reason) = config.validate() {
            panic!("invalid server configuration: {reason}");
        }
        let next_forward_id = forward_ids_start(&replica, now);
        let mut host = StateMachineHost::new(machine);
        if replica.replica_config().planted_bugs.skip_dedupe {
            host.plant_skip_dedupe();
        }
        Server {
            config,
            replica,
            host,
            actions: Actions::new(),
            applied: Applied::default(),
            now,
            connections: BTreeMap::new(),
            leadership: None,
            forwards: BTreeMap::new(),
            next_forward_id,
            queries: BTreeMap::new(),
            next_query_id: 0,
            stats: ServerStats::default(),
        }
    }

    /// The Raft replica.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The state machine and its sessions.
    pub fn host(&self) -> &StateMachineHost<S> {
        &self.host
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Requests waiting here (entries, forwards, queries).
    pub fn pending_count(&self) -> usize {
        let leading = self.leadership.as_ref().map_or(0, |leadership| {
            leadership.by_index.len() + leadership.by_sequence.len()
        });
        leading + self.forwards.len() + self.queries.len()
    }

    /// Time passes: the replica's timers, then requests that waited too long, then the
    /// leader's session expiry.
    pub fn tick(&mut self, now: Time, out: &mut Vec<ServerOutput>) {
        self.observe_time(now);
        self.replica.tick(now, &mut self.actions);
        self.drain(out);
        self.expire_waiting(out);
        self.expire_sessions(out);
        self.drain(out);
    }

    /// A message from another server, arriving at `now`.
    pub fn on_peer_message(
        &mut self,
        from: ReplicaId,
        message: PeerMessage,
        now: Time,
        out: &mut Vec<ServerOutput>,
    ) {
        self.observe_time(now);
        match message {
            PeerMessage::Raft(message) => {
                let envelope = Envelope {
                    from,
                    to: self.replica.id(),
                    message,
                };
                self.replica.on_message(envelope, &mut self.actions);
                self.drain(out);
            }
            PeerMessage::Forward {
                forward_id,
                request,
            } => {
                let origin = Origin::Peer { from, forward_id };
                self.handle(origin, request, out);
            }
            PeerMessage::ForwardReply { forward_id, body } => {
                if let Some(forwarded) = self.forwards.remove(&forward_id) {
                    self.respond(forwarded.origin, body, out);
                }
            }
        }
    }

    /// A request from a client on `connection`, arriving at `now`.
    pub fn on_client_request(
        &mut self,
        connection: ConnectionId,
        request: ClientRequest,
        now: Time,
        out: &mut Vec<ServerOutput>,
    ) {
        self.observe_time(now);
        let origin = Origin::Client {
            connection,
            request_id: request.request_id,
        };
        match request.body {
            RequestBody::Connect { client } => {
                self.connections.insert(client, connection);
                let body = Ok(ResponseBody::Connect {
                    leader: self.replica.leader(),
                    members: self.members(),
                });
                self.respond(origin, body, out);
                // A client that comes back (or moves here) gets every batch it has not
                // acknowledged; it ignores what it already has.
                if let Some(session) = self.host.sessions().of_client(client) {
                    let (id, after) = (session.id(), session.event_ack());
                    self.resend_events(id, after, out);
                }
            }
            RequestBody::ResetEvents { session, index } => {
                if let Some(state) = self.host.sessions().get(session) {
                    self.connections.insert(state.client(), connection);
                    self.resend_events(session, index, out);
                }
            }
            body => {
                self.note_connection(connection, &body);
                self.handle(origin, body, out);
            }
        }
    }

    /// A client connection closed: its clients' events wait for them to connect again.
    pub fn on_connection_closed(&mut self, connection: ConnectionId) {
        self.connections.retain(|_, held| *held != connection);
    }

    /// Runs an input on the replica directly (membership changes, tests) and carries out
    /// what it asked for.
    pub fn replica_input<R>(
        &mut self,
        input: impl FnOnce(&mut Replica, &mut Actions) -> R,
        out: &mut Vec<ServerOutput>,
    ) -> R {
        let result = input(&mut self.replica, &mut self.actions);
        self.drain(out);
        result
    }

    /// Every `Persist` through `id` is durable, as of `now`.
    pub fn on_persisted(&mut self, id: PersistId, now: Time, out: &mut Vec<ServerOutput>) {
        self.observe_time(now);
        self.replica.on_persisted(id, &mut self.actions);
        self.drain(out);
    }

    /// Every input brings the time: what the server and the replica stamp (when a client
    /// was last heard from, when a leadership or a confirmation round began) is then exact,
    /// not up to a tick early; an early stamp would make expiry and leases err on the
    /// unsafe side. Time never goes back.
    fn observe_time(&mut self, now: Time) {
        if now.monotonic_ms >= self.now.monotonic_ms {
            self.now = now;
        }
        self.replica.observe_time(now);
    }

    /// The servers a client may connect to: active and passive members.
    pub(crate) fn members(&self) -> Vec<ReplicaId> {
        self.replica
            .configuration()
            .members
            .iter()
            .filter(|member| matches!(member.member_type, MemberType::Active | MemberType::Passive))
            .map(|member| member.id)
            .collect()
    }

    fn note_connection(&mut self, connection: ConnectionId, body: &RequestBody) {
        let client = match body {
            RequestBody::Register { client, .. } => Some(*client),
            RequestBody::KeepAlive { session, .. }
            | RequestBody::Unregister { session }
            | RequestBody::Command { session, .. }
            | RequestBody::Query { session, .. } => self
                .host
                .sessions()
                .get(*session)
                .map(|state| state.client()),
            RequestBody::Connect { .. } | RequestBody::ResetEvents { .. } => None,
        };
        if let Some(client) = client {
            self.connections.insert(client, connection);
        }
    }

    /// Sends the answer to whoever waits: a client here, or the server that forwarded it.
    pub(crate) fn respond(
        &mut self,
        origin: Origin,
        body: Result<ResponseBody, ClientError>,
        out: &mut Vec<ServerOutput>,
    ) {
        match origin {
            Origin::Client {
                connection,
                request_id,
            } => out.push(ServerOutput::Client {
                connection,
                message: ToClient::Response(ClientResponse { request_id, body }),
            }),
            Origin::Peer { from, forward_id } => out.push(ServerOutput::Peer {
                to: from,
                message: PeerMessage::ForwardReply { forward_id, body },
            }),
        }
    }

    fn resend_events(&mut self, session: SessionId, after: LogIndex, out: &mut Vec<ServerOutput>) {
        let Some(state) = self.host.sessions().get(session) else {
            return;
        };
        let Some(&connection) = self.connections.get(&state.client()) else {
            return;
        };
        let mut batches: Vec<_> = state.batches_after(after).cloned().collect();
        if let Some(first) = batches.first_mut() {
            if first.previous_index > after.max(state.event_ack()) {
                // Batches between were dropped (the session fell `EVENT_BATCHES_MAX`
                // behind): they cannot come again, so the chain restarts at what the client
                // has, or it would ask for them forever.
                self.stats.batches_lost += 1;
                first.previous_index = after;
            }
        }
        for batch in batches {
            self.stats.batches_sent += 1;
            out.push(ServerOutput::Client {
                connection,
                message: ToClient::Publish(batch),
            });
        }
    }

    /// Carries out the replica's actions: sends go out, committed entries are applied and
    /// answered, the rest passes to the driver.
    pub(crate) fn drain(&mut self, out: &mut Vec<ServerOutput>) {
        while !self.actions.is_empty() {
            let actions: Vec<Action> = self.actions.drain().collect();
            for action in actions {
                match action {
                    Action::Send { to, message } => out.push(ServerOutput::Peer {
                        to,
                        message: PeerMessage::Raft(message),
                    }),
                    Action::Apply { entries } => {
                        let Some(last) = entries.last().map(|entry| entry.index) else {
                            continue;
                        };
                        for entry in &entries {
                            self.applied.clear();
                            self.host.apply(entry, &mut self.applied);
                            self.after_apply(entry.term, out);
                        }
                        self.replica.on_applied(last);
                        out.push(ServerOutput::Applied { entries });
                        self.check_queries(out);
                    }
                    Action::RoleChanged { role, term, leader } => {
                        self.on_role(role, term, out);
                        self.reforward(leader, out);
                        out.push(ServerOutput::Replica(Action::RoleChanged {
                            role,
                            term,
                            leader,
                        }));
                    }
                    Action::LeadershipConfirmed { term, round } => {
                        if let Some(leadership) = self.leadership.as_mut() {
                            if leadership.term == term {
                                leadership.confirmed_round = leadership.confirmed_round.max(round);
                            }
                        }
                        self.check_queries(out);
                    }
                    Action::Committed { index } => {
                        out.push(ServerOutput::Replica(Action::Committed { index }));
                        // A new leader's queries wait for its first commit.
                        self.check_queries(out);
                    }
                    other => out.push(ServerOutput::Replica(other)),
                }
            }
        }
    }

    fn on_role(&mut self, role: Role, term: Term, out: &mut Vec<ServerOutput>) {
        let leading = self
            .leadership
            .as_ref()
            .is_some_and(|leadership| leadership.term == term);
        if role == Role::Leader && !leading {
            self.step_down(out);
            self.leadership = Some(Leadership {
                term,
                since_ms: self.now.monotonic_ms,
                ..Leadership::default()
            });
        } else if role != Role::Leader {
            self.step_down(out);
        }
    }

    /// A new leader is known: requests forwarded to the old one go to it too (the old one
    /// may still answer; a command sent twice is applied once, a keep-alive twice is
    /// harmless). Without this, a client's request would wait out its whole timeout on a
    /// dead leader while its session's clock ran.
    fn reforward(&mut self, leader: Option<ReplicaId>, out: &mut Vec<ServerOutput>) {
        let Some(leader) = leader.filter(|leader| *leader != self.replica.id()) else {
            return;
        };
        let deadline_ms = self.now.monotonic_ms + self.config.request_timeout_ms;
        for (&forward_id, forwarded) in &mut self.forwards {
            if forwarded.leader != leader {
                forwarded.leader = leader;
                forwarded.deadline_ms = deadline_ms;
                out.push(ServerOutput::Peer {
                    to: leader,
                    message: PeerMessage::Forward {
                        forward_id,
                        request: forwarded.request.clone(),
                    },
                });
            }
        }
    }

    /// Leadership ended: whoever waits on this leader's entries is told to retry. The
    /// entries may still commit under the next leader; a retried command is then answered
    /// from the session's cache, not applied again.
    fn step_down(&mut self, out: &mut Vec<ServerOutput>) {
        let Some(leadership) = self.leadership.take() else {
            return;
        };
        for origin in leadership
            .by_index
            .into_values()
            .chain(leadership.by_sequence.into_values())
        {
            self.respond(origin, Err(ClientError::NoLeader), out);
        }
        self.fail_leader_queries(out);
    }

    /// Answers the requests that waited on what the last entry did, and sends its events.
    fn after_apply(&mut self, term: Term, out: &mut Vec<ServerOutput>) {
        let outcomes = std::mem::take(&mut self.applied.outcomes);
        for outcome in &outcomes {
            self.on_outcome(outcome, term, out);
        }
        self.applied.outcomes = outcomes;
        let batches = std::mem::take(&mut self.applied.batches);
        for batch in &batches {
            let Some(state) = self.host.sessions().get(batch.session) else {
                continue;
            };
            if let Some(&connection) = self.connections.get(&state.client()) {
                self.stats.batches_sent += 1;
                out.push(ServerOutput::Client {
                    connection,
                    message: ToClient::Publish(batch.clone()),
                });
            }
        }
        self.applied.batches = batches;
    }

    /// Answers whoever waits on what an entry of `term` did. A request keyed by index waits
    /// for this leader's own entry there: an entry of another term at that index means its
    /// own was overwritten (the replica reports losing leadership only after the entries
    /// it learned of in the same input apply), and the request is told to retry instead of
    /// getting another request's answer.
    fn on_outcome(&mut self, outcome: &Outcome, term: Term, out: &mut Vec<ServerOutput>) {
        let now_ms = self.now.monotonic_ms;
        let (leader, members) = (self.replica.leader(), self.members());
        let Some(leadership) = self.leadership.as_mut() else {
            if let Outcome::Closed { session, .. } = outcome {
                self.fail_session_queries(*session, out);
            }
            return;
        };
        // Whether a request waiting on this index waits for this very entry.
        let own_entry = leadership.term == term;
        let (origin, body, keyed_by_index) = match outcome {
            Outcome::Registered {
                session,
                timeout_ms,
                ..
            } => {
                leadership.heard_ms.insert(*session, now_ms);
                let body = Ok(ResponseBody::Register {
                    session: *session,
                    timeout_ms: *timeout_ms,
                    leader,
                    members,
                });
                (leadership.by_index.remove(&session.index()), body, true)
            }
            Outcome::KeptAlive {
                index,
                session,
                result,
            } => {
                if result.is_ok() {
                    let heard = leadership.heard_ms.entry(*session).or_insert(now_ms);
                    *heard = (*heard).max(now_ms);
                }
                let body = result
                    .clone()
                    .map(|()| ResponseBody::KeepAlive { leader, members });
                (leadership.by_index.remove(index), body, true)
            }
            Outcome::Unregistered { index, result, .. } => {
                let body = match result {
                    Ok(_) => Ok(ResponseBody::Unregister),
                    Err(error) => Err(error.clone()),
                };
                (leadership.by_index.remove(index), body, true)
            }
            Outcome::Command {
                session,
                sequence,
                index,
                result,
            } => {
                let origin = if *sequence == 0 {
                    leadership.by_index.remove(index)
                } else {
                    leadership.by_sequence.remove(&(*session, *sequence))
                };
                let body = result.clone().map(|result| ResponseBody::Command {
                    index: result.index,
                    event_index: result.event_index,
                    output: result.output,
                });
                (origin, body, *sequence == 0)
            }
            Outcome::Closed { session, .. } => {
                leadership.heard_ms.remove(session);
                leadership.expiring.remove(session);
                leadership.logged_sequence.remove(session);
                self.fail_session_queries(*session, out);
                return;
            }
        };
        // Its own entry was overwritten by another leader's: retry, rather than take
        // another request's answer.
        let body = if keyed_by_index && !own_entry {
            Err(ClientError::NoLeader)
        } else {
            body
        };
        if let Some(origin) = origin {
            self.respond(origin, body, out);
        }
    }

    /// Requests forwarded or queries held longer than the request timeout are answered
    /// with an error; the client retries.
    fn expire_waiting(&mut self, out: &mut Vec<ServerOutput>) {
        let now_ms = self.now.monotonic_ms;
        let expired: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, forwarded)| forwarded.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(forwarded) = self.forwards.remove(&id) {
                self.respond(forwarded.origin, Err(ClientError::NoLeader), out);
            }
        }
        self.expire_queries(out);
    }
}

/// Where a server's forward ids start: drawn from its seed and its start time, so that a
/// restarted server does not reuse its predecessor's ids. A leader's late reply to a forward
/// of the previous process would otherwise be taken for the answer to a new one, and a
/// client would get another request's response (the simulator found this).
fn forward_ids_start(replica: &Replica, now: Time) -> u64 {
    let seed = replica.replica_config().seed ^ now.wall_ms ^ now.monotonic_ms.rotate_left(32);
    crate::prng::Prng::new(seed).next_u64()
}
