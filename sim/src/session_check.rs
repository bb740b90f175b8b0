//! Checkers for what sessions promise beyond linearizability (SPEC §C4, §D, §F, §I),
//! judged against the ground truth a server's state machine journaled while applying the
//! log (all servers apply the same log; the safety checker sees to that).
//!
//! - Reads: every read returns the state of its key at the index its response names, and
//!   within a session those indexes never go back (session order, read-your-writes,
//!   monotonic reads). This is what SEQUENTIAL and CAUSAL promise; linearizable reads must
//!   pass it too.
//! - Events: per session, the events delivered are exactly the events published, in order,
//!   none twice, none skipped; and every event published before an operation ran is
//!   delivered before that operation's completion.
//! - Exactly once: no command (each carries an id unique in the run) ran twice.
//! - Locks: replaying every lock change in order, a lock is taken only when free, given back
//!   or released only by its holder, and a session that closes holds nothing afterwards:
//!   what it held was released exactly once.

use std::collections::{BTreeMap, BTreeSet};

use coracle_engine::session::SessionId;
use coracle_engine::LogIndex;

use crate::kv::{AppliedWrite, Journal, Key, LockEvent, PublishedEvent};

/// A completed read, as a client saw it.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    /// The session.
    pub session: SessionId,
    /// The key.
    pub key: Key,
    /// What it returned.
    pub value: Option<i64>,
    /// The index the response named.
    pub index: LogIndex,
    /// For messages: how it was asked.
    pub label: &'static str,
}

/// What a client observed, in the order it observed it.
#[derive(Clone, Debug)]
pub enum Observation {
    /// An operation completed with a response naming `index`.
    Completed {
        /// The session.
        session: SessionId,
        /// The index in the response (a command's own index, a query's read index).
        index: LogIndex,
        /// True for a query (its response covers events at its index), false for a command.
        query: bool,
        /// True if the operation must see the events before it (linearizable commands and
        /// every query).
        waits_for_events: bool,
        /// The read, if it was one.
        read: Option<ReadRecord>,
    },
    /// A session event was delivered.
    Event {
        /// The session.
        session: SessionId,
        /// The batch's index.
        index: LogIndex,
        /// The written value it announced.
        value: i64,
    },
}

/// The value of each key at each index, from the writes that took effect.
#[derive(Clone, Debug, Default)]
pub struct GroundTruth {
    writes: BTreeMap<Key, Vec<(LogIndex, i64)>>,
    published: BTreeMap<SessionId, Vec<(LogIndex, i64)>>,
}

impl GroundTruth {
    /// From a journal of the server that applied the most.
    #[must_use]
    pub fn from_journal(journal: &Journal) -> GroundTruth {
        let mut truth = GroundTruth::default();
        for &AppliedWrite { index, key, value } in &journal.writes {
            truth.writes.entry(key).or_default().push((index, value));
        }
        for &PublishedEvent {
            session,
            index,
            value,
        } in &journal.published
        {
            truth
                .published
                .entry(session)
                .or_default()
                .push((index, value));
        }
        truth
    }

    /// The value of `key` once `index` is applied.
    #[must_use]
    pub fn value_at(&self, key: Key, index: LogIndex) -> Option<i64> {
        let writes = self.writes.get(&key)?;
        let after = writes.partition_point(|(write_index, _)| *write_index <= index);
        after.checked_sub(1).map(|position| writes[position].1)
    }
}

/// Checks one client's observations.
///
/// # Errors
/// The first broken promise, described.
pub fn check_client(
    client: usize,
    observations: &[Observation],
    truth: &GroundTruth,
    applied_through: LogIndex,
) -> Result<(), String> {
    let mut last_index: BTreeMap<SessionId, LogIndex> = BTreeMap::new();
    let mut delivered: BTreeMap<SessionId, usize> = BTreeMap::new();
    let empty = Vec::new();
    for (position, observation) in observations.iter().enumerate() {
        match observation {
            Observation::Event {
                session,
                index,
                value,
            } => {
                let published = truth.published.get(session).unwrap_or(&empty);
                let count = delivered.entry(*session).or_insert(0);
                match published.get(*count) {
                    Some(&(expected_index, expected_value))
                        if expected_index == *index && expected_value == *value => {}
                    expected => {
                        return Err(format!(
                            "events: client {client} {session}: delivery #{count} was ({index}, {value}); the next published is {expected:?} (duplicate, gap or reorder)"
                        ))
                    }
                }
                *count += 1;
            }
            Observation::Completed {
                session,
                index,
                query,
                waits_for_events,
                read,
            } => {
                if *index > applied_through {
                    // The reference server has not applied that far: nothing to judge.
                    continue;
                }
                let previous = last_index.entry(*session).or_insert(LogIndex::ZERO);
                if let Some(read) = read {
                    if *index < *previous {
                        return Err(format!(
                            "session order: client {client} {session}: a {} read of key {} ran at index {index}, before index {previous} of an earlier response (observation {position})",
                            read.label, read.key
                        ));
                    }
                    let expected = truth.value_at(read.key, *index);
                    if read.value != expected {
                        return Err(format!(
                            "read: client {client} {session}: a {} read of key {} at index {index} returned {:?}; the state there holds {expected:?}",
                            read.label, read.key, read.value
                        ));
                    }
                }
                *previous = (*previous).max(*index);
                if *waits_for_events {
                    let published = truth.published.get(session).unwrap_or(&empty);
                    let due = published
                        .iter()
                        .filter(|(event_index, _)| {
                            if *query {
                                event_index <= index
                            } else {
                                event_index < index
                            }
                        })
                        .count();
                    let got = delivered.get(session).copied().unwrap_or(0);
                    if got < due {
                        return Err(format!(
                            "events: client {client} {session}: an operation at index {index} completed after {got} events, but {due} were published before it (observation {position})"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// No command ran twice; every lock a closing session held was released exactly once.
///
/// # Errors
/// The duplicate or the bad release.
pub fn check_journal(journal: &Journal) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for &(index, session, op_id) in &journal.commands {
        if let Some(first) = seen.insert(op_id, index) {
            return Err(format!(
                "exactly once: command {op_id} of {session} ran at index {first} and again at {index}"
            ));
        }
    }
    let mut holders: BTreeMap<Key, SessionId> = BTreeMap::new();
    let mut closed = BTreeSet::new();
    for (position, event) in journal.locks.iter().enumerate() {
        let broken = |what: String| Err(format!("locks: event {position} ({event:?}): {what}"));
        match *event {
            LockEvent::Acquired(key, session) => {
                if let Some(holder) = holders.insert(key, session) {
                    return broken(format!("lock {key} was held by {holder}"));
                }
                if closed.contains(&session) {
                    return broken(format!("{session} had closed"));
                }
            }
            LockEvent::Unlocked(key, session) | LockEvent::ReleasedOnClose(key, session) => {
                if holders.remove(&key) != Some(session) {
                    return broken(format!(
                        "{session} did not hold lock {key} (released twice?)"
                    ));
                }
            }
            LockEvent::Closed(session) => {
                if let Some((key, _)) = holders.iter().find(|(_, holder)| **holder == session) {
                    return broken(format!("{session} closed still holding lock {key}"));
                }
                closed.insert(session);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> GroundTruth {
        let mut journal = Journal::default();
        journal.writes.push(AppliedWrite {
            index: LogIndex(5),
            key: 1,
            value: 10,
        });
        journal.writes.push(AppliedWrite {
            index: LogIndex(9),
            key: 1,
            value: 20,
        });
        for (index, value) in [(5, 10), (9, 20)] {
            journal.published.push(PublishedEvent {
                session: SessionId(2),
                index: LogIndex(index),
                value,
            });
        }
        GroundTruth::from_journal(&journal)
    }

    fn read(index: u64, value: Option<i64>) -> Observation {
        Observation::Completed {
            session: SessionId(2),
            index: LogIndex(index),
            query: true,
            waits_for_events: false,
            read: Some(ReadRecord {
                session: SessionId(2),
                key: 1,
                value,
                index: LogIndex(index),
                label: "sequential",
            }),
        }
    }

    fn event(index: u64, value: i64) -> Observation {
        Observation::Event {
            session: SessionId(2),
            index: LogIndex(index),
            value,
        }
    }

    #[test]
    fn values_at_indexes() {
        let truth = truth();
        assert_eq!(truth.value_at(1, LogIndex(4)), None);
        assert_eq!(truth.value_at(1, LogIndex(5)), Some(10));
        assert_eq!(truth.value_at(1, LogIndex(8)), Some(10));
        assert_eq!(truth.value_at(1, LogIndex(100)), Some(20));
        assert_eq!(truth.value_at(2, LogIndex(100)), None);
    }

    #[test]
    fn reads_must_match_their_index_and_never_go_back() {
        let truth = truth();
        let through = LogIndex(100);
        assert!(check_client(0, &[read(6, Some(10)), read(9, Some(20))], &truth, through).is_ok());
        let stale = check_client(0, &[read(6, Some(20))], &truth, through);
        assert!(stale.unwrap_err().contains("state there holds"));
        let back = check_client(0, &[read(9, Some(20)), read(6, Some(10))], &truth, through);
        assert!(back.unwrap_err().contains("session order"));
    }

    #[test]
    fn events_exactly_once_in_order_and_before_later_responses() {
        let truth = truth();
        let through = LogIndex(100);
        assert!(check_client(0, &[event(5, 10), event(9, 20)], &truth, through).is_ok());
        assert!(check_client(0, &[event(5, 10), event(5, 10)], &truth, through).is_err());
        assert!(check_client(0, &[event(9, 20)], &truth, through).is_err());
        let command = |index| Observation::Completed {
            session: SessionId(2),
            index: LogIndex(index),
            query: false,
            waits_for_events: true,
            read: None,
        };
        // A command at 9 needs the event at 5, not its own at 9.
        assert!(check_client(0, &[event(5, 10), command(9)], &truth, through).is_ok());
        assert!(check_client(0, &[command(9), event(5, 10)], &truth, through).is_err());
    }

    #[test]
    fn a_command_twice_and_a_lock_released_twice_are_caught() {
        let mut journal = Journal::default();
        journal.commands.push((LogIndex(1), SessionId(1), 7));
        journal.commands.push((LogIndex(2), SessionId(1), 8));
        assert!(check_journal(&journal).is_ok());
        journal.commands.push((LogIndex(3), SessionId(1), 7));
        assert!(check_journal(&journal)
            .unwrap_err()
            .contains("exactly once"));
        let session = SessionId(1);
        let mut journal = Journal {
            locks: vec![
                LockEvent::Acquired(3, session),
                LockEvent::ReleasedOnClose(3, session),
                LockEvent::Closed(session),
            ],
            ..Journal::default()
        };
        assert!(check_journal(&journal).is_ok());
        journal
            .locks
            .insert(2, LockEvent::ReleasedOnClose(3, session));
        assert!(check_journal(&journal)
            .unwrap_err()
            .contains("released twice"));
        journal.locks = vec![LockEvent::Acquired(3, session), LockEvent::Closed(session)];
        assert!(check_journal(&journal)
            .unwrap_err()
            .contains("still holding"));
        journal.locks = vec![
            LockEvent::Acquired(3, session),
            LockEvent::Acquired(3, SessionId(2)),
        ];
        assert!(check_journal(&journal).unwrap_err().contains("was held"));
    }
}
