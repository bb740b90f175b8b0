//! coracle-net: the wire. A frame is a fixed little-endian header read with `zerocopy`,
//! then a payload handed out as a `bytes::Bytes` slice of the receive buffer, so that
//! entries a follower receives can reach its log without a copy (DESIGN.md "Wire"). Every
//! connection opens with a handshake (`handshake.rs`) naming the cluster, the protocol
//! version and who is calling. Between servers, a frame carries one `PeerMessage`
//! (`peer_codec.rs`): Raft's messages, and client requests forwarded to the leader. A shard
//! sends them through a `Transport` (`transport.rs`): peer links over TCP
//! (`tcp_transport.rs`), or mailboxes between executors of one process
//! (`local_transport.rs`), for a cluster without sockets.

pub mod admin;
pub mod frame;
pub mod frame_reader;
pub mod handshake;
pub mod local_transport;
pub mod peer_codec;
pub mod peer_link;
pub mod signal;
pub mod tcp_transport;
pub mod transport;

pub use frame::{
    encode_frame, Frame, FrameDecoder, FrameError, FrameHeader, FRAME_HEADER_SIZE_BYTES,
};
pub use handshake::{kind, HandshakeError, Hello, HelloReply, Party, PROTOCOL_VERSION};
pub use peer_codec::{decode_peer_message, encode_peer_message, PeerDecodeError};
pub use transport::{SendError, Transport};
