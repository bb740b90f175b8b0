//! What a handler may see and do besides its commit (SPEC §E3–§E5, §F1).
//!
//! A command handler (and a session listener, and a scheduled task) gets a [`Context`]: the
//! index and clock, the sessions, the deterministic executor (`schedule`,
//! `schedule_interval`, `execute`, `cancel`) and `publish`. A query handler gets a
//! [`QueryContext`], which has only the read-only part: scheduling or publishing from a
//! query is not a runtime error here but a compile error.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::session::{SessionEvent, SessionId};
use crate::state_machine::scheduler::{Scheduler, TaskId};
use crate::state_machine::sessions::Sessions;
use crate::types::LogIndex;

/// A task that runs once.
pub type OnceTask<S> = Box<dyn for<'c> FnOnce(&mut S, &mut Context<'c, S>)>;
/// A task that runs every interval.
pub type EveryTask<S> = Box<dyn for<'c> FnMut(&mut S, &mut Context<'c, S>)>;

pub(crate) enum Task<S> {
    Once(OnceTask<S>),
    Every(EveryTask<S>),
}

/// Events published, scheduled tasks and deferred work of one state machine: the part of
/// the host a handler may change.
pub(crate) struct Machinery<S> {
    pub scheduler: Scheduler<()>,
    pub tasks: BTreeMap<TaskId, Task<S>>,
    pub executes: VecDeque<OnceTask<S>>,
    pub published: Vec<(SessionId, SessionEvent)>,
}

impl<S> Default for Machinery<S> {
    fn default() -> Self {
        Machinery {
            scheduler: Scheduler::default(),
            tasks: BTreeMap::new(),
            executes: VecDeque::new(),
            published: Vec::new(),
        }
    }
}

/// Why a context call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextError {
    /// Events go only to open sessions.
    SessionNotOpen(SessionId),
    /// No publishing to the session being registered or closed (SPEC §E5).
    SessionChanging(SessionId),
}

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextError::SessionNotOpen(session) => write!(f, "{session} is not open"),
            ContextError::SessionChanging(session) => {
                write!(f, "{session} is being registered or closed")
            }
        }
    }
}

impl std::error::Error for ContextError {}

/// The context of a command, a session listener or a scheduled task.
pub struct Context<'a, S> {
    index: LogIndex,
    clock_ms: u64,
    sessions: &'a Sessions,
    changing: Option<SessionId>,
    machinery: &'a mut Machinery<S>,
}

impl<'a, S> Context<'a, S> {
    pub(crate) fn new(
        index: LogIndex,
        clock_ms: u64,
        sessions: &'a Sessions,
        changing: Option<SessionId>,
        machinery: &'a mut Machinery<S>,
    ) -> Context<'a, S> {
        Context {
            index,
            clock_ms,
            sessions,
            changing,
            machinery,
        }
    }

    /// The index being applied.
    #[must_use]
    pub fn index(&self) -> LogIndex {
        self.index
    }

    /// The state machine's clock (SPEC §E3): the leader's timestamps, never going back; a
    /// scheduled task sees its own due time.
    #[must_use]
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// The open sessions.
    #[must_use]
    pub fn sessions(&self) -> &Sessions {
        self.sessions
    }

    /// Runs `task` once, `delay_ms` after the clock, before the first entry whose
    /// timestamp passes it (SPEC §E4).
    pub fn schedule(
        &mut self,
        delay_ms: u64,
        task: impl for<'c> FnOnce(&mut S, &mut Context<'c, S>) + 'static,
    ) -> TaskId {
        let id = self.machinery.scheduler.schedule(delay_ms, ());
        self.machinery.tasks.insert(id, Task::Once(Box::new(task)));
        id
    }

    /// Runs `task` `initial_ms` after the clock and then every `interval_ms` after the
    /// timestamp that ran it.
    pub fn schedule_interval(
        &mut self,
        initial_ms: u64,
        interval_ms: u64,
        task: impl for<'c> FnMut(&mut S, &mut Context<'c, S>) + 'static,
    ) -> TaskId {
        let id = self
            .machinery
            .scheduler
            .schedule_interval(initial_ms, interval_ms, ());
        self.machinery.tasks.insert(id, Task::Every(Box::new(task)));
        id
    }

    /// Cancels a scheduled task; false if it already ran (once) or was cancelled. A
    /// periodic task may cancel itself while it runs.
    pub fn cancel(&mut self, id: TaskId) -> bool {
        self.machinery.tasks.remove(&id);
        self.machinery.scheduler.cancel(id)
    }

    /// Runs `task` right after the current handler, at the same index and clock, before
    /// anything else is applied.
    pub fn execute(&mut self, task: impl for<'c> FnOnce(&mut S, &mut Context<'c, S>) + 'static) {
        self.machinery.executes.push_back(Box::new(task));
    }

    /// Publishes an event to an open session (SPEC §F1). Every server records it; the
    /// server holding the client's connection sends it.
    ///
    /// # Errors
    /// The session is not open, or is the one being registered or closed.
    pub fn publish(
        &mut self,
        session: SessionId,
        name: impl Into<String>,
        payload: Bytes,
    ) -> Result<(), ContextError> {
        if self.changing == Some(session) {
            return Err(ContextError::SessionChanging(session));
        }
        if self.sessions.get(session).is_none() {
            return Err(ContextError::SessionNotOpen(session));
        }
        self.machinery.published.push((
            session,
            SessionEvent {
                name: name.into(),
                payload,
            },
        ));
        Ok(())
    }
}

/// The context of a query: read-only.
#[derive(Clone, Copy)]
pub struct QueryContext<'a> {
    index: LogIndex,
    clock_ms: u64,
    sessions: &'a Sessions,
}

impl<'a> QueryContext<'a> {
    pub(crate) fn new(index: LogIndex, clock_ms: u64, sessions: &'a Sessions) -> Self {
        QueryContext {
            index,
            clock_ms,
            sessions,
        }
    }

    /// The index the query reads at (the server's last applied).
    #[must_use]
    pub fn index(&self) -> LogIndex {
        self.index
    }

    /// The state machine's clock at that index.
    #[must_use]
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// The open sessions.
    #[must_use]
    pub fn sessions(&self) -> &Sessions {
        self.sessions
    }
}
