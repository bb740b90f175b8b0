//! One shard: an executor's share of the node. It owns the groups `g` with
//! `g % shards == shard`, links to the same shard on every peer, its client connections,
//! and the driver task that feeds the pure servers their inputs and carries out what they
//! ask for.
//!
//! The driver loop, once per wake-up:
//! 1. take every input the socket readers and finished flushes left in the inbox, and hand
//!    each to its group's server (peer messages, client requests, durable persists);
//! 2. when the tick is due, tick every group;
//! 3. carry out the outputs as they come: sends are framed into the peers' and clients'
//!    queues (their writer tasks write each queue with one call once the driver yields),
//!    persists are staged in the group's log;
//! 4. start a flush of every group that has staged writes and no flush running. The
//!    flushes of all groups run at once in io_uring — group commit across the shard — and
//!    each reports back through the inbox. The leader sends its entries in step 3, before
//!    its own flush ends: it persists in parallel with replication.
//!
//! Nothing here is shared with another shard.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coracle_engine::entry_codec;
use coracle_engine::server::{ConnectionId, ServerOutput};
use coracle_engine::state_machine::StateMachine;
use coracle_engine::{Action, ReplicaId, Role, Time};
use coracle_net::admin::{AdminRequest, AdminResponse, GroupStatus};
use coracle_net::kind;
use coracle_net::peer_codec::encode_peer_message;
use coracle_net::peer_link::PeerLink;
use coracle_storage::StorageError;

use crate::client_conn::ClientConn;
use crate::clock::Clock;
use crate::group::Group;
use crate::inbox::{Inbox, Input};
use crate::node_config::NodeConfig;

/// Counters of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Inputs handled.
    pub inputs: u64,
    /// Flushes started.
    pub flushes: u64,
    /// Entries applied.
    pub applied: u64,
    /// Times a group of this shard became leader.
    pub leaderships: u64,
    /// Messages for a peer that were dropped (link down or full).
    pub peer_drops: u64,
}

/// See the module documentation.
pub struct Shard<S: StateMachine> {
    pub(crate) config: Rc<NodeConfig>,
    pub(crate) index: u32,
    pub(crate) clock: Clock,
    pub(crate) inbox: Inbox,
    groups: RefCell<BTreeMap<u32, Group<S>>>,
    links: RefCell<BTreeMap<u64, PeerLink>>,
    pub(crate) clients: RefCell<BTreeMap<ConnectionId, Rc<ClientConn>>>,
    next_connection: Cell<u64>,
    /// Set by the ticker task: the groups' timers are due.
    tick_due: Cell<bool>,
    stats: RefCell<ShardStats>,
}

impl<S: StateMachine> Shard<S> {
    /// A shard with its groups open, before it links or listens.
    pub(crate) fn new(
        config: Rc<NodeConfig>,
        index: u32,
        clock: Clock,
        groups: BTreeMap<u32, Group<S>>,
    ) -> Shard<S> {
        Shard {
            config,
            index,
            clock,
            inbox: Inbox::new(),
            groups: RefCell::new(groups),
            links: RefCell::new(BTreeMap::new()),
            clients: RefCell::new(BTreeMap::new()),
            next_connection: Cell::new(1),
            tick_due: Cell::new(false),
            stats: RefCell::new(ShardStats::default()),
        }
    }

    /// Starts the links to the same shard on every other member.
    pub(crate) fn link_peers(&self) {
        let mut options = coracle_net::peer_link::PeerLinkOptions::new(
            self.config.cluster.clone(),
            self.config.node,
            self.index,
        );
        options.connect_timeout = Duration::from_millis(self.config.election_timeout_ms);
        let mut links = self.links.borrow_mut();
        for &node in self.config.members.keys() {
            if node == self.config.node {
                continue;
            }
            if let Some(address) = self.config.address(node, self.index) {
                links.insert(node, PeerLink::start(options.clone(), node, address));
            }
        }
    }

    /// Whether `group` runs on this shard.
    pub(crate) fn holds(&self, group: u32) -> bool {
        group < self.config.groups && self.config.shard_of(group) == self.index
    }

    /// A number for a new client connection.
    pub(crate) fn new_connection(&self) -> Rc<ClientConn> {
        let id = ConnectionId(self.next_connection.get());
        self.next_connection.set(id.0 + 1);
        let connection = Rc::new(ClientConn::new(id));
        self.clients.borrow_mut().insert(id, Rc::clone(&connection));
        connection
    }

    /// Counters.
    pub fn stats(&self) -> ShardStats {
        self.stats.borrow().clone()
    }

    /// Runs the driver until `stop` is set.
    pub(crate) async fn drive(self: Rc<Self>, stop: Arc<AtomicBool>) {
        let tick = Duration::from_millis(self.config.tick_ms);
        // The tick comes from a task of its own, so that the driver waits on one thing and
        // no timer is armed and cancelled per round.
        let ticker = {
            let shard = Rc::clone(&self);
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(tick).await;
                    shard.tick_due.set(true);
                    shard.inbox.signal().notify();
                }
            })
            .detach()
        };
        let mut inputs = VecDeque::new();
        let mut outputs = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if self.inbox.is_empty() && !self.tick_due.get() {
                self.inbox.signal().wait().await;
            }
            self.round(&mut inputs, &mut outputs);
            // Let the writers and readers run even when inputs keep coming.
            glommio::yield_if_needed().await;
        }
        ticker.cancel();
    }

    /// One round of the driver: inputs, the tick if due, flushes.
    fn round(self: &Rc<Self>, inputs: &mut VecDeque<Input>, outputs: &mut Vec<ServerOutput>) {
        self.inbox.take_all(inputs);
        let now = self.clock.now();
        let mut groups = self.groups.borrow_mut();
        self.stats.borrow_mut().inputs += inputs.len() as u64;
        for input in inputs.drain(..) {
            self.handle(&mut groups, input, now, outputs);
        }
        if self.tick_due.replace(false) {
            for group in groups.values_mut().filter(|group| group.stopped.is_none()) {
                group.server.tick(now, outputs);
                self.carry_out(group, outputs);
            }
        }
        for group in groups.values_mut() {
            if group.stopped.is_some()
                || group.flush_running
                || group.flush_waiting
                || !group.has_unflushed()
            {
                continue;
            }
            let shard = Rc::clone(self);
            let id = group.id;
            if let Some(job) = group.flush_begin() {
                self.stats.borrow_mut().flushes += 1;
                group.flush_running = true;
                glommio::spawn_local(async move {
                    let error = job.run().await.err();
                    shard.inbox.push(Input::Flushed { group: id, error });
                })
                .detach();
            } else {
                // The permit is taken (the log's spare segment takes turns between
                // flushes): come back the moment it is free, not at the next tick.
                group.flush_waiting = true;
                let flushable = group.when_flushable();
                glommio::spawn_local(async move {
                    flushable.await;
                    shard.inbox.push(Input::Flushable { group: id });
                })
                .detach();
            }
        }
    }

    fn handle(
        &self,
        groups: &mut BTreeMap<u32, Group<S>>,
        input: Input,
        now: Time,
        outputs: &mut Vec<ServerOutput>,
    ) {
        match input {
            Input::Peer {
                from,
                group,
                message,
            } => {
                if let Some(group) = live(groups, group) {
                    group
                        .server
                        .on_peer_message(ReplicaId(from), message, now, outputs);
                    self.carry_out(group, outputs);
                }
            }
            Input::Client {
                connection,
                group,
                request,
            } => {
                if let Some(group) = live(groups, group) {
                    group
                        .server
                        .on_client_request(connection, request, now, outputs);
                    self.carry_out(group, outputs);
                }
            }
            Input::Admin {
                connection,
                group,
                request: AdminRequest::Status,
            } => {
                let answer = match groups.get(&group) {
                    Some(group) if group.stopped.is_none() => {
                        AdminResponse::Status(status_of(self.config.node, group))
                    }
                    Some(group) => AdminResponse::Error {
                        reason: format!(
                            "group {} stopped: {}",
                            group.id,
                            group.stopped.clone().unwrap_or_default()
                        ),
                    },
                    None => AdminResponse::Error {
                        reason: format!("group {group} is not here"),
                    },
                };
                let client = self.clients.borrow().get(&connection).cloned();
                if let Some(client) = client {
                    client.send_raw(kind::ADMIN_RESPONSE, group, &answer.encode());
                }
            }
            Input::ClientClosed { connection } => {
                for group in groups.values_mut() {
                    group.server.on_connection_closed(connection);
                }
            }
            Input::Flushable { group } => {
                if let Some(group) = groups.get_mut(&group) {
                    group.flush_waiting = false;
                }
            }
            Input::Flushed { group, error } => {
                let Some(group) = live(groups, group) else {
                    return;
                };
                group.flush_running = false;
                if let Some(error) = error {
                    self.stop_group(group, &error);
                    return;
                }
                self.persisted(group, now, outputs);
            }
            Input::Persisted { group } => {
                if let Some(group) = live(groups, group) {
                    self.persisted(group, now, outputs);
                }
            }
        }
    }

    /// Tells the group's server which persists are durable now.
    fn persisted(&self, group: &mut Group<S>, now: Time, outputs: &mut Vec<ServerOutput>) {
        match group.take_durable() {
            Ok(Some(id)) => {
                group.server.on_persisted(id, now, outputs);
                self.carry_out(group, outputs);
            }
            Ok(None) => {}
            Err(error) => self.stop_group(group, &error),
        }
    }

    /// Carries out a group's outputs, in order.
    fn carry_out(&self, group: &mut Group<S>, outputs: &mut Vec<ServerOutput>) {
        for output in outputs.drain(..) {
            match output {
                ServerOutput::Replica(Action::Persist {
                    id,
                    hard_state,
                    entries,
                }) => {
                    if group.stopped.is_none() {
                        match group.stage(id, hard_state, &entries) {
                            Ok(false) => {}
                            Ok(true) => self.inbox.push(Input::Persisted { group: group.id }),
                            Err(error) => self.stop_group(group, &error),
                        }
                    }
                }
                ServerOutput::Replica(Action::RoleChanged { role, .. }) => {
                    if role == Role::Leader {
                        self.stats.borrow_mut().leaderships += 1;
                    }
                }
                ServerOutput::Replica(_) => {}
                ServerOutput::Peer { to, message } => {
                    let links = self.links.borrow();
                    let sent = links.get(&to.0).map(|link| {
                        link.send(kind::PEER, group.id, |out| {
                            encode_peer_message(&message, out);
                        })
                    });
                    if !matches!(sent, Some(Ok(()))) {
                        self.stats.borrow_mut().peer_drops += 1;
                    }
                }
                ServerOutput::Client {
                    connection,
                    message,
                } => {
                    let client = self.clients.borrow().get(&connection).cloned();
                    if let Some(client) = client {
                        client.send(group.id, &message);
                    }
                }
                ServerOutput::Applied { entries } => {
                    self.stats.borrow_mut().applied += entries.len() as u64;
                }
            }
        }
    }

    /// A group whose log failed stops taking input: nothing it acknowledged is lost, and
    /// nothing more is acknowledged (fail-stop). The other groups go on.
    fn stop_group(&self, group: &mut Group<S>, error: &StorageError) {
        if group.stopped.is_none() {
            eprintln!(
                "coracle: node {} group {} stopped: its log failed: {error}",
                self.config.node, group.id
            );
            group.stopped = Some(error.to_string());
        }
    }
}

/// What `coracle admin status` shows of a group.
fn status_of<S: StateMachine>(node: u64, group: &Group<S>) -> GroupStatus {
    let replica = group.server.replica();
    let role = match replica.role() {
        Role::Inactive => 0,
        Role::Reserve => 1,
        Role::Passive => 2,
        Role::Follower => 3,
        Role::Candidate => 4,
        Role::Leader => 5,
    };
    GroupStatus {
        node,
        role,
        term: replica.term().0,
        leader: replica.leader().map(|leader| leader.0),
        commit_index: replica.commit_index().0,
        applied_index: replica.applied_index().0,
        last_index: replica.log().last_index().0,
        members: replica
            .configuration()
            .members
            .iter()
            .map(|member| {
                (
                    member.id.0,
                    entry_codec::member_type_code(member.member_type),
                )
            })
            .collect(),
    }
}

/// The group, if it is here and running.
fn live<S: StateMachine>(
    groups: &mut BTreeMap<u32, Group<S>>,
    group: u32,
) -> Option<&mut Group<S>> {
    groups
        .get_mut(&group)
        .filter(|group| group.stopped.is_none())
}
