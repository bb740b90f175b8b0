//! [`Client`]: the async client, on the glommio executor that calls [`Client::connect`].

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_engine::client::{ClientSession, ClientState, OperationId};
use coracle_engine::session::{CommandConsistency, QueryConsistency, SessionId};
use coracle_engine::state_machine::{decode_value, encode_command, encode_query, Command, Query};
use coracle_engine::ReplicaId;
use coracle_net::{Hello, Party, PROTOCOL_VERSION};
use futures_lite::Stream;
use glommio::timer::Timer;

use crate::discovery::discover;
use crate::driver::{run_timer, Core, Event, Kind, Response, Settings, Status, Waiter};
use crate::error::Error;
use crate::options::{random_client_id, random_u64, ClientOptions, Log};

/// A client session with one Raft group, driven on the current glommio executor.
///
/// Operations are submitted when called, not when first polled: the order of calls is the
/// order of the session's sequence numbers, and many may be in flight at once from one
/// task or several. Each returned future completes with its own outcome; completions come
/// in submission order. To share one client between tasks, put it in an `Rc`.
///
/// Dropping the client stops it without unregistering (the servers expire the session
/// after its timeout); call [`Client::close`] to unregister.
pub struct Client {
    core: Rc<Core>,
    close_timeout_ms: u64,
}

impl Client {
    /// Learns the nodes behind `options.addresses` (in parallel), registers a session and
    /// returns once it is registered. Must run inside a glommio executor.
    ///
    /// With the default ONCE connection strategy this fails if no server registers the
    /// session in one pass; with a back-off strategy it keeps trying (wrap it in a timeout
    /// to bound the wait).
    ///
    /// # Errors
    /// An invalid option, no address answering, a refused handshake (another cluster's
    /// name), or registration failing for good.
    pub async fn connect(options: ClientOptions) -> Result<Client, Error> {
        options.validate()?;
        let start = Instant::now();
        let log: Log = options.log.clone().unwrap_or_else(|| {
            std::sync::Arc::new(|line: &str| eprintln!("coracle-client: {line}"))
        });
        let client_id = options.client_id.unwrap_or_else(random_client_id);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster: options.cluster.clone(),
            party: Party::Client { client: client_id },
        };
        let connect_timeout = Duration::from_millis(options.connect_timeout_ms);
        let mut nodes = discover(&options.addresses, &hello, connect_timeout, &log).await?;
        // A group no node runs is a wrong option, said at once rather than after every
        // server has failed to register a session.
        let group = options.group;
        if nodes.values().all(|node| group >= node.groups) {
            let most = nodes.values().map(|node| node.groups).max().unwrap_or(0);
            return Err(Error::InvalidOptions {
                option: "group",
                reason: format!(
                    "no node given runs group {group}; they run groups 0 to {}",
                    most.saturating_sub(1)
                ),
            });
        }
        nodes.retain(|id, node| {
            let runs = group < node.groups;
            if !runs {
                log(&format!(
                    "node {} does not run group {group}; not using it",
                    id.0
                ));
            }
            runs
        });
        let config = options.session_config(client_id, options.seed.unwrap_or_else(random_u64));
        let servers: Vec<ReplicaId> = nodes.keys().copied().collect();
        let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let session = ClientSession::new(config, servers, now_ms);
        let settings = Settings {
            group: options.group,
            hello,
            connect_timeout,
            log,
        };
        let core = Core::new(settings, session, nodes, start);
        glommio::spawn_local(run_timer(Rc::clone(&core))).detach();
        // From here on, a failure drops the client, which stops the driver.
        let client = Client {
            core,
            close_timeout_ms: options.close_timeout_ms,
        };
        client.core.open();
        std::future::poll_fn(|context| client.core.poll_opened(context)).await?;
        Ok(client)
    }

    /// Submits a linearizable command (its bytes: an operation id and its encoding, as
    /// `encode_command` builds them).
    pub fn command(&self, operation: Bytes) -> Operation {
        self.command_with(operation, CommandConsistency::Linearizable)
    }

    /// Submits a command at the given consistency.
    pub fn command_with(&self, operation: Bytes, consistency: CommandConsistency) -> Operation {
        self.submit(Kind::Command(consistency), operation)
    }

    /// Submits a query at the given consistency.
    pub fn query(&self, operation: Bytes, consistency: QueryConsistency) -> Operation {
        self.submit(Kind::Query(consistency), operation)
    }

    /// Submits a typed command; the future yields its decoded output.
    pub fn execute<C: Command>(
        &self,
        command: &C,
    ) -> impl Future<Output = Result<C::Output, Error>> + 'static {
        let operation = self.command(encode_command(command));
        async move { decode_output::<C::Output>(&operation.await?) }
    }

    /// Submits a typed query; the future yields its decoded output.
    pub fn read<Q: Query>(
        &self,
        query: &Q,
        consistency: QueryConsistency,
    ) -> impl Future<Output = Result<Q::Output, Error>> + 'static {
        let operation = self.query(encode_query(query), consistency);
        async move { decode_output::<Q::Output>(&operation.await?) }
    }

    fn submit(&self, kind: Kind, operation: Bytes) -> Operation {
        let submitted = self.core.submit(kind, operation, Waiter::task());
        Operation {
            core: Rc::clone(&self.core),
            id: submitted,
            done: false,
        }
    }

    /// For the blocking facade: submits with a reply that a thread waits on.
    pub(crate) fn submit_for_thread(
        &self,
        kind: Kind,
        operation: Bytes,
        reply: crate::oneshot::Reply<Response>,
    ) {
        // An error was already sent to the reply.
        let _ = self.core.submit(kind, operation, Waiter::Reply(reply));
    }

    /// For the blocking facade: an event its threads had no room for.
    pub(crate) fn count_dropped_event(&self) {
        self.core.count_dropped_event();
    }

    /// The next session event, waiting for one; `None` once the client is closed and
    /// every event was taken.
    pub async fn next_event(&self) -> Option<Event> {
        std::future::poll_fn(|context| self.core.poll_event(context)).await
    }

    /// The next session event if one is waiting.
    #[must_use]
    pub fn try_next_event(&self) -> Option<Event> {
        self.core.try_event()
    }

    /// The session events as a stream (ends when the client closes).
    #[must_use]
    pub fn events(&self) -> Events<'_> {
        Events { client: self }
    }

    /// CONNECTED, SUSPENDED or CLOSED.
    #[must_use]
    pub fn state(&self) -> ClientState {
        self.core.status().state
    }

    /// The registered session (a new one after a RECOVER).
    #[must_use]
    pub fn session(&self) -> Option<SessionId> {
        self.core.status().session
    }

    /// Where the client stands, with its counters.
    #[must_use]
    pub fn status(&self) -> Status {
        self.core.status()
    }

    /// Unregisters the session and stops: pending operations complete at once (those
    /// already answered with their outcome, the others with [`Error::Closed`]). Waits at
    /// most `close_timeout_ms` for a server to unregister; the client is stopped either
    /// way. Closing a closed client does nothing.
    ///
    /// # Errors
    /// [`Error::CloseTimedOut`] if no server unregistered the session in time (the
    /// servers expire it after its timeout).
    pub async fn close(&self) -> Result<(), Error> {
        if self.core.is_stopped() {
            return Ok(());
        }
        self.core.close();
        let closed = async {
            std::future::poll_fn(|context| self.core.poll_closed(context)).await;
            Ok(())
        };
        let waited_ms = self.close_timeout_ms;
        let timeout = async {
            Timer::new(Duration::from_millis(waited_ms)).await;
            Err(Error::CloseTimedOut { waited_ms })
        };
        let result = futures_lite::future::or(closed, timeout).await;
        self.core.stop();
        result
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.core.stop();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("status", &self.core.status())
            .finish_non_exhaustive()
    }
}

fn decode_output<T: coracle_engine::state_machine::Codec>(response: &Response) -> Result<T, Error> {
    decode_value::<T>(&response.output).map_err(Error::Decode)
}

/// One submitted operation: completes with its [`Response`] or why it failed. Dropping it
/// does not cancel the operation (it may already be applied); its outcome is discarded.
#[must_use = "the operation is submitted; awaiting tells its outcome"]
pub struct Operation {
    core: Rc<Core>,
    id: Result<OperationId, Error>,
    done: bool,
}

impl Operation {
    /// The operation's id in the session (ids grow in submission order), unless it was
    /// refused at submission.
    #[must_use]
    pub fn id(&self) -> Option<OperationId> {
        self.id.as_ref().ok().copied()
    }
}

impl Future for Operation {
    type Output = Result<Response, Error>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "an operation is awaited once");
        let poll = match &self.id {
            Ok(id) => self.core.poll_operation(*id, context),
            Err(error) => Poll::Ready(Err(error.clone())),
        };
        if poll.is_ready() {
            self.done = true;
        }
        poll
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if let (Ok(id), false) = (&self.id, self.done) {
            self.core.abandon(*id);
        }
    }
}

/// The session events of a client, as a stream.
pub struct Events<'a> {
    client: &'a Client,
}

impl Stream for Events<'_> {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Event>> {
        self.client.core.poll_event(context)
    }
}
