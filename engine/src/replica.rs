//! One Raft replica as a deterministic state machine: no I/O, no clock (time comes with
//! `tick`), randomness only from the seeded [`Prng`]; every effect is an [`Action`].
//!
//! This file holds the state shared by every role and the input dispatch. What each role
//! does lives in `role/*.rs` as further `impl Replica` blocks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::action::{Action, Actions, HardState};
use crate::config::ReplicaConfig;
use crate::entry::{Entry, EntryBody};
use crate::log::RaftLog;
use crate::membership::{Configuration, MemberType};
use crate::message::{Envelope, Message};
use crate::prng::Prng;
use crate::progress::Progress;
use crate::role::leader::LeaderState;
use crate::types::{LogIndex, PersistId, ReplicaId, Term, Time};

/// Messages held back until a persist completes, per persist.
pub(crate) const DEFERRED_PER_PERSIST_MAX: usize = 1 << 12;
/// Persists emitted but not yet confirmed durable.
pub(crate) const PERSISTS_PENDING_MAX: usize = 1 << 16;

/// The part a server currently plays (SPEC §A4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Not a member of any configuration it knows.
    Inactive,
    /// A standby member: tracks term, leader and configuration only.
    Reserve,
    /// A non-voting member that receives committed entries.
    Passive,
    /// A voter following a leader (or waiting for one).
    Follower,
    /// A voter asking for votes.
    Candidate,
    /// The voter that orders entries for this term.
    Leader,
}

/// Why a submission was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Only the leader takes submissions; retry at `leader` if known.
    NotLeader {
        /// The leader this server believes in.
        leader: Option<ReplicaId>,
    },
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::NotLeader {
                leader: Some(leader),
            } => {
                write!(f, "not the leader; the leader is {leader}")
            }
            SubmitError::NotLeader { leader: None } => write!(f, "not the leader; none known"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// What a restarted server read back from durable storage.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The last durable term and vote.
    pub hard_state: HardState,
    /// The durable log, consecutive from index 1.
    pub entries: Vec<Entry>,
}

/// A pre-vote or vote round in progress.
#[derive(Clone, Debug)]
pub(crate) struct Election {
    /// The term polled for, or campaigned in.
    pub term: Term,
    /// Voters that granted.
    pub granted: BTreeSet<ReplicaId>,
}

/// A persist emitted but not yet durable, and the messages waiting for it.
#[derive(Clone, Debug)]
pub(crate) struct PendingPersist {
    pub id: PersistId,
    /// The log's last index once this persist is durable (clamped by later truncations).
    pub last_index: LogIndex,
    /// The hard state this persist makes durable.
    pub hard_state: HardState,
    /// Sends that must not happen before this persist is durable.
    pub deferred: Vec<(ReplicaId, Message)>,
}

/// One Raft replica.
#[derive(Debug)]
pub struct Replica {
    pub(crate) config: ReplicaConfig,
    pub(crate) prng: Prng,
    pub(crate) now: Time,
    pub(crate) hard_state: HardState,
    pub(crate) hard_state_durable: HardState,
    pub(crate) log: RaftLog,
    pub(crate) role: Role,
    pub(crate) leader: Option<ReplicaId>,
    pub(crate) commit_index: LogIndex,
    pub(crate) apply_emitted: LogIndex,
    pub(crate) applied_index: LogIndex,
    pub(crate) global_index: LogIndex,
    /// The bootstrap configuration, then one per configuration entry (or newer one heard
    /// from a leader), oldest first. The last is in force: effective when written.
    pub(crate) configurations: Vec<Configuration>,
    pub(crate) persist_id_last: PersistId,
    pub(crate) persisted_index: LogIndex,
    pub(crate) persist_pending: VecDeque<PendingPersist>,
    /// When a follower's election timer fires.
    pub(crate) election_deadline_ms: u64,
    /// When this server last heard from a leader, or started: a restarted server may have
    /// acknowledged a leader just before it crashed, so it keeps that leader's lease.
    pub(crate) leader_contact_ms: Option<u64>,
    pub(crate) poll: Option<Election>,
    pub(crate) election: Option<Election>,
    pub(crate) leader_state: Option<LeaderState>,
    /// A follower's progress feeding the passive members assigned to it (SPEC §G3).
    pub(crate) passive_progress: BTreeMap<ReplicaId, Progress>,
    pub(crate) passive_heartbeat_ms: u64,
    pub(crate) reported: (Role, Term, Option<ReplicaId>),
}

impl Replica {
    /// A replica starting (or restarting) with the bootstrap configuration and what storage
    /// held. A configuration found in the log overrides the bootstrap one (SPEC §A2).
    ///
    /// # Panics
    /// If `config` is invalid or the restored log is not a valid log.
    #[must_use]
    pub fn new(
        config: ReplicaConfig,
        bootstrap: Configuration,
        restored: Restored,
        now: Time,
    ) -> Replica {
        if let Err(reason) = config.validate() {
            panic!("invalid replica configuration: {reason}");
        }
        bootstrap.assert_valid();
        let log = RaftLog::from_entries(restored.entries);
        let mut hard_state = restored.hard_state;
        if log.last_term() > hard_state.term {
            // A crash can keep entries of a term whose hard state had not been written yet.
            hard_state = HardState {
                term: log.last_term(),
                vote: None,
            };
        }
        let mut configurations = vec![bootstrap];
        let mut index = log.first_index();
        while let Some(entry) = log.get(index) {
            if let EntryBody::Configuration { members } = &entry.body {
                configurations.push(Configuration::from_members(
                    entry.index,
                    entry.term,
                    entry.timestamp_ms,
                    members.clone(),
                ));
            }
            index = index.next();
        }
        let persisted_index = log.last_index();
        let prng = Prng::new(config.seed ^ config.id.0.rotate_left(17));
        let mut replica = Replica {
            config,
            prng,
            now,
            hard_state,
            hard_state_durable: hard_state,
            log,
            role: Role::Inactive,
            leader: None,
            commit_index: LogIndex::ZERO,
            apply_emitted: LogIndex::ZERO,
            applied_index: LogIndex::ZERO,
            global_index: LogIndex::ZERO,
            configurations,
            persist_id_last: PersistId(0),
            persisted_index,
            persist_pending: VecDeque::new(),
            election_deadline_ms: 0,
            // As if a leader had just been heard from: before a (possibly fast) crash this
            // server may have acknowledged a leader that now serves reads under a lease
            // counting on it to refuse polls and votes for T (`lease_until_ms`). Its own
            // timer fires in [T, 2T) anyway, so start-up elections are not delayed.
            leader_contact_ms: Some(now.monotonic_ms),
            poll: None,
            election: None,
            leader_state: None,
            passive_progress: BTreeMap::new(),
            passive_heartbeat_ms: 0,
            reported: (Role::Inactive, Term::ZERO, None),
        };
        replica.role = replica.role_for_member_type();
        replica.election_timer_reset();
        replica
    }

    // ----- Inputs -----

    /// Time passed: fire election and heartbeat timers.
    pub fn tick(&mut self, now: Time, actions: &mut Actions) {
        assert!(
            now.monotonic_ms >= self.now.monotonic_ms,
            "monotonic time never goes back"
        );
        self.now = now;
        match self.role {
            Role::Leader => self.leader_tick(actions),
            Role::Follower | Role::Candidate => {
                if self.now.monotonic_ms >= self.election_deadline_ms {
                    self.poll_start(actions);
                }
                if self.role == Role::Follower {
                    self.feeder_tick(actions);
                }
            }
            Role::Passive | Role::Reserve | Role::Inactive => {}
        }
        self.report(actions);
    }

    /// Moves the clock without running timers: a driver that knows the time when a message
    /// or a request arrives passes it here first, so that what the replica stamps (the
    /// start of a confirmation round, contact times) is not a tick old. Time never goes
    /// back; an earlier `now` is ignored.
    pub fn observe_time(&mut self, now: Time) {
        if now.monotonic_ms >= self.now.monotonic_ms {
            self.now = now;
        }
    }

    /// A message arrived from another server.
    pub fn on_message(&mut self, envelope: Envelope, actions: &mut Actions) {
        assert_eq!(
            envelope.to,
            self.id(),
            "message delivered to the wrong replica"
        );
        let from = envelope.from;
        if from == self.id() {
            return; // Nobody sends to itself; a misdirected message is ignored.
        }
        let term = envelope.message.term();
        if term > self.hard_state.term && !self.on_higher_term(&envelope.message, actions) {
            self.report(actions);
            return;
        }
        match envelope.message {
            Message::AppendRequest(request) => self.on_append_request(from, request, actions),
            Message::AppendResponse(response) => self.on_append_response(from, response, actions),
            Message::PollRequest(request) => self.on_poll_request(from, &request, actions),
            Message::PollResponse(response) => self.on_poll_response(from, &response, actions),
            Message::VoteRequest(request) => self.on_vote_request(from, &request, actions),
            Message::VoteResponse(response) => self.on_vote_response(from, &response, actions),
            Message::ConfigureRequest(request) => self.on_configure_request(from, request, actions),
            Message::ConfigureResponse(response) => {
                self.on_configure_response(from, &response);
            }
            Message::MembershipRequest(request) => {
                self.on_membership_request(from, request, actions);
            }
            Message::MembershipResponse(response) => {
                actions.push(Action::MembershipOutcome {
                    request_id: response.request_id,
                    outcome: response.outcome,
                });
            }
        }
        self.report(actions);
    }

    /// Submits a command. Only the leader takes it; returns the index it will commit at,
    /// if it commits (the entry may still be lost if leadership changes first).
    ///
    /// # Errors
    /// `NotLeader` with the leader this server believes in.
    pub fn submit(
        &mut self,
        payload: Bytes,
        actions: &mut Actions,
    ) -> Result<(LogIndex, Term), SubmitError> {
        if self.role != Role::Leader {
            return Err(SubmitError::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.leader_append(EntryBody::Command { payload }, actions);
        self.report(actions);
        Ok((index, self.hard_state.term))
    }

    /// Every `Persist` through `id` is durable.
    pub fn on_persisted(&mut self, id: PersistId, actions: &mut Actions) {
        assert!(id <= self.persist_id_last, "persist id from the future");
        while self
            .persist_pending
            .front()
            .is_some_and(|pending| pending.id <= id)
        {
            let pending = self.persist_pending.pop_front().expect("front exists");
            assert!(pending.last_index <= self.log.last_index());
            self.persisted_index = pending.last_index;
            self.hard_state_durable = pending.hard_state;
            for (to, message) in pending.deferred {
                self.send_deferred_released(to, message, actions);
            }
        }
        match self.role {
            Role::Leader => self.leader_commit_advance(actions),
            Role::Candidate => self.candidate_on_vote_durable(actions),
            _ => {}
        }
        self.report(actions);
    }

    /// The driver applied every entry through `index`.
    pub fn on_applied(&mut self, index: LogIndex) {
        assert!(
            index <= self.apply_emitted,
            "applied an entry that was never handed out"
        );
        assert!(index >= self.applied_index, "applied index never goes back");
        self.applied_index = index;
    }

    // ----- Accessors -----

    /// This server's id.
    #[must_use]
    pub fn id(&self) -> ReplicaId {
        self.config.id
    }

    /// The role it plays now.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.hard_state.term
    }

    /// The leader it believes in.
    #[must_use]
    pub fn leader(&self) -> Option<ReplicaId> {
        self.leader
    }

    /// Term and vote as held in memory (durable once the persist carrying them completes).
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Highest index known committed.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// Highest index the driver has applied.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// Highest index durable in this server's log.
    #[must_use]
    pub fn persisted_index(&self) -> LogIndex {
        self.persisted_index
    }

    /// The global index last heard from (or computed as) the leader (SPEC §G5).
    #[must_use]
    pub fn global_index(&self) -> LogIndex {
        self.global_index
    }

    /// The log held in memory.
    #[must_use]
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The configuration in force (the latest written).
    #[must_use]
    pub fn configuration(&self) -> &Configuration {
        self.configurations
            .last()
            .expect("the bootstrap configuration is never removed")
    }

    /// The latest committed configuration.
    #[must_use]
    pub fn configuration_committed(&self) -> &Configuration {
        self.configurations
            .iter()
            .rev()
            .find(|configuration| configuration.index <= self.commit_index)
            .expect("the bootstrap configuration is always committed")
    }

    /// The settings this replica runs with.
    #[must_use]
    pub fn replica_config(&self) -> &ReplicaConfig {
        &self.config
    }

    // ----- Shared helpers for the roles -----

    /// The role this server's type in the configuration in force calls for (voters follow).
    pub(crate) fn role_for_member_type(&self) -> Role {
        match self.configuration().member_type(self.id()) {
            MemberType::Active => Role::Follower,
            MemberType::Passive => Role::Passive,
            MemberType::Reserve => Role::Reserve,
            MemberType::Inactive => Role::Inactive,
        }
    }

    /// A message with a newer term arrived. Returns false if it must be dropped unseen.
    fn on_higher_term(&mut self, message: &Message, actions: &mut Actions) -> bool {
        let term = message.term();
        match message {
            // A poll changes nobody's term; a granted poll answers with the term polled for.
            Message::PollRequest(_) => true,
            Message::PollResponse(response) if response.granted => true,
            // Membership requests come from any server, as clients do: no term is adopted.
            Message::MembershipRequest(_) | Message::MembershipResponse(_) => true,
            Message::VoteRequest(_) if self.in_leader_lease() => {
                // A live leader exists: a rejoining server must not disrupt it.
                false
            }
            Message::AppendRequest(request) => {
                let leader = (request.leader != self.id()).then_some(request.leader);
                self.become_follower(term, leader, actions);
                true
            }
            Message::ConfigureRequest(request) => {
                self.become_follower(term, Some(request.leader), actions);
                true
            }
            _ => {
                self.become_follower(term, None, actions);
                true
            }
        }
    }

    /// True while this server has reason to believe a leader is alive: a non-leader heard
    /// from one (or started) within the minimum election timeout, or a leader reached a
    /// majority. It then refuses polls and votes. The leader lease (`lease_until_ms`)
    /// counts on this holding for T after every append received, even if this server has
    /// since adopted a newer term without a leader or given up on its leader: a follower
    /// gives up only when its timer fires, which is T or more after the last contact.
    pub(crate) fn in_leader_lease(&self) -> bool {
        let timeout = self.config.election_timeout_ms;
        match self.role {
            Role::Leader => self
                .leader_state
                .as_ref()
                .is_some_and(|state| self.now.monotonic_ms < state.quorum_contact_ms + timeout),
            // An inactive server counts too: a leader that added it as a voter counts its
            // answers (even rejections), and votes are answered whatever the configuration.
            Role::Follower | Role::Passive | Role::Reserve | Role::Inactive => self
                .leader_contact_ms
                .is_some_and(|contact| self.now.monotonic_ms < contact + timeout),
            // Its timer fired at least T after its last contact.
            Role::Candidate => false,
        }
    }

    /// Moves to `term` (if newer) as a non-leader, following `leader` if known.
    pub(crate) fn become_follower(
        &mut self,
        term: Term,
        leader: Option<ReplicaId>,
        actions: &mut Actions,
    ) {
        assert!(term >= self.hard_state.term, "term never decreases");
        if term > self.hard_state.term {
            self.hard_state = HardState { term, vote: None };
            self.persist(Vec::new(), actions);
        }
        if self.role == Role::Leader {
            self.leader_step_down(actions);
        }
        self.leader = leader;
        self.poll = None;
        self.election = None;
        self.role = self.role_for_member_type();
        if self.role != Role::Follower {
            self.passive_progress.clear();
        }
        if leader.is_some() {
            self.leader_contact_ms = Some(self.now.monotonic_ms);
        }
        self.election_timer_reset();
    }

    /// A fresh random election deadline in [T, 2T).
    pub(crate) fn election_timer_reset(&mut self) {
        let timeout = self.config.election_timeout_ms;
        let jitter = self.prng.range(0, timeout);
        self.election_deadline_ms = self.now.monotonic_ms + timeout + jitter;
    }

    /// Emits a `Persist` of the hard state (if changed) and `entries`, and remembers it.
    pub(crate) fn persist(&mut self, entries: Vec<Entry>, actions: &mut Actions) -> PersistId {
        assert!(
            self.persist_pending.len() < PERSISTS_PENDING_MAX,
            "driver must persist"
        );
        if let Some(first) = entries.first() {
            assert!(first.index <= self.log.last_index());
            assert_eq!(
                entries.last().map(|entry| entry.index),
                Some(self.log.last_index())
            );
        }
        let previous = self.hard_state_written();
        let mut hard_state_durable = self.hard_state;
        if self.config.planted_bugs.vote_without_persist {
            // The planted bug: the vote never reaches the disk.
            hard_state_durable.vote = if previous.term == self.hard_state.term {
                previous.vote
            } else {
                None
            };
        }
        let hard_state = (hard_state_durable != previous).then_some(hard_state_durable);
        self.persist_id_last = PersistId(self.persist_id_last.0 + 1);
        let id = self.persist_id_last;
        self.persist_pending.push_back(PendingPersist {
            id,
            last_index: self.log.last_index(),
            hard_state: hard_state_durable,
            deferred: Vec::new(),
        });
        actions.push(Action::Persist {
            id,
            hard_state,
            entries,
        });
        id
    }

    /// The hard state as of the last persist emitted (durable or not).
    fn hard_state_written(&self) -> HardState {
        self.persist_pending
            .back()
            .map_or(self.hard_state_durable, |pending| pending.hard_state)
    }

    /// Sends now, or once every persist emitted so far is durable if `after_persist`.
    pub(crate) fn send(
        &mut self,
        to: ReplicaId,
        message: Message,
        after_persist: bool,
        actions: &mut Actions,
    ) {
        assert!(to != self.id(), "never send to self");
        match self.persist_pending.back_mut() {
            Some(pending) if after_persist => {
                assert!(pending.deferred.len() < DEFERRED_PER_PERSIST_MAX);
                pending.deferred.push((to, message));
            }
            _ => actions.push(Action::Send { to, message }),
        }
    }

    /// A deferred message whose persist completed. Acks promised in an older term, or for
    /// entries since truncated, are dropped: losing a message is always safe.
    fn send_deferred_released(&mut self, to: ReplicaId, message: Message, actions: &mut Actions) {
        if let Message::AppendResponse(response) = &message {
            if response.term < self.hard_state.term {
                return;
            }
            if response.success && response.match_index > self.log.last_index() {
                return;
            }
        }
        if let Message::VoteRequest(request) = &message {
            if request.term != self.hard_state.term || self.role != Role::Candidate {
                return;
            }
        }
        actions.push(Action::Send { to, message });
    }

    /// Drops entries after `index` from memory and from pending persists' promises.
    pub(crate) fn truncate_after(&mut self, index: LogIndex) {
        assert!(
            index >= self.commit_index,
            "committed entries are never truncated"
        );
        assert!(
            self.role != Role::Leader,
            "a leader never truncates its own log"
        );
        self.log.truncate_after(index);
        self.persisted_index = self.persisted_index.min(index);
        for pending in &mut self.persist_pending {
            pending.last_index = pending.last_index.min(index);
        }
        while self.configurations.len() > 1
            && self
                .configurations
                .last()
                .is_some_and(|configuration| configuration.index > index)
        {
            self.configurations.pop();
        }
    }

    /// Appends entries (already checked to follow the log) and tracks configurations.
    pub(crate) fn log_push(&mut self, entry: Entry) {
        if let EntryBody::Configuration { members } = &entry.body {
            let configuration = Configuration::from_members(
                entry.index,
                entry.term,
                entry.timestamp_ms,
                members.clone(),
            );
            if self.configuration().index >= entry.index {
                // Heard from a leader's configure before the entry itself arrived.
                self.configurations
                    .retain(|known| known.index < entry.index);
            }
            self.configurations.push(configuration);
        }
        self.log.push(entry);
    }

    /// Raises the commit index (never lowers it) and hands newly committed entries out.
    pub(crate) fn commit_to(&mut self, index: LogIndex, actions: &mut Actions) {
        if index <= self.commit_index {
            return;
        }
        assert!(
            index <= self.log.last_index(),
            "commit never passes the last entry"
        );
        self.commit_index = index;
        actions.push(Action::Committed { index });
        if matches!(self.role, Role::Reserve | Role::Inactive)
            && self.log.last_index() == LogIndex::ZERO
        {
            return;
        }
        if self.commit_index > self.apply_emitted {
            let entries = self.log.range(self.apply_emitted.next(), self.commit_index);
            self.apply_emitted = self.commit_index;
            actions.push(Action::Apply { entries });
        }
    }

    /// The configuration in force changed: take up the role it gives this server.
    pub(crate) fn on_configuration_changed(&mut self, actions: &mut Actions) {
        let wanted = self.role_for_member_type();
        match self.role {
            Role::Leader => self.leader_on_configuration_changed(actions),
            Role::Candidate if wanted != Role::Follower => {
                self.election = None;
                self.role = wanted;
            }
            _ if self.role != wanted => {
                self.poll = None;
                self.role = wanted;
                self.election_timer_reset();
            }
            _ => {}
        }
        if self.role != Role::Follower {
            self.passive_progress.clear();
        }
    }

    /// Emits `RoleChanged` if role, term or leader changed since the last report.
    pub(crate) fn report(&mut self, actions: &mut Actions) {
        let now = (self.role, self.hard_state.term, self.leader);
        if now != self.reported {
            self.reported = now;
            actions.push(Action::RoleChanged {
                role: self.role,
                term: self.hard_state.term,
                leader: self.leader,
            });
        }
        #[cfg(any(test, debug_assertions))]
        self.invariants();
    }
}
