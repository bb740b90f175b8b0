//! The outbound half of a connection to one peer shard: a bounded send queue and the task
//! that connects, says hello, writes, and reconnects with back-off.
//!
//! Every message for the peer is framed straight into the queue; the writer takes the
//! whole queue at once and writes it with one call, so the heartbeats of all the groups a
//! shard leads, emitted in the same tick, travel as one write. Raft tolerates lost
//! messages, and stale ones are worse than none, so the queue drops rather than waits:
//! while the link is down every message is dropped (the leader resends from the progress
//! it tracks), and a queue over its cap drops new messages until the writer catches up.
//! Both are counted.
//!
//! Links are one-way: a node dials each peer for what it sends and accepts the peer's
//! own link for what it receives, so neither side has to decide who dials whom.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::task::JoinHandle;

use crate::frame::{encode_frame_into, FrameDecoder, FrameError};
use crate::frame_reader::FrameReader;
use crate::handshake::{kind, Hello, HelloReply, Party, PROTOCOL_VERSION};
use crate::signal::Signal;

/// How links behave.
#[derive(Clone, Debug)]
pub struct PeerLinkOptions {
    /// The cluster's name, sent in the hello.
    pub cluster: String,
    /// This node.
    pub node: u64,
    /// This shard (links join the same shard on both nodes).
    pub shard: u32,
    /// Bytes queued before new messages are dropped.
    pub queue_size_bytes_max: usize,
    /// Largest payload sent (the receiver's cap).
    pub payload_size_bytes_max: usize,
    /// How long connecting and the handshake may take.
    pub connect_timeout: Duration,
    /// The first wait after a failed connection; doubled after each failure.
    pub backoff_min: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
}

impl PeerLinkOptions {
    /// Defaults: an 8 MiB queue, 16 MiB payloads, 1 s to connect, back-off 10 ms to 1 s.
    #[must_use]
    pub fn new(cluster: impl Into<String>, node: u64, shard: u32) -> PeerLinkOptions {
        PeerLinkOptions {
            cluster: cluster.into(),
            node,
            shard,
            queue_size_bytes_max: 8 * 1024 * 1024,
            payload_size_bytes_max: crate::frame::FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT,
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// Why a message was not queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The link is down; the message was dropped.
    NotConnected,
    /// The queue is over its cap; the message was dropped.
    Full,
    /// The payload is over the cap.
    TooLarge(FrameError),
}

/// Counters of one link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames queued.
    pub frames_queued: u64,
    /// Frames dropped while the link was down.
    pub dropped_not_connected: u64,
    /// Frames dropped because the queue was full.
    pub dropped_full: u64,
    /// Writes (each carries every frame queued when it began).
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Connections made.
    pub connects: u64,
    /// Attempts that failed.
    pub connect_failures: u64,
}

struct LinkState {
    to: u64,
    address: SocketAddr,
    options: PeerLinkOptions,
    queue: RefCell<Vec<u8>>,
    signal: Signal,
    connected: Cell<bool>,
    stats: RefCell<LinkStats>,
}

/// See the module documentation. Dropping the link stops its task and closes the socket.
pub struct PeerLink {
    state: Rc<LinkState>,
    task: Option<JoinHandle<()>>,
}

impl PeerLink {
    /// Starts linking to node `to` at `address`, on the current glommio executor.
    #[must_use]
    pub fn start(options: PeerLinkOptions, to: u64, address: SocketAddr) -> PeerLink {
        let state = Rc::new(LinkState {
            to,
            address,
            options,
            queue: RefCell::new(Vec::new()),
            signal: Signal::new(),
            connected: Cell::new(false),
            stats: RefCell::new(LinkStats::default()),
        });
        let task = glommio::spawn_local(run(Rc::clone(&state))).detach();
        PeerLink {
            state,
            task: Some(task),
        }
    }

    /// Queues one frame whose payload `write_payload` appends.
    ///
    /// # Errors
    /// The link is down or full (the message is dropped), or the payload is too large.
    pub fn send(
        &self,
        frame_kind: u8,
        group: u32,
        write_payload: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), SendError> {
        let state = &self.state;
        if !state.connected.get() {
            state.stats.borrow_mut().dropped_not_connected += 1;
            return Err(SendError::NotConnected);
        }
        let mut queue = state.queue.borrow_mut();
        if queue.len() >= state.options.queue_size_bytes_max {
            state.stats.borrow_mut().dropped_full += 1;
            return Err(SendError::Full);
        }
        encode_frame_into(
            frame_kind,
            group,
            state.options.payload_size_bytes_max,
            &mut queue,
            write_payload,
        )
        .map_err(SendError::TooLarge)?;
        state.stats.borrow_mut().frames_queued += 1;
        state.signal.notify();
        Ok(())
    }

    /// Whether the link is up.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.state.connected.get()
    }

    /// The node this link goes to.
    #[must_use]
    pub fn to(&self) -> u64 {
        self.state.to
    }

    /// The address it connects to.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.state.address
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> LinkStats {
        self.state.stats.borrow().clone()
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.cancel();
        }
    }
}

/// Connects, writes until the connection fails, and starts again after a back-off.
async fn run(state: Rc<LinkState>) {
    let options = &state.options;
    let mut backoff = options.backoff_min;
    let mut failures_in_a_row = 0u64;
    loop {
        match connect(&state).await {
            Ok(stream) => {
                backoff = options.backoff_min;
                failures_in_a_row = 0;
                state.stats.borrow_mut().connects += 1;
                state.queue.borrow_mut().clear();
                state.connected.set(true);
                let error = write_until_error(&state, stream).await;
                state.connected.set(false);
                state.queue.borrow_mut().clear();
                eprintln!(
                    "coracle: node {} shard {}: link to node {} at {} lost: {error}",
                    options.node, options.shard, state.to, state.address
                );
            }
            Err(reason) => {
                state.stats.borrow_mut().connect_failures += 1;
                failures_in_a_row += 1;
                // Not the first few (peers starting together refuse each other for a
                // moment), then rarely: a peer that is down for long is not news.
                if failures_in_a_row == 5 || failures_in_a_row.is_multiple_of(100) {
                    eprintln!(
                        "coracle: node {} shard {}: cannot link to node {} at {} \
                         ({failures_in_a_row} tries): {reason}",
                        options.node, options.shard, state.to, state.address
                    );
                }
            }
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(options.backoff_max);
    }
}

/// Opens the connection and says hello; the peer must accept as the node expected.
async fn connect(state: &LinkState) -> Result<TcpStream, String> {
    let options = &state.options;
    let mut stream = TcpStream::connect_timeout(state.address, options.connect_timeout)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .set_nodelay(true)
        .map_err(|error| format!("nodelay: {error}"))?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster: options.cluster.clone(),
        party: Party::Peer {
            node: options.node,
            shard: options.shard,
        },
    };
    let mut out = Vec::new();
    let payload = hello.encode();
    encode_frame_into(kind::HELLO, 0, usize::MAX, &mut out, |out| {
        out.extend_from_slice(&payload);
    })
    .map_err(|error| error.to_string())?;
    stream
        .write_all(&out)
        .await
        .map_err(|error| format!("hello: {error}"))?;
    let reply = {
        let mut reader = FrameReader::new(&mut stream, FrameDecoder::new(4096));
        let read = futures_lite::future::or(async { Some(reader.next().await) }, async {
            glommio::timer::sleep(options.connect_timeout).await;
            None
        });
        match read.await {
            None => return Err("no answer to the hello in time".into()),
            Some(Err(error)) => return Err(format!("hello reply: {error}")),
            Some(Ok(None)) => return Err("closed before answering the hello".into()),
            Some(Ok(Some(frame))) if frame.kind != kind::HELLO_REPLY => {
                return Err(format!(
                    "frame kind {} instead of a hello reply",
                    frame.kind
                ))
            }
            Some(Ok(Some(frame))) => HelloReply::decode(frame.payload)
                .map_err(|error| format!("malformed hello reply: {error}"))?,
        }
    };
    match reply {
        HelloReply::Accepted { node, shard, .. } if node == state.to && shard == options.shard => {
            Ok(stream)
        }
        HelloReply::Accepted { node, shard, .. } => Err(format!(
            "the address answers as node {node} shard {shard}, not node {} shard {}",
            state.to, options.shard
        )),
        HelloReply::Refused { reason } => Err(format!("refused: {reason}")),
    }
}

/// Writes whatever is queued, one write per wake-up, until a write fails.
async fn write_until_error(state: &LinkState, mut stream: TcpStream) -> std::io::Error {
    let mut writing = Vec::new();
    loop {
        if state.queue.borrow().is_empty() {
            state.signal.wait().await;
            continue;
        }
        std::mem::swap(&mut *state.queue.borrow_mut(), &mut writing);
        if let Err(error) = stream.write_all(&writing).await {
            return error;
        }
        {
            let mut stats = state.stats.borrow_mut();
            stats.writes += 1;
            stats.bytes_written += writing.len() as u64;
        }
        writing.clear();
    }
}
