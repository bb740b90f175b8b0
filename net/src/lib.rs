//! coracle-net: the wire. A frame is a fixed little-endian header read with `zerocopy`,
//! then a payload handed out as a `bytes::Bytes` slice of the receive buffer, so that
//! entries a follower receives can reach its log without a copy (DESIGN.md "Wire"). Every
//! connection opens with a handshake (`handshake.rs`) naming the cluster, the protocol
//! version and who is calling.

pub mod frame;
pub mod handshake;

pub use frame::{
    encode_frame, Frame, FrameDecoder, FrameError, FrameHeader, FRAME_HEADER_SIZE_BYTES,
};
pub use handshake::{kind, HandshakeError, Hello, HelloReply, Party, PROTOCOL_VERSION};
