//! coracle-server: the shard-per-core runtime. A node runs one glommio executor per shard;
//! group `g` lives on shard `g % shards` on every node, and each shard has its own
//! listener, its own links to the same shard on its peers, and its own groups' logs, so a
//! group's traffic never crosses cores (DESIGN.md "Thread-per-core").
//!
//! - `node.rs` starts the shards; `shard.rs` is the driver loop of one shard;
//! - `group.rs` pairs a group's pure server with its segment log;
//! - `listener.rs` accepts peers and clients; `client_conn.rs` writes to a client;
//! - `inbox.rs` carries inputs from socket tasks to the driver; `clock.rs` reads time;
//! - `node_config.rs` holds the settings.

pub mod client_conn;
pub mod clock;
pub mod commit_stages;
pub mod config_file;
pub mod group;
pub mod inbox;
mod listener;
pub mod local_cluster;
pub mod node;
pub mod node_config;
pub mod peers_file;
pub mod probe;
pub mod shard;

pub use node::Node;
pub use node_config::{ConfigError, NodeConfig};
