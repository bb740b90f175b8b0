//! coracle-client: the client library. A session with one Raft group of a coracle cluster
//! over TCP: exactly-once commands, queries at four consistency levels, ordered session
//! events, failover between servers (SPEC §B–§F).
//!
//! The protocol is the engine's sans-IO [`ClientSession`](coracle_engine::client::ClientSession)
//! (sequencing, keep-alives, failover, strategies, event order). This crate is its I/O:
//! TCP connections with the handshake and frames of `coracle-net`, a clock, a timer, and
//! the API.
//!
//! # Use
//!
//! On a glommio executor:
//!
//! ```no_run
//! # async fn example() -> Result<(), coracle_client::Error> {
//! use coracle_client::{Client, ClientOptions, QueryConsistency};
//! # use coracle_engine::session::{DecodeError, Reader};
//! # use coracle_engine::state_machine::{Codec, Command, Query};
//! # struct Add(u64);
//! # impl Codec for Add {
//! #     fn encode(&self, out: &mut Vec<u8>) { self.0.encode(out) }
//! #     fn decode(reader: &mut Reader) -> Result<Self, DecodeError> { Ok(Add(u64::decode(reader)?)) }
//! # }
//! # impl Command for Add { const ID: u32 = 1; type Output = u64; }
//! # struct Total;
//! # impl Codec for Total {
//! #     fn encode(&self, _out: &mut Vec<u8>) {}
//! #     fn decode(_reader: &mut Reader) -> Result<Self, DecodeError> { Ok(Total) }
//! # }
//! # impl Query for Total { const ID: u32 = 1; type Output = u64; }
//!
//! let mut options = ClientOptions::new("prod", ["10.0.0.1:8700", "10.0.0.2:8700"]);
//! options.group = 3;
//! let client = Client::connect(options).await?;
//! let total: u64 = client.execute(&Add(5)).await?;                  // typed command
//! let read: u64 = client.read(&Total, QueryConsistency::Linearizable).await?;
//! // Pipelining: submitted in call order, each awaited on its own.
//! let pending: Vec<_> = (0..100).map(|_| client.execute(&Add(1))).collect();
//! for operation in pending {
//!     operation.await?;
//! }
//! while let Some(event) = client.try_next_event() {
//!     println!("{} at {}", event.name, event.index);
//! }
//! client.close().await?;
//! # let _ = (total, read);
//! # Ok(())
//! # }
//! ```
//!
//! From any thread, with no glommio in sight: [`BlockingClient::connect`], then the same
//! calls, blocking (`execute`, `read`, `command`, `query`), or `send_command` /
//! `send_query` returning a [`Pending`] handle to wait on later.
//!
//! # How it works
//!
//! - **Start-up** (`discovery.rs`): the client connects to every address
//!   at once; each handshake names the node and how many shards it runs. The node ids are
//!   the engine's `ReplicaId`s. A refusal (another cluster's name) is an error naming the
//!   server's reason when no address accepts.
//! - **The driver** (`driver.rs`): one `Rc<RefCell<..>>` core owns the session. Every input
//!   (a user's submission, messages from a connection, a lost connection, a timer tick)
//!   borrows it, calls the session with the monotonic time, and carries out the actions
//!   before returning: requests are queued on the server's connection, completions fill
//!   the operation's slot and wake the task awaiting it, events are queued.
//! - **Connections** (`link.rs`): one TCP connection per server in use, to the shard of the
//!   client's group (`group % shards`, port base + shard), each one task that writes what
//!   was queued and reads frames. A malformed frame, a frame of another kind or group, or
//!   an undecodable payload closes the connection with a logged reason, and the session
//!   hears it as a lost connection (it fails over and resends with the same sequence
//!   numbers, so nothing applies twice). Nothing panics on network input.
//! - **The timer**: a task sleeps until the session's `next_wake_ms`; an input that brings
//!   the deadline earlier re-arms it.
//! - **The blocking facade** ([`BlockingClient`]): its own thread runs a glommio executor
//!   (`io_memory` 256 KiB by default) with the async client. Calls cross over a mailbox
//!   whose waker glommio accepts from foreign threads: it writes the sleeping executor's
//!   eventfd, on which its io_uring waits. Answers come back through a mutex and a
//!   condition variable. Nothing polls. Measured here (2 cores), the two crossings cost
//!   22–33 µs at p50, against 12 µs for a bare thread ping-pong (`client/README.md`,
//!   `tests/latency.rs`).
//!
//! Problems nobody waits on (a connection lost, a node without a known address) go to
//! [`ClientOptions::log`], standard error by default.

mod blocking;
mod client;
mod discovery;
mod driver;
mod error;
mod link;
mod oneshot;
mod options;

pub use blocking::BlockingClient;
pub use client::{Client, Events, Operation};
pub use driver::{ClientStats, Event, Response, Status, EVENTS_QUEUED_MAX};
pub use error::{AddressFailure, Error};
pub use oneshot::Pending;
pub use options::{
    ClientOptions, Log, BACKOFF_UNIT_MS_DEFAULT, BLOCKING_IO_MEMORY_BYTES_DEFAULT,
    CLOSE_TIMEOUT_MS_DEFAULT, CONNECT_TIMEOUT_MS_DEFAULT,
};

pub use coracle_engine::client::{
    ClientState, ConnectionStrategy, OperationId, RecoveryStrategy, ServerSelection,
};
pub use coracle_engine::session::{
    ApplicationError, ClientError, CommandConsistency, QueryConsistency, SessionId,
};
