//! What a session writes into the log: the payload of a command entry (SPEC §B5, §C5, §I).
//!
//! ```text
//! tag  operation   fields (little-endian)
//!   1  Register    client u128, timeout_ms u64
//!   2  KeepAlive   session u64, command_sequence u64, event_index u64
//!   3  Unregister  session u64, expired u8 (0/1), seen_through u64
//!   4  Command     session u64, sequence u64, operation (u32 length + bytes)
//!   5  NoOp        session u64, sequence u64
//! ```

use bytes::Bytes;

use crate::session::ids::{ClientId, SessionId};
use crate::session::reader::{put_bytes, DecodeError, Reader};
use crate::types::LogIndex;

const TAG_REGISTER: u8 = 1;
const TAG_KEEP_ALIVE: u8 = 2;
const TAG_UNREGISTER: u8 = 3;
const TAG_COMMAND: u8 = 4;
const TAG_NO_OP: u8 = 5;

/// One session operation, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOperation {
    /// Opens a session; its id is this entry's index. `timeout_ms` is already resolved (the
    /// client's value, or the leader's default when the client asked for 0), so every
    /// server agrees on it.
    Register {
        /// Who registers; an older session of the same client is expired.
        client: ClientId,
        /// The session's timeout.
        timeout_ms: u64,
    },
    /// Shows the session alive and acknowledges what the client has received.
    KeepAlive {
        /// The session.
        session: SessionId,
        /// Highest command sequence whose response the client received in order: cached
        /// outputs up to it can go.
        command_sequence: u64,
        /// Highest event batch the client received in order: batches up to it can go.
        event_index: LogIndex,
    },
    /// Closes a session: by its client (`expired == false`) or by the leader because the
    /// client fell silent (`expired == true`).
    Unregister {
        /// The session.
        session: SessionId,
        /// True when the leader expires the session.
        expired: bool,
        /// For an expiry: the highest index the leader had applied when it decided. An
        /// entry of the session after that index shows life the leader had not seen, and
        /// the expiry is ignored.
        seen_through: LogIndex,
    },
    /// A state-machine command of a session.
    Command {
        /// The session.
        session: SessionId,
        /// The session's sequence number for it (1, 2, 3, ...); 0 for a command sent with
        /// consistency NONE, which is neither ordered nor deduplicated.
        sequence: u64,
        /// The operation as the state machine's codec wrote it.
        operation: Bytes,
    },
    /// Fills a sequence number whose command failed before it reached the log, so later
    /// commands are not held back by a gap (SPEC §C3).
    NoOp {
        /// The session.
        session: SessionId,
        /// The sequence number it fills.
        sequence: u64,
    },
}

impl LogOperation {
    /// The session the operation belongs to (none for a register: its id is its index).
    #[must_use]
    pub fn session(&self) -> Option<SessionId> {
        match self {
            LogOperation::Register { .. } => None,
            LogOperation::KeepAlive { session, .. }
            | LogOperation::Unregister { session, .. }
            | LogOperation::Command { session, .. }
            | LogOperation::NoOp { session, .. } => Some(*session),
        }
    }

    /// The operation as an entry payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(32);
        match self {
            LogOperation::Register { client, timeout_ms } => {
                out.push(TAG_REGISTER);
                out.extend_from_slice(&client.0.to_le_bytes());
                out.extend_from_slice(&timeout_ms.to_le_bytes());
            }
            LogOperation::KeepAlive {
                session,
                command_sequence,
                event_index,
            } => {
                out.push(TAG_KEEP_ALIVE);
                out.extend_from_slice(&session.0.to_le_bytes());
                out.extend_from_slice(&command_sequence.to_le_bytes());
                out.extend_from_slice(&event_index.0.to_le_bytes());
            }
            LogOperation::Unregister {
                session,
                expired,
                seen_through,
            } => {
                out.push(TAG_UNREGISTER);
                out.extend_from_slice(&session.0.to_le_bytes());
                out.push(u8::from(*expired));
                out.extend_from_slice(&seen_through.0.to_le_bytes());
            }
            LogOperation::Command {
                session,
                sequence,
                operation,
            } => {
                out.reserve(operation.len());
                out.push(TAG_COMMAND);
                out.extend_from_slice(&session.0.to_le_bytes());
                out.extend_from_slice(&sequence.to_le_bytes());
                put_bytes(&mut out, operation);
            }
            LogOperation::NoOp { session, sequence } => {
                out.push(TAG_NO_OP);
                out.extend_from_slice(&session.0.to_le_bytes());
                out.extend_from_slice(&sequence.to_le_bytes());
            }
        }
        Bytes::from(out)
    }

    /// Decodes a payload written by [`LogOperation::encode`]; a command's operation bytes
    /// share `payload`'s buffer.
    ///
    /// # Errors
    /// A payload that is cut short, has bytes left over, or holds an unknown tag.
    pub fn decode(payload: &Bytes) -> Result<LogOperation, DecodeError> {
        let mut reader = Reader::new(payload.clone());
        let operation = match reader.u8("operation tag")? {
            TAG_REGISTER => LogOperation::Register {
                client: ClientId(reader.u128("client")?),
                timeout_ms: reader.u64("timeout")?,
            },
            TAG_KEEP_ALIVE => LogOperation::KeepAlive {
                session: SessionId(reader.u64("session")?),
                command_sequence: reader.u64("command sequence")?,
                event_index: LogIndex(reader.u64("event index")?),
            },
            TAG_UNREGISTER => LogOperation::Unregister {
                session: SessionId(reader.u64("session")?),
                expired: match reader.u8("expired flag")? {
                    0 => false,
                    1 => true,
                    value => {
                        return Err(DecodeError::Invalid {
                            what: "expired flag",
                            value: u64::from(value),
                        })
                    }
                },
                seen_through: LogIndex(reader.u64("seen through")?),
            },
            TAG_COMMAND => LogOperation::Command {
                session: SessionId(reader.u64("session")?),
                sequence: reader.u64("sequence")?,
                operation: reader.bytes("operation")?,
            },
            TAG_NO_OP => LogOperation::NoOp {
                session: SessionId(reader.u64("session")?),
                sequence: reader.u64("sequence")?,
            },
            tag => {
                return Err(DecodeError::Invalid {
                    what: "operation tag",
                    value: u64::from(tag),
                })
            }
        };
        reader.finish()?;
        Ok(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<LogOperation> {
        vec![
            LogOperation::Register {
                client: ClientId(u128::MAX - 5),
                timeout_ms: 5_000,
            },
            LogOperation::KeepAlive {
                session: SessionId(3),
                command_sequence: 17,
                event_index: LogIndex(40),
            },
            LogOperation::Unregister {
                session: SessionId(3),
                expired: true,
                seen_through: LogIndex(99),
            },
            LogOperation::Command {
                session: SessionId(3),
                sequence: 18,
                operation: Bytes::from_static(b"put x 1"),
            },
            LogOperation::NoOp {
                session: SessionId(3),
                sequence: 19,
            },
        ]
    }

    #[test]
    fn every_operation_round_trips() {
        for operation in all() {
            assert_eq!(LogOperation::decode(&operation.encode()), Ok(operation));
        }
    }

    #[test]
    fn every_cut_and_every_extra_byte_is_an_error() {
        for operation in all() {
            let encoded = operation.encode();
            for cut in 0..encoded.len() {
                assert!(
                    LogOperation::decode(&encoded.slice(..cut)).is_err(),
                    "{cut}"
                );
            }
            let mut longer = encoded.to_vec();
            longer.push(0);
            assert_eq!(
                LogOperation::decode(&Bytes::from(longer)),
                Err(DecodeError::Trailing { bytes: 1 })
            );
        }
        assert!(LogOperation::decode(&Bytes::from_static(&[9])).is_err());
    }
}
