//! One simulated server: the engine's whole server (replica, state machine, sessions;
//! absent while crashed), its disk, its clock, and what the expiry checker knows of it.

use std::collections::BTreeMap;

use coracle_engine::server::Server;
use coracle_engine::session::SessionId;
use coracle_engine::{Configuration, LogIndex, Replica, ReplicaId, Time};

use crate::disk::Disk;
use crate::kv::SimKv;
use crate::safety::ChainTracker;

/// Wall clocks start here (2026-01-01 in ms since the epoch).
const WALL_EPOCH_MS: i64 = 1_767_225_600_000;

/// One server.
pub struct SimNode {
    /// Its Raft id.
    pub id: ReplicaId,
    /// The server, or `None` while crashed.
    pub server: Option<Server<SimKv>>,
    /// Durable storage (survives crashes, minus unsynced writes).
    pub disk: Disk,
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
    /// When this server last became leader (simulated µs), while it leads.
    pub leader_since_us: Option<u64>,
    /// When this server last heard from each session's client: a keep-alive or command
    /// delivered (directly or forwarded), or a register or keep-alive applied.
    pub heard_us: BTreeMap<SessionId, u64>,
    /// The highest index whose expiry entries the checker has looked at.
    pub expiry_checked: LogIndex,
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
            server: None,
            disk: Disk::default(),
            incarnation: 0,
            paused_until_us: 0,
            drift_ppm,
            wall_offset_ms,
            chain: ChainTracker::default(),
            commit_checked: LogIndex::ZERO,
            sync_scheduled: false,
            bootstrap,
            leader_since_us: None,
            heard_us: BTreeMap::new(),
            expiry_checked: LogIndex::ZERO,
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
        self.server.is_some()
    }

    /// The replica, while up.
    #[must_use]
    pub fn replica(&self) -> Option<&Replica> {
        self.server.as_ref().map(Server::replica)
    }
}
