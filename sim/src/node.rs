//! One simulated server: a replica (absent while crashed), its disk, its copy of the
//! state machine, its clock, and the client requests it is waiting to answer.

use std::collections::BTreeMap;

use coracle_engine::{Configuration, LogIndex, Replica, ReplicaId, Term, Time};

use crate::disk::Disk;
use crate::kv::KvStore;
use crate::safety::ChainTracker;

/// Wall clocks start here (2026-01-01 in ms since the epoch).
const WALL_EPOCH_MS: i64 = 1_767_225_600_000;

/// A client request a server submitted and will answer when its entry applies.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    /// The term the entry was written in.
    pub term: Term,
    /// The client (position in the client list).
    pub client: usize,
    /// The client's process id.
    pub process: u64,
    /// The client's request number.
    pub request: u64,
}

/// One server.
#[derive(Debug)]
pub struct SimNode {
    /// Its Raft id.
    pub id: ReplicaId,
    /// The replica, or `None` while crashed.
    pub replica: Option<Replica>,
    /// Durable storage (survives crashes, minus unsynced writes).
    pub disk: Disk,
    /// The state machine (rebuilt by replay after a restart).
    pub kv: KvStore,
    /// Requests waiting for their entry to apply, by index.
    pub waiting: BTreeMap<LogIndex, Waiting>,
    /// Bumped at each crash so that stale events for the old process are ignored.
    pub incarnation: u64,
    /// The server is frozen until this time.
    pub paused_until_us: u64,
    /// Clock rate error in parts per million.
    pub drift_ppm: i64,
    /// Wall-clock offset (jumps move it).
    pub wall_offset_ms: i64,
    /// The checker's view of this server's log.
    pub chain: ChainTracker,
    /// Highest index whose commit the checker has verified.
    pub commit_checked: LogIndex,
    /// True while a disk sync is scheduled.
    pub sync_scheduled: bool,
    /// The bootstrap configuration it was started with.
    pub bootstrap: Configuration,
}

impl SimNode {
    /// A server that has not started yet.
    #[must_use]
    pub fn new(
        id: ReplicaId,
        bootstrap: Configuration,
        drift_ppm: i64,
        wall_offset_ms: i64,
    ) -> Self {
        SimNode {
            id,
            replica: None,
            disk: Disk::default(),
            kv: KvStore::default(),
            waiting: BTreeMap::new(),
            incarnation: 0,
            paused_until_us: 0,
            drift_ppm,
            wall_offset_ms,
            chain: ChainTracker::default(),
            commit_checked: LogIndex::ZERO,
            sync_scheduled: false,
            bootstrap,
        }
    }

    /// The server's clocks at simulated time `now_us`: a monotonic clock running at its
    /// own rate, and a wall clock that may be offset and may jump.
    #[must_use]
    pub fn time(&self, now_us: u64) -> Time {
        let now = i128::from(now_us);
        let drifted_us = now + now * i128::from(self.drift_ppm) / 1_000_000;
        let monotonic_ms = u64::try_from(drifted_us / 1000).unwrap_or(0);
        let wall = i128::from(WALL_EPOCH_MS) + drifted_us / 1000 + i128::from(self.wall_offset_ms);
        let wall_ms = u64::try_from(wall).unwrap_or(0);
        Time {
            monotonic_ms,
            wall_ms,
        }
    }

    /// True if the server is running (not crashed).
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.replica.is_some()
    }
}
