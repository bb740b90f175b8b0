//! A client's settings (SPEC §B1) and the bounds it keeps.

use crate::client::strategies::{ConnectionStrategy, RecoveryStrategy, ServerSelection};
use crate::session::ClientId;

/// Operations submitted and not yet completed (no-op fillers included): a submission
/// beyond it is refused with [`SubmitError::TooManyPending`](crate::client::SubmitError).
pub const PENDING_OPERATIONS_MAX: usize = 1024;

/// How long a request may wait for its answer by default.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;

const _: () = assert!(PENDING_OPERATIONS_MAX > 0);

/// Copycat's back-off tables count seconds.
pub const BACKOFF_UNIT_MS_DEFAULT: u64 = 1000;

/// How a client behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The client's identity; registering again with it expires its older session.
    pub client: ClientId,
    /// The session timeout asked for; 0 takes the servers' default.
    pub session_timeout_ms: u64,
    /// How long the session may stay unstable before the client closes it; 0 = never.
    pub unstability_timeout_ms: u64,
    /// How registration retries when no server answers.
    pub connection: ConnectionStrategy,
    /// Which servers the client talks to.
    pub selection: ServerSelection,
    /// What happens when the session expires.
    pub recovery: RecoveryStrategy,
    /// A request with no answer by then counts as a failure of its server (at least 1).
    pub request_timeout_ms: u64,
    /// Seeds the generator that shuffles servers.
    pub seed: u64,
    /// What one step of the back-off tables lasts: Copycat's tables are in seconds
    /// (1000). A test or simulator running with much shorter election timeouts scales
    /// them down with it.
    pub backoff_unit_ms: u64,
    /// Deliberate bugs for the simulator's sensitivity tests (only
    /// `response_before_events` concerns clients); all off by default.
    pub planted_bugs: crate::config::PlantedBugs,
}

impl ClientConfig {
    /// Copycat's defaults: server-chosen session timeout, no unstability timeout, ONCE,
    /// ANY, CLOSE; requests time out after [`REQUEST_TIMEOUT_MS_DEFAULT`].
    #[must_use]
    pub fn new(client: ClientId) -> ClientConfig {
        ClientConfig {
            client,
            session_timeout_ms: 0,
            unstability_timeout_ms: 0,
            connection: ConnectionStrategy::default(),
            selection: ServerSelection::default(),
            recovery: RecoveryStrategy::default(),
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            seed: 0,
            backoff_unit_ms: BACKOFF_UNIT_MS_DEFAULT,
            planted_bugs: crate::config::PlantedBugs::default(),
        }
    }
}
