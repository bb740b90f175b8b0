//! What a [`ClientSession`](crate::client::ClientSession) tells its driver and its user.

use bytes::Bytes;

use crate::session::{ApplicationError, ClientError, ClientRequest, SessionEvent, SessionId};
use crate::types::{LogIndex, ReplicaId};

/// Names one submitted operation; ids grow in submission order, and completions come in
/// that order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationId(pub u64);

/// A completed operation's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The log index it applied at (a command) or ran at (a query).
    pub index: LogIndex,
    /// The state machine's output, or the error it returned for this operation.
    pub output: Result<Bytes, ApplicationError>,
}

/// The client's state as its user sees it (SPEC §B3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// A session is open and known alive.
    Connected,
    /// Connecting, registering, recovering, or the session is unstable (no server answered
    /// for a while): ordering and exactly-once guarantees may be lost.
    Suspended,
    /// Not opened yet, or closed for good.
    Closed,
}

/// Why a submission was refused. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The client is closed or closing (SPEC §B6: `ClosedSession`).
    Closed,
    /// [`PENDING_OPERATIONS_MAX`](crate::client::PENDING_OPERATIONS_MAX) operations are
    /// already pending: wait for some to complete.
    TooManyPending {
        /// The bound.
        pending_max: usize,
    },
}

impl SubmitError {
    /// The wire error closest to this refusal, for callers that report only `ClientError`s
    /// (`None` for back-pressure, which has no wire equivalent).
    #[must_use]
    pub fn as_client_error(&self) -> Option<ClientError> {
        match self {
            SubmitError::Closed => Some(ClientError::ClosedSession),
            SubmitError::TooManyPending { .. } => None,
        }
    }
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::Closed => write!(f, "the session is closed"),
            SubmitError::TooManyPending { pending_max } => {
                write!(f, "{pending_max} operations are already pending")
            }
        }
    }
}

impl std::error::Error for SubmitError {}

/// One effect, in emission order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Deliver `request` to server `to` (opening a connection if there is none); its answer
    /// comes back through `on_message`, a failed connection through `on_connection_lost`.
    Send {
        /// The server.
        to: ReplicaId,
        /// The request.
        request: ClientRequest,
    },
    /// The client stopped using `server`: the driver may close the connection to it.
    /// Answers that still come from it are ignored.
    Disconnect {
        /// The server.
        server: ReplicaId,
    },
    /// An operation finished; completions come in submission order.
    Complete {
        /// The operation.
        operation: OperationId,
        /// Its outcome, or why it failed.
        result: Result<Completion, ClientError>,
    },
    /// A session event for the user: each exactly once, in order (SPEC §F2–§F3).
    Event {
        /// The session it was published to.
        session: SessionId,
        /// The index of the entry that published it.
        event_index: LogIndex,
        /// The event.
        event: SessionEvent,
    },
    /// The client's state changed (emitted only on a change).
    StateChanged(ClientState),
    /// A session was registered: the first one, or a new one after recovery (its id is
    /// different, and guarantees across the two are lost).
    SessionOpened {
        /// The session.
        session: SessionId,
    },
}
