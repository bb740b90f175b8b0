//! Client sessions as the log and the wire see them (SPEC §B5, §C, §D, §F, §I): the
//! identifiers, the operations a session writes into the log, and the requests, responses
//! and pushes between a client and the server it is connected to.
//!
//! The Raft core knows none of this: a session's register, keep-alive, unregister and
//! command entries all travel as the payload of an [`EntryBody::Command`] entry, encoded
//! by [`LogOperation`]. Copycat made each of them its own log entry type; keeping them
//! inside one opaque kind keeps the replica (and storage) ignorant of sessions.
//!
//! [`EntryBody::Command`]: crate::entry::EntryBody::Command

pub mod ids;
pub mod log_operation;
pub mod protocol;
pub mod reader;
pub mod wire;

pub use ids::{ClientId, SessionId};
pub use log_operation::LogOperation;
pub use protocol::{
    ApplicationError, ClientError, ClientRequest, ClientResponse, CommandConsistency, EventBatch,
    QueryConsistency, RequestBody, ResponseBody, SessionEvent, ToClient,
};
pub use reader::{DecodeError, Reader};
