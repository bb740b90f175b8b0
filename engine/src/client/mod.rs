//! The client side of the session protocol, sans IO (SPEC §B, §C3, §D2, §F2–§F3).
//!
//! A [`ClientSession`] is driven by a real client library and by the simulator alike. It
//! never reads a clock or touches a socket: time comes in with every input, randomness
//! from a generator seeded by [`ClientConfig::seed`], and every effect goes out as a
//! [`ClientAction`]: a request to send to one server, a connection to drop, an operation
//! completed, a session event to deliver, a state change, a session opened.
//!
//! # Connection
//!
//! The client talks to one server at a time. It sends `Connect`, then (once answered) its
//! requests; every response naming a leader or members refreshes the server list, and the
//! client moves when the [`ServerSelection`] no longer accepts its server (to a server not
//! yet tried in the current pass, so two servers naming each other the leader cannot make
//! it bounce). A request unanswered within `request_timeout_ms`, a lost connection, or an
//! answer meaning "not here" (`NoLeader`, `IllegalMemberState`, a `Query` error, the wrong
//! kind of response) is a failure of that server: the client forgets the leader, moves to
//! the next server at once and sends everything in flight again there, with the same
//! sequence numbers. Every attempt gets a fresh request id, and an answer is taken only
//! from the server and id still awaited, so late answers to old attempts are harmless.
//!
//! When a whole pass over the acceptable servers fails, the client waits:
//! - while registering (the first session, or a new one after RECOVER), as the
//!   [`ConnectionStrategy`] says: ONCE gives up (the client closes and pending operations
//!   fail with `ClosedSession`), EXPONENTIAL_BACKOFF waits 2, 4, 8, 16, 32, 60, 60 ... s,
//!   FIBONACCI_BACKOFF 1, 1, 2, 3, 5, 8, 13, 13 ... s;
//! - once a session is open (or closing), the session is UNSTABLE and the client retries
//!   whatever the strategy, after 1, 1, 2, 3, 5, 5 ... s (SPEC §C3's retry back-off). So
//!   "Fibonacci back-off for retryable errors" applies between passes, not between
//!   servers: a failover to a live server costs no wait.
//!
//! A pass starts over (and the back-off resets) when a server answers a session request;
//! an answered `Connect` alone does not count, or a cluster without a leader would be
//! cycled through without pause.
//!
//! # Session
//!
//! States as the user sees them ([`ClientState`]): CLOSED before `open`; SUSPENDED while
//! registering; CONNECTED once the session is registered; SUSPENDED while it is UNSTABLE
//! (a pass failed, or no answer showed it alive for a whole session timeout), while it
//! is being replaced after an expiry, and while `close` cannot reach a server; CLOSED for
//! good. [`ClientAction::StateChanged`] is emitted only on a change.
//!
//! - **Keep-alives** carry the highest command sequence answered in order and the highest
//!   event batch received in order. A command answered shows the session alive (the
//!   servers count any command as life), so a keep-alive goes out only when nothing
//!   showed life for timeout/2 (Copycat #311). Since only keep-alives acknowledge, one
//!   also goes out at least once per session timeout while there is something new to
//!   acknowledge: under steady load that is one keep-alive per timeout instead of two, and
//!   the servers' output and event caches stay bounded.
//! - **Expiry.** `UnknownSession` on any request (keep-alive, command, query) expires the
//!   session at once (Copycat #277); nothing more is sent for it (#156/#157). With
//!   [`RecoveryStrategy::Close`] the client closes and every pending operation fails with
//!   `ClosedSession`. With [`RecoveryStrategy::Recover`] it registers a new session
//!   (reported by a new [`ClientAction::SessionOpened`], and CONNECTED only then: #228),
//!   and resubmits pending operations in order with new sequence numbers: an operation
//!   sent by the old session may have applied and then applies again, so linearizability
//!   across the two sessions is lost. Registering again follows the connection strategy,
//!   so a cluster that keeps refusing cannot cause a resubmission loop (#335).
//! - **Unstability timeout.** UNSTABLE for longer than `unstability_timeout_ms` (when not
//!   0) makes the session STALE: the client closes without unregistering (no server is
//!   answering; the servers expire the session themselves).
//! - **Close** completes pending operations at once (an operation already answered and
//!   waiting for its turn with its outcome, the others with `ClosedSession`: their fate on
//!   the servers is unknown), then unregisters; if no server answers it goes SUSPENDED
//!   and keeps trying with the retry back-off (SPEC §B1). It sends no keep-alives, so an
//!   unreachable cluster eventually answers `UnknownSession`, which also closes.
//! - **Submissions** before `open`, while closing or after close are refused with
//!   [`SubmitError::Closed`] and nothing is sent; beyond [`PENDING_OPERATIONS_MAX`]
//!   pending operations they are refused with [`SubmitError::TooManyPending`].
//!   Operations submitted while registering wait for the session.
//!
//! # Operations
//!
//! See [`submitter`] for sequencing, failover, gap handling (`Command { last_sequence }`)
//! and the empty-operation no-op that fills the sequence of a command that failed for
//! good, and [`event_sequencer`] for the order of completions and events. In short:
//! completions come in submission order; a linearizable command's and every query's
//! completion waits for the session events published before the operation ran;
//! sequential and NONE commands do not wait for events. An `Application` error is a
//! normal answer (the operation ran) and completes with that error.
//!
//! Events need no reset when the client moves: a server pushes every batch the session has
//! not acknowledged to a client that connects. A gap in the batches asks for one
//! `ResetEvents`; a response that waits on a missing batch asks again after each request
//! timeout and is never released ahead of it (if the session ends first, it fails with the
//! session's error).
//! Events are bounded by [`event_sequencer::EVENT_BATCHES_QUEUED_MAX`] batches waiting.
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `client_session.rs` | [`ClientSession`]: inputs, the session's life, keep-alives, responses |
//! | `connection.rs` | [`connection::Connection`]: the link to one server, request ids, passes and waits |
//! | `selector.rs` | [`selector::ServerSelector`]: servers, leader, the order of a pass |
//! | `submitter.rs` | [`submitter::Submitter`]: pending operations, sequence numbers, resubmission |
//! | `event_sequencer.rs` | [`event_sequencer::EventSequencer`]: completions in order, events, resets |
//! | `strategies.rs` | connection, selection and recovery strategies; back-off tables |
//! | `action.rs`, `config.rs` | the vocabulary and the settings |

pub mod action;
pub mod client_session;
pub mod config;
pub mod connection;
pub mod event_sequencer;
pub mod selector;
pub mod strategies;
pub mod submitter;

pub use action::{ClientAction, ClientState, Completion, OperationId, SubmitError};
pub use client_session::ClientSession;
pub use config::{ClientConfig, PENDING_OPERATIONS_MAX, REQUEST_TIMEOUT_MS_DEFAULT};
pub use strategies::{ConnectionStrategy, RecoveryStrategy, ServerSelection};

#[cfg(test)]
mod tests;
