//! The client's strategies (SPEC §B1–§B2): how it retries connecting, which servers it
//! talks to, and what it does when its session expires; and the back-off it uses between
//! retries of an open session (SPEC §C3).
//!
//! Every delay is counted in *failed passes*: a pass tries each acceptable server once, and
//! only a pass on which no server answered leads to a wait. The first failed pass is pass 1.

/// Exponential back-off never waits longer than this between passes.
pub const EXPONENTIAL_BACKOFF_MAX_S: u64 = 60;

/// Fibonacci back-off between connection passes, in seconds; the last value repeats.
pub const FIBONACCI_BACKOFF_S: [u64; 7] = [1, 1, 2, 3, 5, 8, 13];

/// Back-off between retries of an open session's requests (SPEC §C3), in seconds; the last
/// value repeats.
pub const RETRY_BACKOFF_S: [u64; 5] = [1, 1, 2, 3, 5];

const MS_PER_S: u64 = 1000;

const _: () = assert!(FIBONACCI_BACKOFF_S[FIBONACCI_BACKOFF_S.len() - 1] == 13);
const _: () = assert!(RETRY_BACKOFF_S[RETRY_BACKOFF_S.len() - 1] == 5);
const _: () = assert!(EXPONENTIAL_BACKOFF_MAX_S == 60);

/// How a client that cannot reach any server retries registering a session (SPEC §B2).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ConnectionStrategy {
    /// One pass over the servers; if none registers the session, opening fails.
    #[default]
    Once,
    /// Passes without end, `min(2^pass, 60)` seconds apart: 2, 4, 8, 16, 32, 60, 60, ...
    ExponentialBackoff,
    /// Passes without end, 1, 1, 2, 3, 5, 8, 13, 13, ... seconds apart.
    FibonacciBackoff,
}

impl ConnectionStrategy {
    /// The wait after `failed_passes` (at least 1) passes in a row failed, or `None` to give
    /// up.
    #[must_use]
    pub fn delay_ms(self, failed_passes: u32) -> Option<u64> {
        assert!(failed_passes >= 1, "a delay follows a failed pass");
        match self {
            ConnectionStrategy::Once => None,
            ConnectionStrategy::ExponentialBackoff => {
                let seconds = if failed_passes >= 6 {
                    EXPONENTIAL_BACKOFF_MAX_S
                } else {
                    (1u64 << failed_passes).min(EXPONENTIAL_BACKOFF_MAX_S)
                };
                Some(seconds * MS_PER_S)
            }
            ConnectionStrategy::FibonacciBackoff => {
                Some(step(&FIBONACCI_BACKOFF_S, failed_passes) * MS_PER_S)
            }
        }
    }
}

/// The wait before retrying an open session's requests after `failures` (at least 1)
/// failures in a row: 1, 1, 2, 3, 5, 5, ... seconds (SPEC §C3).
#[must_use]
pub fn retry_delay_ms(failures: u32) -> u64 {
    assert!(failures >= 1, "a delay follows a failure");
    step(&RETRY_BACKOFF_S, failures) * MS_PER_S
}

fn step(table: &[u64], failures: u32) -> u64 {
    assert!(!table.is_empty());
    let position = usize::try_from(failures - 1).unwrap_or(usize::MAX);
    table[position.min(table.len() - 1)]
}

/// Which servers a client talks to (SPEC §B2). Recomputed whenever a response names a new
/// leader or new members.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ServerSelection {
    /// Any server, in an order shuffled with the client's seeded generator.
    #[default]
    Any,
    /// The leader once it is known; every server (shuffled) while it is not.
    Leader,
    /// Servers other than the leader (shuffled); the leader only when it is the only
    /// member, and every server while no leader is known.
    Followers,
}

/// What a client does when its session expires (SPEC §B2–§B3).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum RecoveryStrategy {
    /// Close the client: every pending operation fails with `ClosedSession`.
    #[default]
    Close,
    /// Register a new session and resubmit pending operations in order, with new sequence
    /// numbers. Linearizability across the two sessions is lost: an operation the old
    /// session sent may have applied before the expiry and applies again in the new one.
    Recover,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(strategy: ConnectionStrategy, passes: u32) -> Vec<Option<u64>> {
        (1..=passes)
            .map(|pass| strategy.delay_ms(pass).map(|ms| ms / 1000))
            .collect()
    }

    #[test]
    fn once_gives_up_after_the_first_pass() {
        assert_eq!(seconds(ConnectionStrategy::Once, 3), vec![None, None, None]);
    }

    #[test]
    fn exponential_doubles_up_to_a_minute() {
        let expected = [2, 4, 8, 16, 32, 60, 60, 60].map(Some).to_vec();
        assert_eq!(seconds(ConnectionStrategy::ExponentialBackoff, 8), expected);
        assert_eq!(
            ConnectionStrategy::ExponentialBackoff.delay_ms(u32::MAX),
            Some(60_000)
        );
    }

    #[test]
    fn fibonacci_grows_to_thirteen_seconds() {
        let expected = [1, 1, 2, 3, 5, 8, 13, 13, 13].map(Some).to_vec();
        assert_eq!(seconds(ConnectionStrategy::FibonacciBackoff, 9), expected);
        assert_eq!(
            ConnectionStrategy::FibonacciBackoff.delay_ms(u32::MAX),
            Some(13_000)
        );
    }

    #[test]
    fn retries_back_off_to_five_seconds() {
        let delays: Vec<u64> = (1..=7).map(retry_delay_ms).collect();
        assert_eq!(delays, vec![1000, 1000, 2000, 3000, 5000, 5000, 5000]);
    }
}
