//! The in-memory view of one replica's log: entries after a base position.
//!
//! The core keeps entries (their payloads are shared `Bytes`) so it can send and apply
//! them without reading storage; compaction will move `base` forward.

use crate::entry::Entry;
use crate::types::{LogIndex, Term};

/// Entries `base_index + 1 ..= last_index`, in order, without holes.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    base_index: LogIndex,
    base_term: Term,
    entries: Vec<Entry>,
}

impl RaftLog {
    /// A log holding `entries`, which must be consecutive from index 1 with terms that
    /// never decrease.
    #[must_use]
    pub fn from_entries(entries: Vec<Entry>) -> RaftLog {
        let log = RaftLog {
            base_index: LogIndex::ZERO,
            base_term: Term::ZERO,
            entries,
        };
        log.assert_valid();
        log
    }

    /// Index of the last entry (the base index when empty).
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.base_index, |entry| entry.index)
    }

    /// Term of the last entry.
    #[must_use]
    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.base_term, |entry| entry.term)
    }

    /// The entries held, first index first.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Index of the first entry held.
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.base_index.next()
    }

    /// The term of the entry at `index`; `None` if the log does not hold it.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.get(index).map(|entry| entry.term)
    }

    /// The entry at `index`, if held.
    #[must_use]
    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        let offset = usize::try_from(index.0 - self.base_index.0 - 1).ok()?;
        let entry = self.entries.get(offset)?;
        assert_eq!(entry.index, index);
        Some(entry)
    }

    /// Entries from `start` on, at least one (if any) and then up to `bytes_max` in all,
    /// and never more than `count_max`.
    #[must_use]
    pub fn slice(&self, start: LogIndex, bytes_max: usize, count_max: usize) -> Vec<Entry> {
        assert!(start > self.base_index, "asked for compacted entries");
        let mut result = Vec::new();
        let mut size_bytes = 0;
        let mut index = start;
        while let Some(entry) = self.get(index) {
            if result.len() >= count_max {
                break;
            }
            size_bytes += entry.size_bytes();
            if !result.is_empty() && size_bytes > bytes_max {
                break;
            }
            result.push(entry.clone());
            index = index.next();
        }
        result
    }

    /// Entries in `[start, end]` (inclusive), all of which must be held.
    #[must_use]
    pub fn range(&self, start: LogIndex, end: LogIndex) -> Vec<Entry> {
        let mut result = Vec::new();
        let mut index = start;
        while index <= end {
            result.push(self.get(index).expect("range within the log").clone());
            index = index.next();
        }
        result
    }

    /// Appends one entry right after the last.
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index().next(), "log has no holes");
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push(entry);
    }

    /// Drops every entry after `index`. Returns how many entries were dropped.
    pub fn truncate_after(&mut self, index: LogIndex) -> usize {
        assert!(
            index >= self.base_index,
            "cannot truncate into the compacted prefix"
        );
        let keep = usize::try_from(index.0 - self.base_index.0).expect("log length fits usize");
        let dropped = self.entries.len().saturating_sub(keep);
        self.entries.truncate(keep);
        dropped
    }

    /// The last index at or below `index` whose term is at most `term` (fast backtracking).
    #[must_use]
    pub fn last_index_with_term_at_most(&self, index: LogIndex, term: Term) -> LogIndex {
        let mut candidate = index.min(self.last_index());
        while candidate > self.base_index {
            match self.term_at(candidate) {
                Some(found) if found <= term => return candidate,
                _ => candidate = candidate.prev(),
            }
        }
        self.base_index
    }

    /// True if a log ending at `(last_index, last_term)` is at least as up to date as this one.
    #[must_use]
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Checks the whole log: consecutive indexes and non-decreasing terms. O(n).
    pub fn assert_valid(&self) {
        let mut index = self.base_index;
        let mut term = self.base_term;
        for entry in &self.entries {
            assert_eq!(entry.index, index.next(), "log has no holes");
            assert!(entry.term >= term, "terms never decrease along the log");
            index = entry.index;
            term = entry.term;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryBody;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            timestamp_ms: 0,
            body: EntryBody::Initialize,
        }
    }

    #[test]
    fn push_truncate_and_terms() {
        let mut log = RaftLog::default();
        for (index, term) in [(1, 1), (2, 1), (3, 2), (4, 3)] {
            log.push(entry(index, term));
        }
        assert_eq!(log.last_index(), LogIndex(4));
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term_at(LogIndex(5)), None);
        assert_eq!(log.truncate_after(LogIndex(2)), 2);
        assert_eq!(log.last_term(), Term(1));
    }

    #[test]
    fn backtracking_hint() {
        let log = RaftLog::from_entries(vec![entry(1, 1), entry(2, 1), entry(3, 4), entry(4, 4)]);
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(4), Term(3)),
            LogIndex(2)
        );
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(9), Term(4)),
            LogIndex(4)
        );
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(4), Term(0)),
            LogIndex(0)
        );
    }

    #[test]
    fn slice_takes_at_least_one_entry() {
        let log = RaftLog::from_entries(vec![entry(1, 1), entry(2, 1), entry(3, 1)]);
        assert_eq!(log.slice(LogIndex(1), 0, 10).len(), 1);
        assert_eq!(log.slice(LogIndex(2), 1 << 20, 10).len(), 2);
        assert_eq!(log.slice(LogIndex(1), 1 << 20, 2).len(), 2);
    }
}
