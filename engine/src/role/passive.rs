//! Passive and reserve members, and the followers that feed passive members committed
//! entries (SPEC §G3).

use crate::action::Actions;
use crate::membership::{MemberStatus, MemberType};
use crate::message::{AppendResponse, ConfigureRequest, ConfigureResponse, Message};
use crate::progress::Progress;
use crate::replica::{Replica, Role};
use crate::role::replication::Sender;
use crate::types::{LogIndex, ReplicaId};

impl Replica {
    /// The leader's heartbeat to a passive or reserve member: term, leader, configuration.
    pub(crate) fn on_configure_request(
        &mut self,
        from: ReplicaId,
        request: ConfigureRequest,
        actions: &mut Actions,
    ) {
        let term = self.hard_state.term;
        if request.term < term {
            let response = ConfigureResponse {
                term,
                last_index: LogIndex::ZERO,
            };
            self.send(from, Message::ConfigureResponse(response), false, actions);
            return;
        }
        if self.role == Role::Leader {
            assert!(request.leader == self.id(), "another leader in my term");
            return;
        }
        if self.role == Role::Candidate {
            self.become_follower(term, Some(request.leader), actions);
        }
        self.leader = Some(request.leader);
        self.poll = None;
        self.leader_contact_ms = Some(self.now.monotonic_ms);
        self.election_timer_reset();
        request.configuration.assert_valid();
        if request.configuration.index > self.configuration().index {
            self.configurations.push(request.configuration);
            self.on_configuration_changed(actions);
        }
        let last_index = match self.role {
            Role::Reserve | Role::Inactive => LogIndex::ZERO,
            _ => self.persisted_index,
        };
        let response = ConfigureResponse { term, last_index };
        self.send(from, Message::ConfigureResponse(response), false, actions);
    }

    /// The passive members this follower feeds: voters other than the leader that are
    /// available are ranked by id, and passive member `j` (by id) goes to rank `j % n`.
    /// Copycat's `(j + 1) % r` rule sent some passives to several followers and the first
    /// follower to all; this split gives each passive exactly one feeder.
    fn feeder_assignment(&self) -> Vec<ReplicaId> {
        let Some(leader) = self.leader else {
            return Vec::new();
        };
        let configuration = self.configuration();
        let feeders: Vec<ReplicaId> = configuration
            .members
            .iter()
            .filter(|member| member.member_type == MemberType::Active)
            .filter(|member| member.id != leader && member.status == MemberStatus::Available)
            .map(|member| member.id)
            .collect();
        let Some(rank) = feeders.iter().position(|&id| id == self.id()) else {
            return Vec::new();
        };
        configuration
            .ids_of(MemberType::Passive)
            .enumerate()
            .filter(|(position, _)| position % feeders.len() == rank)
            .map(|(_, id)| id)
            .collect()
    }

    /// Every heartbeat interval, a follower sends committed entries to its passive members.
    pub(crate) fn feeder_tick(&mut self, actions: &mut Actions) {
        assert!(self.role == Role::Follower);
        let now_ms = self.now.monotonic_ms;
        if now_ms < self.passive_heartbeat_ms + self.config.heartbeat_interval_ms {
            return;
        }
        self.passive_heartbeat_ms = now_ms;
        let assigned = self.feeder_assignment();
        self.passive_progress.retain(|id, _| assigned.contains(id));
        let next_index = self.commit_index.next();
        for id in assigned {
            let progress = self
                .passive_progress
                .entry(id)
                .or_insert_with(|| Progress::new(next_index, now_ms));
            if !progress.answered {
                progress.reset_in_flight();
            }
            progress.answered = false;
            self.feeder_send(id, true, actions);
        }
    }

    /// Sends committed entries (or a heartbeat) to a passive member this follower feeds.
    fn feeder_send(&mut self, to: ReplicaId, heartbeat: bool, actions: &mut Actions) {
        let cap = self.commit_index;
        self.send_append(Sender::Feeder, to, cap, heartbeat, actions);
    }

    /// A passive member answered this follower's append.
    pub(crate) fn feeder_on_append_response(
        &mut self,
        from: ReplicaId,
        response: &AppendResponse,
        actions: &mut Actions,
    ) {
        let retry_from = self
            .log
            .last_index_with_term_at_most(response.hint_index, response.hint_term);
        let Some(progress) = self.passive_progress.get_mut(&from) else {
            return;
        };
        progress.answered = true;
        let send_more = if response.success {
            progress.on_success(response.match_index.min(self.log.last_index()))
        } else {
            progress.on_rejected(response.rejected_index, retry_from)
        };
        if send_more {
            self.feeder_send(from, false, actions);
        }
    }
}
