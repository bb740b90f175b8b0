//! What a user's replicated state machine runs on (SPEC §E): typed operations and their
//! codec, commits with release tracking, the context (clock, sessions, deterministic
//! scheduling, event publishing), the sessions every server derives from the log, and the
//! host that applies committed entries exactly once per (session, sequence).

pub mod codec;
pub mod commit;
pub mod context;
pub mod host;
pub mod machine;
pub mod scheduler;
pub mod sessions;

pub use codec::{decode_value, encode_command, encode_query, encode_value, Codec, Command, Query};
pub use commit::{Commit, Retained, Retention};
pub use context::{Context, ContextError, QueryContext};
pub use host::{Applied, HostStats, Outcome, StateMachineHost};
pub use machine::{Operations, StateMachine};
pub use scheduler::{DueTask, Scheduler, TaskId};
pub use sessions::{CommandResult, ServerSession, SessionState, Sessions};

#[cfg(test)]
mod host_tests;
#[cfg(test)]
pub(crate) mod test_machine;
