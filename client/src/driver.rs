//! The driver: the one place that owns the [`ClientSession`] and carries out its actions.
//!
//! Everything runs on one glommio executor, so the state is an `Rc<RefCell<..>>` shared by
//! the tasks that feed the session:
//! - the user's tasks (`submit`, `close`), which then wait on their own completion slot;
//! - one task per TCP connection ([`link::run`]), which hands decoded messages in and
//!   reports the connection's end;
//! - the timer task ([`run_timer`]), which calls `tick` at the session's `next_wake_ms`.
//!
//! Each input borrows the state, calls the session with the time, and carries out the
//! actions before the borrow ends: a `Send` queues a frame on the server's link (opening
//! it if needed) and wakes its task; a `Complete` fills the operation's slot and wakes its
//! waiter; an `Event` is queued for `next_event`. No action awaits, so no borrow is ever
//! held across an await. Wakers only schedule tasks, so nothing re-enters the state.
//!
//! The timer task sleeps until the session's next deadline. An input that brings the
//! deadline earlier than the one armed raises a signal that re-arms it; inputs that only
//! push it later (the usual case: a new request times out after the older ones) cost
//! nothing.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_engine::client::{ClientAction, ClientSession, ClientState, Completion, OperationId};
use coracle_engine::session::wire::encode_request;
use coracle_engine::session::{
    ClientError, ClientRequest, CommandConsistency, QueryConsistency, SessionId, ToClient,
};
use coracle_engine::{LogIndex, ReplicaId};
use coracle_net::{kind, Hello};
use glommio::timer::Timer;

use crate::discovery::Node;
use crate::error::Error;
use crate::link::{self, Outgoing, Target};
use crate::oneshot::Reply;
use crate::options::Log;

/// Session events waiting for the user beyond this are dropped, oldest first, and counted
/// in [`ClientStats::events_dropped`]: a client that never reads its events must not grow
/// without bound.
pub const EVENTS_QUEUED_MAX: usize = 65_536;

/// A state machine's answer to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The log index the command applied at, or the query ran at.
    pub index: LogIndex,
    /// The state machine's output (for a typed operation, its `Output` encoded).
    pub output: Bytes,
}

/// One session event, delivered exactly once and in order (SPEC §F2–§F3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The session it was published to (a new one after a RECOVER).
    pub session: SessionId,
    /// The index of the entry that published it.
    pub index: LogIndex,
    /// The name the state machine gave it.
    pub name: String,
    /// Its payload.
    pub payload: Bytes,
}

/// Counters about the client's connections and events.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Connections that completed their handshake.
    pub connections_opened: u64,
    /// Connections that failed or were closed by the server (a malformed frame included).
    pub connections_lost: u64,
    /// Requests sent (every retry counts).
    pub requests_sent: u64,
    /// Responses and event batches received.
    pub messages_received: u64,
    /// Events dropped because more than [`EVENTS_QUEUED_MAX`] were waiting.
    pub events_dropped: u64,
}

/// Where the client stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// CONNECTED, SUSPENDED or CLOSED (SPEC §B3).
    pub state: ClientState,
    /// The session, while one is registered.
    pub session: Option<SessionId>,
    /// The leader, if known.
    pub leader: Option<ReplicaId>,
    /// The server the client talks to.
    pub server: Option<ReplicaId>,
    /// Operations submitted and not completed.
    pub pending: usize,
    /// Counters.
    pub stats: ClientStats,
}

/// What kind of operation to submit.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Command(CommandConsistency),
    Query(QueryConsistency),
}

/// Who waits for an operation's completion.
pub(crate) enum Waiter {
    /// An async task: the result is left here and the task woken.
    Task {
        result: Option<Result<Response, Error>>,
        waker: Option<Waker>,
    },
    /// A thread of the blocking facade.
    Reply(Reply<Response>),
}

impl Waiter {
    pub(crate) fn task() -> Waiter {
        Waiter::Task {
            result: None,
            waker: None,
        }
    }
}

/// What the driver was set up with.
pub(crate) struct Settings {
    pub group: u32,
    pub hello: Hello,
    pub connect_timeout: Duration,
    pub log: Log,
}

/// A raised flag and the waker of the one task waiting on it.
#[derive(Default)]
struct Signal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |context| {
            if self.raised.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(context.waker().clone());
            Poll::Pending
        })
    }
}

/// A connection the driver holds.
struct LinkHandle {
    id: u64,
    outgoing: Rc<Outgoing>,
}

/// Everything behind the borrow.
pub(crate) struct State {
    session: ClientSession,
    out: Vec<ClientAction>,
    nodes: BTreeMap<ReplicaId, Node>,
    /// Servers named by the cluster without a known address, logged once each.
    unknown: BTreeSet<ReplicaId>,
    links: BTreeMap<ReplicaId, LinkHandle>,
    next_link: u64,
    /// Servers to report lost once the current actions are carried out.
    lost: VecDeque<ReplicaId>,
    waiters: BTreeMap<OperationId, Waiter>,
    events: VecDeque<Event>,
    event_wakers: Vec<Waker>,
    /// Tasks waiting for the session to open or the client to close.
    watchers: Vec<Waker>,
    session_id: Option<SessionId>,
    stopped: bool,
    /// The deadline the timer task sleeps until.
    armed_ms: Option<u64>,
    stats: ClientStats,
}

impl State {
    /// Whether the session's next deadline comes before the one the timer sleeps until.
    fn timer_late(&self) -> bool {
        match (self.session.next_wake_ms(), self.armed_ms) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn is_current(&self, target: Target) -> bool {
        self.links
            .get(&target.server)
            .is_some_and(|link| link.id == target.link)
    }

    fn complete(&mut self, operation: OperationId, result: Result<Completion, ClientError>) {
        let result = match result {
            Ok(Completion {
                index,
                output: Ok(output),
            }) => Ok(Response { index, output }),
            Ok(Completion {
                output: Err(error), ..
            }) => Err(Error::Application(error)),
            Err(error) => Err(Error::from(error)),
        };
        match self.waiters.remove(&operation) {
            Some(Waiter::Task { waker, .. }) => {
                let done = Waiter::Task {
                    result: Some(result),
                    waker: None,
                };
                self.waiters.insert(operation, done);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Some(Waiter::Reply(reply)) => reply.send(result),
            None => {} // The caller stopped waiting; the operation still ran its course.
        }
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= EVENTS_QUEUED_MAX {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
        for waker in self.event_wakers.drain(..) {
            waker.wake();
        }
    }

    fn wake_watchers(&mut self) {
        for waker in self.watchers.drain(..) {
            waker.wake();
        }
    }

    /// Whether no more events or state changes can come.
    fn ended(&self) -> bool {
        self.stopped || self.session.state() == ClientState::Closed
    }
}

fn remember(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|known| known.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

/// The shared core of one client.
pub(crate) struct Core {
    settings: Settings,
    start: Instant,
    state: RefCell<State>,
    timer: Signal,
}

impl Core {
    /// A core around a new session over `nodes` (at least one).
    pub fn new(
        settings: Settings,
        session: ClientSession,
        nodes: BTreeMap<ReplicaId, Node>,
        start: Instant,
    ) -> Rc<Core> {
        assert!(!nodes.is_empty(), "discovery found at least one node");
        Rc::new(Core {
            settings,
            start,
            state: RefCell::new(State {
                session,
                out: Vec::new(),
                nodes,
                unknown: BTreeSet::new(),
                links: BTreeMap::new(),
                next_link: 0,
                lost: VecDeque::new(),
                waiters: BTreeMap::new(),
                events: VecDeque::new(),
                event_wakers: Vec::new(),
                watchers: Vec::new(),
                session_id: None,
                stopped: false,
                armed_ms: None,
                stats: ClientStats::default(),
            }),
            timer: Signal::default(),
        })
    }

    /// Milliseconds since the client started, on the monotonic clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn hello(&self) -> Hello {
        self.settings.hello.clone()
    }

    pub fn connect_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    pub fn group(&self) -> u32 {
        self.settings.group
    }

    pub fn log(&self, message: &str) {
        (self.settings.log)(message);
    }

    /// Runs one input on the session and carries out its actions.
    fn input<R>(
        self: &Rc<Self>,
        input: impl FnOnce(&mut State, u64, &mut Vec<ClientAction>) -> R,
    ) -> R {
        let now_ms = self.now_ms();
        let mut state = self.state.borrow_mut();
        let mut out = std::mem::take(&mut state.out);
        assert!(out.is_empty());
        let result = input(&mut state, now_ms, &mut out);
        self.carry_out(&mut state, &mut out, now_ms);
        state.out = out;
        let rearm = !state.stopped && state.timer_late();
        drop(state);
        if rearm {
            self.timer.raise();
        }
        result
    }

    fn carry_out(self: &Rc<Self>, state: &mut State, out: &mut Vec<ClientAction>, now_ms: u64) {
        loop {
            for action in out.drain(..) {
                self.carry_out_one(state, action);
            }
            // Reported after the batch, not inside it: the session must see its own
            // actions carried out in order before it hears of a lost connection.
            let Some(server) = state.lost.pop_front() else {
                break;
            };
            state.session.on_connection_lost(server, now_ms, out);
        }
        assert!(out.is_empty());
    }

    fn carry_out_one(self: &Rc<Self>, state: &mut State, action: ClientAction) {
        match action {
            ClientAction::Send { to, request } => self.send(state, to, &request),
            ClientAction::Disconnect { server } => {
                if let Some(link) = state.links.remove(&server) {
                    link.outgoing.close();
                }
            }
            ClientAction::Complete { operation, result } => state.complete(operation, result),
            ClientAction::Event {
                session,
                event_index,
                event,
            } => state.push_event(Event {
                session,
                index: event_index,
                name: event.name,
                payload: event.payload,
            }),
            ClientAction::StateChanged(_) => state.wake_watchers(),
            ClientAction::SessionOpened { session } => {
                state.session_id = Some(session);
                state.wake_watchers();
            }
        }
    }

    fn send(self: &Rc<Self>, state: &mut State, to: ReplicaId, request: &ClientRequest) {
        if state.stopped {
            return;
        }
        if !state.links.contains_key(&to) {
            let group = self.settings.group;
            let Some((address, shard)) = state.nodes.get(&to).and_then(|node| node.shard_of(group))
            else {
                // A member the cluster named but the user did not: skipped (reported lost,
                // so the session moves on at once).
                if state.unknown.insert(to) {
                    self.log(&format!("node {to} has no known address; it is skipped"));
                }
                state.lost.push_back(to);
                return;
            };
            state.next_link += 1;
            let target = Target {
                server: to,
                link: state.next_link,
                address,
                shard,
            };
            let outgoing = Rc::new(Outgoing::default());
            glommio::spawn_local(link::run(Rc::clone(self), target, Rc::clone(&outgoing))).detach();
            let handle = LinkHandle {
                id: target.link,
                outgoing,
            };
            state.links.insert(to, handle);
        }
        let link = state.links.get(&to).expect("opened above");
        link.outgoing.push(
            kind::CLIENT_REQUEST,
            self.settings.group,
            &encode_request(request),
        );
        state.stats.requests_sent += 1;
    }

    // ----- Inputs from links -----

    /// A link finished its handshake.
    pub fn link_opened(&self) {
        self.state.borrow_mut().stats.connections_opened += 1;
    }

    /// Messages from the server at the other end of `target`.
    pub fn on_messages(self: &Rc<Self>, target: Target, messages: Vec<ToClient>) {
        self.input(|state, now_ms, out| {
            if !state.is_current(target) {
                return; // The driver closed or replaced this link: late messages.
            }
            state.stats.messages_received += messages.len() as u64;
            for message in messages {
                state
                    .session
                    .on_message(target.server, message, now_ms, out);
            }
        });
    }

    /// A link ended: `Some(reason)` if it failed, `None` if the driver closed it.
    pub fn link_ended(self: &Rc<Self>, target: Target, end: Option<String>) {
        let reported = self.input(|state, now_ms, out| {
            if !state.is_current(target) {
                return false;
            }
            state.links.remove(&target.server);
            state.stats.connections_lost += 1;
            state.session.on_connection_lost(target.server, now_ms, out);
            true
        });
        if reported {
            let reason = end.unwrap_or_else(|| "closed".into());
            self.log(&format!(
                "connection to node {} at {} lost: {reason}",
                target.server, target.address
            ));
        }
    }

    // ----- Inputs from the user -----

    /// Opens the session.
    pub fn open(self: &Rc<Self>) {
        self.input(|state, now_ms, out| state.session.open(now_ms, out));
    }

    /// Submits one operation; `waiter` is told its outcome.
    ///
    /// # Errors
    /// The client is closed or too many operations are pending; a `Reply` waiter has been
    /// told already.
    pub fn submit(
        self: &Rc<Self>,
        kind: Kind,
        operation: Bytes,
        waiter: Waiter,
    ) -> Result<OperationId, Error> {
        self.input(|state, now_ms, out| {
            let submitted = if state.stopped {
                Err(Error::Closed)
            } else {
                match kind {
                    Kind::Command(consistency) => {
                        state
                            .session
                            .submit_command(operation, consistency, now_ms, out)
                    }
                    Kind::Query(consistency) => {
                        state
                            .session
                            .submit_query(operation, consistency, now_ms, out)
                    }
                }
                .map_err(Error::from)
            };
            match submitted {
                Ok(id) => {
                    // Before the actions are carried out: they may complete it at once.
                    let previous = state.waiters.insert(id, waiter);
                    assert!(previous.is_none(), "operation ids are never reused");
                    Ok(id)
                }
                Err(error) => {
                    if let Waiter::Reply(reply) = waiter {
                        reply.send(Err(error.clone()));
                    }
                    Err(error)
                }
            }
        })
    }

    /// Closes the session (unregistering it).
    pub fn close(self: &Rc<Self>) {
        self.input(|state, now_ms, out| {
            if !state.stopped {
                state.session.close(now_ms, out);
            }
        });
    }

    /// Stops everything at once: links close, waiters fail with `Closed`, the timer task
    /// ends. The session is not unregistered (the servers expire it).
    pub fn stop(&self) {
        let mut state = self.state.borrow_mut();
        if state.stopped {
            return;
        }
        state.stopped = true;
        for (_, link) in std::mem::take(&mut state.links) {
            link.outgoing.close();
        }
        for (id, waiter) in std::mem::take(&mut state.waiters) {
            match waiter {
                Waiter::Task { result, waker } => {
                    // An outcome already delivered (`close` completes what was answered)
                    // stays for its future; the others fail.
                    let result = Some(result.unwrap_or(Err(Error::Closed)));
                    let done = Waiter::Task {
                        result,
                        waker: None,
                    };
                    state.waiters.insert(id, done);
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                Waiter::Reply(reply) => reply.send(Err(Error::Closed)),
            }
        }
        for waker in state.event_wakers.drain(..) {
            waker.wake();
        }
        state.wake_watchers();
        drop(state);
        self.timer.raise();
    }

    // ----- Polls for the user's futures -----

    /// The outcome of operation `id`, once it is there.
    pub fn poll_operation(
        &self,
        id: OperationId,
        context: &mut Context<'_>,
    ) -> Poll<Result<Response, Error>> {
        let mut state = self.state.borrow_mut();
        match state.waiters.get_mut(&id) {
            Some(Waiter::Task { result, waker }) => match result.take() {
                Some(result) => {
                    state.waiters.remove(&id);
                    Poll::Ready(result)
                }
                None => {
                    *waker = Some(context.waker().clone());
                    Poll::Pending
                }
            },
            Some(Waiter::Reply(_)) => unreachable!("a reply's operation is never polled"),
            None => unreachable!("a slot stays until its future takes the outcome or drops"),
        }
    }

    /// Forgets operation `id`'s slot: its future was dropped before completing.
    pub fn abandon(&self, id: OperationId) {
        // A future dropped while the state is borrowed (never by this crate) keeps its slot
        // until the client stops.
        if let Ok(mut state) = self.state.try_borrow_mut() {
            state.waiters.remove(&id);
        }
    }

    /// Counts an event dropped after it left the queue (the blocking facade's channel).
    pub fn count_dropped_event(&self) {
        self.state.borrow_mut().stats.events_dropped += 1;
    }

    /// The next event, if one is queued.
    pub fn try_event(&self) -> Option<Event> {
        self.state.borrow_mut().events.pop_front()
    }

    /// The next event; `None` once the client is closed and every event was taken.
    pub fn poll_event(&self, context: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut state = self.state.borrow_mut();
        if let Some(event) = state.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if state.ended() {
            return Poll::Ready(None);
        }
        remember(&mut state.event_wakers, context.waker());
        Poll::Pending
    }

    /// Ready once the first session is registered, or registering failed for good.
    pub fn poll_opened(&self, context: &mut Context<'_>) -> Poll<Result<SessionId, Error>> {
        let mut state = self.state.borrow_mut();
        if let Some(session) = state.session_id {
            return Poll::Ready(Ok(session));
        }
        if state.stopped {
            return Poll::Ready(Err(Error::Closed));
        }
        if state.session.state() == ClientState::Closed {
            let servers = state.nodes.keys().copied().collect();
            return Poll::Ready(Err(Error::RegistrationFailed { servers }));
        }
        remember(&mut state.watchers, context.waker());
        Poll::Pending
    }

    /// Ready once the client is closed.
    pub fn poll_closed(&self, context: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.borrow_mut();
        if state.ended() {
            return Poll::Ready(());
        }
        remember(&mut state.watchers, context.waker());
        Poll::Pending
    }

    /// Whether `stop` ran.
    pub fn is_stopped(&self) -> bool {
        self.state.borrow().stopped
    }

    /// Where the client stands.
    pub fn status(&self) -> Status {
        let state = self.state.borrow();
        Status {
            state: if state.stopped {
                ClientState::Closed
            } else {
                state.session.state()
            },
            session: state.session.session(),
            leader: state.session.leader(),
            server: state.session.server(),
            pending: state.session.pending_count(),
            stats: state.stats,
        }
    }
}

/// The timer task: sleeps until the session's next deadline (or until an input brings it
/// earlier), then ticks. Ends when the client stops.
pub(crate) async fn run_timer(core: Rc<Core>) {
    loop {
        let now_ms = core.now_ms();
        let wake_ms = {
            let mut state = core.state.borrow_mut();
            if state.stopped {
                return;
            }
            state.armed_ms = state.session.next_wake_ms();
            state.armed_ms
        };
        match wake_ms {
            Some(at_ms) if at_ms <= now_ms => {
                core.input(|state, now_ms, out| state.session.tick(now_ms, out));
            }
            Some(at_ms) => {
                // Until the exact instant, so the tick sees at least `at_ms`.
                let deadline = core.start + Duration::from_millis(at_ms);
                let sleep = async {
                    Timer::new(deadline.saturating_duration_since(Instant::now())).await;
                };
                futures_lite::future::or(sleep, core.timer.wait()).await;
            }
            None => core.timer.wait().await,
        }
    }
}
