//! Sending appends, shared by the leader (to followers, and to passive members when no
//! follower can feed them) and by followers feeding passive members.

use crate::action::Actions;
use crate::message::{AppendRequest, Message};
use crate::progress::Progress;
use crate::replica::Replica;
use crate::types::{LogIndex, ReplicaId};

/// Entries in one append, whatever their size.
const APPEND_ENTRIES_COUNT_MAX: usize = 4096;

/// Whose replication state an append is tracked in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Sender {
    /// The leader, replicating its log.
    Leader,
    /// A follower feeding a passive member committed entries for the leader it follows.
    Feeder,
}

impl Replica {
    fn progress_of(&mut self, sender: Sender, to: ReplicaId) -> Option<&mut Progress> {
        match sender {
            Sender::Leader => self.leader_state.as_mut()?.progress.get_mut(&to),
            Sender::Feeder => self.passive_progress.get_mut(&to),
        }
    }

    /// Sends `to` the next append its progress calls for, with no entry past `cap`. Nothing
    /// goes while the pipeline is full or there is nothing new, except a heartbeat, which
    /// always goes (assuming the oldest append in flight was lost).
    pub(crate) fn send_append(
        &mut self,
        sender: Sender,
        to: ReplicaId,
        cap: LogIndex,
        heartbeat: bool,
        actions: &mut Actions,
    ) {
        let leader = match sender {
            Sender::Leader => self.id(),
            Sender::Feeder => match self.leader {
                Some(leader) => leader,
                None => return,
            },
        };
        let depth = self.config.pipeline_depth;
        let Some(progress) = self.progress_of(sender, to) else {
            return;
        };
        if !progress.admit(heartbeat, depth) {
            return;
        }
        let next_index = progress.next_index;
        let round = match sender {
            Sender::Leader => self.leader_state.as_ref().map_or(0, |state| state.round),
            // A passive member's answer goes to its feeder and confirms no leader.
            Sender::Feeder => 0,
        };
        let Some(request) = self.append_request(leader, next_index, cap, round) else {
            return;
        };
        if request.entries.is_empty() && !heartbeat {
            return;
        }
        let now_ms = self.now.monotonic_ms;
        let progress = self.progress_of(sender, to).expect("admitted above");
        progress.on_sent(request.last_index(), now_ms, depth);
        self.send(to, Message::AppendRequest(request), false, actions);
    }

    /// The append that starts at `next_index` with no entry past `cap`, carrying `round`, or
    /// `None` if the entry before `next_index` is not held (only after compaction, where a
    /// snapshot would go instead).
    fn append_request(
        &self,
        leader: ReplicaId,
        next_index: LogIndex,
        cap: LogIndex,
        round: u64,
    ) -> Option<AppendRequest> {
        let prev_index = next_index.prev();
        let prev_term = self.log.term_at(prev_index)?;
        let mut entries = if next_index <= cap {
            let size_bytes_max = self.config.append_size_bytes_max;
            self.log
                .slice(next_index, size_bytes_max, APPEND_ENTRIES_COUNT_MAX)
        } else {
            Vec::new()
        };
        entries.retain(|entry| entry.index <= cap);
        Some(AppendRequest {
            term: self.hard_state.term,
            leader,
            prev_index,
            prev_term,
            entries,
            commit_index: self.commit_index,
            global_index: self.global_index,
            round,
        })
    }
}
