//! The state-machine host: applies committed entries to sessions and to the user's state
//! machine, exactly once per (session, sequence), in session order (SPEC §C4, §E, §F, §I).
//!
//! Every server runs one host per group and feeds it every committed entry in order, so
//! every host holds the same sessions, results and events at the same index. What to
//! answer a client, and whom to send events, is the server's business: the host reports
//! what each entry did as [`Outcome`]s and the event batches it produced.
//!
//! Order within one entry: the scheduled tasks whose due time the entry's timestamp passed
//! (each at its due time), then the entry itself, each handler followed by the work it
//! handed to `execute`; the events published during all of it form one batch per session
//! at the entry's index.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;

use crate::entry::{Entry, EntryBody};
use crate::session::{
    ApplicationError, ClientError, ClientId, EventBatch, LogOperation, SessionEvent, SessionId,
};
use crate::state_machine::codec::split_operation;
use crate::state_machine::commit::Retention;
use crate::state_machine::context::{Context, Machinery, QueryContext, Task};
use crate::state_machine::machine::{Operations, RawCommit, StateMachine};
use crate::state_machine::sessions::{
    CommandResult, HeldCommand, ServerSession, SessionState, Sessions, HELD_COMMANDS_MAX,
};
use crate::types::LogIndex;

/// What applying one entry did, for the server to answer clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A session opened; its id is the entry's index.
    Registered {
        /// The new session.
        session: SessionId,
        /// The client.
        client: ClientId,
        /// Its timeout.
        timeout_ms: u64,
    },
    /// A keep-alive applied (or its session was unknown).
    KeptAlive {
        /// The keep-alive's index.
        index: LogIndex,
        /// The session.
        session: SessionId,
        /// Unknown session, or done.
        result: Result<(), ClientError>,
    },
    /// An unregister applied. `Ok(false)`: an expiry ignored because the session showed
    /// life after the leader decided.
    Unregistered {
        /// The unregister's index.
        index: LogIndex,
        /// The session.
        session: SessionId,
        /// True for the leader's expiry.
        expired: bool,
        /// Whether the session closed, or why not.
        result: Result<bool, ClientError>,
    },
    /// A command ran, or was answered from the cache, or was refused. Reported when it runs:
    /// a command held back by a gap is reported at a later entry.
    Command {
        /// The session.
        session: SessionId,
        /// Its sequence number.
        sequence: u64,
        /// The index of the command's own entry.
        index: LogIndex,
        /// The result, or why there is none.
        result: Result<CommandResult, ClientError>,
    },
    /// A session is gone (closed by its client, expired, or replaced by a newer session
    /// of the same client).
    Closed {
        /// The session.
        session: SessionId,
        /// True if it expired.
        expired: bool,
    },
}

/// Outcomes and event batches of the entries applied since the caller last cleared it.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// What each entry did, in order.
    pub outcomes: Vec<Outcome>,
    /// Event batches produced, in order.
    pub batches: Vec<EventBatch>,
}

impl Applied {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.outcomes.clear();
        self.batches.clear();
    }
}

/// Counters for metrics and tests.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Commands run by the state machine.
    pub commands_applied: u64,
    /// Retried commands answered from the cache.
    pub commands_deduplicated: u64,
    /// Handlers, listeners or tasks that panicked.
    pub panics: u64,
    /// Entries whose payload was not a session operation.
    pub malformed_entries: u64,
}

/// One state machine with its sessions, clock and scheduler.
pub struct StateMachineHost<S: StateMachine> {
    machine: S,
    operations: Operations<S>,
    sessions: Sessions,
    machinery: Machinery<S>,
    retention: Retention,
    last_applied: LogIndex,
    stats: HostStats,
    /// The sensitivity tests' deliberate bug: run retried commands again.
    planted_skip_dedupe: bool,
}

impl<S: StateMachine> StateMachineHost<S> {
    /// A host for `machine`, before any entry.
    pub fn new(machine: S) -> StateMachineHost<S> {
        StateMachineHost {
            machine,
            operations: Operations::of_machine(),
            sessions: Sessions::default(),
            machinery: Machinery::default(),
            retention: Retention::default(),
            last_applied: LogIndex::ZERO,
            stats: HostStats::default(),
            planted_skip_dedupe: false,
        }
    }

    /// Switches on the deliberate bug that runs retried commands again (the simulator's
    /// sensitivity tests only).
    pub fn plant_skip_dedupe(&mut self) {
        self.planted_skip_dedupe = true;
    }

    /// The user's state machine.
    pub fn machine(&self) -> &S {
        &self.machine
    }

    /// The open sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The last index applied.
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// The state machine's clock.
    pub fn clock_ms(&self) -> u64 {
        self.machinery.scheduler.clock_ms()
    }

    /// Which entries retained commits still hold (for compaction).
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Counters.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// Applies the next committed entry.
    ///
    /// # Panics
    /// If `entry` is not the one after the last applied.
    pub fn apply(&mut self, entry: &Entry, applied: &mut Applied) {
        assert_eq!(
            entry.index,
            self.last_applied.next(),
            "entries apply in order, once"
        );
        self.last_applied = entry.index;
        match &entry.body {
            EntryBody::Configuration { .. } => {}
            EntryBody::Initialize => {
                self.run_due_tasks(entry.index, entry.timestamp_ms);
                // A new leader: elections must not expire sessions (SPEC §I3).
                let now = self.clock_ms();
                for session in self.sessions.iter_mut() {
                    session.last_active_ms = session.last_active_ms.max(now);
                    session.state = SessionState::Open;
                }
            }
            EntryBody::Command { payload } => match LogOperation::decode(payload) {
                Ok(operation) => {
                    self.run_due_tasks(entry.index, entry.timestamp_ms);
                    self.apply_operation(entry.index, operation, applied);
                }
                Err(_) => {
                    // Every server sees the same bytes and skips them the same way; the
                    // checksum already ruled out corruption, so this is a writer's bug.
                    self.stats.malformed_entries += 1;
                }
            },
        }
        self.flush_events(entry.index, applied);
    }

    /// Runs a query against the state as of the last applied entry.
    ///
    /// # Errors
    /// The state machine's error or panic, or an operation it does not know.
    pub fn query(&self, session: SessionId, operation: &Bytes) -> Result<Bytes, ApplicationError> {
        let (id, reader) = split_operation(operation).map_err(|error| ApplicationError {
            message: format!("undecodable query: {error}"),
        })?;
        let raw = RawCommit {
            index: self.last_applied,
            time_ms: self.clock_ms(),
            session,
            operation: reader,
            retention: None,
        };
        let context = QueryContext::new(self.last_applied, self.clock_ms(), &self.sessions);
        let (operations, machine) = (&self.operations, &self.machine);
        catch_unwind(AssertUnwindSafe(|| {
            operations.run_query(id, machine, raw, &context)
        }))
        .unwrap_or_else(|panic| Err(panicked(&panic)))
    }

    /// True if an expiry the leader decided with everything through `seen_through` applied
    /// still holds: the session exists and showed no life after that index.
    pub fn expiry_holds(&self, session: SessionId, seen_through: LogIndex) -> bool {
        self.sessions
            .get(session)
            .is_some_and(|session| session.last_active_index() <= seen_through)
    }

    fn apply_operation(&mut self, index: LogIndex, operation: LogOperation, applied: &mut Applied) {
        let now = self.clock_ms();
        match operation {
            LogOperation::Register { client, timeout_ms } => {
                if let Some(older) = self.sessions.of_client(client).map(ServerSession::id) {
                    // One session per client (SPEC §B1, Copycat #279).
                    self.close_session(index, older, true, applied);
                }
                let session = SessionId(index.0);
                self.sessions
                    .insert(ServerSession::new(session, client, timeout_ms, now));
                self.call_listener(index, Some(session), |machine, context| {
                    machine.on_register(session, context);
                });
                applied.outcomes.push(Outcome::Registered {
                    session,
                    client,
                    timeout_ms,
                });
                self.mark_suspects(session);
            }
            LogOperation::KeepAlive {
                session,
                command_sequence,
                event_index,
            } => {
                let result = match self.sessions.get_mut(session) {
                    Some(state) => {
                        state.last_active_ms = now;
                        state.last_active_index = index;
                        state.state = SessionState::Open;
                        state.acknowledge(command_sequence, event_index);
                        Ok(())
                    }
                    None => Err(ClientError::UnknownSession),
                };
                applied.outcomes.push(Outcome::KeptAlive {
                    index,
                    session,
                    result,
                });
                self.mark_suspects(session);
            }
            LogOperation::Unregister {
                session,
                expired,
                seen_through,
            } => {
                let result = if self.sessions.get(session).is_none() {
                    Err(ClientError::UnknownSession)
                } else if expired && !self.expiry_holds(session, seen_through) {
                    Ok(false)
                } else {
                    self.close_session(index, session, expired, applied);
                    Ok(true)
                };
                applied.outcomes.push(Outcome::Unregistered {
                    index,
                    session,
                    expired,
                    result,
                });
                self.mark_suspects(session);
            }
            LogOperation::Command {
                session,
                sequence,
                operation,
            } => self.sequence_command(index, session, sequence, Some(operation), applied),
            LogOperation::NoOp { session, sequence } => {
                self.sequence_command(index, session, sequence, None, applied);
            }
        }
    }

    /// Runs a command in its session's order: now if it is next, from the cache if it ran
    /// already, or later if an earlier sequence has not arrived yet (SPEC §C3–§C4).
    fn sequence_command(
        &mut self,
        index: LogIndex,
        session: SessionId,
        sequence: u64,
        operation: Option<Bytes>,
        applied: &mut Applied,
    ) {
        let now = self.clock_ms();
        let Some(state) = self.sessions.get_mut(session) else {
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index,
                result: Err(ClientError::UnknownSession),
            });
            return;
        };
        // Any command shows the client alive, so a busy client needs no keep-alives
        // (Copycat #311).
        state.last_active_ms = now;
        state.last_active_index = index;
        state.state = SessionState::Open;
        let applied_through = state.command_sequence;
        if sequence == 0 {
            // Consistency NONE: no order, no deduplication.
            let result = self.run_command(index, session, operation);
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index,
                result: Ok(result),
            });
        } else if sequence <= applied_through && !self.planted_skip_dedupe {
            let result = match state.result(sequence) {
                Some(cached) => {
                    self.stats.commands_deduplicated += 1;
                    Ok(cached.clone())
                }
                // The client acknowledged it, so it cannot be waiting for it.
                None => Err(ClientError::Command {
                    last_sequence: applied_through,
                }),
            };
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index,
                result,
            });
        } else if sequence <= applied_through {
            // The planted bug: a retry runs again.
            let result = self.run_command(index, session, operation);
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index,
                result: Ok(result),
            });
        } else if sequence == applied_through + 1 {
            self.run_in_order(index, session, sequence, operation, applied);
        } else if state.held.len() < HELD_COMMANDS_MAX || state.held.contains_key(&sequence) {
            state
                .held
                .entry(sequence)
                .or_insert(HeldCommand { index, operation });
        } else {
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index,
                result: Err(ClientError::Command {
                    last_sequence: applied_through,
                }),
            });
        }
    }

    /// Runs the session's next command, then every held command that it unblocks.
    fn run_in_order(
        &mut self,
        index: LogIndex,
        session: SessionId,
        sequence: u64,
        operation: Option<Bytes>,
        applied: &mut Applied,
    ) {
        let mut next = Some((index, sequence, operation));
        while let Some((command_index, sequence, operation)) = next.take() {
            let result = self.run_command(command_index, session, operation);
            let Some(state) = self.sessions.get_mut(session) else {
                // The command's own handler cannot close its session; be safe anyway.
                break;
            };
            state.command_sequence = sequence;
            state.results.insert(sequence, result.clone());
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index: command_index,
                result: Ok(result),
            });
            if let Some(held) = state.held.remove(&(sequence + 1)) {
                next = Some((held.index, sequence + 1, held.operation));
            }
        }
    }

    /// Runs one command in the state machine (or a no-op) at the current entry.
    fn run_command(
        &mut self,
        command_index: LogIndex,
        session: SessionId,
        operation: Option<Bytes>,
    ) -> CommandResult {
        let index = self.last_applied;
        let event_index = if self
            .machinery
            .published
            .iter()
            .any(|(target, _)| *target == session)
        {
            // Tasks at this entry already published to the session: its batch at this
            // index comes before the response.
            index
        } else {
            self.sessions
                .get(session)
                .map_or(LogIndex::ZERO, ServerSession::event_index)
        };
        let output = match operation {
            None => Ok(Bytes::new()),
            Some(operation) => {
                self.stats.commands_applied += 1;
                let clock = self.clock_ms();
                let Self {
                    machine,
                    operations,
                    sessions,
                    machinery,
                    retention,
                    stats,
                    ..
                } = self;
                let output = match split_operation(&operation) {
                    Err(error) => Err(ApplicationError {
                        message: format!("undecodable command: {error}"),
                    }),
                    Ok((id, reader)) => {
                        let raw = RawCommit {
                            index: command_index,
                            time_ms: clock,
                            session,
                            operation: reader,
                            retention: Some(retention.clone()),
                        };
                        let mut context = Context::new(index, clock, sessions, None, machinery);
                        catch_unwind(AssertUnwindSafe(|| {
                            operations.run_command(id, machine, raw, &mut context)
                        }))
                        .unwrap_or_else(|panic| {
                            stats.panics += 1;
                            Err(panicked(&panic))
                        })
                    }
                };
                self.run_executes();
                output
            }
        };
        CommandResult {
            index: command_index,
            event_index,
            output,
        }
    }

    fn close_session(
        &mut self,
        index: LogIndex,
        session: SessionId,
        expired: bool,
        applied: &mut Applied,
    ) {
        let Some(state) = self.sessions.remove(session) else {
            return;
        };
        // Anyone waiting on a command held back by a gap gets an answer.
        for (sequence, held) in state.held {
            applied.outcomes.push(Outcome::Command {
                session,
                sequence,
                index: held.index,
                result: Err(ClientError::UnknownSession),
            });
        }
        self.machinery
            .published
            .retain(|(target, _)| *target != session);
        self.call_listener(index, Some(session), |machine, context| {
            if expired {
                machine.on_expire(session, context);
            } else {
                machine.on_unregister(session, context);
            }
        });
        self.call_listener(index, Some(session), |machine, context| {
            machine.on_close(session, context);
        });
        applied.outcomes.push(Outcome::Closed { session, expired });
    }

    /// Marks sessions silent longer than their timeout, in log time, as suspect (SPEC §I1).
    /// Only the leader expires them, by logging an unregister.
    fn mark_suspects(&mut self, active: SessionId) {
        let now = self.clock_ms();
        for session in self.sessions.iter_mut() {
            if session.id() != active
                && now.saturating_sub(session.last_active_ms) > session.timeout_ms()
            {
                session.state = SessionState::Unstable;
            }
        }
    }

    /// Runs user code (a listener, a task, an executed closure) with a context at `index`
    /// and `clock_ms`; a panic is counted and contained.
    fn run_user(
        &mut self,
        index: LogIndex,
        clock_ms: u64,
        changing: Option<SessionId>,
        code: impl FnOnce(&mut S, &mut Context<'_, S>),
    ) {
        let Self {
            machine,
            sessions,
            machinery,
            stats,
            ..
        } = self;
        let mut context = Context::new(index, clock_ms, sessions, changing, machinery);
        if catch_unwind(AssertUnwindSafe(|| code(machine, &mut context))).is_err() {
            stats.panics += 1;
        }
    }

    fn call_listener(
        &mut self,
        index: LogIndex,
        changing: Option<SessionId>,
        listener: impl FnOnce(&mut S, &mut Context<'_, S>),
    ) {
        self.run_user(index, self.clock_ms(), changing, listener);
        self.run_executes();
    }

    fn run_due_tasks(&mut self, index: LogIndex, timestamp_ms: u64) {
        for due in self.machinery.scheduler.tick(timestamp_ms) {
            let Some(task) = self.machinery.tasks.remove(&due.id) else {
                continue; // Cancelled by a task that ran before it.
            };
            self.machinery.scheduler.run_at(due.due_ms);
            match task {
                Task::Once(task) => self.run_user(index, due.due_ms, None, task),
                Task::Every(mut task) => {
                    self.run_user(index, due.due_ms, None, &mut task);
                    // Unless it cancelled itself, it runs again.
                    if self.machinery.scheduler.contains(due.id) {
                        self.machinery.tasks.insert(due.id, Task::Every(task));
                    }
                }
            }
            self.run_executes();
        }
        self.machinery.scheduler.finish_tasks(timestamp_ms);
    }

    fn run_executes(&mut self) {
        let index = self.last_applied;
        while let Some(task) = self.machinery.executes.pop_front() {
            self.run_user(index, self.clock_ms(), None, task);
        }
    }

    /// Turns the events published while applying `index` into one batch per session.
    fn flush_events(&mut self, index: LogIndex, applied: &mut Applied) {
        if self.machinery.published.is_empty() {
            return;
        }
        let mut published = std::mem::take(&mut self.machinery.published);
        // Stable: each session's events keep their publishing order.
        published.sort_by_key(|(session, _)| *session);
        let mut events: Vec<SessionEvent> = Vec::new();
        let mut current: Option<SessionId> = None;
        for (session, event) in published.drain(..) {
            if current != Some(session) {
                if let Some(previous) = current {
                    self.push_batch(previous, index, std::mem::take(&mut events), applied);
                }
                current = Some(session);
            }
            events.push(event);
        }
        if let Some(session) = current {
            self.push_batch(session, index, events, applied);
        }
        self.machinery.published = published;
    }

    fn push_batch(
        &mut self,
        session: SessionId,
        index: LogIndex,
        events: Vec<SessionEvent>,
        applied: &mut Applied,
    ) {
        if let Some(state) = self.sessions.get_mut(session) {
            let batch = state.push_batch(EventBatch {
                session,
                event_index: index,
                previous_index: LogIndex::ZERO,
                events,
            });
            applied.batches.push(batch);
        }
    }
}

fn panicked(panic: &Box<dyn std::any::Any + Send>) -> ApplicationError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    ApplicationError {
        message: format!("the state machine panicked: {message}"),
    }
}
