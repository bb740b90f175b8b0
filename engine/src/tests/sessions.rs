//! Sessions, commands, queries and events through whole servers (SPEC §B–§F, §I), including
//! Copycat's cluster scenarios (SPEC §O1) that fit a hand-driven cluster.

use crate::session::{
    ClientError, ClientId, QueryConsistency, RequestBody, ResponseBody, SessionId,
};
use crate::state_machine::test_machine::{Get, Lock, Put, Shout};
use crate::tests::server_cluster::ServerCluster;
use crate::LogIndex;

const LEVELS: [QueryConsistency; 4] = [
    QueryConsistency::Sequential,
    QueryConsistency::Causal,
    QueryConsistency::LinearizableLease,
    QueryConsistency::Linearizable,
];

fn keep_alive(session: SessionId, command_sequence: u64) -> RequestBody {
    RequestBody::KeepAlive {
        session,
        command_sequence,
        event_index: session.index(),
    }
}

#[test]
fn commands_and_queries_at_every_level_on_one_to_five_servers() {
    for count in 1..=5u64 {
        let mut cluster = ServerCluster::new(count);
        let leader = cluster.elect();
        // Register and write through a follower when there is one: it forwards.
        let entry = if count > 1 {
            leader % count + 1
        } else {
            leader
        };
        let session = cluster.register(entry, 1, 10, 0);
        assert_eq!(
            cluster.command(entry, 1, session, 1, &Put(7, 70)),
            Ok(None),
            "{count} servers"
        );
        cluster.advance(100); // Followers learn the commit.
        for server in 1..=count {
            for level in LEVELS {
                assert_eq!(
                    cluster.query(server, 1, session, level, &Get(7)),
                    Ok(Some(70)),
                    "{count} servers, server {server}, {level:?}"
                );
            }
        }
        assert!(cluster.server(entry).stats().forwarded > 0 || count == 1);
    }
}

#[test]
fn commands_and_reads_go_on_with_a_minority_down() {
    for (count, down) in [(3u64, 1u64), (4, 1), (5, 2)] {
        let mut cluster = ServerCluster::new(count);
        let leader = cluster.elect();
        let mut crashed = 0;
        for id in 1..=count {
            if id != leader && crashed < down {
                cluster.crash(id);
                crashed += 1;
            }
        }
        let session = cluster.register(leader, 1, 10, 0);
        for sequence in 1..=5 {
            cluster
                .command(leader, 1, session, sequence, &Put(1, sequence))
                .expect("a majority is up");
        }
        let read = cluster.query(leader, 1, session, QueryConsistency::Linearizable, &Get(1));
        assert_eq!(read, Ok(Some(5)), "{count} servers, {down} down");
    }
}

#[test]
fn a_retried_command_applies_once_across_a_leader_change() {
    let mut cluster = ServerCluster::new(3);
    let first = cluster.elect();
    let session = cluster.register(first, 1, 10, 0);
    assert_eq!(cluster.command(first, 1, session, 1, &Put(1, 1)), Ok(None));
    // The leader logs the next command, replicates it, and dies before the client hears.
    let request = RequestBody::Command {
        session,
        sequence: 2,
        operation: crate::state_machine::encode_command(&Put(1, 2)),
    };
    let sent = cluster.send(first, 1, request);
    cluster.crash(first);
    cluster.deliver_all();
    assert!(cluster.response(sent).is_none());
    let second = cluster.elect();
    assert_ne!(first, second);
    // The client resubmits the same sequence at the new leader: answered, not re-run.
    assert_eq!(
        cluster.command(second, 1, session, 2, &Put(1, 2)),
        Ok(Some(1))
    );
    assert_eq!(
        cluster.command(second, 1, session, 2, &Put(1, 2)),
        Ok(Some(1))
    );
    assert_eq!(
        cluster.command(second, 1, session, 3, &Put(1, 3)),
        Ok(Some(2))
    );
    cluster.start(first);
    cluster.advance(500);
    for id in 1..=3 {
        let host = cluster.server(id).host();
        assert_eq!(host.machine().values.get(&1), Some(&3), "server {id}");
        assert_eq!(
            host.stats().commands_applied,
            3,
            "server {id}: each command once"
        );
    }
}

#[test]
fn a_command_after_a_gap_runs_once_the_gap_fills() {
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let session = cluster.register(leader, 1, 10, 0);
    let late = cluster.send(
        leader,
        1,
        RequestBody::Command {
            session,
            sequence: 2,
            operation: crate::state_machine::encode_command(&Put(1, 2)),
        },
    );
    cluster.advance(100);
    assert!(cluster.response(late).is_none(), "held until 1 arrives");
    assert_eq!(cluster.command(leader, 1, session, 1, &Put(1, 1)), Ok(None));
    cluster.advance(20);
    let answer = cluster.response(late).expect("answered once 1 ran");
    assert!(matches!(answer, Ok(ResponseBody::Command { .. })));
    assert_eq!(
        cluster.query(leader, 1, session, QueryConsistency::Linearizable, &Get(1)),
        Ok(Some(2))
    );
    // Too far ahead: the leader says where it stands instead of holding it.
    let far = cluster.command(leader, 1, session, 10_000, &Put(1, 9));
    assert_eq!(far, Err(ClientError::Command { last_sequence: 2 }));
}

#[test]
fn a_lone_silent_clients_session_expires_and_its_lock_is_released_once() {
    // Copycat #232: with no other client writing, log time never moved and the session
    // never expired. Here the leader's own clock expires it.
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let session = cluster.register(leader, 1, 10, 1_000);
    assert_eq!(cluster.command(leader, 1, session, 1, &Lock(5)), Ok(true));
    cluster.advance(900);
    assert!(cluster
        .server(leader)
        .host()
        .sessions()
        .get(session)
        .is_some());
    cluster.advance(1_500);
    for id in 1..=3 {
        let host = cluster.server(id).host();
        assert!(host.sessions().get(session).is_none(), "server {id}");
        assert_eq!(host.machine().releases, vec![(5, session)], "server {id}");
    }
    let refused = cluster.command(leader, 1, session, 2, &Put(1, 1));
    assert_eq!(refused, Err(ClientError::UnknownSession));
}

#[test]
fn commands_alone_keep_a_session_open() {
    // Copycat #311: no keep-alives are needed while commands flow.
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let session = cluster.register(leader, 1, 10, 1_000);
    for sequence in 1..=12 {
        cluster
            .command(leader, 1, session, sequence, &Put(1, sequence))
            .expect("open");
        cluster.advance(400);
    }
    for sequence in 1..=8 {
        cluster
            .ask(leader, 1, keep_alive(session, 12 + sequence - 8))
            .expect("open");
        cluster.advance(400);
    }
    assert!(cluster
        .server(leader)
        .host()
        .sessions()
        .get(session)
        .is_some());
    assert_eq!(cluster.server(leader).stats().expiries_logged, 0);
}

#[test]
fn an_election_does_not_expire_a_session_kept_alive_elsewhere() {
    let mut cluster = ServerCluster::new(3);
    let first = cluster.elect();
    let follower = first % 3 + 1;
    let session = cluster.register(follower, 1, 10, 2_000);
    cluster.crash(first);
    // The client keeps alive through the surviving follower, which forwards to whoever
    // leads (NoLeader answers while none does are fine: the client retries).
    for _ in 0..20 {
        let _ = cluster.ask(follower, 1, keep_alive(session, 0));
        cluster.advance(500);
    }
    let second = cluster.elect();
    assert!(cluster
        .server(second)
        .host()
        .sessions()
        .get(session)
        .is_some());
    assert_eq!(cluster.server(second).stats().expiries_logged, 0);
}

#[test]
fn events_reach_the_clients_connection_and_come_again_after_a_reconnect() {
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let follower = leader % 3 + 1;
    let listener = cluster.register(follower, 7, 1, 0);
    let speaker = cluster.register(leader, 8, 2, 0);
    cluster
        .command(leader, 8, speaker, 1, &Shout("hi".into()))
        .expect("shout");
    cluster.advance(100);
    let batches = cluster.batches(7);
    assert_eq!(
        batches.len(),
        1,
        "one batch, from the follower holding connection 7"
    );
    assert_eq!(batches[0].session, listener);
    assert_eq!(batches[0].previous_index, listener.index());
    assert_eq!(batches[0].events[0].name, "hi");
    // The listener moves to another server: everything not acknowledged comes again.
    let other = (follower % 3) + 1;
    cluster
        .ask(
            other,
            9,
            RequestBody::Connect {
                client: ClientId(1),
            },
        )
        .expect("connect");
    assert_eq!(cluster.batches(9), batches);
    // A reset asks for everything after an index.
    cluster.send(
        other,
        9,
        RequestBody::ResetEvents {
            session: listener,
            index: listener.index(),
        },
    );
    assert_eq!(cluster.batches(9).len(), 2);
    // Acknowledged through a keep-alive, the batch is gone everywhere.
    let event_index = batches[0].event_index;
    cluster
        .ask(
            other,
            9,
            RequestBody::KeepAlive {
                session: listener,
                command_sequence: 0,
                event_index,
            },
        )
        .expect("keep-alive");
    cluster.advance(100);
    for id in 1..=3 {
        let sessions = cluster.server(id).host().sessions();
        assert_eq!(
            sessions.get(listener).unwrap().batches_count(),
            0,
            "server {id}"
        );
    }
}

#[test]
fn a_deposed_leader_never_answers_a_linearizable_read_with_stale_state() {
    let mut cluster = ServerCluster::new(3);
    let old = cluster.elect();
    let session = cluster.register(old, 1, 10, 60_000);
    cluster
        .command(old, 1, session, 1, &Put(1, 1))
        .expect("write");
    cluster.cut.insert(old);
    let new = cluster.elect();
    assert_ne!(old, new);
    cluster
        .command(new, 2, session, 2, &Put(1, 2))
        .expect("write at the new leader");
    for level in [
        QueryConsistency::Linearizable,
        QueryConsistency::LinearizableLease,
    ] {
        let read = cluster.query(old, 1, session, level, &Get(1));
        assert!(
            matches!(
                read,
                Err(ClientError::Query { .. }) | Err(ClientError::NoLeader)
            ),
            "{level:?}: {read:?}"
        );
    }
    assert_eq!(
        cluster.query(new, 2, session, QueryConsistency::Linearizable, &Get(1)),
        Ok(Some(2))
    );
}

#[test]
fn a_query_sees_the_clients_own_earlier_command() {
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let follower = leader % 3 + 1;
    let session = cluster.register(leader, 1, 10, 0);
    let write = cluster.send(
        leader,
        1,
        RequestBody::Command {
            session,
            sequence: 1,
            operation: crate::state_machine::encode_command(&Put(4, 44)),
        },
    );
    // A sequential read at a follower naming sequence 1 waits until the follower applied it.
    let read = cluster.send(
        follower,
        1,
        RequestBody::Query {
            session,
            sequence: 1,
            index: LogIndex::ZERO,
            consistency: QueryConsistency::Sequential,
            operation: crate::state_machine::encode_query(&Get(4)),
        },
    );
    cluster.advance(200);
    assert!(cluster.response(write).is_some());
    let Some(Ok(ResponseBody::Query { output, .. })) = cluster.response(read) else {
        panic!("{:?}", cluster.response(read))
    };
    let value: Option<u64> = crate::state_machine::decode_value(&output.unwrap()).unwrap();
    assert_eq!(value, Some(44));
}

#[test]
fn unknown_sessions_are_refused_everywhere() {
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    cluster.register(leader, 1, 10, 0);
    cluster.advance(100);
    let ghost = SessionId(1);
    for id in 1..=3 {
        assert_eq!(
            cluster.query(id, 1, ghost, QueryConsistency::Sequential, &Get(1)),
            Err(ClientError::UnknownSession),
            "server {id}"
        );
    }
    assert_eq!(
        cluster.command(leader, 1, ghost, 1, &Put(1, 1)),
        Err(ClientError::UnknownSession)
    );
}

/// Cuts the leader off after its clock slowed to 70% and the others' sped up to 130%, lets
/// the others elect a leader and write there, then reads on the old leader's lease.
fn lease_read_after_drift(clock_drift_ppm_max: u64) -> Result<Option<u64>, ClientError> {
    let mut cluster = ServerCluster::with_drift_bound(3, clock_drift_ppm_max);
    let old = cluster.elect();
    let session = cluster.register(old, 1, 10, 60_000);
    cluster
        .command(old, 1, session, 1, &Put(1, 1))
        .expect("write");
    for id in 1..=3 {
        cluster.set_clock_rate(id, if id == old { 700 } else { 1300 });
    }
    cluster.advance(30); // A heartbeat round renews the lease at the new rates.
    cluster.cut.insert(old);
    let new = cluster.elect();
    assert_ne!(new, old);
    cluster
        .command(new, 2, session, 2, &Put(1, 2))
        .expect("write at the new leader");
    cluster.query(
        old,
        1,
        session,
        QueryConsistency::LinearizableLease,
        &Get(1),
    )
}

#[test]
fn lease_reads_are_stale_when_clocks_drift_past_the_bound() {
    // The servers assume perfect clocks: the old leader's lease outlives the followers'
    // promise not to elect anyone, and it serves the value the new leader overwrote.
    assert_eq!(
        lease_read_after_drift(0),
        Ok(Some(1)),
        "the stale read this test documents"
    );
    // With a bound that covers the drift, the lease is over before anyone else can lead:
    // the old leader needs a round, which it cannot complete.
    assert!(matches!(
        lease_read_after_drift(249_000),
        Err(ClientError::Query { .. } | ClientError::NoLeader)
    ));
}

/// Every batch a connection received for `session`, as (previous, index, names).
fn received(
    cluster: &ServerCluster,
    connection: u64,
    session: SessionId,
) -> Vec<(u64, u64, Vec<String>)> {
    cluster
        .batches(connection)
        .into_iter()
        .filter(|batch| batch.session == session)
        .map(|batch| {
            let names = batch
                .events
                .iter()
                .map(|event| event.name.clone())
                .collect();
            (batch.previous_index.0, batch.event_index.0, names)
        })
        .collect()
}

/// The batches chain from the session id, with no repeats, and hold `names` in order.
fn assert_chain(batches: &[(u64, u64, Vec<String>)], session: SessionId, names: &[&str]) {
    let mut previous = session.0;
    let mut seen = Vec::new();
    for (batch_previous, index, batch_names) in batches {
        if *index <= previous {
            continue; // A resend of a batch already received.
        }
        assert_eq!(*batch_previous, previous, "{batches:?}");
        previous = *index;
        seen.extend(batch_names.iter().cloned());
    }
    assert_eq!(seen, names, "{batches:?}");
}

#[test]
fn events_reach_many_sessions_each_in_order() {
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let mut listeners = Vec::new();
    for client in 0..9u64 {
        let server = client % 3 + 1;
        let connection = 100 + client;
        let session = cluster.register(server, connection, u128::from(client) + 1, 0);
        listeners.push((connection, session));
    }
    let speaker = cluster.register(leader, 1, 99, 0);
    let names: Vec<String> = (0..12).map(|step| format!("e{step}")).collect();
    for (sequence, name) in names.iter().enumerate() {
        let sequence = sequence as u64 + 1;
        cluster
            .command(leader, 1, speaker, sequence, &Shout(name.clone()))
            .expect("shout");
    }
    cluster.advance(200);
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    for (connection, session) in listeners {
        assert_chain(&received(&cluster, connection, session), session, &expected);
    }
}

#[test]
fn events_go_on_after_a_leader_kill_and_a_follower_kill() {
    let mut cluster = ServerCluster::new(3);
    let first = cluster.elect();
    let follower = first % 3 + 1;
    let on_leader = cluster.register(first, 10, 1, 60_000);
    let on_follower = cluster.register(follower, 11, 2, 60_000);
    let speaker = cluster.register(first, 1, 3, 60_000);
    cluster
        .command(first, 1, speaker, 1, &Shout("before".into()))
        .expect("shout");
    cluster.advance(100);
    // The leader dies. The client that was connected to it connects elsewhere and gets
    // what it had not acknowledged; the speaker goes on at the new leader.
    cluster.crash(first);
    let second = cluster.elect();
    cluster
        .ask(
            second,
            12,
            RequestBody::Connect {
                client: ClientId(1),
            },
        )
        .expect("connect");
    cluster
        .command(second, 2, speaker, 2, &Shout("after-leader".into()))
        .expect("shout");
    // A follower dies too (the one that is neither the new leader nor the listener's).
    let third = (1..=3)
        .find(|&id| id != first && id != second)
        .expect("three");
    cluster.start(first);
    cluster.advance(300);
    cluster.crash(third);
    let survivor_connection = if third == follower { 13 } else { 11 };
    if third == follower {
        cluster
            .ask(
                second,
                13,
                RequestBody::Connect {
                    client: ClientId(2),
                },
            )
            .expect("connect");
    }
    cluster
        .command(second, 2, speaker, 3, &Shout("after-follower".into()))
        .expect("shout");
    cluster.advance(300);
    let mut on_leader_batches = received(&cluster, 10, on_leader);
    on_leader_batches.extend(received(&cluster, 12, on_leader));
    assert_chain(
        &on_leader_batches,
        on_leader,
        &["before", "after-leader", "after-follower"],
    );
    let mut on_follower_batches = received(&cluster, 11, on_follower);
    if survivor_connection == 13 {
        on_follower_batches.extend(received(&cluster, 13, on_follower));
    }
    assert_chain(
        &on_follower_batches,
        on_follower,
        &["before", "after-leader", "after-follower"],
    );
}

#[test]
fn expire_and_close_events_reach_the_other_sessions() {
    let mut cluster = ServerCluster::new(3);
    let leader = cluster.elect();
    let watcher = cluster.register(leader, 1, 1, 60_000);
    let quitter = cluster.register(leader, 2, 2, 60_000);
    let silent = cluster.register(leader, 3, 3, 1_000);
    cluster
        .ask(leader, 2, RequestBody::Unregister { session: quitter })
        .expect("unregister");
    // The watcher keeps alive while the silent session expires.
    for _ in 0..8 {
        cluster
            .ask(leader, 1, keep_alive(watcher, 0))
            .expect("alive");
        cluster.advance(400);
    }
    let closed: Vec<u64> = cluster
        .batches(1)
        .iter()
        .flat_map(|batch| batch.events.iter())
        .filter(|event| event.name == "closed")
        .map(|event| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&event.payload);
            u64::from_le_bytes(bytes)
        })
        .collect();
    assert_eq!(closed, vec![quitter.0, silent.0]);
    let calls = &cluster.server(leader).host().machine().listener_calls;
    assert!(calls.contains(&format!("unregister {}", quitter.0)));
    assert!(calls.contains(&format!("expire {}", silent.0)));
}

#[test]
fn a_deposed_leader_never_answers_with_another_requests_outcome() {
    let mut cluster = ServerCluster::new(3);
    let old = cluster.elect();
    cluster.cut.insert(old);
    // The cut-off leader logs two registrations it can never commit.
    for (connection, client) in [(1, 1), (2, 2)] {
        let connect = RequestBody::Connect {
            client: ClientId(client),
        };
        cluster.ask(old, connection, connect).expect("connect");
    }
    let first = cluster.send(
        old,
        1,
        RequestBody::Register {
            client: ClientId(1),
            timeout_ms: 0,
        },
    );
    let second = cluster.send(
        old,
        2,
        RequestBody::Register {
            client: ClientId(2),
            timeout_ms: 0,
        },
    );
    // The others elect a leader and commit another client's registration at the index of
    // the old leader's second entry.
    let new = cluster.elect();
    let other = cluster.register(new, 3, 3, 0);
    // The old leader hears of it: it applies the new leader's entries before it learns it
    // lost, and must not hand either of its clients the other client's session.
    cluster.cut.clear();
    cluster.advance(300);
    for request in [first, second] {
        match cluster.response(request) {
            Some(Ok(ResponseBody::Register { session, .. })) => {
                assert_ne!(
                    session, other,
                    "request {request} got another client's session"
                );
            }
            Some(Err(ClientError::NoLeader)) | None => {}
            answer => panic!("request {request}: {answer:?}"),
        }
    }
    let sessions = cluster.server(old).host().sessions();
    assert_eq!(
        sessions.get(other).map(|session| session.client()),
        Some(ClientId(3))
    );
}
