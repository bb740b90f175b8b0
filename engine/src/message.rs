//! Messages between servers of one Raft group (SPEC §M2: Append, Poll, Vote, Configure,
//! Join, Leave, Reconfigure).

use crate::entry::Entry;
use crate::membership::{Configuration, ConfigurationError, MembershipChange};
use crate::types::{LogIndex, ReplicaId, Term};

/// A message with its sender and receiver.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The sending server.
    pub from: ReplicaId,
    /// The receiving server.
    pub to: ReplicaId,
    /// What was sent.
    pub message: Message,
}

/// Every message the core sends or receives.
#[derive(Clone, Debug)]
pub enum Message {
    /// Leader (or a follower feeding a passive member) to a follower: entries and commit index.
    AppendRequest(AppendRequest),
    /// Answer to an append, sent once the entries it acknowledges are durable.
    AppendResponse(AppendResponse),
    /// Pre-vote: would you vote for me if I started an election?
    PollRequest(VoteRequest),
    /// Answer to a poll.
    PollResponse(VoteResponse),
    /// A candidate asks for a vote.
    VoteRequest(VoteRequest),
    /// Answer to a vote, sent once the vote is durable.
    VoteResponse(VoteResponse),
    /// Leader to passive and reserve members: term, leader and configuration.
    ConfigureRequest(ConfigureRequest),
    /// Answer to a configure.
    ConfigureResponse(ConfigureResponse),
    /// Any server to the leader: change the membership.
    MembershipRequest(MembershipRequest),
    /// The leader's answer once the change committed, or why it was refused.
    MembershipResponse(MembershipResponse),
}

impl Message {
    /// The sender's term, carried by every message.
    #[must_use]
    pub fn term(&self) -> Term {
        match self {
            Message::AppendRequest(request) => request.term,
            Message::AppendResponse(response) => response.term,
            Message::PollRequest(request) | Message::VoteRequest(request) => request.term,
            Message::PollResponse(response) | Message::VoteResponse(response) => response.term,
            Message::ConfigureRequest(request) => request.term,
            Message::ConfigureResponse(response) => response.term,
            Message::MembershipRequest(request) => request.term,
            Message::MembershipResponse(response) => response.term,
        }
    }

    /// A short name, for traces.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Message::AppendRequest(_) => "append",
            Message::AppendResponse(_) => "append-response",
            Message::PollRequest(_) => "poll",
            Message::PollResponse(_) => "poll-response",
            Message::VoteRequest(_) => "vote",
            Message::VoteResponse(_) => "vote-response",
            Message::ConfigureRequest(_) => "configure",
            Message::ConfigureResponse(_) => "configure-response",
            Message::MembershipRequest(_) => "membership",
            Message::MembershipResponse(_) => "membership-response",
        }
    }
}

/// Entries after `(prev_index, prev_term)`, and what the sender knows is committed.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The sender's term.
    pub term: Term,
    /// The leader of `term` (the sender itself unless a follower is feeding a passive member).
    pub leader: ReplicaId,
    /// Index of the entry just before `entries`.
    pub prev_index: LogIndex,
    /// Term of the entry at `prev_index` (zero at index zero).
    pub prev_term: Term,
    /// Consecutive entries from `prev_index + 1`; empty for a heartbeat.
    pub entries: Vec<Entry>,
    /// The sender's commit index.
    pub commit_index: LogIndex,
    /// Lowest index stored on every available non-reserve member (SPEC §G5).
    pub global_index: LogIndex,
    /// The leader's confirmation round when this was sent (SPEC §D5); the answer echoes
    /// it. Zero from a follower feeding a passive member: such answers confirm nothing.
    pub round: u64,
}

impl AppendRequest {
    /// Index of the last entry carried (`prev_index` for a heartbeat).
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.prev_index.0 + self.entries.len() as u64)
    }
}

/// The answer to an append.
#[derive(Clone, Debug)]
pub struct AppendResponse {
    /// The responder's term.
    pub term: Term,
    /// True if the entries matched and are durable through `match_index`.
    pub success: bool,
    /// On success: the last index known to match the sender's log and be durable.
    pub match_index: LogIndex,
    /// On failure: the `prev_index` that did not match.
    pub rejected_index: LogIndex,
    /// On failure: the responder's best guess of where the logs agree (fast backtracking).
    pub hint_index: LogIndex,
    /// On failure: the responder's term at `hint_index`.
    pub hint_term: Term,
    /// The `round` of the request answered, success or not: an answer in the leader's
    /// term acknowledges that leader either way.
    pub round: u64,
}

/// A poll (pre-vote) or vote request. For a poll, `term` is the term the sender would
/// campaign in; nobody's term changes because of a poll.
#[derive(Clone, Debug)]
pub struct VoteRequest {
    /// The (prospective) election term.
    pub term: Term,
    /// The server asking.
    pub candidate: ReplicaId,
    /// Index of the candidate's last entry.
    pub last_index: LogIndex,
    /// Term of the candidate's last entry.
    pub last_term: Term,
}

/// The answer to a poll or vote.
#[derive(Clone, Debug)]
pub struct VoteResponse {
    /// The responder's term (for a granted poll, the term polled for).
    pub term: Term,
    /// True if granted.
    pub granted: bool,
}

/// The leader's heartbeat to passive and reserve members.
#[derive(Clone, Debug)]
pub struct ConfigureRequest {
    /// The leader's term.
    pub term: Term,
    /// The leader.
    pub leader: ReplicaId,
    /// The leader's current configuration.
    pub configuration: Configuration,
    /// The leader's commit index.
    pub commit_index: LogIndex,
}

/// The answer to a configure.
#[derive(Clone, Debug)]
pub struct ConfigureResponse {
    /// The responder's term.
    pub term: Term,
    /// The responder's last durable index (zero for a reserve member).
    pub last_index: LogIndex,
}

/// A request to change the membership, sent to the server believed to lead.
#[derive(Clone, Debug)]
pub struct MembershipRequest {
    /// The sender's term.
    pub term: Term,
    /// Chosen by the sender to match the response.
    pub request_id: u64,
    /// The change.
    pub change: MembershipChange,
}

/// The answer to a membership request.
#[derive(Clone, Debug)]
pub struct MembershipResponse {
    /// The responder's term.
    pub term: Term,
    /// The request answered.
    pub request_id: u64,
    /// The committed configuration, or why the change was refused.
    pub outcome: Result<Configuration, ConfigurationError>,
}
