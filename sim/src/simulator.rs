//! The event loop: one thread, one seed, every server, disk, network and client.
//!
//! Servers run the engine's whole `Server` (replica, state machine, sessions); clients run
//! the engine's `ClientSession`. The simulator carries their messages, their disks and
//! their clocks, injects faults, and records what the checkers need: the clients'
//! histories and observations, and when each server heard from each session.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use coracle_engine::client::{
    ClientAction, ClientConfig, ClientSession, ClientState, Completion, ConnectionStrategy,
    RecoveryStrategy, ServerSelection,
};
use coracle_engine::server::{ConnectionId, PeerMessage, Server, ServerConfig, ServerOutput};
use coracle_engine::session::{
    ClientError, ClientId, LogOperation, QueryConsistency, RequestBody, SessionId,
};
use coracle_engine::state_machine::{decode_value, encode_command, encode_query};
use coracle_engine::{
    Action, Actions, Configuration, Entry, EntryBody, LogIndex, Prng, Replica, ReplicaConfig,
    ReplicaId, Role,
};

use crate::client::{InFlight, Operation, Request, SimClient};
use crate::hash::Fnv64;
use crate::kv::{KvGet, KvOutput, KvResult, SimKv};
use crate::network::{Endpoint, Network, Packet};
use crate::node::SimNode;
use crate::options::SimOptions;
use crate::safety::{ChainTracker, SafetyChecker};
use crate::session_check::{Observation, ReadRecord};

/// Events in the queue at most; a run that needs more is a bug in the simulator.
const EVENTS_MAX: usize = 1 << 20;
/// A client that crashes (abandons its session without closing it) does so at one
/// invocation in this many, while faults are on.
const CLIENT_CRASH_ONE_IN: u64 = 150;
/// Slack for the expiry checker: server clocks count whole milliseconds.
const EXPIRY_SLACK_US: u64 = 2_000;

/// Something that happens at a simulated time.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Tick(usize),
    Deliver {
        from: Endpoint,
        to: Endpoint,
        packet: Packet,
    },
    Sync {
        node: usize,
        incarnation: u64,
    },
    /// A client's timer; only the latest one scheduled for a client (by generation) counts.
    ClientWake(usize, u64),
    Nemesis,
    Membership,
    /// Kill (crash or isolate) whoever leads now.
    LeaderChurn,
    /// Power loss right after a write, before it is synced; restart shortly after.
    Crash(usize),
    Restart(usize),
    Heal,
}

/// Counters reported at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Events processed.
    pub events_count: u64,
    /// Messages delivered.
    pub delivered_count: u64,
    /// Crashes injected.
    pub crashes_count: u64,
    /// Partitions injected.
    pub partitions_count: u64,
    /// Membership changes accepted.
    pub membership_changes_count: u64,
    /// Client operations completed.
    pub completed_count: u64,
    /// Client operations with unknown outcome.
    pub unknown_count: u64,
    /// Commands completed.
    pub commands_count: u64,
    /// Command requests sent again (same session and sequence): retries the state
    /// machine must not apply twice.
    pub command_retries_count: u64,
    /// Completed queries, by level: linearizable, lease, sequential, causal.
    pub queries_count: [u64; 4],
    /// Session events delivered to clients.
    pub events_delivered_count: u64,
    /// Sessions expired by a leader (checked against when it last heard from them).
    pub expiries_count: u64,
    /// Clients that crashed, abandoning their session.
    pub client_crashes_count: u64,
}

/// One simulated run.
pub struct Simulator {
    pub(crate) options: SimOptions,
    pub(crate) prng: Prng,
    pub(crate) now_us: u64,
    queue: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) clients: Vec<SimClient>,
    pub(crate) network: Network,
    pub(crate) safety: SafetyChecker,
    pub(crate) history: Vec<Operation>,
    trace: Fnv64,
    next_process: u64,
    next_client_id: u128,
    unique_value: i64,
    history_clock: u64,
    pub(crate) healing: bool,
    pub(crate) stats: Stats,
    /// Command (client id, session, sequence) requests sent, to count retries.
    commands_sent: BTreeSet<(u128, SessionId, u64)>,
}

impl Simulator {
    /// A run ready to start: nodes booted, clients and the nemesis scheduled.
    #[must_use]
    pub fn new(options: SimOptions) -> Simulator {
        let mut prng = Prng::new(options.seed);
        let voters: Vec<ReplicaId> = (0..options.voters_count).map(node_id).collect();
        let bootstrap = Configuration::bootstrap(&voters);
        let nodes = (0..options.nodes_count())
            .map(|position| {
                let drift = options.drift_ppm_max;
                let drift_ppm = i64::try_from(prng.range(0, 2 * drift.unsigned_abs() + 1))
                    .expect("small")
                    - drift;
                let wall_offset_ms = i64::try_from(prng.range(0, 2_000)).expect("small") - 1_000;
                SimNode::new(
                    node_id(position),
                    bootstrap.clone(),
                    drift_ppm,
                    wall_offset_ms,
                )
            })
            .collect();
        let mut network = Network::new(50, 2_000);
        if options.faults {
            network.drop_percent = options.drop_percent;
            network.duplicate_percent = options.duplicate_percent;
            network.spike_percent = options.spike_percent;
            network.spike_us_max = 3 * options.election_timeout_ms * 1000;
        }
        let clients_count = options.clients_count;
        let mut simulator = Simulator {
            options,
            prng,
            now_us: 0,
            queue: BTreeMap::new(),
            sequence: 0,
            nodes,
            clients: Vec::new(),
            network,
            safety: SafetyChecker::default(),
            history: Vec::new(),
            trace: Fnv64::new(),
            next_process: 1,
            next_client_id: 1,
            unique_value: 0,
            history_clock: 0,
            healing: false,
            stats: Stats::default(),
            commands_sent: BTreeSet::new(),
        };
        for position in 0..clients_count {
            let process = simulator.process_new();
            simulator.clients.push(SimClient::new(0, process));
            let start = simulator.prng.range(0, 50_000);
            simulator.client_wake(position, start);
        }
        for position in 0..simulator.nodes.len() {
            simulator.node_start(position);
        }
        if simulator.options.faults {
            let first = simulator.options.nemesis_interval_us;
            simulator.schedule(first, Event::Nemesis);
            let membership = simulator.options.membership_interval_us;
            if membership > 0 {
                simulator.schedule(membership, Event::Membership);
            }
            let churn = simulator.options.leader_churn_interval_us;
            if churn > 0 {
                simulator.schedule(churn, Event::LeaderChurn);
            }
        }
        let heal_at = simulator.options.fault_duration_us;
        simulator.schedule(heal_at, Event::Heal);
        simulator
    }

    pub(crate) fn schedule(&mut self, delay_us: u64, event: Event) {
        assert!(self.queue.len() < EVENTS_MAX, "event queue overflow");
        self.sequence += 1;
        self.queue
            .insert((self.now_us + delay_us, self.sequence), event);
    }

    /// A history timestamp: simulated µs scaled so that events in the same µs stay in
    /// processing order, and no call ties a return.
    fn history_time(&mut self) -> u64 {
        history_time(&mut self.history_clock, self.now_us)
    }

    /// Prints one line of the run's story when `SimOptions::trace` is on (replays only).
    pub(crate) fn narrate(&self, line: impl FnOnce() -> String) {
        if self.options.trace {
            println!("{:>10.3} ms  {}", self.now_us as f64 / 1000.0, line());
        }
    }

    /// Sets a client's timer, replacing any earlier one.
    fn client_wake(&mut self, position: usize, delay_us: u64) {
        let client = &mut self.clients[position];
        client.wake_generation += 1;
        let generation = client.wake_generation;
        self.schedule(delay_us, Event::ClientWake(position, generation));
    }

    fn process_new(&mut self) -> u64 {
        let process = self.next_process;
        self.next_process += 1;
        process
    }

    /// Runs to the end. Returns the first safety or liveness violation.
    ///
    /// # Errors
    /// A description of the violation.
    pub fn run(&mut self) -> Result<(), String> {
        let end_us = self.options.fault_duration_us + self.options.heal_duration_us;
        while let Some(((time, _), event)) = self.queue.pop_first() {
            if time > end_us {
                break;
            }
            assert!(time >= self.now_us, "time never goes back");
            self.now_us = time;
            self.stats.events_count += 1;
            self.trace.u64(time).u64(event_tag(&event));
            self.handle(event)?;
        }
        self.now_us = end_us;
        self.check_liveness()?;
        self.check_sessions()
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick(node) => self.on_tick(node),
            Event::Deliver { from, to, packet } => self.on_deliver(from, to, packet),
            Event::Sync { node, incarnation } => self.on_sync(node, incarnation),
            Event::ClientWake(client, generation) => {
                if self.clients[client].wake_generation == generation {
                    self.on_client_wake(client)?;
                }
                Ok(())
            }
            Event::Nemesis => self.on_nemesis(),
            Event::Membership => self.on_membership(),
            Event::LeaderChurn => self.on_leader_churn(),
            Event::Crash(node) => {
                if self.nodes[node].is_up() && !self.healing {
                    self.node_crash(node);
                    let downtime = self.prng.range(1_000, 20_000);
                    self.schedule(downtime, Event::Restart(node));
                }
                Ok(())
            }
            Event::Restart(node) => {
                if !self.nodes[node].is_up() {
                    self.node_start(node);
                }
                Ok(())
            }
            Event::Heal => {
                self.heal();
                Ok(())
            }
        }
    }

    /// The trace hash: equal for two runs of one seed, or the simulator is not deterministic.
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// The client history recorded so far.
    #[must_use]
    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    /// Counters for the report.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The safety checker's state, for the report.
    #[must_use]
    pub fn safety(&self) -> &SafetyChecker {
        &self.safety
    }

    /// Simulated time reached, in µs.
    #[must_use]
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    // ----- Nodes -----

    pub(crate) fn node_start(&mut self, position: usize) {
        self.narrate(|| format!("{} START", self.nodes[position].id));
        let node = &mut self.nodes[position];
        assert!(!node.is_up());
        let mut config = ReplicaConfig::new(node.id, self.options.seed ^ node.incarnation);
        config.election_timeout_ms = self.options.election_timeout_ms;
        config.heartbeat_interval_ms = self.options.heartbeat_interval_ms;
        config.planted_bugs = self.options.planted_bugs;
        config.append_size_bytes_max = self.options.append_size_bytes_max;
        config.pipeline_depth = self.options.pipeline_depth;
        // Leases and session expiry stretch by the bound; every server's drift is within it.
        config.clock_drift_ppm_max = self
            .options
            .assumed_drift_ppm
            .unwrap_or(self.options.drift_ppm_max.unsigned_abs());
        let restored = node.disk.restored();
        node.chain = ChainTracker::from_entries(&restored.entries);
        node.commit_checked = LogIndex::ZERO;
        node.sync_scheduled = false;
        node.leader_since_us = None;
        node.heard_us.clear();
        let now = node.time(self.now_us);
        let replica = Replica::new(config, node.bootstrap.clone(), restored, now);
        let server_config = ServerConfig {
            session_timeout_ms_default: self.options.session_timeout_ms,
            request_timeout_ms: 4 * self.options.election_timeout_ms,
            ..ServerConfig::default()
        };
        node.server = Some(Server::new(server_config, replica, SimKv::default(), now));
        let offset = self.prng.range(0, self.options.tick_us);
        self.schedule(offset, Event::Tick(position));
    }

    pub(crate) fn node_crash(&mut self, position: usize) {
        self.narrate(|| format!("{} CRASH", self.nodes[position].id));
        let tear = self.prng.chance(1, 2);
        let node = &mut self.nodes[position];
        if node.server.take().is_none() {
            return;
        }
        node.disk.crash(&mut self.prng, tear);
        node.incarnation += 1;
        node.paused_until_us = 0;
        node.leader_since_us = None;
        self.stats.crashes_count += 1;
    }

    /// Runs one input on a live server, then carries out what it asked for.
    pub(crate) fn with_server(
        &mut self,
        position: usize,
        input: impl FnOnce(&mut Server<SimKv>, &mut Vec<ServerOutput>),
    ) -> Result<(), String> {
        let mut out = Vec::new();
        let Some(server) = self.nodes[position].server.as_mut() else {
            return Ok(());
        };
        input(server, &mut out);
        server.replica().invariants();
        let mut result = Ok(());
        for output in out {
            // After a violation the rest is dropped unprocessed: the seed has failed.
            if result.is_ok() {
                result = self.process_output(position, output);
            }
        }
        result
    }

    /// Runs one input on a live replica (membership changes), then carries out what it
    /// asked for.
    pub(crate) fn with_replica(
        &mut self,
        position: usize,
        input: impl FnOnce(&mut Replica, &mut Actions),
    ) -> Result<(), String> {
        self.with_server(position, |server, out| server.replica_input(input, out))
    }

    fn process_output(&mut self, position: usize, output: ServerOutput) -> Result<(), String> {
        let id = self.nodes[position].id;
        match output {
            ServerOutput::Replica(Action::Persist {
                id: persist_id,
                hard_state,
                entries,
            }) => {
                self.narrate(|| {
                    let first = entries.first().map(|entry| entry.index.0);
                    let last = entries.last().map(|entry| (entry.index.0, entry.term.0));
                    format!(
                        "{id} persist #{} {hard_state:?} entries {first:?}..{last:?}",
                        persist_id.0
                    )
                });
                self.trace
                    .u64(1)
                    .u64(persist_id.0)
                    .u64(entries.len() as u64);
                self.check_expiries(position, &entries)?;
                let node = &mut self.nodes[position];
                self.safety.on_entries(id, &mut node.chain, &entries)?;
                node.disk.write(persist_id, hard_state, entries);
                if !node.sync_scheduled {
                    node.sync_scheduled = true;
                    let incarnation = node.incarnation;
                    let delay = self
                        .prng
                        .range(self.options.sync_us_min, self.options.sync_us_max);
                    self.schedule(
                        delay,
                        Event::Sync {
                            node: position,
                            incarnation,
                        },
                    );
                }
                let unlucky = self.options.faults
                    && !self.healing
                    && self
                        .prng
                        .chance(self.options.crash_after_write_per_million, 1_000_000);
                if unlucky {
                    self.schedule(0, Event::Crash(position));
                }
            }
            ServerOutput::Peer { to, message } => {
                self.narrate(|| format!("{id} -> {to} {}", describe_peer(&message)));
                let term = match &message {
                    PeerMessage::Raft(message) => message.term().0,
                    _ => 0,
                };
                self.trace.u64(2).u64(to.0).u64(term);
                self.send(
                    Endpoint::Node(position),
                    Endpoint::Node(node_position(to)),
                    Packet::Peer(message),
                );
            }
            ServerOutput::Client {
                connection,
                message,
            } => {
                self.trace.u64(5).u64(connection.0);
                let client = connection_client(connection);
                self.send(
                    Endpoint::Node(position),
                    Endpoint::Client(client),
                    Packet::ToClient {
                        connection,
                        message,
                    },
                );
            }
            ServerOutput::Applied { entries } => self.on_applied(position, &entries)?,
            ServerOutput::Replica(Action::RoleChanged { role, term, leader }) => {
                self.narrate(|| format!("{id} is {role:?} at term {term}, leader {leader:?}"));
                self.trace.u64(3).u64(term.0).u64(role as u64);
                if role == Role::Leader {
                    self.nodes[position].leader_since_us = Some(self.now_us);
                    let replica = self.nodes[position].replica().expect("up");
                    self.safety.on_leader(id, term, replica.log().entries())?;
                } else {
                    self.nodes[position].leader_since_us = None;
                }
            }
            ServerOutput::Replica(Action::Committed { index }) => {
                self.narrate(|| format!("{id} committed {index}"));
                let node = &mut self.nodes[position];
                let replica = node.server.as_ref().expect("up").replica();
                self.safety.on_commit(
                    id,
                    replica.term(),
                    &mut node.commit_checked,
                    index,
                    replica.log().entries(),
                )?;
            }
            ServerOutput::Replica(Action::LeadershipConfirmed { term, round }) => {
                self.narrate(|| {
                    format!("{id} confirmed leadership of t{term} through round {round}")
                });
            }
            ServerOutput::Replica(
                Action::MembershipOutcome { .. } | Action::Send { .. } | Action::Apply { .. },
            ) => {}
        }
        Ok(())
    }

    /// Checks every expiry a leader logs: it must have heard nothing from the session for
    /// longer than its timeout, counting from no earlier than its own leadership (SPEC §I2).
    fn check_expiries(&mut self, position: usize, entries: &[Entry]) -> Result<(), String> {
        let node = &self.nodes[position];
        let Some(replica) = node.replica() else {
            return Ok(());
        };
        if replica.role() != Role::Leader {
            return Ok(());
        }
        for entry in entries {
            if entry.term != replica.term() {
                continue;
            }
            let EntryBody::Command { payload } = &entry.body else {
                continue;
            };
            let Ok(LogOperation::Unregister {
                session,
                expired: true,
                ..
            }) = LogOperation::decode(payload)
            else {
                continue;
            };
            let since = node.leader_since_us.unwrap_or(0);
            let heard = node.heard_us.get(&session).copied().unwrap_or(0).max(since);
            let silent_us = self.now_us.saturating_sub(heard);
            let timeout_us = self.options.session_timeout_ms * 1000;
            if silent_us + EXPIRY_SLACK_US < timeout_us {
                return Err(format!(
                    "expiry: {} expired {session} at {} ms after {} ms of silence (timeout {} ms)",
                    node.id,
                    self.now_us / 1000,
                    silent_us / 1000,
                    self.options.session_timeout_ms
                ));
            }
            self.stats.expiries_count += 1;
            self.narrate(|| format!("{} EXPIRES {session}", node.id));
        }
        Ok(())
    }

    fn on_applied(&mut self, position: usize, entries: &[Entry]) -> Result<(), String> {
        let id = self.nodes[position].id;
        for entry in entries {
            self.safety.on_apply(id, entry)?;
            let EntryBody::Command { payload } = &entry.body else {
                continue;
            };
            let session = match LogOperation::decode(payload) {
                Ok(LogOperation::Register { .. }) => SessionId(entry.index.0),
                Ok(LogOperation::KeepAlive { session, .. }) => session,
                _ => continue,
            };
            self.nodes[position].heard_us.insert(session, self.now_us);
        }
        Ok(())
    }

    fn send(&mut self, from: Endpoint, to: Endpoint, packet: Packet) {
        let delays = self.network.route(&mut self.prng, from, to);
        for delay in delays {
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    packet: packet.clone(),
                },
            );
        }
    }

    /// True if a node is paused now; its event is then moved to when it wakes.
    fn deferred_by_pause(&mut self, position: usize, event: &Event) -> bool {
        let until = self.nodes[position].paused_until_us;
        if until > self.now_us {
            self.schedule(until - self.now_us, event.clone());
            return true;
        }
        false
    }

    fn on_tick(&mut self, position: usize) -> Result<(), String> {
        if !self.nodes[position].is_up() {
            return Ok(()); // The node crashed; a restart schedules new ticks.
        }
        if self.deferred_by_pause(position, &Event::Tick(position)) {
            return Ok(());
        }
        let tick = self.options.tick_us;
        self.schedule(tick, Event::Tick(position));
        let now = self.nodes[position].time(self.now_us);
        self.with_server(position, |server, out| server.tick(now, out))
    }

    fn on_sync(&mut self, position: usize, incarnation: u64) -> Result<(), String> {
        if self.nodes[position].incarnation != incarnation {
            return Ok(()); // For a process that crashed since.
        }
        let event = Event::Sync {
            node: position,
            incarnation,
        };
        if self.deferred_by_pause(position, &event) {
            return Ok(());
        }
        let node = &mut self.nodes[position];
        node.sync_scheduled = false;
        let Some(persisted) = node.disk.sync() else {
            return Ok(());
        };
        let now = self.nodes[position].time(self.now_us);
        self.with_server(position, |server, out| {
            server.on_persisted(persisted, now, out);
        })
    }

    fn on_deliver(&mut self, from: Endpoint, to: Endpoint, packet: Packet) -> Result<(), String> {
        if !self.network.connected(from, to) {
            return Ok(()); // A partition began while the message was in flight.
        }
        match to {
            Endpoint::Node(position) => {
                if !self.nodes[position].is_up() {
                    return Ok(());
                }
                let event = Event::Deliver { from, to, packet };
                if self.deferred_by_pause(position, &event) {
                    return Ok(());
                }
                let Event::Deliver { packet, .. } = event else {
                    unreachable!("constructed above")
                };
                self.stats.delivered_count += 1;
                match (from, packet) {
                    (Endpoint::Node(sender), Packet::Peer(message)) => {
                        if let PeerMessage::Forward { request, .. } = &message {
                            self.note_heard(position, request);
                        }
                        let sender = self.nodes[sender].id;
                        let now = self.nodes[position].time(self.now_us);
                        self.with_server(position, |server, out| {
                            server.on_peer_message(sender, message, now, out);
                        })
                    }
                    (
                        Endpoint::Client(_),
                        Packet::Request {
                            connection,
                            request,
                        },
                    ) => {
                        self.note_heard(position, &request.body);
                        let now = self.nodes[position].time(self.now_us);
                        self.with_server(position, |server, out| {
                            server.on_client_request(connection, request, now, out);
                        })
                    }
                    _ => Ok(()),
                }
            }
            Endpoint::Client(client) => {
                let (
                    Endpoint::Node(server),
                    Packet::ToClient {
                        connection,
                        message,
                    },
                ) = (from, packet)
                else {
                    return Ok(());
                };
                if connection != self.connection_of(client) {
                    // For a client that has crashed and started over since: its connection
                    // is gone, and so is this message.
                    return Ok(());
                }
                let from = self.nodes[server].id;
                let now_ms = self.now_us / 1000;
                self.narrate(|| match &message {
                    coracle_engine::session::ToClient::Response(response) => format!(
                        "client {client} <- {from} #{} {:?}",
                        response.request_id,
                        response.body.as_ref().map(|_| "ok")
                    ),
                    coracle_engine::session::ToClient::Publish(batch) => format!(
                        "client {client} <- {from} events at {} after {}",
                        batch.event_index, batch.previous_index
                    ),
                });
                self.with_client(client, |session, out| {
                    session.on_message(from, message, now_ms, out);
                })?;
                Ok(())
            }
        }
    }

    /// A request that shows a session's client alive reached a server.
    fn note_heard(&mut self, position: usize, body: &RequestBody) {
        if let RequestBody::KeepAlive { session, .. } | RequestBody::Command { session, .. } = body
        {
            self.nodes[position].heard_us.insert(*session, self.now_us);
        }
    }

    // ----- Clients -----

    /// The connection a client uses to every server: its position and its incarnation,
    /// so that a client that crashed and started over never gets its predecessor's mail.
    fn connection_of(&self, position: usize) -> ConnectionId {
        let client_id = u64::try_from(self.clients[position].client_id).expect("small ids");
        ConnectionId(client_id << 16 | position as u64)
    }

    /// Starts a client afresh: a new client id, a new session.
    fn client_start(&mut self, position: usize) -> Result<(), String> {
        let client_id = self.next_client_id;
        self.next_client_id += 1;
        let mut config = ClientConfig::new(ClientId(client_id));
        config.session_timeout_ms = self.options.session_timeout_ms;
        config.request_timeout_ms = 4 * self.options.election_timeout_ms;
        config.connection = ConnectionStrategy::FibonacciBackoff;
        config.selection = match self.prng.range(0, 3) {
            0 => ServerSelection::Any,
            1 => ServerSelection::Leader,
            _ => ServerSelection::Followers,
        };
        config.recovery = RecoveryStrategy::Close;
        // Copycat's back-off tables count seconds against a 750 ms election timeout; the
        // simulator's timeouts are shorter, and so are its back-off steps.
        config.backoff_unit_ms = 1000 * self.options.election_timeout_ms / 750;
        config.seed = self.prng.next_u64();
        config.planted_bugs = self.options.planted_bugs;
        let servers: Vec<ReplicaId> = self.nodes.iter().map(|node| node.id).collect();
        let now_ms = self.now_us / 1000;
        let client = &mut self.clients[position];
        client.client_id = client_id;
        client.current_session = None;
        client.session = Some(ClientSession::new(config, servers, now_ms));
        client.next_invoke_us = self.now_us;
        self.narrate(|| format!("client {position} STARTS as {client_id}"));
        self.with_client(position, |session, out| session.open(now_ms, out))?;
        Ok(())
    }

    /// Runs one input on a client's session, carries out what it asked for, and sets its
    /// timer.
    fn with_client<R>(
        &mut self,
        position: usize,
        input: impl FnOnce(&mut ClientSession, &mut Vec<ClientAction>) -> R,
    ) -> Result<Option<R>, String> {
        let Some(session) = self.clients[position].session.as_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let result = input(session, &mut out);
        for action in out {
            self.process_client_action(position, action)?;
        }
        self.client_schedule(position);
        Ok(Some(result))
    }

    /// Wakes the client when its session needs it or its next operation is due.
    fn client_schedule(&mut self, position: usize) {
        let now_us = self.now_us;
        let client = &self.clients[position];
        let Some(session) = client.session.as_ref() else {
            return; // Crashed: the restart is scheduled.
        };
        let mut wake_us = u64::MAX;
        if session.state() == ClientState::Closed {
            wake_us = client.next_invoke_us;
        } else {
            if client.in_flight.is_none() {
                wake_us = client.next_invoke_us;
            }
            if let Some(wake_ms) = session.next_wake_ms() {
                wake_us = wake_us.min(wake_ms.saturating_mul(1000));
            }
        }
        if wake_us == u64::MAX {
            return;
        }
        let delay = wake_us.saturating_sub(now_us).max(1);
        self.client_wake(position, delay);
    }

    fn on_client_wake(&mut self, position: usize) -> Result<(), String> {
        let closed = match &self.clients[position].session {
            None => true,
            Some(session) => session.state() == ClientState::Closed,
        };
        if closed {
            // Closed for good (expired, or could not register): a new client takes over.
            let process = self.process_new();
            self.clients[position].process = process;
            return self.client_start(position);
        }
        let now_ms = self.now_us / 1000;
        self.with_client(position, |session, out| session.tick(now_ms, out))?;
        let client = &self.clients[position];
        let ready = client.in_flight.is_none()
            && self.now_us >= client.next_invoke_us
            && client
                .session
                .as_ref()
                .is_some_and(|session| session.state() != ClientState::Closed);
        if ready {
            self.client_invoke(position)?;
        }
        Ok(())
    }

    fn client_invoke(&mut self, position: usize) -> Result<(), String> {
        if self.options.faults && !self.healing && self.prng.chance(1, CLIENT_CRASH_ONE_IN) {
            self.client_crash(position);
            return Ok(());
        }
        let request = SimClient::random_request(&mut self.prng, &mut self.unique_value);
        let call_us = self.history_time();
        let now_ms = self.now_us / 1000;
        let submitted = self.with_client(position, |session, out| match request {
            Request::Command(command, consistency) => {
                session.submit_command(encode_command(&command), consistency, now_ms, out)
            }
            Request::Query(key, consistency) => {
                session.submit_query(encode_query(&KvGet(key)), consistency, now_ms, out)
            }
            Request::Lock(lock) => session.submit_command(
                encode_command(&lock),
                coracle_engine::session::CommandConsistency::Linearizable,
                now_ms,
                out,
            ),
        })?;
        let Some(Ok(operation)) = submitted else {
            // Refused (the client is closing): try again later.
            let think = self.prng.range(1_000, self.options.think_us_max);
            self.clients[position].next_invoke_us = self.now_us + think;
            self.client_schedule(position);
            return Ok(());
        };
        let history_position = match request.kv_op() {
            Some(op) if request.linearizable() => {
                self.history.push(Operation {
                    process: self.clients[position].process,
                    op,
                    call_us,
                    output: None,
                    return_us: None,
                });
                Some(self.history.len() - 1)
            }
            _ => None,
        };
        let client = &mut self.clients[position];
        client.in_flight = Some(InFlight {
            operation,
            request,
            history_position,
            invoked_us: self.now_us,
        });
        // The completion may already have come (it cannot: a request needs a round trip).
        self.client_schedule(position);
        Ok(())
    }

    /// The client crashes: it abandons its session without closing it, and comes back
    /// later as a new client. Its session must expire (Copycat #232).
    fn client_crash(&mut self, position: usize) {
        let now_us = self.now_us;
        let client = &mut self.clients[position];
        if let Some(session) = client.current_session.take() {
            client.abandoned.push((session, now_us));
        }
        client.session = None;
        client.in_flight = None;
        self.stats.client_crashes_count += 1;
        let process = self.process_new();
        self.clients[position].process = process;
        self.narrate(|| format!("client {position} CRASHES"));
        let downtime = self.prng.range(50_000, 500_000);
        self.client_wake(position, downtime);
    }

    fn process_client_action(
        &mut self,
        position: usize,
        action: ClientAction,
    ) -> Result<(), String> {
        match action {
            ClientAction::Send { to, request } => {
                if let RequestBody::Command {
                    session, sequence, ..
                } = &request.body
                {
                    let key = (self.clients[position].client_id, *session, *sequence);
                    if *sequence > 0 && !self.commands_sent.insert(key) {
                        self.stats.command_retries_count += 1;
                    }
                }
                self.narrate(|| {
                    format!(
                        "client {position} -> {to} #{} {}",
                        request.request_id,
                        request.body.name()
                    )
                });
                self.trace.u64(6).u64(to.0);
                let connection = self.connection_of(position);
                self.send(
                    Endpoint::Client(position),
                    Endpoint::Node(node_position(to)),
                    Packet::Request {
                        connection,
                        request,
                    },
                );
            }
            ClientAction::Disconnect { server } => {
                // The connection closes: that server stops pushing this client's events.
                let connection = self.connection_of(position);
                if let Some(server) = self.nodes[node_position(server)].server.as_mut() {
                    server.on_connection_closed(connection);
                }
            }
            ClientAction::Complete { operation, result } => {
                let matches = self.clients[position]
                    .in_flight
                    .as_ref()
                    .is_some_and(|in_flight| in_flight.operation == operation);
                if matches {
                    let in_flight = self.clients[position].in_flight.take().expect("matched");
                    self.client_complete(position, in_flight, result)?;
                }
            }
            ClientAction::Event {
                session,
                event_index,
                event,
            } => {
                let value = event_value(&event.payload).ok_or_else(|| {
                    format!(
                        "client {position}: event payload of {} bytes",
                        event.payload.len()
                    )
                })?;
                self.stats.events_delivered_count += 1;
                self.narrate(|| {
                    format!("client {position} DELIVERS event {value} of {event_index}")
                });
                self.trace.u64(7).u64(event_index.0);
                self.clients[position]
                    .observations
                    .push(Observation::Event {
                        session,
                        index: event_index,
                        value,
                    });
            }
            ClientAction::StateChanged(state) => {
                self.narrate(|| format!("client {position} is {state:?}"));
                if state == ClientState::Closed {
                    let think = self.prng.range(1_000, self.options.think_us_max);
                    self.clients[position].next_invoke_us = self.now_us + think;
                }
            }
            ClientAction::SessionOpened { session } => {
                self.narrate(|| format!("client {position} opened {session}"));
                self.clients[position].current_session = Some(session);
            }
        }
        Ok(())
    }

    fn client_complete(
        &mut self,
        position: usize,
        in_flight: InFlight,
        result: Result<Completion, ClientError>,
    ) -> Result<(), String> {
        let think = self.prng.range(0, self.options.think_us_max);
        self.clients[position].next_invoke_us = self.now_us + think;
        let completion = match result {
            Ok(completion) => completion,
            Err(error) => {
                // The operation's fate is unknown (it may have applied): its process never
                // invokes again.
                self.narrate(|| {
                    format!(
                        "client {position}: {:?} unknown: {error}",
                        in_flight.request
                    )
                });
                self.stats.unknown_count += 1;
                self.clients[position].unknown_count += 1;
                let process = self.process_new();
                self.clients[position].process = process;
                return Ok(());
            }
        };
        let output = completion.output.map_err(|error| {
            format!(
                "client {position}: {:?} failed in the state machine: {error}",
                in_flight.request
            )
        })?;
        let session = self.clients[position]
            .current_session
            .ok_or_else(|| format!("client {position}: a completion without a session"))?;
        let undecodable = |error| format!("client {position}: undecodable output: {error}");
        let (kv_output, read, query, waits) = match in_flight.request {
            Request::Command(command, consistency) => {
                let KvResult(kv_output) = decode_value::<KvResult>(&output).map_err(undecodable)?;
                let read = match (command.op, kv_output) {
                    (crate::kv::KvOp::Get(key), KvOutput::Value(value)) => Some((key, value)),
                    _ => None,
                };
                self.stats.commands_count += 1;
                let waits =
                    consistency == coracle_engine::session::CommandConsistency::Linearizable;
                (Some(kv_output), read, false, waits)
            }
            Request::Query(key, consistency) => {
                let value = decode_value::<Option<u64>>(&output).map_err(undecodable)?;
                let value = value.map(|value| value as i64);
                self.stats.queries_count[level_position(consistency)] += 1;
                (Some(KvOutput::Value(value)), Some((key, value)), true, true)
            }
            Request::Lock(_) => {
                decode_value::<bool>(&output).map_err(undecodable)?;
                self.stats.commands_count += 1;
                (None, None, false, true)
            }
        };
        if let (Some(history_position), Some(kv_output)) = (in_flight.history_position, kv_output) {
            let return_us = self.history_time();
            let operation = &mut self.history[history_position];
            operation.output = Some(kv_output);
            operation.return_us = Some(return_us);
        }
        self.narrate(|| {
            format!(
                "client {position} COMPLETES {:?} at {}",
                in_flight.request, completion.index
            )
        });
        self.trace.u64(4).u64(completion.index.0);
        self.stats.completed_count += 1;
        let client = &mut self.clients[position];
        client.completed_count += 1;
        client.observations.push(Observation::Completed {
            session,
            index: completion.index,
            query,
            waits_for_events: waits,
            read: read.map(|(key, value)| ReadRecord {
                session,
                key,
                value,
                index: completion.index,
                label: in_flight.request.label(),
            }),
        });
        Ok(())
    }

    // ----- Liveness and the end of the run -----

    /// End of the fault phase: heal everything; the cluster must now recover.
    fn heal(&mut self) {
        self.healing = true;
        self.network.heal();
        self.network.drop_percent = 0;
        self.network.duplicate_percent = 0;
        self.network.spike_percent = 0;
        for position in 0..self.nodes.len() {
            self.nodes[position].paused_until_us = 0;
            if !self.nodes[position].is_up() {
                self.node_start(position);
            }
        }
    }

    /// After the heal phase: a leader leads, and every client finished what it had pending
    /// in the first half of the heal phase.
    fn check_liveness(&self) -> Result<(), String> {
        let leaders = self
            .nodes
            .iter()
            .filter_map(SimNode::replica)
            .filter(|replica| replica.role() == Role::Leader)
            .count();
        if leaders == 0 {
            return Err(format!(
                "liveness: no leader at the end of the heal phase;\n  {}",
                self.cluster_summary()
            ));
        }
        let cutoff = self.options.fault_duration_us + self.options.heal_duration_us / 2;
        for (position, client) in self.clients.iter().enumerate() {
            if let Some(in_flight) = &client.in_flight {
                if in_flight.invoked_us < cutoff {
                    return Err(format!(
                        "liveness: client {position}'s {:?} from {} ms still pending after heal (client {:?}); {}",
                        in_flight.request,
                        in_flight.invoked_us / 1000,
                        client.session.as_ref().map(|session| (session.state(), session.session(), session.server())),
                        self.cluster_summary()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The session checkers, against the journal of the server that applied the most.
    fn check_sessions(&self) -> Result<(), String> {
        let Some(reference) = self
            .nodes
            .iter()
            .filter_map(|node| node.server.as_ref())
            .max_by_key(|server| server.host().last_applied())
        else {
            return Ok(());
        };
        let host = reference.host();
        let journal = &host.machine().journal;
        crate::session_check::check_journal(journal)?;
        let truth = crate::session_check::GroundTruth::from_journal(journal);
        for (position, client) in self.clients.iter().enumerate() {
            crate::session_check::check_client(
                position,
                &client.observations,
                &truth,
                host.last_applied(),
            )?;
        }
        // Every session a crashed client abandoned long enough ago has expired (Copycat
        // #232: nothing else needs to happen in the log for it to go).
        let end_us = self.options.fault_duration_us + self.options.heal_duration_us;
        let grace_us = self.options.session_timeout_ms * 1000 + 4_000_000;
        for (position, client) in self.clients.iter().enumerate() {
            for &(session, at_us) in &client.abandoned {
                let since = at_us.max(self.options.fault_duration_us);
                if since + grace_us <= end_us && host.sessions().get(session).is_some() {
                    return Err(format!(
                        "expiry: client {position} abandoned {session} at {} ms; it is still open at the end",
                        at_us / 1000
                    ));
                }
            }
        }
        Ok(())
    }
}
impl Simulator {
    /// One line per server: role, term, log, commit, membership (for failure reports).
    #[must_use]
    pub fn cluster_summary(&self) -> String {
        let mut lines = Vec::new();
        for node in &self.nodes {
            match node.replica() {
                None => lines.push(format!("{}: down", node.id)),
                Some(replica) => {
                    let configuration = replica.configuration();
                    let members: Vec<String> = configuration
                        .members
                        .iter()
                        .map(|member| {
                            format!("{}:{:?}/{:?}", member.id, member.member_type, member.status)
                        })
                        .collect();
                    lines.push(format!(
                        "{}: {:?} term {} leader {:?} last {} commit {} applied {} config@{} [{}]",
                        node.id,
                        replica.role(),
                        replica.term(),
                        replica.leader().map(|id| id.0),
                        replica.log().last_index(),
                        replica.commit_index(),
                        replica.applied_index(),
                        configuration.index,
                        members.join(" ")
                    ));
                }
            }
        }
        lines.join("\n  ")
    }
}

/// Simulated µs × 1000 plus a tie-breaker, strictly increasing.
fn history_time(clock: &mut u64, now_us: u64) -> u64 {
    *clock = (*clock + 1).max(now_us * 1000);
    *clock
}

/// The Raft id of the node at `position` (ids start at 1).
#[must_use]
pub fn node_id(position: usize) -> ReplicaId {
    ReplicaId(position as u64 + 1)
}

/// The position of the node with Raft id `id`.
#[must_use]
pub fn node_position(id: ReplicaId) -> usize {
    usize::try_from(id.0 - 1).expect("small ids")
}

fn event_tag(event: &Event) -> u64 {
    match event {
        Event::Tick(node) => 10 + *node as u64,
        Event::Deliver {
            to: Endpoint::Node(node),
            ..
        } => 100 + *node as u64,
        Event::Deliver {
            to: Endpoint::Client(client),
            ..
        } => 200 + *client as u64,
        Event::Sync { node, .. } => 300 + *node as u64,
        Event::ClientWake(client, _) => 400 + *client as u64,
        Event::Nemesis => 500,
        Event::Membership => 800,
        Event::LeaderChurn => 1000,
        Event::Crash(node) => 900 + *node as u64,
        Event::Restart(node) => 600 + *node as u64,
        Event::Heal => 700,
    }
}

/// A one-line description of a message for traces.
fn describe(message: &coracle_engine::Message) -> String {
    use coracle_engine::Message;
    match message {
        Message::AppendRequest(request) => format!(
            "append t{} prev {}/{} entries {} commit {} round {}",
            request.term,
            request.prev_index,
            request.prev_term,
            request.entries.len(),
            request.commit_index,
            request.round
        ),
        Message::AppendResponse(response) => format!(
            "append-response t{} ok {} match {} rejected {} hint {}/{} round {}",
            response.term,
            response.success,
            response.match_index,
            response.rejected_index,
            response.hint_index,
            response.hint_term,
            response.round
        ),
        Message::PollRequest(request) | Message::VoteRequest(request) => format!(
            "{} t{} last {}/{}",
            message.name(),
            request.term,
            request.last_index,
            request.last_term
        ),
        Message::PollResponse(response) | Message::VoteResponse(response) => {
            format!(
                "{} t{} granted {}",
                message.name(),
                response.term,
                response.granted
            )
        }
        other => format!("{} t{}", other.name(), other.term()),
    }
}

/// The client a connection belongs to.
fn connection_client(connection: ConnectionId) -> usize {
    usize::try_from(connection.0 & 0xffff).expect("small")
}

/// The written value an event announces.
fn event_value(payload: &Bytes) -> Option<i64> {
    let bytes: [u8; 8] = payload.as_ref().try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// The position of a query level in `Stats::queries_count`.
fn level_position(consistency: QueryConsistency) -> usize {
    match consistency {
        QueryConsistency::Linearizable => 0,
        QueryConsistency::LinearizableLease => 1,
        QueryConsistency::Sequential => 2,
        QueryConsistency::Causal => 3,
    }
}

/// A one-line description of a server message for traces.
fn describe_peer(message: &PeerMessage) -> String {
    match message {
        PeerMessage::Raft(message) => describe(message),
        PeerMessage::Forward {
            forward_id,
            request,
        } => {
            format!("forward #{forward_id} {}", request.name())
        }
        PeerMessage::ForwardReply { forward_id, body } => {
            format!("forward-reply #{forward_id} ok {}", body.is_ok())
        }
    }
}
