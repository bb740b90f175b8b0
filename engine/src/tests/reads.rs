//! Linearizable reads in the core (SPEC §D4, §D5): leadership confirmation rounds, the
//! leader lease, the refusals it counts on (after a restart too), and `leader_ready`.

use super::harness::*;
use crate::message::Message;
use crate::{Action, Actions, LogIndex, MemberType, Role, SubmitError, Term};

const T: u64 = ELECTION_TIMEOUT_MS;
const H: u64 = HEARTBEAT_INTERVAL_MS;
/// The lease with the default drift bound (0.1%): T·(1 − 2·0.001).
const LEASE_DEFAULT_MS: u64 = T - 2 * T / 1000;

/// Three voters, 1 elected and settled: every heartbeat round so far is confirmed.
fn settled_cluster() -> Cluster {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    cluster.advance(5 * H);
    assert!(cluster.replica(1).leader_ready());
    cluster
}

fn confirm(cluster: &mut Cluster, id: u64) -> u64 {
    cluster
        .input(id, |replica, actions| replica.confirm_leadership(actions))
        .expect("the replica leads")
}

/// (to, round) of every append `from` sent among the deliveries after `since`.
fn appends_from(cluster: &Cluster, from: u64, since: usize) -> Vec<(u64, u64)> {
    cluster.delivered[since..]
        .iter()
        .filter(|envelope| envelope.from.0 == from)
        .filter_map(|envelope| match &envelope.message {
            Message::AppendRequest(request) => Some((envelope.to.0, request.round)),
            _ => None,
        })
        .collect()
}

fn lease_is_valid(cluster: &Cluster, id: u64) -> bool {
    cluster
        .replica(id)
        .lease_until_ms()
        .is_some_and(|until| until > cluster.now_ms)
}

// ----- Confirmation rounds -----

#[test]
fn confirmation_needs_a_majority() {
    let mut cluster = settled_cluster();
    let term = cluster.replica(1).term();
    cluster.cut.extend([2, 3]);
    let round = confirm(&mut cluster, 1);
    // Heartbeats keep carrying the round, but nobody answers (two heartbeats: fewer than
    // would mark the followers unavailable or back off their heartbeats).
    cluster.advance(2 * H);
    assert_eq!(cluster.replica(1).role(), Role::Leader);
    assert_eq!(cluster.node(1).confirmed, vec![]);
    cluster.cut.clear();
    cluster.advance(H);
    assert_eq!(cluster.node(1).confirmed, vec![(term, round)]);
}

#[test]
fn one_follower_of_two_is_enough_for_a_majority() {
    let mut cluster = settled_cluster();
    let term = cluster.replica(1).term();
    cluster.cut.insert(3);
    let round = confirm(&mut cluster, 1);
    cluster.deliver_all();
    assert_eq!(cluster.node(1).confirmed, vec![(term, round)]);
}

#[test]
fn concurrent_calls_share_one_round_in_flight_and_one_queued() {
    let mut cluster = settled_cluster();
    let term = cluster.replica(1).term();
    let since = cluster.delivered.len();
    // No round in flight: the first call starts one now, and its appends carry it.
    let first = confirm(&mut cluster, 1);
    // The others may not use a round that started before them: they share the next.
    for _ in 0..99 {
        assert_eq!(confirm(&mut cluster, 1), first + 1);
    }
    cluster.deliver_all();
    let mut appends = appends_from(&cluster, 1, since);
    appends.sort_unstable();
    assert_eq!(
        appends,
        vec![(2, first), (2, first + 1), (3, first), (3, first + 1)],
        "two rounds' worth of heartbeats for a hundred calls"
    );
    assert_eq!(
        cluster.node(1).confirmed,
        vec![(term, first), (term, first + 1)]
    );
}

#[test]
fn heartbeat_rounds_are_not_announced_and_a_call_behind_one_waits_for_the_next() {
    let mut cluster = settled_cluster();
    let term = cluster.replica(1).term();
    cluster.advance(20 * H);
    assert_eq!(
        cluster.node(1).confirmed,
        vec![],
        "rounds nobody waits for are confirmed silently"
    );
    // A heartbeat round is in flight: a call cannot use it.
    cluster.now_ms += H;
    let now = at(cluster.now_ms);
    cluster.input(1, |replica, actions| replica.tick(now, actions));
    let in_flight = cluster
        .replica(1)
        .leader_state
        .as_ref()
        .expect("leads")
        .round;
    let round = confirm(&mut cluster, 1);
    assert_eq!(round, in_flight + 1);
    cluster.deliver_all();
    assert_eq!(cluster.node(1).confirmed, vec![(term, round)]);
}

#[test]
fn a_single_voter_confirms_at_once() {
    let mut cluster = Cluster::new(1, &voters(&[1]));
    cluster.elect(1);
    let term = cluster.replica(1).term();
    let round = confirm(&mut cluster, 1);
    assert_eq!(cluster.node(1).confirmed, vec![(term, round)]);
    assert!(lease_is_valid(&cluster, 1));
}

#[test]
fn a_deposed_leader_never_confirms_a_round_of_its_term() {
    let mut cluster = settled_cluster();
    cluster.cut.insert(1);
    let round = confirm(&mut cluster, 1);
    assert!(round > 0);
    // The others elect a new leader; the old one steps down, then hears of it.
    cluster.advance(3 * T);
    cluster.cut.clear();
    cluster.advance(3 * T);
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1);
    assert!(leaders[0] != 1 && cluster.replica(1).term() > Term(1));
    assert_eq!(cluster.node(1).confirmed, vec![]);
    assert_eq!(cluster.replica(1).lease_until_ms(), None);
    assert_eq!(
        cluster.input(1, |replica, actions| replica.confirm_leadership(actions)),
        Err(SubmitError::NotLeader {
            leader: Some(rid(leaders[0]))
        })
    );
}

#[test]
fn acknowledgements_from_an_older_term_confirm_nothing() {
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    let mut actions = Actions::new();
    let round = leader.confirm_leadership(&mut actions).expect("leads");
    // Follower 2 moved on to term 2 and tells the leader so: it steps down, silently.
    let actions = deliver(&mut leader, 2, in_round(accepted(2, 0), 0));
    assert_eq!(leader.role(), Role::Follower);
    assert!(!actions
        .iter()
        .any(|action| matches!(action, Action::LeadershipConfirmed { .. })));
    // Elected again in term 3, where rounds are numbered afresh: late term-1 answers for
    // the old round confirm nothing.
    let fired_ms = TIMER_FIRED_MS + 2 * T;
    tick(&mut leader, fired_ms);
    deliver(&mut leader, 2, poll_answer(3, true));
    persist_all(&mut leader);
    deliver(&mut leader, 2, vote_answer(3, true));
    assert_eq!((leader.role(), leader.term()), (Role::Leader, Term(3)));
    for from in [2, 3] {
        let actions = deliver(&mut leader, from, in_round(accepted(1, 1), round));
        assert!(!actions
            .iter()
            .any(|action| matches!(action, Action::LeadershipConfirmed { .. })));
    }
    assert_eq!(
        leader.lease_until_ms(),
        None,
        "no round of term 3 confirmed"
    );
}

#[test]
fn followers_echo_the_round_in_deferred_acks_and_rejections() {
    let mut follower = fresh(2, voters(&[1, 2, 3]));
    let first = initialize(1, 1, 0);
    let actions = deliver(
        &mut follower,
        1,
        in_round(append(1, 1, (0, 0), vec![first], 0), 7),
    );
    assert!(sends(&actions).is_empty(), "the ack waits for the persist");
    // A heartbeat of a later round arrives before the persist completes.
    deliver(
        &mut follower,
        1,
        in_round(append(1, 1, (1, 1), vec![], 0), 8),
    );
    assert_actions(
        &persist_all(&mut follower),
        &[
            send(1, in_round(accepted(1, 1), 7)),
            send(1, in_round(accepted(1, 1), 8)),
        ],
    );
    // A rejection acknowledges the leader too.
    let actions = deliver(
        &mut follower,
        1,
        in_round(append(1, 1, (5, 1), vec![], 1), 9),
    );
    assert_actions(&actions, &[send(1, in_round(rejected(1, 5, (1, 1)), 9))]);
    // Once in term 2, a term-1 append gets a rejection that acknowledges no round: its
    // sender might lead term 2 by then, where round 9 would mean another round.
    deliver(&mut follower, 3, poll_answer(2, false));
    assert_eq!(follower.term(), Term(2));
    let actions = deliver(
        &mut follower,
        1,
        in_round(append(1, 1, (1, 1), vec![], 1), 9),
    );
    assert_actions(&actions, &[send(1, in_round(rejected(2, 1, (1, 1)), 0))]);
}

#[test]
fn feeding_passive_members_carries_round_zero() {
    use MemberType::{Active, Passive};
    let bootstrap = members(&[(1, Active), (2, Active), (3, Active), (4, Passive)]);
    let mut cluster = Cluster::new(4, &bootstrap);
    cluster.elect(1);
    cluster.submit(1, "a");
    cluster.advance(5 * H);
    assert_eq!(cluster.replica(4).commit_index(), LogIndex(2));
    let fed = appends_from(&cluster, 2, 0);
    assert!(fed.iter().any(|&(to, _)| to == 4), "follower 2 feeds 4");
    assert!(fed.iter().all(|&(_, round)| round == 0));
    let led = appends_from(&cluster, 1, 0);
    assert!(!led.is_empty() && led.iter().all(|&(_, round)| round >= 1));
}

// ----- The lease -----

#[test]
fn lease_is_renewed_by_heartbeats_alone() {
    let mut cluster = settled_cluster();
    for _ in 0..5 {
        cluster.advance(4 * T);
        let until = cluster
            .replica(1)
            .lease_until_ms()
            .expect("a confirmed round");
        // It runs from the start of the last confirmed round, a heartbeat ago at most.
        let start = until - LEASE_DEFAULT_MS;
        assert!(start <= cluster.now_ms && cluster.now_ms < start + H);
    }
    assert_eq!(cluster.node(1).confirmed, vec![], "no read load");
}

#[test]
fn lease_starts_with_the_first_round_a_majority_acknowledged() {
    let mut leader = fresh(1, voters(&[1, 2, 3]));
    elect_by_hand(&mut leader, &[2]);
    assert_eq!(leader.lease_until_ms(), None, "nothing confirmed yet");
    // Answers that confirm no round of this leader's (round 0) do not start a lease.
    deliver(&mut leader, 3, in_round(accepted(1, 0), 0));
    assert_eq!(leader.lease_until_ms(), None);
    // Round 1 went out with the Initialize entry when it was elected; its answer comes
    // later, but the lease runs from when the round started.
    tick(&mut leader, TIMER_FIRED_MS + H / 2);
    deliver(&mut leader, 2, in_round(accepted(1, 1), 1));
    assert_eq!(
        leader.lease_until_ms(),
        Some(TIMER_FIRED_MS + LEASE_DEFAULT_MS)
    );
}

#[test]
fn a_rejection_in_the_leaders_term_acknowledges_its_round() {
    let mut leader = restored(
        1,
        voters(&[1, 2, 3]),
        hard_state(1, None),
        log_with_terms(&[1]),
    );
    elect_by_hand(&mut leader, &[2]);
    let mut actions = Actions::new();
    // Round 1 (the Initialize entry's) is in flight: the call gets the queued round 2.
    let round = leader.confirm_leadership(&mut actions).expect("leads");
    assert_eq!(round, 2);
    // Follower 3 lacks entry 1: it rejects the Initialize append, echoing round 1. That
    // confirms round 1 (the lease starts) and starts round 2 at once.
    let actions = deliver(&mut leader, 3, in_round(rejected(2, 1, (0, 0)), 1));
    assert_eq!(
        leader.lease_until_ms(),
        Some(TIMER_FIRED_MS + LEASE_DEFAULT_MS)
    );
    // Follower 3 gets the retried Initialize in round 1, then round 2's heartbeat.
    let rounds = |to| -> Vec<u64> {
        appends_to(&actions, to)
            .iter()
            .map(|request| request.round)
            .collect()
    };
    assert_eq!((rounds(2), rounds(3)), (vec![2], vec![1, 2]));
    assert!(!actions
        .iter()
        .any(|action| matches!(action, Action::LeadershipConfirmed { .. })));
    // Another rejection, of round 2, confirms the caller's round.
    let actions = deliver(&mut leader, 3, in_round(rejected(2, 0, (0, 0)), 2));
    assert!(actions.iter().any(|action| matches!(
        action,
        Action::LeadershipConfirmed {
            term: Term(2),
            round: 2
        }
    )));
}

#[test]
fn lease_lapses_without_a_majority() {
    let mut cluster = settled_cluster();
    assert!(lease_is_valid(&cluster, 1));
    let cut_ms = cluster.now_ms;
    cluster.cut.extend([2, 3]);
    cluster.advance(LEASE_DEFAULT_MS);
    assert_eq!(cluster.replica(1).role(), Role::Leader, "still leading");
    assert!(!lease_is_valid(&cluster, 1));
    let until = cluster.replica(1).lease_until_ms().expect("kept");
    assert!(until <= cut_ms + LEASE_DEFAULT_MS);
    cluster.advance(2 * T);
    assert_eq!(cluster.replica(1).role(), Role::Follower);
    assert_eq!(cluster.replica(1).lease_until_ms(), None);
}

#[test]
fn a_larger_drift_bound_shortens_the_lease() {
    let run = |drift_ppm: u64| {
        let configs = (1..=3)
            .map(|id| {
                let mut settings = config(id);
                settings.clock_drift_ppm_max = drift_ppm;
                settings
            })
            .collect();
        let restored = (1..=3).map(|_| crate::Restored::default()).collect();
        let mut cluster = Cluster::with(configs, &voters(&[1, 2, 3]), restored);
        cluster.elect(1);
        cluster.advance(3 * T + 50);
        cluster
            .replica(1)
            .lease_until_ms()
            .expect("a confirmed round")
    };
    let default = run(1_000);
    let ten_percent = run(100_000);
    // T·(1 − 2·0.001) = 998 ms, T·(1 − 2·0.1) = 800 ms, from the same round start.
    assert_eq!(default - ten_percent, 198);
    assert_eq!(run(0) - default, 2);
}

#[test]
fn drift_bounds_of_a_quarter_or_more_are_refused() {
    let mut settings = config(1);
    assert_eq!(settings.clock_drift_ppm_max, 1_000);
    settings.clock_drift_ppm_max = 249_999;
    assert!(settings.validate().is_ok());
    settings.clock_drift_ppm_max = 250_000;
    assert!(settings.validate().is_err());
}

// ----- The refusals the lease counts on -----

#[test]
fn a_restarted_follower_refuses_polls_and_votes_for_t() {
    // Replica 2 acknowledged leader 1 of term 1 and crashed; it restarts at time zero.
    let mut replica = restored(
        2,
        voters(&[1, 2, 3]),
        hard_state(1, None),
        vec![initialize(1, 1, 0)],
    );
    assert_actions(&tick(&mut replica, T - 1), &[]);
    let actions = deliver(&mut replica, 3, poll(2, 3, (1, 1)));
    assert_actions(&actions, &[send(3, poll_answer(1, false))]);
    assert_actions(&deliver(&mut replica, 3, vote(2, 3, (1, 1))), &[]);
    assert_eq!(replica.hard_state(), hard_state(1, None));
    // One election timeout after the restart it grants.
    tick(&mut replica, T);
    let actions = deliver(&mut replica, 3, poll(2, 3, (1, 1)));
    assert_actions(&actions, &[send(3, poll_answer(2, true))]);
}

#[test]
fn a_follower_that_adopted_a_newer_term_still_refuses_votes_within_t() {
    let mut replica = fresh(2, voters(&[1, 2, 3]));
    past_start_lease(&mut replica);
    deliver(&mut replica, 1, append(1, 1, (0, 0), vec![], 0));
    // A refused poll's answer carries term 2: adopted, with no leader known.
    deliver(&mut replica, 3, poll_answer(2, false));
    assert_eq!((replica.term(), replica.leader()), (Term(2), None));
    tick(&mut replica, 2 * T - 1);
    let actions = deliver(&mut replica, 3, vote(2, 3, (0, 0)));
    assert_actions(&actions, &[send(3, vote_answer(2, false))]);
    tick(&mut replica, 2 * T);
    deliver(&mut replica, 3, vote(2, 3, (0, 0)));
    assert_eq!(replica.hard_state(), hard_state(2, Some(3)));
}

#[test]
fn a_server_joining_as_a_voter_refuses_votes_within_t_of_answering_the_leader() {
    // Server 4 was just added as a voter by leader 1 but has not received the
    // configuration entry: it thinks itself inactive. Its rejection still acknowledges
    // the leader's round, so it must not vote for another candidate for T either.
    let mut joining = fresh(4, voters(&[1, 2, 3]));
    assert_eq!(joining.role(), Role::Inactive);
    past_start_lease(&mut joining);
    let actions = deliver(
        &mut joining,
        1,
        in_round(append(1, 1, (5, 1), vec![], 0), 3),
    );
    assert_eq!(
        sends(&actions).len(),
        1,
        "it answers: {:?}",
        sends(&actions)
    );
    assert!(matches!(
        &sends(&actions)[0],
        (1, Message::AppendResponse(response)) if !response.success && response.round == 3
    ));
    tick(&mut joining, 2 * T - 1);
    assert_actions(&deliver(&mut joining, 3, vote(2, 3, (9, 1))), &[]);
    assert_eq!(joining.term(), Term(1));
    tick(&mut joining, 2 * T);
    deliver(&mut joining, 3, vote(2, 3, (9, 1)));
    assert_eq!(joining.hard_state(), hard_state(2, Some(3)));
}

// ----- Readiness -----

#[test]
fn a_leader_is_ready_once_its_initialize_entry_commits() {
    let mut replica = fresh(1, voters(&[1, 2, 3]));
    assert!(!replica.leader_ready());
    elect_by_hand(&mut replica, &[2]);
    assert!(!replica.leader_ready());
    persist_all(&mut replica);
    assert!(
        !replica.leader_ready(),
        "its own copy alone commits nothing"
    );
    let actions = deliver(&mut replica, 2, in_round(accepted(1, 1), 1));
    assert!(has_commit(&actions));
    assert!(replica.leader_ready());
}
