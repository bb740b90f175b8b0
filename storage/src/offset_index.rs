//! Where each entry of one segment sits in its file (SPEC §H3).
//!
//! Rebuilt by the scan on open. While the segment is dense (no holes), the entry at index
//! `i` is slot `i - first`: one lookup. Once compaction has removed entries the slots no
//! longer line up and a lookup becomes a binary search over the (still sorted) indexes.

use coracle_engine::{LogIndex, Term};

use crate::segment::EntryPosition;

/// The positions of one segment's entries, sorted by index.
#[derive(Clone, Debug)]
pub struct OffsetIndex {
    first_index: LogIndex,
    positions: Vec<EntryPosition>,
}

impl OffsetIndex {
    /// An index for a segment whose first entry is (or would be) `first_index`, holding
    /// `positions` (sorted by index, none below `first_index`).
    #[must_use]
    pub fn new(first_index: LogIndex, positions: Vec<EntryPosition>) -> OffsetIndex {
        assert!(
            positions
                .windows(2)
                .all(|pair| pair[0].index < pair[1].index),
            "positions are sorted by index"
        );
        assert!(positions
            .first()
            .is_none_or(|position| position.index >= first_index));
        OffsetIndex {
            first_index,
            positions,
        }
    }

    /// The first index the segment covers (its entry there may have been compacted away).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.first_index
    }

    /// Index of the last entry held, or `first_index - 1` when none.
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.positions
            .last()
            .map_or(self.first_index.prev(), |position| position.index)
    }

    /// Entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether no entry is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Whether every index from the first to the last is held (no compaction holes).
    #[must_use]
    pub fn is_dense(&self) -> bool {
        self.positions.len() as u64 == self.last_index().0 + 1 - self.first_index.0
    }

    /// Where the entry at `index` is, if held.
    #[must_use]
    pub fn get(&self, index: LogIndex) -> Option<&EntryPosition> {
        self.slot(index).map(|slot| &self.positions[slot])
    }

    /// Term of the entry at `index`, if held.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.get(index).map(|position| position.term)
    }

    /// The held positions in `start..end`, in order.
    #[must_use]
    pub fn range(&self, start: LogIndex, end: LogIndex) -> &[EntryPosition] {
        let from = self
            .positions
            .partition_point(|position| position.index < start);
        let to = self
            .positions
            .partition_point(|position| position.index < end);
        &self.positions[from..to.max(from)]
    }

    /// Every held position, in order.
    #[must_use]
    pub fn positions(&self) -> &[EntryPosition] {
        &self.positions
    }

    /// Adds the next entry's position (above every held one).
    pub fn push(&mut self, position: EntryPosition) {
        assert!(
            position.index > self.last_index() && position.index >= self.first_index,
            "positions only grow"
        );
        self.positions.push(position);
    }

    /// Forgets every entry above `index`.
    pub fn truncate_after(&mut self, index: LogIndex) {
        let keep = self
            .positions
            .partition_point(|position| position.index <= index);
        self.positions.truncate(keep);
    }

    fn slot(&self, index: LogIndex) -> Option<usize> {
        let offset = usize::try_from(index.0.checked_sub(self.first_index.0)?).ok()?;
        // Dense: the slot is the offset. With holes, the entry can only be earlier.
        if self.positions.get(offset).is_some_and(|p| p.index == index) {
            return Some(offset);
        }
        self.positions[..offset.min(self.positions.len())]
            .binary_search_by_key(&index, |position| position.index)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(index: u64) -> EntryPosition {
        EntryPosition {
            index: LogIndex(index),
            term: Term(index / 10 + 1),
            offset: index * 100,
            size_bytes: 100,
        }
    }

    #[test]
    fn a_dense_index_finds_every_entry_and_nothing_else() {
        let index = OffsetIndex::new(LogIndex(5), (5..=20).map(position).collect());
        assert!(index.is_dense());
        assert_eq!(index.last_index(), LogIndex(20));
        for i in 5..=20 {
            assert_eq!(index.get(LogIndex(i)).map(|p| p.offset), Some(i * 100));
        }
        assert!(index.get(LogIndex(4)).is_none());
        assert!(index.get(LogIndex(21)).is_none());
        assert!(index.get(LogIndex(0)).is_none());
    }

    #[test]
    fn holes_left_by_compaction_are_searched_not_misread() {
        let held: Vec<u64> = (5..=40).filter(|i| i % 3 != 0).collect();
        let index = OffsetIndex::new(LogIndex(5), held.iter().copied().map(position).collect());
        assert!(!index.is_dense());
        for i in 0..=45 {
            let found = index.get(LogIndex(i)).map(|p| p.index);
            let expected = held.contains(&i).then_some(LogIndex(i));
            assert_eq!(found, expected, "index {i}");
        }
        let range: Vec<u64> = index
            .range(LogIndex(9), LogIndex(16))
            .iter()
            .map(|p| p.index.0)
            .collect();
        assert_eq!(range, vec![10, 11, 13, 14]);
    }

    #[test]
    fn truncation_shrinks_the_index() {
        let mut index = OffsetIndex::new(LogIndex(1), (1..=10).map(position).collect());
        index.truncate_after(LogIndex(6));
        assert_eq!(index.last_index(), LogIndex(6));
        index.truncate_after(LogIndex(0));
        assert!(index.is_empty());
        assert_eq!(index.last_index(), LogIndex(0));
        index.push(position(1));
        assert_eq!(index.len(), 1);
    }

    #[test]
    #[should_panic(expected = "positions only grow")]
    fn pushing_below_the_last_entry_is_a_bug() {
        let mut index = OffsetIndex::new(LogIndex(1), (1..=3).map(position).collect());
        index.push(position(2));
    }
}
