//! The client's link to the one server it talks to, and the requests in flight on it.
//!
//! The link is idle, connecting (a `Connect` is in flight) or connected. Every request gets
//! a fresh id; an answer is accepted only from the server it was sent to and only while its
//! id is still in flight, so answers to abandoned attempts (a retry always uses a new id)
//! are ignored. Requests go only over a connected link; when the link is dropped, every
//! request in flight on it is forgotten and its owner sends it again on the next link.
//!
//! A pass that reaches no server ends in a wait (`wait_until`); the next connection
//! attempt after it starts a new pass.

use std::collections::BTreeMap;

use crate::client::action::{ClientAction, OperationId};
use crate::client::selector::ServerSelector;
use crate::client::strategies::ServerSelection;
use crate::prng::Prng;
use crate::session::{ClientId, ClientRequest, RequestBody};
use crate::types::ReplicaId;

/// What a request in flight is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `Connect`.
    Connect,
    /// `Register`.
    Register,
    /// `KeepAlive`.
    KeepAlive,
    /// `Unregister`.
    Unregister,
    /// A command or query.
    Operation(OperationId),
}

/// A request awaiting its answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Where it went.
    pub server: ReplicaId,
    /// When.
    pub sent_ms: u64,
    /// What for.
    pub purpose: Purpose,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Link {
    Idle,
    Connecting(ReplicaId),
    Connected(ReplicaId),
}

/// The link, the requests in flight on it, and the pass over the servers.
#[derive(Clone, Debug)]
pub struct Connection {
    selector: ServerSelector,
    prng: Prng,
    link: Link,
    request_timeout_ms: u64,
    /// Ids grow, so the first entry is the oldest.
    in_flight: BTreeMap<u64, InFlight>,
    next_request_id: u64,
    /// After a failed pass, no connection attempt before this.
    retry_at_ms: Option<u64>,
    failed_passes: u32,
}

impl Connection {
    /// Idle, over `servers`.
    #[must_use]
    pub fn new(
        selection: ServerSelection,
        servers: &[ReplicaId],
        request_timeout_ms: u64,
        seed: u64,
    ) -> Self {
        assert!(request_timeout_ms > 0);
        let mut prng = Prng::new(seed);
        let selector = ServerSelector::new(selection, servers, &mut prng);
        Connection {
            selector,
            prng,
            link: Link::Idle,
            request_timeout_ms,
            in_flight: BTreeMap::new(),
            next_request_id: 1,
            retry_at_ms: None,
            failed_passes: 0,
        }
    }

    /// The servers and leader as known now.
    #[must_use]
    pub fn selector(&self) -> &ServerSelector {
        &self.selector
    }

    /// The server connected to (its `Connect` was answered).
    #[must_use]
    pub fn connected(&self) -> Option<ReplicaId> {
        match self.link {
            Link::Connected(server) => Some(server),
            Link::Idle | Link::Connecting(_) => None,
        }
    }

    /// The server connected or connecting to.
    #[must_use]
    pub fn linked(&self) -> Option<ReplicaId> {
        match self.link {
            Link::Connected(server) | Link::Connecting(server) => Some(server),
            Link::Idle => None,
        }
    }

    /// Requests awaiting an answer.
    #[must_use]
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether a failed pass's wait is still running.
    #[must_use]
    pub fn waiting(&self, now_ms: u64) -> bool {
        self.retry_at_ms.is_some_and(|at| now_ms < at)
    }

    /// Starts connecting to the next server of the pass (a new pass after a wait). False
    /// when the pass is over: the caller decides how long to wait.
    pub fn connect_next(
        &mut self,
        client: ClientId,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> bool {
        assert_eq!(self.link, Link::Idle);
        assert!(!self.waiting(now_ms));
        if self.retry_at_ms.take().is_some() {
            self.selector.new_pass(&mut self.prng);
        }
        let Some(server) = self.selector.next_server() else {
            return false;
        };
        self.connect_to(server, client, now_ms, out);
        true
    }

    fn connect_to(
        &mut self,
        server: ReplicaId,
        client: ClientId,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) {
        assert_eq!(self.link, Link::Idle);
        assert!(self.in_flight.is_empty());
        self.link = Link::Connecting(server);
        self.push(
            server,
            RequestBody::Connect { client },
            Purpose::Connect,
            now_ms,
            out,
        );
    }

    /// The `Connect` to `server` was answered.
    pub fn on_connected(&mut self, server: ReplicaId) {
        assert_eq!(self.link, Link::Connecting(server));
        self.link = Link::Connected(server);
    }

    /// A pass ended with no server reached: count it, and wait until `retry_at_ms`.
    pub fn pass_failed(&mut self) -> u32 {
        assert_eq!(self.link, Link::Idle);
        self.failed_passes = self.failed_passes.saturating_add(1);
        self.failed_passes
    }

    /// No connection attempt before `at_ms`.
    pub fn wait_until(&mut self, at_ms: u64) {
        assert_eq!(self.link, Link::Idle);
        self.retry_at_ms = Some(at_ms);
    }

    /// `server` answered a session request: the cluster is reachable, passes start over.
    pub fn succeeded(&mut self, server: ReplicaId) {
        self.selector.succeeded(server);
        self.failed_passes = 0;
    }

    /// Takes in a response's view of the cluster.
    pub fn update_view(&mut self, leader: Option<ReplicaId>, members: &[ReplicaId]) {
        self.selector.update(leader, members, &mut self.prng);
    }

    /// If the selection no longer accepts the connected server, moves to one it does:
    /// drops the link (every request in flight is forgotten) and connects there. Returns
    /// whether it moved.
    pub fn switch_if_unwanted(
        &mut self,
        client: ClientId,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> bool {
        let Some(current) = self.connected() else {
            return false;
        };
        let Some(target) = self.selector.switch_from(current) else {
            return false;
        };
        self.drop_link(false, out);
        self.connect_to(target, client, now_ms, out);
        true
    }

    /// Sends a request on the connected link; returns its id.
    pub fn send(
        &mut self,
        body: RequestBody,
        purpose: Purpose,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> u64 {
        assert!(purpose != Purpose::Connect);
        assert!(!body.is_one_way());
        let server = self.connected().expect("requests go over a connected link");
        self.push(server, body, purpose, now_ms, out)
    }

    /// Sends a one-way request on the connected link.
    pub fn send_one_way(&mut self, body: RequestBody, out: &mut Vec<ClientAction>) {
        assert!(body.is_one_way());
        let server = self.connected().expect("requests go over a connected link");
        let request_id = self.fresh_id();
        out.push(ClientAction::Send {
            to: server,
            request: ClientRequest { request_id, body },
        });
    }

    fn push(
        &mut self,
        server: ReplicaId,
        body: RequestBody,
        purpose: Purpose,
        now_ms: u64,
        out: &mut Vec<ClientAction>,
    ) -> u64 {
        let request_id = self.fresh_id();
        let in_flight = InFlight {
            server,
            sent_ms: now_ms,
            purpose,
        };
        self.in_flight.insert(request_id, in_flight);
        out.push(ClientAction::Send {
            to: server,
            request: ClientRequest { request_id, body },
        });
        request_id
    }

    fn fresh_id(&mut self) -> u64 {
        let request_id = self.next_request_id;
        self.next_request_id = request_id
            .checked_add(1)
            .expect("request ids never run out");
        request_id
    }

    /// The request an answer from `from` belongs to, if it is still awaited.
    pub fn take(&mut self, from: ReplicaId, request_id: u64) -> Option<InFlight> {
        let in_flight = self.in_flight.get(&request_id)?;
        if in_flight.server != from {
            return None;
        }
        assert_eq!(
            self.linked(),
            Some(from),
            "requests in flight are on the link"
        );
        self.in_flight.remove(&request_id)
    }

    /// Stops awaiting a request: its answer will be ignored.
    pub fn withdraw(&mut self, request_id: u64) {
        if let Some(in_flight) = self.in_flight.remove(&request_id) {
            assert!(in_flight.purpose != Purpose::Connect);
        }
    }

    /// Stops awaiting every request but a `Connect`.
    pub fn withdraw_session_requests(&mut self) {
        self.in_flight
            .retain(|_, in_flight| in_flight.purpose == Purpose::Connect);
    }

    /// Whether the oldest request has waited a request timeout.
    #[must_use]
    pub fn timed_out(&self, now_ms: u64) -> bool {
        self.oldest_deadline_ms()
            .is_some_and(|deadline| now_ms >= deadline)
    }

    fn oldest_deadline_ms(&self) -> Option<u64> {
        self.in_flight
            .first_key_value()
            .map(|(_, in_flight)| in_flight.sent_ms.saturating_add(self.request_timeout_ms))
    }

    /// When a request times out or a wait ends.
    #[must_use]
    pub fn next_wake_ms(&self) -> Option<u64> {
        match (self.oldest_deadline_ms(), self.retry_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drops the link (the server failed, or the client moves or stops): every request in
    /// flight is forgotten. A failure also forgets the leader, whose view is now suspect.
    pub fn drop_link(&mut self, forget_leader: bool, out: &mut Vec<ClientAction>) {
        if let Some(server) = self.linked() {
            out.push(ClientAction::Disconnect { server });
        }
        if forget_leader {
            self.selector.forget_leader();
        }
        self.link = Link::Idle;
        self.in_flight.clear();
    }

    /// Stops for good: no link, no wait.
    pub fn stop(&mut self, out: &mut Vec<ClientAction>) {
        self.drop_link(false, out);
        self.retry_at_ms = None;
    }
}
