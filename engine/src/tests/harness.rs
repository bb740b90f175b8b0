//! Builders for inputs and expected actions, single-replica drivers, and a tiny cluster:
//! replicas, a durable store per replica that carries out `Persist`, and a message queue
//! delivered by hand (FIFO, with replicas that can be cut off).

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use crate::message::{AppendRequest, AppendResponse, VoteRequest, VoteResponse};
use crate::{
    Action, Actions, Configuration, ConfigurationError, Entry, EntryBody, Envelope, HardState,
    LogIndex, Member, MemberType, Message, PersistId, Replica, ReplicaConfig, ReplicaId, Restored,
    Role, Term, Time,
};

/// Base election timeout T of every test replica.
pub const ELECTION_TIMEOUT_MS: u64 = 1000;
/// Heartbeat interval of every test replica.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// By then, every election timer armed at time zero has fired (timers fire in [T, 2T)).
pub const TIMER_FIRED_MS: u64 = 2 * ELECTION_TIMEOUT_MS;
/// A replica started at time zero refuses polls and votes until then (a restart keeps any
/// lease it may have granted); no timer armed at time zero has fired yet.
pub const START_LEASE_OVER_MS: u64 = ELECTION_TIMEOUT_MS;
/// The cluster's clock moves in steps of this size, ticking every replica at each step.
const STEP_MS: u64 = 10;
/// A bound on deliveries in one `deliver_all`, so a livelock fails instead of hanging.
const DELIVERIES_MAX: usize = 100_000;

// ----- Values -----

pub fn at(ms: u64) -> Time {
    Time {
        monotonic_ms: ms,
        wall_ms: ms,
    }
}

pub fn rid(id: u64) -> ReplicaId {
    ReplicaId(id)
}

pub fn config(id: u64) -> ReplicaConfig {
    let mut config = ReplicaConfig::new(ReplicaId(id), 42);
    config.election_timeout_ms = ELECTION_TIMEOUT_MS;
    config.heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS;
    config
}

/// A bootstrap configuration of voters.
pub fn voters(ids: &[u64]) -> Configuration {
    let ids: Vec<ReplicaId> = ids.iter().copied().map(ReplicaId).collect();
    Configuration::bootstrap(&ids)
}

/// A bootstrap configuration with the given member types.
pub fn members(list: &[(u64, MemberType)]) -> Configuration {
    let members = list
        .iter()
        .map(|&(id, kind)| Member::new(ReplicaId(id), kind))
        .collect();
    Configuration::from_members(LogIndex::ZERO, Term::ZERO, 0, members)
}

pub fn hard_state(term: u64, vote: Option<u64>) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(ReplicaId),
    }
}

pub fn command(index: u64, term: u64, payload: &str) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        timestamp_ms: 0,
        body: EntryBody::Command {
            payload: Bytes::from(payload.to_owned()),
        },
    }
}

/// A command whose payload is `size` bytes (its `size_bytes()` is 40 more).
pub fn command_sized(index: u64, term: u64, size: usize) -> Entry {
    command(index, term, &"x".repeat(size))
}

pub fn initialize(index: u64, term: u64, timestamp_ms: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        timestamp_ms,
        body: EntryBody::Initialize,
    }
}

pub fn configuration_entry(index: u64, term: u64, configuration: &Configuration) -> Entry {
    let members = configuration.members.clone();
    Entry {
        index: LogIndex(index),
        term: Term(term),
        timestamp_ms: 0,
        body: EntryBody::Configuration { members },
    }
}

/// Commands at indexes 1.. with these terms; each payload names its index.
pub fn log_with_terms(terms: &[u64]) -> Vec<Entry> {
    (1..)
        .zip(terms)
        .map(|(index, &term)| command(index, term, &format!("e{index}")))
        .collect()
}

pub fn terms_of(replica: &Replica) -> Vec<u64> {
    let log = replica.log();
    (1..=log.last_index().0)
        .map(|index| log.term_at(LogIndex(index)).expect("held").0)
        .collect()
}

// ----- Messages -----

pub fn append(
    term: u64,
    leader: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit_index: u64,
) -> Message {
    Message::AppendRequest(AppendRequest {
        term: Term(term),
        leader: ReplicaId(leader),
        prev_index: LogIndex(prev.0),
        prev_term: Term(prev.1),
        entries,
        commit_index: LogIndex(commit_index),
        global_index: LogIndex::ZERO,
        round: 0,
    })
}

pub fn accepted(term: u64, match_index: u64) -> Message {
    Message::AppendResponse(AppendResponse {
        term: Term(term),
        success: true,
        match_index: LogIndex(match_index),
        rejected_index: LogIndex::ZERO,
        hint_index: LogIndex::ZERO,
        hint_term: Term::ZERO,
        round: 0,
    })
}

pub fn rejected(term: u64, rejected_index: u64, hint: (u64, u64)) -> Message {
    Message::AppendResponse(AppendResponse {
        term: Term(term),
        success: false,
        match_index: LogIndex::ZERO,
        rejected_index: LogIndex(rejected_index),
        hint_index: LogIndex(hint.0),
        hint_term: Term(hint.1),
        round: 0,
    })
}

/// An append request or response carrying (or echoing) confirmation round `round`.
pub fn in_round(message: Message, round: u64) -> Message {
    match message {
        Message::AppendRequest(request) => {
            Message::AppendRequest(AppendRequest { round, ..request })
        }
        Message::AppendResponse(response) => {
            Message::AppendResponse(AppendResponse { round, ..response })
        }
        other => panic!("only appends carry rounds: {other:?}"),
    }
}

fn vote_request(term: u64, candidate: u64, last: (u64, u64)) -> VoteRequest {
    VoteRequest {
        term: Term(term),
        candidate: ReplicaId(candidate),
        last_index: LogIndex(last.0),
        last_term: Term(last.1),
    }
}

/// A poll for `term` from `candidate` whose log ends at `last` = (index, term).
pub fn poll(term: u64, candidate: u64, last: (u64, u64)) -> Message {
    Message::PollRequest(vote_request(term, candidate, last))
}

pub fn poll_answer(term: u64, granted: bool) -> Message {
    Message::PollResponse(VoteResponse {
        term: Term(term),
        granted,
    })
}

/// A vote request for `term` from `candidate` whose log ends at `last` = (index, term).
pub fn vote(term: u64, candidate: u64, last: (u64, u64)) -> Message {
    Message::VoteRequest(vote_request(term, candidate, last))
}

pub fn vote_answer(term: u64, granted: bool) -> Message {
    Message::VoteResponse(VoteResponse {
        term: Term(term),
        granted,
    })
}

// ----- Expected actions -----

pub fn send(to: u64, message: Message) -> Action {
    Action::Send {
        to: ReplicaId(to),
        message,
    }
}

pub fn persist(id: u64, hard_state: Option<HardState>, entries: Vec<Entry>) -> Action {
    Action::Persist {
        id: PersistId(id),
        hard_state,
        entries,
    }
}

pub fn role_changed(role: Role, term: u64, leader: Option<u64>) -> Action {
    Action::RoleChanged {
        role,
        term: Term(term),
        leader: leader.map(ReplicaId),
    }
}

pub fn committed(index: u64) -> Action {
    Action::Committed {
        index: LogIndex(index),
    }
}

pub fn apply(entries: Vec<Entry>) -> Action {
    Action::Apply { entries }
}

/// Actions hold no `PartialEq`; their pretty `Debug` forms are compared, line by line.
#[track_caller]
pub fn assert_actions(actual: &[Action], expected: &[Action]) {
    assert_eq!(format!("{actual:#?}"), format!("{expected:#?}"));
}

// ----- Looking into actions -----

pub fn sends(actions: &[Action]) -> Vec<(u64, Message)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send { to, message } => Some((to.0, message.clone())),
            _ => None,
        })
        .collect()
}

/// The append requests sent to `to`.
pub fn appends_to(actions: &[Action], to: u64) -> Vec<AppendRequest> {
    sends(actions)
        .into_iter()
        .filter_map(|(receiver, message)| match message {
            Message::AppendRequest(request) if receiver == to => Some(request),
            _ => None,
        })
        .collect()
}

pub fn entry_indexes(request: &AppendRequest) -> Vec<u64> {
    request.entries.iter().map(|entry| entry.index.0).collect()
}

pub fn has_commit(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|action| matches!(action, Action::Committed { .. }))
}

// ----- Driving one replica by hand -----

/// A replica of `configuration` with nothing stored, started at time zero.
pub fn fresh(id: u64, configuration: Configuration) -> Replica {
    restored_with(config(id), configuration, HardState::default(), Vec::new())
}

/// A replica restarted from what storage held, at time zero.
pub fn restored(
    id: u64,
    configuration: Configuration,
    hard_state: HardState,
    entries: Vec<Entry>,
) -> Replica {
    restored_with(config(id), configuration, hard_state, entries)
}

/// Like `restored`, with settings of the caller's choosing. The first input reports the
/// starting role; that report is consumed here so tests see only what their inputs cause.
pub fn restored_with(
    config: ReplicaConfig,
    configuration: Configuration,
    hard_state: HardState,
    entries: Vec<Entry>,
) -> Replica {
    let mut replica = Replica::new(
        config,
        configuration,
        Restored {
            hard_state,
            entries,
        },
        at(0),
    );
    let actions = tick(&mut replica, 0);
    assert!(
        actions
            .iter()
            .all(|action| matches!(action, Action::RoleChanged { .. })),
        "a tick at time zero only reports the role: {actions:?}"
    );
    replica
}

/// Ticks a replica started at time zero to `START_LEASE_OVER_MS`, when it grants polls and
/// votes again; its election timer must not fire yet.
#[track_caller]
pub fn past_start_lease(replica: &mut Replica) {
    let actions = tick(replica, START_LEASE_OVER_MS);
    assert!(actions.is_empty(), "nothing happens at T: {actions:?}");
}

pub fn tick(replica: &mut Replica, ms: u64) -> Vec<Action> {
    let mut actions = Actions::new();
    replica.tick(at(ms), &mut actions);
    actions.drain().collect()
}

pub fn deliver(replica: &mut Replica, from: u64, message: Message) -> Vec<Action> {
    let mut actions = Actions::new();
    let to = replica.id();
    replica.on_message(
        Envelope {
            from: ReplicaId(from),
            to,
            message,
        },
        &mut actions,
    );
    actions.drain().collect()
}

pub fn persisted(replica: &mut Replica, id: u64) -> Vec<Action> {
    let mut actions = Actions::new();
    replica.on_persisted(PersistId(id), &mut actions);
    actions.drain().collect()
}

/// Reports every persist emitted so far as durable.
pub fn persist_all(replica: &mut Replica) -> Vec<Action> {
    let last = replica.persist_id_last.0;
    persisted(replica, last)
}

pub fn submit(replica: &mut Replica, payload: &str) -> (LogIndex, Vec<Action>) {
    let mut actions = Actions::new();
    let (index, _) = replica
        .submit(Bytes::from(payload.to_owned()), &mut actions)
        .expect("the replica leads");
    (index, actions.drain().collect())
}

/// Elects `replica` by hand at `TIMER_FIRED_MS`: `grantors` grant its poll and its vote.
/// Returns the actions of the input that made it leader; its Initialize is not durable yet.
pub fn elect_by_hand(replica: &mut Replica, grantors: &[u64]) -> Vec<Action> {
    tick(replica, TIMER_FIRED_MS);
    let term = replica.term().0 + 1;
    for &from in grantors {
        if replica.role() == Role::Follower {
            deliver(replica, from, poll_answer(term, true));
        }
    }
    assert_eq!(replica.role(), Role::Candidate, "the poll was granted");
    let mut actions = persist_all(replica);
    for &from in grantors {
        if replica.role() == Role::Candidate {
            actions = deliver(replica, from, vote_answer(term, true));
        }
    }
    assert_eq!(replica.role(), Role::Leader, "the votes were granted");
    actions
}

// ----- A durable store -----

/// What one replica's disk holds: written only by `Persist` actions.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
}

impl Store {
    /// Writes one persist as `Action::Persist` describes it.
    pub fn write(&mut self, hard_state: Option<HardState>, entries: &[Entry]) {
        if let Some(hard_state) = hard_state {
            assert!(
                hard_state.term >= self.hard_state.term,
                "stored term never goes back"
            );
            self.hard_state = hard_state;
        }
        if let Some(first) = entries.first() {
            let keep = usize::try_from(first.index.0 - 1).expect("small log");
            assert!(keep <= self.entries.len(), "a persist never leaves a hole");
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
    }

    /// Writes every `Persist` among `actions`, in order.
    pub fn execute(&mut self, actions: &[Action]) {
        for action in actions {
            if let Action::Persist {
                hard_state,
                entries,
                ..
            } = action
            {
                self.write(*hard_state, entries);
            }
        }
    }

    pub fn restored(&self) -> Restored {
        Restored {
            hard_state: self.hard_state,
            entries: self.entries.clone(),
        }
    }
}

// ----- A tiny cluster -----

/// One server of the cluster: its replica, its disk, and what it handed out.
#[derive(Debug)]
pub struct Node {
    pub replica: Replica,
    pub config: ReplicaConfig,
    pub bootstrap: Configuration,
    pub store: Store,
    /// While true, persists wait in `held` until `release` (a slow disk).
    pub hold_persists: bool,
    held: Vec<(PersistId, Option<HardState>, Vec<Entry>)>,
    /// Every entry handed out by `Apply`, in order.
    pub applied: Vec<Entry>,
    pub outcomes: Vec<(u64, Result<Configuration, ConfigurationError>)>,
    /// Every `LeadershipConfirmed` as (term, round), in order.
    pub confirmed: Vec<(Term, u64)>,
}

/// Replicas with ids 1..=n (node `i` at position `i - 1`), one shared clock, a FIFO queue.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub now_ms: u64,
    queue: VecDeque<Envelope>,
    /// Every message handed to a replica, in delivery order.
    pub delivered: Vec<Envelope>,
    /// Cut-off replicas: messages to or from them are dropped.
    pub cut: BTreeSet<u64>,
}

impl Cluster {
    /// `count` replicas with empty disks, all started with `bootstrap`.
    pub fn new(count: u64, bootstrap: &Configuration) -> Cluster {
        let configs = (1..=count).map(config).collect();
        let restored = (1..=count).map(|_| Restored::default()).collect();
        Cluster::with(configs, bootstrap, restored)
    }

    /// Replicas with these settings (ids 1..=n in order) and disk contents.
    pub fn with(
        configs: Vec<ReplicaConfig>,
        bootstrap: &Configuration,
        restored: Vec<Restored>,
    ) -> Cluster {
        assert_eq!(configs.len(), restored.len());
        let mut cluster = Cluster {
            nodes: Vec::new(),
            now_ms: 0,
            queue: VecDeque::new(),
            delivered: Vec::new(),
            cut: BTreeSet::new(),
        };
        for (position, (config, restored)) in configs.into_iter().zip(restored).enumerate() {
            assert_eq!(config.id.0, position as u64 + 1, "ids are 1..=n in order");
            let store = Store {
                hard_state: restored.hard_state,
                entries: restored.entries.clone(),
            };
            let replica = Replica::new(config.clone(), bootstrap.clone(), restored, at(0));
            cluster.nodes.push(Node {
                replica,
                config,
                bootstrap: bootstrap.clone(),
                store,
                hold_persists: false,
                held: Vec::new(),
                applied: Vec::new(),
                outcomes: Vec::new(),
                confirmed: Vec::new(),
            });
        }
        cluster
    }

    pub fn ids(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64).collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[usize::try_from(id - 1).expect("small id")]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[usize::try_from(id - 1).expect("small id")]
    }

    pub fn replica(&self, id: u64) -> &Replica {
        &self.node(id).replica
    }

    /// The replicas that believe they lead.
    pub fn leaders(&self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|&id| self.replica(id).role() == Role::Leader)
            .collect()
    }

    /// Runs one input on replica `id` and carries out everything it asks for.
    pub fn input<R>(&mut self, id: u64, input: impl FnOnce(&mut Replica, &mut Actions) -> R) -> R {
        let mut actions = Actions::new();
        let result = input(&mut self.node_mut(id).replica, &mut actions);
        let list = actions.drain().collect();
        self.carry_out(id, list);
        result
    }

    /// Persists (then reports them durable), queues sends, records applies and outcomes.
    fn carry_out(&mut self, id: u64, mut list: Vec<Action>) {
        loop {
            let mut durable = None;
            for action in list {
                match action {
                    Action::Persist {
                        id: persist_id,
                        hard_state,
                        entries,
                    } => {
                        let node = self.node_mut(id);
                        if node.hold_persists {
                            node.held.push((persist_id, hard_state, entries));
                        } else {
                            assert!(node.held.is_empty(), "release held persists first");
                            node.store.write(hard_state, &entries);
                            durable = Some(persist_id);
                        }
                    }
                    Action::Send { to, message } => {
                        assert!(to.0 != id, "never sends to itself");
                        self.queue.push_back(Envelope {
                            from: ReplicaId(id),
                            to,
                            message,
                        });
                    }
                    Action::Apply { entries } => {
                        let node = self.node_mut(id);
                        let last = entries.last().expect("an apply is never empty").index;
                        node.applied.extend(entries);
                        node.replica.on_applied(last);
                    }
                    Action::MembershipOutcome {
                        request_id,
                        outcome,
                    } => {
                        self.node_mut(id).outcomes.push((request_id, outcome));
                    }
                    Action::LeadershipConfirmed { term, round } => {
                        self.node_mut(id).confirmed.push((term, round));
                    }
                    Action::RoleChanged { .. } | Action::Committed { .. } => {}
                }
            }
            let Some(persist_id) = durable else {
                return;
            };
            let mut actions = Actions::new();
            self.node_mut(id)
                .replica
                .on_persisted(persist_id, &mut actions);
            list = actions.drain().collect();
        }
    }

    /// Writes the persists replica `id` held back and reports them durable.
    pub fn release(&mut self, id: u64) {
        let node = self.node_mut(id);
        let held = std::mem::take(&mut node.held);
        let Some(last) = held.last().map(|(persist_id, _, _)| *persist_id) else {
            return;
        };
        for (_, hard_state, entries) in &held {
            node.store.write(*hard_state, entries);
        }
        self.input(id, |replica, actions| replica.on_persisted(last, actions));
    }

    /// Delivers queued messages (and those they cause) until the queue is empty.
    pub fn deliver_all(&mut self) {
        let mut count = 0;
        while let Some(envelope) = self.queue.pop_front() {
            count += 1;
            assert!(count < DELIVERIES_MAX, "messages never settle");
            if self.cut.contains(&envelope.from.0) || self.cut.contains(&envelope.to.0) {
                continue;
            }
            self.delivered.push(envelope.clone());
            self.input(envelope.to.0, |replica, actions| {
                replica.on_message(envelope, actions)
            });
        }
    }

    /// Moves the shared clock on by `duration_ms`, ticking every replica at each step and
    /// delivering every message after each step.
    pub fn advance(&mut self, duration_ms: u64) {
        let end = self.now_ms + duration_ms;
        while self.now_ms < end {
            self.now_ms = (self.now_ms + STEP_MS).min(end);
            let now = at(self.now_ms);
            for id in self.ids() {
                self.input(id, |replica, actions| replica.tick(now, actions));
            }
            self.deliver_all();
        }
    }

    /// Moves the clock to `START_LEASE_OVER_MS` if it is before: replicas just started
    /// refuse polls and votes until then. No timer armed at time zero fires before.
    pub fn past_start_lease(&mut self) {
        if self.now_ms < START_LEASE_OVER_MS {
            self.advance(START_LEASE_OVER_MS - self.now_ms);
            assert!(self.leaders().is_empty(), "no election before T");
        }
    }

    /// Makes `id` campaign now and delivers until the election is over. Every other timer
    /// is at least T away, since each replica was last ticked at the cluster's time. An
    /// election right after start-up first waits for the start-up lease to pass.
    pub fn elect(&mut self, id: u64) {
        self.past_start_lease();
        // The one internal the harness touches: fire this replica's election timer now.
        self.node_mut(id).replica.election_deadline_ms = self.now_ms;
        let now = at(self.now_ms);
        self.input(id, |replica, actions| replica.tick(now, actions));
        self.deliver_all();
        assert_eq!(
            self.replica(id).role(),
            Role::Leader,
            "replica {id} won its election"
        );
    }

    pub fn submit(&mut self, id: u64, payload: &str) -> LogIndex {
        let payload = Bytes::from(payload.to_owned());
        let (index, _) = self
            .input(id, |replica, actions| replica.submit(payload, actions))
            .expect("submitted at the leader");
        index
    }

    /// Rebuilds replica `id` from its disk, as after a crash (held persists are lost).
    pub fn restart(&mut self, id: u64) {
        let now = at(self.now_ms);
        let node = self.node_mut(id);
        node.held.clear();
        node.hold_persists = false;
        node.applied.clear();
        let restored = node.store.restored();
        node.replica = Replica::new(node.config.clone(), node.bootstrap.clone(), restored, now);
    }

    /// Messages delivered to `to`.
    pub fn delivered_to(&self, to: u64) -> Vec<&Envelope> {
        self.delivered
            .iter()
            .filter(|envelope| envelope.to.0 == to)
            .collect()
    }
}
