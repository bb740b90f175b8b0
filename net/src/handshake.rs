//! The first frame on every connection, and its answer.
//!
//! The side that connects sends a [`Hello`] (frame kind [`kind::HELLO`], group 0): the
//! cluster's name, the protocol version it speaks, and who it is — a peer's node and shard,
//! or a client. The side that accepted answers with a [`HelloReply`] (kind
//! [`kind::HELLO_REPLY`]): accepted, with its own node id and shard layout, or refused with
//! a reason, after which it closes the connection. A peer or client of another cluster, or
//! of an unknown protocol version, is refused before anything else is read from it.
//!
//! ```text
//! Hello:      version u16 | cluster text | party u8 (1 peer, 2 client) |
//!             peer: node u64, shard u32   client: client u128
//! HelloReply: tag u8 = 1 | node u64 | shard u32 | shards u32 | groups u32
//!             tag u8 = 2 | reason text
//! ```
//!
//! Texts are a u32 length and UTF-8 bytes (at most [`CLUSTER_NAME_SIZE_BYTES_MAX`] for the
//! cluster, [`REASON_SIZE_BYTES_MAX`] for a reason). Decoding never panics and never
//! allocates more than its input.

use bytes::Bytes;
use coracle_engine::session::{reader::put_bytes, DecodeError, Reader};

/// The message protocol this build speaks (the payloads inside frames). Bumped when a
/// payload's layout changes; the frame header has its own version.
pub const PROTOCOL_VERSION: u16 = 1;
/// Longest cluster name.
pub const CLUSTER_NAME_SIZE_BYTES_MAX: usize = 64;
/// Longest refusal reason sent (longer ones are cut at a character boundary).
pub const REASON_SIZE_BYTES_MAX: usize = 1024;

/// What a frame's payload holds.
pub mod kind {
    /// A [`super::Hello`].
    pub const HELLO: u8 = 1;
    /// A [`super::HelloReply`].
    pub const HELLO_REPLY: u8 = 2;
    /// A message between servers of the frame's group (`coracle_net::peer_codec`).
    pub const PEER: u8 = 3;
    /// A client's request to the frame's group (`session::wire::encode_request`).
    pub const CLIENT_REQUEST: u8 = 4;
    /// A response or event batch for a client (`session::wire::encode_to_client`).
    pub const TO_CLIENT: u8 = 5;
    /// A question for the node about the frame's group (`coracle_net::admin`).
    pub const ADMIN_REQUEST: u8 = 6;
    /// Its answer.
    pub const ADMIN_RESPONSE: u8 = 7;
}

/// Who opened a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Party {
    /// A server: its node id and the shard the connection belongs to.
    Peer {
        /// The node.
        node: u64,
        /// The shard, the same on both ends.
        shard: u32,
    },
    /// A client process.
    Client {
        /// The client's id.
        client: u128,
    },
}

/// The opening frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version the sender speaks.
    pub version: u16,
    /// The cluster the sender belongs to (or, for a client, wants).
    pub cluster: String,
    /// Who the sender is.
    pub party: Party,
}

/// The answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloReply {
    /// The connection is open.
    Accepted {
        /// The accepting node.
        node: u64,
        /// The shard that accepted.
        shard: u32,
        /// How many shards the node runs (group `g` lives on shard `g % shards`).
        shards: u32,
        /// How many groups the node runs (`0..groups`): a client asking for another can be
        /// told so at once.
        groups: u32,
    },
    /// The connection is refused and will be closed.
    Refused {
        /// Why, for the other side's log.
        reason: String,
    },
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The bytes are not a hello or its reply.
    Decode(DecodeError),
    /// The other side names another cluster.
    WrongCluster {
        /// The name expected.
        expected: String,
        /// The name received.
        found: String,
    },
    /// The other side speaks another protocol version.
    WrongVersion {
        /// The version received.
        found: u16,
    },
    /// A peer named a shard that is not this one.
    WrongShard {
        /// This shard.
        expected: u32,
        /// The shard named.
        found: u32,
    },
    /// A peer is not a member this node knows.
    UnknownNode {
        /// The node named.
        node: u64,
    },
    /// A frame of another kind arrived first.
    UnexpectedKind {
        /// Its kind.
        kind: u8,
    },
    /// The other side refused.
    Refused {
        /// Its reason.
        reason: String,
    },
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Decode(error) => write!(f, "malformed handshake: {error}"),
            HandshakeError::WrongCluster { expected, found } => {
                write!(f, "cluster {found:?} is not this cluster {expected:?}")
            }
            HandshakeError::WrongVersion { found } => write!(
                f,
                "protocol version {found} is not spoken here (only {PROTOCOL_VERSION})"
            ),
            HandshakeError::WrongShard { expected, found } => {
                write!(f, "shard {found} connected to shard {expected}")
            }
            HandshakeError::UnknownNode { node } => write!(f, "node {node} is not a member"),
            HandshakeError::UnexpectedKind { kind } => {
                write!(f, "frame kind {kind} before the handshake")
            }
            HandshakeError::Refused { reason } => write!(f, "refused: {reason}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<DecodeError> for HandshakeError {
    fn from(error: DecodeError) -> Self {
        HandshakeError::Decode(error)
    }
}

const PARTY_PEER: u8 = 1;
const PARTY_CLIENT: u8 = 2;
const REPLY_ACCEPTED: u8 = 1;
const REPLY_REFUSED: u8 = 2;

impl Hello {
    /// The payload of a hello frame.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.version.to_le_bytes());
        put_bytes(&mut out, self.cluster.as_bytes());
        match self.party {
            Party::Peer { node, shard } => {
                out.push(PARTY_PEER);
                out.extend_from_slice(&node.to_le_bytes());
                out.extend_from_slice(&shard.to_le_bytes());
            }
            Party::Client { client } => {
                out.push(PARTY_CLIENT);
                out.extend_from_slice(&client.to_le_bytes());
            }
        }
        Bytes::from(out)
    }

    /// Reads a hello frame's payload.
    ///
    /// # Errors
    /// If the payload is cut, holds an unknown party, a cluster name over the cap, or
    /// trailing bytes.
    pub fn decode(payload: Bytes) -> Result<Hello, DecodeError> {
        if payload.len() < 2 {
            return Err(DecodeError::Truncated {
                what: "protocol version",
                offset: 0,
            });
        }
        let version = u16::from_le_bytes([payload[0], payload[1]]);
        let mut reader = Reader::new(payload.slice(2..));
        let cluster = reader.text("cluster name")?;
        if cluster.len() > CLUSTER_NAME_SIZE_BYTES_MAX {
            return Err(DecodeError::Invalid {
                what: "cluster name length",
                value: cluster.len() as u64,
            });
        }
        let party = match reader.u8("party")? {
            PARTY_PEER => Party::Peer {
                node: reader.u64("node")?,
                shard: reader.u32("shard")?,
            },
            PARTY_CLIENT => Party::Client {
                client: reader.u128("client")?,
            },
            other => {
                return Err(DecodeError::Invalid {
                    what: "party",
                    value: u64::from(other),
                })
            }
        };
        reader.finish()?;
        Ok(Hello {
            version,
            cluster,
            party,
        })
    }

    /// Checks a received hello against this node: the cluster and the version, and for a
    /// peer the shard and that `is_member(node)`.
    ///
    /// # Errors
    /// The first mismatch, to log and send back as the refusal.
    pub fn check(
        &self,
        cluster: &str,
        shard: u32,
        is_member: impl Fn(u64) -> bool,
    ) -> Result<(), HandshakeError> {
        if self.version != PROTOCOL_VERSION {
            return Err(HandshakeError::WrongVersion {
                found: self.version,
            });
        }
        if self.cluster != cluster {
            return Err(HandshakeError::WrongCluster {
                expected: cluster.to_string(),
                found: self.cluster.clone(),
            });
        }
        if let Party::Peer {
            node,
            shard: theirs,
        } = self.party
        {
            if theirs != shard {
                return Err(HandshakeError::WrongShard {
                    expected: shard,
                    found: theirs,
                });
            }
            if !is_member(node) {
                return Err(HandshakeError::UnknownNode { node });
            }
        }
        Ok(())
    }
}

impl HelloReply {
    /// The payload of a reply frame.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(32);
        match self {
            HelloReply::Accepted {
                node,
                shard,
                shards,
                groups,
            } => {
                out.push(REPLY_ACCEPTED);
                out.extend_from_slice(&node.to_le_bytes());
                out.extend_from_slice(&shard.to_le_bytes());
                out.extend_from_slice(&shards.to_le_bytes());
                out.extend_from_slice(&groups.to_le_bytes());
            }
            HelloReply::Refused { reason } => {
                out.push(REPLY_REFUSED);
                put_bytes(
                    &mut out,
                    cut_at_char(reason, REASON_SIZE_BYTES_MAX).as_bytes(),
                );
            }
        }
        Bytes::from(out)
    }

    /// Reads a reply frame's payload.
    ///
    /// # Errors
    /// If the payload is cut, has an unknown tag, a reason over the cap, or trailing bytes.
    pub fn decode(payload: Bytes) -> Result<HelloReply, DecodeError> {
        let mut reader = Reader::new(payload);
        let reply = match reader.u8("reply")? {
            REPLY_ACCEPTED => HelloReply::Accepted {
                node: reader.u64("node")?,
                shard: reader.u32("shard")?,
                shards: reader.u32("shards")?,
                groups: reader.u32("groups")?,
            },
            REPLY_REFUSED => {
                let reason = reader.text("reason")?;
                if reason.len() > REASON_SIZE_BYTES_MAX {
                    return Err(DecodeError::Invalid {
                        what: "reason length",
                        value: reason.len() as u64,
                    });
                }
                HelloReply::Refused { reason }
            }
            other => {
                return Err(DecodeError::Invalid {
                    what: "reply",
                    value: u64::from(other),
                })
            }
        };
        reader.finish()?;
        if let HelloReply::Accepted { shard, shards, .. } = reply {
            if shards == 0 || shard >= shards {
                return Err(DecodeError::Invalid {
                    what: "shard layout",
                    value: u64::from(shard),
                });
            }
        }
        Ok(reply)
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hellos() -> Vec<Hello> {
        vec![
            Hello {
                version: PROTOCOL_VERSION,
                cluster: "prod-east".into(),
                party: Party::Peer { node: 3, shard: 1 },
            },
            Hello {
                version: 9,
                cluster: String::new(),
                party: Party::Client { client: u128::MAX },
            },
        ]
    }

    fn replies() -> Vec<HelloReply> {
        vec![
            HelloReply::Accepted {
                node: 2,
                shard: 0,
                shards: 4,
                groups: 64,
            },
            HelloReply::Refused {
                reason: "cluster \"b\" is not this cluster \"a\"".into(),
            },
        ]
    }

    #[test]
    fn hello_and_reply_round_trip_and_every_cut_is_an_error() {
        for hello in hellos() {
            let bytes = hello.encode();
            assert_eq!(Hello::decode(bytes.clone()), Ok(hello));
            for cut in 0..bytes.len() {
                assert!(Hello::decode(bytes.slice(..cut)).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(Hello::decode(Bytes::from(longer)).is_err());
        }
        for reply in replies() {
            let bytes = reply.encode();
            assert_eq!(HelloReply::decode(bytes.clone()), Ok(reply));
            for cut in 0..bytes.len() {
                assert!(
                    HelloReply::decode(bytes.slice(..cut)).is_err(),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn check_refuses_another_cluster_version_shard_or_stranger() {
        let hello = |version, cluster: &str, node, shard| Hello {
            version,
            cluster: cluster.into(),
            party: Party::Peer { node, shard },
        };
        let members = |node: u64| node <= 3;
        assert_eq!(hello(1, "a", 2, 0).check("a", 0, members), Ok(()));
        assert!(matches!(
            hello(1, "b", 2, 0).check("a", 0, members),
            Err(HandshakeError::WrongCluster { .. })
        ));
        assert_eq!(
            hello(2, "a", 2, 0).check("a", 0, members),
            Err(HandshakeError::WrongVersion { found: 2 })
        );
        assert_eq!(
            hello(1, "a", 2, 1).check("a", 0, members),
            Err(HandshakeError::WrongShard {
                expected: 0,
                found: 1
            })
        );
        assert_eq!(
            hello(1, "a", 7, 0).check("a", 0, members),
            Err(HandshakeError::UnknownNode { node: 7 })
        );
        let client = Hello {
            version: 1,
            cluster: "a".into(),
            party: Party::Client { client: 5 },
        };
        assert_eq!(client.check("a", 3, members), Ok(()));
    }

    #[test]
    fn oversized_names_and_bad_layouts_are_refused() {
        let hello = Hello {
            version: 1,
            cluster: "x".repeat(CLUSTER_NAME_SIZE_BYTES_MAX + 1),
            party: Party::Client { client: 1 },
        };
        assert!(Hello::decode(hello.encode()).is_err());
        let reply = HelloReply::Accepted {
            node: 1,
            shard: 2,
            shards: 2,
            groups: 2,
        };
        assert!(HelloReply::decode(reply.encode()).is_err());
        let long = HelloReply::Refused {
            reason: "é".repeat(REASON_SIZE_BYTES_MAX),
        };
        match HelloReply::decode(long.encode()) {
            Ok(HelloReply::Refused { reason }) => assert!(reason.len() <= REASON_SIZE_BYTES_MAX),
            other => panic!("{other:?}"),
        }
    }
}
