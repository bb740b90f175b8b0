//! What a server asks its driver to do, and whom it answers.

use crate::action::Action;
use crate::server::peer_message::PeerMessage;
use crate::session::ToClient;
use crate::types::ReplicaId;

/// A client connection, numbered by the driver; a client's session events go over the
/// connection it last used at this server.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// One effect, in order.
#[derive(Clone, Debug)]
pub enum ServerOutput {
    /// A replica action other than `Send` and `Apply` (the server applies entries itself):
    /// `Persist` (call `Server::on_persisted` when durable), `RoleChanged`, `Committed`,
    /// `MembershipOutcome`, `LeadershipConfirmed`.
    Replica(Action),
    /// A message to another server of the group.
    Peer {
        /// The receiver.
        to: ReplicaId,
        /// The message.
        message: PeerMessage,
    },
    /// Committed entries this server just applied, for observers (metrics, the
    /// simulator's checkers); nothing to do.
    Applied {
        /// The entries, in order.
        entries: Vec<crate::entry::Entry>,
    },
    /// A response or event batch for a client connection.
    Client {
        /// The connection.
        connection: ConnectionId,
        /// The message.
        message: ToClient,
    },
}

/// Who waits for an answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client on one of this server's connections.
    Client {
        connection: ConnectionId,
        request_id: u64,
    },
    /// A server that forwarded the request.
    Peer { from: ReplicaId, forward_id: u64 },
}
