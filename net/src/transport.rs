//! How a shard reaches the same shard on the other nodes, whatever carries the frames.
//!
//! Two carriers implement [`Transport`]: [`TcpTransport`](crate::tcp_transport::TcpTransport),
//! the peer links over sockets that a real node uses, and
//! [`LocalTransport`](crate::local_transport::LocalTransport), which hands frames to another
//! executor of the same process, so that a whole cluster runs in one process without
//! sockets (tests, and the benchmark of the engine's own overhead).
//!
//! Only the sending half is abstracted. Receiving differs too much to share a shape: TCP
//! frames arrive on connections the shard's listener accepts after a hello, local frames
//! in the endpoint's mailbox ([`LocalReceiver`](crate::local_transport::LocalReceiver)).
//! Both end as a [`Frame`](crate::frame::Frame) from a known node, which the shard decodes
//! the same way.
//!
//! The trait is object-safe (`&mut dyn FnMut` rather than a generic closure), so a shard
//! holds a `Box<dyn Transport>` instead of growing a type parameter: one indirect call per
//! message is nothing next to encoding it.

use std::net::SocketAddr;

pub use crate::peer_link::SendError;

/// One shard's way to reach the same shard on other nodes. Not `Send`: one per executor,
/// used through `&self` from that executor's tasks.
///
/// Sends never wait. Raft resends what is lost and stale messages are worse than none, so
/// a frame that cannot go now is dropped, and the error says why.
pub trait Transport {
    /// Queues one frame of `kind` for `group` to node `to`; `write_payload` appends its
    /// payload (it is called at most once).
    ///
    /// # Errors
    /// `NotConnected` when `to` is not a peer or cannot be reached now, `Full` when its
    /// queue is over its cap, `TooLarge` when the payload is over the cap: the frame is
    /// dropped in each case.
    fn send(
        &self,
        to: u64,
        kind: u8,
        group: u32,
        write_payload: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Result<(), SendError>;

    /// Starts reaching `node` at `address` (a node joining the cluster, or every peer at
    /// start). Adding a peer already known at the same address changes nothing; at another
    /// address, the old way to it is dropped and a new one started. This node itself is
    /// not a peer (asserted).
    fn add_peer(&self, node: u64, address: SocketAddr);

    /// Stops reaching `node` (it left the cluster); later sends to it are `NotConnected`.
    fn remove_peer(&self, node: u64);

    /// Whether a frame for `to` would be queued now (the queue's room aside).
    fn is_connected(&self, to: u64) -> bool;
}
