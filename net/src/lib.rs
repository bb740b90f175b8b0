//! coracle-net: the wire. So far the frame: a fixed little-endian header read with
//! `zerocopy`, then a payload handed out as a `bytes::Bytes` slice of the receive buffer,
//! so that entries a follower receives can reach its log without a copy (DESIGN.md "Wire").
//! The transport (TCP on glommio, in-process) follows with issue #6.

pub mod frame;

pub use frame::{
    encode_frame, Frame, FrameDecoder, FrameError, FrameHeader, FRAME_HEADER_SIZE_BYTES,
};
