//! Expired sessions: closing, or recovering with a new session.

use super::*;
use crate::client::{ConnectionStrategy, RecoveryStrategy};

fn state_changes(actions: &[ClientAction]) -> Vec<ClientState> {
    actions
        .iter()
        .filter_map(|action| match action {
            ClientAction::StateChanged(state) => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn unknown_session_on_a_command_closes_with_the_close_strategy() {
    let (mut harness, server) = opened(config(), &[1, 2], 10, Some(1));
    harness.command("a");
    harness.command("b");
    let sent = harness.pop_all();
    harness.answer(&sent[0], Err(ClientError::UnknownSession));
    let actions = harness.take_actions();
    assert_eq!(
        state_changes(&actions),
        vec![ClientState::Suspended, ClientState::Closed]
    );
    assert_eq!(
        actions.iter().filter_map(completed).collect::<Vec<_>>(),
        vec![(1, Err(0)), (2, Err(0))]
    );
    assert!(disconnected(&actions, server));
    assert!(harness.outbox.is_empty(), "no unregister, no keep-alive");
    assert_eq!(harness.client.next_wake_ms(), None);
    assert_eq!(harness.client.session(), None);
    assert_eq!(
        harness.submit("c", CommandConsistency::Linearizable),
        Err(SubmitError::Closed)
    );
    harness.answer(&sent[1], command_ok(12, 10, "late"));
    assert!(harness.take_actions().is_empty());
}

#[test]
fn unknown_session_on_a_keep_alive_expires_the_session() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    harness.tick(500);
    let keep_alive = harness.pop();
    assert_eq!(keep_alive.body.name(), "keep-alive");
    harness.answer(&keep_alive, Err(ClientError::UnknownSession));
    assert_eq!(
        state_changes(&harness.take_actions()),
        vec![ClientState::Suspended, ClientState::Closed]
    );
}

#[test]
fn unknown_session_recovers_with_a_new_session_and_resubmits_in_order() {
    let mut config = config();
    config.recovery = RecoveryStrategy::Recover;
    let (mut harness, server) = opened(config, &[1, 2], 10, Some(1));
    for text in ["a", "b", "c"] {
        harness.command(text);
    }
    harness.query("q");
    let sent = harness.pop_all();
    harness.answer(&sent[0], command_ok(11, 10, "a"));
    assert_eq!(harness.take_completions(), vec![(1, Ok("a".into()))]);
    // A query can learn of the expiry too.
    harness.answer(&sent[3], Err(ClientError::UnknownSession));
    assert_eq!(
        harness.take_actions(),
        vec![ClientAction::StateChanged(ClientState::Suspended)]
    );
    assert_eq!(harness.client.session(), None);
    // The old session is dropped at once: the next request registers, on the same server.
    let register = harness.pop();
    assert_eq!(register.to, server);
    assert_eq!(
        register.body,
        RequestBody::Register {
            client: CLIENT,
            timeout_ms: SESSION_TIMEOUT_MS
        }
    );
    assert!(harness.outbox.is_empty());
    harness.answer(&sent[1], command_ok(12, 10, "old session"));
    harness.publish(server, batch(10, 10, 12, &["old event"]));
    assert!(harness.take_actions().is_empty(), "the old session is gone");
    assert_eq!(
        harness.state(),
        ClientState::Suspended,
        "CONNECTED only with a new session"
    );
    harness.answer(&register, register_ok(20, Some(1), &[1, 2]));
    assert_eq!(
        harness.take_actions(),
        vec![
            ClientAction::SessionOpened {
                session: SessionId(20)
            },
            ClientAction::StateChanged(ClientState::Connected),
        ]
    );
    let resent = harness.pop_all();
    let bodies: Vec<RequestBody> = resent.iter().map(|sent| sent.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![
            RequestBody::Command {
                session: SessionId(20),
                sequence: 1,
                operation: bytes("b")
            },
            RequestBody::Command {
                session: SessionId(20),
                sequence: 2,
                operation: bytes("c")
            },
            RequestBody::Query {
                session: SessionId(20),
                sequence: 2,
                index: LogIndex(20),
                consistency: QueryConsistency::Linearizable,
                operation: bytes("q")
            },
        ]
    );
    harness.answer(&resent[2], query_ok(23, 20, "q"));
    harness.answer(&resent[1], command_ok(22, 20, "c"));
    harness.answer(&resent[0], command_ok(21, 20, "b"));
    assert_eq!(
        harness.take_completions(),
        vec![
            (2, Ok("b".into())),
            (3, Ok("c".into())),
            (4, Ok("q".into()))
        ]
    );
    // Keep-alives are for the new session.
    harness.tick(500);
    let keep_alive = harness.pop();
    assert_eq!(
        keep_alive.body,
        RequestBody::KeepAlive {
            session: SessionId(20),
            command_sequence: 2,
            event_index: LogIndex(20)
        }
    );
}

#[test]
fn recovery_that_cannot_register_follows_the_connection_strategy() {
    let mut config = config();
    config.recovery = RecoveryStrategy::Recover;
    config.connection = ConnectionStrategy::Once;
    let (mut harness, _) = opened(config, &[1, 2], 10, Some(1));
    harness.command("a");
    let a = harness.pop();
    harness.answer(&a, Err(ClientError::UnknownSession));
    while let Some(sent) = harness.outbox.pop_front() {
        harness.lost(sent.to);
    }
    let actions = harness.take_actions();
    assert_eq!(
        state_changes(&actions),
        vec![ClientState::Suspended, ClientState::Closed]
    );
    assert_eq!(
        actions.iter().filter_map(completed).collect::<Vec<_>>(),
        vec![(1, Err(0))]
    );
    // The first session's register and one for the new session; connects: the first
    // server's, and the other server's once the first was lost.
    assert_eq!(harness.sent_named("register").len(), 2);
    assert_eq!(harness.sent_named("connect").len(), 2);
}
