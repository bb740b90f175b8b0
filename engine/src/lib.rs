//! coracle-engine: the pure, deterministic Raft core of coracle.
//!
//! A [`Replica`] takes inputs (`tick`, `on_message`, `submit`, `on_persisted`,
//! `on_applied`) and appends every effect to a caller-owned [`Actions`] buffer. It never
//! touches a clock, a socket, a file, a thread or a global random source, so the same code
//! runs under the shard runtime and under the simulator.

pub mod action;
pub mod client;
pub mod config;
pub mod entry;
pub mod entry_codec;
pub mod invariants;
pub mod kv;
pub mod log;
pub mod membership;
pub mod message;
pub mod prng;
pub mod progress;
pub mod replica;
pub mod role;
pub mod server;
pub mod session;
pub mod state_machine;
pub mod types;

pub use action::{Action, Actions, HardState};
pub use config::{PlantedBugs, ReplicaConfig};
pub use entry::{Entry, EntryBody, EntryKind};
pub use log::RaftLog;
pub use membership::{
    Configuration, ConfigurationError, Member, MemberStatus, MemberType, MembershipChange,
};
pub use message::{Envelope, Message};
pub use prng::Prng;
pub use replica::{Replica, Restored, Role, SubmitError};
pub use types::{LogIndex, PersistId, ReplicaId, Term, Time};

#[cfg(test)]
mod tests;
