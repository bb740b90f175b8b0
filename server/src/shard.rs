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
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coracle_engine::entry_codec;
use coracle_engine::server::{ConnectionId, ServerOutput};
use coracle_engine::session::{RequestBody, ToClient};
use coracle_engine::state_machine::StateMachine;
use coracle_engine::{
    Action, Configuration, ConfigurationError, MemberStatus, MembershipChange, ReplicaId, Role,
    Time,
};
use coracle_net::admin::{AdminRequest, AdminResponse, GroupStatus};
use coracle_net::kind;
use coracle_net::peer_codec::encode_peer_message;
use coracle_net::Transport;
use coracle_storage::StorageError;

use crate::client_conn::ClientConn;
use crate::clock::Clock;
use crate::commit_stages::CommitStages;
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
    /// How messages reach the same shard on the peers: TCP links, or in-process mailboxes.
    transport: Box<dyn Transport>,
    /// Where every known node listens (shard 0): the configured members, plus nodes added
    /// at run time (joining), less nodes removed (left).
    peers: RefCell<BTreeMap<u64, SocketAddr>>,
    /// Membership changes asked by `coracle admin`, waiting for their outcome: the request
    /// id given to the replica, and who asked.
    membership_waiting: RefCell<BTreeMap<u64, (ConnectionId, u32)>>,
    next_membership_request: Cell<u64>,
    pub(crate) clients: RefCell<BTreeMap<ConnectionId, Rc<ClientConn>>>,
    next_connection: Cell<u64>,
    /// The tasks serving accepted connections, cancelled when the shard stops (they hold
    /// the sockets).
    tasks: RefCell<BTreeMap<u64, glommio::task::JoinHandle<()>>>,
    /// The sockets of those tasks and the listener's: glommio keeps a socket open while an
    /// accept or a read is pending on it, even after its task is cancelled, so stopping
    /// shuts them down (the peers then see the connection end, and the port is free).
    sockets: RefCell<BTreeMap<u64, std::os::fd::RawFd>>,
    stopping: Cell<bool>,
    next_task: Cell<u64>,
    /// Set by the ticker task: the groups' timers are due.
    tick_due: Cell<bool>,
    stats: RefCell<ShardStats>,
    /// Where the commands this shard leads spend their time.
    stages: RefCell<CommitStages>,
}

impl<S: StateMachine> Shard<S> {
    /// A shard with its groups open, before it links or listens.
    pub(crate) fn new(
        config: Rc<NodeConfig>,
        index: u32,
        clock: Clock,
        groups: BTreeMap<u32, Group<S>>,
        transport: Box<dyn Transport>,
    ) -> Shard<S> {
        Shard {
            peers: RefCell::new(config.members.clone()),
            config,
            index,
            clock,
            inbox: Inbox::new(),
            groups: RefCell::new(groups),
            transport,
            membership_waiting: RefCell::new(BTreeMap::new()),
            next_membership_request: Cell::new(1),
            clients: RefCell::new(BTreeMap::new()),
            next_connection: Cell::new(1),
            tasks: RefCell::new(BTreeMap::new()),
            sockets: RefCell::new(BTreeMap::new()),
            stopping: Cell::new(false),
            next_task: Cell::new(1),
            tick_due: Cell::new(false),
            stats: RefCell::new(ShardStats::default()),
            stages: RefCell::new(CommitStages::new()),
        }
    }

    /// Starts the links to the same shard on every other known node.
    pub(crate) fn link_peers(&self) {
        let nodes: Vec<u64> = self.peers.borrow().keys().copied().collect();
        for node in nodes {
            self.link(node);
        }
    }

    /// Starts reaching `node` (again, if its address changed).
    fn link(&self, node: u64) {
        if node == self.config.node {
            return;
        }
        if let Some(address) = self.peer_address(node) {
            self.transport.add_peer(node, address);
        }
    }

    /// Where shard `self.index` of `node` listens.
    fn peer_address(&self, node: u64) -> Option<SocketAddr> {
        let base = *self.peers.borrow().get(&node)?;
        crate::node_config::shard_address(base, self.index)
    }

    /// Whether `node` is a node this shard knows (a peer's hello is refused otherwise).
    pub(crate) fn knows(&self, node: u64) -> bool {
        node != self.config.node && self.peers.borrow().contains_key(&node)
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

    /// A number for a connection's task.
    pub(crate) fn next_task_id(&self) -> u64 {
        let id = self.next_task.get();
        self.next_task.set(id + 1);
        id
    }

    /// Keeps a connection's task, to cancel it at stop.
    pub(crate) fn task_started(&self, id: u64, task: glommio::task::JoinHandle<()>) {
        self.tasks.borrow_mut().insert(id, task);
    }

    /// A connection's task ended by itself (its socket is closed).
    pub(crate) fn task_ended(&self, id: u64) {
        self.tasks.borrow_mut().remove(&id);
        self.sockets.borrow_mut().remove(&id);
    }

    /// Notes the socket of task `id` (0: the listener), to shut down at stop. The caller
    /// forgets it (`task_ended`) before the socket is closed, on this thread, so the number
    /// never names another socket here.
    pub(crate) fn socket_opened(&self, id: u64, socket: std::os::fd::RawFd) {
        self.sockets.borrow_mut().insert(id, socket);
    }

    /// Stops everything that holds a socket: connection tasks, client writers, peer links.
    pub(crate) fn close_all(&self) {
        self.stopping.set(true);
        // The listener's socket stays open while its accept is pending, and glommio does
        // not hand out its descriptor: a connection of our own completes the accept, and
        // the loop, seeing the stop, ends and drops it.
        if let Some(address) = self.config.address(self.config.node, self.index) {
            let _ = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200));
        }
        for (_, socket) in std::mem::take(&mut *self.sockets.borrow_mut()) {
            let _ = nix::sys::socket::shutdown(socket, nix::sys::socket::Shutdown::Both);
        }
        for (_, task) in std::mem::take(&mut *self.tasks.borrow_mut()) {
            task.cancel();
        }
        for (_, client) in std::mem::take(&mut *self.clients.borrow_mut()) {
            client.close();
        }
        let nodes: Vec<u64> = self.peers.borrow().keys().copied().collect();
        for node in nodes.into_iter().filter(|&node| node != self.config.node) {
            self.transport.remove_peer(node);
        }
    }

    /// Whether the shard is stopping.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.get()
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
                    let received = Instant::now();
                    let request_id = request.request_id;
                    let command = matches!(request.body, RequestBody::Command { .. });
                    group
                        .server
                        .on_client_request(connection, request, now, outputs);
                    if command {
                        // The leader logs a command at once: its entry is the last one
                        // this request staged.
                        let logged = outputs.iter().rev().find_map(|output| match output {
                            ServerOutput::Replica(Action::Persist { entries, .. }) => {
                                entries.last().map(|entry| entry.index.0)
                            }
                            _ => None,
                        });
                        if let Some(index) = logged {
                            self.stages
                                .borrow_mut()
                                .logged(group.id, index, received, connection, request_id);
                        }
                    }
                    self.carry_out(group, outputs);
                }
            }
            Input::Admin {
                connection,
                group,
                request,
            } => {
                if let Some(answer) = self.admin(groups, connection, group, request, outputs) {
                    self.answer_admin(connection, group, &answer);
                }
            }
            Input::ClientClosed { connection } => {
                self.stages.borrow_mut().forget_connection(connection);
                self.membership_waiting
                    .borrow_mut()
                    .retain(|_, (waiting, _)| *waiting != connection);
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

    /// Carries out an admin request; `None` when the answer comes later (a membership
    /// change, answered once committed).
    fn admin(
        &self,
        groups: &mut BTreeMap<u32, Group<S>>,
        connection: ConnectionId,
        group: u32,
        request: AdminRequest,
        outputs: &mut Vec<ServerOutput>,
    ) -> Option<AdminResponse> {
        let change = match request {
            AdminRequest::AddPeer { node, address } => return Some(self.add_peer(node, &address)),
            AdminRequest::RemovePeer { node } => return Some(self.remove_peer(node)),
            AdminRequest::Stats { reset } => {
                let mut stages = self.stages.borrow_mut();
                let summary = stages.summary();
                if reset {
                    stages.reset();
                }
                return Some(AdminResponse::Stats { stages: summary });
            }
            AdminRequest::Status => {
                return Some(match groups.get(&group) {
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
                })
            }
            change => change,
        };
        let Some(group) = live(groups, group) else {
            return Some(AdminResponse::Error {
                reason: format!("group {group} is not running here"),
            });
        };
        let change = match membership_change(&change, group.server.replica().configuration()) {
            Ok(change) => change,
            Err(reason) => return Some(AdminResponse::Error { reason }),
        };
        let request_id = self.next_membership_request.get();
        self.next_membership_request.set(request_id + 1);
        let asked = group.server.replica_input(
            |replica, actions| replica.request_membership(change, request_id, actions),
            outputs,
        );
        match asked {
            Ok(()) => {
                self.membership_waiting
                    .borrow_mut()
                    .insert(request_id, (connection, group.id));
                self.carry_out(group, outputs);
                None
            }
            Err(error) => {
                self.carry_out(group, outputs);
                Some(refusal(&error))
            }
        }
    }

    fn answer_admin(&self, connection: ConnectionId, group: u32, answer: &AdminResponse) {
        let client = self.clients.borrow().get(&connection).cloned();
        if let Some(client) = client {
            client.send_raw(kind::ADMIN_RESPONSE, group, &answer.encode());
        }
    }

    /// Learns (or moves) a node's address and links to it; shard 0 keeps the address book.
    fn add_peer(&self, node: u64, address: &str) -> AdminResponse {
        let resolved = std::net::ToSocketAddrs::to_socket_addrs(address)
            .ok()
            .and_then(|mut all| all.next());
        let Some(resolved) = resolved else {
            return AdminResponse::Error {
                reason: format!("{address:?} is not an address"),
            };
        };
        if node == self.config.node {
            return AdminResponse::Error {
                reason: format!("node {node} is this node"),
            };
        }
        let previous = self.peers.borrow_mut().insert(node, resolved);
        if previous != Some(resolved) {
            self.link(node);
            eprintln!(
                "coracle: node {} shard {}: node {node} is at {resolved}",
                self.config.node, self.index
            );
        }
        self.save_peers()
    }

    /// Forgets a node and drops the link to it.
    fn remove_peer(&self, node: u64) -> AdminResponse {
        if node == self.config.node {
            return AdminResponse::Error {
                reason: format!("node {node} is this node"),
            };
        }
        self.peers.borrow_mut().remove(&node);
        self.transport.remove_peer(node);
        self.save_peers()
    }

    /// Shard 0 writes the address book where the next start reads it.
    fn save_peers(&self) -> AdminResponse {
        if self.index != 0 {
            return AdminResponse::Done;
        }
        match crate::peers_file::save(&self.config.data_dir, &self.peers.borrow()) {
            Ok(()) => AdminResponse::Done,
            Err(reason) => AdminResponse::Error { reason },
        }
    }

    /// Tells the group's server which persists are durable now.
    fn persisted(&self, group: &mut Group<S>, now: Time, outputs: &mut Vec<ServerOutput>) {
        match group.take_durable() {
            Ok(Some((id, last_index))) => {
                if let Some(index) = last_index {
                    self.stages
                        .borrow_mut()
                        .reached(0, group.id, index, Instant::now());
                }
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
                    } else {
                        self.stages.borrow_mut().forget_group(group.id);
                    }
                }
                ServerOutput::Replica(Action::Committed { index }) => {
                    self.stages
                        .borrow_mut()
                        .reached(1, group.id, index.0, Instant::now());
                }
                ServerOutput::Replica(Action::MembershipOutcome {
                    request_id,
                    outcome,
                }) => {
                    let waiting = self.membership_waiting.borrow_mut().remove(&request_id);
                    if let Some((connection, asked)) = waiting {
                        let answer = match outcome {
                            Ok(configuration) => AdminResponse::Changed {
                                index: configuration.index.0,
                                term: configuration.term.0,
                                members: members_of(&configuration),
                            },
                            Err(error) => refusal(&error),
                        };
                        self.answer_admin(connection, asked, &answer);
                    }
                }
                ServerOutput::Replica(_) => {}
                ServerOutput::Peer { to, message } => {
                    let sent = self.transport.send(to.0, kind::PEER, group.id, &mut |out| {
                        encode_peer_message(&message, out);
                    });
                    if sent.is_err() {
                        self.stats.borrow_mut().peer_drops += 1;
                    }
                }
                ServerOutput::Client {
                    connection,
                    message,
                } => {
                    if let ToClient::Response(response) = &message {
                        self.stages.borrow_mut().replied(
                            connection,
                            response.request_id,
                            Instant::now(),
                        );
                    }
                    let client = self.clients.borrow().get(&connection).cloned();
                    if let Some(client) = client {
                        client.send(group.id, &message);
                    }
                }
                ServerOutput::Applied { entries } => {
                    if let Some(last) = entries.last() {
                        self.stages
                            .borrow_mut()
                            .reached(2, group.id, last.index.0, Instant::now());
                    }
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
        configuration_index: replica.configuration().index.0,
        configuration_term: replica.configuration().term.0,
        members: members_of(replica.configuration()),
    }
}

fn members_of(configuration: &Configuration) -> Vec<(u64, u8)> {
    configuration
        .members
        .iter()
        .map(|member| {
            (
                member.id.0,
                entry_codec::member_type_code(member.member_type),
            )
        })
        .collect()
}

/// The engine's change for an admin request, read against the configuration in force.
fn membership_change(
    request: &AdminRequest,
    configuration: &Configuration,
) -> Result<MembershipChange, String> {
    let member_type = |code: u8| {
        entry_codec::member_type_from(code).ok_or_else(|| {
            format!("member type {code} is not reserve (1), passive (2) or active (3)")
        })
    };
    match *request {
        AdminRequest::Join {
            node,
            member_type: code,
        } => Ok(MembershipChange::Join {
            id: ReplicaId(node),
            member_type: member_type(code)?,
        }),
        AdminRequest::Leave { node } => Ok(MembershipChange::Leave {
            id: ReplicaId(node),
        }),
        AdminRequest::Reconfigure {
            node,
            member_type: code,
        } => {
            let status = configuration
                .member(ReplicaId(node))
                .map_or(MemberStatus::Available, |member| member.status);
            Ok(MembershipChange::Reconfigure {
                id: ReplicaId(node),
                member_type: member_type(code)?,
                status,
                configuration_index: configuration.index,
                configuration_term: configuration.term,
            })
        }
        _ => Err("not a membership change".into()),
    }
}

/// A refused change: worth retrying soon, or not.
fn refusal(error: &ConfigurationError) -> AdminResponse {
    match error {
        // A leader known but gone by the time the change reached it (or the request
        // reached a server that no longer leads): asked again, it goes to the new one.
        ConfigurationError::NotLeader { .. }
        | ConfigurationError::NotReady
        | ConfigurationError::ChangeInFlight => AdminResponse::Retry {
            reason: error.to_string(),
        },
        _ => AdminResponse::Error {
            reason: error.to_string(),
        },
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
