//! Restart: what a replica rebuilt from its durable hard state and log keeps, and what a
//! crash before a persist completes may lose without breaking a promise.

use super::harness::*;
use crate::message::Message;
use crate::{LogIndex, MemberType, Role, Term};

#[test]
fn restarted_voter_keeps_its_vote() {
    let configuration = voters(&[1, 2, 3]);
    let mut store = Store::default();
    let mut voter = fresh(2, configuration.clone());
    past_start_lease(&mut voter);
    store.execute(&deliver(&mut voter, 1, vote(1, 1, (0, 0))));
    // Crash once the vote is written but before `on_persisted`: no answer went out.
    let mut voter = restored(2, configuration, store.hard_state, store.entries.clone());
    past_start_lease(&mut voter);
    assert_eq!(voter.hard_state(), hard_state(1, Some(1)));
    assert_eq!(voter.role(), Role::Follower);
    assert_actions(
        &deliver(&mut voter, 3, vote(1, 3, (0, 0))),
        &[send(3, vote_answer(1, false))],
    );
    // The candidate it voted for may ask again and is granted again.
    let mut actions = deliver(&mut voter, 1, vote(1, 1, (0, 0)));
    actions.extend(persist_all(&mut voter));
    assert!(matches!(&sends(&actions)[..], [(1, Message::VoteResponse(r))] if r.granted));
}

#[test]
fn vote_lost_in_a_crash_before_persist_was_never_sent() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.node_mut(2).hold_persists = true;
    cluster.cut.insert(3);
    cluster.past_start_lease();
    let now_ms = cluster.now_ms;
    cluster.node_mut(1).replica.election_deadline_ms = now_ms;
    cluster.input(1, |replica, actions| replica.tick(at(now_ms), actions));
    cluster.deliver_all();
    // Replica 2 granted the poll and then the vote, whose persist is still held.
    assert_eq!(cluster.replica(1).role(), Role::Candidate);
    assert_eq!(cluster.replica(2).hard_state(), hard_state(1, Some(1)));
    assert!(!cluster
        .delivered_to(1)
        .iter()
        .any(|e| matches!(e.message, Message::VoteResponse(_))));
    cluster.restart(2);
    assert_eq!(
        cluster.replica(2).hard_state(),
        hard_state(0, None),
        "the vote never hit disk"
    );
    assert_eq!(
        cluster.replica(1).role(),
        Role::Candidate,
        "no vote was counted"
    );
}

#[test]
fn held_vote_goes_out_once_released() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.node_mut(2).hold_persists = true;
    cluster.node_mut(3).hold_persists = true;
    cluster.past_start_lease();
    let now_ms = cluster.now_ms;
    cluster.node_mut(1).replica.election_deadline_ms = now_ms;
    cluster.input(1, |replica, actions| replica.tick(at(now_ms), actions));
    cluster.deliver_all();
    assert_eq!(cluster.replica(1).role(), Role::Candidate);
    cluster.release(3);
    cluster.deliver_all();
    assert_eq!(cluster.replica(1).role(), Role::Leader);
    assert_eq!(cluster.node(3).store.hard_state, hard_state(1, Some(1)));
    assert_eq!(
        cluster.node(2).store.hard_state,
        hard_state(0, None),
        "2's writes still held"
    );
}

#[test]
fn restarted_follower_keeps_its_log_and_catches_up_on_commit() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    for payload in ["a", "b"] {
        cluster.submit(1, payload);
    }
    cluster.advance(HEARTBEAT_INTERVAL_MS);
    let log_before = cluster.replica(2).log().range(LogIndex(1), LogIndex(3));
    let hard_state_before = cluster.replica(2).hard_state();
    cluster.restart(2);
    let replica = cluster.replica(2);
    assert_eq!(replica.log().range(LogIndex(1), LogIndex(3)), log_before);
    assert_eq!(replica.hard_state(), hard_state_before);
    assert_eq!(
        replica.commit_index(),
        LogIndex(0),
        "the commit index is not durable"
    );
    cluster.advance(2 * HEARTBEAT_INTERVAL_MS);
    assert_eq!(cluster.replica(2).commit_index(), LogIndex(3));
    assert_eq!(
        cluster.node(2).applied,
        cluster.node(1).applied,
        "re-applied from the start"
    );
    assert_eq!(cluster.leaders(), vec![1]);
}

#[test]
fn store_matches_the_log_after_a_truncating_append_and_a_restart() {
    let configuration = voters(&[1, 2, 3]);
    let mut store = Store {
        hard_state: hard_state(2, None),
        entries: log_with_terms(&[1, 2, 2]),
    };
    let mut follower = restored(
        2,
        configuration.clone(),
        store.hard_state,
        store.entries.clone(),
    );
    let new = vec![command(2, 3, "x")];
    store.execute(&deliver(&mut follower, 1, append(3, 1, (1, 1), new, 0)));
    let restarted = restored(2, configuration, store.hard_state, store.entries.clone());
    assert_eq!(terms_of(&restarted), vec![1, 3]);
    assert_eq!(terms_of(&restarted), terms_of(&follower));
    assert_eq!(restarted.hard_state(), hard_state(3, None));
}

#[test]
fn restored_entries_newer_than_the_hard_state_set_the_term_without_a_vote() {
    let replica = restored(
        2,
        voters(&[1, 2, 3]),
        hard_state(1, Some(1)),
        log_with_terms(&[1, 2]),
    );
    assert_eq!(replica.hard_state(), hard_state(2, None));
}

#[test]
fn configuration_entry_in_the_log_overrides_the_bootstrap_configuration() {
    let logged = members(&[
        (1, MemberType::Active),
        (2, MemberType::Active),
        (3, MemberType::Active),
        (4, MemberType::Active),
    ]);
    let entries = vec![initialize(1, 1, 0), configuration_entry(2, 1, &logged)];
    let mut replica = restored(1, voters(&[1, 2, 3]), hard_state(1, None), entries);
    let configuration = replica.configuration();
    assert_eq!(
        (configuration.index, configuration.term),
        (LogIndex(2), Term(1))
    );
    assert_eq!(configuration.members, logged.members);
    let polls = tick(&mut replica, TIMER_FIRED_MS);
    let receivers: Vec<u64> = sends(&polls).into_iter().map(|(to, _)| to).collect();
    assert_eq!(receivers, vec![2, 3, 4]);
}

#[test]
fn configuration_entry_in_the_log_sets_the_role() {
    let logged = members(&[(1, MemberType::Active), (2, MemberType::Passive)]);
    let entries = vec![initialize(1, 1, 0), configuration_entry(2, 1, &logged)];
    let mut replica = restored(2, voters(&[1, 2]), hard_state(1, None), entries);
    assert_eq!(replica.role(), Role::Passive);
    assert_actions(&tick(&mut replica, TIMER_FIRED_MS), &[]);
}

#[test]
fn restarted_leader_comes_back_as_a_follower_of_the_same_term() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    cluster.restart(1);
    let replica = cluster.replica(1);
    assert_eq!(replica.role(), Role::Follower);
    assert_eq!(replica.hard_state(), hard_state(1, Some(1)));
    assert_eq!(replica.log().last_index(), LogIndex(1));
    // It can lead again, in a later term, once followers stop hearing from it.
    cluster.advance(2 * ELECTION_TIMEOUT_MS + 500);
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1);
    assert!(cluster.replica(leaders[0]).term() > Term(1));
}
