//! Session events against responses, as the client delivers them.

use super::*;

/// Events as `name@index` and completions as `c:operation`.
fn trace(actions: &[ClientAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|action| match action {
            ClientAction::Event {
                session,
                event_index,
                event,
            } => {
                assert_eq!(*session, SessionId(10));
                Some(format!("{}@{}", event.name, event_index.0))
            }
            ClientAction::Complete { operation, .. } => Some(format!("c:{}", operation.0)),
            _ => None,
        })
        .collect()
}

fn resets(sent: &[Sent]) -> Vec<u64> {
    sent.iter()
        .filter_map(|sent| match sent.body {
            RequestBody::ResetEvents { session, index } => {
                assert_eq!(session, SessionId(10));
                Some(index.0)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn events_deliver_at_once_when_nothing_is_pending_and_duplicates_are_ignored() {
    let (mut harness, server) = opened(config(), &[1], 10, Some(1));
    harness.publish(server, batch(10, 10, 12, &["a", "b"]));
    harness.publish(server, batch(10, 10, 12, &["a", "b"]));
    harness.publish(server, batch(99, 10, 13, &["other session"]));
    harness.publish(server, batch(10, 12, 14, &["c"]));
    assert_eq!(trace(&harness.take_actions()), vec!["a@12", "b@12", "c@14"]);
    assert!(harness.outbox.is_empty());
    // Keep-alives acknowledge the batches received.
    harness.tick(500);
    assert_eq!(
        harness.pop().body,
        RequestBody::KeepAlive {
            session: SessionId(10),
            command_sequence: 0,
            event_index: LogIndex(14)
        }
    );
}

#[test]
fn a_response_waits_for_the_events_published_before_it() {
    let (mut harness, server) = opened(config(), &[1], 10, Some(1));
    harness.command("a");
    let a = harness.pop();
    // The command ran after batch 12, which has not arrived.
    harness.answer(&a, command_ok(13, 12, "a"));
    assert!(harness.take_actions().is_empty());
    harness.publish(server, batch(10, 10, 12, &["x"]));
    assert_eq!(trace(&harness.take_actions()), vec!["x@12", "c:1"]);
}

#[test]
fn events_published_after_a_pending_operation_ran_wait_for_its_response() {
    let (mut harness, server) = opened(config(), &[1], 10, Some(1));
    harness.command("a");
    let a = harness.pop();
    // Batch 12 arrives while command 1 is pending: it may have been published after it.
    harness.publish(server, batch(10, 10, 12, &["x"]));
    assert!(harness.take_actions().is_empty());
    harness.answer(&a, command_ok(11, 10, "a"));
    assert_eq!(trace(&harness.take_actions()), vec!["c:1", "x@12"]);
}

#[test]
fn a_query_sees_the_events_of_its_own_index_first() {
    let (mut harness, server) = opened(config(), &[1], 10, Some(1));
    harness.query("q");
    let q = harness.pop();
    harness.publish(server, batch(10, 10, 12, &["x"]));
    harness.answer(&q, query_ok(12, 12, "q"));
    assert_eq!(trace(&harness.take_actions()), vec!["x@12", "c:1"]);
}

#[test]
fn a_sequential_command_does_not_wait_for_events() {
    let (mut harness, _) = opened(config(), &[1], 10, Some(1));
    harness
        .submit("a", CommandConsistency::Sequential)
        .expect("open");
    let a = harness.pop();
    harness.answer(&a, command_ok(13, 12, "a"));
    assert_eq!(trace(&harness.take_actions()), vec!["c:1"]);
}

#[test]
fn a_gap_asks_for_one_reset_and_the_resend_fills_it() {
    let (mut harness, server) = opened(config(), &[1], 10, Some(1));
    harness.publish(server, batch(10, 10, 12, &["a"]));
    // Batch 14 is lost; 16 and 18 follow it.
    harness.publish(server, batch(10, 14, 16, &["c"]));
    harness.publish(server, batch(10, 16, 18, &["d"]));
    assert_eq!(
        resets(&harness.pop_all()),
        vec![12],
        "one reset for one gap"
    );
    assert_eq!(trace(&harness.take_actions()), vec!["a@12"]);
    // The server resends everything after 12.
    for (previous, index, name) in [(12, 14, "b"), (14, 16, "c"), (16, 18, "d")] {
        harness.publish(server, batch(10, previous, index, &[name]));
    }
    assert_eq!(trace(&harness.take_actions()), vec!["b@14", "c@16", "d@18"]);
    assert!(harness.outbox.is_empty());
}

#[test]
fn a_missing_event_is_asked_for_then_sought_elsewhere_and_holds_the_response() {
    let (mut harness, server) = opened(config(), &[1, 2], 10, Some(1));
    harness.command("a");
    let a = harness.pop();
    harness.answer(&a, command_ok(13, 12, "a"));
    // A request timeout without the batch: a reset to the same server.
    let mut now = REQUEST_TIMEOUT_MS;
    harness.tick(now);
    assert!(
        harness.take_completions().is_empty(),
        "released ahead of its events"
    );
    let sent = harness.pop_all();
    assert_eq!(resets(&sent), vec![10]);
    assert!(sent.iter().all(|sent| sent.to == server));
    // Another timeout: this server does not have it; the client moves to the other one,
    // which pushes every unacknowledged batch when the client connects.
    now += REQUEST_TIMEOUT_MS;
    harness.tick(now);
    assert!(
        harness.take_completions().is_empty(),
        "released ahead of its events"
    );
    let sent = harness.pop_all();
    let other = if server == 1 { 2 } else { 1 };
    assert!(
        sent.iter()
            .any(|sent| sent.to == other && matches!(sent.body, RequestBody::Connect { .. })),
        "moved to server {other}: {:?}",
        sent.iter()
            .map(|sent| (sent.to, sent.body.name()))
            .collect::<Vec<_>>()
    );
    // The batch comes (twice): delivered once, then the response.
    harness.publish(other, batch(10, 10, 12, &["x"]));
    harness.publish(other, batch(10, 10, 12, &["x"]));
    assert_eq!(trace(&harness.take_actions()), vec!["x@12", "c:1"]);
}
