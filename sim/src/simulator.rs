//! The event loop: one thread, one seed, every node, disk, network and client.

use std::collections::BTreeMap;

use coracle_engine::{
    Action, Actions, Configuration, Envelope, LogIndex, Prng, Replica, ReplicaConfig, ReplicaId,
    Role,
};

use crate::client::{InFlight, Operation, SimClient};
use crate::hash::Fnv64;
use crate::kv::KvCommand;
use crate::network::{Endpoint, Network, Packet, Reply};
use crate::node::{SimNode, Waiting};
use crate::options::SimOptions;
use crate::safety::{ChainTracker, SafetyChecker};

/// Events in the queue at most; a run that needs more is a bug in the simulator.
const EVENTS_MAX: usize = 1 << 20;
/// A client retries an attempt that got no answer after this long.
const ATTEMPT_TIMEOUT_US: u64 = 400_000;
/// A client gives up on an operation after this long while faults are on.
const GIVE_UP_US: u64 = 4_000_000;
/// Pause before retrying at another server.
const RETRY_BACKOFF_US: u64 = 5_000;

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
    actions: Actions,
    trace: Fnv64,
    next_process: u64,
    unique_value: i64,
    history_clock: u64,
    pub(crate) healing: bool,
    pub(crate) stats: Stats,
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
            actions: Actions::new(),
            trace: Fnv64::new(),
            next_process: 1,
            unique_value: 0,
            history_clock: 0,
            healing: false,
            stats: Stats::default(),
        };
        for position in 0..clients_count {
            let process = simulator.process_new();
            simulator.clients.push(SimClient::new(process));
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
        self.check_liveness()
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick(node) => self.on_tick(node),
            Event::Deliver { from, to, packet } => self.on_deliver(from, to, packet),
            Event::Sync { node, incarnation } => self.on_sync(node, incarnation),
            Event::ClientWake(client, generation) => {
                if self.clients[client].wake_generation == generation {
                    self.on_client_wake(client);
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
        let restored = node.disk.restored();
        node.chain = ChainTracker::from_entries(&restored.entries);
        node.commit_checked = LogIndex::ZERO;
        node.kv = crate::kv::KvStore::default();
        node.waiting.clear();
        node.sync_scheduled = false;
        let now = node.time(self.now_us);
        node.replica = Some(Replica::new(config, node.bootstrap.clone(), restored, now));
        let offset = self.prng.range(0, self.options.tick_us);
        self.schedule(offset, Event::Tick(position));
    }

    pub(crate) fn node_crash(&mut self, position: usize) {
        self.narrate(|| format!("{} CRASH", self.nodes[position].id));
        let tear = self.prng.chance(1, 2);
        let node = &mut self.nodes[position];
        if node.replica.take().is_none() {
            return;
        }
        node.disk.crash(&mut self.prng, tear);
        node.incarnation += 1;
        node.waiting.clear();
        node.paused_until_us = 0;
        self.stats.crashes_count += 1;
    }

    /// Runs one input on a live replica, then carries out what it asked for.
    pub(crate) fn with_replica(
        &mut self,
        position: usize,
        input: impl FnOnce(&mut Replica, &mut Actions),
    ) -> Result<(), String> {
        let mut actions = std::mem::take(&mut self.actions);
        let Some(replica) = self.nodes[position].replica.as_mut() else {
            self.actions = actions;
            return Ok(());
        };
        input(replica, &mut actions);
        replica.invariants();
        let mut result = Ok(());
        for action in actions.drain() {
            // After a violation the rest is drained unprocessed: the seed has failed.
            if result.is_ok() {
                result = self.process_action(position, action);
            }
        }
        self.actions = actions;
        result
    }

    fn process_action(&mut self, position: usize, action: Action) -> Result<(), String> {
        let id = self.nodes[position].id;
        match action {
            Action::Persist {
                id: persist_id,
                hard_state,
                entries,
            } => {
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
            Action::Send { to, message } => {
                self.narrate(|| format!("{id} -> {to} {}", describe(&message)));
                self.trace.u64(2).u64(to.0).u64(message.term().0);
                let envelope = Envelope {
                    from: id,
                    to,
                    message,
                };
                let target = node_position(to);
                self.send(
                    Endpoint::Node(position),
                    Endpoint::Node(target),
                    Packet::Raft(envelope),
                );
            }
            Action::Apply { entries } => self.apply(position, &entries)?,
            Action::RoleChanged { role, term, leader } => {
                self.narrate(|| format!("{id} is {role:?} at term {term}, leader {leader:?}"));
                self.trace.u64(3).u64(term.0).u64(role as u64);
                if role == Role::Leader {
                    let replica = self.nodes[position].replica.as_ref().expect("up");
                    self.safety.on_leader(id, term, replica.log().entries())?;
                }
            }
            Action::Committed { index } => {
                self.narrate(|| format!("{id} committed {index}"));
                let node = &mut self.nodes[position];
                let replica = node.replica.as_ref().expect("up");
                self.safety.on_commit(
                    id,
                    replica.term(),
                    &mut node.commit_checked,
                    index,
                    replica.log().entries(),
                )?;
            }
            Action::MembershipOutcome { .. } => {}
        }
        Ok(())
    }

    fn apply(&mut self, position: usize, entries: &[coracle_engine::Entry]) -> Result<(), String> {
        let id = self.nodes[position].id;
        let mut last = LogIndex::ZERO;
        for entry in entries {
            self.safety.on_apply(id, entry)?;
            last = entry.index;
            let node = &mut self.nodes[position];
            let output = match &entry.body {
                coracle_engine::EntryBody::Command { payload } => {
                    let command = KvCommand::decode(payload)
                        .map_err(|error| format!("node {id}: undecodable command: {error}"))?;
                    node.kv.apply(&command)
                }
                _ => None,
            };
            // Entries apply in index order, so a request waits at most until its index.
            assert!(node.waiting.range(..entry.index).next().is_none());
            let Some(waiting) = node.waiting.remove(&entry.index) else {
                continue;
            };
            let reply = match output {
                _ if waiting.term != entry.term => Reply::Lost(entry.index),
                Some(output) => Reply::Done(output),
                None => continue, // An older request of its client: nobody waits for it.
            };
            let packet = Packet::Response {
                client: waiting.process,
                request: waiting.request,
                reply,
            };
            self.send(
                Endpoint::Node(position),
                Endpoint::Client(waiting.client),
                packet,
            );
        }
        if last > LogIndex::ZERO {
            if let Some(replica) = self.nodes[position].replica.as_mut() {
                replica.on_applied(last);
            }
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
        self.with_replica(position, |replica, actions| replica.tick(now, actions))
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
        self.with_replica(position, |replica, actions| {
            replica.on_persisted(persisted, actions)
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
                match packet {
                    Packet::Raft(envelope) => self.with_replica(position, |replica, actions| {
                        replica.on_message(envelope, actions);
                    }),
                    Packet::Request(command) => self.on_request(position, from, command),
                    Packet::Response { .. } => Ok(()),
                }
            }
            Endpoint::Client(client) => {
                if let Packet::Response {
                    client: process,
                    request,
                    reply,
                } = packet
                {
                    self.on_client_response(client, process, request, reply);
                }
                Ok(())
            }
        }
    }

    fn on_request(
        &mut self,
        position: usize,
        from: Endpoint,
        command: KvCommand,
    ) -> Result<(), String> {
        let Endpoint::Client(client) = from else {
            return Ok(());
        };
        let replica = self.nodes[position].replica.as_ref().expect("up");
        if replica.role() != Role::Leader {
            let leader = replica.leader();
            let reply = Reply::NotLeader(leader);
            let packet = Packet::Response {
                client: command.client,
                request: command.request,
                reply,
            };
            self.send(Endpoint::Node(position), from, packet);
            return Ok(());
        }
        let mut submitted = None;
        self.with_replica(position, |replica, actions| {
            submitted = replica.submit(command.encode(), actions).ok();
        })?;
        if let Some((index, term)) = submitted {
            let waiting = Waiting {
                term,
                client,
                process: command.client,
                request: command.request,
            };
            self.nodes[position].waiting.insert(index, waiting);
        }
        Ok(())
    }

    // ----- Clients -----

    fn on_client_wake(&mut self, position: usize) {
        let now = self.now_us;
        let client = &mut self.clients[position];
        match &client.in_flight {
            Some(in_flight) if !self.healing && now >= in_flight.give_up_us => {
                // Give up: the outcome stays unknown, and this process never runs again.
                client.in_flight = None;
                client.unknown_count += 1;
                self.stats.unknown_count += 1;
                let process = self.process_new();
                let client = &mut self.clients[position];
                client.process = process;
                client.request = 0;
                let think = self.prng.range(0, self.options.think_us_max);
                self.client_wake(position, think);
            }
            Some(in_flight) if now >= in_flight.attempt_deadline_us => {
                self.client_attempt(position)
            }
            Some(in_flight) => {
                // Woken early (the give-up time moved when faults stopped): sleep on.
                let wake = in_flight.attempt_deadline_us.min(in_flight.give_up_us) - now;
                self.client_wake(position, wake);
            }
            None => self.client_invoke(position),
        }
    }

    fn client_invoke(&mut self, position: usize) {
        let op = SimClient::random_op(&mut self.prng, &mut self.unique_value);
        let call_time = self.history_time();
        let client = &mut self.clients[position];
        client.request += 1;
        let command = KvCommand {
            client: client.process,
            request: client.request,
            op,
        };
        self.history.push(Operation {
            process: client.process,
            op,
            call_us: call_time,
            output: None,
            return_us: None,
        });
        client.in_flight = Some(InFlight {
            command,
            history_position: self.history.len() - 1,
            target: 0,
            attempt_deadline_us: 0,
            give_up_us: self.now_us + GIVE_UP_US,
            attempts: 0,
        });
        self.client_attempt(position);
    }

    fn client_attempt(&mut self, position: usize) {
        let nodes_count = self.nodes.len();
        let target = self.clients[position].pick_target(&mut self.prng, nodes_count);
        let now = self.now_us;
        let client = &mut self.clients[position];
        let in_flight = client.in_flight.as_mut().expect("an operation in flight");
        in_flight.target = target;
        in_flight.attempts += 1;
        in_flight.attempt_deadline_us = now + ATTEMPT_TIMEOUT_US;
        let command = in_flight.command;
        let wake = (in_flight.give_up_us.min(in_flight.attempt_deadline_us)).saturating_sub(now);
        self.send(
            Endpoint::Client(position),
            Endpoint::Node(target),
            Packet::Request(command),
        );
        self.client_wake(position, wake.max(1));
    }

    fn on_client_response(&mut self, position: usize, process: u64, request: u64, reply: Reply) {
        let client = &mut self.clients[position];
        let Some(in_flight) = client.in_flight.as_mut() else {
            return;
        };
        if in_flight.command.client != process || in_flight.command.request != request {
            return; // An answer to an earlier attempt or an abandoned process.
        }
        match reply {
            Reply::Done(output) => {
                let history_position = in_flight.history_position;
                let return_time = history_time(&mut self.history_clock, self.now_us);
                client.in_flight = None;
                client.completed_count += 1;
                self.stats.completed_count += 1;
                let operation = &mut self.history[history_position];
                operation.output = Some(output);
                operation.return_us = Some(return_time);
                self.trace.u64(4).u64(process).u64(request);
                let think = self.prng.range(0, self.options.think_us_max);
                self.client_wake(position, think);
            }
            Reply::NotLeader(hint) => {
                client.leader_hint = hint.map(node_position);
                in_flight.attempt_deadline_us = self.now_us + RETRY_BACKOFF_US;
                self.client_wake(position, RETRY_BACKOFF_US);
            }
            Reply::Lost(_) => {
                in_flight.attempt_deadline_us = self.now_us + RETRY_BACKOFF_US;
                self.client_wake(position, RETRY_BACKOFF_US);
            }
        }
    }

    // ----- Liveness -----

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
        let now = self.now_us;
        for client in &mut self.clients {
            if let Some(in_flight) = client.in_flight.as_mut() {
                in_flight.give_up_us = u64::MAX;
                in_flight.attempt_deadline_us =
                    in_flight.attempt_deadline_us.min(now + ATTEMPT_TIMEOUT_US);
            }
        }
    }

    /// After the heal phase: a leader leads, and every client finished what it had pending
    /// in the first half of the heal phase.
    fn check_liveness(&self) -> Result<(), String> {
        let leaders = self
            .nodes
            .iter()
            .filter_map(|node| node.replica.as_ref())
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
                let call_us = self.history[in_flight.history_position].call_us / 1000;
                if call_us < cutoff {
                    return Err(format!(
                        "liveness: client {position}'s operation from {} ms still pending after heal ({:?}); {}",
                        call_us / 1000,
                        in_flight.command,
                        self.cluster_summary()
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
            match &node.replica {
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
            "append t{} prev {}/{} entries {} commit {}",
            request.term,
            request.prev_index,
            request.prev_term,
            request.entries.len(),
            request.commit_index
        ),
        Message::AppendResponse(response) => format!(
            "append-response t{} ok {} match {} rejected {} hint {}/{}",
            response.term,
            response.success,
            response.match_index,
            response.rejected_index,
            response.hint_index,
            response.hint_term
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
