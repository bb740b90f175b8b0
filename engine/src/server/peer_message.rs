//! What servers of one group send each other: Raft's messages, and client requests a
//! server forwards to the leader with the leader's answers (SPEC §M2: "followers proxy
//! client requests they can't serve to the leader").

use crate::message::Message;
use crate::session::{ClientError, RequestBody, ResponseBody};

/// One message between servers.
#[derive(Clone, Debug)]
pub enum PeerMessage {
    /// A Raft message.
    Raft(Message),
    /// A client request this server cannot serve, for the leader.
    Forward {
        /// Chosen by the forwarding server to match the reply.
        forward_id: u64,
        /// The request as the client sent it.
        request: RequestBody,
    },
    /// The leader's answer to a forwarded request.
    ForwardReply {
        /// The forward it answers.
        forward_id: u64,
        /// The answer, relayed to the client as it is.
        body: Result<ResponseBody, ClientError>,
    },
}

impl PeerMessage {
    /// A short name, for traces.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PeerMessage::Raft(message) => message.name(),
            PeerMessage::Forward { .. } => "forward",
            PeerMessage::ForwardReply { .. } => "forward-reply",
        }
    }
}
