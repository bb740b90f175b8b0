//! [`Transport`] inside one process: a whole cluster without sockets, for tests and for the
//! benchmark of the engine's own overhead.
//!
//! A [`LocalNetwork`] (shared by every node of the process through an `Arc`) is a registry
//! of endpoints keyed by (cluster name, node, shard). [`LocalNetwork::endpoint`] registers
//! one and returns its sending half, a [`LocalTransport`], and its receiving half, a
//! [`LocalReceiver`]. Like a peer link, a transport reaches the same shard on its peers,
//! and only peers added with [`Transport::add_peer`] (the address is not used): a shard
//! runs the same code over either transport.
//!
//! # The frames
//! `send` frames the payload exactly as a peer link does (header, CRC32C, cap on the
//! payload), into a scratch buffer, and hands the receiver one exactly-sized copy of it.
//! The receiver cuts the frame out with the [`FrameDecoder`], as a socket reader does: the
//! checksum is checked, and the payload is a zero-copy slice of that buffer. The checksum
//! cannot fail here short of a bug; it is kept so that a local cluster pays what a real
//! one pays per frame (the benchmark measures the engine and its framing, only without
//! the kernel), and so that local frames go through the very decoder TCP frames go
//! through. A frame that does not decode is dropped and counted, never a panic.
//!
//! # The mailbox and its wake-up
//! Each endpoint has a mailbox: a mutex over a queue of (sender, frame) plus the waker of
//! the receiving task while it waits. The sender pushes and, when the receiver waits,
//! wakes it; the receiver takes the whole queue at once, so frames sent while it was busy
//! cost it one lock and one wake-up per batch, not per frame (the batching a peer link's
//! one-write-per-wake-up gives).
//!
//! The receiver runs on another executor's thread. glommio 0.9 accepts a waker called
//! from a foreign thread: it goes to the owning executor's queue of foreign wakes, and if
//! that executor sleeps (or is about to) the executor's eventfd is written, which its
//! `io_uring` watches, so the receiver runs at once, without polling (glommio
//! `task/raw.rs` `do_wake`, `sys/mod.rs` `SleepNotifier::notify`; the client crate relies
//! on the same, see `client/src/blocking.rs`). An executor busy running tasks reaps such
//! wake-ups when it next polls its reactor: when it runs out of ready tasks or its task
//! queue's time slice is up (`glommio::yield_if_needed`), the same moments at which it
//! reaps socket completions.
//!
//! The sender wakes with `wake_by_ref`, under the mailbox's lock, and never holds a clone
//! of the waker: the only handle is the one in the mailbox, replaced or dropped by the
//! receiver on its own thread. glommio's foreign-thread waker drop is the fragile path:
//! as glommio 0.9's `drop_waker` reads, dropping a task's last reference from another
//! thread after its executor has ended re-queues the task, the failed send drops it
//! again, and so on without end. With this discipline no sender ever drops the last
//! reference, and the receiver cannot drop the waker while a sender uses it (both happen
//! under the lock).
//!
//! # Bounds and failures
//! Each (sender, receiver) pair may have `queue_size_bytes_max` bytes queued; past that,
//! `send` drops the frame with [`SendError::Full`] until the receiver takes the queue, as
//! a peer link's queue does. A peer without an endpoint (not started, stopped, or dropped
//! its receiver) is [`SendError::NotConnected`]. A second endpoint for the same key
//! replaces the first (a restarted node): the first's queued frames are dropped, as a
//! reset connection drops its buffers, and its receiver ends.
//!
//! # Faults
//! [`LocalNetwork::partition`], [`LocalNetwork::partition_one_way`] and
//! [`LocalNetwork::isolate`] drop frames between nodes at `send`, which reports
//! `NotConnected` as a link that noticed would; [`LocalNetwork::heal`],
//! [`LocalNetwork::rejoin`] and [`LocalNetwork::heal_all`] undo them. Frames queued
//! before a fault still arrive, like bytes already on the wire. Faults name nodes, in
//! every cluster of the network and on every shard.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use bytes::BytesMut;

use crate::frame::{
    encode_frame_into, Frame, FrameDecoder, FRAME_HEADER_SIZE_BYTES,
    FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT,
};
use crate::transport::{SendError, Transport};

/// Bytes one sender may have queued for one receiver by default (a peer link's default).
pub const LOCAL_QUEUE_SIZE_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;
/// A scratch buffer that grew past this for a large frame is given back afterwards.
const SCRATCH_KEPT_BYTES_MAX: usize = 1024 * 1024;

/// How a [`LocalNetwork`] bounds its queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNetworkOptions {
    /// Bytes (frames with their headers) one sender may have queued for one receiver
    /// before its new frames are dropped.
    pub queue_size_bytes_max: usize,
    /// Largest payload sent and received.
    pub payload_size_bytes_max: usize,
}

impl Default for LocalNetworkOptions {
    /// The peer links' defaults: an 8 MiB queue, 16 MiB payloads.
    fn default() -> LocalNetworkOptions {
        LocalNetworkOptions {
            queue_size_bytes_max: LOCAL_QUEUE_SIZE_BYTES_MAX_DEFAULT,
            payload_size_bytes_max: FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Endpoints by cluster name, then by (node, shard).
type Registry = BTreeMap<String, BTreeMap<(u64, u32), Arc<Mailbox>>>;

/// See the module documentation. `Send + Sync`: share it between nodes with an `Arc`.
pub struct LocalNetwork {
    options: LocalNetworkOptions,
    endpoints: Mutex<Registry>,
    faults: Mutex<Faults>,
    /// Whether any fault is set: senders read this instead of locking `faults`, so a
    /// network without faults (the benchmark) shares no lock between senders.
    faulty: AtomicBool,
}

/// Directed cuts: `(from, to)` drops frames from `from` to `to`.
#[derive(Debug, Default)]
struct Faults {
    cuts: BTreeSet<(u64, u64)>,
    isolated: BTreeSet<u64>,
}

impl Faults {
    fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cuts.contains(&(from, to))
            || self.isolated.contains(&from)
            || self.isolated.contains(&to)
    }

    fn is_empty(&self) -> bool {
        self.cuts.is_empty() && self.isolated.is_empty()
    }
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<(String, u64, u32)> = lock(&self.endpoints)
            .iter()
            .flat_map(|(cluster, by_key)| {
                by_key
                    .keys()
                    .map(move |&(node, shard)| (cluster.clone(), node, shard))
            })
            .collect();
        f.debug_struct("LocalNetwork")
            .field("options", &self.options)
            .field("endpoints", &endpoints)
            .field("faults", &*lock(&self.faults))
            .finish_non_exhaustive()
    }
}

impl LocalNetwork {
    /// An empty network.
    ///
    /// # Panics
    /// If a cap is zero.
    #[must_use]
    pub fn new(options: LocalNetworkOptions) -> Arc<LocalNetwork> {
        assert!(options.queue_size_bytes_max > 0);
        assert!(options.payload_size_bytes_max > 0);
        Arc::new(LocalNetwork {
            options,
            endpoints: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults::default()),
            faulty: AtomicBool::new(false),
        })
    }

    /// The options it was made with.
    #[must_use]
    pub fn options(&self) -> &LocalNetworkOptions {
        &self.options
    }

    /// Registers shard `shard` of `node` in `cluster`, with no peers yet, and returns its
    /// two halves. An endpoint already registered under that key is replaced (a restarted
    /// node): its queued frames are dropped and its receiver ends.
    ///
    /// The cluster's name is part of the key, as the hello's check is on a socket: two
    /// clusters sharing a network (tests that start several) never see each other's
    /// frames.
    #[must_use]
    pub fn endpoint(
        self: &Arc<Self>,
        cluster: &str,
        node: u64,
        shard: u32,
    ) -> (LocalTransport, LocalReceiver) {
        let mailbox = Arc::new(Mailbox::new());
        let replaced = lock(&self.endpoints)
            .entry(cluster.to_string())
            .or_default()
            .insert((node, shard), Arc::clone(&mailbox));
        if let Some(replaced) = replaced {
            replaced.close();
        }
        let transport = LocalTransport {
            network: Arc::clone(self),
            cluster: cluster.to_string(),
            node,
            shard,
            peers: RefCell::new(BTreeMap::new()),
            scratch: RefCell::new(Vec::new()),
            stats: RefCell::new(LocalTransportStats::default()),
        };
        let receiver = LocalReceiver {
            network: Arc::clone(self),
            cluster: cluster.to_string(),
            node,
            shard,
            mailbox,
            taken: VecDeque::new(),
            decoder: FrameDecoder::new(self.options.payload_size_bytes_max),
            stats: LocalReceiverStats::default(),
        };
        (transport, receiver)
    }

    /// Whether shard `shard` of `node` in `cluster` has an endpoint.
    #[must_use]
    pub fn is_registered(&self, cluster: &str, node: u64, shard: u32) -> bool {
        self.resolve(cluster, node, shard).is_some()
    }

    /// Drops every frame between `a` and `b`, both ways, until healed.
    ///
    /// # Panics
    /// If `a` is `b`.
    pub fn partition(&self, a: u64, b: u64) {
        assert!(a != b, "node {a} cannot be partitioned from itself");
        self.change_faults(|faults| {
            faults.cuts.insert((a, b));
            faults.cuts.insert((b, a));
        });
    }

    /// Drops every frame from `from` to `to` (not the other way), until healed.
    ///
    /// # Panics
    /// If `from` is `to`.
    pub fn partition_one_way(&self, from: u64, to: u64) {
        assert!(from != to, "node {from} cannot be partitioned from itself");
        self.change_faults(|faults| {
            faults.cuts.insert((from, to));
        });
    }

    /// Ends a partition between `a` and `b`, both ways (an isolation stays).
    pub fn heal(&self, a: u64, b: u64) {
        self.change_faults(|faults| {
            faults.cuts.remove(&(a, b));
            faults.cuts.remove(&(b, a));
        });
    }

    /// Drops every frame to and from `node`, until it rejoins.
    pub fn isolate(&self, node: u64) {
        self.change_faults(|faults| {
            faults.isolated.insert(node);
        });
    }

    /// Ends the isolation of `node` (partitions naming it stay).
    pub fn rejoin(&self, node: u64) {
        self.change_faults(|faults| {
            faults.isolated.remove(&node);
        });
    }

    /// Ends every partition and isolation.
    pub fn heal_all(&self) {
        self.change_faults(|faults| {
            faults.cuts.clear();
            faults.isolated.clear();
        });
    }

    /// Whether frames from `from` to `to` are dropped now.
    #[must_use]
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.faulty.load(Ordering::Acquire) && lock(&self.faults).is_cut(from, to)
    }

    fn change_faults(&self, change: impl FnOnce(&mut Faults)) {
        let mut faults = lock(&self.faults);
        change(&mut faults);
        // Under the lock, so that the flag always matches the last change.
        self.faulty.store(!faults.is_empty(), Ordering::Release);
    }

    fn resolve(&self, cluster: &str, node: u64, shard: u32) -> Option<Arc<Mailbox>> {
        lock(&self.endpoints)
            .get(cluster)
            .and_then(|by_key| by_key.get(&(node, shard)))
            .cloned()
    }

    /// Removes `mailbox` from the registry if it is still the one registered.
    fn deregister(&self, cluster: &str, node: u64, shard: u32, mailbox: &Arc<Mailbox>) {
        let mut endpoints = lock(&self.endpoints);
        if let Some(by_key) = endpoints.get_mut(cluster) {
            if by_key
                .get(&(node, shard))
                .is_some_and(|registered| Arc::ptr_eq(registered, mailbox))
            {
                by_key.remove(&(node, shard));
            }
            if by_key.is_empty() {
                endpoints.remove(cluster);
            }
        }
    }
}

// The network is shared by every node's threads; each half moves to the executor that
// uses it (made where the node starts, used on its shard's thread).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    fn movable<T: Send>() {}
    shared::<LocalNetwork>();
    movable::<LocalTransport>();
    movable::<LocalReceiver>();
};

/// Locks `mutex`, even after a panic elsewhere: every change made under these locks is one
/// push, swap or insert, which a panic cannot leave half done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One endpoint's mailbox. See the module documentation.
#[derive(Debug)]
struct Mailbox {
    state: Mutex<MailboxState>,
    /// Set (under the lock) when the endpoint is gone: senders read it without the lock to
    /// find a stale cached mailbox before they frame anything.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct MailboxState {
    /// Whole frames, with the node that sent each.
    frames: VecDeque<(u64, BytesMut)>,
    /// Bytes each sender queued since the receiver last took the queue.
    queued_bytes_by_sender: BTreeMap<u64, usize>,
    /// The receiving task's waker, kept until the receiver replaces or drops it.
    waker: Option<Waker>,
    /// The receiver waits on an empty queue: the next push wakes it.
    waiting: bool,
}

/// Why a push was refused.
enum PushError {
    Closed,
    Full,
}

impl Mailbox {
    fn new() -> Mailbox {
        Mailbox {
            state: Mutex::new(MailboxState::default()),
            closed: AtomicBool::new(false),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn push(
        &self,
        from: u64,
        frame: BytesMut,
        queue_size_bytes_max: usize,
    ) -> Result<(), PushError> {
        assert!(
            frame.len() >= FRAME_HEADER_SIZE_BYTES,
            "a frame is at least its header"
        );
        let mut state = lock(&self.state);
        if self.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed);
        }
        let queued = state.queued_bytes_by_sender.entry(from).or_insert(0);
        if *queued >= queue_size_bytes_max {
            return Err(PushError::Full);
        }
        // Like a peer link's queue, the frame that crosses the cap is still taken.
        *queued += frame.len();
        state.frames.push_back((from, frame));
        if state.waiting {
            state.waiting = false;
            let waker = state
                .waker
                .as_ref()
                .expect("a waiting receiver left its waker");
            // By reference, under the lock: see the module documentation.
            waker.wake_by_ref();
        }
        Ok(())
    }

    /// Marks the mailbox gone, drops its frames and wakes its receiver (which ends).
    fn close(&self) {
        let mut state = lock(&self.state);
        self.closed.store(true, Ordering::Release);
        state.frames.clear();
        state.queued_bytes_by_sender.clear();
        if state.waiting {
            state.waiting = false;
            let waker = state
                .waker
                .as_ref()
                .expect("a waiting receiver left its waker");
            waker.wake_by_ref();
        }
    }
}

/// Counters of a [`LocalTransport`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalTransportStats {
    /// Frames queued for a receiver.
    pub frames_sent: u64,
    /// Their bytes, headers included.
    pub bytes_sent: u64,
    /// Frames dropped: not a peer, or no endpoint.
    pub dropped_not_connected: u64,
    /// Frames dropped by a partition or isolation (also reported as `NotConnected`).
    pub dropped_partitioned: u64,
    /// Frames dropped because the receiver's queue for this sender was full.
    pub dropped_full: u64,
}

/// The sending half of an endpoint: see the module documentation. It may move to the
/// executor that uses it, but is used from one thread at a time (it is not `Sync`).
pub struct LocalTransport {
    network: Arc<LocalNetwork>,
    cluster: String,
    node: u64,
    shard: u32,
    /// Peers, each with its mailbox once found (and until it closes).
    peers: RefCell<BTreeMap<u64, Option<Arc<Mailbox>>>>,
    /// Where frames are encoded before the receiver's copy is made.
    scratch: RefCell<Vec<u8>>,
    stats: RefCell<LocalTransportStats>,
}

impl std::fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTransport")
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("shard", &self.shard)
            .field("peers", &self.peers.borrow().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalTransport {
    /// This endpoint's node.
    #[must_use]
    pub fn node(&self) -> u64 {
        self.node
    }

    /// This endpoint's shard.
    #[must_use]
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The peers, in order.
    #[must_use]
    pub fn peers(&self) -> Vec<u64> {
        self.peers.borrow().keys().copied().collect()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> LocalTransportStats {
        self.stats.borrow().clone()
    }

    /// The open mailbox of peer `to`, found again if the cached one closed (the peer
    /// restarted); `None` if `to` is not a peer or has no endpoint.
    fn mailbox(&self, to: u64) -> Option<Arc<Mailbox>> {
        let mut peers = self.peers.borrow_mut();
        let cached = peers.get_mut(&to)?;
        if let Some(mailbox) = cached.as_ref().filter(|mailbox| !mailbox.is_closed()) {
            return Some(Arc::clone(mailbox));
        }
        *cached = self
            .network
            .resolve(&self.cluster, to, self.shard)
            .filter(|mailbox| !mailbox.is_closed());
        cached.clone()
    }
}

impl Transport for LocalTransport {
    fn send(
        &self,
        to: u64,
        kind: u8,
        group: u32,
        write_payload: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Result<(), SendError> {
        let Some(mailbox) = self.mailbox(to) else {
            self.stats.borrow_mut().dropped_not_connected += 1;
            return Err(SendError::NotConnected);
        };
        if self.network.is_cut(self.node, to) {
            self.stats.borrow_mut().dropped_partitioned += 1;
            return Err(SendError::NotConnected);
        }
        let frame = {
            let mut scratch = self.scratch.borrow_mut();
            scratch.clear();
            let encoded = encode_frame_into(
                kind,
                group,
                self.network.options.payload_size_bytes_max,
                &mut scratch,
                write_payload,
            );
            // One exactly-sized buffer per frame, made outside the mailbox's lock: the
            // receiver's payload slices keep it alive, and nothing more.
            let frame = encoded.map(|()| BytesMut::from(&scratch[..]));
            if scratch.capacity() > SCRATCH_KEPT_BYTES_MAX {
                *scratch = Vec::new();
            }
            frame.map_err(SendError::TooLarge)?
        };
        let size = frame.len();
        match mailbox.push(self.node, frame, self.network.options.queue_size_bytes_max) {
            Ok(()) => {
                let mut stats = self.stats.borrow_mut();
                stats.frames_sent += 1;
                stats.bytes_sent += size as u64;
                Ok(())
            }
            Err(PushError::Full) => {
                self.stats.borrow_mut().dropped_full += 1;
                Err(SendError::Full)
            }
            Err(PushError::Closed) => {
                // The peer went away between the lookup and the push.
                self.stats.borrow_mut().dropped_not_connected += 1;
                Err(SendError::NotConnected)
            }
        }
    }

    /// Adds `node` as a peer; the address is not used (endpoints are found by node).
    fn add_peer(&self, node: u64, _address: SocketAddr) {
        assert!(node != self.node, "node {node} cannot be its own peer");
        self.peers.borrow_mut().entry(node).or_insert(None);
    }

    fn remove_peer(&self, node: u64) {
        self.peers.borrow_mut().remove(&node);
    }

    fn is_connected(&self, to: u64) -> bool {
        self.mailbox(to).is_some() && !self.network.is_cut(self.node, to)
    }
}

/// Counters of a [`LocalReceiver`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalReceiverStats {
    /// Frames handed out.
    pub frames_received: u64,
    /// Times the queue was taken (each takes every frame queued then).
    pub batches: u64,
    /// Frames that did not decode, dropped (a bug: local frames are never damaged).
    pub frames_refused: u64,
}

/// The receiving half of an endpoint: see the module documentation. Poll it from one task;
/// dropping it removes the endpoint (senders then get `NotConnected`).
pub struct LocalReceiver {
    network: Arc<LocalNetwork>,
    cluster: String,
    node: u64,
    shard: u32,
    mailbox: Arc<Mailbox>,
    /// Frames taken from the mailbox, not yet handed out.
    taken: VecDeque<(u64, BytesMut)>,
    decoder: FrameDecoder,
    stats: LocalReceiverStats,
}

impl std::fmt::Debug for LocalReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReceiver")
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("shard", &self.shard)
            .field("taken", &self.taken.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LocalReceiver {
    /// The next frame and the node that sent it, waiting for one; `None` once a newer
    /// endpoint replaced this one. Frames from one sender come in the order it sent them.
    pub async fn next(&mut self) -> Option<(u64, Frame)> {
        loop {
            if let Some(received) = self.next_taken() {
                return Some(received);
            }
            if !self.take().await {
                return None;
            }
        }
    }

    /// A frame already queued, without waiting; `None` when none is (or it ended).
    pub fn try_next(&mut self) -> Option<(u64, Frame)> {
        if let Some(received) = self.next_taken() {
            return Some(received);
        }
        let mut state = lock(&self.mailbox.state);
        if state.frames.is_empty() {
            return None;
        }
        take_locked(&mut self.taken, &mut self.stats, &mut state);
        drop(state);
        self.next_taken()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> LocalReceiverStats {
        self.stats.clone()
    }

    /// This endpoint's node.
    #[must_use]
    pub fn node(&self) -> u64 {
        self.node
    }

    /// This endpoint's shard.
    #[must_use]
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Decodes the next frame taken; frames that do not decode are dropped and counted.
    fn next_taken(&mut self) -> Option<(u64, Frame)> {
        while let Some((from, mut bytes)) = self.taken.pop_front() {
            match self.decoder.decode(&mut bytes) {
                Ok(Some(frame)) => {
                    assert!(bytes.is_empty(), "one frame per buffer");
                    self.stats.frames_received += 1;
                    return Some((from, frame));
                }
                Ok(None) => self.refuse(from, "a truncated frame"),
                Err(error) => self.refuse(from, &error.to_string()),
            }
        }
        None
    }

    fn refuse(&mut self, from: u64, reason: &str) {
        self.stats.frames_refused += 1;
        eprintln!(
            "coracle: node {} shard {}: dropped a local frame from node {from}: {reason}",
            self.node, self.shard
        );
    }

    /// Waits until the mailbox holds frames and takes them all: `false` if it closed.
    async fn take(&mut self) -> bool {
        assert!(self.taken.is_empty());
        poll_fn(|context| {
            let mut state = lock(&self.mailbox.state);
            if !state.frames.is_empty() {
                take_locked(&mut self.taken, &mut self.stats, &mut state);
                return Poll::Ready(true);
            }
            if self.mailbox.is_closed() {
                return Poll::Ready(false);
            }
            // Replace the waker only when it would wake another task: a clone per wait
            // is a reference count changed, and the old one is dropped here, on the
            // receiver's own thread.
            if !state
                .waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(context.waker()))
            {
                state.waker = Some(context.waker().clone());
            }
            state.waiting = true;
            Poll::Pending
        })
        .await
    }
}

/// Takes every queued frame into `taken` (swapping queues keeps both allocations).
fn take_locked(
    taken: &mut VecDeque<(u64, BytesMut)>,
    stats: &mut LocalReceiverStats,
    state: &mut MailboxState,
) {
    assert!(taken.is_empty());
    assert!(!state.frames.is_empty());
    std::mem::swap(&mut state.frames, taken);
    for queued in state.queued_bytes_by_sender.values_mut() {
        *queued = 0;
    }
    state.waiting = false;
    stats.batches += 1;
}

impl Drop for LocalReceiver {
    fn drop(&mut self) {
        self.network
            .deregister(&self.cluster, self.node, self.shard, &self.mailbox);
        // The waker is dropped here, on the receiver's thread (see the module
        // documentation), not by whichever sender drops the mailbox last; and closing
        // need not wake a task that is going away.
        let waker = {
            let mut state = lock(&self.mailbox.state);
            state.waiting = false;
            state.waker.take()
        };
        self.mailbox.close();
        drop(waker);
    }
}

#[cfg(test)]
mod tests;
