//! What a sender knows about one receiver's log: the leader's view of each follower, or a
//! follower's view of a passive member it feeds.

use std::collections::VecDeque;

use crate::types::LogIndex;

/// How the sender is currently replicating to a receiver.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Finding where the logs agree: one append at a time.
    Probe,
    /// Logs agree: several appends in flight, `next_index` advanced optimistically.
    Replicate,
}

/// Replication state for one receiver.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to match and be durable on the receiver.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// Probe or replicate.
    pub mode: ProgressMode,
    /// Last index of each append in flight, oldest first.
    pub in_flight: VecDeque<LogIndex>,
    /// When (monotonic ms) the last append or heartbeat went out.
    pub sent_ms: u64,
    /// When (monotonic ms) the receiver last answered anything in this term.
    pub contact_ms: u64,
    /// True if the receiver answered since the last heartbeat went out.
    pub answered: bool,
    /// Heartbeats in a row without an answer (SPEC §G4).
    pub failures: u32,
    /// The last durable index a passive member reported in a configure answer. Kept apart
    /// from `match_index`: it is fed by followers, so it does not drive this sender's
    /// replication, only the global index.
    pub reported_index: LogIndex,
    /// The highest confirmation round the receiver acknowledged in the leader's term
    /// (SPEC §D5). Always zero for a passive member a follower feeds.
    pub round_acked: u64,
}

impl Progress {
    /// A receiver about which nothing is known yet: probe from the sender's next index.
    #[must_use]
    pub fn new(next_index: LogIndex, now_ms: u64) -> Progress {
        assert!(next_index > LogIndex::ZERO);
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            mode: ProgressMode::Probe,
            in_flight: VecDeque::new(),
            sent_ms: 0,
            contact_ms: now_ms,
            answered: true,
            failures: 0,
            reported_index: LogIndex::ZERO,
            round_acked: 0,
        }
    }

    /// True if another append may go out now.
    #[must_use]
    pub fn can_send(&self, pipeline_depth: usize) -> bool {
        match self.mode {
            ProgressMode::Probe => self.in_flight.is_empty(),
            ProgressMode::Replicate => self.in_flight.len() < pipeline_depth,
        }
    }

    /// True if an append may go now. A heartbeat always may: it assumes the oldest append
    /// in flight was lost (all of them while probing) and takes its place.
    pub fn admit(&mut self, heartbeat: bool, pipeline_depth: usize) -> bool {
        if self.can_send(pipeline_depth) {
            return true;
        }
        if !heartbeat {
            return false;
        }
        match self.mode {
            ProgressMode::Probe => self.in_flight.clear(),
            ProgressMode::Replicate => {
                self.in_flight.pop_front();
            }
        }
        true
    }

    /// Records an append ending at `last_index` as sent.
    pub fn on_sent(&mut self, last_index: LogIndex, now_ms: u64, pipeline_depth: usize) {
        assert!(
            self.next_index > self.match_index,
            "next index always past the match"
        );
        assert!(self.in_flight.len() < pipeline_depth.max(1) + 1);
        self.in_flight.push_back(last_index);
        self.sent_ms = now_ms;
        if self.mode == ProgressMode::Replicate {
            self.next_index = self.next_index.max(last_index.next());
        }
    }

    /// A successful answer: the receiver holds our log through `match_index`.
    /// Returns false if it taught nothing (a duplicate, or older than what we know).
    pub fn on_success(&mut self, match_index: LogIndex) -> bool {
        let in_flight_before = self.in_flight.len();
        while self
            .in_flight
            .front()
            .is_some_and(|&last| last <= match_index)
        {
            self.in_flight.pop_front();
        }
        let freed = self.in_flight.len() < in_flight_before;
        let probing = self.mode == ProgressMode::Probe;
        if match_index < self.match_index || (match_index == self.match_index && !freed && !probing)
        {
            return false;
        }
        self.match_index = match_index;
        self.next_index = self.next_index.max(match_index.next());
        if probing {
            self.mode = ProgressMode::Replicate;
            self.in_flight.clear();
        }
        assert!(self.next_index > self.match_index);
        true
    }

    /// A rejection of the append after `rejected_index`. `retry_from` is where to look next.
    /// Returns false if the rejection is stale.
    pub fn on_rejected(&mut self, rejected_index: LogIndex, retry_from: LogIndex) -> bool {
        if rejected_index <= self.match_index {
            // An old append (we already know better), or a receiver that lost entries it
            // acknowledged: backing up below a match would loop forever, so ignore it.
            return false;
        }
        if self.mode == ProgressMode::Probe
            && (rejected_index != self.next_index.prev() || self.in_flight.is_empty())
        {
            // Not the probe we are waiting for, or a duplicate answer to one already
            // answered: resending for it would multiply messages with every duplicate.
            return false;
        }
        self.mode = ProgressMode::Probe;
        self.in_flight.clear();
        self.next_index = retry_from
            .next()
            .max(self.match_index.next())
            .min(self.next_index);
        if self.next_index <= self.match_index {
            self.next_index = self.match_index.next();
        }
        true
    }

    /// Forget what is in flight (a heartbeat interval passed without an answer in probe mode).
    pub fn reset_in_flight(&mut self) {
        self.in_flight.clear();
        if self.mode == ProgressMode::Replicate {
            self.mode = ProgressMode::Probe;
            self.next_index = self.match_index.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_then_replicate_then_reject() {
        let mut progress = Progress::new(LogIndex(11), 0);
        assert!(progress.can_send(4));
        progress.on_sent(LogIndex(10), 1, 4);
        assert!(!progress.can_send(4));
        assert!(progress.on_rejected(LogIndex(10), LogIndex(5)));
        assert_eq!(progress.next_index, LogIndex(6));
        progress.on_sent(LogIndex(10), 2, 4);
        assert!(progress.on_success(LogIndex(10)));
        assert_eq!(progress.mode, ProgressMode::Replicate);
        progress.on_sent(LogIndex(12), 3, 4);
        progress.on_sent(LogIndex(14), 3, 4);
        assert_eq!(progress.next_index, LogIndex(15));
        assert!(
            !progress.on_rejected(LogIndex(9), LogIndex(3)),
            "stale rejection ignored"
        );
        assert!(progress.on_success(LogIndex(12)));
        assert_eq!(progress.in_flight.len(), 1);
    }
}
