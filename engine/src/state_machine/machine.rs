//! The trait a user's replicated state machine implements, and the registry of its typed
//! command and query handlers (SPEC §E1, §E5, §E6).
//!
//! ```text
//! impl StateMachine for Counter {
//!     fn operations(operations: &mut Operations<Self>) {
//!         operations
//!             .command(|counter: &mut Counter, commit: Commit<Add>, _ctx| {
//!                 counter.value += commit.operation().0;
//!                 Ok(counter.value)
//!             })
//!             .query(|counter: &Counter, _commit: Commit<Get>, _ctx| Ok(counter.value));
//!     }
//! }
//! ```
//!
//! Handlers must be deterministic: no clock but the context's, no randomness, no I/O. An
//! error a handler returns, or a panic it raises, becomes an [`ApplicationError`] for that
//! one operation; the replica goes on. A panic may leave the handler's own changes half
//! done — but every replica applies the same commands in the same order and panics the
//! same way, so the replicas still agree.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::session::reader::Reader;
use crate::session::{ApplicationError, SessionId};
use crate::state_machine::codec::{Codec, Command, Query};
use crate::state_machine::commit::{Commit, Retention};
use crate::state_machine::context::{Context, QueryContext};
use crate::types::LogIndex;

/// A replicated state machine.
pub trait StateMachine: Sized + 'static {
    /// Registers the handlers of every command and query it understands.
    fn operations(operations: &mut Operations<Self>);

    /// A session opened (SPEC §E5). Publishing to it is refused while this runs.
    fn on_register(&mut self, _session: SessionId, _context: &mut Context<'_, Self>) {}

    /// The client closed its session. `on_close` follows.
    fn on_unregister(&mut self, _session: SessionId, _context: &mut Context<'_, Self>) {}

    /// The leader expired the session: its client was silent longer than its timeout.
    /// `on_close` follows.
    fn on_expire(&mut self, _session: SessionId, _context: &mut Context<'_, Self>) {}

    /// The session is gone, after `on_unregister` or `on_expire`: release what it held.
    fn on_close(&mut self, _session: SessionId, _context: &mut Context<'_, Self>) {}

    /// The whole state as bytes, for a snapshot; `None` if this machine takes none (its
    /// log is then compacted only through released commits).
    fn snapshot(&self) -> Option<Bytes> {
        None
    }

    /// Replaces the state with a snapshot's. State kept as retained commits must not be
    /// overwritten here (SPEC §E6).
    ///
    /// # Errors
    /// Bytes this machine did not write.
    fn install(&mut self, _snapshot: &Bytes) -> Result<(), ApplicationError> {
        Err(ApplicationError {
            message: "this state machine takes no snapshots".into(),
        })
    }
}

/// A command as the host hands it to a typed handler: its place, and its bytes after the id.
pub(crate) struct RawCommit {
    pub index: LogIndex,
    pub time_ms: u64,
    pub session: SessionId,
    pub operation: Reader,
    pub retention: Option<Retention>,
}

type CommandHandler<S> =
    Box<dyn for<'c> Fn(&mut S, RawCommit, &mut Context<'c, S>) -> Result<Bytes, ApplicationError>>;
type QueryHandler<S> =
    Box<dyn for<'c> Fn(&S, RawCommit, &QueryContext<'c>) -> Result<Bytes, ApplicationError>>;

/// The handlers of one state machine, by operation id.
pub struct Operations<S> {
    commands: BTreeMap<u32, CommandHandler<S>>,
    queries: BTreeMap<u32, QueryHandler<S>>,
}

impl<S: StateMachine> Operations<S> {
    /// The registry `S` declares.
    pub(crate) fn of_machine() -> Operations<S> {
        let mut operations = Operations {
            commands: BTreeMap::new(),
            queries: BTreeMap::new(),
        };
        S::operations(&mut operations);
        operations
    }

    /// Registers the handler of command `C`.
    ///
    /// # Panics
    /// If a command with the same id is already registered (a programming error, found the
    /// first time the state machine is built).
    pub fn command<C: Command>(
        &mut self,
        handler: impl for<'c> Fn(
                &mut S,
                Commit<C>,
                &mut Context<'c, S>,
            ) -> Result<C::Output, ApplicationError>
            + 'static,
    ) -> &mut Self {
        let wrapped: CommandHandler<S> = Box::new(move |machine, raw, context| {
            let operation = decode_operation::<C>(raw.operation)?;
            let commit = Commit::new(
                raw.index,
                raw.time_ms,
                raw.session,
                operation,
                raw.retention,
            );
            let output = handler(machine, commit, context)?;
            let mut out = Vec::new();
            output.encode(&mut out);
            Ok(Bytes::from(out))
        });
        let previous = self.commands.insert(C::ID, wrapped);
        assert!(previous.is_none(), "command id {} registered twice", C::ID);
        self
    }

    /// Registers the handler of query `Q`.
    ///
    /// # Panics
    /// If a query with the same id is already registered.
    pub fn query<Q: Query>(
        &mut self,
        handler: impl for<'c> Fn(&S, Commit<Q>, &QueryContext<'c>) -> Result<Q::Output, ApplicationError>
            + 'static,
    ) -> &mut Self {
        let wrapped: QueryHandler<S> = Box::new(move |machine, raw, context| {
            let operation = decode_operation::<Q>(raw.operation)?;
            let commit = Commit::new(raw.index, raw.time_ms, raw.session, operation, None);
            let output = handler(machine, commit, context)?;
            let mut out = Vec::new();
            output.encode(&mut out);
            Ok(Bytes::from(out))
        });
        let previous = self.queries.insert(Q::ID, wrapped);
        assert!(previous.is_none(), "query id {} registered twice", Q::ID);
        self
    }

    pub(crate) fn run_command(
        &self,
        id: u32,
        machine: &mut S,
        raw: RawCommit,
        context: &mut Context<'_, S>,
    ) -> Result<Bytes, ApplicationError> {
        match self.commands.get(&id) {
            Some(handler) => handler(machine, raw, context),
            None => Err(ApplicationError {
                message: format!("unknown command id {id}"),
            }),
        }
    }

    pub(crate) fn run_query(
        &self,
        id: u32,
        machine: &S,
        raw: RawCommit,
        context: &QueryContext<'_>,
    ) -> Result<Bytes, ApplicationError> {
        match self.queries.get(&id) {
            Some(handler) => handler(machine, raw, context),
            None => Err(ApplicationError {
                message: format!("unknown query id {id}"),
            }),
        }
    }
}

fn decode_operation<T: Codec>(mut reader: Reader) -> Result<T, ApplicationError> {
    let operation = T::decode(&mut reader).map_err(|error| ApplicationError {
        message: format!("undecodable operation: {error}"),
    })?;
    reader.finish().map_err(|error| ApplicationError {
        message: format!("undecodable operation: {error}"),
    })?;
    Ok(operation)
}
