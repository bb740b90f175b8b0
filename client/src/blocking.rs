//! [`BlockingClient`]: the client for programs that know nothing of glommio.
//!
//! It starts one thread running a glommio `LocalExecutor` with the async [`Client`] on it,
//! and forwards every call to that thread through a mailbox. Calls may come from any
//! thread, many at once; each call (or each [`Pending`] handle) waits for its own answer.
//!
//! # Waking the executor from another thread
//!
//! The mailbox is a mutex over a queue plus the waker of the executor task that serves it.
//! A caller pushes its request and, if that task is parked on an empty mailbox, takes the
//! waker and calls it. glommio 0.9 accepts wakers called from foreign threads: the waker
//! goes to the executor's own crossbeam queue, and when the executor is asleep (or about to
//! be: it announces it and issues a `membarrier` before sleeping, then looks once more)
//! the waker also writes the executor's eventfd, on which a read is armed in its io_uring,
//! so the executor wakes at once (`task/raw.rs` `do_wake`, `sys/mod.rs`
//! `SleepNotifier::notify`, `sys/uring.rs` `Reactor::wait`). There is no polling: the
//! executor sleeps until a request, a socket or a timer needs it, and costs no CPU while
//! the program makes no calls. While the serving task is busy, requests pile up and are
//! taken in one batch, so a loaded client pays one wake-up per batch, not per call.
//!
//! The answer goes back through a one-value slot with a condition variable: the calling
//! thread sleeps in the kernel and is woken by the executor (a futex wake).
//!
//! glommio's `shared_channel` does not fit: both of its ends must be connected inside
//! glommio executors (`connect().await`), and it has one producer, while here the callers
//! are any number of plain threads.
//!
//! The measured cost of the two crossings is in the crate documentation.

use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use coracle_engine::client::ClientState;
use coracle_engine::session::{CommandConsistency, QueryConsistency, SessionId};
use coracle_engine::state_machine::{decode_value, encode_command, encode_query, Command, Query};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::client::Client;
use crate::driver::{Event, Kind, Response, Status, EVENTS_QUEUED_MAX};
use crate::error::Error;
use crate::oneshot::{self, Pending, Reply};
use crate::options::ClientOptions;

/// What a calling thread asks of the executor.
enum Request {
    Submit {
        kind: Kind,
        operation: Bytes,
        reply: Reply<Response>,
    },
    Status {
        reply: Reply<Status>,
    },
    Close {
        reply: Reply<()>,
    },
}

impl Request {
    /// Answers with `error` without doing anything.
    fn refuse(self, error: Error) {
        match self {
            Request::Submit { reply, .. } => reply.send(Err(error)),
            Request::Status { reply } => reply.send(Err(error)),
            Request::Close { reply } => reply.send(Err(error)),
        }
    }
}

#[derive(Default)]
struct MailboxState {
    requests: Vec<Request>,
    /// The serving task's waker, present only while it waits on an empty mailbox.
    waker: Option<Waker>,
    closed: bool,
}

/// Requests from any thread to the executor.
#[derive(Default)]
struct Mailbox {
    state: Mutex<MailboxState>,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        // Every change under this lock is one push or one swap: a panic cannot tear it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `request` and wakes the executor if it waits; refuses it once closed.
    fn post(&self, request: Request) {
        let mut state = self.lock();
        if state.closed {
            drop(state);
            request.refuse(Error::Closed);
            return;
        }
        state.requests.push(request);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake(); // Outside the lock: the executor may take it at once.
        }
    }

    /// Every request queued, once there is one.
    async fn take(&self) -> Vec<Request> {
        std::future::poll_fn(|context| {
            let mut state = self.lock();
            if state.requests.is_empty() {
                state.waker = Some(context.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(std::mem::take(&mut state.requests))
        })
        .await
    }

    /// Refuses every later request; returns those still queued.
    fn close(&self) -> Vec<Request> {
        let mut state = self.lock();
        state.closed = true;
        state.waker = None;
        std::mem::take(&mut state.requests)
    }
}

/// Closes the mailbox when the executor's main task ends, however it ends: queued
/// requests are refused and later ones too, so no caller waits on a stopped executor.
struct MailboxCloser(Arc<Mailbox>);

impl Drop for MailboxCloser {
    fn drop(&mut self) {
        for request in self.0.close() {
            request.refuse(Error::Closed);
        }
    }
}

// Callers share one client between threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<BlockingClient>();
};

/// A client session usable from any thread of any program: its own thread runs the async
/// [`Client`] on a glommio executor. Share it between threads with an `Arc`.
///
/// Dropping it closes the session (unregistering, waiting at most `close_timeout_ms`) and
/// joins the thread.
pub struct BlockingClient {
    mailbox: Arc<Mailbox>,
    events: Mutex<Receiver<Event>>,
    executor: Option<ExecutorJoinHandle<()>>,
}

impl BlockingClient {
    /// Starts the client's thread, learns the nodes and registers a session; returns once
    /// the session is registered.
    ///
    /// # Errors
    /// As [`Client::connect`], or [`Error::Runtime`] if the executor cannot start.
    pub fn connect(options: ClientOptions) -> Result<BlockingClient, Error> {
        options.validate()?;
        let mailbox = Arc::new(Mailbox::default());
        let (connected_reply, connected) = oneshot::channel::<()>();
        let (event_sender, event_receiver) = mpsc::sync_channel(EVENTS_QUEUED_MAX);
        let served = Arc::clone(&mailbox);
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .name("coracle-client")
            .io_memory(options.blocking_io_memory_bytes)
            .spawn(move || serve(options, served, connected_reply, event_sender))
            .map_err(|error| Error::Runtime {
                reason: format!("cannot start the client's executor: {error}"),
            })?;
        let mut client = BlockingClient {
            mailbox,
            events: Mutex::new(event_receiver),
            executor: Some(executor),
        };
        match connected.wait() {
            Ok(()) => Ok(client),
            Err(error) => {
                client.join();
                Err(error)
            }
        }
    }

    /// Submits a linearizable command and waits for its outcome.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn command(&self, operation: Bytes) -> Result<Response, Error> {
        self.send_command(operation, CommandConsistency::Linearizable)
            .wait()
    }

    /// Runs a query and waits for its outcome.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn query(
        &self,
        operation: Bytes,
        consistency: QueryConsistency,
    ) -> Result<Response, Error> {
        self.send_query(operation, consistency).wait()
    }

    /// Runs a typed command and decodes its output.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn execute<C: Command>(&self, command: &C) -> Result<C::Output, Error> {
        let response = self.command(encode_command(command))?;
        decode_value(&response.output).map_err(Error::Decode)
    }

    /// Runs a typed query and decodes its output.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn read<Q: Query>(
        &self,
        query: &Q,
        consistency: QueryConsistency,
    ) -> Result<Q::Output, Error> {
        let response = self.query(encode_query(query), consistency)?;
        decode_value(&response.output).map_err(Error::Decode)
    }

    /// Submits a command without waiting: the order of calls (from one thread) is the
    /// session's order. Wait on the handle later; many may be in flight.
    pub fn send_command(
        &self,
        operation: Bytes,
        consistency: CommandConsistency,
    ) -> Pending<Response> {
        self.post_submit(Kind::Command(consistency), operation)
    }

    /// Submits a query without waiting.
    pub fn send_query(&self, operation: Bytes, consistency: QueryConsistency) -> Pending<Response> {
        self.post_submit(Kind::Query(consistency), operation)
    }

    fn post_submit(&self, kind: Kind, operation: Bytes) -> Pending<Response> {
        let (reply, pending) = oneshot::channel();
        self.mailbox.post(Request::Submit {
            kind,
            operation,
            reply,
        });
        pending
    }

    /// Where the client stands, with its counters (a round trip through the executor).
    ///
    /// # Errors
    /// [`Error::Closed`] once closed.
    pub fn status(&self) -> Result<Status, Error> {
        let (reply, pending) = oneshot::channel();
        self.mailbox.post(Request::Status { reply });
        pending.wait()
    }

    /// CONNECTED, SUSPENDED or CLOSED.
    #[must_use]
    pub fn state(&self) -> ClientState {
        self.status()
            .map_or(ClientState::Closed, |status| status.state)
    }

    /// The registered session, if any.
    #[must_use]
    pub fn session(&self) -> Option<SessionId> {
        self.status().ok().and_then(|status| status.session)
    }

    /// The next session event, waiting at most `timeout`.
    #[must_use]
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.lock_events().recv_timeout(timeout).ok()
    }

    /// The next session event if one is waiting.
    #[must_use]
    pub fn try_next_event(&self) -> Option<Event> {
        self.lock_events().try_recv().ok()
    }

    fn lock_events(&self) -> MutexGuard<'_, Receiver<Event>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unregisters the session and stops the client's thread. Pending operations complete
    /// at once. Closing a closed client does nothing.
    ///
    /// # Errors
    /// [`Error::CloseTimedOut`] if no server unregistered the session in time.
    pub fn close(mut self) -> Result<(), Error> {
        let result = self.close_session();
        self.join();
        result
    }

    fn close_session(&self) -> Result<(), Error> {
        let (reply, pending) = oneshot::channel();
        self.mailbox.post(Request::Close { reply });
        match pending.wait() {
            Err(Error::Closed) => Ok(()), // Already closed.
            result => result,
        }
    }

    fn join(&mut self) {
        if let Some(executor) = self.executor.take() {
            // An executor that panicked answered every waiter with `Runtime` already.
            let _ = executor.join();
        }
    }
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        if self.executor.is_some() {
            let _ = self.close_session();
            self.join();
        }
    }
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish_non_exhaustive()
    }
}

/// The executor's main task: connect, then serve the mailbox until closed.
async fn serve(
    options: ClientOptions,
    mailbox: Arc<Mailbox>,
    connected: Reply<()>,
    events: SyncSender<Event>,
) {
    let _closer = MailboxCloser(Arc::clone(&mailbox));
    let client = match Client::connect(options).await {
        Ok(client) => Rc::new(client),
        Err(error) => return connected.send(Err(error)),
    };
    connected.send(Ok(()));
    glommio::spawn_local(forward_events(Rc::clone(&client), events)).detach();
    loop {
        let mut requests = mailbox.take().await.into_iter();
        while let Some(request) = requests.next() {
            match request {
                Request::Submit {
                    kind,
                    operation,
                    reply,
                } => client.submit_for_thread(kind, operation, reply),
                Request::Status { reply } => reply.send(Ok(client.status())),
                Request::Close { reply } => {
                    for later in requests.chain(mailbox.close()) {
                        later.refuse(Error::Closed);
                    }
                    reply.send(client.close().await);
                    return;
                }
            }
        }
    }
}

/// Moves session events to the channel the calling threads read; a full channel drops the
/// event and counts it (the bound is the one the async client keeps).
async fn forward_events(client: Rc<Client>, events: SyncSender<Event>) {
    while let Some(event) = client.next_event().await {
        match events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => client.count_dropped_event(),
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}
