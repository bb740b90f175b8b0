//! Requests, responses and pushes between a client and the server it is connected to
//! (SPEC §B5, §C, §D, §F, §M2).
//!
//! These are values; the wire codec belongs to the transport. Every request carries an id
//! the client chose, echoed by its response, so a client can match answers on a connection
//! that carries many requests at once.

use bytes::Bytes;

use crate::session::ids::{ClientId, SessionId};
use crate::types::{LogIndex, ReplicaId};

/// How a query is ordered against other operations (SPEC §D).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryConsistency {
    /// Served by any server once it has applied everything the client has seen (its own
    /// commands and the highest index in any response it got); forwarded to the leader
    /// when the server is too far behind. Per-session order, read-your-writes and
    /// monotonic reads; may be stale with respect to other clients.
    Sequential,
    /// Like `Sequential`, but never forwarded for being behind: the server waits until it
    /// has applied what the client has seen. The same per-session guarantees.
    Causal,
    /// Served by the leader without a round trip while it holds a lease: a majority
    /// acknowledged a heartbeat sent less than (election timeout × (1 − 2 × drift bound))
    /// ago. Linearizable as long as clocks drift within the bound.
    LinearizableLease,
    /// The leader applies everything committed when the query arrived, then confirms it
    /// still leads with one majority round (shared by concurrent queries). Linearizable
    /// whatever the clocks do.
    #[default]
    Linearizable,
}

/// How a command is ordered and deduplicated (SPEC §C2).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandConsistency {
    /// No order and no deduplication: a retry may apply twice.
    None,
    /// Session order and exactly-once; the session's events may be delivered after the
    /// response.
    Sequential,
    /// Session order and exactly-once; every event published before the command applied
    /// is delivered before its response.
    #[default]
    Linearizable,
}

/// A failure reported by the state machine's own code: an error it returned, or a panic
/// it raised, for that one operation. The replica goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplicationError {
    /// What the state machine said.
    pub message: String,
}

impl std::fmt::Display for ApplicationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "application error: {}", self.message)
    }
}

impl std::error::Error for ApplicationError {}

/// Why a request failed (SPEC §M2; the codes are Copycat's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// 1: no leader is known; retry later or elsewhere.
    NoLeader,
    /// 2: a query could not be served (for example, leadership could not be confirmed).
    Query {
        /// Why.
        reason: String,
    },
    /// 3: a command arrived too far after a gap in its session's sequence; the client
    /// resubmits everything after `last_sequence`. For a command at or below
    /// `last_sequence` it means the command applied but its cached output is gone (the
    /// client had acknowledged it).
    Command {
        /// The highest sequence the leader has for the session.
        last_sequence: u64,
    },
    /// 4: the state machine rejected the operation.
    Application(ApplicationError),
    /// 5: this server cannot do that in its current role (for example, a reserve member).
    IllegalMemberState {
        /// Why.
        reason: String,
    },
    /// 6: the session is unknown here: it expired or was closed, or was never registered.
    UnknownSession,
    /// 7: a bug or an unexpected condition in the server.
    Internal {
        /// What happened.
        reason: String,
    },
    /// 8: a membership change was refused.
    Configuration {
        /// Why.
        reason: String,
    },
    /// The client's own session is closed or expired: nothing was sent (SPEC §B6).
    ClosedSession,
}

impl ClientError {
    /// Copycat's error code (0 for the client-side `ClosedSession`).
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            ClientError::NoLeader => 1,
            ClientError::Query { .. } => 2,
            ClientError::Command { .. } => 3,
            ClientError::Application(_) => 4,
            ClientError::IllegalMemberState { .. } => 5,
            ClientError::UnknownSession => 6,
            ClientError::Internal { .. } => 7,
            ClientError::Configuration { .. } => 8,
            ClientError::ClosedSession => 0,
        }
    }

    /// True if the same request may succeed when retried (here or at another server).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::NoLeader | ClientError::Query { .. } | ClientError::Command { .. }
        )
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoLeader => write!(f, "no leader is known"),
            ClientError::Query { reason } => write!(f, "query failed: {reason}"),
            ClientError::Command { last_sequence } => write!(
                f,
                "command out of sequence: the leader has the session through {last_sequence}"
            ),
            ClientError::Application(error) => write!(f, "{error}"),
            ClientError::IllegalMemberState { reason } => {
                write!(f, "illegal member state: {reason}")
            }
            ClientError::UnknownSession => write!(f, "unknown session (expired or closed)"),
            ClientError::Internal { reason } => write!(f, "internal error: {reason}"),
            ClientError::Configuration { reason } => write!(f, "configuration refused: {reason}"),
            ClientError::ClosedSession => write!(f, "the session is closed"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A request from a client, with the id its response will carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// Chosen by the client; unique among its requests in flight on one connection.
    pub request_id: u64,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// Names the client on this connection: the server sends the client's session events
    /// over it. Answered at once by any server, with the leader and members it knows.
    Connect {
        /// The client.
        client: ClientId,
    },
    /// Opens a session through the log. `timeout_ms == 0` asks for the server's default.
    Register {
        /// The client.
        client: ClientId,
        /// The timeout asked for.
        timeout_ms: u64,
    },
    /// Keeps the session alive and acknowledges responses and events: sent timeout/2 after
    /// the last request that showed the session alive (a command counts, Copycat #311), and
    /// at least once per session timeout while there is something new to acknowledge, since
    /// only keep-alives free the servers' caches (SPEC §B5).
    KeepAlive {
        /// The session.
        session: SessionId,
        /// Highest command sequence answered in order.
        command_sequence: u64,
        /// Highest event batch received in order.
        event_index: LogIndex,
    },
    /// Closes the session.
    Unregister {
        /// The session.
        session: SessionId,
    },
    /// A command, logged and applied everywhere.
    Command {
        /// The session.
        session: SessionId,
        /// The session's sequence number (0 for consistency NONE).
        sequence: u64,
        /// The operation.
        operation: Bytes,
    },
    /// A query: never logged.
    Query {
        /// The session.
        session: SessionId,
        /// The client's last command sequence: the query sees that command's effect.
        sequence: u64,
        /// The highest index in any response the client got: the query sees at least it.
        index: LogIndex,
        /// How it is ordered.
        consistency: QueryConsistency,
        /// The operation.
        operation: Bytes,
    },
    /// One-way: the client saw a gap in its events; resend every batch after `index`.
    ResetEvents {
        /// The session.
        session: SessionId,
        /// The last batch the client received in order.
        index: LogIndex,
    },
}

impl RequestBody {
    /// A short name, for traces and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            RequestBody::Connect { .. } => "connect",
            RequestBody::Register { .. } => "register",
            RequestBody::KeepAlive { .. } => "keep-alive",
            RequestBody::Unregister { .. } => "unregister",
            RequestBody::Command { .. } => "command",
            RequestBody::Query { .. } => "query",
            RequestBody::ResetEvents { .. } => "reset-events",
        }
    }

    /// True for requests that get no response.
    #[must_use]
    pub fn is_one_way(&self) -> bool {
        matches!(self, RequestBody::ResetEvents { .. })
    }
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    /// The request's id.
    pub request_id: u64,
    /// What it produced, or why it failed.
    pub body: Result<ResponseBody, ClientError>,
}

/// What a request produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// The server's view of the cluster.
    Connect {
        /// The leader, if known.
        leader: Option<ReplicaId>,
        /// The servers a client may connect to.
        members: Vec<ReplicaId>,
    },
    /// The new session.
    Register {
        /// Its id (the register entry's index).
        session: SessionId,
        /// The timeout it was given.
        timeout_ms: u64,
        /// The leader.
        leader: Option<ReplicaId>,
        /// The servers a client may connect to.
        members: Vec<ReplicaId>,
    },
    /// The keep-alive applied.
    KeepAlive {
        /// The leader.
        leader: Option<ReplicaId>,
        /// The servers a client may connect to.
        members: Vec<ReplicaId>,
    },
    /// The session is closed.
    Unregister,
    /// A command applied (once, whatever the retries).
    Command {
        /// The index it applied at.
        index: LogIndex,
        /// The session's last event batch before the command applied: the client delivers
        /// every batch through it before completing this response.
        event_index: LogIndex,
        /// The state machine's output, or its error.
        output: Result<Bytes, ApplicationError>,
    },
    /// A query ran.
    Query {
        /// The index it ran at (the server's last applied).
        index: LogIndex,
        /// The session's last event batch when it ran.
        event_index: LogIndex,
        /// The state machine's output, or its error.
        output: Result<Bytes, ApplicationError>,
    },
}

/// One event a state machine published to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    /// The event's name (the client routes on it).
    pub name: String,
    /// Its payload.
    pub payload: Bytes,
}

/// The events published to one session while applying one entry (SPEC §F1), pushed
/// one-way by the server holding the client's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventBatch {
    /// The session.
    pub session: SessionId,
    /// The index of the entry that published them.
    pub event_index: LogIndex,
    /// The session's previous batch (or what the client acknowledged, if later): a client
    /// whose last batch is not this one has missed something and asks for a reset.
    pub previous_index: LogIndex,
    /// The events, in publishing order.
    pub events: Vec<SessionEvent>,
}

/// What a server sends to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToClient {
    /// The answer to a request.
    Response(ClientResponse),
    /// Session events.
    Publish(EventBatch),
}
