//! The simulated network between servers and clients: delay, loss, duplication,
//! reordering (independent delays), and partitions (symmetric or one-way).

use std::collections::BTreeSet;

use coracle_engine::server::{ConnectionId, PeerMessage};
use coracle_engine::session::{ClientRequest, ToClient};
use coracle_engine::Prng;

/// Where a message goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// A server, by position in the simulator's node list.
    Node(usize),
    /// A client, by position in the simulator's client list.
    Client(usize),
}

/// Everything that travels over the simulated network.
#[derive(Clone, Debug)]
pub enum Packet {
    /// Between servers: Raft, and client requests forwarded to the leader.
    Peer(PeerMessage),
    /// A client's request to a server, on one of the client's connections.
    Request {
        /// The connection (a client that starts over gets a new one).
        connection: ConnectionId,
        /// The request.
        request: ClientRequest,
    },
    /// A server's response or event batch to a client, on the connection it belongs to.
    ToClient {
        /// The connection.
        connection: ConnectionId,
        /// The message.
        message: ToClient,
    },
}

/// Loss, duplication and delay settings; partitions as blocked directed links.
#[derive(Clone, Debug)]
pub struct Network {
    /// Percent of messages dropped (0–100).
    pub drop_percent: u64,
    /// Percent of messages delivered twice.
    pub duplicate_percent: u64,
    /// Smallest one-way delay in microseconds.
    pub delay_us_min: u64,
    /// Largest ordinary one-way delay in microseconds.
    pub delay_us_max: u64,
    /// Percent of messages that take a long detour (up to `spike_us_max`).
    pub spike_percent: u64,
    /// Longest detour in microseconds.
    pub spike_us_max: u64,
    /// Directed node-to-node links that deliver nothing.
    blocked: BTreeSet<(usize, usize)>,
}

impl Network {
    /// A reliable network with the given delay range.
    #[must_use]
    pub fn new(delay_us_min: u64, delay_us_max: u64) -> Network {
        assert!(delay_us_min <= delay_us_max);
        Network {
            drop_percent: 0,
            duplicate_percent: 0,
            delay_us_min,
            delay_us_max,
            spike_percent: 0,
            spike_us_max: 0,
            blocked: BTreeSet::new(),
        }
    }

    /// Delivery delays for one message: none if dropped, two if duplicated.
    pub fn route(&self, prng: &mut Prng, from: Endpoint, to: Endpoint) -> Vec<u64> {
        if !self.connected(from, to) || prng.chance(self.drop_percent, 100) {
            return Vec::new();
        }
        let copies = if prng.chance(self.duplicate_percent, 100) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let mut delay = prng.range(self.delay_us_min, self.delay_us_max + 1);
                if prng.chance(self.spike_percent, 100) {
                    delay += prng.range(0, self.spike_us_max + 1);
                }
                delay
            })
            .collect()
    }

    /// True if a message from `from` can reach `to` now. Clients always reach servers.
    #[must_use]
    pub fn connected(&self, from: Endpoint, to: Endpoint) -> bool {
        match (from, to) {
            (Endpoint::Node(a), Endpoint::Node(b)) => !self.blocked.contains(&(a, b)),
            _ => true,
        }
    }

    /// Blocks traffic from every node in `side` to every node outside it, and back
    /// unless `one_way`.
    pub fn partition(&mut self, side: &[usize], nodes_count: usize, one_way: bool) {
        for &a in side {
            for b in 0..nodes_count {
                if !side.contains(&b) {
                    self.blocked.insert((a, b));
                    if !one_way {
                        self.blocked.insert((b, a));
                    }
                }
            }
        }
    }

    /// Blocks one directed link.
    pub fn block(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// True if any link is blocked.
    #[must_use]
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_block_both_ways_unless_one_way() {
        let mut network = Network::new(10, 20);
        network.partition(&[0], 3, false);
        assert!(!network.connected(Endpoint::Node(0), Endpoint::Node(1)));
        assert!(!network.connected(Endpoint::Node(2), Endpoint::Node(0)));
        assert!(network.connected(Endpoint::Node(1), Endpoint::Node(2)));
        network.heal();
        network.partition(&[0], 3, true);
        assert!(!network.connected(Endpoint::Node(0), Endpoint::Node(1)));
        assert!(network.connected(Endpoint::Node(1), Endpoint::Node(0)));
        let mut prng = Prng::new(1);
        assert!(network
            .route(&mut prng, Endpoint::Node(0), Endpoint::Node(1))
            .is_empty());
        assert_eq!(
            network
                .route(&mut prng, Endpoint::Node(1), Endpoint::Node(0))
                .len(),
            1
        );
    }
}
