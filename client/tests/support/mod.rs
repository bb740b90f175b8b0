//! A test cluster for the client: whole engine `Server`s running the `KvMachine`, behind
//! real glommio TCP listeners that speak the handshake and frames, all on one executor.
//!
//! Each node listens on one port per shard (consecutive ports, shard 0 the base); the
//! group lives on shard `group % shards`, and a client request on another shard closes the
//! connection. Persistence is acknowledged at once, peers talk through an in-process queue,
//! and a task ticks every server every few milliseconds. Faults: a node's client
//! connections cut (and new ones closed at once), a command's response swallowed by closing
//! its connection, a command's response replaced by garbage bytes.

#![allow(dead_code)] // Each test file uses a different part.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use coracle_engine::kv::KvMachine;
use coracle_engine::server::{ConnectionId, PeerMessage, Server, ServerConfig, ServerOutput};
use coracle_engine::session::wire::{decode_request, encode_to_client};
use coracle_engine::session::{ResponseBody, ToClient};
use coracle_engine::state_machine::HostStats;
use coracle_engine::{
    Action, Configuration, Replica, ReplicaConfig, ReplicaId, Restored, Role, Time,
};
use coracle_net::{encode_frame, kind, Frame, FrameDecoder, Hello, HelloReply};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};

/// glommio registers io_memory three times against the locked-memory limit; tests run
/// several executors at once.
pub const TEST_IO_MEMORY_BYTES: usize = 128 * 1024;
/// A test that has not finished by then fails instead of hanging.
pub const TEST_DEADLINE: Duration = Duration::from_secs(8);
/// Short Raft timers: a leader within about 100 ms.
const ELECTION_TIMEOUT_MS: u64 = 40;
const HEARTBEAT_INTERVAL_MS: u64 = 10;
const TICK_MS: u64 = 5;

/// Runs `test` on a fresh executor and fails it if it takes longer than the deadline.
pub fn run<F: Future<Output = ()> + 'static>(test: impl FnOnce() -> F + Send + 'static) {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(move || async move {
            let deadline = async {
                Timer::new(TEST_DEADLINE).await;
                panic!("the test did not finish within {TEST_DEADLINE:?}");
            };
            futures_lite::future::or(test(), deadline).await;
        })
        .expect("an executor")
        .join()
        .expect("no panic in the test");
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub nodes: u64,
    pub shards: u32,
    pub group: u32,
}

impl Spec {
    pub fn new(nodes: u64) -> Spec {
        Spec {
            name: "test",
            nodes,
            shards: 1,
            group: 0,
        }
    }
}

struct Node {
    server: Server<KvMachine>,
    /// One per shard.
    addresses: Vec<SocketAddr>,
    isolated: bool,
}

/// Faults to inject; each counts down as it strikes.
#[derive(Default)]
pub struct Faults {
    /// Command responses to swallow by closing their connection instead.
    pub drop_command_responses: Cell<u32>,
    /// Command responses to replace with bytes that are not a frame.
    pub garble_command_responses: Cell<u32>,
}

/// The cluster; see the module documentation.
pub struct TestCluster {
    spec: Spec,
    start: Instant,
    nodes: RefCell<Vec<Node>>,
    connections: RefCell<BTreeMap<u64, (u64, Rc<Outgoing>)>>,
    next_connection: Cell<u64>,
    pub faults: Faults,
}

impl TestCluster {
    /// Starts the nodes, their listeners and the ticker on the current executor.
    pub fn start(spec: Spec) -> Rc<TestCluster> {
        assert!(spec.nodes >= 1 && spec.shards >= 1);
        let ids: Vec<ReplicaId> = (1..=spec.nodes).map(ReplicaId).collect();
        let start = Instant::now();
        let mut nodes = Vec::new();
        let mut listeners = Vec::new();
        for &id in &ids {
            let shard_listeners = bind_consecutive(spec.shards);
            let addresses = shard_listeners
                .iter()
                .map(|listener| listener.local_addr().expect("bound"))
                .collect();
            listeners.push(shard_listeners);
            let mut config = ReplicaConfig::new(id, 7);
            config.election_timeout_ms = ELECTION_TIMEOUT_MS;
            config.heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS;
            let now = time(start);
            let replica = Replica::new(
                config,
                Configuration::bootstrap(&ids),
                Restored::default(),
                now,
            );
            let server_config = ServerConfig {
                request_timeout_ms: 4 * ELECTION_TIMEOUT_MS,
                ..ServerConfig::default()
            };
            let server = Server::new(server_config, replica, KvMachine::default(), now);
            nodes.push(Node {
                server,
                addresses,
                isolated: false,
            });
        }
        let cluster = Rc::new(TestCluster {
            spec,
            start,
            nodes: RefCell::new(nodes),
            connections: RefCell::new(BTreeMap::new()),
            next_connection: Cell::new(0),
            faults: Faults::default(),
        });
        for (position, shard_listeners) in listeners.into_iter().enumerate() {
            let node = position as u64 + 1;
            for (shard, listener) in shard_listeners.into_iter().enumerate() {
                let shard = u32::try_from(shard).expect("few shards");
                glommio::spawn_local(accept(Rc::clone(&cluster), node, shard, listener)).detach();
            }
        }
        glommio::spawn_local(tick(Rc::downgrade(&cluster))).detach();
        cluster
    }

    /// Each node's base (shard 0) address.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .borrow()
            .iter()
            .map(|node| node.addresses[0].to_string())
            .collect()
    }

    /// Waits until some node leads and has committed its first entry.
    pub async fn leader(&self) -> u64 {
        loop {
            let leader = self.nodes.borrow().iter().position(|node| {
                node.server.replica().role() == Role::Leader && node.server.replica().leader_ready()
            });
            if let Some(position) = leader {
                return position as u64 + 1;
            }
            Timer::new(Duration::from_millis(TICK_MS)).await;
        }
    }

    /// Node `node`'s state-machine counters.
    pub fn host_stats(&self, node: u64) -> HostStats {
        self.nodes.borrow()[index(node)].server.host().stats()
    }

    /// Node `node`'s state machine.
    pub fn machine(&self, node: u64) -> KvMachine {
        self.nodes.borrow()[index(node)]
            .server
            .host()
            .machine()
            .clone()
    }

    /// Cuts every client connection of `node` and closes new ones right after their hello.
    pub fn isolate(&self, node: u64) {
        self.nodes.borrow_mut()[index(node)].isolated = true;
        for (held_by, connection) in self.connections.borrow().values() {
            if *held_by == node {
                connection.close();
            }
        }
    }

    /// Client connections open at `node`.
    pub fn connections_at(&self, node: u64) -> usize {
        let connections = self.connections.borrow();
        connections
            .values()
            .filter(|(held_by, _)| *held_by == node)
            .count()
    }

    fn now(&self) -> Time {
        time(self.start)
    }

    /// Runs one input on `node`, then carries out everything it and the peers it reaches
    /// ask for, until nothing is left.
    fn drive(
        &self,
        node: u64,
        input: impl FnOnce(&mut Server<KvMachine>, Time, &mut Vec<ServerOutput>),
    ) {
        let mut peers = VecDeque::new();
        self.step(node, input, &mut peers);
        while let Some((from, to, message)) = peers.pop_front() {
            self.step(
                to,
                |server, now, out| server.on_peer_message(ReplicaId(from), message, now, out),
                &mut peers,
            );
        }
    }

    fn step(
        &self,
        node: u64,
        input: impl FnOnce(&mut Server<KvMachine>, Time, &mut Vec<ServerOutput>),
        peers: &mut VecDeque<(u64, u64, PeerMessage)>,
    ) {
        let now = self.now();
        let mut out = Vec::new();
        let mut to_clients = Vec::new();
        {
            let mut nodes = self.nodes.borrow_mut();
            let server = &mut nodes[index(node)].server;
            input(server, now, &mut out);
            loop {
                let mut durable = None;
                for output in out.drain(..) {
                    match output {
                        ServerOutput::Replica(Action::Persist { id, .. }) => durable = Some(id),
                        ServerOutput::Replica(_) | ServerOutput::Applied { .. } => {}
                        ServerOutput::Peer { to, message } => {
                            peers.push_back((node, to.0, message));
                        }
                        ServerOutput::Client {
                            connection,
                            message,
                        } => to_clients.push((connection, message)),
                    }
                }
                let Some(id) = durable else { break };
                server.on_persisted(id, now, &mut out);
            }
        }
        for (connection, message) in to_clients {
            self.to_client(connection, &message);
        }
    }

    fn to_client(&self, connection: ConnectionId, message: &ToClient) {
        let connections = self.connections.borrow();
        let Some((_, outgoing)) = connections.get(&connection.0) else {
            return; // Closed meanwhile.
        };
        let is_command_response = matches!(
            message,
            ToClient::Response(response) if matches!(response.body, Ok(ResponseBody::Command { .. }))
        );
        if is_command_response && countdown(&self.faults.drop_command_responses) {
            outgoing.close();
            return;
        }
        if is_command_response && countdown(&self.faults.garble_command_responses) {
            outgoing.push_raw(b"this is not a coracle frame at all");
            return;
        }
        let payload = encode_to_client(message);
        outgoing.push(kind::TO_CLIENT, self.spec.group, &payload);
    }

    fn open_connection(&self, node: u64) -> (u64, Rc<Outgoing>) {
        let id = self.next_connection.get() + 1;
        self.next_connection.set(id);
        let outgoing = Rc::new(Outgoing::default());
        self.connections
            .borrow_mut()
            .insert(id, (node, Rc::clone(&outgoing)));
        (id, outgoing)
    }

    fn connection_closed(&self, node: u64, id: u64) {
        self.connections.borrow_mut().remove(&id);
        self.nodes.borrow_mut()[index(node)]
            .server
            .on_connection_closed(ConnectionId(id));
    }
}

fn index(node: u64) -> usize {
    usize::try_from(node - 1).expect("small node ids")
}

fn time(start: Instant) -> Time {
    let elapsed = u64::try_from(start.elapsed().as_millis()).expect("short tests");
    Time {
        monotonic_ms: elapsed,
        wall_ms: elapsed,
    }
}

fn countdown(counter: &Cell<u32>) -> bool {
    let left = counter.get();
    if left == 0 {
        return false;
    }
    counter.set(left - 1);
    true
}

/// `shards` listeners on consecutive ports of 127.0.0.1.
fn bind_consecutive(shards: u32) -> Vec<TcpListener> {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").expect("a port");
        let base = first.local_addr().expect("bound").port();
        let mut listeners = vec![first];
        for shard in 1..shards {
            let port = base.checked_add(u16::try_from(shard).expect("few shards"));
            let Some(port) = port else { break };
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => listeners.push(listener),
                Err(_) => break,
            }
        }
        if listeners.len() == shards as usize {
            return listeners;
        }
    }
    panic!("no {shards} consecutive free ports");
}

async fn tick(cluster: std::rc::Weak<TestCluster>) {
    loop {
        Timer::new(Duration::from_millis(TICK_MS)).await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        for node in 1..=cluster.spec.nodes {
            cluster.drive(node, |server, now, out| server.tick(now, out));
        }
    }
}

async fn accept(cluster: Rc<TestCluster>, node: u64, shard: u32, listener: TcpListener) {
    while let Ok(stream) = listener.accept().await {
        glommio::spawn_local(serve(Rc::clone(&cluster), node, shard, stream)).detach();
    }
}

/// One client connection: the handshake, then requests in and messages out.
async fn serve(cluster: Rc<TestCluster>, node: u64, shard: u32, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let mut buffer = BytesMut::new();
    let Ok(Some(frame)) = read_frame(&mut reader, &mut buffer).await else {
        return;
    };
    if frame.kind != kind::HELLO || cluster.nodes.borrow()[index(node)].isolated {
        return;
    }
    let Ok(hello) = Hello::decode(frame.payload) else {
        return;
    };
    let spec = cluster.spec.clone();
    let reply = match hello.check(spec.name, shard, |_| true) {
        Ok(()) => HelloReply::Accepted {
            node,
            shard,
            shards: spec.shards,
            groups: spec.group + 1,
        },
        Err(error) => HelloReply::Refused {
            reason: error.to_string(),
        },
    };
    let refused = matches!(reply, HelloReply::Refused { .. });
    let mut bytes = BytesMut::new();
    encode_frame(kind::HELLO_REPLY, 0, &reply.encode(), &mut bytes);
    if writer.write_all(&bytes).await.is_err() || refused {
        return;
    }
    let (id, outgoing) = cluster.open_connection(node);
    let reading = async {
        while let Ok(Some(frame)) = read_frame(&mut reader, &mut buffer).await {
            let right_shard = spec.group % spec.shards == shard;
            if frame.kind != kind::CLIENT_REQUEST || frame.group != spec.group || !right_shard {
                return;
            }
            let Ok(request) = decode_request(&frame.payload) else {
                return;
            };
            cluster.drive(node, |server, now, out| {
                server.on_client_request(ConnectionId(id), request, now, out);
            });
        }
    };
    let writing = async {
        while let Some(bytes) = outgoing.next().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    futures_lite::future::or(reading, writing).await;
    cluster.connection_closed(node, id);
}

async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    buffer: &mut BytesMut,
) -> Result<Option<Frame>, String> {
    let decoder = FrameDecoder::default();
    let mut scratch = [0; 4096];
    loop {
        if let Some(frame) = decoder.decode(buffer).map_err(|error| error.to_string())? {
            return Ok(Some(frame));
        }
        let count = reader.read(&mut scratch).await.map_err(|e| e.to_string())?;
        if count == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&scratch[..count]);
    }
}

/// Bytes queued for one connection's writer.
#[derive(Default)]
struct Outgoing {
    buffer: RefCell<BytesMut>,
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Outgoing {
    fn push(&self, kind: u8, group: u32, payload: &[u8]) {
        encode_frame(kind, group, payload, &mut self.buffer.borrow_mut());
        self.wake();
    }

    fn push_raw(&self, bytes: &[u8]) {
        self.buffer.borrow_mut().extend_from_slice(bytes);
        self.wake();
    }

    fn close(&self) {
        self.closed.set(true);
        self.wake();
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    async fn next(&self) -> Option<BytesMut> {
        std::future::poll_fn(|context| {
            if self.closed.get() {
                return Poll::Ready(None);
            }
            let mut buffer = self.buffer.borrow_mut();
            if !buffer.is_empty() {
                return Poll::Ready(Some(buffer.split()));
            }
            *self.waker.borrow_mut() = Some(context.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A cluster on its own thread, for the blocking client's tests: started at once, stopped
/// when dropped.
pub struct ClusterThread {
    pub addresses: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<glommio::ExecutorJoinHandle<()>>,
}

impl ClusterThread {
    pub fn start(spec: Spec) -> ClusterThread {
        let (sender, receiver) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(TEST_IO_MEMORY_BYTES)
            .spawn(move || async move {
                let cluster = TestCluster::start(spec);
                cluster.leader().await;
                sender.send(cluster.addresses()).expect("the test waits");
                // Test-only: a poll every 10 ms is the simplest way to hear of the stop.
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    Timer::new(Duration::from_millis(10)).await;
                }
            })
            .expect("an executor");
        let addresses = receiver
            .recv_timeout(TEST_DEADLINE)
            .expect("the cluster started");
        ClusterThread {
            addresses,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ClusterThread {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
