//! Where a command's time goes on the leader that logged it: from the request's arrival
//! to its entry being durable here, committed (a quorum has it), applied, and answered.
//! PERFORMANCE.md asks for this breakdown; `coracle admin stats` and `coracle-bench run`
//! print it.
//!
//! The shard notes each client command's entry index as the leader stages it, then stamps
//! the entry as the log, the replica and the state machine report progress, and records
//! the intervals into histograms (µs) when the response leaves. Tracking is bounded: past
//! [`TRACKED_MAX`] commands in flight, new ones are not followed (and counted).

use std::collections::BTreeMap;
use std::time::Instant;

use coracle_engine::server::ConnectionId;
use coracle_net::admin::StageFigures;
use hdrhistogram::Histogram;

/// Commands followed at once per shard.
pub const TRACKED_MAX: usize = 1 << 16;

/// The stages, in order, as names for reports.
pub const STAGE_NAMES: [&str; 4] = ["persisted", "committed", "applied", "replied"];

#[derive(Debug)]
struct Tracked {
    received: Instant,
    /// When each of the first three stages was reached.
    stamps: [Option<Instant>; 3],
    connection: ConnectionId,
    request_id: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct CommitStages {
    /// By (group, entry index).
    tracked: BTreeMap<(u32, u64), Tracked>,
    /// (connection, request id) to (group, entry index).
    by_request: BTreeMap<(ConnectionId, u64), (u32, u64)>,
    /// From arrival to each stage, µs.
    histograms: [Histogram<u64>; 4],
    /// Commands not followed because too many were.
    untracked: u64,
}

impl Default for CommitStages {
    fn default() -> Self {
        CommitStages::new()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("the bounds are valid")
}

impl CommitStages {
    /// Nothing followed yet.
    #[must_use]
    pub fn new() -> CommitStages {
        CommitStages {
            tracked: BTreeMap::new(),
            by_request: BTreeMap::new(),
            histograms: [histogram(), histogram(), histogram(), histogram()],
            untracked: 0,
        }
    }

    /// A client's command got entry `index` of `group`, having arrived at `received`.
    pub fn logged(
        &mut self,
        group: u32,
        index: u64,
        received: Instant,
        connection: ConnectionId,
        request_id: u64,
    ) {
        if self.tracked.len() >= TRACKED_MAX {
            self.untracked += 1;
            return;
        }
        self.tracked.insert(
            (group, index),
            Tracked {
                received,
                stamps: [None; 3],
                connection,
                request_id,
            },
        );
        self.by_request
            .insert((connection, request_id), (group, index));
    }

    /// Entries of `group` through `index` reached stage `stage` (0 durable here, 1
    /// committed, 2 applied) at `now`.
    pub fn reached(&mut self, stage: usize, group: u32, index: u64, now: Instant) {
        for (_, tracked) in self.tracked.range_mut((group, 0)..=(group, index)) {
            if tracked.stamps[stage].is_none() {
                tracked.stamps[stage] = Some(now);
            }
        }
    }

    /// The response to `request_id` on `connection` left at `now`: records the command's
    /// stages (a stage it seems to have skipped counts as reached when the next one was).
    pub fn replied(&mut self, connection: ConnectionId, request_id: u64, now: Instant) {
        let Some(key) = self.by_request.remove(&(connection, request_id)) else {
            return;
        };
        let Some(tracked) = self.tracked.remove(&key) else {
            return;
        };
        debug_assert!(tracked.connection == connection && tracked.request_id == request_id);
        let mut last = now;
        let mut ends = [now; 4];
        for stage in (0..3).rev() {
            last = tracked.stamps[stage].unwrap_or(last).min(last);
            ends[stage] = last;
        }
        for (histogram, end) in self.histograms.iter_mut().zip(ends) {
            let micros = end.saturating_duration_since(tracked.received).as_micros();
            histogram.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
        }
    }

    /// Forgets commands of a leadership that ended (their entries may be overwritten) or
    /// of a closed connection.
    pub fn forget_connection(&mut self, connection: ConnectionId) {
        let keys: Vec<(u32, u64)> = self
            .tracked
            .iter()
            .filter(|(_, tracked)| tracked.connection == connection)
            .map(|(&key, _)| key)
            .collect();
        for key in keys {
            if let Some(tracked) = self.tracked.remove(&key) {
                self.by_request
                    .remove(&(tracked.connection, tracked.request_id));
            }
        }
    }

    /// Forgets every command of `group` (its leader stepped down).
    pub fn forget_group(&mut self, group: u32) {
        let keys: Vec<(u32, u64)> = self
            .tracked
            .range((group, 0)..=(group, u64::MAX))
            .map(|(&key, _)| key)
            .collect();
        for key in keys {
            if let Some(tracked) = self.tracked.remove(&key) {
                self.by_request
                    .remove(&(tracked.connection, tracked.request_id));
            }
        }
    }

    /// Per stage, in µs from arrival.
    #[must_use]
    pub fn summary(&self) -> Vec<StageFigures> {
        STAGE_NAMES
            .iter()
            .zip(&self.histograms)
            .map(|(name, histogram)| StageFigures {
                name: (*name).to_string(),
                count: histogram.len(),
                p50_us: histogram.value_at_quantile(0.5),
                p90_us: histogram.value_at_quantile(0.9),
                p99_us: histogram.value_at_quantile(0.99),
                max_us: histogram.max(),
            })
            .collect()
    }

    /// Starts the histograms afresh (a benchmark's measured part begins).
    pub fn reset(&mut self) {
        for histogram in &mut self.histograms {
            histogram.reset();
        }
        self.untracked = 0;
    }

    /// Commands in flight followed now.
    #[must_use]
    pub fn tracked_count(&self) -> usize {
        self.tracked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stages_are_measured_from_arrival_and_only_for_answered_commands() {
        let mut stages = CommitStages::new();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        stages.logged(3, 10, at(0), ConnectionId(1), 7);
        stages.logged(3, 11, at(1), ConnectionId(1), 8);
        stages.reached(0, 3, 11, at(2));
        stages.reached(1, 3, 10, at(4));
        stages.reached(2, 3, 10, at(5));
        stages.replied(ConnectionId(1), 7, at(6));
        let summary = stages.summary();
        let near = |value: u64, ms: u64| value.abs_diff(ms * 1000) <= ms * 1000 / 100 + 1;
        assert!(near(summary[0].p50_us, 2), "{summary:?}");
        assert!(near(summary[1].p50_us, 4) && near(summary[2].p50_us, 5));
        assert!(near(summary[3].p50_us, 6));
        assert_eq!(summary[3].count, 1);
        // The other one is still followed until its leader steps down.
        assert_eq!(stages.tracked_count(), 1);
        stages.forget_group(3);
        assert_eq!(stages.tracked_count(), 0);
        stages.replied(ConnectionId(1), 8, at(9));
        assert_eq!(stages.summary()[3].count, 1);
    }
}
