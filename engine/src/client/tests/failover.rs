//! Moving between servers: failures, leader changes, sequence gaps, back-off, selection.

use super::*;
use crate::client::{ConnectionStrategy, ServerSelection};

fn texts(sent: &[Sent]) -> Vec<(u64, String)> {
    sent.iter().map(|sent| command_of(&sent.body)).collect()
}

#[test]
fn a_leader_change_resends_pending_commands_with_the_same_sequence_once() {
    let mut config = config();
    config.selection = ServerSelection::Leader;
    let (mut harness, server) = opened(config, &[1, 2, 3], 10, Some(1));
    assert_eq!(server, 1);
    harness.command("a");
    harness.command("b");
    let a = harness.pop();
    let b = harness.pop();
    assert_eq!((a.to, b.to), (1, 1));
    harness.answer(&a, command_ok(11, 10, "a"));
    assert_eq!(harness.take_completions(), vec![(1, Ok("a".into()))]);
    // The leader's connection drops; a new leader is elected.
    harness.lost(1);
    assert!(disconnected(&harness.take_actions(), 1));
    assert_eq!(
        harness.client.leader(),
        None,
        "a failure forgets the leader"
    );
    assert_eq!(reconnect(&mut harness, Some(2), &[1, 2, 3]), 2);
    let resent = harness.pop();
    assert_eq!(resent.to, 2);
    assert_eq!(command_of(&resent.body), (2, "b".into()));
    assert!(
        harness.outbox.is_empty(),
        "command 1 was answered: it does not go again"
    );
    // The old leader's late answer to the first attempt is ignored.
    harness.reply(1, b.request_id, command_ok(12, 10, "old attempt"));
    assert!(harness.take_actions().is_empty());
    harness.answer(&resent, command_ok(12, 10, "b"));
    assert_eq!(harness.take_completions(), vec![(2, Ok("b".into()))]);
}

#[test]
fn a_request_timeout_is_a_failure_of_the_server() {
    let (mut harness, first) = opened(config(), &[1, 2, 3], 10, Some(1));
    harness.command("a");
    let a = harness.pop();
    harness.tick(REQUEST_TIMEOUT_MS - 1);
    assert!(harness.outbox.is_empty());
    harness.tick(REQUEST_TIMEOUT_MS);
    assert!(disconnected(&harness.take_actions(), first));
    let connect = harness.pop();
    assert_ne!(connect.to, first);
    harness.answer(&connect, connect_ok(Some(1), &[1, 2, 3]));
    let again = harness.pop();
    assert_eq!(again.to, connect.to);
    assert_eq!(command_of(&again.body), (1, "a".into()));
    assert_ne!(again.request_id, a.request_id, "a retry gets a fresh id");
    harness.answer(&a, command_ok(11, 10, "stale"));
    assert!(harness.take_actions().is_empty());
    harness.answer(&again, command_ok(11, 10, "a"));
    assert_eq!(harness.take_completions(), vec![(1, Ok("a".into()))]);
}

#[test]
fn commands_survive_a_silent_server_and_apply_once_in_order() {
    let mut cluster = FakeCluster::new(1, &[1, 2, 3]);
    let mut harness = Harness::new(config(), &[1, 2, 3]);
    harness.open();
    harness.serve(&mut cluster);
    let first = harness.client.server().expect("connected").0;
    cluster.down.insert(first);
    for n in 0..5 {
        harness.command(&format!("c{n}"));
    }
    harness.run_until(1000, &mut cluster);
    let expected: Vec<(u64, Result<String, u8>)> =
        (0..5).map(|n| (n + 1, Ok(format!("c{n}")))).collect();
    assert_eq!(harness.take_completions(), expected);
    let sequences: Vec<u64> = cluster
        .applications
        .iter()
        .map(|(_, sequence, _)| *sequence)
        .collect();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5]);
    assert_ne!(harness.client.server(), Some(ReplicaId(first)));
    assert_eq!(harness.state(), ClientState::Connected);
}

#[test]
fn a_gap_resubmits_the_commands_after_it_once_and_in_order() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    for text in ["a", "b", "c"] {
        harness.command(text);
    }
    let sent = harness.pop_all();
    // Command 1 never reached the leader: 2 and 3 arrive after a gap.
    harness.answer(&sent[1], Err(ClientError::Command { last_sequence: 0 }));
    let again = harness.pop_all();
    assert_eq!(
        texts(&again),
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    // The rest of the burst answers withdrawn requests: nothing more goes.
    harness.answer(&sent[2], Err(ClientError::Command { last_sequence: 0 }));
    harness.answer(&sent[0], command_ok(11, 10, "first attempt"));
    assert!(harness.outbox.is_empty());
    assert!(harness.take_actions().is_empty());
    for (sent, index) in again.iter().zip(11..) {
        let (_, text) = command_of(&sent.body);
        harness.answer(sent, command_ok(index, 10, &text));
    }
    assert_eq!(
        harness.take_completions(),
        vec![
            (1, Ok("a".into())),
            (2, Ok("b".into())),
            (3, Ok("c".into()))
        ]
    );
}

#[test]
fn a_new_leader_behind_the_session_gets_a_keep_alive_before_the_resubmission() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    for text in ["a", "b", "c"] {
        harness.command(text);
    }
    let sent = harness.pop_all();
    harness.answer(&sent[0], command_ok(11, 10, "a"));
    harness.answer(&sent[1], command_ok(12, 10, "b"));
    assert_eq!(harness.take_completions().len(), 2);
    // A new leader knows the session only through sequence 1 (Copycat #282).
    harness.answer(&sent[2], Err(ClientError::Command { last_sequence: 1 }));
    let keep_alive = harness.pop();
    assert_eq!(
        keep_alive.body,
        RequestBody::KeepAlive {
            session: SessionId(10),
            command_sequence: 2,
            event_index: LogIndex(10)
        }
    );
    assert!(
        harness.outbox.is_empty(),
        "command 3 waits for the keep-alive"
    );
    harness.answer(&keep_alive, keep_alive_ok(Some(1), &[1]));
    let again = harness.pop();
    assert_eq!(command_of(&again.body), (3, "c".into()));
    harness.answer(&again, command_ok(13, 10, "c"));
    assert_eq!(harness.take_completions(), vec![(3, Ok("c".into()))]);
}

#[test]
fn a_command_the_leader_applied_but_forgot_completes_with_the_error() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    harness.command("a");
    harness.command("b");
    let sent = harness.pop_all();
    harness.answer(&sent[0], Err(ClientError::Command { last_sequence: 1 }));
    assert_eq!(harness.take_completions(), vec![(1, Err(3))]);
    assert!(harness.outbox.is_empty());
    harness.answer(&sent[1], command_ok(12, 10, "b"));
    assert_eq!(harness.take_completions(), vec![(2, Ok("b".into()))]);
}

#[test]
fn no_leader_answers_move_on_at_once_and_a_failed_pass_waits() {
    let (mut harness, _) = opened(config(), &[1, 2, 3], 10, None);
    harness.command("a");
    let mut tried = BTreeSet::new();
    while let Some(sent) = harness.outbox.pop_front() {
        tried.insert(sent.to);
        match sent.body.name() {
            "connect" => harness.answer(&sent, connect_ok(None, &[1, 2, 3])),
            "command" => harness.answer(&sent, Err(ClientError::NoLeader)),
            other => panic!("{other}"),
        }
    }
    assert_eq!(tried.len(), 3, "every server once, without waiting");
    assert_eq!(harness.state(), ClientState::Suspended);
    assert_eq!(harness.client.next_wake_ms(), Some(1000));
    harness.tick(1000);
    let server = reconnect(&mut harness, Some(1), &[1, 2, 3]);
    let again = harness
        .pop_all()
        .into_iter()
        .find(|sent| sent.body.name() == "command")
        .expect("the command goes again");
    assert_eq!(
        (again.to, command_of(&again.body)),
        (server, (1, "a".into()))
    );
    harness.answer(&again, command_ok(11, 10, "a"));
    assert_eq!(harness.state(), ClientState::Connected);
    assert_eq!(harness.take_completions(), vec![(1, Ok("a".into()))]);
}

/// The times at which passes start, every server failing at once, for `passes` passes.
fn pass_starts(harness: &mut Harness, passes: usize) -> Vec<u64> {
    let mut starts = Vec::new();
    loop {
        if !harness.outbox.is_empty() {
            starts.push(harness.now);
            let mut tried = BTreeSet::new();
            while let Some(sent) = harness.outbox.pop_front() {
                tried.insert(sent.to);
                harness.lost(sent.to);
            }
            assert_eq!(
                tried.len(),
                harness.client.servers().len(),
                "a pass tries every server"
            );
        }
        if starts.len() == passes {
            return starts;
        }
        let Some(wake) = harness.client.next_wake_ms() else {
            return starts;
        };
        harness.tick(wake);
    }
}

fn registration_pass_starts(strategy: ConnectionStrategy, passes: usize) -> Vec<u64> {
    let mut config = config();
    config.connection = strategy;
    let mut harness = Harness::new(config, &[1, 2, 3]);
    harness.open();
    pass_starts(&mut harness, passes)
}

#[test]
fn once_makes_one_pass_then_closes() {
    let mut config = config();
    config.connection = ConnectionStrategy::Once;
    let mut harness = Harness::new(config, &[1, 2, 3]);
    harness.open();
    harness.command("early");
    assert_eq!(pass_starts(&mut harness, 5), vec![0]);
    assert_eq!(harness.sent_named("connect").len(), 3);
    let actions = harness.take_actions();
    assert_eq!(
        actions.iter().filter_map(completed).collect::<Vec<_>>(),
        vec![(1, Err(0))]
    );
    assert_eq!(
        actions.last(),
        Some(&ClientAction::StateChanged(ClientState::Closed))
    );
    assert_eq!(harness.client.next_wake_ms(), None);
}

#[test]
fn exponential_backoff_waits_2_4_8_16_32_60_60_seconds_between_passes() {
    let starts = registration_pass_starts(ConnectionStrategy::ExponentialBackoff, 8);
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|pair| (pair[1] - pair[0]) / 1000)
        .collect();
    assert_eq!(gaps, vec![2, 4, 8, 16, 32, 60, 60]);
}

#[test]
fn fibonacci_backoff_waits_1_1_2_3_5_8_13_13_seconds_between_passes() {
    let starts = registration_pass_starts(ConnectionStrategy::FibonacciBackoff, 9);
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|pair| (pair[1] - pair[0]) / 1000)
        .collect();
    assert_eq!(gaps, vec![1, 1, 2, 3, 5, 8, 13, 13]);
}

#[test]
fn registering_without_a_leader_counts_as_a_failed_pass() {
    let mut config = config();
    config.connection = ConnectionStrategy::Once;
    let mut harness = Harness::new(config, &[1, 2, 3]);
    harness.open();
    while let Some(sent) = harness.outbox.pop_front() {
        match sent.body.name() {
            "connect" => harness.answer(&sent, connect_ok(None, &[1, 2, 3])),
            "register" => harness.answer(&sent, Err(ClientError::NoLeader)),
            other => panic!("{other}"),
        }
    }
    assert_eq!(harness.sent_named("register").len(), 3);
    assert_eq!(harness.state(), ClientState::Closed);
}

#[test]
fn an_open_session_retries_passes_1_1_2_3_5_5_seconds_apart_whatever_the_strategy() {
    let (mut harness, _) = opened(config(), &[1, 2, 3], 10, Some(1));
    harness.command("a");
    let starts = pass_starts(&mut harness, 7);
    assert_eq!(starts, vec![0, 1000, 2000, 4000, 7000, 12000, 17000]);
    assert_eq!(harness.state(), ClientState::Suspended);
    assert_eq!(harness.client.pending_count(), 1, "the command still waits");
}

#[test]
fn leader_selection_follows_the_leader() {
    let mut config = config();
    config.selection = ServerSelection::Leader;
    let (mut harness, server) = opened(config, &[1, 2, 3], 10, Some(2));
    assert_eq!(server, 2);
    harness.tick(500);
    let keep_alive = harness.pop();
    assert_eq!(keep_alive.to, 2);
    harness.answer(&keep_alive, keep_alive_ok(Some(3), &[1, 2, 3]));
    assert!(disconnected(&harness.take_actions(), 2));
    assert_eq!(harness.pop().to, 3);
}

#[test]
fn follower_selection_avoids_the_leader() {
    let mut config = config();
    config.selection = ServerSelection::Followers;
    let (mut harness, server) = opened(config.clone(), &[1, 2, 3], 10, Some(1));
    assert_ne!(server, 1);
    harness.tick(500);
    let keep_alive = harness.pop();
    // The server it is on became the leader: move to a follower.
    harness.answer(&keep_alive, keep_alive_ok(Some(server), &[1, 2, 3]));
    assert!(disconnected(&harness.take_actions(), server));
    let connect = harness.pop();
    assert_ne!(connect.to, server);
    // A one-server cluster: the leader is the only choice.
    let (_, single) = opened(config, &[7], 10, Some(7));
    assert_eq!(single, 7);
}

#[test]
fn any_selection_stays_put_until_its_server_leaves_the_members() {
    let (mut harness, server) = opened(config(), &[1, 2, 3], 10, Some(1));
    harness.tick(500);
    let keep_alive = harness.pop();
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != server).collect();
    harness.answer(&keep_alive, keep_alive_ok(Some(others[0]), &[1, 2, 3]));
    assert!(
        harness.take_actions().is_empty(),
        "a new leader does not move an ANY client"
    );
    harness.tick(1000);
    let keep_alive = harness.pop();
    assert_eq!(keep_alive.to, server);
    harness.answer(&keep_alive, keep_alive_ok(Some(4), &[4, 5]));
    assert_eq!(harness.client.servers(), &ids(&[4, 5])[..]);
    assert!(disconnected(&harness.take_actions(), server));
    let connect = harness.pop();
    assert!([4, 5].contains(&connect.to));
}
