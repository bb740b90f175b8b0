//! The leader expires sessions whose clients fell silent (SPEC §I2), by logging an
//! unregister with `expired = true`; every server closes the session when it applies it.
//!
//! Copycat decided by log time, so a session could expire only when some other entry moved
//! the log's clock: a lone crashed client's session lived forever (Copycat #232), and a
//! leader whose wall clock jumped could expire everyone at once. Here the leader decides by
//! its own monotonic clock: a session expires once the leader has heard nothing from its
//! client (no request of any kind, directly or forwarded, and no entry of it applied) for
//! longer than its timeout, stretched by the clock-drift bound, counting from no earlier
//! than when this leadership began. The entry carries the index the leader had applied when
//! it decided; if an entry of the session lies after it, the expiry is ignored.

use crate::server::output::ServerOutput;
use crate::server::server::Server;
use crate::session::{LogOperation, SessionId};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Server<S> {
    /// Logs an expiry for every session silent too long (leader only).
    pub(crate) fn expire_sessions(&mut self, out: &mut Vec<ServerOutput>) {
        let Some(leadership) = self.leadership.as_ref() else {
            return;
        };
        if !self.replica.leader_ready() {
            return;
        }
        let now_ms = self.now.monotonic_ms;
        let drift_ppm = self.replica.replica_config().clock_drift_ppm_max;
        let retry_ms = self.config.request_timeout_ms;
        let silent: Vec<SessionId> = self
            .host
            .sessions()
            .iter()
            .filter(|session| {
                let heard = leadership
                    .heard_ms
                    .get(&session.id())
                    .copied()
                    .unwrap_or(0)
                    .max(leadership.since_ms);
                let timeout = session.timeout_ms();
                // This clock may run fast by the drift bound: wait that much longer.
                let limit = timeout + timeout * drift_ppm / 1_000_000 + 1;
                let decided_recently = leadership
                    .expiring
                    .get(&session.id())
                    .is_some_and(|&at| now_ms < at + retry_ms);
                now_ms.saturating_sub(heard) > limit && !decided_recently
            })
            .map(|session| session.id())
            .collect();
        if silent.is_empty() {
            return;
        }
        let seen_through = self.host.last_applied();
        for session in silent {
            let operation = LogOperation::Unregister {
                session,
                expired: true,
                seen_through,
            };
            if self
                .replica
                .submit(operation.encode(), &mut self.actions)
                .is_ok()
            {
                self.stats.expiries_logged += 1;
                if let Some(leadership) = self.leadership.as_mut() {
                    leadership.expiring.insert(session, now_ms);
                }
            }
        }
        self.drain(out);
    }
}
