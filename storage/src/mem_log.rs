//! A log in memory: the reference implementation of [`LogStorage`], for tests and the
//! simulator. "Durable" here means "survives `reopen`".

use coracle_engine::{Entry, HardState, LogIndex, Term};

use crate::error::StorageError;
use crate::log_storage::{check_append, LogStorage};

/// Entries `first_index..=last_index`, consecutive, with the term of the entry before them.
#[derive(Clone, Debug)]
pub struct MemLog {
    /// Term of the entry at `first_index - 1` (zero for a log starting at one).
    base_term: Term,
    first_index: LogIndex,
    entries: Vec<Entry>,
    hard_state: HardState,
}

impl Default for MemLog {
    fn default() -> Self {
        MemLog::new()
    }
}

impl MemLog {
    /// An empty log starting at index 1.
    #[must_use]
    pub fn new() -> MemLog {
        MemLog {
            base_term: Term::ZERO,
            first_index: LogIndex(1),
            entries: Vec::new(),
            hard_state: HardState::default(),
        }
    }

    /// What a restart would find: everything written (a `MemLog` has no unsynced state).
    #[must_use]
    pub fn reopen(&self) -> MemLog {
        self.clone()
    }

    fn position(&self, index: LogIndex) -> Option<usize> {
        if index < self.first_index {
            return None;
        }
        let position = usize::try_from(index.0 - self.first_index.0).ok()?;
        (position < self.entries.len()).then_some(position)
    }
}

impl LogStorage for MemLog {
    async fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        check_append(entries, self.first_index, self.last_index())?;
        let keep = usize::try_from(first.index.0 - self.first_index.0).expect("fits");
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    async fn read(
        &self,
        start: LogIndex,
        end: LogIndex,
        into: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        let mut index = start;
        while index < end {
            let position = self
                .position(index)
                .ok_or(StorageError::OutOfRange { index })?;
            into.push(self.entries[position].clone());
            index = index.next();
        }
        Ok(())
    }

    async fn truncate_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        if index < self.first_index.prev() {
            return Err(StorageError::OutOfRange { index });
        }
        let keep = usize::try_from(index.0 + 1 - self.first_index.0).expect("fits");
        self.entries.truncate(keep);
        Ok(())
    }

    async fn truncate_before(&mut self, index: LogIndex) -> Result<(), StorageError> {
        if index <= self.first_index {
            return Ok(());
        }
        let Some(base_term) = self.term_at(index.prev()) else {
            return Err(StorageError::OutOfRange {
                index: index.prev(),
            });
        };
        let drop = usize::try_from(index.0 - self.first_index.0).expect("fits");
        self.entries.drain(..drop);
        self.first_index = index;
        self.base_term = base_term;
        Ok(())
    }

    async fn hard_state_save(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        assert!(
            hard_state.term >= self.hard_state.term,
            "terms never go back"
        );
        self.hard_state = hard_state;
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first_index(&self) -> LogIndex {
        self.first_index
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.entries.len() as u64 - 1)
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.first_index.prev() {
            return Some(self.base_term);
        }
        self.position(index)
            .map(|position| self.entries[position].term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on::block_on;
    use crate::conformance;

    /// A log that forgets to truncate: the suite must notice.
    struct ForgetsTruncation(MemLog);

    impl LogStorage for ForgetsTruncation {
        async fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
            self.0.append(entries).await
        }
        async fn read(
            &self,
            start: LogIndex,
            end: LogIndex,
            into: &mut Vec<Entry>,
        ) -> Result<(), StorageError> {
            self.0.read(start, end, into).await
        }
        async fn truncate_after(&mut self, _index: LogIndex) -> Result<(), StorageError> {
            Ok(())
        }
        async fn truncate_before(&mut self, index: LogIndex) -> Result<(), StorageError> {
            self.0.truncate_before(index).await
        }
        async fn hard_state_save(&mut self, hard_state: HardState) -> Result<(), StorageError> {
            self.0.hard_state_save(hard_state).await
        }
        fn hard_state(&self) -> HardState {
            self.0.hard_state()
        }
        fn first_index(&self) -> LogIndex {
            self.0.first_index()
        }
        fn last_index(&self) -> LogIndex {
            self.0.last_index()
        }
        fn term_at(&self, index: LogIndex) -> Option<Term> {
            self.0.term_at(index)
        }
    }

    #[test]
    #[should_panic(expected = "assertion")]
    fn the_suite_catches_a_log_that_does_not_truncate() {
        block_on(conformance::run_all(
            || async { ForgetsTruncation(MemLog::new()) },
            |log: ForgetsTruncation| async move { ForgetsTruncation(log.0.reopen()) },
        ));
    }

    #[test]
    fn mem_log_passes_the_conformance_suite() {
        block_on(conformance::run_all(
            || async { MemLog::new() },
            |log: MemLog| async move { log.reopen() },
        ));
    }
}
