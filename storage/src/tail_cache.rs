//! The newest entries of a log, in memory (SPEC §H1 entryBufferSize).
//!
//! Two jobs: every entry that is staged but not yet durable lives here (it is readable at
//! once — a leader replicates while it persists — and it is what the next flush encodes),
//! and the last `capacity` durable entries stay here too, so that followers a little
//! behind are fed without touching the disk. Entries are kept as the caller handed them,
//! so a read returns the same `Bytes` payloads: no copy at all.
//!
//! Each entry carries the ticket of the stage that put it here; an entry is durable once
//! the log's durable ticket reaches it. Tickets never decrease along the cache, because a
//! stage that goes back replaces everything after its first entry.

use std::collections::VecDeque;

use coracle_engine::{Entry, LogIndex, Term};

/// Copycat's default entryBufferSize.
pub const TAIL_CACHE_ENTRIES_DEFAULT: usize = 1024;

/// The newest entries of one log, contiguous by index.
#[derive(Debug)]
pub struct TailCache {
    entries: VecDeque<(Entry, u64)>,
    capacity: usize,
}

impl TailCache {
    /// An empty cache keeping `capacity` durable entries.
    #[must_use]
    pub fn new(capacity: usize) -> TailCache {
        TailCache {
            entries: VecDeque::new(),
            capacity,
        }
    }

    /// Index of the first cached entry, if any.
    #[must_use]
    pub fn first_index(&self) -> Option<LogIndex> {
        self.entries.front().map(|(entry, _)| entry.index)
    }

    /// Index of the last cached entry, if any.
    #[must_use]
    pub fn last_index(&self) -> Option<LogIndex> {
        self.entries.back().map(|(entry, _)| entry.index)
    }

    /// The cached entry at `index`.
    #[must_use]
    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.first_index()?;
        let slot = usize::try_from(index.0.checked_sub(first.0)?).ok()?;
        self.entries.get(slot).map(|(entry, _)| entry)
    }

    /// Term of the cached entry at `index`.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.get(index).map(|entry| entry.term)
    }

    /// Entries `start..end` that are cached, in order (`start` at or above the first).
    pub fn read(&self, start: LogIndex, end: LogIndex, into: &mut Vec<Entry>) {
        let Some(first) = self.first_index() else {
            return;
        };
        assert!(start >= first, "reads below the cache go to disk");
        let from = usize::try_from(start.0 - first.0).unwrap_or(usize::MAX);
        let count = usize::try_from(end.0.saturating_sub(start.0)).unwrap_or(usize::MAX);
        into.extend(
            self.entries
                .iter()
                .skip(from)
                .take(count)
                .map(|(entry, _)| entry.clone()),
        );
    }

    /// The entries staged at or after ticket `after_ticket + 1`, i.e. not yet durable, in
    /// order — what the next flush writes, starting at `from`.
    pub fn since(&self, from: LogIndex) -> impl Iterator<Item = &Entry> {
        let first = self.first_index().unwrap_or(from);
        let skip = usize::try_from(from.0.saturating_sub(first.0)).unwrap_or(usize::MAX);
        self.entries.iter().skip(skip).map(|(entry, _)| entry)
    }

    /// Adds staged entries under `ticket`, first dropping every cached entry at or above
    /// the first one's index (a conflicting suffix). The entries follow the cache (or
    /// replace part of it) — or, after `clear`, start it.
    pub fn stage(&mut self, entries: &[Entry], ticket: u64) {
        let Some(first) = entries.first() else {
            return;
        };
        self.truncate_after(first.index.prev());
        if let Some(last) = self.last_index() {
            assert_eq!(first.index, last.next(), "the cache stays contiguous");
        }
        assert!(
            self.entries.back().is_none_or(|&(_, last)| last <= ticket),
            "tickets never decrease"
        );
        self.entries
            .extend(entries.iter().map(|entry| (entry.clone(), ticket)));
    }

    /// Forgets cached entries above `index`.
    pub fn truncate_after(&mut self, index: LogIndex) {
        while self
            .entries
            .back()
            .is_some_and(|(entry, _)| entry.index > index)
        {
            self.entries.pop_back();
        }
    }

    /// Forgets cached entries below `index`.
    pub fn truncate_before(&mut self, index: LogIndex) {
        while self
            .entries
            .front()
            .is_some_and(|(entry, _)| entry.index < index)
        {
            self.entries.pop_front();
        }
    }

    /// Forgets everything (the log moved to a point the cache cannot follow).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops the oldest durable entries (ticket at most `durable_ticket`) beyond capacity.
    /// Entries not yet durable always stay.
    pub fn trim(&mut self, durable_ticket: u64) {
        while self.entries.len() > self.capacity
            && self
                .entries
                .front()
                .is_some_and(|&(_, ticket)| ticket <= durable_ticket)
        {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use coracle_engine::EntryBody;

    fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                index: LogIndex(index),
                term: Term(term),
                timestamp_ms: 0,
                body: EntryBody::Command {
                    payload: Bytes::from(index.to_le_bytes().to_vec()),
                },
            })
            .collect()
    }

    #[test]
    fn staged_entries_stay_until_durable_then_only_capacity_remains() {
        let mut cache = TailCache::new(4);
        cache.stage(&entries(1, 5, 1), 1);
        cache.stage(&entries(6, 10, 1), 2);
        cache.trim(0);
        assert_eq!(
            cache.first_index(),
            Some(LogIndex(1)),
            "nothing durable yet"
        );
        cache.trim(1);
        assert_eq!(
            cache.first_index(),
            Some(LogIndex(6)),
            "ticket 2 still pending"
        );
        cache.trim(2);
        assert_eq!(cache.first_index(), Some(LogIndex(7)));
        let mut read = Vec::new();
        cache.read(LogIndex(8), LogIndex(20), &mut read);
        assert_eq!(read, entries(8, 10, 1));
    }

    #[test]
    fn a_conflicting_stage_replaces_the_suffix() {
        let mut cache = TailCache::new(100);
        cache.stage(&entries(1, 10, 1), 1);
        cache.stage(&entries(4, 5, 2), 2);
        assert_eq!(cache.last_index(), Some(LogIndex(5)));
        assert_eq!(cache.term_at(LogIndex(3)), Some(Term(1)));
        assert_eq!(cache.term_at(LogIndex(4)), Some(Term(2)));
        let since: Vec<LogIndex> = cache.since(LogIndex(4)).map(|entry| entry.index).collect();
        assert_eq!(since, vec![LogIndex(4), LogIndex(5)]);
    }

    #[test]
    fn payloads_are_shared_not_copied() {
        let mut cache = TailCache::new(10);
        let staged = entries(1, 1, 1);
        cache.stage(&staged, 1);
        let mut read = Vec::new();
        cache.read(LogIndex(1), LogIndex(2), &mut read);
        let (EntryBody::Command { payload: a }, EntryBody::Command { payload: b }) =
            (&staged[0].body, &read[0].body)
        else {
            panic!("commands");
        };
        assert_eq!(a.as_ptr(), b.as_ptr());
    }
}
