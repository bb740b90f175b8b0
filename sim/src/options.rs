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
    /// Deliberate engine bugs (sensitivity tests only).
    pub planted_bugs: PlantedBugs,
}

impl SimOptions {
    /// A run whose shape (cluster size, fault rates) is drawn from the seed.
    #[must_use]
    pub fn from_seed(seed: u64) -> SimOptions {
        let mut prng = Prng::new(seed ^ 0x5eed_0f_c0ac1e);
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
            fault_duration_us: 20_000_000,
            heal_duration_us: 6_000_000,
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
            sync_us_max: prng.range(500, 5_000),
            faults: true,
            planted_bugs: PlantedBugs::default(),
        }
    }

    /// Servers in all.
    #[must_use]
    pub fn nodes_count(&self) -> usize {
        self.voters_count + self.spares_count
    }
}
