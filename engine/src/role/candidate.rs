//! Campaigning: becoming a candidate, counting votes, and winning.

use std::collections::BTreeSet;

use crate::action::{Actions, HardState};
use crate::membership::MemberType;
use crate::message::{Message, VoteResponse};
use crate::replica::{Election, Replica, Role};
use crate::types::ReplicaId;

impl Replica {
    /// A poll succeeded: start an election in the next term. Vote requests go out only once
    /// the new term and the self-vote are durable.
    pub(crate) fn candidate_start(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Follower);
        assert_eq!(
            self.configuration().member_type(self.id()),
            MemberType::Active
        );
        let term = self.hard_state.term.next();
        self.hard_state = HardState {
            term,
            vote: Some(self.id()),
        };
        self.role = Role::Candidate;
        self.passive_progress.clear();
        self.leader = None;
        self.election = Some(Election {
            term,
            granted: BTreeSet::new(),
        });
        self.persist(Vec::new(), actions);
        self.election_timer_reset();
        let request = self.vote_request(term);
        let voters: Vec<_> = self.configuration().ids_of(MemberType::Active).collect();
        for voter in voters {
            if voter != self.id() {
                self.send(voter, Message::VoteRequest(request.clone()), true, actions);
            }
        }
    }

    /// The self-vote counts once it is durable: a crash must not let this server vote
    /// again in the same term after winning with it.
    pub(crate) fn candidate_on_vote_durable(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Candidate);
        let durable = self.hard_state_durable;
        let vote_durable = durable.term == self.hard_state.term && durable.vote == Some(self.id());
        let bug = self.config.planted_bugs.vote_without_persist;
        let id = self.id();
        let term_durable = durable.term == self.hard_state.term;
        if let Some(election) = self.election.as_mut() {
            if vote_durable || (bug && term_durable) {
                election.granted.insert(id);
            }
        }
        self.candidate_check(actions);
    }

    pub(crate) fn on_vote_response(
        &mut self,
        from: ReplicaId,
        response: &VoteResponse,
        actions: &mut Actions,
    ) {
        if self.role != Role::Candidate || response.term != self.hard_state.term {
            return; // Late answer to an election that is over.
        }
        if !response.granted {
            return;
        }
        if let Some(election) = self.election.as_mut() {
            assert_eq!(election.term, self.hard_state.term);
            election.granted.insert(from);
        }
        self.candidate_check(actions);
    }

    fn candidate_check(&mut self, actions: &mut Actions) {
        let Some(election) = &self.election else {
            return;
        };
        if self.configuration().is_quorum(&election.granted) {
            self.election = None;
            self.leader_start(actions);
        }
    }
}
