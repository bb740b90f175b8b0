//! A tiny cluster of whole servers (replica, host, session layer) for scenario tests:
//! in-memory disks written at once, a FIFO network that can cut servers off, client
//! connections whose messages land in an inbox, one shared clock.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use crate::server::{ConnectionId, PeerMessage, Server, ServerConfig, ServerOutput};
use crate::session::{
    ClientError, ClientId, ClientRequest, EventBatch, QueryConsistency, RequestBody, ResponseBody,
    SessionId, ToClient,
};
use crate::state_machine::test_machine::TestMachine;
use crate::state_machine::{decode_value, encode_command, encode_query, Codec, Command, Query};
use crate::tests::harness::{at, config, voters, Store, ELECTION_TIMEOUT_MS};
use crate::{Action, Configuration, LogIndex, Replica, ReplicaId, Restored, Role};

/// The clock moves in steps of this size.
const STEP_MS: u64 = 10;
/// A bound on deliveries in one `deliver_all`.
const DELIVERIES_MAX: usize = 200_000;

pub struct ServerCluster {
    pub servers: Vec<Option<Server<TestMachine>>>,
    pub stores: Vec<Store>,
    bootstrap: Configuration,
    pub server_config: ServerConfig,
    /// The drift bound servers assume (for servers started after it is set).
    pub clock_drift_ppm_max: u64,
    pub now_ms: u64,
    queue: VecDeque<(u64, u64, PeerMessage)>,
    /// Cut-off servers: messages to or from them are dropped (clients still reach them).
    pub cut: BTreeSet<u64>,
    /// Everything sent to clients: (server, connection, message).
    pub inbox: Vec<(u64, ConnectionId, ToClient)>,
    next_request: u64,
    /// Per server: (shared time when its rate last changed, its clock then, rate in ‰).
    clocks: Vec<(u64, u64, u64)>,
}

impl ServerCluster {
    pub fn new(count: u64) -> ServerCluster {
        ServerCluster::with_drift_bound(count, crate::config::CLOCK_DRIFT_PPM_MAX_DEFAULT)
    }

    /// `count` servers that assume clocks drift at most `clock_drift_ppm_max`.
    pub fn with_drift_bound(count: u64, clock_drift_ppm_max: u64) -> ServerCluster {
        let ids: Vec<u64> = (1..=count).collect();
        let mut cluster = ServerCluster {
            servers: Vec::new(),
            stores: vec![Store::default(); ids.len()],
            bootstrap: voters(&ids),
            server_config: ServerConfig {
                session_timeout_ms_default: 5_000,
                request_timeout_ms: 4 * ELECTION_TIMEOUT_MS,
                ..ServerConfig::default()
            },
            clock_drift_ppm_max,
            now_ms: 0,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            inbox: Vec::new(),
            next_request: 0,
            clocks: vec![(0, 0, 1000); ids.len()],
        };
        for id in ids {
            cluster.servers.push(None);
            cluster.start(id);
        }
        cluster
    }

    /// Server `id`'s clock now: it runs at its own rate (a drifting clock).
    pub fn clock(&self, id: u64) -> crate::Time {
        let (since, base, rate) = self.clocks[usize::try_from(id - 1).expect("small id")];
        at(base + (self.now_ms - since) * rate / 1000)
    }

    /// From now on server `id`'s clock runs at `rate_permille` ‰ of real time.
    pub fn set_clock_rate(&mut self, id: u64, rate_permille: u64) {
        let now = self.clock(id).monotonic_ms;
        self.clocks[usize::try_from(id - 1).expect("small id")] = (self.now_ms, now, rate_permille);
    }

    /// Starts (or restarts) server `id` from its disk.
    pub fn start(&mut self, id: u64) {
        let position = usize::try_from(id - 1).expect("small id");
        let store = &self.stores[position];
        let restored = Restored {
            hard_state: store.hard_state,
            entries: store.entries.clone(),
        };
        let now = self.clock(id);
        let replica = Replica::new(
            self.replica_config(id),
            self.bootstrap.clone(),
            restored,
            now,
        );
        let server = Server::new(
            self.server_config.clone(),
            replica,
            TestMachine::default(),
            now,
        );
        self.servers[position] = Some(server);
    }

    /// The replica settings of server `id` (the test's clock-drift bound included).
    fn replica_config(&self, id: u64) -> crate::ReplicaConfig {
        let mut replica_config = config(id);
        replica_config.clock_drift_ppm_max = self.clock_drift_ppm_max;
        replica_config
    }

    /// Crashes server `id`: its memory is gone, its disk stays.
    pub fn crash(&mut self, id: u64) {
        self.servers[usize::try_from(id - 1).expect("small id")] = None;
    }

    pub fn server(&self, id: u64) -> &Server<TestMachine> {
        self.servers[usize::try_from(id - 1).expect("small id")]
            .as_ref()
            .expect("server is up")
    }

    fn ids(&self) -> Vec<u64> {
        (1..=self.servers.len() as u64).collect()
    }

    /// Runs one input on server `id` (if up) and carries out what it asks for.
    pub fn input(
        &mut self,
        id: u64,
        input: impl FnOnce(&mut Server<TestMachine>, &mut Vec<ServerOutput>),
    ) {
        let position = usize::try_from(id - 1).expect("small id");
        let mut out = Vec::new();
        let Some(server) = self.servers[position].as_mut() else {
            return;
        };
        input(server, &mut out);
        server.replica().invariants();
        loop {
            let mut durable = None;
            for output in out.drain(..) {
                match output {
                    ServerOutput::Replica(Action::Persist {
                        id: persist_id,
                        hard_state,
                        entries,
                    }) => {
                        self.stores[position].write(hard_state, &entries);
                        durable = Some(persist_id);
                    }
                    ServerOutput::Replica(_) | ServerOutput::Applied { .. } => {}
                    ServerOutput::Peer { to, message } => {
                        self.queue.push_back((id, to.0, message));
                    }
                    ServerOutput::Client {
                        connection,
                        message,
                    } => self.inbox.push((id, connection, message)),
                }
            }
            let Some(persist_id) = durable else {
                return;
            };
            let now = self.clock(id);
            let server = self.servers[position].as_mut().expect("up");
            server.on_persisted(persist_id, now, &mut out);
        }
    }

    /// Delivers queued server messages until none is left.
    pub fn deliver_all(&mut self) {
        let mut count = 0;
        while let Some((from, to, message)) = self.queue.pop_front() {
            count += 1;
            assert!(count < DELIVERIES_MAX, "messages never settle");
            if self.cut.contains(&from) || self.cut.contains(&to) {
                continue;
            }
            let now = self.clock(to);
            self.input(to, |server, out| {
                server.on_peer_message(ReplicaId(from), message, now, out);
            });
        }
    }

    /// Moves the clock on, ticking every server each step and delivering after it.
    pub fn advance(&mut self, duration_ms: u64) {
        let end = self.now_ms + duration_ms;
        while self.now_ms < end {
            self.now_ms = (self.now_ms + STEP_MS).min(end);
            for id in self.ids() {
                let now = self.clock(id);
                self.input(id, |server, out| server.tick(now, out));
            }
            self.deliver_all();
        }
    }

    pub fn leader(&self) -> Option<u64> {
        self.ids().into_iter().find(|&id| {
            self.servers[usize::try_from(id - 1).expect("small")]
                .as_ref()
                .is_some_and(|server| server.replica().role() == Role::Leader)
                && !self.cut.contains(&id)
        })
    }

    /// Advances until a leader (not cut off) has committed its first entry.
    pub fn elect(&mut self) -> u64 {
        for _ in 0..1_000 {
            if let Some(leader) = self.leader() {
                if self.server(leader).replica().leader_ready() {
                    return leader;
                }
            }
            self.advance(STEP_MS);
        }
        panic!("no leader");
    }

    /// Sends a client request to server `id` and returns its id.
    pub fn send(&mut self, id: u64, connection: u64, body: RequestBody) -> u64 {
        self.next_request += 1;
        let request_id = self.next_request;
        let request = ClientRequest { request_id, body };
        let now = self.clock(id);
        self.input(id, |server, out| {
            server.on_client_request(ConnectionId(connection), request, now, out);
        });
        request_id
    }

    /// The response to `request_id`, if it has arrived.
    pub fn response(&self, request_id: u64) -> Option<Result<ResponseBody, ClientError>> {
        self.inbox.iter().find_map(|(_, _, message)| match message {
            ToClient::Response(response) if response.request_id == request_id => {
                Some(response.body.clone())
            }
            _ => None,
        })
    }

    /// Sends a request and advances until it is answered (panics after `limit_ms`).
    pub fn ask(
        &mut self,
        id: u64,
        connection: u64,
        body: RequestBody,
    ) -> Result<ResponseBody, ClientError> {
        let request_id = self.send(id, connection, body);
        self.deliver_all();
        for _ in 0..2_000 {
            if let Some(response) = self.response(request_id) {
                return response;
            }
            self.advance(STEP_MS);
        }
        panic!("request {request_id} to server {id} never answered");
    }

    /// Registers a session for `client` through server `id`.
    pub fn register(
        &mut self,
        id: u64,
        connection: u64,
        client: u128,
        timeout_ms: u64,
    ) -> SessionId {
        let connect = RequestBody::Connect {
            client: ClientId(client),
        };
        self.ask(id, connection, connect).expect("connect");
        let register = RequestBody::Register {
            client: ClientId(client),
            timeout_ms,
        };
        match self.ask(id, connection, register) {
            Ok(ResponseBody::Register { session, .. }) => session,
            other => panic!("register: {other:?}"),
        }
    }

    /// Runs a command and decodes its output.
    pub fn command<C: Command>(
        &mut self,
        id: u64,
        connection: u64,
        session: SessionId,
        sequence: u64,
        command: &C,
    ) -> Result<C::Output, ClientError> {
        let body = RequestBody::Command {
            session,
            sequence,
            operation: encode_command(command),
        };
        decode_output::<C::Output>(self.ask(id, connection, body)?)
    }

    /// Runs a query and decodes its output with the index it ran at.
    pub fn query<Q: Query>(
        &mut self,
        id: u64,
        connection: u64,
        session: SessionId,
        consistency: QueryConsistency,
        query: &Q,
    ) -> Result<Q::Output, ClientError> {
        let body = RequestBody::Query {
            session,
            sequence: 0,
            index: LogIndex::ZERO,
            consistency,
            operation: encode_query(query),
        };
        decode_output::<Q::Output>(self.ask(id, connection, body)?)
    }

    /// Event batches pushed to `connection`, in order.
    pub fn batches(&self, connection: u64) -> Vec<EventBatch> {
        self.inbox
            .iter()
            .filter_map(|(_, held, message)| match message {
                ToClient::Publish(batch) if held.0 == connection => Some(batch.clone()),
                _ => None,
            })
            .collect()
    }
}

fn decode_output<T: Codec>(body: ResponseBody) -> Result<T, ClientError> {
    let output: Bytes = match body {
        ResponseBody::Command { output, .. } | ResponseBody::Query { output, .. } => {
            output.map_err(ClientError::Application)?
        }
        other => panic!("not an operation's response: {other:?}"),
    };
    Ok(decode_value::<T>(&output).expect("decodable output"))
}
