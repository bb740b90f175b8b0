//! The host against the test state machine (`test_machine.rs`).

use bytes::Bytes;

use crate::entry::{Entry, EntryBody};
use crate::session::{ClientError, ClientId, LogOperation, SessionId};
use crate::state_machine::test_machine::{After, Boom, Get, Lock, Put, Shout, TestMachine};
use crate::state_machine::{
    decode_value, encode_command, encode_query, Applied, Outcome, SessionState, StateMachineHost,
};
use crate::types::{LogIndex, Term};

/// Feeds entries with increasing indexes and the timestamps given.
struct Feeder {
    host: StateMachineHost<TestMachine>,
    next: u64,
    applied: Applied,
}

impl Feeder {
    fn new() -> Feeder {
        Feeder {
            host: StateMachineHost::new(TestMachine::default()),
            next: 1,
            applied: Applied::default(),
        }
    }

    fn entry(&mut self, timestamp_ms: u64, body: EntryBody) -> (LogIndex, Vec<Outcome>) {
        let index = LogIndex(self.next);
        self.next += 1;
        let entry = Entry {
            index,
            term: Term(1),
            timestamp_ms,
            body,
        };
        self.applied.clear();
        self.host.apply(&entry, &mut self.applied);
        (index, self.applied.outcomes.clone())
    }

    fn op(&mut self, timestamp_ms: u64, operation: LogOperation) -> (LogIndex, Vec<Outcome>) {
        self.entry(
            timestamp_ms,
            EntryBody::Command {
                payload: operation.encode(),
            },
        )
    }

    fn register(&mut self, timestamp_ms: u64, client: u128, timeout_ms: u64) -> SessionId {
        let (index, _) = self.op(
            timestamp_ms,
            LogOperation::Register {
                client: ClientId(client),
                timeout_ms,
            },
        );
        SessionId(index.0)
    }

    fn command(
        &mut self,
        timestamp_ms: u64,
        session: SessionId,
        sequence: u64,
        operation: Bytes,
    ) -> Vec<Outcome> {
        self.op(
            timestamp_ms,
            LogOperation::Command {
                session,
                sequence,
                operation,
            },
        )
        .1
    }
}

fn command_output(outcome: &Outcome) -> Result<Bytes, String> {
    match outcome {
        Outcome::Command {
            result: Ok(result), ..
        } => result.output.clone().map_err(|error| error.message),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn a_session_id_is_its_register_index_and_commands_apply_once() {
    let mut feeder = Feeder::new();
    let (_, _) = feeder.entry(0, EntryBody::Initialize);
    let session = feeder.register(10, 7, 5_000);
    assert_eq!(session, SessionId(2));
    let put = encode_command(&Put(1, 10));
    let first = feeder.command(20, session, 1, put.clone());
    assert_eq!(
        decode_value::<Option<u64>>(&command_output(&first[0]).unwrap()),
        Ok(None)
    );
    // A retry (the same sequence, logged again after a failover) is answered from the
    // cache with the first run's index, and does not run again.
    let retry = feeder.command(30, session, 1, put);
    let Outcome::Command {
        index,
        result: Ok(cached),
        ..
    } = &retry[0]
    else {
        panic!("{retry:?}")
    };
    assert_eq!(*index, LogIndex(4), "the retry's own entry");
    assert_eq!(cached.index, LogIndex(3), "the result of the first run");
    assert_eq!(feeder.host.stats().commands_applied, 1);
    assert_eq!(feeder.host.stats().commands_deduplicated, 1);
    let second = feeder.command(40, session, 2, encode_command(&Put(1, 11)));
    assert_eq!(
        decode_value::<Option<u64>>(&command_output(&second[0]).unwrap()),
        Ok(Some(10)),
        "the retry did not write again"
    );
    // The client acknowledges both: the cache empties, and a stray retry is refused.
    feeder.op(
        50,
        LogOperation::KeepAlive {
            session,
            command_sequence: 2,
            event_index: session.index(),
        },
    );
    assert_eq!(
        feeder.host.sessions().get(session).unwrap().results_count(),
        0
    );
    let stray = feeder.command(60, session, 1, encode_command(&Put(1, 99)));
    assert!(matches!(
        stray[0],
        Outcome::Command {
            result: Err(ClientError::Command { last_sequence: 2 }),
            ..
        }
    ));
    let value = feeder.host.query(session, &encode_query(&Get(1))).unwrap();
    assert_eq!(decode_value::<Option<u64>>(&value), Ok(Some(11)));
}

#[test]
fn a_command_after_a_gap_waits_for_the_missing_one() {
    let mut feeder = Feeder::new();
    let session = feeder.register(0, 1, 5_000);
    let early = feeder.command(10, session, 2, encode_command(&Put(1, 2)));
    assert!(early.is_empty(), "held: {early:?}");
    let filled = feeder.command(20, session, 1, encode_command(&Put(1, 1)));
    let order: Vec<(u64, LogIndex)> = filled
        .iter()
        .map(|outcome| match outcome {
            Outcome::Command {
                sequence, index, ..
            } => (*sequence, *index),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, vec![(1, LogIndex(3)), (2, LogIndex(2))]);
    assert_eq!(
        feeder.host.machine().values.get(&1),
        Some(&2),
        "2 ran after 1"
    );
    // A no-op fills a gap as well.
    feeder.command(30, session, 4, encode_command(&Put(1, 4)));
    let filled = feeder
        .op(
            30,
            LogOperation::NoOp {
                session,
                sequence: 3,
            },
        )
        .1;
    assert_eq!(filled.len(), 2);
    assert_eq!(feeder.host.machine().values.get(&1), Some(&4));
}

#[test]
fn unknown_sessions_and_unknown_or_undecodable_operations_are_errors_not_panics() {
    let mut feeder = Feeder::new();
    let outcomes = feeder.command(0, SessionId(77), 1, encode_command(&Put(1, 1)));
    assert!(matches!(
        outcomes[0],
        Outcome::Command {
            result: Err(ClientError::UnknownSession),
            ..
        }
    ));
    let session = feeder.register(0, 1, 5_000);
    let unknown = feeder.command(1, session, 1, Bytes::from_static(&[99, 0, 0, 0]));
    assert!(command_output(&unknown[0])
        .unwrap_err()
        .contains("unknown command id 99"));
    let short = feeder.command(2, session, 2, Bytes::from_static(&[1, 0, 0, 0, 1]));
    assert!(command_output(&short[0])
        .unwrap_err()
        .contains("undecodable"));
    feeder.entry(
        3,
        EntryBody::Command {
            payload: Bytes::from_static(b"garbage"),
        },
    );
    assert_eq!(feeder.host.stats().malformed_entries, 1);
    assert!(feeder
        .host
        .query(session, &Bytes::from_static(&[1]))
        .is_err());
}

#[test]
fn a_panicking_handler_fails_its_operation_and_the_host_goes_on() {
    let mut feeder = Feeder::new();
    let session = feeder.register(0, 1, 5_000);
    let outcomes = feeder.command(1, session, 1, encode_command(&Boom));
    let message = command_output(&outcomes[0]).unwrap_err();
    assert!(message.contains("panicked: boom"), "{message}");
    assert_eq!(feeder.host.stats().panics, 1);
    // The half-done change is there, on every replica alike.
    assert_eq!(feeder.host.machine().values.get(&999), Some(&1));
    let next = feeder.command(2, session, 2, encode_command(&Put(5, 5)));
    assert!(command_output(&next[0]).is_ok());
}

#[test]
fn an_expired_session_releases_its_lock_exactly_once() {
    let mut feeder = Feeder::new();
    let holder = feeder.register(0, 1, 1_000);
    let other = feeder.register(0, 2, 1_000);
    feeder.command(10, holder, 1, encode_command(&Lock(8)));
    let refused = feeder.command(10, other, 1, encode_command(&Lock(8)));
    assert_eq!(
        decode_value::<bool>(&command_output(&refused[0]).unwrap()),
        Ok(false)
    );
    // The other client keeps alive past the holder's timeout: the holder turns suspect.
    feeder.op(
        2_000,
        LogOperation::KeepAlive {
            session: other,
            command_sequence: 1,
            event_index: other.index(),
        },
    );
    assert_eq!(
        feeder.host.sessions().get(holder).unwrap().state(),
        SessionState::Unstable
    );
    let seen_through = feeder.host.last_applied();
    // An expiry decided before the holder's latest entry is ignored.
    let (_, ignored) = feeder.op(
        2_100,
        LogOperation::Unregister {
            session: holder,
            expired: true,
            seen_through: LogIndex(2),
        },
    );
    assert!(matches!(
        ignored[0],
        Outcome::Unregistered {
            result: Ok(false),
            ..
        }
    ));
    let (_, outcomes) = feeder.op(
        2_200,
        LogOperation::Unregister {
            session: holder,
            expired: true,
            seen_through,
        },
    );
    assert!(outcomes.contains(&Outcome::Closed {
        session: holder,
        expired: true
    }));
    // A second expiry of the same session (a new leader deciding again) changes nothing.
    let (_, again) = feeder.op(
        2_300,
        LogOperation::Unregister {
            session: holder,
            expired: true,
            seen_through: LogIndex(100),
        },
    );
    assert!(matches!(
        again[0],
        Outcome::Unregistered {
            result: Err(ClientError::UnknownSession),
            ..
        }
    ));
    assert_eq!(feeder.host.machine().releases, vec![(8, holder)]);
    let calls = &feeder.host.machine().listener_calls;
    assert_eq!(
        calls,
        &vec![
            "register 1 refused-self true".to_string(),
            "register 2 refused-self true".to_string(),
            "expire 1".to_string(),
            "close 1".to_string(),
        ]
    );
    let granted = feeder.command(2_400, other, 2, encode_command(&Lock(8)));
    assert_eq!(
        decode_value::<bool>(&command_output(&granted[0]).unwrap()),
        Ok(true)
    );
}

#[test]
fn registering_again_expires_the_clients_older_session() {
    let mut feeder = Feeder::new();
    let old = feeder.register(0, 5, 5_000);
    let (_, outcomes) = feeder.op(
        1,
        LogOperation::Register {
            client: ClientId(5),
            timeout_ms: 5_000,
        },
    );
    assert_eq!(
        outcomes[0],
        Outcome::Closed {
            session: old,
            expired: true
        }
    );
    assert_eq!(feeder.host.sessions().len(), 1);
    assert!(feeder.host.sessions().get(old).is_none());
}

#[test]
fn events_form_one_chained_batch_per_session_and_index_until_acknowledged() {
    let mut feeder = Feeder::new();
    let a = feeder.register(0, 1, 5_000);
    let b = feeder.register(0, 2, 5_000);
    let outcomes = feeder.command(1, a, 1, encode_command(&Shout("x".into())));
    let Outcome::Command {
        result: Ok(result), ..
    } = &outcomes[0]
    else {
        panic!()
    };
    assert_eq!(
        result.event_index,
        a.index(),
        "the index before the command ran"
    );
    let batches = feeder.applied.batches.clone();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        (batches[0].session, batches[0].event_index),
        (a, LogIndex(3))
    );
    assert_eq!(batches[0].previous_index, a.index());
    assert_eq!(batches[1].previous_index, b.index());
    feeder.command(2, a, 2, encode_command(&Shout("y".into())));
    let session = feeder.host.sessions().get(a).unwrap();
    assert_eq!(session.batches_count(), 2);
    assert_eq!(feeder.applied.batches[0].previous_index, LogIndex(3));
    feeder.op(
        3,
        LogOperation::KeepAlive {
            session: a,
            command_sequence: 2,
            event_index: LogIndex(3),
        },
    );
    let session = feeder.host.sessions().get(a).unwrap();
    assert_eq!(session.batches_count(), 1);
    assert_eq!(
        session
            .batches_after(LogIndex(3))
            .next()
            .unwrap()
            .event_index,
        LogIndex(4)
    );
}

#[test]
fn tasks_run_by_log_time_before_the_entry_that_passes_them() {
    let mut feeder = Feeder::new();
    let session = feeder.register(1_000, 1, 60_000);
    feeder.command(1_000, session, 1, encode_command(&After(500)));
    feeder.command(1_400, session, 2, encode_command(&Put(1, 1)));
    assert!(feeder.host.machine().ticks.is_empty());
    // A lagging leader's timestamp does not move the clock back.
    feeder.entry(1_200, EntryBody::Initialize);
    assert!(feeder.host.machine().ticks.is_empty());
    let outcomes = feeder.command(2_000, session, 3, encode_command(&Put(1, 2)));
    assert_eq!(
        feeder.host.machine().ticks,
        vec![1_500],
        "at its own due time"
    );
    // The task's event and the command share the entry's batch, which the response waits
    // for: the event was published before the command ran.
    let Outcome::Command {
        result: Ok(result), ..
    } = &outcomes[0]
    else {
        panic!()
    };
    assert_eq!(result.event_index, LogIndex(5));
    assert_eq!(feeder.applied.batches[0].events[0].name, "tick");
}

#[test]
fn a_new_leaders_initialize_entry_restarts_every_session_timer() {
    let mut feeder = Feeder::new();
    let quiet = feeder.register(0, 1, 1_000);
    let busy = feeder.register(0, 2, 1_000);
    feeder.entry(5_000, EntryBody::Initialize);
    feeder.op(
        5_500,
        LogOperation::KeepAlive {
            session: busy,
            command_sequence: 0,
            event_index: busy.index(),
        },
    );
    assert_eq!(
        feeder.host.sessions().get(quiet).unwrap().state(),
        SessionState::Open,
        "an election is not the client's silence"
    );
}

#[test]
fn two_hosts_fed_the_same_entries_agree() {
    let mut left = Feeder::new();
    let mut right = Feeder::new();
    let mut outcomes = (Vec::new(), Vec::new());
    for feeder_side in 0..2 {
        let feeder = if feeder_side == 0 {
            &mut left
        } else {
            &mut right
        };
        let mut all = Vec::new();
        let session = feeder.register(0, 1, 2_000);
        let other = feeder.register(0, 2, 2_000);
        for step in 1..200u64 {
            let target = if step % 3 == 0 { other } else { session };
            let sequence = if target == other {
                step / 3
            } else {
                step - step / 3
            };
            let operation = match step % 5 {
                0 => encode_command(&After(step * 7)),
                1 => encode_command(&Shout(format!("s{step}"))),
                2 => encode_command(&Lock(step % 4)),
                _ => encode_command(&Put(step % 6, step)),
            };
            all.extend(feeder.command(step * 37, target, sequence, operation));
            all.extend(feeder.applied.batches.iter().map(|batch| Outcome::Closed {
                session: batch.session,
                expired: batch.events.len() % 2 == 0,
            }));
        }
        if feeder_side == 0 {
            outcomes.0 = all;
        } else {
            outcomes.1 = all;
        }
    }
    assert_eq!(outcomes.0, outcomes.1);
    assert_eq!(left.host.machine().values, right.host.machine().values);
    assert_eq!(left.host.machine().ticks, right.host.machine().ticks);
    assert!(!left.host.machine().ticks.is_empty());
}
