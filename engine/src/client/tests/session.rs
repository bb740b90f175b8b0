//! The session's life: registering, operations, keep-alives, closing, bounds.

use super::*;
use crate::client::PENDING_OPERATIONS_MAX;

#[test]
fn registers_then_completes_a_command_and_a_query_in_order() {
    let mut harness = Harness::new(config(), &[1, 2, 3]);
    assert_eq!(harness.state(), ClientState::Closed);
    assert_eq!(harness.client.next_wake_ms(), None);
    harness.open();
    assert_eq!(
        harness.take_actions(),
        vec![ClientAction::StateChanged(ClientState::Suspended)]
    );
    let connect = harness.pop();
    assert_eq!(connect.body, RequestBody::Connect { client: CLIENT });
    harness.answer(&connect, connect_ok(Some(1), &[1, 2, 3]));
    let register = harness.pop();
    assert_eq!(register.to, connect.to, "one server at a time");
    assert_eq!(
        register.body,
        RequestBody::Register {
            client: CLIENT,
            timeout_ms: SESSION_TIMEOUT_MS
        }
    );
    harness.answer(&register, register_ok(10, Some(1), &[1, 2, 3]));
    assert_eq!(
        harness.take_actions(),
        vec![
            ClientAction::SessionOpened {
                session: SessionId(10)
            },
            ClientAction::StateChanged(ClientState::Connected),
        ]
    );
    assert_eq!(harness.client.session(), Some(SessionId(10)));
    assert_eq!(harness.client.leader(), Some(ReplicaId(1)));

    let put = harness.command("put");
    let get = harness.query("get");
    let command = harness.pop();
    let query = harness.pop();
    assert_eq!(command.to, connect.to);
    assert_eq!(
        command.body,
        RequestBody::Command {
            session: SessionId(10),
            sequence: 1,
            operation: bytes("put")
        }
    );
    // The query follows command 1 and has seen the register entry (index 10).
    assert_eq!(
        query.body,
        RequestBody::Query {
            session: SessionId(10),
            sequence: 1,
            index: LogIndex(10),
            consistency: QueryConsistency::Linearizable,
            operation: bytes("get")
        }
    );
    // The query's answer comes first: it waits for the command's.
    harness.answer(&query, query_ok(11, 10, "got"));
    assert!(harness.take_actions().is_empty());
    harness.answer(&command, command_ok(11, 10, "done"));
    assert_eq!(
        harness.take_completions(),
        vec![(put.0, Ok("done".into())), (get.0, Ok("got".into()))]
    );
    // Later queries have seen index 11.
    harness.query("again");
    match harness.pop().body {
        RequestBody::Query {
            index, sequence, ..
        } => {
            assert_eq!((index, sequence), (LogIndex(11), 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_answer_to_an_unknown_request_or_from_another_server_is_ignored() {
    let (mut harness, server) = opened(config(), &[1, 2, 3], 10, Some(1));
    harness.command("a");
    let command = harness.pop();
    let other = if server == 1 { 2 } else { 1 };
    harness.reply(
        other,
        command.request_id,
        command_ok(11, 10, "wrong server"),
    );
    harness.reply(
        server,
        command.request_id + 100,
        command_ok(11, 10, "unknown id"),
    );
    assert!(harness.take_actions().is_empty());
    harness.answer(&command, command_ok(11, 10, "right"));
    harness.answer(&command, command_ok(11, 10, "duplicate"));
    assert_eq!(harness.take_completions(), vec![(1, Ok("right".into()))]);
}

#[test]
fn keep_alives_come_every_half_timeout_and_only_once_a_timeout_while_commands_flow() {
    let mut cluster = FakeCluster::new(1, &[1, 2, 3]);
    let mut harness = Harness::new(config(), &[1, 2, 3]);
    harness.open();
    harness.run_until(2600, &mut cluster);
    let session = harness.client.session().expect("registered at time 0");
    // Commands every 100 ms, each answered at once, from 2600 to 6000.
    let mut at = 2600;
    while at <= 6000 {
        harness.run_until(at, &mut cluster);
        harness.command("x");
        harness.serve(&mut cluster);
        at += 100;
    }
    harness.run_until(7600, &mut cluster);
    let keep_alives = harness.sent_named("keep-alive");
    let times: Vec<u64> = keep_alives.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        times,
        vec![500, 1000, 1500, 2000, 2500, 3500, 4500, 5500, 6500, 7000, 7500]
    );
    // Each acknowledges what had been answered by then.
    let acked: Vec<u64> = keep_alives
        .iter()
        .map(|(_, body)| match body {
            RequestBody::KeepAlive {
                session: of,
                command_sequence,
                event_index,
            } => {
                assert_eq!((*of, *event_index), (session, session.index()));
                *command_sequence
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(acked, vec![0, 0, 0, 0, 0, 9, 19, 29, 35, 35, 35]);
    assert_eq!(harness.state(), ClientState::Connected);
    assert_eq!(cluster.applications.len(), 35, "each command applied once");
}

#[test]
fn no_answer_for_a_session_timeout_makes_the_session_unstable() {
    let mut config = config();
    config.request_timeout_ms = 5 * SESSION_TIMEOUT_MS;
    let (mut harness, _) = opened(config, &[1], 10, Some(1));
    harness.tick(500);
    let keep_alive = harness.pop();
    assert_eq!(keep_alive.body.name(), "keep-alive");
    harness.tick(999);
    assert_eq!(harness.state(), ClientState::Connected);
    harness.tick(1000);
    assert_eq!(
        harness.take_actions(),
        vec![ClientAction::StateChanged(ClientState::Suspended)]
    );
    harness.answer(&keep_alive, keep_alive_ok(Some(1), &[1]));
    assert_eq!(
        harness.take_actions(),
        vec![ClientAction::StateChanged(ClientState::Connected)]
    );
}

#[test]
fn a_command_failing_for_good_completes_and_its_sequence_is_filled_with_a_no_op() {
    let (mut harness, server) = opened(config(), &[1], 10, Some(1));
    harness.command("a");
    harness.command("b");
    let a = harness.pop();
    let b = harness.pop();
    harness.answer(
        &a,
        Err(ClientError::Internal {
            reason: "disk".into(),
        }),
    );
    assert_eq!(harness.take_completions(), vec![(1, Err(7))]);
    // Sequence 1 goes again, empty: the server logs a no-op for it.
    let filler = harness.pop();
    assert_eq!(filler.to, server);
    assert_eq!(command_of(&filler.body), (1, String::new()));
    harness.answer(&b, command_ok(12, 10, "b"));
    harness.answer(&filler, command_ok(11, 10, ""));
    assert_eq!(harness.take_completions(), vec![(2, Ok("b".into()))]);
    // Both sequences are acknowledged by the next keep-alive.
    harness.tick(1000);
    let keep_alive = harness.pop();
    assert!(matches!(
        keep_alive.body,
        RequestBody::KeepAlive {
            command_sequence: 2,
            ..
        }
    ));
}

#[test]
fn a_filler_that_keeps_failing_backs_off() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    harness.command("a");
    let mut failures = 0;
    loop {
        while let Some(sent) = harness.outbox.pop_front() {
            match sent.body.name() {
                "keep-alive" => harness.answer(&sent, keep_alive_ok(Some(1), &[1])),
                "command" => {
                    failures += 1;
                    harness.answer(&sent, Err(ClientError::Internal { reason: "x".into() }));
                }
                other => panic!("{other}"),
            }
        }
        if failures == 6 {
            break;
        }
        let wake = harness.client.next_wake_ms().expect("a retry is due");
        harness.tick(wake);
    }
    let times: Vec<u64> = harness
        .sent_log
        .iter()
        .filter(|sent| sent.body.name() == "command")
        .map(|sent| sent.at_ms)
        .collect();
    // The command, then its filler at once, then 1, 1, 2, 3 s apart.
    assert_eq!(times, vec![0, 0, 1000, 2000, 4000, 7000]);
    assert_eq!(
        harness.take_completions(),
        vec![(1, Err(7))],
        "completed once"
    );
}

#[test]
fn an_application_error_is_an_answer() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    harness.command("a");
    let a = harness.pop();
    let error = crate::session::ApplicationError {
        message: "no".into(),
    };
    harness.answer(&a, Err(ClientError::Application(error)));
    assert_eq!(harness.take_completions(), vec![(1, Err(4))]);
    assert!(harness.outbox.is_empty(), "nothing resent");
}

#[test]
fn close_completes_pending_operations_and_unregisters() {
    let (mut harness, server) = opened(config(), &[1, 2], 10, Some(1));
    harness.command("a");
    harness.command("b");
    let a = harness.pop();
    let _b = harness.pop();
    harness.close();
    assert_eq!(harness.take_completions(), vec![(1, Err(0)), (2, Err(0))]);
    let unregister = harness.pop();
    assert_eq!(
        (unregister.to, unregister.body.clone()),
        (
            server,
            RequestBody::Unregister {
                session: SessionId(10)
            }
        )
    );
    assert_eq!(
        harness.submit("c", CommandConsistency::Linearizable),
        Err(SubmitError::Closed)
    );
    // A late answer to a closed operation changes nothing.
    harness.answer(&a, command_ok(11, 10, "a"));
    assert!(harness.take_actions().is_empty());
    harness.answer(&unregister, Ok(ResponseBody::Unregister));
    let actions = harness.take_actions();
    assert!(disconnected(&actions, server));
    assert_eq!(
        actions.last(),
        Some(&ClientAction::StateChanged(ClientState::Closed))
    );
    assert_eq!(harness.client.next_wake_ms(), None);
    assert!(harness.outbox.is_empty());
}

#[test]
fn a_close_that_fails_suspends_and_keeps_retrying() {
    let (mut harness, _) = opened(config(), &[1, 2], 10, Some(1));
    harness.close();
    // No server answers the unregister: one pass over both, then SUSPENDED.
    let mut unregisters = 0;
    while harness.state() == ClientState::Connected {
        let sent = harness.pop();
        if sent.body.name() == "unregister" {
            unregisters += 1;
        }
        harness.lost(sent.to);
        assert!(unregisters <= 2);
    }
    assert_eq!(harness.state(), ClientState::Suspended);
    assert!(harness.outbox.is_empty());
    assert!(
        harness.sent_named("keep-alive").is_empty(),
        "closing sends no keep-alives"
    );
    // One second later it tries again, and this time a server answers.
    harness.tick(999);
    assert!(harness.outbox.is_empty());
    harness.tick(1000);
    let server = reconnect(&mut harness, Some(1), &[1, 2]);
    let unregister = harness.pop();
    assert_eq!(unregister.to, server);
    assert_eq!(
        unregister.body,
        RequestBody::Unregister {
            session: SessionId(10)
        }
    );
    harness.answer(&unregister, Ok(ResponseBody::Unregister));
    assert_eq!(harness.state(), ClientState::Closed);
}

#[test]
fn a_close_answered_with_unknown_session_is_done() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    harness.close();
    let unregister = harness.pop();
    harness.answer(&unregister, Err(ClientError::UnknownSession));
    assert_eq!(harness.state(), ClientState::Closed);
    assert!(harness.outbox.is_empty());
}

#[test]
fn submissions_before_open_or_beyond_the_bound_are_refused_without_sending() {
    let mut harness = Harness::new(config(), &[1]);
    assert_eq!(
        harness.submit("early", CommandConsistency::Linearizable),
        Err(SubmitError::Closed)
    );
    assert!(harness.outbox.is_empty());
    harness.open();
    // Operations submitted while registering wait for the session.
    for _ in 0..PENDING_OPERATIONS_MAX {
        harness.command("x");
    }
    assert_eq!(
        harness.submit("one too many", CommandConsistency::Linearizable),
        Err(SubmitError::TooManyPending {
            pending_max: PENDING_OPERATIONS_MAX
        })
    );
    assert_eq!(harness.client.pending_count(), PENDING_OPERATIONS_MAX);
    harness.establish(10, Some(1), &[1]);
    let sequences: Vec<u64> = harness
        .pop_all()
        .iter()
        .map(|sent| command_of(&sent.body).0)
        .collect();
    assert_eq!(sequences, (1..=1024).collect::<Vec<u64>>());
}

#[test]
fn an_unstable_session_closes_after_the_unstability_timeout() {
    let mut config = config();
    config.unstability_timeout_ms = 3000;
    let (mut harness, _) = opened(config, &[1, 2], 10, Some(1));
    harness.command("a");
    harness.take_actions();
    // Both servers go away: after one pass the session is unstable.
    let mut now = 0;
    while harness.state() == ClientState::Connected {
        let sent = harness.pop();
        harness.lost(sent.to);
    }
    assert_eq!(
        harness.take_actions().last(),
        Some(&ClientAction::StateChanged(ClientState::Suspended))
    );
    // Retries keep failing; at 3000 ms the client gives up.
    while harness.state() != ClientState::Closed {
        while let Some(sent) = harness.outbox.pop_front() {
            harness.lost(sent.to);
        }
        now = harness.client.next_wake_ms().expect("a timer runs");
        harness.tick(now);
    }
    assert_eq!(now, 3000);
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
