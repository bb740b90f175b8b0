//! [`Transport`] over TCP: one [`PeerLink`] per peer, each with its bounded queue, its
//! writer task and its reconnects. Receiving stays with the shard's listener, which
//! accepts each peer's own link after its hello.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::peer_link::{LinkStats, PeerLink, PeerLinkOptions};
use crate::transport::{SendError, Transport};

/// Peers one transport links to at most: a bound on tasks and sockets, far above any
/// cluster's membership (voters, passive and reserve members together).
pub const PEERS_MAX: usize = 1024;

/// See the module documentation. Dropping it drops every link (their tasks stop and their
/// sockets close).
pub struct TcpTransport {
    options: PeerLinkOptions,
    links: RefCell<BTreeMap<u64, PeerLink>>,
}

impl TcpTransport {
    /// A transport with no peers yet; every link it starts uses `options` (this node, this
    /// shard, the cluster's name, queue cap, back-off).
    #[must_use]
    pub fn new(options: PeerLinkOptions) -> TcpTransport {
        TcpTransport {
            options,
            links: RefCell::new(BTreeMap::new()),
        }
    }

    /// The options every link uses.
    #[must_use]
    pub fn options(&self) -> &PeerLinkOptions {
        &self.options
    }

    /// The peers, in order.
    #[must_use]
    pub fn peers(&self) -> Vec<u64> {
        self.links.borrow().keys().copied().collect()
    }

    /// The counters of the link to `to`, if it is a peer.
    #[must_use]
    pub fn stats(&self, to: u64) -> Option<LinkStats> {
        self.links.borrow().get(&to).map(PeerLink::stats)
    }
}

impl Transport for TcpTransport {
    fn send(
        &self,
        to: u64,
        kind: u8,
        group: u32,
        write_payload: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Result<(), SendError> {
        let links = self.links.borrow();
        let link = links.get(&to).ok_or(SendError::NotConnected)?;
        link.send(kind, group, write_payload)
    }

    /// Starts a link on the current glommio executor (it must run on one).
    fn add_peer(&self, node: u64, address: SocketAddr) {
        assert!(
            node != self.options.node,
            "node {node} cannot be its own peer"
        );
        let mut links = self.links.borrow_mut();
        if links
            .get(&node)
            .is_some_and(|link| link.address() == address)
        {
            return; // Restarting it would drop what its queue holds, for nothing.
        }
        // Inserting drops a link to an old address: its task stops, its socket closes.
        links.insert(node, PeerLink::start(self.options.clone(), node, address));
        assert!(links.len() <= PEERS_MAX, "more than {PEERS_MAX} peers");
    }

    fn remove_peer(&self, node: u64) {
        // Dropping the link cancels its task and closes its socket.
        self.links.borrow_mut().remove(&node);
    }

    fn is_connected(&self, to: u64) -> bool {
        self.links
            .borrow()
            .get(&to)
            .is_some_and(PeerLink::is_connected)
    }
}
