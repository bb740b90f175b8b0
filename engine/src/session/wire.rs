//! The byte format of what clients and servers say to each other (`protocol.rs`), for
//! the transport to carry in frames. One tag byte per variant, then fixed little-endian
//! fields; byte strings and texts carry a u32 length, lists a u32 count. Decoding untrusted
//! bytes never panics and never allocates more than the input holds (`Reader`).
//!
//! ```text
//! request   request_id u64, body tag u8, fields
//! response  request_id u64, 0 + body tag u8 + fields | 1 + error code u8 + fields
//! to-client 0 + response | 1 + batch (session u64, event_index u64, previous u64,
//!           count u32, then per event: name, payload)
//! ```

use bytes::Bytes;

use crate::session::reader::{put_bytes, DecodeError, Reader};
use crate::session::{
    ApplicationError, ClientError, ClientId, ClientRequest, ClientResponse, EventBatch,
    QueryConsistency, RequestBody, ResponseBody, SessionEvent, SessionId, ToClient,
};
use crate::types::{LogIndex, ReplicaId};

/// Encodes a client's request.
#[must_use]
pub fn encode_request(request: &ClientRequest) -> Bytes {
    let mut out = Vec::with_capacity(48);
    put_u64(&mut out, request.request_id);
    match &request.body {
        RequestBody::Connect { client } => {
            out.push(1);
            out.extend_from_slice(&client.0.to_le_bytes());
        }
        RequestBody::Register { client, timeout_ms } => {
            out.push(2);
            out.extend_from_slice(&client.0.to_le_bytes());
            put_u64(&mut out, *timeout_ms);
        }
        RequestBody::KeepAlive {
            session,
            command_sequence,
            event_index,
        } => {
            out.push(3);
            put_u64(&mut out, session.0);
            put_u64(&mut out, *command_sequence);
            put_u64(&mut out, event_index.0);
        }
        RequestBody::Unregister { session } => {
            out.push(4);
            put_u64(&mut out, session.0);
        }
        RequestBody::Command {
            session,
            sequence,
            operation,
        } => {
            out.push(5);
            put_u64(&mut out, session.0);
            put_u64(&mut out, *sequence);
            put_bytes(&mut out, operation);
        }
        RequestBody::Query {
            session,
            sequence,
            index,
            consistency,
            operation,
        } => {
            out.push(6);
            put_u64(&mut out, session.0);
            put_u64(&mut out, *sequence);
            put_u64(&mut out, index.0);
            out.push(consistency_code(*consistency));
            put_bytes(&mut out, operation);
        }
        RequestBody::ResetEvents { session, index } => {
            out.push(7);
            put_u64(&mut out, session.0);
            put_u64(&mut out, index.0);
        }
    }
    Bytes::from(out)
}

/// Decodes a request written by [`encode_request`]; operations share `bytes`' buffer.
///
/// # Errors
/// Bytes that are cut short, have bytes left over, or hold an unknown tag.
pub fn decode_request(bytes: &Bytes) -> Result<ClientRequest, DecodeError> {
    let mut reader = Reader::new(bytes.clone());
    let request_id = reader.u64("request id")?;
    let body = match reader.u8("request tag")? {
        1 => RequestBody::Connect {
            client: ClientId(reader.u128("client")?),
        },
        2 => RequestBody::Register {
            client: ClientId(reader.u128("client")?),
            timeout_ms: reader.u64("timeout")?,
        },
        3 => RequestBody::KeepAlive {
            session: SessionId(reader.u64("session")?),
            command_sequence: reader.u64("command sequence")?,
            event_index: LogIndex(reader.u64("event index")?),
        },
        4 => RequestBody::Unregister {
            session: SessionId(reader.u64("session")?),
        },
        5 => RequestBody::Command {
            session: SessionId(reader.u64("session")?),
            sequence: reader.u64("sequence")?,
            operation: reader.bytes("operation")?,
        },
        6 => RequestBody::Query {
            session: SessionId(reader.u64("session")?),
            sequence: reader.u64("sequence")?,
            index: LogIndex(reader.u64("index")?),
            consistency: consistency_from(reader.u8("consistency")?)?,
            operation: reader.bytes("operation")?,
        },
        7 => RequestBody::ResetEvents {
            session: SessionId(reader.u64("session")?),
            index: LogIndex(reader.u64("index")?),
        },
        tag => return Err(invalid("request tag", tag)),
    };
    reader.finish()?;
    Ok(ClientRequest { request_id, body })
}

/// Encodes what a server sends a client.
#[must_use]
pub fn encode_to_client(message: &ToClient) -> Bytes {
    let mut out = Vec::with_capacity(64);
    match message {
        ToClient::Response(response) => {
            out.push(0);
            put_response(&mut out, response);
        }
        ToClient::Publish(batch) => {
            out.push(1);
            put_u64(&mut out, batch.session.0);
            put_u64(&mut out, batch.event_index.0);
            put_u64(&mut out, batch.previous_index.0);
            put_count(&mut out, batch.events.len());
            for event in &batch.events {
                put_bytes(&mut out, event.name.as_bytes());
                put_bytes(&mut out, &event.payload);
            }
        }
    }
    Bytes::from(out)
}

/// Decodes what [`encode_to_client`] wrote; payloads share `bytes`' buffer.
///
/// # Errors
/// Bytes that are cut short, have bytes left over, or hold an unknown tag.
pub fn decode_to_client(bytes: &Bytes) -> Result<ToClient, DecodeError> {
    let mut reader = Reader::new(bytes.clone());
    let message = match reader.u8("message tag")? {
        0 => ToClient::Response(read_response(&mut reader)?),
        1 => {
            let session = SessionId(reader.u64("session")?);
            let event_index = LogIndex(reader.u64("event index")?);
            let previous_index = LogIndex(reader.u64("previous index")?);
            let count = reader.u32("event count")?;
            let mut events = Vec::new();
            for _ in 0..count {
                events.push(SessionEvent {
                    name: reader.text("event name")?,
                    payload: reader.bytes("event payload")?,
                });
            }
            ToClient::Publish(EventBatch {
                session,
                event_index,
                previous_index,
                events,
            })
        }
        tag => return Err(invalid("message tag", tag)),
    };
    reader.finish()?;
    Ok(message)
}

/// Appends a response (also carried in forward replies between servers).
pub fn put_response(out: &mut Vec<u8>, response: &ClientResponse) {
    put_u64(out, response.request_id);
    put_body(out, &response.body);
}

/// Appends a response body or error.
pub fn put_body(out: &mut Vec<u8>, body: &Result<ResponseBody, ClientError>) {
    match body {
        Ok(body) => {
            out.push(0);
            match body {
                ResponseBody::Connect { leader, members } => {
                    out.push(1);
                    put_leader(out, *leader);
                    put_members(out, members);
                }
                ResponseBody::Register {
                    session,
                    timeout_ms,
                    leader,
                    members,
                } => {
                    out.push(2);
                    put_u64(out, session.0);
                    put_u64(out, *timeout_ms);
                    put_leader(out, *leader);
                    put_members(out, members);
                }
                ResponseBody::KeepAlive { leader, members } => {
                    out.push(3);
                    put_leader(out, *leader);
                    put_members(out, members);
                }
                ResponseBody::Unregister => out.push(4),
                ResponseBody::Command {
                    index,
                    event_index,
                    output,
                } => {
                    out.push(5);
                    put_u64(out, index.0);
                    put_u64(out, event_index.0);
                    put_output(out, output);
                }
                ResponseBody::Query {
                    index,
                    event_index,
                    output,
                } => {
                    out.push(6);
                    put_u64(out, index.0);
                    put_u64(out, event_index.0);
                    put_output(out, output);
                }
            }
        }
        Err(error) => {
            out.push(1);
            out.push(error.code());
            match error {
                ClientError::Query { reason }
                | ClientError::IllegalMemberState { reason }
                | ClientError::Internal { reason }
                | ClientError::Configuration { reason } => put_bytes(out, reason.as_bytes()),
                ClientError::Command { last_sequence } => put_u64(out, *last_sequence),
                ClientError::Application(error) => put_bytes(out, error.message.as_bytes()),
                ClientError::NoLeader
                | ClientError::UnknownSession
                | ClientError::ClosedSession => {}
            }
        }
    }
}

/// Reads a response written by [`put_response`].
///
/// # Errors
/// Bytes that are cut short or hold an unknown tag.
pub fn read_response(reader: &mut Reader) -> Result<ClientResponse, DecodeError> {
    let request_id = reader.u64("request id")?;
    let body = read_body(reader)?;
    Ok(ClientResponse { request_id, body })
}

/// Reads a body or error written by [`put_body`].
///
/// # Errors
/// Bytes that are cut short or hold an unknown tag.
pub fn read_body(reader: &mut Reader) -> Result<Result<ResponseBody, ClientError>, DecodeError> {
    Ok(match reader.u8("result tag")? {
        0 => Ok(match reader.u8("response tag")? {
            1 => ResponseBody::Connect {
                leader: read_leader(reader)?,
                members: read_members(reader)?,
            },
            2 => ResponseBody::Register {
                session: SessionId(reader.u64("session")?),
                timeout_ms: reader.u64("timeout")?,
                leader: read_leader(reader)?,
                members: read_members(reader)?,
            },
            3 => ResponseBody::KeepAlive {
                leader: read_leader(reader)?,
                members: read_members(reader)?,
            },
            4 => ResponseBody::Unregister,
            5 => ResponseBody::Command {
                index: LogIndex(reader.u64("index")?),
                event_index: LogIndex(reader.u64("event index")?),
                output: read_output(reader)?,
            },
            6 => ResponseBody::Query {
                index: LogIndex(reader.u64("index")?),
                event_index: LogIndex(reader.u64("event index")?),
                output: read_output(reader)?,
            },
            tag => return Err(invalid("response tag", tag)),
        }),
        1 => Err(match reader.u8("error code")? {
            0 => ClientError::ClosedSession,
            1 => ClientError::NoLeader,
            2 => ClientError::Query {
                reason: reader.text("reason")?,
            },
            3 => ClientError::Command {
                last_sequence: reader.u64("last sequence")?,
            },
            4 => ClientError::Application(ApplicationError {
                message: reader.text("message")?,
            }),
            5 => ClientError::IllegalMemberState {
                reason: reader.text("reason")?,
            },
            6 => ClientError::UnknownSession,
            7 => ClientError::Internal {
                reason: reader.text("reason")?,
            },
            8 => ClientError::Configuration {
                reason: reader.text("reason")?,
            },
            code => return Err(invalid("error code", code)),
        }),
        tag => return Err(invalid("result tag", tag)),
    })
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_count(out: &mut Vec<u8>, count: usize) {
    let count = u32::try_from(count).expect("fewer than 2^32 items");
    out.extend_from_slice(&count.to_le_bytes());
}

fn put_leader(out: &mut Vec<u8>, leader: Option<ReplicaId>) {
    match leader {
        None => out.push(0),
        Some(leader) => {
            out.push(1);
            put_u64(out, leader.0);
        }
    }
}

fn read_leader(reader: &mut Reader) -> Result<Option<ReplicaId>, DecodeError> {
    match reader.u8("leader flag")? {
        0 => Ok(None),
        1 => Ok(Some(ReplicaId(reader.u64("leader")?))),
        flag => Err(invalid("leader flag", flag)),
    }
}

fn put_members(out: &mut Vec<u8>, members: &[ReplicaId]) {
    put_count(out, members.len());
    for member in members {
        put_u64(out, member.0);
    }
}

fn read_members(reader: &mut Reader) -> Result<Vec<ReplicaId>, DecodeError> {
    let count = reader.u32("member count")?;
    let mut members = Vec::new();
    for _ in 0..count {
        members.push(ReplicaId(reader.u64("member")?));
    }
    Ok(members)
}

fn put_output(out: &mut Vec<u8>, output: &Result<Bytes, ApplicationError>) {
    match output {
        Ok(bytes) => {
            out.push(0);
            put_bytes(out, bytes);
        }
        Err(error) => {
            out.push(1);
            put_bytes(out, error.message.as_bytes());
        }
    }
}

fn read_output(reader: &mut Reader) -> Result<Result<Bytes, ApplicationError>, DecodeError> {
    match reader.u8("output tag")? {
        0 => Ok(Ok(reader.bytes("output")?)),
        1 => Ok(Err(ApplicationError {
            message: reader.text("application error")?,
        })),
        tag => Err(invalid("output tag", tag)),
    }
}

fn consistency_code(consistency: QueryConsistency) -> u8 {
    match consistency {
        QueryConsistency::Sequential => 0,
        QueryConsistency::Causal => 1,
        QueryConsistency::LinearizableLease => 2,
        QueryConsistency::Linearizable => 3,
    }
}

fn consistency_from(code: u8) -> Result<QueryConsistency, DecodeError> {
    Ok(match code {
        0 => QueryConsistency::Sequential,
        1 => QueryConsistency::Causal,
        2 => QueryConsistency::LinearizableLease,
        3 => QueryConsistency::Linearizable,
        code => return Err(invalid("query consistency", code)),
    })
}

fn invalid(what: &'static str, value: u8) -> DecodeError {
    DecodeError::Invalid {
        what,
        value: u64::from(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests() -> Vec<ClientRequest> {
        let session = SessionId(12);
        let bodies = vec![
            RequestBody::Connect {
                client: ClientId(u128::MAX - 1),
            },
            RequestBody::Register {
                client: ClientId(7),
                timeout_ms: 5_000,
            },
            RequestBody::KeepAlive {
                session,
                command_sequence: 4,
                event_index: LogIndex(20),
            },
            RequestBody::Unregister { session },
            RequestBody::Command {
                session,
                sequence: 5,
                operation: Bytes::from_static(b"op"),
            },
            RequestBody::Query {
                session,
                sequence: 5,
                index: LogIndex(30),
                consistency: QueryConsistency::LinearizableLease,
                operation: Bytes::from_static(b"read"),
            },
            RequestBody::ResetEvents {
                session,
                index: LogIndex(21),
            },
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(id, body)| ClientRequest {
                request_id: id as u64 + 100,
                body,
            })
            .collect()
    }

    fn messages() -> Vec<ToClient> {
        let members = vec![ReplicaId(1), ReplicaId(2)];
        let mut bodies: Vec<Result<ResponseBody, ClientError>> = vec![
            Ok(ResponseBody::Connect {
                leader: None,
                members: members.clone(),
            }),
            Ok(ResponseBody::Register {
                session: SessionId(3),
                timeout_ms: 1,
                leader: Some(ReplicaId(2)),
                members: members.clone(),
            }),
            Ok(ResponseBody::KeepAlive {
                leader: Some(ReplicaId(1)),
                members,
            }),
            Ok(ResponseBody::Unregister),
            Ok(ResponseBody::Command {
                index: LogIndex(9),
                event_index: LogIndex(8),
                output: Ok(Bytes::from_static(b"out")),
            }),
            Ok(ResponseBody::Query {
                index: LogIndex(9),
                event_index: LogIndex(8),
                output: Err(ApplicationError {
                    message: "no such key".into(),
                }),
            }),
        ];
        bodies.extend(
            [
                ClientError::NoLeader,
                ClientError::Query {
                    reason: "lost".into(),
                },
                ClientError::Command { last_sequence: 4 },
                ClientError::Application(ApplicationError {
                    message: "bad".into(),
                }),
                ClientError::IllegalMemberState {
                    reason: "reserve".into(),
                },
                ClientError::UnknownSession,
                ClientError::Internal {
                    reason: "full".into(),
                },
                ClientError::Configuration {
                    reason: "stale".into(),
                },
                ClientError::ClosedSession,
            ]
            .into_iter()
            .map(Err),
        );
        let mut messages: Vec<ToClient> = bodies
            .into_iter()
            .enumerate()
            .map(|(id, body)| {
                ToClient::Response(ClientResponse {
                    request_id: id as u64,
                    body,
                })
            })
            .collect();
        messages.push(ToClient::Publish(EventBatch {
            session: SessionId(3),
            event_index: LogIndex(10),
            previous_index: LogIndex(7),
            events: vec![
                SessionEvent {
                    name: "put".into(),
                    payload: Bytes::from_static(b"x"),
                },
                SessionEvent {
                    name: "é".into(),
                    payload: Bytes::new(),
                },
            ],
        }));
        messages
    }

    #[test]
    fn every_request_round_trips_and_every_cut_is_an_error() {
        for request in requests() {
            let bytes = encode_request(&request);
            assert_eq!(decode_request(&bytes), Ok(request.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    decode_request(&bytes.slice(..cut)).is_err(),
                    "{request:?} cut at {cut}"
                );
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(decode_request(&Bytes::from(longer)).is_err());
        }
    }

    #[test]
    fn every_response_error_and_batch_round_trips_and_every_cut_is_an_error() {
        for message in messages() {
            let bytes = encode_to_client(&message);
            assert_eq!(decode_to_client(&bytes), Ok(message.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    decode_to_client(&bytes.slice(..cut)).is_err(),
                    "{message:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn unknown_tags_and_huge_counts_are_errors() {
        let mut request = encode_request(&requests()[0]).to_vec();
        request[8] = 99;
        assert!(decode_request(&Bytes::from(request)).is_err());
        // A batch claiming 2^32 - 1 events with none behind it.
        let mut batch = vec![1u8];
        batch.extend_from_slice(&[0; 24]);
        batch.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_to_client(&Bytes::from(batch)).is_err());
    }
}
