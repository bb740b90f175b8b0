//! The settings of one node: who it is, where its peers are, where its data lives, how
//! many shards and groups it runs, and the timeouts and storage options every group uses.
//! `config_file.rs` reads them from TOML; the `coracle server` flags override them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Groups a node runs at most.
pub const GROUPS_MAX: u32 = 1 << 16;
/// Shards a node runs at most.
pub const SHARDS_MAX: u32 = 256;

/// Where shard `shard` of a node whose shard 0 listens at `base` listens: the next
/// ports, on the same host.
#[must_use]
pub fn shard_address(base: SocketAddr, shard: u32) -> Option<SocketAddr> {
    let port = u16::try_from(u32::from(base.port()) + shard).ok()?;
    Some(SocketAddr::new(base.ip(), port))
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The cluster's name: peers and clients of another cluster are refused.
    pub cluster: String,
    /// This node's id (a member of `members`).
    pub node: u64,
    /// Every node of the cluster, this one included, by id: the address of its shard 0;
    /// shard `s` listens on the same host at port + `s`.
    pub members: BTreeMap<u64, SocketAddr>,
    /// Where this node keeps its logs (`group-<g>/` each).
    pub data_dir: PathBuf,
    /// Executors (threads), one per core.
    pub shards: u32,
    /// Raft groups; group `g` runs on shard `g % shards`.
    pub groups: u32,
    /// Pin shard `s` to CPU `s` (modulo the CPUs there are): on by default, for a node
    /// that has its machine to itself. Turn it off when several nodes share one machine
    /// (a local cluster): each would pin its shard 0 to CPU 0.
    pub pin_cores: bool,
    /// Bytes of DMA memory each executor registers (locked memory: see docs/GLOMMIO.md).
    pub io_memory_bytes: usize,
    /// How often the driver runs the replicas' timers.
    pub tick_ms: u64,
    /// Raft election timeout.
    pub election_timeout_ms: u64,
    /// Raft heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Session timeout given to clients that ask for 0.
    pub session_timeout_ms: u64,
    /// Segment size of every group's log.
    pub segment_size_bytes: u64,
    /// Flushes write but never sync: a crash loses acknowledged writes. Benchmarks only.
    pub unsynced_for_benchmarks_only: bool,
    /// This node joins a running cluster: its groups start outside their configuration
    /// (the other members are the voters) and wait for the leader to add them
    /// (`coracle admin join`). Without it, every member starts as a voter (bootstrap).
    pub join: bool,
    /// Peers are reached through this in-process network instead of TCP (a cluster in one
    /// process: tests, and the benchmark of the engine's own cost). Clients still connect
    /// over TCP. Never set from a file.
    pub local_network: Option<std::sync::Arc<coracle_net::local_transport::LocalNetwork>>,
}

impl NodeConfig {
    /// A single-shard, single-group node with the engine's timeouts.
    #[must_use]
    pub fn new(node: u64, members: BTreeMap<u64, SocketAddr>, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            cluster: "coracle".into(),
            node,
            members,
            data_dir,
            shards: 1,
            groups: 1,
            pin_cores: true,
            io_memory_bytes: 512 * 1024,
            tick_ms: 10,
            election_timeout_ms: coracle_engine::config::ELECTION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: coracle_engine::config::HEARTBEAT_INTERVAL_MS_DEFAULT,
            session_timeout_ms: coracle_engine::server::config::SESSION_TIMEOUT_MS_DEFAULT,
            segment_size_bytes: coracle_storage::segment_log::SEGMENT_SIZE_BYTES_DEFAULT,
            unsynced_for_benchmarks_only: false,
            join: false,
            local_network: None,
        }
    }

    /// Where shard `shard` of `node` listens.
    #[must_use]
    pub fn address(&self, node: u64, shard: u32) -> Option<SocketAddr> {
        shard_address(*self.members.get(&node)?, shard)
    }

    /// The shard that runs `group`.
    #[must_use]
    pub fn shard_of(&self, group: u32) -> u32 {
        group % self.shards
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// Names the setting (as in the configuration file) and why it is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| Err(ConfigError { key, reason });
        if self.cluster.is_empty()
            || self.cluster.len() > coracle_net::handshake::CLUSTER_NAME_SIZE_BYTES_MAX
        {
            return bad(
                "cluster",
                format!(
                    "must be 1 to {} bytes",
                    coracle_net::handshake::CLUSTER_NAME_SIZE_BYTES_MAX
                ),
            );
        }
        if self.join && self.members.len() < 2 {
            return bad(
                "join",
                "a joining node needs at least one other member to join".into(),
            );
        }
        if !self.members.contains_key(&self.node) {
            return bad(
                "node",
                format!("node {} is not one of the members", self.node),
            );
        }
        if self.members.len() > coracle_engine::membership::MEMBERS_MAX {
            return bad(
                "members",
                format!(
                    "at most {} members",
                    coracle_engine::membership::MEMBERS_MAX
                ),
            );
        }
        if self.shards == 0 || self.shards > SHARDS_MAX {
            return bad("shards", format!("must be 1 to {SHARDS_MAX}"));
        }
        if self.groups == 0 || self.groups > GROUPS_MAX {
            return bad("groups", format!("must be 1 to {GROUPS_MAX}"));
        }
        for (&node, address) in &self.members {
            if u32::from(address.port()) + self.shards - 1 > u32::from(u16::MAX) {
                return bad(
                    "members",
                    format!(
                        "node {node}'s port {} leaves no room for {} shards",
                        address.port(),
                        self.shards
                    ),
                );
            }
            if address.port() == 0 {
                return bad("members", format!("node {node} has port 0"));
            }
        }
        if self.tick_ms == 0 || self.tick_ms > self.heartbeat_interval_ms {
            return bad(
                "tick_ms",
                format!(
                    "must be 1 to heartbeat_interval_ms ({})",
                    self.heartbeat_interval_ms
                ),
            );
        }
        if self.heartbeat_interval_ms == 0 {
            return bad("heartbeat_interval_ms", "must be positive".into());
        }
        if self.election_timeout_ms < 2 * self.heartbeat_interval_ms {
            return bad(
                "election_timeout_ms",
                format!(
                    "must be at least twice heartbeat_interval_ms ({})",
                    self.heartbeat_interval_ms
                ),
            );
        }
        if self.session_timeout_ms == 0 {
            return bad("session_timeout_ms", "must be positive".into());
        }
        if self.segment_size_bytes < 64 * 1024 {
            return bad("segment_size_bytes", "must be at least 64 KiB".into());
        }
        if self.io_memory_bytes < 64 * 1024 {
            return bad("io_memory_bytes", "must be at least 64 KiB".into());
        }
        Ok(())
    }
}

/// A setting that is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name in the configuration file.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration key `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> NodeConfig {
        let members = (1..=3)
            .map(|node| {
                (
                    node,
                    SocketAddr::from(([127, 0, 0, 1], 7000 + 10 * node as u16)),
                )
            })
            .collect();
        NodeConfig::new(2, members, PathBuf::from("/tmp/x"))
    }

    #[test]
    fn addresses_follow_the_shard_and_groups_spread_over_shards() {
        let mut config = three();
        config.shards = 4;
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.address(3, 2),
            Some(SocketAddr::from(([127, 0, 0, 1], 7032)))
        );
        assert_eq!(config.address(9, 0), None);
        assert_eq!(config.shard_of(9), 1);
    }

    #[test]
    fn a_wrong_setting_is_named() {
        let mut config = three();
        config.node = 7;
        assert_eq!(config.validate().map_err(|error| error.key), Err("node"));
        let mut config = three();
        config.shards = 0;
        assert_eq!(config.validate().map_err(|error| error.key), Err("shards"));
        let mut config = three();
        config.election_timeout_ms = config.heartbeat_interval_ms;
        assert_eq!(
            config.validate().map_err(|error| error.key),
            Err("election_timeout_ms")
        );
        let mut config = three();
        config
            .members
            .insert(3, SocketAddr::from(([127, 0, 0, 1], 65535)));
        config.shards = 2;
        assert_eq!(config.validate().map_err(|error| error.key), Err("members"));
    }
}
