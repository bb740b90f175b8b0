//! Elections: the follower's timer, pre-vote polls, candidacy, winning, pre-vote against
//! disruptive servers, and a leader stepping down when cut off from a majority.

use super::harness::*;
use crate::{Action, HardState, LogIndex, Role, Term};

const T: u64 = ELECTION_TIMEOUT_MS;

#[test]
fn election_timer_fires_at_least_t_and_less_than_2t_after_start() {
    let mut fire_times = Vec::new();
    for seed in 0..16 {
        let mut settings = config(1);
        settings.seed = seed;
        let mut replica = restored_with(
            settings,
            voters(&[1, 2, 3]),
            HardState::default(),
            Vec::new(),
        );
        assert_actions(&tick(&mut replica, T - 1), &[]);
        let fired = (T..2 * T).find(|&ms| !tick(&mut replica, ms).is_empty());
        let fired = fired.unwrap_or_else(|| panic!("seed {seed}: no poll before 2T"));
        fire_times.push(fired);
    }
    fire_times.sort_unstable();
    fire_times.dedup();
    assert!(fire_times.len() >= 8, "timers are jittered: {fire_times:?}");
}

#[test]
fn election_timer_restarts_when_the_leader_is_heard() {
    for seed in 0..8 {
        let mut settings = config(2);
        settings.seed = seed;
        let mut replica = restored_with(
            settings,
            voters(&[1, 2, 3]),
            HardState::default(),
            Vec::new(),
        );
        tick(&mut replica, 500);
        deliver(&mut replica, 1, append(1, 1, (0, 0), vec![], 0));
        persist_all(&mut replica);
        assert_actions(&tick(&mut replica, 500 + T - 1), &[]);
        let fired = (500 + T..500 + 2 * T).find(|&ms| !tick(&mut replica, ms).is_empty());
        assert!(
            fired.is_some(),
            "seed {seed}: no poll within 2T of the last append"
        );
    }
}

/// Replica 1 of {1, 2, 3} holding one entry of term 1, after its timer fired.
fn polling() -> crate::Replica {
    let mut replica = restored(
        1,
        voters(&[1, 2, 3]),
        hard_state(1, None),
        log_with_terms(&[1]),
    );
    let actions = tick(&mut replica, TIMER_FIRED_MS);
    let request = poll(2, 1, (1, 1));
    assert_actions(&actions, &[send(2, request.clone()), send(3, request)]);
    replica
}

#[test]
fn timer_sends_polls_without_changing_term_or_vote() {
    let replica = polling();
    assert_eq!(replica.term(), Term(1));
    assert_eq!(replica.hard_state(), hard_state(1, None));
    assert_eq!(replica.role(), Role::Follower);
}

#[test]
fn rejected_or_stale_poll_answers_do_not_make_a_candidate() {
    let mut replica = polling();
    assert_actions(&deliver(&mut replica, 2, poll_answer(1, false)), &[]);
    assert_actions(
        &deliver(&mut replica, 3, poll_answer(5, false)),
        &[
            persist(1, Some(hard_state(5, None)), vec![]),
            role_changed(Role::Follower, 5, None),
        ],
    );
    assert_eq!(replica.role(), Role::Follower);
}

#[test]
fn poll_majority_makes_a_candidate_whose_vote_requests_wait_for_persist() {
    let mut replica = polling();
    let actions = deliver(&mut replica, 2, poll_answer(2, true));
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(2, Some(1))), vec![]),
            role_changed(Role::Candidate, 2, None),
        ],
    );
    assert_eq!(replica.hard_state(), hard_state(2, Some(1)));
    let actions = persisted(&mut replica, 1);
    let request = vote(2, 1, (1, 1));
    assert_actions(&actions, &[send(2, request.clone()), send(3, request)]);
}

#[test]
fn candidate_with_a_majority_leads_and_appends_initialize() {
    let mut replica = polling();
    deliver(&mut replica, 2, poll_answer(2, true));
    persisted(&mut replica, 1);
    let actions = deliver(&mut replica, 3, vote_answer(2, true));
    let first = initialize(2, 2, TIMER_FIRED_MS);
    // The no-op's appends start confirmation round 1.
    let request = in_round(append(2, 1, (1, 1), vec![first.clone()], 0), 1);
    assert_actions(
        &actions,
        &[
            persist(2, None, vec![first]),
            send(2, request.clone()),
            send(3, request),
            role_changed(Role::Leader, 2, Some(1)),
        ],
    );
    assert_eq!(replica.leader(), Some(rid(1)));
}

#[test]
fn candidate_ignores_rejections_and_answers_of_other_terms() {
    let mut replica = polling();
    deliver(&mut replica, 2, poll_answer(2, true));
    persisted(&mut replica, 1);
    assert_actions(&deliver(&mut replica, 2, vote_answer(2, false)), &[]);
    assert_actions(&deliver(&mut replica, 3, vote_answer(1, true)), &[]);
    assert_eq!(replica.role(), Role::Candidate);
}

#[test]
fn single_node_cluster_elects_itself_and_commits_alone() {
    let mut replica = fresh(1, voters(&[1]));
    let actions = tick(&mut replica, TIMER_FIRED_MS);
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(1, Some(1))), vec![]),
            role_changed(Role::Candidate, 1, None),
        ],
    );
    let first = initialize(1, 1, TIMER_FIRED_MS);
    assert_actions(
        &persisted(&mut replica, 1),
        &[
            persist(2, None, vec![first.clone()]),
            role_changed(Role::Leader, 1, Some(1)),
        ],
    );
    assert_actions(
        &persisted(&mut replica, 2),
        &[committed(1), apply(vec![first])],
    );
    let (index, actions) = submit(&mut replica, "x");
    assert_eq!(index, LogIndex(2));
    let mut entry = command(2, 1, "x");
    entry.timestamp_ms = TIMER_FIRED_MS;
    assert_actions(&actions, &[persist(3, None, vec![entry.clone()])]);
    assert_actions(
        &persisted(&mut replica, 3),
        &[committed(2), apply(vec![entry])],
    );
}

/// Replica 2 of {1, 2, 3} that heard leader 1 of term 1 at time 100.
fn follower_of_leader_one() -> crate::Replica {
    let mut replica = fresh(2, voters(&[1, 2, 3]));
    tick(&mut replica, 100);
    deliver(&mut replica, 1, append(1, 1, (0, 0), vec![], 0));
    persist_all(&mut replica);
    assert_eq!(replica.leader(), Some(rid(1)));
    replica
}

#[test]
fn follower_in_lease_rejects_polls_and_ignores_higher_term_vote_requests() {
    let mut replica = follower_of_leader_one();
    assert_actions(&tick(&mut replica, 100 + T - 1), &[]);
    let actions = deliver(&mut replica, 3, poll(2, 3, (0, 0)));
    assert_actions(&actions, &[send(3, poll_answer(1, false))]);
    let actions = deliver(&mut replica, 3, vote(2, 3, (0, 0)));
    assert_actions(&actions, &[]);
    assert_eq!(replica.hard_state(), hard_state(1, None));
    assert_eq!(replica.leader(), Some(rid(1)));
}

#[test]
fn follower_without_a_leader_grants_a_poll_without_changing_term() {
    let mut replica = fresh(2, voters(&[1, 2, 3]));
    past_start_lease(&mut replica);
    let actions = deliver(&mut replica, 3, poll(1, 3, (0, 0)));
    assert_actions(&actions, &[send(3, poll_answer(1, true))]);
    assert_eq!(replica.hard_state(), HardState::default());
}

#[test]
fn leader_in_lease_rejects_polls() {
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    let actions = deliver(&mut leader, 3, poll(2, 3, (5, 1)));
    assert_actions(&actions, &[send(3, poll_answer(1, false))]);
    assert_actions(&deliver(&mut leader, 3, vote(2, 3, (5, 1))), &[]);
    assert_eq!(leader.role(), Role::Leader);
}

#[test]
fn follower_that_hears_the_leader_abandons_its_poll() {
    let mut replica = follower_of_leader_one();
    // The leader stalls: the follower's timer fires and it polls for term 2.
    let polls = tick(&mut replica, 100 + 2 * T);
    assert_eq!(sends(&polls).len(), 2);
    // The leader's heartbeat arrives after all.
    deliver(&mut replica, 1, append(1, 1, (0, 0), vec![], 0));
    assert_eq!(replica.leader(), Some(rid(1)));
    // A late grant (from a server that had lost the leader too) must not start an election.
    let actions = deliver(&mut replica, 3, poll_answer(2, true));
    assert_actions(&actions, &[]);
    assert_eq!(replica.role(), Role::Follower);
    assert_eq!(replica.term(), Term(1));
}

#[test]
fn leader_steps_down_after_two_election_timeouts_without_a_majority() {
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    let elected_ms = TIMER_FIRED_MS;
    let heartbeats = tick(&mut leader, elected_ms + 2 * T);
    assert_eq!(appends_to(&heartbeats, 2).len(), 1);
    assert_eq!(leader.role(), Role::Leader);
    let actions = tick(&mut leader, elected_ms + 2 * T + 1);
    assert_actions(&actions, &[role_changed(Role::Follower, 1, None)]);
    assert!(crate::SubmitError::NotLeader { leader: None } == submit_error(&mut leader));
}

#[test]
fn leader_that_hears_a_majority_keeps_leading() {
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    tick(&mut leader, TIMER_FIRED_MS + T);
    deliver(&mut leader, 2, accepted(1, 1));
    tick(&mut leader, TIMER_FIRED_MS + T + 1);
    let actions = tick(&mut leader, TIMER_FIRED_MS + 2 * T + 1);
    assert!(!actions
        .iter()
        .any(|action| matches!(action, Action::RoleChanged { .. })));
    assert_eq!(leader.role(), Role::Leader);
    tick(&mut leader, TIMER_FIRED_MS + 3 * T);
    assert_eq!(leader.role(), Role::Leader);
    tick(&mut leader, TIMER_FIRED_MS + 3 * T + 1);
    assert_eq!(
        leader.role(),
        Role::Follower,
        "no contact since T after election"
    );
}

fn submit_error(replica: &mut crate::Replica) -> crate::SubmitError {
    let mut actions = crate::Actions::new();
    replica
        .submit(bytes::Bytes::from_static(b"x"), &mut actions)
        .expect_err("not leading")
}

#[test]
fn three_replicas_elect_exactly_one_leader_on_their_own() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.advance(2 * T + 500);
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");
    let leader = leaders[0];
    let term = cluster.replica(leader).term();
    for id in cluster.ids() {
        assert_eq!(cluster.replica(id).term(), term);
        assert_eq!(cluster.replica(id).leader(), Some(rid(leader)));
        assert_eq!(
            cluster.replica(id).commit_index(),
            LogIndex(1),
            "Initialize committed"
        );
    }
}

#[test]
fn stalled_candidate_goes_back_to_polling_without_a_new_term() {
    let mut replica = polling();
    deliver(&mut replica, 2, poll_answer(2, true));
    persisted(&mut replica, 1);
    let deadline = replica.election_deadline_ms;
    assert_actions(&tick(&mut replica, deadline - 1), &[]);
    let request = poll(3, 1, (1, 1));
    assert_actions(
        &tick(&mut replica, deadline),
        &[
            send(2, request.clone()),
            send(3, request),
            role_changed(Role::Follower, 2, None),
        ],
    );
    assert_eq!(
        replica.hard_state(),
        hard_state(2, Some(1)),
        "term and vote kept"
    );
}

#[test]
fn deposed_leader_learns_the_newer_term_from_a_rejection() {
    let mut follower = restored(
        2,
        voters(&[1, 2, 3]),
        hard_state(3, None),
        log_with_terms(&[1, 1]),
    );
    let actions = deliver(&mut follower, 1, append(2, 1, (2, 1), vec![], 2));
    assert_actions(&actions, &[send(1, rejected(3, 2, (2, 1)))]);
    assert_eq!(
        follower.commit_index(),
        LogIndex(0),
        "a stale leader's commit is ignored"
    );
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    assert_actions(
        &deliver(&mut leader, 2, rejected(3, 0, (0, 0))),
        &[
            persist(3, Some(hard_state(3, None)), vec![]),
            role_changed(Role::Follower, 3, None),
        ],
    );
}

#[test]
fn partitioned_follower_rejoins_without_disrupting_the_leader() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    cluster.advance(HEARTBEAT_INTERVAL_MS);
    cluster.cut.insert(3);
    cluster.advance(3 * T);
    assert_eq!(cluster.replica(3).term(), Term(1), "polls change no term");
    assert_eq!(cluster.replica(3).leader(), None);
    cluster.cut.clear();
    cluster.advance(T);
    assert_eq!(cluster.leaders(), vec![1]);
    for id in cluster.ids() {
        assert_eq!(cluster.replica(id).term(), Term(1), "replica {id}");
    }
    assert_eq!(cluster.replica(3).leader(), Some(rid(1)));
}
