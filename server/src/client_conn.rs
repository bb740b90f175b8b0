//! The sending half of one client connection: responses and event batches are framed into
//! a queue that a writer task drains, one write per wake-up.
//!
//! Unlike a peer link, nothing here may be dropped silently — a client waits for every
//! response — so a client that does not read (its queue passes the cap) is disconnected;
//! it reconnects and its session layer resends what was lost (SPEC §B3).

use std::cell::{Cell, RefCell};

use coracle_engine::server::ConnectionId;
use coracle_engine::session::{wire, ToClient};
use coracle_net::frame::{encode_frame_into, FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT};
use coracle_net::kind;
use coracle_net::signal::Signal;
use futures_lite::{AsyncWrite, AsyncWriteExt};

/// Bytes queued for one client before it is disconnected.
pub const CLIENT_QUEUE_SIZE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// See the module documentation.
#[derive(Debug)]
pub struct ClientConn {
    /// The connection's number on this shard.
    pub id: ConnectionId,
    queue: RefCell<Vec<u8>>,
    signal: Signal,
    closed: Cell<bool>,
}

impl ClientConn {
    /// A connection with an empty queue.
    #[must_use]
    pub fn new(id: ConnectionId) -> ClientConn {
        ClientConn {
            id,
            queue: RefCell::new(Vec::new()),
            signal: Signal::new(),
            closed: Cell::new(false),
        }
    }

    /// Queues a message of `group` for the client. A closed connection drops it (the client
    /// resends on its next connection); a full one is closed.
    pub fn send(&self, group: u32, message: &ToClient) {
        if self.closed.get() {
            return;
        }
        let mut queue = self.queue.borrow_mut();
        if queue.len() > CLIENT_QUEUE_SIZE_BYTES_MAX {
            drop(queue);
            eprintln!(
                "coracle: client connection {} does not read; closing it",
                self.id.0
            );
            self.close();
            return;
        }
        let payload = wire::encode_to_client(message);
        let encoded = encode_frame_into(
            kind::TO_CLIENT,
            group,
            FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT,
            &mut queue,
            |out| out.extend_from_slice(&payload),
        );
        if let Err(error) = encoded {
            drop(queue);
            eprintln!(
                "coracle: a message for client connection {} cannot be sent ({error}); closing it",
                self.id.0
            );
            self.close();
            return;
        }
        self.signal.notify();
    }

    /// Queues a frame with an already encoded payload (admin answers).
    pub fn send_raw(&self, frame_kind: u8, group: u32, payload: &[u8]) {
        if self.closed.get() {
            return;
        }
        let encoded = encode_frame_into(
            frame_kind,
            group,
            FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT,
            &mut self.queue.borrow_mut(),
            |out| out.extend_from_slice(payload),
        );
        if encoded.is_err() {
            self.close();
            return;
        }
        self.signal.notify();
    }

    /// Marks the connection closed and wakes the writer so that it ends.
    pub fn close(&self) {
        self.closed.set(true);
        self.signal.notify();
    }

    /// Whether the connection is closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Writes the queue to `stream` until the connection closes or a write fails.
    pub async fn write_until_closed(&self, mut stream: impl AsyncWrite + Unpin) {
        let mut writing = Vec::new();
        loop {
            if self.closed.get() {
                break;
            }
            if self.queue.borrow().is_empty() {
                self.signal.wait().await;
                continue;
            }
            std::mem::swap(&mut *self.queue.borrow_mut(), &mut writing);
            if stream.write_all(&writing).await.is_err() {
                self.close();
                break;
            }
            writing.clear();
        }
        let _ = stream.close().await;
    }
}
