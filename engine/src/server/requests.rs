//! Client requests at a server: the leader logs them and answers when they apply; any other
//! server forwards them to the leader, except the queries it may serve itself (SPEC §B5,
//! §C3, §M2).

use bytes::Bytes;

use crate::server::output::{Origin, ServerOutput};
use crate::server::peer_message::PeerMessage;
use crate::server::server::{Forwarded, Server};
use crate::session::{ClientError, LogOperation, RequestBody, ResponseBody, SessionId};
use crate::state_machine::StateMachine;
use crate::types::LogIndex;

/// How far ahead of the highest sequence logged for a session a command may be and still
/// be logged (the host holds it until the gap fills). Beyond, the client is told where the
/// leader stands and resubmits from there (SPEC §C3).
pub const SEQUENCE_WINDOW: u64 = 1 << 10;

const _: () =
    assert!(SEQUENCE_WINDOW as usize <= crate::state_machine::sessions::HELD_COMMANDS_MAX);

impl<S: StateMachine> Server<S> {
    /// Serves, logs or forwards one request.
    pub(crate) fn handle(
        &mut self,
        origin: Origin,
        body: RequestBody,
        out: &mut Vec<ServerOutput>,
    ) {
        if self.pending_count() >= self.config.requests_pending_max {
            let reason = "too many requests in flight at this server".to_string();
            self.respond(origin, Err(ClientError::Internal { reason }), out);
            return;
        }
        if let RequestBody::Query { .. } = body {
            self.query(origin, body, out);
            return;
        }
        if self.leadership.is_some() {
            self.lead(origin, body, out);
        } else {
            self.forward(origin, body, out);
        }
    }

    /// Sends a request on to the leader, or answers `NoLeader`. A request that was itself
    /// forwarded is not forwarded again: the sender's idea of the leader was stale.
    pub(crate) fn forward(
        &mut self,
        origin: Origin,
        body: RequestBody,
        out: &mut Vec<ServerOutput>,
    ) {
        let leader = self
            .replica
            .leader()
            .filter(|leader| *leader != self.replica.id());
        let (Some(leader), Origin::Client { .. }) = (leader, origin) else {
            self.respond(origin, Err(ClientError::NoLeader), out);
            return;
        };
        self.next_forward_id = self.next_forward_id.wrapping_add(1);
        let forward_id = self.next_forward_id;
        self.forwards.insert(
            forward_id,
            Forwarded {
                origin,
                request: body.clone(),
                leader,
                deadline_ms: self.now.monotonic_ms + self.config.request_timeout_ms,
            },
        );
        self.stats.forwarded += 1;
        out.push(ServerOutput::Peer {
            to: leader,
            message: PeerMessage::Forward {
                forward_id,
                request: body,
            },
        });
    }

    /// The leader's handling of everything but queries.
    fn lead(&mut self, origin: Origin, body: RequestBody, out: &mut Vec<ServerOutput>) {
        let now_ms = self.now.monotonic_ms;
        match body {
            RequestBody::Register { client, timeout_ms } => {
                // The timeout is resolved here and logged, so every server agrees on it.
                let timeout_ms = if timeout_ms == 0 {
                    self.config.session_timeout_ms_default
                } else {
                    timeout_ms
                };
                let operation = LogOperation::Register { client, timeout_ms };
                self.log(origin, operation, out);
            }
            RequestBody::KeepAlive {
                session,
                command_sequence,
                event_index,
            } => {
                if self.session_gone(session) {
                    self.respond(origin, Err(ClientError::UnknownSession), out);
                    return;
                }
                if let Some(leadership) = self.leadership.as_mut() {
                    leadership.heard_ms.insert(session, now_ms);
                    // A keep-alive tells a new leader where the client's sequence stands
                    // (SPEC §C3, Copycat #282).
                    let logged = leadership.logged_sequence.entry(session).or_insert(0);
                    *logged = (*logged).max(command_sequence);
                }
                let operation = LogOperation::KeepAlive {
                    session,
                    command_sequence,
                    event_index,
                };
                self.log(origin, operation, out);
            }
            RequestBody::Unregister { session } => {
                if self.session_gone(session) {
                    self.respond(origin, Err(ClientError::UnknownSession), out);
                    return;
                }
                let operation = LogOperation::Unregister {
                    session,
                    expired: false,
                    seen_through: LogIndex::ZERO,
                };
                self.log(origin, operation, out);
            }
            RequestBody::Command {
                session,
                sequence,
                operation,
            } => self.lead_command(origin, session, sequence, operation, out),
            RequestBody::Connect { .. }
            | RequestBody::ResetEvents { .. }
            | RequestBody::Query { .. } => {
                unreachable!("answered by on_client_request or query")
            }
        }
    }

    fn lead_command(
        &mut self,
        origin: Origin,
        session: SessionId,
        sequence: u64,
        operation: Bytes,
        out: &mut Vec<ServerOutput>,
    ) {
        if self.session_gone(session) {
            self.respond(origin, Err(ClientError::UnknownSession), out);
            return;
        }
        let now_ms = self.now.monotonic_ms;
        let applied_sequence = self
            .host
            .sessions()
            .get(session)
            .map_or(0, |state| state.command_sequence());
        let Some(leadership) = self.leadership.as_mut() else {
            return;
        };
        leadership.heard_ms.insert(session, now_ms);
        let operation = if operation.is_empty() {
            // An empty operation is the client's no-op: it fills a sequence number whose
            // command failed, so later commands are not held back (SPEC §C3).
            LogOperation::NoOp { session, sequence }
        } else {
            LogOperation::Command {
                session,
                sequence,
                operation,
            }
        };
        if sequence == 0 {
            self.log(origin, operation, out);
            return;
        }
        let skip_dedupe = self.replica.replica_config().planted_bugs.skip_dedupe;
        if sequence <= applied_sequence && !skip_dedupe {
            // Applied already: answer from the cache without logging it again.
            let cached = self
                .host
                .sessions()
                .get(session)
                .and_then(|state| state.result(sequence))
                .cloned();
            let body = match cached {
                Some(result) => Ok(ResponseBody::Command {
                    index: result.index,
                    event_index: result.event_index,
                    output: result.output,
                }),
                None => Err(ClientError::Command {
                    last_sequence: applied_sequence,
                }),
            };
            self.respond(origin, body, out);
            return;
        }
        if let Some(waiting) = leadership.by_sequence.get_mut(&(session, sequence)) {
            // A retry of a command logged already: answer this attempt when it applies.
            *waiting = origin;
            return;
        }
        let logged = leadership
            .logged_sequence
            .get(&session)
            .copied()
            .unwrap_or(0)
            .max(applied_sequence);
        if sequence > logged + SEQUENCE_WINDOW {
            self.respond(
                origin,
                Err(ClientError::Command {
                    last_sequence: logged,
                }),
                out,
            );
            return;
        }
        leadership
            .logged_sequence
            .insert(session, logged.max(sequence));
        leadership.by_sequence.insert((session, sequence), origin);
        let payload = operation.encode();
        if self.replica.submit(payload, &mut self.actions).is_err() {
            if let Some(leadership) = self.leadership.as_mut() {
                leadership.by_sequence.remove(&(session, sequence));
            }
            self.respond(origin, Err(ClientError::NoLeader), out);
        }
        self.drain(out);
    }

    /// Appends a session operation whose answer is keyed by its entry's index.
    fn log(&mut self, origin: Origin, operation: LogOperation, out: &mut Vec<ServerOutput>) {
        match self.replica.submit(operation.encode(), &mut self.actions) {
            Ok((index, _)) => {
                if let Some(leadership) = self.leadership.as_mut() {
                    leadership.by_index.insert(index, origin);
                }
            }
            Err(_) => self.respond(origin, Err(ClientError::NoLeader), out),
        }
        self.drain(out);
    }

    /// True if the session was applied here and is no longer open. A session registered
    /// after the last applied entry may still be on its way: it is not refused.
    pub(crate) fn session_gone(&self, session: SessionId) -> bool {
        session.index() <= self.host.last_applied() && self.host.sessions().get(session).is_none()
    }
}
