//! Queries at their four consistency levels (SPEC §D). A query is never logged: it waits
//! here until the server's state is recent enough for its level, then runs against the
//! last applied state.
//!
//! - SEQUENTIAL and CAUSAL run on any server with a log once it has applied what the client
//!   has seen (the highest index in any response it got, and its own last command).
//!   SEQUENTIAL goes to the leader instead when this server has not seen the session yet or
//!   lacks entries it knows are committed.
//! - LINEARIZABLE runs at the leader once its first entry of the term has committed: it
//!   takes the commit index as the read point, starts (or joins) a confirmation round, and
//!   answers when the round is confirmed and the read point applied.
//! - LINEARIZABLE_LEASE skips the round while the leader's lease holds at arrival.

use bytes::Bytes;

use crate::replica::Role;
use crate::server::output::{Origin, ServerOutput};
use crate::server::server::Server;
use crate::session::{ClientError, QueryConsistency, RequestBody, ResponseBody, SessionId};
use crate::state_machine::StateMachine;
use crate::types::{LogIndex, Term};

/// Where a waiting query stands.
#[derive(Clone, Debug)]
pub(crate) enum ReadState {
    /// Served here from the applied state.
    Local,
    /// A leader read waiting for the leader's first commit of its term.
    AwaitingReady,
    /// A leader read waiting for its confirmation round.
    Round {
        term: Term,
        read_index: LogIndex,
        round: u64,
    },
    /// A leader read on the lease: no round.
    Lease { term: Term, read_index: LogIndex },
}

/// A query waiting for its conditions.
#[derive(Clone, Debug)]
pub(crate) struct PendingQuery {
    pub origin: Origin,
    pub session: SessionId,
    /// The client's last command: it must have applied.
    pub sequence: u64,
    /// The highest index the client has seen: it must have applied.
    pub index: LogIndex,
    pub consistency: QueryConsistency,
    pub operation: Bytes,
    pub read: ReadState,
    pub deadline_ms: u64,
}

impl<S: StateMachine> Server<S> {
    /// Takes a query in: serves it here (now or once its conditions hold) or forwards it.
    pub(crate) fn query(&mut self, origin: Origin, body: RequestBody, out: &mut Vec<ServerOutput>) {
        let RequestBody::Query {
            session,
            sequence,
            index,
            consistency,
            operation,
        } = body
        else {
            unreachable!("only queries come here");
        };
        if self.session_gone(session) {
            self.respond(origin, Err(ClientError::UnknownSession), out);
            return;
        }
        let leading = self.leadership.is_some();
        // Where the query runs: here (waiting for the leader to be ready, or not), or at the
        // leader.
        let (read, to_leader) = match consistency {
            QueryConsistency::Linearizable | QueryConsistency::LinearizableLease
                if !leading
                    && self
                        .replica
                        .replica_config()
                        .planted_bugs
                        .follower_linearizable_reads =>
            {
                // The planted bug: a follower answers from its own, possibly stale, state.
                (ReadState::Local, false)
            }
            QueryConsistency::Linearizable | QueryConsistency::LinearizableLease => {
                (ReadState::AwaitingReady, !leading)
            }
            QueryConsistency::Sequential | QueryConsistency::Causal => {
                let has_log = matches!(
                    self.replica.role(),
                    Role::Leader | Role::Follower | Role::Candidate | Role::Passive
                );
                let behind = self.host.last_applied() < session.index()
                    || self.replica.log().last_index() < self.replica.commit_index();
                let sequential_behind = consistency == QueryConsistency::Sequential && behind;
                (
                    ReadState::Local,
                    !leading && (!has_log || sequential_behind),
                )
            }
        };
        if to_leader {
            let body = body_of(session, sequence, index, consistency, operation);
            self.forward(origin, body, out);
            return;
        }
        self.next_query_id += 1;
        let id = self.next_query_id;
        self.queries.insert(
            id,
            PendingQuery {
                origin,
                session,
                sequence,
                index,
                consistency,
                operation,
                read,
                deadline_ms: self.now.monotonic_ms + self.config.request_timeout_ms,
            },
        );
        self.check_queries(out);
    }

    /// Serves every waiting query whose conditions now hold; starts leader reads whose
    /// leader became ready.
    pub(crate) fn check_queries(&mut self, out: &mut Vec<ServerOutput>) {
        if self.queries.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.queries.keys().copied().collect();
        for id in ids {
            let Some(mut query) = self.queries.remove(&id) else {
                continue;
            };
            if let ReadState::AwaitingReady = query.read {
                query.read = self.start_leader_read(query.consistency);
            }
            match self.ready(&query) {
                Ok(false) => {
                    self.queries.insert(id, query);
                }
                Ok(true) => self.serve(query, out),
                Err(error) => self.respond(query.origin, Err(error), out),
            }
        }
        // Rounds started above put heartbeats in the replica's actions.
        if !self.actions.is_empty() {
            self.drain(out);
        }
    }

    fn start_leader_read(&mut self, consistency: QueryConsistency) -> ReadState {
        let Some(term) = self.leadership.as_ref().map(|leadership| leadership.term) else {
            return ReadState::AwaitingReady;
        };
        if !self.replica.leader_ready() {
            return ReadState::AwaitingReady;
        }
        let read_index = self.replica.commit_index();
        let lease_holds = self
            .replica
            .lease_until_ms()
            .is_some_and(|until| self.now.monotonic_ms < until);
        if consistency == QueryConsistency::LinearizableLease && lease_holds {
            return ReadState::Lease { term, read_index };
        }
        match self.replica.confirm_leadership(&mut self.actions) {
            Ok(round) => ReadState::Round {
                term,
                read_index,
                round,
            },
            Err(_) => ReadState::AwaitingReady,
        }
    }

    /// Whether a query may run now; an error if it never will here.
    fn ready(&self, query: &PendingQuery) -> Result<bool, ClientError> {
        let applied = self.host.last_applied();
        let read_index = match &query.read {
            ReadState::Local => LogIndex::ZERO,
            ReadState::AwaitingReady => return Ok(false),
            ReadState::Lease { term, read_index } => {
                self.check_term(*term)?;
                *read_index
            }
            ReadState::Round {
                term,
                read_index,
                round,
            } => {
                self.check_term(*term)?;
                let confirmed = self
                    .leadership
                    .as_ref()
                    .map_or(0, |leadership| leadership.confirmed_round);
                if confirmed < *round {
                    return Ok(false);
                }
                *read_index
            }
        };
        if applied < read_index.max(query.index) {
            return Ok(false);
        }
        match self.host.sessions().get(query.session) {
            Some(session) => Ok(session.command_sequence() >= query.sequence),
            None if self.session_gone(query.session) => Err(ClientError::UnknownSession),
            None => Ok(false),
        }
    }

    fn check_term(&self, term: Term) -> Result<(), ClientError> {
        match &self.leadership {
            Some(leadership) if leadership.term == term => Ok(()),
            _ => Err(ClientError::Query {
                reason: "leadership lost before the read was confirmed".into(),
            }),
        }
    }

    fn serve(&mut self, query: PendingQuery, out: &mut Vec<ServerOutput>) {
        match query.read {
            ReadState::Local if self.leadership.is_none() => self.stats.queries_local += 1,
            ReadState::Lease { .. } => self.stats.queries_lease += 1,
            _ => self.stats.queries_leader += 1,
        }
        let output = self.host.query(query.session, &query.operation);
        let event_index = self
            .host
            .sessions()
            .get(query.session)
            .map_or(LogIndex::ZERO, |session| session.event_index());
        let body = Ok(ResponseBody::Query {
            index: self.host.last_applied(),
            event_index,
            output,
        });
        self.respond(query.origin, body, out);
    }

    /// Leader reads fail when leadership ends; the client retries at the new leader.
    pub(crate) fn fail_leader_queries(&mut self, out: &mut Vec<ServerOutput>) {
        let failed: Vec<u64> = self
            .queries
            .iter()
            .filter(|(_, query)| !matches!(query.read, ReadState::Local))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            if let Some(query) = self.queries.remove(&id) {
                let reason = "leadership lost before the read was served".to_string();
                self.respond(query.origin, Err(ClientError::Query { reason }), out);
            }
        }
    }

    /// A session closed: its waiting queries never will run.
    pub(crate) fn fail_session_queries(&mut self, session: SessionId, out: &mut Vec<ServerOutput>) {
        let failed: Vec<u64> = self
            .queries
            .iter()
            .filter(|(_, query)| query.session == session)
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            if let Some(query) = self.queries.remove(&id) {
                self.respond(query.origin, Err(ClientError::UnknownSession), out);
            }
        }
    }

    /// Queries held past the request timeout are answered with an error.
    pub(crate) fn expire_queries(&mut self, out: &mut Vec<ServerOutput>) {
        let now_ms = self.now.monotonic_ms;
        let expired: Vec<u64> = self
            .queries
            .iter()
            .filter(|(_, query)| query.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(query) = self.queries.remove(&id) {
                let reason = "timed out waiting for the state it must read".to_string();
                self.respond(query.origin, Err(ClientError::Query { reason }), out);
            }
        }
    }
}

fn body_of(
    session: SessionId,
    sequence: u64,
    index: LogIndex,
    consistency: QueryConsistency,
    operation: Bytes,
) -> RequestBody {
    RequestBody::Query {
        session,
        sequence,
        index,
        consistency,
        operation,
    }
}
