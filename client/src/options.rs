//! What a client is told: which cluster and group, where its nodes are, and how the session
//! behaves (SPEC §B1–§B2). [`ClientOptions::validate`] names the option that is wrong.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use coracle_engine::client::{
    ClientConfig, ConnectionStrategy, RecoveryStrategy, ServerSelection, REQUEST_TIMEOUT_MS_DEFAULT,
};
use coracle_engine::session::ClientId;
use coracle_net::handshake::CLUSTER_NAME_SIZE_BYTES_MAX;

use crate::error::Error;

/// Where the client reports what it cannot return to anyone: a connection closed for a
/// malformed frame, an address that refused the handshake while others accepted.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How long opening one TCP connection and its handshake may take by default.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// How long `close` waits for the unregister by default.
pub const CLOSE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// The blocking facade's executor `io_memory` by default: glommio registers it three times
/// against the locked-memory limit (8 MiB for an unprivileged user here, docs/GLOMMIO.md),
/// and a client does no storage I/O, so the smallest useful amount.
pub const BLOCKING_IO_MEMORY_BYTES_DEFAULT: usize = 256 * 1024;
/// Copycat's back-off tables count seconds.
pub const BACKOFF_UNIT_MS_DEFAULT: u64 = 1_000;

/// Everything a client needs. Build with [`ClientOptions::new`], then set fields.
#[derive(Clone)]
pub struct ClientOptions {
    /// The cluster's name: every server checks it in the handshake and refuses another.
    pub cluster: String,
    /// One `host:port` per node: the node's base (shard 0) address. The client learns each
    /// node's id and shard count from the handshake; at least one must answer.
    pub addresses: Vec<String>,
    /// The Raft group the session belongs to.
    pub group: u32,
    /// The client's identity; a random one when `None`. Registering again with the same id
    /// expires the older session of that id (Copycat #279).
    pub client_id: Option<u128>,
    /// The session timeout asked for; 0 takes the servers' default.
    pub session_timeout_ms: u64,
    /// How long the session may stay unstable before the client gives up on it; 0 = never.
    pub unstability_timeout_ms: u64,
    /// A request unanswered by then counts as a failure of its server.
    pub request_timeout_ms: u64,
    /// Opening one TCP connection, its handshake included.
    pub connect_timeout_ms: u64,
    /// How long `close` waits for the servers to unregister the session; after it the client
    /// stops anyway and the servers expire the session on their own.
    pub close_timeout_ms: u64,
    /// How registration retries when no server answers (default ONCE).
    pub connection: ConnectionStrategy,
    /// Which servers the client talks to (default ANY).
    pub selection: ServerSelection,
    /// What happens when the session expires (default CLOSE).
    pub recovery: RecoveryStrategy,
    /// What one step of the back-off tables lasts (Copycat's are in seconds: 1000).
    pub backoff_unit_ms: u64,
    /// Seeds the shuffling of servers; random when `None`.
    pub seed: Option<u64>,
    /// Only for [`BlockingClient`](crate::BlockingClient): its executor's `io_memory`.
    pub blocking_io_memory_bytes: usize,
    /// Where problems nobody waits for are reported; standard error when `None`.
    pub log: Option<Log>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("cluster", &self.cluster)
            .field("addresses", &self.addresses)
            .field("group", &self.group)
            .field("client_id", &self.client_id)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("unstability_timeout_ms", &self.unstability_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("close_timeout_ms", &self.close_timeout_ms)
            .field("connection", &self.connection)
            .field("selection", &self.selection)
            .field("recovery", &self.recovery)
            .field("backoff_unit_ms", &self.backoff_unit_ms)
            .field("seed", &self.seed)
            .field("blocking_io_memory_bytes", &self.blocking_io_memory_bytes)
            .field("log", &self.log.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl ClientOptions {
    /// Options for group 0 of `cluster` at `addresses`, with Copycat's defaults: a
    /// server-chosen session timeout, ONCE, ANY, CLOSE.
    #[must_use]
    pub fn new(
        cluster: impl Into<String>,
        addresses: impl IntoIterator<Item = impl ToString>,
    ) -> ClientOptions {
        ClientOptions {
            cluster: cluster.into(),
            addresses: addresses.into_iter().map(|a| a.to_string()).collect(),
            group: 0,
            client_id: None,
            session_timeout_ms: 0,
            unstability_timeout_ms: 0,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            close_timeout_ms: CLOSE_TIMEOUT_MS_DEFAULT,
            connection: ConnectionStrategy::default(),
            selection: ServerSelection::default(),
            recovery: RecoveryStrategy::default(),
            backoff_unit_ms: BACKOFF_UNIT_MS_DEFAULT,
            seed: None,
            blocking_io_memory_bytes: BLOCKING_IO_MEMORY_BYTES_DEFAULT,
            log: None,
        }
    }

    /// Checks every option.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the first option that is wrong and why.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |option: &'static str, reason: String| Err(Error::InvalidOptions { option, reason });
        if self.cluster.is_empty() {
            return invalid("cluster", "must name the cluster (servers check it)".into());
        }
        if self.cluster.len() > CLUSTER_NAME_SIZE_BYTES_MAX {
            return invalid(
                "cluster",
                format!(
                    "{} bytes is over the limit of {CLUSTER_NAME_SIZE_BYTES_MAX}",
                    self.cluster.len()
                ),
            );
        }
        if self.addresses.is_empty() {
            return invalid("addresses", "at least one node address is needed".into());
        }
        for address in &self.addresses {
            if let Err(reason) = check_address(address) {
                return invalid("addresses", format!("{address:?}: {reason}"));
            }
        }
        let positive = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("close_timeout_ms", self.close_timeout_ms),
            ("backoff_unit_ms", self.backoff_unit_ms),
        ];
        for (option, value) in positive {
            if value == 0 {
                return invalid(option, "must be at least 1".into());
            }
        }
        if self.blocking_io_memory_bytes == 0 {
            return invalid("blocking_io_memory_bytes", "must be positive".into());
        }
        Ok(())
    }

    /// The engine's settings for the session; `client` and `seed` already chosen.
    pub(crate) fn session_config(&self, client: u128, seed: u64) -> ClientConfig {
        let mut config = ClientConfig::new(ClientId(client));
        config.session_timeout_ms = self.session_timeout_ms;
        config.unstability_timeout_ms = self.unstability_timeout_ms;
        config.connection = self.connection;
        config.selection = self.selection;
        config.recovery = self.recovery;
        config.request_timeout_ms = self.request_timeout_ms;
        config.seed = seed;
        config.backoff_unit_ms = self.backoff_unit_ms;
        config
    }
}

/// `host:port` with a non-empty host and a port that is a number; the name itself is
/// resolved when connecting.
fn check_address(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err("must be host:port".into());
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("port {port:?} is not a number from 0 to 65535"));
    }
    Ok(())
}

/// A random 64-bit value without a dependency: std's `RandomState` is keyed from the
/// operating system's randomness once per thread and moved on for every new state; the
/// time, the process id and a counter make two draws in one process differ regardless.
pub(crate) fn random_u64() -> u64 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    hasher.write_u128(since_epoch);
    hasher.write_u32(std::process::id());
    hasher.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A random client id (SPEC §B1: a random UUID by default).
pub(crate) fn random_client_id() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ClientOptions {
        ClientOptions::new("test", ["127.0.0.1:7000"])
    }

    fn wrong_option(options: &ClientOptions) -> &'static str {
        match options.validate() {
            Err(Error::InvalidOptions { option, .. }) => option,
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(options().validate().is_ok());
    }

    #[test]
    fn each_wrong_option_is_named() {
        let mut cluster = options();
        cluster.cluster.clear();
        assert_eq!(wrong_option(&cluster), "cluster");
        cluster.cluster = "x".repeat(CLUSTER_NAME_SIZE_BYTES_MAX + 1);
        assert_eq!(wrong_option(&cluster), "cluster");
        for address in ["", "localhost", ":7000", "host:port", "host:70000"] {
            let mut addresses = options();
            addresses.addresses = vec![address.into()];
            assert_eq!(wrong_option(&addresses), "addresses", "{address}");
        }
        let mut none = options();
        none.addresses.clear();
        assert_eq!(wrong_option(&none), "addresses");
        let mut request = options();
        request.request_timeout_ms = 0;
        assert_eq!(wrong_option(&request), "request_timeout_ms");
        let mut connect = options();
        connect.connect_timeout_ms = 0;
        assert_eq!(wrong_option(&connect), "connect_timeout_ms");
        let mut backoff = options();
        backoff.backoff_unit_ms = 0;
        assert_eq!(wrong_option(&backoff), "backoff_unit_ms");
        let message = request.validate().expect_err("invalid").to_string();
        assert!(message.contains("request_timeout_ms"), "{message}");
    }

    #[test]
    fn ipv6_addresses_pass() {
        let mut options = options();
        options.addresses = vec!["[::1]:7000".into(), "node-2.example:7000".into()];
        assert!(options.validate().is_ok());
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(random_client_id(), random_client_id());
        assert_ne!(random_u64(), random_u64());
    }
}
