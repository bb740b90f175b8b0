//! Receiving appends (every non-leader role) and the election timer of a follower.

use crate::action::Actions;
use crate::entry::EntryBody;
use crate::membership::MemberType;
use crate::message::{AppendRequest, AppendResponse, Message, VoteRequest, VoteResponse};
use crate::replica::{Election, Replica, Role};
use crate::types::{LogIndex, ReplicaId, Term};

impl Replica {
    /// Entries from the leader, or committed entries from a follower feeding this passive.
    pub(crate) fn on_append_request(
        &mut self,
        from: ReplicaId,
        request: AppendRequest,
        actions: &mut Actions,
    ) {
        let term = self.hard_state.term;
        if request.term < term {
            // A deposed leader: tell it the newer term. The answer acknowledges no round:
            // its sender may lead again in our term, where that round number means another.
            let mut response = self.append_rejection(&request, term);
            response.round = 0;
            self.send(from, Message::AppendResponse(response), false, actions);
            return;
        }
        assert_eq!(
            request.term, term,
            "newer terms were adopted before dispatch"
        );
        if self.role == Role::Leader {
            // Two leaders in one term would break election safety; a follower feeding a
            // passive member never sends to voters, so this is a duplicate or a bug.
            assert!(request.leader == self.id(), "another leader in my term");
            return;
        }
        if request.leader == self.id() {
            // A follower feeding what it believes is a passive member names us as the
            // leader of this term, which we no longer are: its view is stale. Ignore it.
            return;
        }
        if self.role == Role::Candidate {
            self.become_follower(term, Some(request.leader), actions);
        }
        self.leader = Some(request.leader);
        self.poll = None; // The leader is alive: a pre-vote in progress is moot.
        self.leader_contact_ms = Some(self.now.monotonic_ms);
        self.election_timer_reset();
        self.global_index = self.global_index.max(request.global_index);

        let prev_matches = self.log.term_at(request.prev_index) == Some(request.prev_term);
        if !prev_matches && !self.config.planted_bugs.skip_log_matching {
            let response = self.append_rejection(&request, term);
            self.send(from, Message::AppendResponse(response), false, actions);
            return;
        }
        if !prev_matches && request.prev_index > self.log.last_index() {
            // Even the planted bug cannot append past a hole.
            let response = self.append_rejection(&request, term);
            self.send(from, Message::AppendResponse(response), false, actions);
            return;
        }
        let match_index = LogIndex(request.prev_index.0 + request.entries.len() as u64);
        let match_term = request
            .entries
            .last()
            .map_or(request.prev_term, |entry| entry.term);
        let configuration_before = self.configuration().clone();
        self.append_entries(request.entries, actions);
        // Log matching: our log now ends its agreed prefix exactly where the leader's does.
        assert_eq!(
            self.log.term_at(match_index),
            Some(match_term),
            "log matching after append"
        );
        if *self.configuration() != configuration_before {
            self.on_configuration_changed(actions);
        }
        // Commit no further than this request's last entry: entries beyond it may be stale.
        let commit_cap = if self.config.planted_bugs.commit_past_request {
            self.log.last_index()
        } else {
            match_index
        };
        self.commit_to(request.commit_index.min(commit_cap), actions);
        let response = AppendResponse {
            term,
            success: true,
            match_index,
            rejected_index: LogIndex::ZERO,
            hint_index: LogIndex::ZERO,
            hint_term: Term::ZERO,
            // Built now, sent once durable: the deferred ack answers this request's round.
            round: request.round,
        };
        let after_persist = !self.config.planted_bugs.ack_before_persist;
        self.send(
            from,
            Message::AppendResponse(response),
            after_persist,
            actions,
        );
    }

    /// Appends the entries that are new, truncating a conflicting suffix first.
    fn append_entries(&mut self, entries: Vec<crate::entry::Entry>, actions: &mut Actions) {
        let mut new_from = None;
        for (position, entry) in entries.iter().enumerate() {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term => {}
                Some(_) => {
                    // Log matching: the first conflict and everything after it goes.
                    assert!(
                        entry.index > self.commit_index,
                        "conflict in the committed prefix"
                    );
                    self.truncate_after(entry.index.prev());
                    new_from = Some(position);
                    break;
                }
                None => {
                    new_from = Some(position);
                    break;
                }
            }
        }
        let Some(new_from) = new_from else {
            return;
        };
        let new_entries: Vec<_> = entries.into_iter().skip(new_from).collect();
        for entry in &new_entries {
            self.log_push(entry.clone());
        }
        self.persist(new_entries, actions);
    }

    /// A rejection carrying where this log might agree with the sender's (fast backtracking).
    /// It echoes the request's round: in the sender's term it still acknowledges the leader.
    fn append_rejection(&self, request: &AppendRequest, term: Term) -> AppendResponse {
        let (prev_index, prev_term) = (request.prev_index, request.prev_term);
        let hint_index = self
            .log
            .last_index_with_term_at_most(prev_index.min(self.log.last_index()), prev_term);
        let hint_term = self.log.term_at(hint_index).expect("hint index is held");
        AppendResponse {
            term,
            success: false,
            match_index: LogIndex::ZERO,
            rejected_index: prev_index,
            hint_index,
            hint_term,
            round: request.round,
        }
    }

    /// The election timer fired: ask the voters whether they would vote (pre-vote).
    pub(crate) fn poll_start(&mut self, actions: &mut Actions) {
        assert!(matches!(self.role, Role::Follower | Role::Candidate));
        self.election_timer_reset();
        if self.configuration().member_type(self.id()) != MemberType::Active {
            return;
        }
        if self.role == Role::Candidate {
            // The election failed to finish: go back to polling, without a new term.
            self.election = None;
            self.role = Role::Follower;
        }
        self.leader = None;
        let term = self.hard_state.term.next();
        let mut granted = std::collections::BTreeSet::new();
        granted.insert(self.id());
        self.poll = Some(Election { term, granted });
        let request = self.vote_request(term);
        let voters: Vec<_> = self.configuration().ids_of(MemberType::Active).collect();
        for voter in voters {
            if voter != self.id() {
                self.send(voter, Message::PollRequest(request.clone()), false, actions);
            }
        }
        self.poll_check(actions);
    }

    pub(crate) fn vote_request(&self, term: Term) -> VoteRequest {
        VoteRequest {
            term,
            candidate: self.id(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        }
    }

    /// Would this server vote for the poller? Nobody's term changes.
    pub(crate) fn on_poll_request(
        &mut self,
        from: ReplicaId,
        request: &VoteRequest,
        actions: &mut Actions,
    ) {
        if self.role == Role::Leader {
            self.leader_on_contact(from);
        }
        // Like a vote, a poll is answered whatever this server's own configuration says
        // (Raft §4.1): it may not have heard yet that it was promoted to voter.
        let granted = request.term > self.hard_state.term
            && !self.in_leader_lease()
            && (self.config.planted_bugs.vote_any_log
                || self
                    .log
                    .is_up_to_date(request.last_index, request.last_term));
        let term = if granted {
            request.term
        } else {
            self.hard_state.term
        };
        let response = VoteResponse { term, granted };
        self.send(from, Message::PollResponse(response), false, actions);
    }

    pub(crate) fn on_poll_response(
        &mut self,
        from: ReplicaId,
        response: &VoteResponse,
        actions: &mut Actions,
    ) {
        let Some(poll) = self.poll.as_mut() else {
            return; // Late answer to a finished poll.
        };
        if !response.granted || response.term != poll.term {
            return;
        }
        poll.granted.insert(from);
        self.poll_check(actions);
    }

    /// A poll granted by a majority starts a real election.
    fn poll_check(&mut self, actions: &mut Actions) {
        let Some(poll) = &self.poll else {
            return;
        };
        if self.configuration().is_quorum(&poll.granted) {
            self.poll = None;
            self.candidate_start(actions);
        }
    }

    /// A candidate asks for this server's vote (newer terms were adopted before dispatch).
    pub(crate) fn on_vote_request(
        &mut self,
        from: ReplicaId,
        request: &VoteRequest,
        actions: &mut Actions,
    ) {
        let term = self.hard_state.term;
        // Votes are granted without consulting this server's configuration (Raft §4.1): a
        // passive or reserve member may be a voter in a configuration it has not received
        // yet, and without its vote the new voters could never elect anyone.
        let free =
            self.hard_state.vote.is_none() || self.hard_state.vote == Some(request.candidate);
        let log_ok = self.config.planted_bugs.vote_any_log
            || self
                .log
                .is_up_to_date(request.last_index, request.last_term);
        // A vote in a term this server adopted from some other message still waits out
        // the lease: it may have acknowledged a leader less than T ago (`lease_until_ms`).
        let granted = request.term == term
            && free
            && log_ok
            && self.role != Role::Leader
            && !self.in_leader_lease();
        if granted {
            assert!(
                self.hard_state.vote.is_none() || self.hard_state.vote == Some(request.candidate),
                "at most one vote per term"
            );
            self.hard_state.vote = Some(request.candidate);
            self.persist(Vec::new(), actions);
            self.election_timer_reset();
        }
        let response = VoteResponse { term, granted };
        let after_persist = granted && !self.config.planted_bugs.vote_without_persist;
        self.send(
            from,
            Message::VoteResponse(response),
            after_persist,
            actions,
        );
    }

    /// True if the entry at `index` is a configuration entry (tests and traces).
    #[must_use]
    pub fn is_configuration_entry(&self, index: LogIndex) -> bool {
        self.log
            .get(index)
            .is_some_and(|entry| matches!(entry.body, EntryBody::Configuration { .. }))
    }
}
