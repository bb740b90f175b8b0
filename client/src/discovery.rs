//! Start-up: which node answers at each address, and how many shards it runs.
//!
//! The user names nodes by address; the engine names them by id (`ReplicaId(n)` is node
//! `n`). The client connects to every address at once, and each handshake reply names the
//! node and its shard layout. Those probe connections are closed again: the session then
//! opens its own connection to the shard of its group (`group % shards`, at base port +
//! shard) of the one server it talks to.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use coracle_engine::ReplicaId;
use coracle_net::Hello;

use crate::error::{AddressFailure, Error};
use crate::link::{self, OpenError};
use crate::options::Log;

/// Where a node is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Its shard 0 address.
    pub base: SocketAddr,
    /// How many shards it runs.
    pub shards: u32,
    /// How many groups it runs (`0..groups`).
    pub groups: u32,
}

impl Node {
    /// The address and number of the shard that holds `group`; `None` if the port would
    /// pass 65535 (a node configured that way cannot be reached for this group).
    pub fn shard_of(&self, group: u32) -> Option<(SocketAddr, u32)> {
        assert!(self.shards > 0, "the handshake decoder refuses zero shards");
        let shard = group % self.shards;
        let offset = u16::try_from(shard).ok()?;
        let port = self.base.port().checked_add(offset)?;
        Some((SocketAddr::new(self.base.ip(), port), shard))
    }
}

/// What one address told us.
enum Probe {
    Node {
        node: u64,
        base: SocketAddr,
        shards: u32,
        groups: u32,
    },
    Refused(String),
    Failed(String),
}

/// Asks every address who it is, all at once.
///
/// # Errors
/// [`Error::Refused`] if no address accepted and one refused (the reason is the cluster's
/// answer, usually a wrong cluster name); [`Error::Unreachable`] if none answered at all.
pub(crate) async fn discover(
    addresses: &[String],
    hello: &Hello,
    timeout: Duration,
    log: &Log,
) -> Result<BTreeMap<ReplicaId, Node>, Error> {
    let probes: Vec<_> = addresses
        .iter()
        .map(|address| {
            let (address, hello) = (address.clone(), hello.clone());
            glommio::spawn_local(async move {
                let probe = probe(&address, &hello, timeout).await;
                (address, probe)
            })
        })
        .collect();
    let mut nodes = BTreeMap::new();
    let mut refusals = Vec::new();
    let mut failures = Vec::new();
    for task in probes {
        let (address, probe) = task.await;
        match probe {
            Probe::Node {
                node,
                base,
                shards,
                groups,
            } => {
                let found = Node {
                    base,
                    shards,
                    groups,
                };
                match nodes.get(&ReplicaId(node)) {
                    None => {
                        nodes.insert(ReplicaId(node), found);
                    }
                    Some(known) if *known == found => {}
                    Some(known) => log(&format!(
                        "node {node} answers at {address} and at {}; keeping the latter",
                        known.base
                    )),
                }
            }
            Probe::Refused(reason) => refusals.push(AddressFailure { address, reason }),
            Probe::Failed(reason) => failures.push(AddressFailure { address, reason }),
        }
    }
    if nodes.is_empty() {
        if let Some(refusal) = refusals.into_iter().next() {
            return Err(Error::Refused {
                address: refusal.address,
                reason: refusal.reason,
            });
        }
        return Err(Error::Unreachable { failures });
    }
    // Some nodes answered: the others may be down for now, but a refusal means a wrong
    // address or name in the configuration, worth a line.
    for refusal in refusals {
        log(&format!(
            "{} refused the connection: {}",
            refusal.address, refusal.reason
        ));
    }
    Ok(nodes)
}

/// One address: each of its resolved socket addresses in turn until one answers.
async fn probe(address: &str, hello: &Hello, timeout: Duration) -> Probe {
    // Resolution blocks the executor; it happens once, at start-up.
    let resolved: Vec<SocketAddr> = match address.to_socket_addrs() {
        Ok(resolved) => resolved.collect(),
        Err(error) => return Probe::Failed(format!("cannot resolve: {error}")),
    };
    let mut last = Probe::Failed("resolves to no address".into());
    for socket_address in resolved {
        last = match link::open(socket_address, hello, timeout).await {
            Ok(opened) => {
                let accepted = opened.accepted;
                // Drops the probe connection: the session opens its own to its shard.
                drop(opened);
                let Some(port) = socket_address
                    .port()
                    .checked_sub(u16::try_from(accepted.shard).unwrap_or(u16::MAX))
                else {
                    return Probe::Failed(format!(
                        "shard {} answered on port {}, below its base",
                        accepted.shard,
                        socket_address.port()
                    ));
                };
                return Probe::Node {
                    node: accepted.node,
                    base: SocketAddr::new(socket_address.ip(), port),
                    shards: accepted.shards,
                    groups: accepted.groups,
                };
            }
            Err(OpenError::Refused(reason)) => return Probe::Refused(reason),
            Err(OpenError::Failed(reason)) => Probe::Failed(reason),
        };
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_lives_on_its_shard_port() {
        let node = Node {
            groups: 1,
            base: "10.0.0.1:7000".parse().expect("address"),
            shards: 4,
        };
        assert_eq!(
            node.shard_of(6),
            Some(("10.0.0.1:7002".parse().expect("address"), 2))
        );
        assert_eq!(
            node.shard_of(8),
            Some(("10.0.0.1:7000".parse().expect("address"), 0))
        );
        let high = Node {
            groups: 1,
            base: "10.0.0.1:65535".parse().expect("address"),
            shards: 2,
        };
        assert_eq!(high.shard_of(1), None, "the port would overflow");
    }
}
