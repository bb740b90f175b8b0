//! The shape of one simulated run, drawn from its seed (or set by a test).

use coracle_engine::{PlantedBugs, Prng};

/// Everything that decides a run besides the seed's own random choices.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed: the same seed and options replay the same run exactly.
    pub seed: u64,
    /// Servers that start as voters.
    pub voters_count: usize,
    /// Servers that start outside the configuration and may join later.
    pub spares_count: usize,
    /// Concurrent clients.
    pub clients_count: usize,
    /// Simulated time with faults on.
    pub fault_duration_us: u64,
    /// Simulated time after faults stop, in which the cluster must recover.
    pub heal_duration_us: u64,
    /// Clients' session timeout (Copycat's 5 s default scaled to the short election
    /// timeout).
    pub session_timeout_ms: u64,
    /// Replica election timeout.
    pub election_timeout_ms: u64,
    /// Replica heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// How often each replica's `tick` runs.
    pub tick_us: u64,
    /// Mean pause between nemesis actions.
    pub nemesis_interval_us: u64,
    /// Longest a client thinks between operations.
    pub think_us_max: u64,
    /// Percent of messages dropped while faults are on.
    pub drop_percent: u64,
    /// Percent of messages duplicated while faults are on.
    pub duplicate_percent: u64,
    /// Percent of messages delayed by up to three election timeouts.
    pub spike_percent: u64,
    /// Largest clock drift of a server, in parts per million.
    pub drift_ppm_max: i64,
    /// Disk sync latency bounds.
    pub sync_us_min: u64,
    /// Disk sync latency bounds.
    pub sync_us_max: u64,
    /// Whether the nemesis runs (partitions, crashes, pauses, membership, clock jumps).
    pub faults: bool,
    /// Bound on the entries of one append (small values split batches, as Figure 8 needs).
    pub append_size_bytes_max: usize,
    /// Appends in flight per follower.
    pub pipeline_depth: usize,
    /// Mean pause between membership changes (0: only the nemesis's occasional ones).
    pub membership_interval_us: u64,
    /// Mean pause between leader kills (crash or isolation of whoever leads; 0: none).
    pub leader_churn_interval_us: u64,
    /// Chance per million that a server loses power right after a write, before its sync.
    pub crash_after_write_per_million: u64,
    /// Print the run's story (roles, persists, sends, commits, faults) to stdout.
    pub trace: bool,
    /// Deliberate engine bugs (sensitivity tests only).
    pub planted_bugs: PlantedBugs,
    /// The clock-drift bound servers assume (leases, expiry); `None` = the true bound,
    /// `drift_ppm_max`. A smaller value makes leases unsafe: a test shows the stale reads.
    pub assumed_drift_ppm: Option<u64>,
}

impl SimOptions {
    /// A run whose shape (cluster size, fault rates) is drawn from the seed.
    #[must_use]
    pub fn from_seed(seed: u64) -> SimOptions {
        let mut prng = Prng::new(seed ^ 0x5eed_0fc0_ac1e);
        let voters_count = match prng.range(0, 20) {
            0..=9 => 3,
            10..=16 => 5,
            _ => 7,
        };
        let drop_percent = match prng.range(0, 4) {
            0 => 0,
            1 | 2 => prng.range(1, 6),
            _ => prng.range(5, 31),
        };
        SimOptions {
            seed,
            voters_count,
            spares_count: usize::try_from(prng.range(0, 3)).expect("small"),
            clients_count: usize::try_from(prng.range(2, 7)).expect("small"),
            fault_duration_us: 60_000_000,
            heal_duration_us: 10_000_000,
            session_timeout_ms: prng.range(1_000, 2_001),
            election_timeout_ms: 150,
            heartbeat_interval_ms: 50,
            tick_us: 10_000,
            nemesis_interval_us: prng.range(300_000, 1_500_000),
            think_us_max: prng.range(10_000, 80_000),
            drop_percent,
            duplicate_percent: prng.range(0, 6),
            spike_percent: prng.range(0, 4),
            drift_ppm_max: i64::try_from(prng.range(0, 50_001)).expect("small"),
            sync_us_min: 100,
            sync_us_max: if prng.chance(1, 3) {
                prng.range(5_000, 20_000)
            } else {
                prng.range(500, 5_000)
            },
            faults: true,
            append_size_bytes_max: match prng.range(0, 3) {
                0 => 32 * 1024,
                1 => 512,
                _ => 64,
            },
            pipeline_depth: [1, 2, 8][usize::try_from(prng.range(0, 3)).expect("small")],
            membership_interval_us: if prng.chance(1, 3) {
                prng.range(100_000, 600_000)
            } else {
                0
            },
            crash_after_write_per_million: if prng.chance(1, 2) {
                prng.range(100, 3_000)
            } else {
                0
            },
            leader_churn_interval_us: if prng.chance(1, 3) {
                prng.range(150_000, 600_000)
            } else {
                0
            },
            trace: false,
            planted_bugs: PlantedBugs::default(),
            assumed_drift_ppm: None,
        }
    }

    /// Servers in all.
    #[must_use]
    pub fn nodes_count(&self) -> usize {
        self.voters_count + self.spares_count
    }
}

/// The names of the planted bugs, as `--planted-bug` takes them.
pub const PLANTED_BUG_NAMES: [&str; 11] = [
    "commit-previous-term",
    "vote-without-persist",
    "ack-before-persist",
    "skip-log-matching",
    "commit-past-request",
    "config-change-unguarded",
    "vote-any-log",
    "leader-counts-unpersisted",
    "follower-linearizable-reads",
    "skip-dedupe",
    "response-before-events",
];

/// The planted bug called `name` (one of [`PLANTED_BUG_NAMES`]).
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn planted_bug(name: &str) -> Result<PlantedBugs, String> {
    let mut bugs = PlantedBugs::default();
    match name {
        "commit-previous-term" => bugs.commit_previous_term = true,
        "vote-without-persist" => bugs.vote_without_persist = true,
        "ack-before-persist" => bugs.ack_before_persist = true,
        "skip-log-matching" => bugs.skip_log_matching = true,
        "follower-linearizable-reads" => bugs.follower_linearizable_reads = true,
        "skip-dedupe" => bugs.skip_dedupe = true,
        "response-before-events" => bugs.response_before_events = true,
        "commit-past-request" => bugs.commit_past_request = true,
        "config-change-unguarded" => bugs.config_change_unguarded = true,
        "vote-any-log" => bugs.vote_any_log = true,
        "leader-counts-unpersisted" => bugs.leader_counts_unpersisted = true,
        other => {
            return Err(format!(
                "unknown planted bug '{other}'; known: {}",
                PLANTED_BUG_NAMES.join(", ")
            ))
        }
    }
    Ok(bugs)
}
