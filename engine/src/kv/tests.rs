//! The key-value machine driven through the `StateMachineHost`, as every server drives it:
//! sessions registered and commands applied as log entries.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::entry::{Entry, EntryBody};
use crate::kv::kv_machine::seal_snapshot;
use crate::kv::{
    CompareAndSet, Delete, Get, KvEvent, KvMachine, Len, Put, Unwatch, Watch, COMPARE_AND_SET_ID,
    DELETE_ID, GET_ID, KEY_SIZE_MAX, KV_EVENT_NAME, LEN_ID, PUT_ID, SNAPSHOT_HEADER_SIZE,
    UNWATCH_ID, VALUE_SIZE_MAX, WATCHES_PER_SESSION_MAX, WATCH_ID,
};
use crate::session::reader::put_bytes;
use crate::session::{ClientId, LogOperation, SessionId};
use crate::state_machine::{
    decode_value, encode_command, encode_query, encode_value, Applied, Codec, Command, Outcome,
    Query, StateMachine, StateMachineHost,
};
use crate::types::{LogIndex, Term};

fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Feeds log entries to a host, numbering each session's commands 1, 2, 3, ….
struct Feeder {
    host: StateMachineHost<KvMachine>,
    next: u64,
    sequences: BTreeMap<SessionId, u64>,
    applied: Applied,
}

impl Feeder {
    fn new() -> Feeder {
        Feeder::with(KvMachine::default())
    }

    fn with(machine: KvMachine) -> Feeder {
        Feeder {
            host: StateMachineHost::new(machine),
            next: 1,
            sequences: BTreeMap::new(),
            applied: Applied::default(),
        }
    }

    /// Applies one log operation as the next entry; returns the entry's index.
    fn op(&mut self, operation: LogOperation) -> LogIndex {
        let index = LogIndex(self.next);
        self.next += 1;
        let entry = Entry {
            index,
            term: Term(1),
            timestamp_ms: index.0 * 10,
            body: EntryBody::Command {
                payload: operation.encode(),
            },
        };
        self.applied.clear();
        self.host.apply(&entry, &mut self.applied);
        index
    }

    fn register(&mut self, client: u128) -> SessionId {
        let index = self.op(LogOperation::Register {
            client: ClientId(client),
            timeout_ms: 5_000,
        });
        SessionId(index.0)
    }

    /// Runs a command as the session's next one; the decoded output or the error message.
    fn run<C: Command>(&mut self, session: SessionId, command: &C) -> Result<C::Output, String> {
        let sequence = self.sequences.entry(session).or_insert(0);
        *sequence += 1;
        let sequence = *sequence;
        self.op(LogOperation::Command {
            session,
            sequence,
            operation: encode_command(command),
        });
        let output = self
            .applied
            .outcomes
            .iter()
            .find_map(|outcome| match outcome {
                Outcome::Command {
                    session: of,
                    sequence: number,
                    result,
                    ..
                } if *of == session && *number == sequence => Some(result.clone()),
                _ => None,
            })
            .expect("the command ran at its own entry");
        let output = output
            .map_err(|error| format!("{error:?}"))?
            .output
            .map_err(|error| error.message)?;
        Ok(decode_value::<C::Output>(&output).expect("the output decodes"))
    }

    fn put(&mut self, session: SessionId, key: &str, value: &str) -> Option<Bytes> {
        let put = Put {
            key: bytes(key),
            value: bytes(value),
        };
        self.run(session, &put).expect("a put succeeds")
    }

    fn query<Q: Query>(&self, query: &Q) -> Result<Q::Output, String> {
        let output = self
            .host
            .query(SessionId(1), &encode_query(query))
            .map_err(|error| error.message)?;
        Ok(decode_value::<Q::Output>(&output).expect("the output decodes"))
    }

    fn get(&self, key: &str) -> Option<Bytes> {
        self.query(&Get { key: bytes(key) })
            .expect("a get succeeds")
    }

    /// The kv events the last entry published, by session.
    fn events(&self) -> Vec<(SessionId, KvEvent)> {
        let mut events = Vec::new();
        for batch in &self.applied.batches {
            for event in &batch.events {
                assert_eq!(event.name, KV_EVENT_NAME);
                let decoded = KvEvent::decode(&event.payload).expect("a kv event");
                events.push((batch.session, decoded));
            }
        }
        events
    }

    fn close(&mut self, session: SessionId, expired: bool) {
        let seen_through = self.host.last_applied();
        self.op(LogOperation::Unregister {
            session,
            expired,
            seen_through,
        });
        assert!(self
            .applied
            .outcomes
            .contains(&Outcome::Closed { session, expired }));
    }
}

#[test]
fn put_get_and_delete_return_the_previous_value() {
    let mut feeder = Feeder::new();
    let session = feeder.register(1);
    assert_eq!(feeder.get("a"), None);
    assert_eq!(feeder.put(session, "a", "1"), None);
    assert_eq!(feeder.put(session, "a", "2"), Some(bytes("1")));
    assert_eq!(
        feeder.put(session, "b", ""),
        None,
        "an empty value is a value"
    );
    assert_eq!(feeder.get("a"), Some(bytes("2")));
    assert_eq!(feeder.get("b"), Some(Bytes::new()));
    assert_eq!(feeder.query(&Len), Ok(2));
    let deleted = feeder.run(session, &Delete { key: bytes("a") });
    assert_eq!(deleted, Ok(Some(bytes("2"))));
    let again = feeder.run(session, &Delete { key: bytes("a") });
    assert_eq!(again, Ok(None));
    assert_eq!(feeder.get("a"), None);
    assert_eq!(feeder.query(&Len), Ok(1));
    assert_eq!(feeder.host.machine().len(), 1);
    assert_eq!(feeder.host.machine().get(b"b"), Some(&Bytes::new()));
    assert_eq!(
        feeder.put(session, "", "empty key"),
        None,
        "the empty key is a key"
    );
    assert_eq!(feeder.get(""), Some(bytes("empty key")));
}

#[test]
fn compare_and_set_applies_only_when_the_value_matches() {
    let mut feeder = Feeder::new();
    let session = feeder.register(1);
    let cas = |expected: Option<&str>, new: Option<&str>| CompareAndSet {
        key: bytes("k"),
        expected: expected.map(bytes),
        new: new.map(bytes),
    };
    assert_eq!(feeder.run(session, &cas(Some("x"), Some("y"))), Ok(false));
    assert_eq!(feeder.get("k"), None, "a miss changes nothing");
    assert_eq!(
        feeder.run(session, &cas(None, Some("1"))),
        Ok(true),
        "absent matches None"
    );
    assert_eq!(
        feeder.run(session, &cas(None, Some("2"))),
        Ok(false),
        "present does not"
    );
    assert_eq!(feeder.run(session, &cas(Some("2"), Some("3"))), Ok(false));
    assert_eq!(feeder.get("k"), Some(bytes("1")));
    assert_eq!(feeder.run(session, &cas(Some("1"), Some("2"))), Ok(true));
    assert_eq!(feeder.get("k"), Some(bytes("2")));
    assert_eq!(
        feeder.run(session, &cas(Some("2"), None)),
        Ok(true),
        "new None deletes"
    );
    assert_eq!(feeder.get("k"), None);
    assert_eq!(
        feeder.run(session, &cas(None, None)),
        Ok(true),
        "absent stays absent"
    );
    assert_eq!(feeder.query(&Len), Ok(0));
}

#[test]
fn watchers_are_told_of_matching_changes_made_after_they_watched() {
    let mut feeder = Feeder::new();
    let writer = feeder.register(1);
    let users = feeder.register(2);
    let everything = feeder.register(3);
    feeder.put(writer, "users/early", "before any watch");
    assert!(feeder.events().is_empty(), "no one watches yet");
    let watch = |prefix: &str| Watch {
        prefix: bytes(prefix),
    };
    assert_eq!(feeder.run(users, &watch("users/")), Ok(true));
    assert_eq!(
        feeder.run(users, &watch("users/")),
        Ok(false),
        "already watched"
    );
    assert_eq!(
        feeder.run(users, &watch("users/a")),
        Ok(true),
        "overlapping prefix"
    );
    assert_eq!(feeder.run(everything, &watch("")), Ok(true));
    assert!(feeder.events().is_empty(), "watching publishes nothing");

    feeder.put(writer, "users/alice", "1");
    let index = feeder.host.last_applied();
    let set = KvEvent {
        key: bytes("users/alice"),
        value: Some(bytes("1")),
        index,
    };
    // One event per session, though two of `users`' prefixes match.
    assert_eq!(
        feeder.events(),
        vec![(users, set.clone()), (everything, set)]
    );

    feeder.put(writer, "other", "2");
    let events = feeder.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, everything);

    feeder.put(writer, "user", "no trailing slash");
    assert_eq!(feeder.events().len(), 1, "only the empty prefix matches");

    feeder
        .run(
            writer,
            &Delete {
                key: bytes("users/alice"),
            },
        )
        .expect("a delete");
    let deleted = KvEvent {
        key: bytes("users/alice"),
        value: None,
        index: feeder.host.last_applied(),
    };
    assert_eq!(
        feeder.events(),
        vec![(users, deleted.clone()), (everything, deleted)]
    );

    // Nothing changed, nothing published.
    feeder
        .run(
            writer,
            &Delete {
                key: bytes("users/alice"),
            },
        )
        .expect("a delete");
    assert!(feeder.events().is_empty());
    let miss = CompareAndSet {
        key: bytes("users/bob"),
        expected: Some(bytes("x")),
        new: Some(bytes("y")),
    };
    assert_eq!(feeder.run(writer, &miss), Ok(false));
    assert!(feeder.events().is_empty());
    let hit = CompareAndSet {
        key: bytes("users/bob"),
        expected: None,
        new: Some(bytes("y")),
    };
    assert_eq!(feeder.run(writer, &hit), Ok(true));
    assert_eq!(feeder.events().len(), 2);

    // Unwatching stops the events of that prefix only; a writer that watches hears itself.
    let unwatch = |prefix: &str| Unwatch {
        prefix: bytes(prefix),
    };
    assert_eq!(feeder.run(users, &unwatch("users/")), Ok(true));
    assert_eq!(feeder.run(users, &unwatch("users/")), Ok(false));
    assert_eq!(feeder.run(writer, &watch("users/")), Ok(true));
    feeder.put(writer, "users/bob", "z");
    let sessions: Vec<SessionId> = feeder
        .events()
        .iter()
        .map(|(session, _)| *session)
        .collect();
    assert_eq!(sessions, vec![writer, everything]);
    feeder.put(writer, "users/alice", "back");
    let sessions: Vec<SessionId> = feeder
        .events()
        .iter()
        .map(|(session, _)| *session)
        .collect();
    assert_eq!(sessions, vec![writer, users, everything]);
    let prefixes: Vec<&Bytes> = feeder.host.machine().watched_prefixes(users).collect();
    assert_eq!(prefixes, vec![&bytes("users/a")]);
    assert_eq!(feeder.run(users, &unwatch("users/a")), Ok(true));
    assert_eq!(feeder.host.machine().watched_prefixes(users).count(), 0);
    assert_eq!(feeder.host.machine().watch_count(), 2);
}

#[test]
fn a_session_watches_a_bounded_number_of_prefixes() {
    let mut feeder = Feeder::new();
    let session = feeder.register(1);
    for number in 0..WATCHES_PER_SESSION_MAX {
        let watch = Watch {
            prefix: bytes(&format!("p{number}/")),
        };
        assert_eq!(feeder.run(session, &watch), Ok(true));
    }
    let one_more = Watch {
        prefix: bytes("q/"),
    };
    let error = feeder.run(session, &one_more).unwrap_err();
    assert!(error.contains("already watches 256 prefixes"), "{error}");
    let again = Watch {
        prefix: bytes("p0/"),
    };
    assert_eq!(
        feeder.run(session, &again),
        Ok(false),
        "a repeat is not a new one"
    );
}

#[test]
fn watches_die_with_their_session_closed_expired_or_replaced() {
    let mut feeder = Feeder::new();
    let writer = feeder.register(1);
    let closing = feeder.register(2);
    let expiring = feeder.register(3);
    let replaced = feeder.register(4);
    for session in [closing, expiring, replaced] {
        let watch = Watch {
            prefix: Bytes::new(),
        };
        assert_eq!(feeder.run(session, &watch), Ok(true));
    }
    assert_eq!(feeder.host.machine().watch_count(), 3);
    feeder.put(writer, "k", "1");
    assert_eq!(feeder.events().len(), 3);

    feeder.close(closing, false);
    feeder.close(expiring, true);
    // Registering the same client again expires its older session.
    let successor = feeder.register(4);
    assert!(feeder.applied.outcomes.contains(&Outcome::Closed {
        session: replaced,
        expired: true
    }));
    assert_eq!(feeder.host.machine().watch_count(), 0);
    for session in [closing, expiring, replaced] {
        assert_eq!(feeder.host.machine().watched_prefixes(session).count(), 0);
    }
    feeder.put(writer, "k", "2");
    assert!(feeder.events().is_empty(), "{:?}", feeder.events());
    assert!(feeder.applied.batches.is_empty());
    // The successor starts with no watches of its own.
    assert_eq!(feeder.host.machine().watched_prefixes(successor).count(), 0);
}

#[test]
fn oversized_keys_and_values_are_application_errors_that_change_nothing() {
    let mut feeder = Feeder::new();
    let session = feeder.register(1);
    let long_key = Bytes::from(vec![b'k'; KEY_SIZE_MAX + 1]);
    let longest_key = Bytes::from(vec![b'k'; KEY_SIZE_MAX]);
    let long_value = Bytes::from(vec![b'v'; VALUE_SIZE_MAX + 1]);
    let longest_value = Bytes::from(vec![b'v'; VALUE_SIZE_MAX]);

    let put = Put {
        key: long_key.clone(),
        value: bytes("v"),
    };
    assert!(put.check().is_err());
    let error = feeder.run(session, &put).unwrap_err();
    assert!(error.contains("key of 65537 bytes"), "{error}");
    let put = Put {
        key: bytes("k"),
        value: long_value.clone(),
    };
    let error = feeder.run(session, &put).unwrap_err();
    assert!(error.contains("value of 1048577 bytes"), "{error}");
    let cas = CompareAndSet {
        key: bytes("k"),
        expected: None,
        new: Some(long_value.clone()),
    };
    assert!(feeder.run(session, &cas).is_err());
    let cas = CompareAndSet {
        key: long_key.clone(),
        expected: None,
        new: None,
    };
    assert!(feeder.run(session, &cas).is_err());
    let delete = Delete {
        key: long_key.clone(),
    };
    assert!(feeder.run(session, &delete).is_err());
    let watch = Watch {
        prefix: long_key.clone(),
    };
    assert!(feeder.run(session, &watch).is_err());
    assert!(feeder.query(&Get { key: long_key }).is_err());
    assert_eq!(feeder.query(&Len), Ok(0));
    assert_eq!(feeder.host.machine().watch_count(), 0);
    assert_eq!(feeder.host.stats().panics, 0, "errors, not panics");

    // The limits themselves are allowed.
    let put = Put {
        key: longest_key.clone(),
        value: longest_value.clone(),
    };
    assert_eq!(feeder.run(session, &put), Ok(None));
    assert_eq!(
        feeder.query(&Get { key: longest_key }),
        Ok(Some(longest_value))
    );
}

/// A machine with keys, values and watches of several sessions, and the feeder it lives in.
fn populated() -> (Feeder, Vec<SessionId>) {
    let mut feeder = Feeder::new();
    let sessions: Vec<SessionId> = (1..=3).map(|client| feeder.register(client)).collect();
    for number in 0..50u32 {
        let session = sessions[number as usize % sessions.len()];
        feeder.put(
            session,
            &format!("key/{number:03}"),
            &"v".repeat(number as usize),
        );
    }
    feeder
        .run(
            sessions[0],
            &Delete {
                key: bytes("key/007"),
            },
        )
        .expect("a delete");
    feeder.put(sessions[1], "", "the empty key");
    for (session, prefix) in [(0, "key/0"), (0, ""), (2, "key/04"), (2, "other")] {
        let watch = Watch {
            prefix: bytes(prefix),
        };
        assert_eq!(feeder.run(sessions[session], &watch), Ok(true));
    }
    (feeder, sessions)
}

#[test]
fn a_snapshot_installs_to_a_machine_that_answers_the_same() {
    let (feeder, sessions) = populated();
    let original = feeder.host.machine();
    let snapshot = original.snapshot().expect("the kv machine takes snapshots");
    assert_eq!(&snapshot[..4], b"CKVS");
    assert!(snapshot.len() > SNAPSHOT_HEADER_SIZE);

    // Install replaces whatever the machine held before.
    let mut restored = KvMachine::default();
    restored
        .install(&body_of(&[(b"stale", b"gone after the install")], &[]))
        .expect("a valid snapshot");
    assert_eq!(restored.len(), 1);
    restored.install(&snapshot).expect("a snapshot it wrote");
    assert_eq!(&restored, original);
    assert_eq!(
        restored.snapshot(),
        Some(snapshot.clone()),
        "the format is canonical"
    );

    // A host on the restored machine answers every query as the original does.
    let mut copy = Feeder::with(restored);
    for number in 0..55u32 {
        let key = format!("key/{number:03}");
        assert_eq!(copy.get(&key), feeder.get(&key), "{key}");
    }
    assert_eq!(copy.get(""), feeder.get(""));
    assert_eq!(copy.get("stale"), None);
    assert_eq!(copy.query(&Len), feeder.query(&Len));
    assert_eq!(copy.query(&Len), Ok(50));
    // The watches came along: replaying the registers (same indexes, so same session ids)
    // and then writing publishes to the same sessions as on the original.
    for client in 1..=3 {
        copy.register(client);
    }
    let writer = copy.register(9);
    copy.put(writer, "key/045", "x");
    let sessions_told: Vec<SessionId> = copy.events().iter().map(|(session, _)| *session).collect();
    assert_eq!(sessions_told, vec![sessions[0], sessions[2]]);
}

#[test]
fn install_refuses_garbage_cut_or_corrupt_snapshots_and_keeps_its_state() {
    let (feeder, _) = populated();
    let snapshot = feeder.host.machine().snapshot().expect("a snapshot");
    let mut machine = KvMachine::default();
    machine
        .install(&body_of(&[(b"mine", b"kept")], &[]))
        .expect("a valid snapshot");
    let before = machine.clone();
    let mut refuse = |bad: &Bytes, why: &str| {
        let error = machine.install(bad).expect_err(why);
        assert!(
            error.message.starts_with("kv: snapshot refused"),
            "{why}: {error}"
        );
        assert_eq!(machine, before, "{why}: a refused snapshot changes nothing");
    };
    for cut in 0..snapshot.len() {
        refuse(&snapshot.slice(..cut), &format!("cut at {cut}"));
    }
    for position in 0..snapshot.len() {
        let mut flipped = snapshot.to_vec();
        flipped[position] ^= 0x20;
        refuse(&Bytes::from(flipped), &format!("byte {position} flipped"));
    }
    let mut longer = snapshot.to_vec();
    longer.push(0);
    refuse(&Bytes::from(longer), "a byte past the end");
    refuse(&Bytes::new(), "empty");
    refuse(
        &Bytes::from_static(b"not a snapshot at all, but long enough"),
        "garbage",
    );
    let mut other_version = snapshot.to_vec();
    other_version[4] = 2;
    refuse(&Bytes::from(other_version), "version 2");
    // A sealed garbage body, so that the checksum holds and only the decoder stands guard.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for size in 0..200 {
        let body: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let _ = machine.install(&seal_snapshot(&body));
        machine = before.clone();
    }
}

/// Body builders for snapshots whose checksum holds but whose content breaks a rule.
fn body_of(keys: &[(&[u8], &[u8])], watches: &[(u64, Vec<&[u8]>)]) -> Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for (key, value) in keys {
        put_bytes(&mut body, key);
        put_bytes(&mut body, value);
    }
    body.extend_from_slice(&(watches.len() as u64).to_le_bytes());
    for (session, prefixes) in watches {
        body.extend_from_slice(&session.to_le_bytes());
        let count = u32::try_from(prefixes.len()).expect("few");
        body.extend_from_slice(&count.to_le_bytes());
        for prefix in prefixes {
            put_bytes(&mut body, prefix);
        }
    }
    seal_snapshot(&body)
}

#[test]
fn install_refuses_well_sealed_snapshots_that_break_the_rules() {
    let mut machine = KvMachine::default();
    let fine = body_of(&[(b"a", b"1"), (b"b", b"2")], &[(3, vec![b"", b"x"])]);
    machine.install(&fine).expect("a valid snapshot");
    assert_eq!(machine.len(), 2);
    assert_eq!(machine.watch_count(), 2);
    assert_eq!(machine.snapshot(), Some(fine));
    let long_key = vec![b'k'; KEY_SIZE_MAX + 1];
    let long_value = vec![b'v'; VALUE_SIZE_MAX + 1];
    let many: Vec<Vec<u8>> = (0..=WATCHES_PER_SESSION_MAX)
        .map(|number| format!("{number:04}").into_bytes())
        .collect();
    let cases: Vec<(&str, Bytes)> = vec![
        ("duplicate key", body_of(&[(b"a", b"1"), (b"a", b"2")], &[])),
        (
            "keys descending",
            body_of(&[(b"b", b"1"), (b"a", b"2")], &[]),
        ),
        ("long key", body_of(&[(&long_key, b"1")], &[])),
        ("long value", body_of(&[(b"a", &long_value)], &[])),
        (
            "sessions descending",
            body_of(&[], &[(5, vec![b"a"]), (4, vec![b"a"])]),
        ),
        (
            "session repeated",
            body_of(&[], &[(5, vec![b"a"]), (5, vec![b"b"])]),
        ),
        ("session zero", body_of(&[], &[(0, vec![b"a"])])),
        ("no prefixes", body_of(&[], &[(5, vec![])])),
        ("prefix repeated", body_of(&[], &[(5, vec![b"a", b"a"])])),
        ("long prefix", body_of(&[], &[(5, vec![&long_key])])),
        (
            "too many prefixes",
            body_of(&[], &[(5, many.iter().map(Vec::as_slice).collect())]),
        ),
    ];
    for (why, snapshot) in cases {
        let error = machine.install(&snapshot).expect_err(why);
        assert!(
            error.message.starts_with("kv: snapshot refused"),
            "{why}: {error}"
        );
        assert_eq!(machine.len(), 2, "{why}");
    }
    // A key count far beyond the input fails on the input, without allocating for it.
    let mut huge = Vec::new();
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(machine.install(&seal_snapshot(&huge)).is_err());
}

#[test]
fn a_kv_event_round_trips_and_every_cut_or_extension_is_an_error() {
    let events = [
        KvEvent {
            key: bytes("users/alice"),
            value: Some(bytes("1")),
            index: LogIndex(42),
        },
        KvEvent {
            key: Bytes::new(),
            value: None,
            index: LogIndex(u64::MAX),
        },
        KvEvent {
            key: bytes("k"),
            value: Some(Bytes::new()),
            index: LogIndex(1),
        },
    ];
    for event in events {
        let payload = event.encode();
        assert_eq!(KvEvent::decode(&payload), Ok(event.clone()));
        for cut in 0..payload.len() {
            assert!(
                KvEvent::decode(&payload.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = payload.to_vec();
        longer.push(0);
        assert!(KvEvent::decode(&Bytes::from(longer)).is_err());
    }
    // A bad option tag, and a key length past the input.
    let mut bad_tag = 1u64.to_le_bytes().to_vec();
    put_bytes(&mut bad_tag, b"k");
    bad_tag.push(2);
    assert!(KvEvent::decode(&Bytes::from(bad_tag)).is_err());
    let mut long_length = 1u64.to_le_bytes().to_vec();
    long_length.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(KvEvent::decode(&Bytes::from(long_length)).is_err());
}

fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(value: &T) {
    let encoded = encode_value(value);
    assert_eq!(decode_value::<T>(&encoded).as_ref(), Ok(value));
    for cut in 0..encoded.len() {
        assert!(
            decode_value::<T>(&encoded.slice(..cut)).is_err(),
            "{value:?} cut at {cut}"
        );
    }
}

#[test]
fn operations_round_trip_and_have_their_documented_ids() {
    round_trip(&Put {
        key: bytes("k"),
        value: bytes("v"),
    });
    round_trip(&Delete { key: bytes("k") });
    round_trip(&CompareAndSet {
        key: bytes("k"),
        expected: None,
        new: Some(bytes("n")),
    });
    round_trip(&CompareAndSet {
        key: bytes("k"),
        expected: Some(bytes("e")),
        new: None,
    });
    round_trip(&Watch { prefix: bytes("p") });
    round_trip(&Unwatch {
        prefix: Bytes::new(),
    });
    round_trip(&Get { key: bytes("k") });
    assert_eq!(decode_value::<Len>(&encode_value(&Len)), Ok(Len));
    assert_eq!(
        [
            <Put as Command>::ID,
            <Delete as Command>::ID,
            <CompareAndSet as Command>::ID,
            <Watch as Command>::ID,
            <Unwatch as Command>::ID,
            <Get as Query>::ID,
            <Len as Query>::ID,
        ],
        [100, 101, 102, 103, 104, 105, 106]
    );
    assert_eq!(
        [
            PUT_ID,
            DELETE_ID,
            COMPARE_AND_SET_ID,
            WATCH_ID,
            UNWATCH_ID,
            GET_ID,
            LEN_ID
        ],
        [100, 101, 102, 103, 104, 105, 106]
    );
    // What a client sends: the id, then the operation.
    let operation = encode_command(&Delete { key: bytes("k") });
    assert_eq!(&operation[..], &[101, 0, 0, 0, 1, 0, 0, 0, b'k']);
}

#[test]
fn a_command_sent_as_a_query_is_refused_not_run() {
    let mut feeder = Feeder::new();
    let session = feeder.register(1);
    feeder.put(session, "k", "v");
    let as_query = encode_command(&Delete { key: bytes("k") });
    let error = feeder.host.query(session, &as_query).unwrap_err();
    assert!(error.message.contains("unknown query id 101"), "{error}");
    assert_eq!(feeder.get("k"), Some(bytes("v")));
}

#[test]
fn two_hosts_fed_the_same_entries_write_the_same_snapshot() {
    let (left, _) = populated();
    let (right, _) = populated();
    assert_eq!(
        left.host.machine().snapshot(),
        right.host.machine().snapshot()
    );
}
