//! Invariants checked after every input in tests, in the simulator, and on demand.

use crate::membership::MemberType;
use crate::replica::{Replica, Role};

impl Replica {
    /// Asserts what must hold between inputs. O(1) apart from the member list.
    pub fn invariants(&self) {
        let last_index = self.log.last_index();
        assert!(
            self.commit_index <= last_index,
            "commit never passes the last entry"
        );
        assert!(
            self.applied_index <= self.apply_emitted,
            "applied only what was handed out"
        );
        assert!(
            self.apply_emitted <= self.commit_index,
            "apply only committed entries"
        );
        assert!(
            self.persisted_index <= last_index,
            "durable prefix within the log"
        );
        assert!(
            self.log.last_term() <= self.hard_state.term,
            "no entry from a future term"
        );
        assert!(
            self.hard_state_durable.term <= self.hard_state.term,
            "durable term not ahead"
        );
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.id()));
                assert_eq!(
                    self.hard_state.vote,
                    Some(self.id()),
                    "a leader voted for itself"
                );
                assert!(self.leader_state.is_some());
                assert!(self.election.is_none() && self.poll.is_none());
            }
            Role::Candidate => {
                assert_eq!(
                    self.hard_state.vote,
                    Some(self.id()),
                    "a candidate voted for itself"
                );
                assert!(self.leader.is_none());
                assert!(self.election.is_some());
                assert!(self.leader_state.is_none());
            }
            Role::Follower => {
                assert!(
                    self.leader != Some(self.id()),
                    "a follower does not follow itself"
                );
                assert!(self.leader_state.is_none());
                assert_eq!(
                    self.configuration().member_type(self.id()),
                    MemberType::Active
                );
            }
            Role::Passive | Role::Reserve | Role::Inactive => {
                assert!(self.leader != Some(self.id()));
                assert!(self.leader_state.is_none());
                assert!(self.election.is_none());
            }
        }
        if self.role != Role::Follower {
            assert!(
                self.passive_progress.is_empty(),
                "only followers feed passive members"
            );
        }
        assert!(
            self.configurations[0].index.0 == 0,
            "the bootstrap configuration is first"
        );
        for pair in self.configurations.windows(2) {
            assert!(pair[0].index < pair[1].index, "configurations in log order");
        }
        for pair in self
            .persist_pending
            .iter()
            .zip(self.persist_pending.iter().skip(1))
        {
            assert!(pair.0.id < pair.1.id, "persists in order");
        }
    }
}
