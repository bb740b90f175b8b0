//! Scenario tests of [`ClientSession`] against servers driven by hand, or by a small fake
//! cluster that answers at once.
//!
//! The harness keeps what the client sent in an outbox (tests pop requests and answer
//! them) and every other action in a list (tests take and compare them). After every
//! `tick` it checks that the client's next wake-up lies in the future, so a driver that
//! sleeps until `next_wake_ms` can never spin.

mod events;
mod failover;
mod random;
mod recovery;
mod session;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::client::{
    ClientAction, ClientConfig, ClientSession, ClientState, Completion, OperationId, SubmitError,
};
use crate::session::{
    ClientError, ClientId, ClientResponse, CommandConsistency, EventBatch, QueryConsistency,
    RequestBody, ResponseBody, SessionEvent, SessionId, ToClient,
};
use crate::types::{LogIndex, ReplicaId};

pub const CLIENT: ClientId = ClientId(77);
pub const SESSION_TIMEOUT_MS: u64 = 1000;
pub const REQUEST_TIMEOUT_MS: u64 = 100;

pub fn config() -> ClientConfig {
    let mut config = ClientConfig::new(CLIENT);
    config.session_timeout_ms = SESSION_TIMEOUT_MS;
    config.request_timeout_ms = REQUEST_TIMEOUT_MS;
    config.seed = 7;
    config
}

pub fn ids(list: &[u64]) -> Vec<ReplicaId> {
    list.iter().copied().map(ReplicaId).collect()
}

pub fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub fn connect_ok(leader: Option<u64>, members: &[u64]) -> Result<ResponseBody, ClientError> {
    Ok(ResponseBody::Connect {
        leader: leader.map(ReplicaId),
        members: ids(members),
    })
}

pub fn register_ok(
    session: u64,
    leader: Option<u64>,
    members: &[u64],
) -> Result<ResponseBody, ClientError> {
    Ok(ResponseBody::Register {
        session: SessionId(session),
        timeout_ms: SESSION_TIMEOUT_MS,
        leader: leader.map(ReplicaId),
        members: ids(members),
    })
}

pub fn keep_alive_ok(leader: Option<u64>, members: &[u64]) -> Result<ResponseBody, ClientError> {
    Ok(ResponseBody::KeepAlive {
        leader: leader.map(ReplicaId),
        members: ids(members),
    })
}

pub fn command_ok(index: u64, event_index: u64, output: &str) -> Result<ResponseBody, ClientError> {
    Ok(ResponseBody::Command {
        index: LogIndex(index),
        event_index: LogIndex(event_index),
        output: Ok(bytes(output)),
    })
}

pub fn query_ok(index: u64, event_index: u64, output: &str) -> Result<ResponseBody, ClientError> {
    Ok(ResponseBody::Query {
        index: LogIndex(index),
        event_index: LogIndex(event_index),
        output: Ok(bytes(output)),
    })
}

pub fn batch(session: u64, previous: u64, index: u64, names: &[&str]) -> EventBatch {
    EventBatch {
        session: SessionId(session),
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

/// A completion as `(operation, output text)` or `(operation, error code)`.
pub fn completed(action: &ClientAction) -> Option<(u64, Result<String, u8>)> {
    match action {
        ClientAction::Complete { operation, result } => Some((
            operation.0,
            match result {
                Ok(Completion { output, .. }) => Ok(String::from_utf8_lossy(
                    output.as_ref().expect("test outputs are not errors"),
                )
                .into_owned()),
                Err(error) => Err(error.code()),
            },
        )),
        _ => None,
    }
}

/// A request sent: to whom, its id, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub to: u64,
    pub at_ms: u64,
    pub request_id: u64,
    pub body: RequestBody,
}

pub struct Harness {
    pub client: ClientSession,
    pub now: u64,
    pub outbox: VecDeque<Sent>,
    /// Everything sent, in order.
    pub sent_log: Vec<Sent>,
    pub actions: Vec<ClientAction>,
}

impl Harness {
    pub fn new(config: ClientConfig, servers: &[u64]) -> Harness {
        Harness {
            client: ClientSession::new(config, ids(servers), 0),
            now: 0,
            outbox: VecDeque::new(),
            sent_log: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn absorb(&mut self, out: Vec<ClientAction>) {
        for action in out {
            match action {
                ClientAction::Send { to, request } => {
                    let sent = Sent {
                        to: to.0,
                        at_ms: self.now,
                        request_id: request.request_id,
                        body: request.body,
                    };
                    self.sent_log.push(sent.clone());
                    self.outbox.push_back(sent);
                }
                other => self.actions.push(other),
            }
        }
    }

    pub fn open(&mut self) {
        let mut out = Vec::new();
        self.client.open(self.now, &mut out);
        self.absorb(out);
    }

    pub fn submit(
        &mut self,
        text: &str,
        consistency: CommandConsistency,
    ) -> Result<OperationId, SubmitError> {
        let mut out = Vec::new();
        let result = self
            .client
            .submit_command(bytes(text), consistency, self.now, &mut out);
        self.absorb(out);
        result
    }

    pub fn command(&mut self, text: &str) -> OperationId {
        self.submit(text, CommandConsistency::Linearizable)
            .expect("the client takes commands")
    }

    pub fn query(&mut self, text: &str) -> OperationId {
        let mut out = Vec::new();
        let id = self
            .client
            .submit_query(
                bytes(text),
                QueryConsistency::Linearizable,
                self.now,
                &mut out,
            )
            .expect("the client takes queries");
        self.absorb(out);
        id
    }

    pub fn close(&mut self) {
        let mut out = Vec::new();
        self.client.close(self.now, &mut out);
        self.absorb(out);
    }

    pub fn tick(&mut self, at_ms: u64) {
        self.now = at_ms;
        let mut out = Vec::new();
        self.client.tick(at_ms, &mut out);
        self.absorb(out);
        if let Some(wake) = self.client.next_wake_ms() {
            assert!(
                wake > at_ms,
                "after a tick at {at_ms} the client wants a tick at {wake}"
            );
        }
    }

    pub fn lost(&mut self, server: u64) {
        let mut out = Vec::new();
        self.client
            .on_connection_lost(ReplicaId(server), self.now, &mut out);
        self.absorb(out);
    }

    pub fn reply(&mut self, from: u64, request_id: u64, body: Result<ResponseBody, ClientError>) {
        let message = ToClient::Response(ClientResponse { request_id, body });
        let mut out = Vec::new();
        self.client
            .on_message(ReplicaId(from), message, self.now, &mut out);
        self.absorb(out);
    }

    /// Answers a request popped from the outbox.
    pub fn answer(&mut self, sent: &Sent, body: Result<ResponseBody, ClientError>) {
        self.reply(sent.to, sent.request_id, body);
    }

    pub fn publish(&mut self, from: u64, batch: EventBatch) {
        let mut out = Vec::new();
        self.client.on_message(
            ReplicaId(from),
            ToClient::Publish(batch),
            self.now,
            &mut out,
        );
        self.absorb(out);
    }

    /// The oldest request not yet popped.
    pub fn pop(&mut self) -> Sent {
        self.outbox.pop_front().expect("the client sent something")
    }

    pub fn pop_all(&mut self) -> Vec<Sent> {
        self.outbox.drain(..).collect()
    }

    pub fn take_actions(&mut self) -> Vec<ClientAction> {
        std::mem::take(&mut self.actions)
    }

    /// The completions among the actions taken.
    pub fn take_completions(&mut self) -> Vec<(u64, Result<String, u8>)> {
        self.take_actions().iter().filter_map(completed).collect()
    }

    pub fn state(&self) -> ClientState {
        self.client.state()
    }

    /// Connects (answering with `leader`, following a switch the selection asks for) and
    /// registers `session`. Returns the server the session is on.
    pub fn establish(&mut self, session: u64, leader: Option<u64>, members: &[u64]) -> u64 {
        let mut connect = self.pop();
        assert!(
            matches!(connect.body, RequestBody::Connect { client: CLIENT }),
            "{connect:?}"
        );
        self.answer(&connect, connect_ok(leader, members));
        let mut next = self.pop();
        if matches!(next.body, RequestBody::Connect { .. }) {
            connect = next;
            self.answer(&connect, connect_ok(leader, members));
            next = self.pop();
        }
        assert_eq!(
            next.body,
            RequestBody::Register {
                client: CLIENT,
                timeout_ms: SESSION_TIMEOUT_MS
            }
        );
        assert_eq!(next.to, connect.to);
        self.answer(&next, register_ok(session, leader, members));
        assert!(self.take_actions().contains(&ClientAction::SessionOpened {
            session: SessionId(session)
        }));
        assert_eq!(self.state(), ClientState::Connected);
        next.to
    }

    /// Answers everything in the outbox (and what those answers make the client send)
    /// with `cluster`; requests to servers that are down stay unanswered.
    pub fn serve(&mut self, cluster: &mut FakeCluster) {
        while let Some(sent) = self.outbox.pop_front() {
            if let Some(body) = cluster.answer(&sent) {
                self.answer(&sent, body);
            }
        }
    }

    /// Serves, and ticks at every wake-up up to `until_ms`, serving after each.
    pub fn run_until(&mut self, until_ms: u64, cluster: &mut FakeCluster) {
        self.serve(cluster);
        while let Some(wake) = self.client.next_wake_ms() {
            if wake > until_ms {
                break;
            }
            self.tick(wake.max(self.now));
            self.serve(cluster);
        }
        self.tick(until_ms);
        self.serve(cluster);
    }

    /// The requests of one kind that were sent, as (time, body).
    pub fn sent_named(&self, name: &str) -> Vec<(u64, RequestBody)> {
        self.sent_log
            .iter()
            .filter(|sent| sent.body.name() == name)
            .map(|sent| (sent.at_ms, sent.body.clone()))
            .collect()
    }
}

/// A cluster that answers every request at once, as one state machine that echoes
/// command operations; it applies each (session, sequence) once. Sessions never expire.
pub struct FakeCluster {
    pub leader: u64,
    pub members: Vec<u64>,
    pub down: BTreeSet<u64>,
    pub last_index: u64,
    /// Live sessions, each with its applied commands: sequence -> (index, output).
    pub sessions: BTreeMap<SessionId, BTreeMap<u64, (u64, Bytes)>>,
    /// Every application, in order: (session, sequence, operation).
    pub applications: Vec<(u64, u64, Bytes)>,
}

impl FakeCluster {
    pub fn new(leader: u64, members: &[u64]) -> FakeCluster {
        FakeCluster {
            leader,
            members: members.to_vec(),
            down: BTreeSet::new(),
            last_index: 0,
            sessions: BTreeMap::new(),
            applications: Vec::new(),
        }
    }

    fn next_index(&mut self) -> u64 {
        self.last_index += 1;
        self.last_index
    }

    pub fn answer(&mut self, sent: &Sent) -> Option<Result<ResponseBody, ClientError>> {
        if self.down.contains(&sent.to) {
            return None;
        }
        let leader = Some(ReplicaId(self.leader));
        let members = ids(&self.members);
        let live = self
            .sessions
            .keys()
            .copied()
            .collect::<BTreeSet<SessionId>>();
        Some(match &sent.body {
            RequestBody::Connect { .. } => Ok(ResponseBody::Connect { leader, members }),
            RequestBody::Register { timeout_ms, .. } => {
                let session = SessionId(self.next_index());
                self.sessions.insert(session, BTreeMap::new());
                Ok(ResponseBody::Register {
                    session,
                    timeout_ms: *timeout_ms,
                    leader,
                    members,
                })
            }
            RequestBody::KeepAlive { session, .. } if live.contains(session) => {
                self.next_index();
                Ok(ResponseBody::KeepAlive { leader, members })
            }
            RequestBody::Unregister { session } if live.contains(session) => {
                self.sessions.remove(session);
                Ok(ResponseBody::Unregister)
            }
            RequestBody::Command {
                session,
                sequence,
                operation,
            } if live.contains(session) => self.command(*session, *sequence, operation),
            RequestBody::Query {
                session, operation, ..
            } if live.contains(session) => Ok(ResponseBody::Query {
                index: LogIndex(self.last_index),
                event_index: session.index(),
                output: Ok(operation.clone()),
            }),
            RequestBody::ResetEvents { .. } => return None,
            _ => Err(ClientError::UnknownSession),
        })
    }

    fn command(
        &mut self,
        session: SessionId,
        sequence: u64,
        operation: &Bytes,
    ) -> Result<ResponseBody, ClientError> {
        let applied = &self.sessions[&session];
        let last = applied.last_key_value().map_or(0, |(&last, _)| last);
        if sequence != 0 && sequence <= last {
            let (index, output) = applied[&sequence].clone();
            return Ok(ResponseBody::Command {
                index: LogIndex(index),
                event_index: session.index(),
                output: Ok(output),
            });
        }
        if sequence > last + 1 {
            return Err(ClientError::Command {
                last_sequence: last,
            });
        }
        let index = self.next_index();
        self.applications
            .push((session.0, sequence, operation.clone()));
        if sequence != 0 {
            let applied = self.sessions.get_mut(&session).expect("live");
            applied.insert(sequence, (index, operation.clone()));
        }
        Ok(ResponseBody::Command {
            index: LogIndex(index),
            event_index: session.index(),
            output: Ok(operation.clone()),
        })
    }
}

/// A harness whose session `session` is open on a server of `servers`; returns it and the
/// server.
pub fn opened(
    config: ClientConfig,
    servers: &[u64],
    session: u64,
    leader: Option<u64>,
) -> (Harness, u64) {
    let mut harness = Harness::new(config, servers);
    harness.open();
    assert_eq!(
        harness.take_actions(),
        vec![ClientAction::StateChanged(ClientState::Suspended)]
    );
    let server = harness.establish(session, leader, servers);
    (harness, server)
}

/// `Command { session, sequence, operation }` as (sequence, operation text).
pub fn command_of(body: &RequestBody) -> (u64, String) {
    match body {
        RequestBody::Command {
            sequence,
            operation,
            ..
        } => (*sequence, String::from_utf8_lossy(operation).into_owned()),
        other => panic!("not a command: {other:?}"),
    }
}

/// Connects the harness to the next server it tries, answering with `leader`; returns the
/// server (after any switch the selection asks for).
pub fn reconnect(harness: &mut Harness, leader: Option<u64>, members: &[u64]) -> u64 {
    let connect = harness.pop();
    assert!(
        matches!(connect.body, RequestBody::Connect { .. }),
        "{connect:?}"
    );
    harness.answer(&connect, connect_ok(leader, members));
    if harness
        .outbox
        .front()
        .is_some_and(|sent| matches!(sent.body, RequestBody::Connect { .. }))
    {
        return reconnect(harness, leader, members);
    }
    connect.to
}

/// Whether the client told the driver to drop `server`.
pub fn disconnected(actions: &[ClientAction], server: u64) -> bool {
    actions.contains(&ClientAction::Disconnect {
        server: ReplicaId(server),
    })
}
