//! A cluster of nodes inside one process, on loopback, each with its own data directory:
//! what the load generator starts when no cluster is given, and what tests run against.
//! The nodes talk over real TCP sockets and write real segment files; only the process is
//! shared.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use coracle_engine::state_machine::StateMachine;
use coracle_net::local_transport::{LocalNetwork, LocalNetworkOptions};

use crate::node::Node;
use crate::node_config::NodeConfig;

/// See the module documentation.
pub struct LocalCluster {
    /// Each node's configuration, by id (1, 2, ...).
    pub configs: BTreeMap<u64, NodeConfig>,
    nodes: BTreeMap<u64, Node>,
}

impl LocalCluster {
    /// Configurations for `count` nodes with `shards` shards each, on free loopback ports,
    /// keeping their data under `root/node-<id>`. Adjust them before [`LocalCluster::start`].
    ///
    /// # Errors
    /// No free ports were found.
    pub fn configure(count: u64, shards: u32, root: &Path) -> Result<LocalCluster, String> {
        let addresses = free_addresses(count as usize, shards)?;
        let members: BTreeMap<u64, SocketAddr> = (1..=count).zip(addresses).collect();
        let configs = (1..=count)
            .map(|node| {
                let data_dir: PathBuf = root.join(format!("node-{node}"));
                let mut config = NodeConfig::new(node, members.clone(), data_dir);
                config.shards = shards;
                // The nodes share this machine's CPUs: pinning would stack them on CPU 0.
                config.pin_cores = false;
                (node, config)
            })
            .collect();
        Ok(LocalCluster {
            configs,
            nodes: BTreeMap::new(),
        })
    }

    /// Peers of every node talk through one in-process network instead of TCP (clients
    /// still use TCP); returns it, for partitions.
    pub fn use_local_network(&mut self) -> std::sync::Arc<LocalNetwork> {
        let network = LocalNetwork::new(LocalNetworkOptions::default());
        for config in self.configs.values_mut() {
            config.local_network = Some(std::sync::Arc::clone(&network));
        }
        network
    }

    /// Starts every node not running, making machines with `machine`.
    ///
    /// # Errors
    /// The first node that fails to start.
    pub fn start<S, F>(&mut self, machine: F) -> Result<(), String>
    where
        S: StateMachine,
        F: Fn(u32) -> S + Send + Sync + Clone + 'static,
    {
        let ids: Vec<u64> = self.configs.keys().copied().collect();
        for id in ids {
            self.start_node(id, machine.clone())?;
        }
        Ok(())
    }

    /// Starts node `id` (again).
    ///
    /// # Errors
    /// It is running already, or it fails to start.
    pub fn start_node<S, F>(&mut self, id: u64, machine: F) -> Result<(), String>
    where
        S: StateMachine,
        F: Fn(u32) -> S + Send + Sync + 'static,
    {
        if self.nodes.contains_key(&id) {
            return Err(format!("node {id} is running"));
        }
        let config = self
            .configs
            .get(&id)
            .ok_or_else(|| format!("no node {id}"))?
            .clone();
        let node = Node::start(config, machine).map_err(|reason| format!("node {id}: {reason}"))?;
        self.nodes.insert(id, node);
        Ok(())
    }

    /// Stops node `id` (its threads end; its files stay).
    ///
    /// # Errors
    /// A shard of it had failed.
    pub fn stop_node(&mut self, id: u64) -> Result<(), String> {
        match self.nodes.remove(&id) {
            Some(node) => node.stop(),
            None => Ok(()),
        }
    }

    /// The address of every node's shard 0, for clients.
    #[must_use]
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.configs
            .values()
            .filter_map(|config| config.members.get(&config.node).copied())
            .collect()
    }

    /// The cluster's name.
    #[must_use]
    pub fn cluster_name(&self) -> String {
        self.configs
            .values()
            .next()
            .map(|config| config.cluster.clone())
            .unwrap_or_default()
    }
}

/// `count` loopback addresses whose ports `port..port + shards` are all free now.
///
/// # Errors
/// None found after many tries.
pub fn free_addresses(count: usize, shards: u32) -> Result<Vec<SocketAddr>, String> {
    let mut found: Vec<SocketAddr> = Vec::new();
    let mut held: Vec<TcpListener> = Vec::new();
    // Ask the kernel for a free port, then check that the ports after it are free too;
    // keep them bound until all are found so that two nodes do not get the same ones.
    for _ in 0..1000 {
        if found.len() == count {
            return Ok(found);
        }
        let first = TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
        let base = first.local_addr().map_err(|error| error.to_string())?;
        let mut range = vec![first];
        let all_free = (1..shards).all(|shard| {
            let Some(address) = crate::node_config::shard_address(base, shard) else {
                return false;
            };
            match TcpListener::bind(address) {
                Ok(listener) => {
                    range.push(listener);
                    true
                }
                Err(_) => false,
            }
        });
        if all_free {
            found.push(base);
            held.extend(range);
        }
    }
    Err(format!("no {count} free ranges of {shards} loopback ports"))
}
