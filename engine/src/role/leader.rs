//! Leading: the no-op, replication with pipelining and fast backtracking, commitment,
//! heartbeats and availability, stepping down, and membership changes.

use std::collections::BTreeMap;

use crate::action::{Action, Actions};
use crate::config::HEARTBEAT_FAILURES_UNAVAILABLE;
use crate::config::{HEARTBEAT_BACKOFF_MS_MAX, HEARTBEAT_FAILURES_BACKOFF};
use crate::entry::{Entry, EntryBody};
use crate::membership::{ConfigurationError, MemberStatus, MemberType, MembershipChange};
use crate::message::{AppendResponse, ConfigureRequest, ConfigureResponse};
use crate::message::{MembershipRequest, MembershipResponse, Message};
use crate::progress::Progress;
use crate::replica::{Replica, Role, SubmitError};
use crate::role::replication::Sender;
use crate::types::{LogIndex, ReplicaId};

/// Membership requests waiting for their configuration entry to commit.
const MEMBERSHIP_WAITING_MAX: usize = 64;

/// What only the leader keeps.
#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    /// Every other member: replication for voters, heartbeats and availability for all.
    pub progress: BTreeMap<ReplicaId, Progress>,
    /// Index of this term's no-op; configuration changes wait until it commits.
    pub initialize_index: LogIndex,
    /// The latest time a majority of voters had been heard from.
    pub quorum_contact_ms: u64,
    /// When the next heartbeat round is due.
    pub heartbeat_due_ms: u64,
    /// (configuration index, requester, request id) for changes not committed yet.
    pub membership_waiting: Vec<(LogIndex, ReplicaId, u64)>,
    /// The confirmation round (SPEC §D5): every append sent now carries it. Rounds are
    /// numbered afresh by each leadership; a round of an older term confirms nothing.
    pub round: u64,
    /// When `round` started: the time of the input that started it (the last tick's
    /// monotonic time), no later than its first send, so a lease from it errs early.
    pub round_start_ms: u64,
    /// The highest round a majority of voters acknowledged (the leader counting itself).
    /// A new round starts only once the last one is confirmed, so at most one is in flight
    /// and `round` is `round_confirmed` or one more: only the current round's start time is
    /// ever needed.
    pub round_confirmed: u64,
    /// When `round_confirmed` started, once some round of this term is confirmed: the
    /// lease runs from there.
    pub round_confirmed_start_ms: Option<u64>,
    /// A caller waits for the round after the one in flight, which starts as soon as the
    /// one in flight is confirmed (one in flight plus one queued, Copycat).
    pub round_queued: bool,
    /// Rounds handed to callers of `confirm_leadership` and not yet announced confirmed,
    /// ascending; at most two (the one in flight and the one queued).
    pub rounds_awaited: Vec<u64>,
}

impl Replica {
    /// Won the election: take over, write the no-op and start replicating at once.
    pub(crate) fn leader_start(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Candidate);
        assert_eq!(self.hard_state.vote, Some(self.id()));
        self.role = Role::Leader;
        self.leader = Some(self.id());
        self.poll = None;
        self.passive_progress.clear();
        let now_ms = self.now.monotonic_ms;
        let next_index = self.log.last_index().next();
        let progress = self
            .configuration()
            .members
            .iter()
            .filter(|member| member.id != self.id())
            .map(|member| (member.id, Progress::new(next_index, now_ms)))
            .collect();
        self.leader_state = Some(LeaderState {
            progress,
            initialize_index: next_index,
            quorum_contact_ms: now_ms,
            heartbeat_due_ms: now_ms + self.config.heartbeat_interval_ms,
            membership_waiting: Vec::new(),
            // Round 1 starts with the no-op's appends: the lease can begin at the first
            // answers, without waiting for a heartbeat.
            round: 1,
            round_start_ms: now_ms,
            round_confirmed: 0,
            round_confirmed_start_ms: None,
            round_queued: false,
            rounds_awaited: Vec::new(),
        });
        let index = self.leader_append(EntryBody::Initialize, actions);
        assert_eq!(index, next_index);
        self.leader_configure_all(actions);
        // A lone voter confirms its first round at once.
        self.leader_rounds_advance(actions);
    }

    /// Leaves the leader role (the caller picks the next one). Waiting requesters are told.
    pub(crate) fn leader_step_down(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Leader);
        let state = self.leader_state.take().expect("a leader has leader state");
        for (_, requester, request_id) in state.membership_waiting {
            let outcome = Err(ConfigurationError::NotLeader { leader: None });
            self.membership_answer(requester, request_id, outcome, actions);
        }
        self.role = Role::Follower;
        self.leader = None;
    }

    fn leader_state(&mut self) -> &mut LeaderState {
        self.leader_state
            .as_mut()
            .expect("only the leader has leader state")
    }

    /// Appends an entry of this term to the leader's log, persists it and sends it.
    pub(crate) fn leader_append(&mut self, body: EntryBody, actions: &mut Actions) -> LogIndex {
        assert!(self.role == Role::Leader);
        let index = self.log.last_index().next();
        let timestamp_ms = self.now.wall_ms.max(
            self.log
                .get(self.log.last_index())
                .map_or(0, |entry| entry.timestamp_ms),
        );
        let entry = Entry {
            index,
            term: self.hard_state.term,
            timestamp_ms,
            body,
        };
        let is_configuration = matches!(entry.body, EntryBody::Configuration { .. });
        self.log_push(entry.clone());
        self.persist(vec![entry], actions);
        if is_configuration {
            self.on_configuration_changed(actions);
        }
        let ids: Vec<_> = self.leader_state().progress.keys().copied().collect();
        for id in ids {
            self.leader_send_append(id, false, actions);
        }
        if self.config.planted_bugs.leader_counts_unpersisted {
            self.leader_commit_advance(actions);
        }
        index
    }

    /// Sends the next append to `to` if it is due (or a heartbeat, which always goes).
    fn leader_send_append(&mut self, to: ReplicaId, heartbeat: bool, actions: &mut Actions) {
        let cap = match self.configuration().member_type(to) {
            MemberType::Active => self.log.last_index(),
            MemberType::Passive if self.leader_feeds_passives() => self.commit_index,
            _ => return,
        };
        self.send_append(Sender::Leader, to, cap, heartbeat, actions);
    }

    /// True if no available voter besides the leader can feed passive members (SPEC §G3).
    pub(crate) fn leader_feeds_passives(&self) -> bool {
        let leader = self.id();
        !self.configuration().members.iter().any(|member| {
            member.id != leader
                && member.member_type == MemberType::Active
                && member.status == MemberStatus::Available
        })
    }

    /// An answer to an append: from a follower (leader) or a fed passive member (follower).
    pub(crate) fn on_append_response(
        &mut self,
        from: ReplicaId,
        response: AppendResponse,
        actions: &mut Actions,
    ) {
        if response.term < self.hard_state.term {
            return; // An answer from an older term is normal after an election.
        }
        match self.role {
            Role::Leader => {}
            Role::Follower => return self.feeder_on_append_response(from, &response, actions),
            _ => return,
        }
        assert!(
            response.match_index <= self.log.last_index(),
            "acked entries we never sent"
        );
        let round = self.leader_state().round;
        assert!(response.round <= round, "acked a round never started");
        let Some(progress) = self.leader_state().progress.get_mut(&from) else {
            return;
        };
        // Success or not, an answer in this term acknowledges this leader: only it sends
        // appends of this term to voters.
        progress.round_acked = progress.round_acked.max(response.round);
        self.leader_on_contact(from);
        self.leader_on_append_answer(from, &response, actions);
        if self.role == Role::Leader {
            self.leader_rounds_advance(actions);
        }
    }

    /// The replication half of an answer: commitment, backtracking, the next appends.
    fn leader_on_append_answer(
        &mut self,
        from: ReplicaId,
        response: &AppendResponse,
        actions: &mut Actions,
    ) {
        if response.success {
            if !self.leader_progress(from).on_success(response.match_index) {
                // A duplicate or stale answer: answering it with a send could snowball.
                return;
            }
            self.leader_commit_advance(actions);
        } else {
            let retry_from = self
                .log
                .last_index_with_term_at_most(response.hint_index, response.hint_term);
            if !self
                .leader_progress(from)
                .on_rejected(response.rejected_index, retry_from)
            {
                return;
            }
        }
        if self.role == Role::Leader {
            self.leader_fill_pipeline(from, actions);
        }
    }

    /// Sends appends to `to` until its pipeline is full or it has everything.
    fn leader_fill_pipeline(&mut self, to: ReplicaId, actions: &mut Actions) {
        let depth = self.config.pipeline_depth;
        for _ in 0..depth {
            let sent_before = self
                .leader_state()
                .progress
                .get(&to)
                .map(|p| p.in_flight.len());
            self.leader_send_append(to, false, actions);
            let sent_after = self
                .leader_state()
                .progress
                .get(&to)
                .map(|p| p.in_flight.len());
            if sent_after <= sent_before {
                break;
            }
        }
    }

    fn leader_progress(&mut self, id: ReplicaId) -> &mut Progress {
        self.leader_state()
            .progress
            .get_mut(&id)
            .expect("progress exists for members")
    }

    /// Any answer from a member: it is reachable.
    pub(crate) fn leader_on_contact(&mut self, from: ReplicaId) {
        let now_ms = self.now.monotonic_ms;
        if let Some(progress) = self.leader_state().progress.get_mut(&from) {
            progress.contact_ms = now_ms;
            progress.answered = true;
            progress.failures = 0;
        }
    }

    /// Commits the highest index a majority of voters hold durably, if it is of this term
    /// (Raft §5.4.2: entries of earlier terms commit only beneath one of this term).
    pub(crate) fn leader_commit_advance(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Leader);
        let configuration = self.configuration();
        let own = if self.config.planted_bugs.leader_counts_unpersisted {
            self.log.last_index()
        } else {
            self.persisted_index
        };
        let state = self.leader_state.as_ref().expect("leader");
        let mut matched: Vec<LogIndex> = configuration
            .ids_of(MemberType::Active)
            .map(|id| {
                if id == self.id() {
                    own
                } else {
                    state
                        .progress
                        .get(&id)
                        .map_or(LogIndex::ZERO, |progress| progress.match_index)
                }
            })
            .collect();
        let quorum = configuration.quorum();
        if matched.len() < quorum {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[quorum - 1];
        if candidate <= self.commit_index {
            return;
        }
        let this_term = self.log.term_at(candidate) == Some(self.hard_state.term);
        if !this_term && !self.config.planted_bugs.commit_previous_term {
            return;
        }
        self.commit_to(candidate, actions);
        self.leader_on_commit(actions);
    }

    /// After the commit index moved: answer membership requests, step down if removed,
    /// and tell idle followers the new commit index.
    fn leader_on_commit(&mut self, actions: &mut Actions) {
        let commit_index = self.commit_index;
        let waiting = std::mem::take(&mut self.leader_state().membership_waiting);
        let (done, still): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(index, _, _)| *index <= commit_index);
        self.leader_state().membership_waiting = still;
        for (index, requester, request_id) in done {
            let configuration = self
                .configurations
                .iter()
                .find(|configuration| configuration.index == index)
                .cloned()
                .expect("a leader never loses its configuration entries");
            self.membership_answer(requester, request_id, Ok(configuration), actions);
        }
        if self.configuration_committed().member_type(self.id()) != MemberType::Active {
            // Removed or demoted, and the change is committed: hand over.
            let term = self.hard_state.term;
            self.become_follower(term, None, actions);
            return;
        }
        let idle: Vec<_> = self
            .leader_state()
            .progress
            .iter()
            .filter(|(_, progress)| progress.in_flight.is_empty())
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            self.leader_send_append(id, true, actions);
        }
    }

    /// Heartbeats, availability, global index, and the step-down check.
    pub(crate) fn leader_tick(&mut self, actions: &mut Actions) {
        let now_ms = self.now.monotonic_ms;
        if now_ms >= self.leader_state().heartbeat_due_ms {
            self.leader_state().heartbeat_due_ms = now_ms + self.config.heartbeat_interval_ms;
            // Renew the lease without read load: the heartbeats below carry a new round
            // unless one is in flight, and then they carry (and retry) that one.
            let state = self.leader_state();
            if state.round <= state.round_confirmed {
                state.round += 1;
                state.round_start_ms = now_ms;
            }
            self.leader_heartbeat(actions);
            self.leader_availability(actions);
            self.leader_global_index();
            if self.role == Role::Leader {
                // A lone voter confirms the new round at once.
                self.leader_rounds_advance(actions);
            }
        }
        if self.role != Role::Leader {
            return;
        }
        self.leader_quorum_contact();
        let state = self.leader_state.as_ref().expect("leader");
        if now_ms > state.quorum_contact_ms + 2 * self.config.election_timeout_ms {
            // Cut off from a majority for two election timeouts: stop taking writes.
            let term = self.hard_state.term;
            self.become_follower(term, None, actions);
        }
    }

    fn leader_heartbeat(&mut self, actions: &mut Actions) {
        let now_ms = self.now.monotonic_ms;
        let interval = self.config.heartbeat_interval_ms;
        let ids: Vec<_> = self.leader_state().progress.keys().copied().collect();
        for id in ids {
            let progress = self.leader_progress(id);
            if progress.failures > HEARTBEAT_FAILURES_BACKOFF {
                let backoff = interval
                    .checked_shl(progress.failures)
                    .unwrap_or(HEARTBEAT_BACKOFF_MS_MAX)
                    .min(HEARTBEAT_BACKOFF_MS_MAX);
                if now_ms < progress.sent_ms + backoff {
                    continue;
                }
            }
            if !progress.answered {
                progress.failures = progress.failures.saturating_add(1);
            }
            progress.answered = false;
            progress.sent_ms = now_ms;
            match self.configuration().member_type(id) {
                MemberType::Active => self.leader_send_append(id, true, actions),
                MemberType::Passive => {
                    self.leader_send_configure(id, actions);
                    self.leader_send_append(id, true, actions);
                }
                MemberType::Reserve => self.leader_send_configure(id, actions),
                MemberType::Inactive => {}
            }
        }
    }

    /// Tells passive and reserve members the term, leader and configuration.
    fn leader_configure_all(&mut self, actions: &mut Actions) {
        let own = self.id();
        // Not itself: a leader that demoted itself to passive or reserve leads until the
        // change commits, and must not configure itself meanwhile (found by the runtime's
        // membership test: a send to self).
        let ids: Vec<_> = self
            .configuration()
            .members
            .iter()
            .filter(|member| {
                member.id != own
                    && matches!(
                        member.member_type,
                        MemberType::Passive | MemberType::Reserve
                    )
            })
            .map(|member| member.id)
            .collect();
        for id in ids {
            self.leader_send_configure(id, actions);
        }
    }

    fn leader_send_configure(&mut self, to: ReplicaId, actions: &mut Actions) {
        let request = ConfigureRequest {
            term: self.hard_state.term,
            leader: self.id(),
            configuration: self.configuration().clone(),
            commit_index: self.commit_index,
        };
        self.send(to, Message::ConfigureRequest(request), false, actions);
    }

    /// Commits a status change for one member whose reachability changed (SPEC §G4).
    fn leader_availability(&mut self, actions: &mut Actions) {
        let configuration = self.configuration().clone();
        let state = self.leader_state.as_ref().expect("leader");
        let change = configuration.members.iter().find_map(|member| {
            let progress = state.progress.get(&member.id)?;
            let status = match member.status {
                MemberStatus::Available if progress.failures >= HEARTBEAT_FAILURES_UNAVAILABLE => {
                    MemberStatus::Unavailable
                }
                // Right after a heartbeat round, no failure means it answered the last one.
                MemberStatus::Unavailable if progress.failures == 0 => MemberStatus::Available,
                _ => return None,
            };
            Some(MembershipChange::Reconfigure {
                id: member.id,
                member_type: member.member_type,
                status,
                configuration_index: configuration.index,
                configuration_term: configuration.term,
            })
        });
        if let Some(change) = change {
            // Refused while another change is in flight; the next heartbeat tries again.
            let _ = self.propose_membership(change, actions);
        }
    }

    /// Lowest index durable on every non-reserve member that is available or was lately.
    fn leader_global_index(&mut self) {
        let wall_ms = self.now.wall_ms;
        let suspend_ms = self.config.global_suspend_timeout_ms;
        let own = self.persisted_index;
        let state = self.leader_state.as_ref().expect("leader");
        let global = self
            .configuration()
            .members
            .iter()
            .filter(|member| matches!(member.member_type, MemberType::Active | MemberType::Passive))
            .filter(|member| {
                member.status == MemberStatus::Available
                    || wall_ms.saturating_sub(member.updated_ms) < suspend_ms
            })
            .map(|member| {
                if member.id == self.id() {
                    own
                } else {
                    state
                        .progress
                        .get(&member.id)
                        .map_or(LogIndex::ZERO, |p| p.match_index.max(p.reported_index))
                }
            })
            .min()
            .unwrap_or(own)
            .min(self.commit_index);
        self.global_index = self.global_index.max(global);
    }

    fn leader_quorum_contact(&mut self) {
        let now_ms = self.now.monotonic_ms;
        let configuration = self.configuration();
        let quorum = configuration.quorum();
        let state = self.leader_state.as_ref().expect("leader");
        let mut contacts: Vec<u64> = configuration
            .ids_of(MemberType::Active)
            .map(|id| {
                if id == self.id() {
                    now_ms
                } else {
                    state
                        .progress
                        .get(&id)
                        .map_or(0, |progress| progress.contact_ms)
                }
            })
            .collect();
        contacts.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&contact) = contacts.get(quorum - 1) {
            let state = self.leader_state();
            state.quorum_contact_ms = state.quorum_contact_ms.max(contact);
        }
    }

    /// Starts a leadership confirmation round for a linearizable query (SPEC §D5) and
    /// returns its number `r`: once `Action::LeadershipConfirmed` names a round ≥ `r` in
    /// this term, this server was still the leader at some time after this call, so a read
    /// of state that includes every entry committed before the call is linearizable.
    ///
    /// Concurrent calls share rounds. With no round in flight, round `r` starts now: its
    /// appends go to every voter at once, and every later send carries `r` or more. With
    /// one in flight (which may have started before this call, so confirms nothing about
    /// it), the call joins the single queued round, which starts as soon as the one in
    /// flight is confirmed: at most one round in flight plus one queued (Copycat). A lone
    /// voter confirms at once, within this call's actions.
    ///
    /// # Errors
    /// `NotLeader` with the leader this server believes in.
    pub fn confirm_leadership(&mut self, actions: &mut Actions) -> Result<u64, SubmitError> {
        if self.role != Role::Leader {
            return Err(SubmitError::NotLeader {
                leader: self.leader,
            });
        }
        let state = self.leader_state();
        let round = if state.round > state.round_confirmed {
            state.round_queued = true;
            state.round + 1
        } else {
            self.leader_round_start(actions)
        };
        let awaited = &mut self.leader_state().rounds_awaited;
        if awaited.last() != Some(&round) {
            awaited.push(round);
        }
        assert!(awaited.len() <= 2, "one round in flight plus one queued");
        self.leader_rounds_advance(actions);
        self.report(actions);
        Ok(round)
    }

    /// Starts the next round now: every voter gets an append (or heartbeat) carrying it.
    fn leader_round_start(&mut self, actions: &mut Actions) -> u64 {
        let now_ms = self.now.monotonic_ms;
        let state = self.leader_state();
        assert!(state.round <= state.round_confirmed, "one round in flight");
        state.round += 1;
        state.round_start_ms = now_ms;
        let round = state.round;
        let id = self.id();
        let voters: Vec<_> = self
            .configuration()
            .ids_of(MemberType::Active)
            .filter(|&voter| voter != id)
            .collect();
        for voter in voters {
            self.leader_send_append(voter, true, actions);
        }
        round
    }

    /// Confirms the highest round a majority of voters acknowledged, starts the queued
    /// round once the one in flight is confirmed, and tells callers whose round is through.
    fn leader_rounds_advance(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Leader);
        loop {
            let configuration = self.configuration();
            let quorum = configuration.quorum();
            let state = self.leader_state.as_ref().expect("leader");
            let mut acked: Vec<u64> = configuration
                .ids_of(MemberType::Active)
                .map(|id| {
                    if id == self.id() {
                        // The leader acknowledges every round it starts.
                        state.round
                    } else {
                        state.progress.get(&id).map_or(0, |p| p.round_acked)
                    }
                })
                .collect();
            acked.sort_unstable_by(|a, b| b.cmp(a));
            let state = self.leader_state();
            if let Some(&confirmed) = acked.get(quorum - 1) {
                if confirmed > state.round_confirmed {
                    // At most one round is ever in flight, so this is the current one.
                    assert_eq!(confirmed, state.round);
                    state.round_confirmed = confirmed;
                    state.round_confirmed_start_ms = Some(state.round_start_ms);
                }
            }
            if state.round_queued && state.round <= state.round_confirmed {
                state.round_queued = false;
                self.leader_round_start(actions);
                continue;
            }
            break;
        }
        let term = self.hard_state.term;
        let state = self.leader_state();
        let confirmed = state.round_confirmed;
        if state
            .rounds_awaited
            .first()
            .is_some_and(|&r| r <= confirmed)
        {
            state.rounds_awaited.retain(|&r| r > confirmed);
            actions.push(Action::LeadershipConfirmed {
                term,
                round: confirmed,
            });
        }
    }

    /// True if this server leads and has committed an entry of its term (its Initialize
    /// entry): only then is its commit index known to be up to date (Raft §6.4), so only
    /// then may it serve linearizable reads, whether by round or by lease.
    #[must_use]
    pub fn leader_ready(&self) -> bool {
        self.role == Role::Leader
            && self
                .leader_state
                .as_ref()
                .is_some_and(|state| self.commit_index >= state.initialize_index)
    }

    /// For a leader, the monotonic time (ms, on this server's clock as given to `tick`)
    /// until which it may serve LINEARIZABLE_LEASE reads without a round (SPEC §D4): the
    /// start of the highest round a majority acknowledged, plus `T·(1 − 2·drift)` where T
    /// is the election timeout and drift is `clock_drift_ppm_max` / 10⁶ (rounded down).
    /// `None` if not the leader or no round of this term is confirmed yet. Reads must
    /// still wait for `leader_ready` and for everything committed to be applied.
    ///
    /// Why it is safe: a voter that acknowledged round `r` received an append carrying
    /// `r` or more, sent no earlier than `r` started. From that receipt, for T on its own
    /// clock, it refuses polls and votes (`in_leader_lease`), and so does one that
    /// restarts meanwhile (a replica starts as if it had just heard from a leader), while
    /// its own election timer cannot fire before then. Any other leader needs the vote of
    /// a member of that majority, or of this leader, which votes only once it has stepped
    /// down and serves no more reads. So no other leader can exist before T has passed on
    /// the clock of one of those voters since `r` started. If every clock keeps within
    /// `drift` of real time, T on a voter's clock is at least `T/(1 + drift)` in real time,
    /// while `T·(1 − 2·drift)` on this leader's clock is at most `T·(1 − 2·drift)/(1 −
    /// drift)`, which is never more: the lease ends first.
    #[must_use]
    pub fn lease_until_ms(&self) -> Option<u64> {
        if self.role != Role::Leader {
            return None;
        }
        let start_ms = self.leader_state.as_ref()?.round_confirmed_start_ms?;
        Some(start_ms.saturating_add(self.lease_duration_ms()))
    }

    /// `T·(1 − 2·drift)`, rounded down; `validate` keeps the drift below 25%.
    fn lease_duration_ms(&self) -> u64 {
        const PPM: u128 = 1_000_000;
        let timeout = u128::from(self.config.election_timeout_ms);
        let kept = PPM - 2 * u128::from(self.config.clock_drift_ppm_max);
        u64::try_from(timeout * kept / PPM).expect("never more than the election timeout")
    }

    /// The configuration changed under the leader: track exactly its members.
    pub(crate) fn leader_on_configuration_changed(&mut self, actions: &mut Actions) {
        // The configuration entry is the last entry: new members start probing from it, so
        // `leader_append` sends it to them at once.
        let next_index = self.log.last_index();
        let now_ms = self.now.monotonic_ms;
        let members: Vec<_> = self
            .configuration()
            .members
            .iter()
            .map(|member| member.id)
            .filter(|&id| id != self.id())
            .collect();
        let state = self.leader_state();
        state.progress.retain(|id, _| members.contains(id));
        for id in members {
            state
                .progress
                .entry(id)
                .or_insert_with(|| Progress::new(next_index, now_ms));
        }
        self.leader_configure_all(actions);
    }

    /// Proposes one membership change at the leader (SPEC §G2): effective once written.
    ///
    /// # Errors
    /// Not the leader, the no-op not committed yet, another change in flight, a stale
    /// reconfigure, or a change that is not a change.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
        actions: &mut Actions,
    ) -> Result<LogIndex, ConfigurationError> {
        if self.role != Role::Leader {
            return Err(ConfigurationError::NotLeader {
                leader: self.leader,
            });
        }
        let unguarded = self.config.planted_bugs.config_change_unguarded;
        let initialize_index = self.leader_state().initialize_index;
        if !unguarded && self.commit_index < initialize_index {
            return Err(ConfigurationError::NotReady);
        }
        let current = self.configuration();
        if !unguarded && current.index > self.commit_index {
            return Err(ConfigurationError::ChangeInFlight);
        }
        if let MembershipChange::Reconfigure {
            configuration_index,
            configuration_term,
            ..
        } = &change
        {
            if (*configuration_index, *configuration_term) != (current.index, current.term) {
                return Err(ConfigurationError::StaleConfiguration);
            }
        }
        let members = current.apply_change(&change, self.now.wall_ms)?;
        Ok(self.leader_append(EntryBody::Configuration { members }, actions))
    }

    /// Asks the leader (through the network if it is another server) to change the
    /// membership; the answer comes back as `Action::MembershipOutcome`.
    ///
    /// # Errors
    /// No leader is known.
    pub fn request_membership(
        &mut self,
        change: MembershipChange,
        request_id: u64,
        actions: &mut Actions,
    ) -> Result<(), ConfigurationError> {
        let request = MembershipRequest {
            term: self.hard_state.term,
            request_id,
            change,
        };
        match self.leader {
            Some(leader) if leader == self.id() => {
                self.on_membership_request(leader, request, actions);
                Ok(())
            }
            Some(leader) => {
                self.send(leader, Message::MembershipRequest(request), false, actions);
                Ok(())
            }
            None => Err(ConfigurationError::NotLeader { leader: None }),
        }
    }

    pub(crate) fn on_membership_request(
        &mut self,
        from: ReplicaId,
        request: MembershipRequest,
        actions: &mut Actions,
    ) {
        match self.propose_membership(request.change, actions) {
            Ok(index) => {
                let state = self.leader_state();
                if state.membership_waiting.len() < MEMBERSHIP_WAITING_MAX {
                    state
                        .membership_waiting
                        .push((index, from, request.request_id));
                }
            }
            Err(error) => self.membership_answer(from, request.request_id, Err(error), actions),
        }
    }

    fn membership_answer(
        &mut self,
        to: ReplicaId,
        request_id: u64,
        outcome: Result<crate::membership::Configuration, ConfigurationError>,
        actions: &mut Actions,
    ) {
        if to == self.id() {
            actions.push(Action::MembershipOutcome {
                request_id,
                outcome,
            });
        } else {
            let term = self.hard_state.term;
            let response = MembershipResponse {
                term,
                request_id,
                outcome,
            };
            self.send(to, Message::MembershipResponse(response), false, actions);
        }
    }

    /// A passive or reserve member answered a configure.
    pub(crate) fn on_configure_response(&mut self, from: ReplicaId, response: &ConfigureResponse) {
        if self.role != Role::Leader || response.term < self.hard_state.term {
            return;
        }
        self.leader_on_contact(from);
        let commit_index = self.commit_index;
        if let Some(progress) = self.leader_state().progress.get_mut(&from) {
            // A passive member is fed committed entries: count no more than is committed.
            let reported = response.last_index.min(commit_index);
            progress.reported_index = progress.reported_index.max(reported);
        }
    }
}
