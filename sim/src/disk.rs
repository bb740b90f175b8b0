//! A node's simulated durable storage: writes are unsynced until a sync, and a crash
//! loses what was not synced (possibly keeping a torn part of the first unsynced write).

use std::collections::VecDeque;

use coracle_engine::{Entry, HardState, PersistId, Prng, Restored};

/// One `Persist` action waiting for its sync.
#[derive(Clone, Debug)]
struct Write {
    id: PersistId,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
}

/// Durable hard state and log, plus the writes not yet synced.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    hard_state: HardState,
    entries: Vec<Entry>,
    unsynced: VecDeque<Write>,
    /// Writes made durable in all.
    pub synced_count: u64,
    /// Writes lost to crashes.
    pub lost_count: u64,
    /// Writes torn by crashes.
    pub torn_count: u64,
}

impl Disk {
    /// Queues a write; it is not durable until `sync`.
    pub fn write(&mut self, id: PersistId, hard_state: Option<HardState>, entries: Vec<Entry>) {
        if let Some(last) = self.unsynced.back() {
            assert!(last.id < id, "persists arrive in order");
        }
        self.unsynced.push_back(Write {
            id,
            hard_state,
            entries,
        });
    }

    /// True if writes wait for a sync.
    #[must_use]
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Makes every queued write durable; returns the last id synced.
    pub fn sync(&mut self) -> Option<PersistId> {
        let mut last = None;
        while let Some(write) = self.unsynced.pop_front() {
            last = Some(write.id);
            self.apply(write.hard_state, &write.entries);
            self.synced_count += 1;
        }
        last
    }

    fn apply(&mut self, hard_state: Option<HardState>, entries: &[Entry]) {
        if let Some(hard_state) = hard_state {
            assert!(
                hard_state.term >= self.hard_state.term,
                "durable term never goes back"
            );
            self.hard_state = hard_state;
        }
        let Some(first) = entries.first() else {
            return;
        };
        let keep = usize::try_from(first.index.0 - 1).expect("index fits usize");
        assert!(keep <= self.entries.len(), "a write never leaves a hole");
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Power loss: unsynced writes are lost; if `tear`, a prefix of the first one's entries
    /// (or only its hard state) survives, as a torn write would leave it after recovery.
    pub fn crash(&mut self, prng: &mut Prng, tear: bool) {
        if tear {
            if let Some(write) = self.unsynced.pop_front() {
                self.torn_count += 1;
                if prng.chance(1, 2) {
                    let kept = usize::try_from(prng.range(0, write.entries.len() as u64 + 1))
                        .expect("small");
                    self.apply(None, &write.entries[..kept]);
                } else {
                    self.apply(write.hard_state, &[]);
                }
            }
        }
        self.lost_count += self.unsynced.len() as u64;
        self.unsynced.clear();
    }

    /// What a restarting server reads back.
    #[must_use]
    pub fn restored(&self) -> Restored {
        assert!(self.unsynced.is_empty(), "restore only after a crash");
        Restored {
            hard_state: self.hard_state,
            entries: self.entries.clone(),
        }
    }

    /// The durable log.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coracle_engine::{EntryBody, LogIndex, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            timestamp_ms: 0,
            body: EntryBody::Initialize,
        }
    }

    #[test]
    fn crash_loses_unsynced_writes() {
        let mut disk = Disk::default();
        disk.write(PersistId(1), None, vec![entry(1, 1), entry(2, 1)]);
        assert_eq!(disk.sync(), Some(PersistId(1)));
        disk.write(PersistId(2), None, vec![entry(2, 2), entry(3, 2)]);
        disk.crash(&mut Prng::new(1), false);
        let restored = disk.restored();
        assert_eq!(restored.entries.len(), 2);
        assert_eq!(restored.entries[1].term, Term(1));
    }

    #[test]
    fn sync_truncates_a_replaced_suffix() {
        let mut disk = Disk::default();
        disk.write(
            PersistId(1),
            None,
            vec![entry(1, 1), entry(2, 1), entry(3, 1)],
        );
        disk.write(PersistId(2), None, vec![entry(2, 2)]);
        assert_eq!(disk.sync(), Some(PersistId(2)));
        assert_eq!(disk.entries().len(), 2);
        assert_eq!(disk.entries()[1].term, Term(2));
    }
}
