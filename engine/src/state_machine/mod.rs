//! What a user's replicated state machine runs on (SPEC §E), built up by issue #5.
//!
//! So far: the deterministic scheduler and clock ([`scheduler`]).

pub mod scheduler;

pub use scheduler::{DueTask, Scheduler, TaskId};
