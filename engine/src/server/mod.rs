//! A server of one group as a pure state machine: the Raft replica, the state-machine host
//! and the session layer that serves clients (SPEC §B–§F, §I). The shard runtime (issue #6)
//! and the simulator drive it the same way.

pub mod config;
pub mod expiry;
pub mod output;
pub mod peer_message;
pub mod queries;
pub mod requests;
#[allow(clippy::module_inception)]
pub mod server;

pub use config::ServerConfig;
pub use output::{ConnectionId, ServerOutput};
pub use peer_message::PeerMessage;
pub use server::{Server, ServerStats};
