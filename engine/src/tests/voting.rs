//! Votes: one per term, sent only once durable, and only for an up-to-date log.

use super::harness::*;
use crate::{PlantedBugs, Replica, Role, Term};

/// Replica 2 of {1, 2, 3} holding entries of terms [1, 2], at term 2, past its start-up
/// lease.
fn voter_with_log(bugs: PlantedBugs) -> Replica {
    let mut settings = config(2);
    settings.planted_bugs = bugs;
    let mut voter = restored_with(
        settings,
        voters(&[1, 2, 3]),
        hard_state(2, None),
        log_with_terms(&[1, 2]),
    );
    past_start_lease(&mut voter);
    voter
}

/// A fresh replica 2 of {1, 2, 3}, past its start-up lease.
fn fresh_voter() -> Replica {
    let mut voter = fresh(2, voters(&[1, 2, 3]));
    past_start_lease(&mut voter);
    voter
}

#[test]
fn grants_one_vote_per_term_and_sends_it_only_once_durable() {
    let mut voter = fresh_voter();
    let actions = deliver(&mut voter, 1, vote(1, 1, (0, 0)));
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(1, None)), vec![]),
            persist(2, Some(hard_state(1, Some(1))), vec![]),
            role_changed(Role::Follower, 1, None),
        ],
    );
    assert_eq!(voter.hard_state(), hard_state(1, Some(1)));
    // A rival in the same term is refused at once, even before the first vote is durable.
    let actions = deliver(&mut voter, 3, vote(1, 3, (0, 0)));
    assert_actions(&actions, &[send(3, vote_answer(1, false))]);
    // The granted vote goes out only once persist 2 is durable.
    assert_actions(&persisted(&mut voter, 1), &[]);
    assert_actions(&persisted(&mut voter, 2), &[send(1, vote_answer(1, true))]);
    assert_eq!(voter.hard_state(), hard_state(1, Some(1)));
}

#[test]
fn repeated_request_from_the_same_candidate_is_granted_again() {
    let mut voter = fresh_voter();
    deliver(&mut voter, 1, vote(1, 1, (0, 0)));
    persist_all(&mut voter);
    let mut actions = deliver(&mut voter, 1, vote(1, 1, (0, 0)));
    actions.extend(persist_all(&mut voter));
    assert_eq!(sends(&actions).len(), 1);
    assert!(matches!(
        &sends(&actions)[0],
        (1, crate::Message::VoteResponse(response)) if response.granted
    ));
}

#[test]
fn a_new_term_frees_the_vote() {
    let mut voter = fresh_voter();
    deliver(&mut voter, 1, vote(1, 1, (0, 0)));
    persist_all(&mut voter);
    let actions = deliver(&mut voter, 3, vote(2, 3, (0, 0)));
    assert_actions(
        &actions,
        &[
            persist(3, Some(hard_state(2, None)), vec![]),
            persist(4, Some(hard_state(2, Some(3))), vec![]),
            role_changed(Role::Follower, 2, None),
        ],
    );
    assert_actions(&persisted(&mut voter, 4), &[send(3, vote_answer(2, true))]);
}

#[test]
fn rejects_a_candidate_whose_last_term_is_older() {
    let mut voter = voter_with_log(PlantedBugs::default());
    // Longer log, but its last entry is of term 1: less up to date than [1, 2].
    let actions = deliver(&mut voter, 1, vote(3, 1, (5, 1)));
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(3, None)), vec![]),
            send(1, vote_answer(3, false)),
            role_changed(Role::Follower, 3, None),
        ],
    );
    assert_eq!(
        voter.hard_state(),
        hard_state(3, None),
        "term adopted, no vote given"
    );
}

#[test]
fn rejects_a_candidate_with_a_shorter_log_of_the_same_last_term() {
    let mut voter = voter_with_log(PlantedBugs::default());
    let actions = deliver(&mut voter, 1, vote(3, 1, (1, 2)));
    assert_eq!(sends(&actions).len(), 1);
    assert!(matches!(&sends(&actions)[0], (1, crate::Message::VoteResponse(r)) if !r.granted));
    // The same term, a log as long as ours: granted.
    let actions = deliver(&mut voter, 3, vote(3, 3, (2, 2)));
    assert_eq!(voter.hard_state(), hard_state(3, Some(3)));
    assert!(
        sends(&actions).is_empty(),
        "the grant waits for the persist"
    );
}

#[test]
fn planted_bug_vote_any_log_is_caught_by_the_up_to_date_check() {
    let bugs = PlantedBugs {
        vote_any_log: true,
        ..PlantedBugs::default()
    };
    let mut voter = voter_with_log(bugs);
    deliver(&mut voter, 1, vote(3, 1, (5, 1)));
    assert_eq!(
        voter.hard_state().vote,
        Some(rid(1)),
        "the bug grants the stale candidate"
    );
}

#[test]
fn planted_bug_vote_without_persist_sends_the_vote_at_once() {
    let bugs = PlantedBugs {
        vote_without_persist: true,
        ..PlantedBugs::default()
    };
    let mut settings = config(2);
    settings.planted_bugs = bugs;
    let mut voter = restored_with(settings, voters(&[1, 2, 3]), hard_state(0, None), vec![]);
    past_start_lease(&mut voter);
    let actions = deliver(&mut voter, 1, vote(1, 1, (0, 0)));
    assert_eq!(
        sends(&actions).len(),
        1,
        "the bug answers before the vote is durable"
    );
}

#[test]
fn leader_and_candidate_do_not_vote_for_rivals_in_their_term() {
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    // Outside its lease a leader must still refuse a same-term vote.
    let actions = deliver(&mut leader, 3, vote(1, 3, (9, 1)));
    assert_actions(&actions, &[send(3, vote_answer(1, false))]);
    assert_eq!(leader.role(), Role::Leader);
    assert_eq!(leader.term(), Term(1));
}
