//! Settings of one replica, with Copycat's defaults (SPEC §A1).

use crate::types::ReplicaId;

/// Copycat's default election timeout.
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 750;
/// Copycat's default heartbeat interval.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 250;
/// Copycat's bound on the entries of one append request.
pub const APPEND_SIZE_BYTES_MAX_DEFAULT: usize = 32 * 1024;
/// Appends in flight to one follower before the leader waits for answers.
pub const PIPELINE_DEPTH_DEFAULT: usize = 8;
/// Copycat's default global suspend timeout (one hour).
pub const GLOBAL_SUSPEND_TIMEOUT_MS_DEFAULT: u64 = 60 * 60 * 1000;
/// Missed heartbeats before the leader marks a member UNAVAILABLE (SPEC §G4).
pub const HEARTBEAT_FAILURES_UNAVAILABLE: u32 = 3;
/// Missed heartbeats before the leader backs off heartbeats to a member (SPEC §G4).
pub const HEARTBEAT_FAILURES_BACKOFF: u32 = 5;
/// Longest heartbeat back-off (SPEC §G4).
pub const HEARTBEAT_BACKOFF_MS_MAX: u64 = 60_000;
/// The assumed bound on clock drift: 0.1%, far looser than the 50–100 ppm of common
/// crystal oscillators, so that a leader lease stays safe on ordinary hardware.
pub const CLOCK_DRIFT_PPM_MAX_DEFAULT: u64 = 1_000;
/// Drift bounds from here up are refused: a lease shrinks by twice the drift (see
/// `Replica::lease_until_ms`), and at 25% it would keep barely half an election timeout.
pub const CLOCK_DRIFT_PPM_MAX_LIMIT: u64 = 250_000;

const _: () = assert!(HEARTBEAT_INTERVAL_MS_DEFAULT * 3 <= ELECTION_TIMEOUT_MS_DEFAULT);
const _: () = assert!(HEARTBEAT_FAILURES_UNAVAILABLE < HEARTBEAT_FAILURES_BACKOFF);
const _: () = assert!(PIPELINE_DEPTH_DEFAULT >= 1);
const _: () = assert!(CLOCK_DRIFT_PPM_MAX_DEFAULT < CLOCK_DRIFT_PPM_MAX_LIMIT);

/// Deliberate bugs, switched on only by the simulator's sensitivity tests to prove that
/// the checkers catch them. Every flag is false in a default configuration.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Commit an entry of a previous term by counting replicas (Raft Figure 8).
    pub commit_previous_term: bool,
    /// Send a vote before it is durable, and never write it.
    pub vote_without_persist: bool,
    /// Acknowledge appended entries before they are durable.
    pub ack_before_persist: bool,
    /// Accept appends without checking the term at `prev_index`.
    pub skip_log_matching: bool,
    /// Cap a follower's commit at its own last entry, not the request's last entry.
    pub commit_past_request: bool,
    /// Allow membership changes before the leader's no-op commits, and several at once.
    pub config_change_unguarded: bool,
    /// Grant polls and votes without checking the candidate's log is up to date.
    pub vote_any_log: bool,
    /// Count the leader's own entries before they are durable.
    pub leader_counts_unpersisted: bool,
    /// A follower answers LINEARIZABLE and LINEARIZABLE_LEASE queries from its own state
    /// instead of sending them to the leader.
    pub follower_linearizable_reads: bool,
    /// Run a retried command again instead of answering it from its session's cache.
    pub skip_dedupe: bool,
    /// A client completes a response without waiting for the events published before it.
    pub response_before_events: bool,
}

/// What a replica needs to know about itself.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// This server.
    pub id: ReplicaId,
    /// Base election timeout T; followers wait a random time in [T, 2T).
    pub election_timeout_ms: u64,
    /// Interval between the leader's heartbeats.
    pub heartbeat_interval_ms: u64,
    /// Bound on the entries in one append request (at least one entry is always sent).
    pub append_size_bytes_max: usize,
    /// Appends in flight to one follower.
    pub pipeline_depth: usize,
    /// How long an unavailable member still holds back the global index.
    pub global_suspend_timeout_ms: u64,
    /// Seed of the replica's PRNG (election jitter).
    pub seed: u64,
    /// The documented bound on how fast or slow any server's monotonic clock may run
    /// relative to real time, in parts per million. The leader lease (SPEC §D4) is safe
    /// only while every server's clock keeps within it.
    pub clock_drift_ppm_max: u64,
    /// Deliberate bugs for the sensitivity tests; all off by default.
    pub planted_bugs: PlantedBugs,
}

impl ReplicaConfig {
    /// A configuration with Copycat's defaults.
    #[must_use]
    pub fn new(id: ReplicaId, seed: u64) -> ReplicaConfig {
        ReplicaConfig {
            id,
            election_timeout_ms: ELECTION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            append_size_bytes_max: APPEND_SIZE_BYTES_MAX_DEFAULT,
            pipeline_depth: PIPELINE_DEPTH_DEFAULT,
            global_suspend_timeout_ms: GLOBAL_SUSPEND_TIMEOUT_MS_DEFAULT,
            seed,
            clock_drift_ppm_max: CLOCK_DRIFT_PPM_MAX_DEFAULT,
            planted_bugs: PlantedBugs::default(),
        }
    }

    /// Checks the settings (SPEC §A1: election timeout above heartbeat interval).
    ///
    /// # Errors
    /// Names the setting that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat_interval_ms must be positive".into());
        }
        if self.election_timeout_ms <= self.heartbeat_interval_ms {
            return Err(format!(
                "election_timeout_ms ({}) must exceed heartbeat_interval_ms ({})",
                self.election_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.pipeline_depth == 0 {
            return Err("pipeline_depth must be at least 1".into());
        }
        if self.append_size_bytes_max == 0 {
            return Err("append_size_bytes_max must be positive".into());
        }
        if self.clock_drift_ppm_max >= CLOCK_DRIFT_PPM_MAX_LIMIT {
            return Err(format!(
                "clock_drift_ppm_max ({}) must be below {CLOCK_DRIFT_PPM_MAX_LIMIT}",
                self.clock_drift_ppm_max
            ));
        }
        Ok(())
    }
}
