//! Settings of the session and query layer of one server.

/// Copycat's default session timeout.
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Requests a server holds at once (waiting for their entry, a forward or a query's
/// conditions); more are refused with an internal error rather than queued without bound.
pub const REQUESTS_PENDING_MAX_DEFAULT: usize = 1 << 16;

/// How a server serves clients.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The timeout a session gets when its client asks for 0.
    pub session_timeout_ms_default: u64,
    /// Bound on requests held at once.
    pub requests_pending_max: usize,
    /// How long a forwarded request or a waiting query is held before it is answered with
    /// an error (the client retries).
    pub request_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_timeout_ms_default: SESSION_TIMEOUT_MS_DEFAULT,
            requests_pending_max: REQUESTS_PENDING_MAX_DEFAULT,
            request_timeout_ms: 4 * crate::config::ELECTION_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl ServerConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// Names the setting that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_timeout_ms_default == 0 {
            return Err("session_timeout_ms_default must be positive".into());
        }
        if self.requests_pending_max == 0 {
            return Err("requests_pending_max must be at least 1".into());
        }
        if self.request_timeout_ms == 0 {
            return Err("request_timeout_ms must be positive".into());
        }
        Ok(())
    }
}
