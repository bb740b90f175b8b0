//! The node's configuration file (TOML). Every key is optional except `node` and
//! `members`, which may come from the command line instead; unknown keys are errors, so a
//! misspelt setting is never silently ignored. An example, with the defaults:
//!
//! ```toml
//! cluster = "coracle"
//! node = 1
//! data_dir = "data/node-1"
//! shards = 1
//! groups = 1
//! pin_cores = true       # shard s on CPU s; false when nodes share a machine
//! io_memory_bytes = 524288
//! tick_ms = 10
//! election_timeout_ms = 750
//! heartbeat_interval_ms = 250
//! session_timeout_ms = 5000
//! segment_size_bytes = 33554432
//! join = false           # true: join a running cluster (see `coracle admin join`)
//!
//! [members]            # every node's shard-0 address; shard s listens on port + s
//! 1 = "127.0.0.1:7000"
//! 2 = "127.0.0.1:7010"
//! 3 = "127.0.0.1:7020"
//! ```

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::node_config::NodeConfig;

/// The file as written; every field optional so that flags can fill the rest.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// See [`NodeConfig::cluster`].
    pub cluster: Option<String>,
    /// See [`NodeConfig::node`].
    pub node: Option<u64>,
    /// Node id (as a string key) to `host:port`.
    pub members: Option<BTreeMap<String, String>>,
    /// See [`NodeConfig::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`NodeConfig::shards`].
    pub shards: Option<u32>,
    /// See [`NodeConfig::groups`].
    pub groups: Option<u32>,
    /// See [`NodeConfig::pin_cores`].
    pub pin_cores: Option<bool>,
    /// See [`NodeConfig::io_memory_bytes`].
    pub io_memory_bytes: Option<usize>,
    /// See [`NodeConfig::tick_ms`].
    pub tick_ms: Option<u64>,
    /// See [`NodeConfig::election_timeout_ms`].
    pub election_timeout_ms: Option<u64>,
    /// See [`NodeConfig::heartbeat_interval_ms`].
    pub heartbeat_interval_ms: Option<u64>,
    /// See [`NodeConfig::session_timeout_ms`].
    pub session_timeout_ms: Option<u64>,
    /// See [`NodeConfig::segment_size_bytes`].
    pub segment_size_bytes: Option<u64>,
    /// See [`NodeConfig::join`].
    pub join: Option<bool>,
}

impl ConfigFile {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// The file cannot be read, or is not valid TOML of this shape (the message names the
    /// line, column and key).
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        ConfigFile::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// Not valid TOML of this shape.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }

    /// Lays `other`'s settings over these (flags over the file).
    #[must_use]
    pub fn overridden_by(self, other: ConfigFile) -> ConfigFile {
        ConfigFile {
            cluster: other.cluster.or(self.cluster),
            node: other.node.or(self.node),
            members: other.members.or(self.members),
            data_dir: other.data_dir.or(self.data_dir),
            shards: other.shards.or(self.shards),
            groups: other.groups.or(self.groups),
            pin_cores: other.pin_cores.or(self.pin_cores),
            io_memory_bytes: other.io_memory_bytes.or(self.io_memory_bytes),
            tick_ms: other.tick_ms.or(self.tick_ms),
            election_timeout_ms: other.election_timeout_ms.or(self.election_timeout_ms),
            heartbeat_interval_ms: other.heartbeat_interval_ms.or(self.heartbeat_interval_ms),
            session_timeout_ms: other.session_timeout_ms.or(self.session_timeout_ms),
            segment_size_bytes: other.segment_size_bytes.or(self.segment_size_bytes),
            join: other.join.or(self.join),
        }
    }

    /// The node's configuration: defaults where nothing was said, then checked.
    ///
    /// # Errors
    /// A required key is missing, a member's id or address does not parse, or a setting
    /// is out of range; the message names the key.
    pub fn into_node_config(self) -> Result<NodeConfig, String> {
        let node = self.node.ok_or("configuration key `node` is required")?;
        let members = parse_members(
            &self
                .members
                .ok_or("configuration key `members` is required")?,
        )?;
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("data/node-{node}")));
        let mut config = NodeConfig::new(node, members, data_dir);
        let set = |target: &mut u64, value: Option<u64>| {
            if let Some(value) = value {
                *target = value;
            }
        };
        if let Some(cluster) = self.cluster {
            config.cluster = cluster;
        }
        config.shards = self.shards.unwrap_or(config.shards);
        config.groups = self.groups.unwrap_or(config.groups);
        config.pin_cores = self.pin_cores.unwrap_or(config.pin_cores);
        config.join = self.join.unwrap_or(config.join);
        config.io_memory_bytes = self.io_memory_bytes.unwrap_or(config.io_memory_bytes);
        set(&mut config.tick_ms, self.tick_ms);
        set(&mut config.election_timeout_ms, self.election_timeout_ms);
        set(
            &mut config.heartbeat_interval_ms,
            self.heartbeat_interval_ms,
        );
        set(&mut config.session_timeout_ms, self.session_timeout_ms);
        set(&mut config.segment_size_bytes, self.segment_size_bytes);
        config.validate().map_err(|error| error.to_string())?;
        Ok(config)
    }
}

/// Node ids to addresses, each resolved now.
///
/// # Errors
/// Names the member whose id or address is wrong.
pub fn parse_members(
    members: &BTreeMap<String, String>,
) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let mut parsed = BTreeMap::new();
    for (id, address) in members {
        let node: u64 = id
            .parse()
            .map_err(|_| format!("configuration key `members.{id}`: a node id must be a number"))?;
        let resolved = address
            .to_socket_addrs()
            .map_err(|error| {
                format!("configuration key `members.{id}`: address {address:?}: {error}")
            })?
            .next()
            .ok_or_else(|| {
                format!("configuration key `members.{id}`: {address:?} resolves to nothing")
            })?;
        parsed.insert(node, resolved);
    }
    Ok(parsed)
}

/// `1=host:port,2=host:port` as given on the command line.
///
/// # Errors
/// A part without `=`.
pub fn parse_member_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            part.split_once('=')
                .map(|(id, address)| (id.trim().to_string(), address.trim().to_string()))
                .ok_or_else(|| format!("--members: {part:?} is not id=host:port"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        cluster = "east"
        node = 2
        shards = 2
        groups = 8
        [members]
        1 = "127.0.0.1:7000"
        2 = "127.0.0.1:7010"
        3 = "127.0.0.1:7020"
    "#;

    #[test]
    fn a_file_gives_a_checked_configuration_and_flags_override_it() {
        let file = ConfigFile::parse(EXAMPLE).expect("parses");
        let flags = ConfigFile {
            groups: Some(16),
            ..ConfigFile::default()
        };
        let config = file.overridden_by(flags).into_node_config().expect("valid");
        assert_eq!((config.node, config.shards, config.groups), (2, 2, 16));
        assert_eq!(config.cluster, "east");
        assert_eq!(config.members.len(), 3);
        assert_eq!(config.data_dir, PathBuf::from("data/node-2"));
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = ConfigFile::parse("nodes = 1").expect_err("unknown key");
        assert!(unknown.contains("nodes"), "{unknown}");
        let wrong_type = ConfigFile::parse("shards = \"two\"").expect_err("type");
        assert!(wrong_type.contains("shards"), "{wrong_type}");
        let missing = ConfigFile::default()
            .into_node_config()
            .expect_err("node missing");
        assert!(missing.contains("`node`"), "{missing}");
        let bad_id = ConfigFile::parse("node = 1\n[members]\none = \"127.0.0.1:1\"")
            .expect("parses")
            .into_node_config()
            .expect_err("bad id");
        assert!(bad_id.contains("members.one"), "{bad_id}");
        let out_of_range = ConfigFile::parse(EXAMPLE.replace("shards = 2", "shards = 0").as_str())
            .expect("parses")
            .into_node_config()
            .expect_err("zero shards");
        assert!(out_of_range.contains("`shards`"), "{out_of_range}");
        assert!(parse_member_list("1=a:1,2").is_err());
    }
}
