//! A manual, fully deterministic cluster for transcript tests.
//!
//! Nothing happens unless the script says so: messages wait in one FIFO queue per link
//! until delivered, writes wait on each node's [`Disk`] until persisted (a crash loses
//! them), and time moves only when a node is ticked. Every node keeps its own monotonic
//! clock, advanced only by the ticks addressed to it (as etcd-raft's per-node tick
//! counts): that is what lets a script fire one node's election timer while the others
//! keep believing in their leader. After every input the replica's invariants and the
//! [`SafetyChecker`] run; a violation panics, and the transcript runner names the line.
//!
//! Each input's effects are also recorded as short events (`2: became follower at term 2,
//! leader 1`, `1: committed through 3`, ...) that commands print.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use coracle_engine::{
    Action, Actions, Configuration, ConfigurationError, Entry, Envelope, LogIndex,
    MembershipChange, Message, Prng, Replica, ReplicaConfig, ReplicaId, Restored, Role,
    SubmitError, Term, Time,
};

use crate::disk::Disk;
use crate::safety::{ChainTracker, SafetyChecker};
use crate::scenario::format;

/// Messages one link may hold; a script that queues more has a runaway loop.
const LINK_MESSAGES_MAX: usize = 1 << 12;
/// Rounds of persist-and-deliver one `stabilize` may take before it is declared a livelock.
const STABILIZE_ROUNDS_MAX: usize = 1000;
/// Step in which `campaign` moves a node's clock while waiting for its election timer.
const CAMPAIGN_STEP_MS: u64 = 10;

/// Settings shared by every node of a scenario.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base election timeout T: a follower's timer fires in [T, 2T) after its last reset.
    pub election_timeout_ms: u64,
    /// The leader's heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Bound on the entries of one append (1 sends exactly one entry per append).
    pub append_size_bytes_max: usize,
    /// Seed of every replica's PRNG (each replica mixes in its own id).
    pub seed: u64,
    /// Deliberate engine bugs. With one on, safety violations become events
    /// (`SAFETY VIOLATION: ...`) instead of failing the transcript, so a transcript can show
    /// the checker catching the bug.
    pub planted_bugs: coracle_engine::PlantedBugs,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            election_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            append_size_bytes_max: coracle_engine::config::APPEND_SIZE_BYTES_MAX_DEFAULT,
            seed: 42,
            planted_bugs: coracle_engine::PlantedBugs::default(),
        }
    }
}

/// What one node reported last: role, term and leader.
type Reported = (Role, Term, Option<ReplicaId>);

/// One server: its replica (absent while crashed), its disk, its clock.
#[derive(Debug)]
struct ScenarioNode {
    replica: Option<Replica>,
    config: ReplicaConfig,
    bootstrap: Configuration,
    disk: Disk,
    clock_ms: u64,
    /// The safety checker's view of this node's durable-or-written log.
    chain: ChainTracker,
    /// Highest index whose commit the safety checker has verified on this node.
    commit_checked: LogIndex,
    /// Role, term and leader as last printed.
    reported: Reported,
    /// The configuration in force as last printed.
    configuration: Configuration,
}

impl ScenarioNode {
    fn time(&self) -> Time {
        Time {
            monotonic_ms: self.clock_ms,
            wall_ms: self.clock_ms,
        }
    }
}

/// Replicas with ids 1..=n, a message queue per link, partitions, crashes and clocks.
#[derive(Debug)]
pub struct ScenarioCluster {
    settings: Settings,
    nodes: BTreeMap<ReplicaId, ScenarioNode>,
    /// Messages in flight, one FIFO queue per (from, to) link.
    links: BTreeMap<(ReplicaId, ReplicaId), VecDeque<Message>>,
    /// Partition group of each listed node; unlisted nodes are alone. Empty when healed.
    groups: BTreeMap<ReplicaId, usize>,
    safety: SafetyChecker,
    request_id_last: u64,
    /// Pre-vote rounds started, by any node (each poll round counts once).
    polls_count: u64,
    /// Events not yet printed.
    events: Vec<String>,
}

impl ScenarioCluster {
    /// `count` nodes with ids 1..=count and empty disks, all started with `bootstrap` at
    /// time zero. Nodes that `bootstrap` does not list start inactive (they may join).
    ///
    /// # Panics
    /// If there is no node or `bootstrap` has no voter.
    #[must_use]
    pub fn new(count: u64, bootstrap: &Configuration, settings: Settings) -> ScenarioCluster {
        assert!(count > 0, "a cluster has nodes");
        assert!(bootstrap.voters_count() > 0, "a cluster has voters");
        let mut cluster = ScenarioCluster {
            settings,
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            groups: BTreeMap::new(),
            safety: SafetyChecker::default(),
            request_id_last: 0,
            polls_count: 0,
            events: Vec::new(),
        };
        for id in (1..=count).map(ReplicaId) {
            let mut config = ReplicaConfig::new(id, cluster.settings.seed);
            config.election_timeout_ms = cluster.settings.election_timeout_ms;
            config.heartbeat_interval_ms = cluster.settings.heartbeat_interval_ms;
            config.append_size_bytes_max = cluster.settings.append_size_bytes_max;
            config.planted_bugs = cluster.settings.planted_bugs;
            let node = ScenarioNode {
                replica: None,
                config,
                bootstrap: bootstrap.clone(),
                disk: Disk::default(),
                clock_ms: 0,
                chain: ChainTracker::default(),
                commit_checked: LogIndex::ZERO,
                reported: (Role::Inactive, Term::ZERO, None),
                configuration: bootstrap.clone(),
            };
            cluster.nodes.insert(id, node);
            cluster.start(id);
        }
        cluster
    }

    // ----- Looking in -----

    /// Every node's id, ascending.
    #[must_use]
    pub fn ids(&self) -> Vec<ReplicaId> {
        self.nodes.keys().copied().collect()
    }

    /// True if `id` names a node of this cluster.
    #[must_use]
    pub fn contains(&self, id: ReplicaId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// The running replica `id`, or `None` while it is down.
    #[must_use]
    pub fn replica(&self, id: ReplicaId) -> Option<&Replica> {
        self.node(id).replica.as_ref()
    }

    /// What `id`'s disk holds durably (meaningful while the node is down).
    #[must_use]
    pub fn disk_entries(&self, id: ReplicaId) -> &[Entry] {
        self.node(id).disk.entries()
    }

    /// What a node that is down would restart from.
    ///
    /// # Panics
    /// If the node is up with writes not yet persisted.
    #[must_use]
    pub fn disk_restored(&self, id: ReplicaId) -> Restored {
        self.node(id).disk.restored()
    }

    /// `id`'s clock in ms.
    #[must_use]
    pub fn clock_ms(&self, id: ReplicaId) -> u64 {
        self.node(id).clock_ms
    }

    /// The settings every node runs with.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A safety checker fired: fail the transcript, unless a planted bug is on, in which
    /// case the violation is what the transcript demonstrates.
    fn violation(&mut self, violation: &str) {
        assert!(
            self.settings.planted_bugs != coracle_engine::PlantedBugs::default(),
            "safety violation: {violation}"
        );
        self.events.push(format!("SAFETY VIOLATION: {violation}"));
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    fn node(&self, id: ReplicaId) -> &ScenarioNode {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: ReplicaId) -> &mut ScenarioNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    // ----- Inputs -----

    /// Runs one input on replica `id` (if it is up), checks its invariants, and carries out
    /// what it asked for. Returns `None` if the node is down.
    pub fn input<R>(
        &mut self,
        id: ReplicaId,
        input: impl FnOnce(&mut Replica, &mut Actions) -> R,
    ) -> Option<R> {
        let node = self.node_mut(id);
        let replica = node.replica.as_mut()?;
        let last_index_before = replica.log().last_index();
        let mut actions = Actions::new();
        let result = input(replica, &mut actions);
        replica.invariants();
        let list: Vec<Action> = actions.drain().collect();
        self.carry_out(id, list, last_index_before);
        self.note_configuration(id);
        Some(result)
    }

    /// Persists (to the unsynced part of the disk), queues sends, applies, and records events.
    fn carry_out(&mut self, id: ReplicaId, list: Vec<Action>, mut last_index: LogIndex) {
        let mut polled = false;
        for action in list {
            match action {
                Action::Persist {
                    id: persist_id,
                    hard_state,
                    entries,
                } => {
                    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                        if first.index <= last_index {
                            self.events.push(format!(
                                "{id}: truncated log after {} (dropped {}..={last_index})",
                                first.index.prev(),
                                first.index
                            ));
                        }
                        last_index = last.index;
                    }
                    let node = self.nodes.get_mut(&id).expect("the node exists");
                    let checked = self.safety.on_entries(id, &mut node.chain, &entries);
                    node.disk.write(persist_id, hard_state, entries);
                    if let Err(violation) = checked {
                        self.violation(&violation);
                    }
                }
                Action::Send { to, message } => {
                    assert!(to != id, "a replica never sends to itself");
                    if let Message::PollRequest(request) = &message {
                        if !polled {
                            polled = true;
                            self.polls_count += 1;
                            self.events.push(format!(
                                "{id}: election timer fired; pre-vote for term {}",
                                request.term
                            ));
                        }
                    }
                    let queue = self.links.entry((id, to)).or_default();
                    assert!(queue.len() < LINK_MESSAGES_MAX, "link {id}->{to} overflows");
                    queue.push_back(message);
                }
                Action::Apply { entries } => self.apply(id, &entries),
                Action::RoleChanged { role, term, leader } => {
                    self.on_role_changed(id, role, term, leader)
                }
                Action::Committed { index } => {
                    let node = self.nodes.get_mut(&id).expect("the node exists");
                    let replica = node.replica.as_ref().expect("an input ran on it");
                    let log = replica.log().entries();
                    let term = replica.term();
                    let checked =
                        self.safety
                            .on_commit(id, term, &mut node.commit_checked, index, log);
                    if let Err(violation) = checked {
                        self.violation(&violation);
                    }
                    self.events.push(format!("{id}: committed through {index}"));
                }
                // Transcripts ask for no reads yet: confirmations are not narrated.
                Action::LeadershipConfirmed { .. } => {}
                Action::MembershipOutcome {
                    request_id,
                    outcome,
                } => {
                    self.events.push(format!(
                        "{id}: membership request {request_id} {}",
                        format::outcome(&outcome)
                    ));
                }
            }
        }
    }

    fn apply(&mut self, id: ReplicaId, entries: &[Entry]) {
        let last = entries.last().expect("an apply is never empty").index;
        for entry in entries {
            if let Err(violation) = self.safety.on_apply(id, entry) {
                self.violation(&violation);
            }
        }
        let replica = self
            .node_mut(id)
            .replica
            .as_mut()
            .expect("an input ran on it");
        replica.on_applied(last);
        replica.invariants();
    }

    fn on_role_changed(
        &mut self,
        id: ReplicaId,
        role: Role,
        term: Term,
        leader: Option<ReplicaId>,
    ) {
        let node = self.nodes.get_mut(&id).expect("the node exists");
        let (role_before, term_before, leader_before) = node.reported;
        if node.reported == (role, term, leader) {
            return;
        }
        node.reported = (role, term, leader);
        if (role, term) == (role_before, term_before) {
            // Only the leader changed: learned from an append, or forgotten by a poll.
            let event = match (leader, leader_before) {
                (Some(leader), _) => format!("{id}: follows leader {leader} at term {term}"),
                (None, Some(before)) => format!("{id}: lost leader {before} at term {term}"),
                (None, None) => unreachable!("the report changed"),
            };
            self.events.push(event);
            return;
        }
        if role == Role::Leader {
            let replica = node.replica.as_ref().expect("an input ran on it");
            if let Err(violation) = self.safety.on_leader(id, term, replica.log().entries()) {
                self.violation(&violation);
            }
        }
        let leader = match leader {
            Some(leader) if leader != id => format!(", leader {leader}"),
            _ => String::new(),
        };
        self.events.push(format!(
            "{id}: became {} at term {term}{leader}",
            format::role(role)
        ));
    }

    /// Records an event if the configuration in force at `id` changed.
    fn note_configuration(&mut self, id: ReplicaId) {
        let node = self.nodes.get_mut(&id).expect("the node exists");
        let Some(replica) = node.replica.as_ref() else {
            return;
        };
        let configuration = replica.configuration();
        if *configuration != node.configuration {
            node.configuration = configuration.clone();
            self.events.push(format!(
                "{id}: configuration {} in force",
                format::configuration(configuration)
            ));
        }
    }

    // ----- Time -----

    /// Moves `id`'s clock on by `duration_ms` and ticks it once. False if it is down.
    pub fn tick(&mut self, id: ReplicaId, duration_ms: u64) -> bool {
        let node = self.node_mut(id);
        if node.replica.is_none() {
            return false;
        }
        node.clock_ms += duration_ms;
        let now = node.time();
        self.input(id, |replica, actions| replica.tick(now, actions))
            .is_some()
    }

    /// Ticks `id` in small steps until its election timer fires (it polls, or as the only
    /// voter becomes candidate), at most 2T. Returns the time waited, or `None` if the
    /// timer did not fire (a leader, a non-voter, or a node that is down).
    pub fn tick_until_election(&mut self, id: ReplicaId) -> Option<u64> {
        let replica = self.replica(id)?;
        if !matches!(replica.role(), Role::Follower | Role::Candidate) {
            return None;
        }
        let term_before = replica.term();
        let mut waited_ms = 0;
        while waited_ms < 2 * self.settings.election_timeout_ms {
            waited_ms += CAMPAIGN_STEP_MS;
            let polls_before = self.polls_count;
            self.tick(id, CAMPAIGN_STEP_MS);
            let replica = self.replica(id).expect("still up");
            if self.polls_count > polls_before
                || replica.term() != term_before
                || replica.role() == Role::Leader
            {
                return Some(waited_ms);
            }
        }
        None
    }

    // ----- Disk -----

    /// Makes every write of `id` durable and tells the replica. Returns false if nothing
    /// was waiting (or the node is down).
    pub fn persist(&mut self, id: ReplicaId) -> bool {
        let node = self.node_mut(id);
        if node.replica.is_none() || !node.disk.has_unsynced() {
            return false;
        }
        let last = node.disk.sync().expect("there were unsynced writes");
        self.input(id, |replica, actions| replica.on_persisted(last, actions));
        true
    }

    /// True if `id` is up and has writes waiting for a sync.
    #[must_use]
    pub fn has_unsynced(&self, id: ReplicaId) -> bool {
        let node = self.node(id);
        node.replica.is_some() && node.disk.has_unsynced()
    }

    // ----- Network -----

    /// Why a message from `from` to `to` cannot be delivered now, if it cannot.
    fn blocked(&self, from: ReplicaId, to: ReplicaId) -> Option<String> {
        let Some(node) = self.nodes.get(&to) else {
            return Some(format!("no node {to}"));
        };
        if node.replica.is_none() {
            return Some(format!("{to} is down"));
        }
        if !self.groups.is_empty() {
            let connected = matches!(
                (self.groups.get(&from), self.groups.get(&to)),
                (Some(a), Some(b)) if a == b
            );
            if !connected {
                return Some("partitioned".to_owned());
            }
        }
        None
    }

    /// Takes the messages now queued to any of `to` (every node if empty), link by link.
    fn take_queued(&mut self, to: &[ReplicaId]) -> Vec<Envelope> {
        let mut taken = Vec::new();
        for ((from, receiver), queue) in &mut self.links {
            if to.is_empty() || to.contains(receiver) {
                taken.extend(queue.drain(..).map(|message| Envelope {
                    from: *from,
                    to: *receiver,
                    message,
                }));
            }
        }
        self.links.retain(|_, queue| !queue.is_empty());
        taken
    }

    /// True if any message is in flight.
    #[must_use]
    pub fn has_messages(&self) -> bool {
        self.links.values().any(|queue| !queue.is_empty())
    }

    /// Delivers the messages queued now to `to` (every node if empty); messages they cause
    /// stay queued. Returns one line per message, each followed by the events it caused.
    pub fn deliver(&mut self, to: &[ReplicaId]) -> Vec<String> {
        let mut lines = Vec::new();
        let pending = self.take_events();
        lines.extend(pending);
        for envelope in self.take_queued(to) {
            let mut line = format!(
                "{}->{} {}",
                envelope.from,
                envelope.to,
                format::message(envelope.from, &envelope.message)
            );
            if let Some(reason) = self.blocked(envelope.from, envelope.to) {
                let _ = write!(line, " (dropped: {reason})");
                lines.push(line);
                continue;
            }
            lines.push(line);
            let receiver = envelope.to;
            self.input(receiver, |replica, actions| {
                replica.on_message(envelope, actions)
            });
            lines.extend(
                self.take_events()
                    .into_iter()
                    .map(|event| format!("  {event}")),
            );
        }
        lines
    }

    /// Drops the messages queued now to `to` (every node if empty). Returns what was dropped.
    pub fn drop_messages(&mut self, to: &[ReplicaId]) -> Vec<String> {
        self.take_queued(to)
            .into_iter()
            .map(|envelope| {
                format!(
                    "{}->{} {} (dropped)",
                    envelope.from,
                    envelope.to,
                    format::message(envelope.from, &envelope.message)
                )
            })
            .collect()
    }

    /// Persists every node and delivers every message, round after round, until nothing is
    /// left to do. Messages that cannot be delivered are dropped silently.
    ///
    /// # Panics
    /// If the cluster does not settle (a livelock).
    pub fn stabilize(&mut self) {
        for _ in 0..STABILIZE_ROUNDS_MAX {
            let mut changed = false;
            for id in self.ids() {
                changed |= self.persist(id);
            }
            for envelope in self.take_queued(&[]) {
                changed = true;
                if self.blocked(envelope.from, envelope.to).is_none() {
                    let receiver = envelope.to;
                    self.input(receiver, |replica, actions| {
                        replica.on_message(envelope, actions)
                    });
                }
            }
            if !changed {
                return;
            }
        }
        panic!("the cluster did not settle in {STABILIZE_ROUNDS_MAX} rounds");
    }

    /// Splits the network: nodes in different groups cannot talk, and a node not named in
    /// any group is alone.
    ///
    /// # Panics
    /// If a node is named twice.
    pub fn partition(&mut self, groups: &[Vec<ReplicaId>]) {
        self.groups.clear();
        for (group, ids) in groups.iter().enumerate() {
            for &id in ids {
                assert!(self.groups.insert(id, group).is_none(), "{id} named twice");
            }
        }
    }

    /// Reconnects every node.
    pub fn heal(&mut self) {
        self.groups.clear();
    }

    // ----- Crashes -----

    /// Stops `id`: writes not persisted are lost, messages queued to or from it are dropped,
    /// and messages it deferred inside the replica are gone. Returns how many writes and
    /// messages were lost, or `None` if it was already down.
    pub fn crash(&mut self, id: ReplicaId) -> Option<(u64, usize)> {
        let node = self.node_mut(id);
        node.replica.take()?;
        let lost_before = node.disk.lost_count;
        node.disk.crash(&mut Prng::new(0), false);
        let lost = node.disk.lost_count - lost_before;
        let messages_before: usize = self.links.values().map(VecDeque::len).sum();
        self.links.retain(|&(from, to), _| from != id && to != id);
        let messages_after: usize = self.links.values().map(VecDeque::len).sum();
        Some((lost, messages_before - messages_after))
    }

    /// Restarts `id` from its disk. Returns false if it was already up.
    pub fn restart(&mut self, id: ReplicaId) -> bool {
        if self.node(id).replica.is_some() {
            return false;
        }
        self.start(id);
        true
    }

    fn start(&mut self, id: ReplicaId) {
        let node = self.node_mut(id);
        let restored = node.disk.restored();
        node.chain = ChainTracker::from_entries(&restored.entries);
        node.commit_checked = LogIndex::ZERO;
        let replica = Replica::new(
            node.config.clone(),
            node.bootstrap.clone(),
            restored,
            node.time(),
        );
        replica.invariants();
        node.reported = (replica.role(), replica.term(), replica.leader());
        node.configuration = replica.configuration().clone();
        node.replica = Some(replica);
    }

    // ----- Requests -----

    /// Submits a command at `id`. `None` if the node is down.
    pub fn propose(
        &mut self,
        id: ReplicaId,
        payload: &str,
    ) -> Option<Result<(LogIndex, Term), SubmitError>> {
        let payload = Bytes::from(payload.to_owned());
        self.input(id, |replica, actions| replica.submit(payload, actions))
    }

    /// Asks `id` to change the membership (forwarded to the leader if `id` is not it); the
    /// answer comes as a `membership request N` event. Returns the request id, or the
    /// refusal. `None` if the node is down.
    pub fn request_membership(
        &mut self,
        id: ReplicaId,
        change: MembershipChange,
    ) -> Option<(u64, Result<(), ConfigurationError>)> {
        self.replica(id)?;
        self.request_id_last += 1;
        let request_id = self.request_id_last;
        self.input(id, |replica, actions| {
            replica.request_membership(change, request_id, actions)
        })
        .map(|result| (request_id, result))
    }
}
