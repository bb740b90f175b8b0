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
                assert!(self.election.is_none() && self.poll.is_none());
                let state = self
                    .leader_state
                    .as_ref()
                    .expect("a leader has leader state");
                assert!(
                    state.round == state.round_confirmed
                        || state.round == state.round_confirmed + 1,
                    "at most one confirmation round in flight"
                );
                assert!(
                    !state.round_queued || state.round > state.round_confirmed,
                    "a round is queued only behind one in flight"
                );
                assert!(state.rounds_awaited.len() <= 2);
                assert!(
                    state
                        .rounds_awaited
                        .windows(2)
                        .all(|pair| pair[0] < pair[1])
                        && state.rounds_awaited.iter().all(|&round| {
                            round > state.round_confirmed && round <= state.round + 1
                        }),
                    "callers wait only for rounds not confirmed yet"
                );
                assert_eq!(
                    state.round_confirmed_start_ms.is_some(),
                    state.round_confirmed > 0,
                    "a confirmed round has a start time"
                );
                assert!(state.round_start_ms <= self.now.monotonic_ms);
                assert!(
                    state
                        .progress
                        .values()
                        .all(|progress| progress.round_acked <= state.round),
                    "no round acknowledged before it started"
                );
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
        if matches!(self.role, Role::Follower | Role::Candidate) {
            // The lease a voter grants with each append it acknowledges must outlast its
            // own election timer, or it could elect itself inside that lease.
            let timeout = self.config.election_timeout_ms;
            assert!(
                self.leader_contact_ms
                    .is_none_or(|contact| self.election_deadline_ms >= contact + timeout),
                "the election timer never fires inside the lease this server granted"
            );
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
