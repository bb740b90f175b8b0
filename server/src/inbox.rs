//! What the tasks of a shard hand its driver: decoded messages from peers and clients, and
//! finished flushes. Readers push, the driver takes everything at once.
//!
//! The inbox is bounded: a reader that finds it over its cap waits (polling every 100 µs,
//! which happens only under overload) before it reads more from its socket, so a flood
//! from one connection slows that connection's TCP window instead of growing memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use coracle_engine::server::{ConnectionId, PeerMessage};
use coracle_engine::session::ClientRequest;
use coracle_net::signal::Signal;

/// Inputs held before readers wait.
pub const INBOX_INPUTS_MAX: usize = 1 << 16;

/// One input for the driver.
#[derive(Debug)]
pub enum Input {
    /// A message from a peer's server of `group`.
    Peer {
        /// The sending node.
        from: u64,
        /// The group.
        group: u32,
        /// The message.
        message: PeerMessage,
    },
    /// A client's request to `group`.
    Client {
        /// The connection it came on.
        connection: ConnectionId,
        /// The group.
        group: u32,
        /// The request.
        request: ClientRequest,
    },
    /// A question from `coracle admin` about `group`.
    Admin {
        /// The connection it came on.
        connection: ConnectionId,
        /// The group.
        group: u32,
        /// The question.
        request: coracle_net::admin::AdminRequest,
    },
    /// A client connection closed.
    ClientClosed {
        /// The connection.
        connection: ConnectionId,
    },
    /// `group`'s log can take a flush again (its permit had been taken by someone else).
    Flushable {
        /// The group.
        group: u32,
    },
    /// A persist of `group` staged nothing new: it is durable already.
    Persisted {
        /// The group.
        group: u32,
    },
    /// A flush of `group`'s log finished.
    Flushed {
        /// The group.
        group: u32,
        /// Why it failed, if it did (the log is then stopped).
        error: Option<coracle_storage::StorageError>,
    },
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Inbox {
    inputs: RefCell<VecDeque<Input>>,
    signal: Signal,
}

impl Inbox {
    /// An empty inbox.
    #[must_use]
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// Adds an input and wakes the driver, without waiting (flush completions, closes).
    pub fn push(&self, input: Input) {
        self.inputs.borrow_mut().push_back(input);
        self.signal.notify();
    }

    /// Adds an input from a socket reader, then waits while the inbox is over its cap.
    pub async fn push_from_reader(&self, input: Input) {
        self.push(input);
        while self.inputs.borrow().len() > INBOX_INPUTS_MAX {
            glommio::timer::sleep(Duration::from_micros(100)).await;
        }
    }

    /// Takes every input, oldest first, into `into` (which the caller reuses).
    pub fn take_all(&self, into: &mut VecDeque<Input>) {
        std::mem::swap(&mut *self.inputs.borrow_mut(), into);
    }

    /// Whether no input waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inputs.borrow().is_empty()
    }

    /// The driver waits here for inputs.
    pub fn signal(&self) -> &Signal {
        &self.signal
    }
}
