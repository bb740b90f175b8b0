//! Safety checkers that run after every step: one leader per term, log matching,
//! leader completeness, one entry applied per index, and committed entries never lost.

use std::collections::BTreeMap;

use coracle_engine::{Entry, EntryBody, LogIndex, ReplicaId, Term};

use crate::hash::Fnv64;

/// A digest of one entry's contents (index, term, timestamp, body).
#[must_use]
pub fn entry_digest(entry: &Entry) -> u64 {
    let mut hash = Fnv64::new();
    hash.u64(entry.index.0)
        .u64(entry.term.0)
        .u64(entry.timestamp_ms);
    match &entry.body {
        EntryBody::Initialize => {
            hash.u64(1);
        }
        EntryBody::Configuration { members } => {
            hash.u64(2);
            for member in members {
                hash.u64(member.id.0)
                    .u64(member.member_type as u64)
                    .u64(member.status as u64);
            }
        }
        EntryBody::Command { payload } => {
            hash.u64(3).bytes(payload);
        }
    }
    hash.finish()
}

/// What the checkers have learned so far, across every node and every restart.
#[derive(Debug, Default)]
pub struct SafetyChecker {
    leaders: BTreeMap<Term, ReplicaId>,
    /// (index, term) -> hash of the whole log prefix through that entry.
    chains: BTreeMap<(LogIndex, Term), u64>,
    /// Committed entries, index 1 first: the entry's digest, and the earliest term in
    /// which any server reported it committed (the committing leader reports first).
    committed: Vec<(u64, Term)>,
    /// Digest applied at each index by anyone.
    applied: BTreeMap<LogIndex, u64>,
    /// Entries checked against the committed record (for the report).
    pub checks_count: u64,
}

/// A node's log as the checker tracks it: one chained hash per entry.
#[derive(Clone, Debug, Default)]
pub struct ChainTracker {
    chain: Vec<u64>,
}

impl ChainTracker {
    /// A tracker for a log restored from disk (already checked when first written).
    #[must_use]
    pub fn from_entries(entries: &[Entry]) -> ChainTracker {
        let mut tracker = ChainTracker::default();
        for entry in entries {
            tracker.push(entry);
        }
        tracker
    }

    fn push(&mut self, entry: &Entry) -> u64 {
        let previous = self.chain.last().copied().unwrap_or(0);
        let mut hash = Fnv64::new();
        hash.u64(previous).u64(entry_digest(entry));
        let value = hash.finish();
        self.chain.push(value);
        value
    }
}

impl SafetyChecker {
    /// A node became leader of `term`.
    ///
    /// Leader completeness (Raft Figure 3): an entry committed in a term before `term` must
    /// be in the new leader's log. (A leader of an older term may be elected late, after a
    /// newer leader committed entries it need not have.)
    ///
    /// # Errors
    /// Another node led the same term, or the new leader lacks a committed entry.
    pub fn on_leader(&mut self, id: ReplicaId, term: Term, log: &[Entry]) -> Result<(), String> {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                return Err(format!("two leaders in term {term}: {other} and {id}"));
            }
        }
        self.leaders.insert(term, id);
        for (position, (digest, committed_term)) in self.committed.iter().enumerate() {
            if *committed_term >= term {
                continue;
            }
            let found = log.get(position).map(entry_digest);
            if found != Some(*digest) {
                return Err(format!(
                    "leader completeness: leader {id} of term {term} lacks committed entry {}",
                    position + 1
                ));
            }
        }
        Ok(())
    }

    /// A node wrote entries to its log (truncating a conflicting suffix first).
    ///
    /// # Errors
    /// Two logs hold the same (index, term) after different prefixes (log matching).
    pub fn on_entries(
        &mut self,
        id: ReplicaId,
        tracker: &mut ChainTracker,
        entries: &[Entry],
    ) -> Result<(), String> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let keep = usize::try_from(first.index.0 - 1).expect("index fits usize");
        assert!(keep <= tracker.chain.len(), "a log never has holes");
        tracker.chain.truncate(keep);
        for entry in entries {
            let chained = tracker.push(entry);
            let known = *self
                .chains
                .entry((entry.index, entry.term))
                .or_insert(chained);
            if known != chained {
                return Err(format!(
                    "log matching: node {id} holds entry {} of term {} after a different prefix",
                    entry.index, entry.term
                ));
            }
        }
        Ok(())
    }

    /// A node in `term` learned that its log is committed through `index`.
    ///
    /// # Errors
    /// The node's committed prefix differs from what was committed before.
    pub fn on_commit(
        &mut self,
        id: ReplicaId,
        term: Term,
        checked: &mut LogIndex,
        index: LogIndex,
        log: &[Entry],
    ) -> Result<(), String> {
        let mut next = checked.next();
        while next <= index {
            let position = usize::try_from(next.0 - 1).expect("index fits usize");
            let Some(entry) = log.get(position) else {
                return Err(format!("node {id} committed {index} past its log"));
            };
            let digest = entry_digest(entry);
            self.checks_count += 1;
            if let Some((known, committed_term)) = self.committed.get_mut(position) {
                if *known != digest {
                    return Err(format!(
                        "committed entry {next} changed: node {id} commits a different entry"
                    ));
                }
                *committed_term = (*committed_term).min(term);
            } else {
                assert_eq!(position, self.committed.len());
                self.committed.push((digest, term));
            }
            next = next.next();
        }
        *checked = (*checked).max(index);
        Ok(())
    }

    /// A node applied an entry.
    ///
    /// # Errors
    /// Another node applied a different entry at the same index.
    pub fn on_apply(&mut self, id: ReplicaId, entry: &Entry) -> Result<(), String> {
        let digest = entry_digest(entry);
        let known = *self.applied.entry(entry.index).or_insert(digest);
        if known != digest {
            return Err(format!(
                "node {id} applied a different entry at index {}",
                entry.index
            ));
        }
        Ok(())
    }

    /// Number of committed entries seen.
    #[must_use]
    pub fn committed_count(&self) -> usize {
        self.committed.len()
    }

    /// Number of terms with a leader.
    #[must_use]
    pub fn leader_terms_count(&self) -> usize {
        self.leaders.len()
    }
}
