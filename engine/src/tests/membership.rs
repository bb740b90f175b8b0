//! Membership: guards on changes, joining voters, passive members fed by followers,
//! reserve members, and availability tracking.

use super::harness::*;
use crate::message::Message;
use crate::{
    Actions, ConfigurationError, LogIndex, MemberStatus, MemberType, MembershipChange, PlantedBugs,
    Replica, Role, Term,
};

const H: u64 = HEARTBEAT_INTERVAL_MS;

/// Leader 1 of {1, 2, 3} in term 1 with its Initialize (index 1) not yet committed.
fn new_leader(bugs: PlantedBugs) -> Replica {
    let mut settings = config(1);
    settings.planted_bugs = bugs;
    let mut leader = restored_with(settings, voters(&[1, 2, 3]), hard_state(0, None), vec![]);
    elect_by_hand(&mut leader, &[2]);
    leader
}

/// Leader 1 of {1, 2, 3} whose Initialize committed.
fn ready_leader() -> Replica {
    let mut leader = new_leader(PlantedBugs::default());
    deliver(&mut leader, 2, accepted(1, 1));
    persist_all(&mut leader);
    assert_eq!(leader.commit_index(), LogIndex(1));
    leader
}

fn propose(
    leader: &mut Replica,
    change: MembershipChange,
) -> (Result<LogIndex, ConfigurationError>, Vec<crate::Action>) {
    let mut actions = Actions::new();
    let result = leader.propose_membership(change, &mut actions);
    (result, actions.drain().collect())
}

fn join(id: u64, member_type: MemberType) -> MembershipChange {
    MembershipChange::Join {
        id: rid(id),
        member_type,
    }
}

#[test]
fn change_before_the_leaders_initialize_commits_is_not_ready() {
    let mut leader = new_leader(PlantedBugs::default());
    let (result, actions) = propose(&mut leader, join(4, MemberType::Active));
    assert_eq!(result, Err(ConfigurationError::NotReady));
    assert_actions(&actions, &[]);
    assert_eq!(leader.log().last_index(), LogIndex(1));
}

#[test]
fn second_change_while_the_first_is_uncommitted_is_change_in_flight() {
    let mut leader = ready_leader();
    let (result, _) = propose(&mut leader, join(4, MemberType::Passive));
    assert_eq!(result, Ok(LogIndex(2)));
    assert_eq!(
        leader.configuration().index,
        LogIndex(2),
        "effective once written"
    );
    assert_eq!(leader.configuration_committed().index, LogIndex(0));
    let (result, actions) = propose(&mut leader, join(5, MemberType::Passive));
    assert_eq!(result, Err(ConfigurationError::ChangeInFlight));
    assert_actions(&actions, &[]);
    // Once the first commits, the next change is taken.
    deliver(&mut leader, 2, accepted(1, 2));
    persist_all(&mut leader);
    assert_eq!(leader.configuration_committed().index, LogIndex(2));
    let (result, _) = propose(&mut leader, join(5, MemberType::Passive));
    assert_eq!(result, Ok(LogIndex(3)));
}

#[test]
fn planted_bug_config_change_unguarded_takes_changes_early() {
    let bugs = PlantedBugs {
        config_change_unguarded: true,
        ..PlantedBugs::default()
    };
    let mut leader = new_leader(bugs);
    assert_eq!(
        propose(&mut leader, join(4, MemberType::Passive)).0,
        Ok(LogIndex(2))
    );
    assert_eq!(
        propose(&mut leader, join(5, MemberType::Passive)).0,
        Ok(LogIndex(3))
    );
}

#[test]
fn stale_reconfigure_is_refused() {
    let mut leader = ready_leader();
    let reconfigure = |index: u64, term: u64| MembershipChange::Reconfigure {
        id: rid(3),
        member_type: MemberType::Passive,
        status: MemberStatus::Available,
        configuration_index: LogIndex(index),
        configuration_term: Term(term),
    };
    let (result, actions) = propose(&mut leader, reconfigure(1, 1));
    assert_eq!(result, Err(ConfigurationError::StaleConfiguration));
    assert_actions(&actions, &[]);
    // Against the configuration in force (the bootstrap one, index 0): taken.
    assert_eq!(propose(&mut leader, reconfigure(0, 0)).0, Ok(LogIndex(2)));
    assert_eq!(
        leader.configuration().member_type(rid(3)),
        MemberType::Passive
    );
}

#[test]
fn joining_active_member_is_replicated_to_at_once() {
    let mut leader = ready_leader();
    let (result, actions) = propose(&mut leader, join(4, MemberType::Active));
    assert_eq!(result, Ok(LogIndex(2)));
    // Follower 2 matched the Initialize; follower 3 is still probing and waits.
    assert_eq!(entry_indexes(&appends_to(&actions, 2)[0]), vec![2]);
    let to_new = appends_to(&actions, 4);
    assert_eq!(
        to_new.len(),
        1,
        "the new voter gets an append with the change: {actions:#?}"
    );
    assert_eq!(
        to_new[0].entries.last().map(|entry| entry.index),
        Some(LogIndex(2))
    );
}

#[test]
fn joined_active_member_catches_up_and_votes() {
    // Replica 4 starts outside the configuration {1, 2, 3}.
    let mut cluster = Cluster::new(4, &voters(&[1, 2, 3]));
    assert_eq!(cluster.replica(4).role(), Role::Inactive);
    cluster.elect(1);
    cluster.submit(1, "a");
    cluster.deliver_all();
    let change = join(4, MemberType::Active);
    let index = cluster.input(1, |leader, actions| {
        leader.propose_membership(change, actions)
    });
    assert_eq!(index, Ok(LogIndex(3)));
    cluster.advance(3 * H);
    let leader_log = cluster.replica(1).log().range(LogIndex(1), LogIndex(3));
    assert_eq!(
        cluster.replica(4).log().range(LogIndex(1), LogIndex(3)),
        leader_log
    );
    assert_eq!(cluster.replica(4).role(), Role::Follower);
    assert_eq!(
        cluster.replica(1).configuration_committed().voters_count(),
        4
    );
    assert_eq!(cluster.replica(4).commit_index(), LogIndex(3));
}

#[test]
fn membership_request_from_a_follower_is_answered_once_committed() {
    // Replica 4 starts outside the configuration {1, 2, 3}.
    let mut cluster = Cluster::new(4, &voters(&[1, 2, 3]));
    cluster.elect(1);
    let change = join(4, MemberType::Reserve);
    cluster
        .input(2, |follower, actions| {
            follower.request_membership(change, 7, actions)
        })
        .unwrap();
    cluster.deliver_all();
    let outcomes = &cluster.node(2).outcomes;
    assert_eq!(outcomes.len(), 1);
    let (request_id, outcome) = &outcomes[0];
    assert_eq!(*request_id, 7);
    let configuration = outcome.as_ref().expect("the join committed");
    assert_eq!(
        (configuration.index, configuration.member_type(rid(4))),
        (LogIndex(2), MemberType::Reserve)
    );
    assert!(cluster.replica(2).commit_index() >= LogIndex(2));
}

/// Voters {1, 2, 3}, passive 4 and reserve 5; leader 1 committed three commands.
fn cluster_with_passive_and_reserve() -> Cluster {
    use MemberType::{Active, Passive, Reserve};
    let bootstrap = members(&[
        (1, Active),
        (2, Active),
        (3, Active),
        (4, Passive),
        (5, Reserve),
    ]);
    let mut cluster = Cluster::new(5, &bootstrap);
    cluster.elect(1);
    for payload in ["a", "b", "c"] {
        cluster.submit(1, payload);
    }
    cluster.advance(5 * H);
    assert_eq!(cluster.replica(1).commit_index(), LogIndex(4));
    cluster
}

#[test]
fn passive_member_receives_committed_entries_from_a_follower_not_the_leader() {
    let cluster = cluster_with_passive_and_reserve();
    let passive = cluster.replica(4);
    assert_eq!(passive.role(), Role::Passive);
    assert_eq!(passive.leader(), Some(rid(1)));
    assert_eq!(passive.log().last_index(), LogIndex(4));
    assert_eq!(passive.commit_index(), LogIndex(4));
    assert_eq!(cluster.node(4).applied, cluster.node(1).applied);
    let appends: Vec<u64> = cluster
        .delivered_to(4)
        .into_iter()
        .filter(|envelope| matches!(envelope.message, Message::AppendRequest(_)))
        .map(|envelope| envelope.from.0)
        .collect();
    assert!(!appends.is_empty());
    assert!(
        appends.iter().all(|&from| from == 2),
        "fed by follower 2 only: {appends:?}"
    );
    for envelope in cluster.delivered_to(4) {
        if let Message::AppendRequest(request) = &envelope.message {
            assert_eq!(request.leader, rid(1));
            assert!(request
                .entries
                .iter()
                .all(|entry| entry.index <= request.commit_index));
        }
    }
}

#[test]
fn reserve_member_receives_only_configure_requests() {
    let cluster = cluster_with_passive_and_reserve();
    let reserve = cluster.replica(5);
    assert_eq!(reserve.role(), Role::Reserve);
    assert_eq!((reserve.term(), reserve.leader()), (Term(1), Some(rid(1))));
    assert_eq!(reserve.log().last_index(), LogIndex(0));
    let received = cluster.delivered_to(5);
    assert!(received.len() >= 5, "a configure per heartbeat");
    for envelope in received {
        assert_eq!(envelope.from, rid(1));
        assert!(
            matches!(envelope.message, Message::ConfigureRequest(_)),
            "{envelope:?}"
        );
    }
}

#[test]
fn leader_feeds_a_passive_member_when_no_follower_is_available() {
    use MemberType::{Active, Passive};
    let mut bootstrap = members(&[(1, Active), (2, Active), (3, Passive)]);
    bootstrap.members[1].status = MemberStatus::Unavailable;
    let mut cluster = Cluster::new(3, &bootstrap);
    cluster.elect(1);
    let appends: Vec<u64> = cluster
        .delivered_to(3)
        .into_iter()
        .filter(|envelope| matches!(envelope.message, Message::AppendRequest(_)))
        .map(|envelope| envelope.from.0)
        .collect();
    assert_eq!(appends, vec![1]);
    assert_eq!(cluster.replica(3).commit_index(), LogIndex(1));
}

/// Regression: `candidate_start` kept the feeder's `passive_progress`, and the invariant
/// "only followers feed passive members" panicked.
#[test]
fn follower_feeding_a_passive_member_can_campaign() {
    use MemberType::{Active, Passive};
    let bootstrap = members(&[(1, Active), (2, Active), (3, Active), (4, Passive)]);
    let mut follower = fresh(2, bootstrap);
    tick(&mut follower, 100);
    deliver(
        &mut follower,
        1,
        append(1, 1, (0, 0), vec![initialize(1, 1, 0)], 1),
    );
    persist_all(&mut follower);
    let deadline = follower.election_deadline_ms;
    // Follower 2 is passive 4's feeder; its feeder heartbeat goes out just before its timer.
    assert_eq!(appends_to(&tick(&mut follower, deadline - 1), 4).len(), 1);
    let polls = tick(&mut follower, deadline);
    assert_eq!(sends(&polls).len(), 2);
    deliver(&mut follower, 3, poll_answer(2, true));
    assert_eq!(follower.role(), Role::Candidate);
}

fn status_of(cluster: &Cluster, id: u64) -> MemberStatus {
    let configuration = cluster.replica(1).configuration_committed();
    configuration.member(rid(id)).expect("a member").status
}

/// Voters {1, 2, 3} led by 1; follower 3 is cut off at time `2H` and stays so until marked
/// UNAVAILABLE. Returns the cluster and the time of the cut.
fn cluster_with_unavailable_member() -> (Cluster, u64) {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    cluster.advance(2 * H);
    let cut_ms = cluster.now_ms;
    cluster.cut.insert(3);
    // Heartbeats at cut+H, cut+2H and cut+3H go unanswered; at cut+4H the leader counts them.
    cluster.advance(3 * H + H / 2);
    assert_eq!(
        status_of(&cluster, 3),
        MemberStatus::Available,
        "only 2 heartbeats missed"
    );
    cluster.advance(H);
    assert_eq!(
        status_of(&cluster, 3),
        MemberStatus::Unavailable,
        "3 heartbeats missed"
    );
    assert_eq!(status_of(&cluster, 2), MemberStatus::Available);
    assert_eq!(cluster.leaders(), vec![1]);
    (cluster, cut_ms)
}

#[test]
fn leader_commits_a_member_unavailable_after_three_missed_heartbeats() {
    let (cluster, _) = cluster_with_unavailable_member();
    let configuration = cluster.replica(1).configuration_committed();
    assert_eq!(
        configuration.voters_count(),
        3,
        "unavailable voters still vote"
    );
    assert_eq!(
        cluster
            .replica(2)
            .configuration()
            .member(rid(3))
            .expect("member")
            .status,
        MemberStatus::Unavailable
    );
}

#[test]
fn leader_commits_a_member_available_again_once_it_answers() {
    let (mut cluster, _) = cluster_with_unavailable_member();
    cluster.cut.clear();
    cluster.advance(5 * H);
    assert_eq!(cluster.leaders(), vec![1]);
    assert_eq!(status_of(&cluster, 3), MemberStatus::Available);
}

#[test]
fn leader_that_removes_itself_hands_over_once_the_change_commits() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    let leave = MembershipChange::Leave { id: rid(1) };
    let index = cluster.input(1, |leader, actions| {
        leader.propose_membership(leave, actions)
    });
    assert_eq!(index, Ok(LogIndex(2)));
    assert_eq!(
        cluster.replica(1).role(),
        Role::Leader,
        "leads until the change commits"
    );
    cluster.deliver_all();
    assert_eq!(cluster.replica(1).role(), Role::Inactive);
    assert_eq!(cluster.replica(1).commit_index(), LogIndex(2));
    cluster.advance(2 * ELECTION_TIMEOUT_MS + 500);
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1);
    let configuration = cluster
        .replica(leaders[0])
        .configuration_committed()
        .clone();
    assert_eq!(configuration.member_type(rid(1)), MemberType::Inactive);
    assert_eq!(configuration.voters_count(), 2);
}

#[test]
fn leader_that_demotes_itself_to_passive_leads_until_committed_then_hands_over() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    let configuration = cluster.replica(1).configuration().clone();
    let demote = MembershipChange::Reconfigure {
        id: rid(1),
        member_type: MemberType::Passive,
        status: MemberStatus::Available,
        configuration_index: configuration.index,
        configuration_term: configuration.term,
    };
    // Configuring the passive members at once must leave out the leader itself.
    let index = cluster.input(1, |leader, actions| {
        leader.propose_membership(demote, actions)
    });
    assert_eq!(index, Ok(LogIndex(2)));
    assert_eq!(
        cluster.replica(1).role(),
        Role::Leader,
        "leads until the change commits"
    );
    cluster.deliver_all();
    assert_ne!(cluster.replica(1).role(), Role::Leader);
    cluster.advance(2 * ELECTION_TIMEOUT_MS + 500);
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1);
    let committed = cluster
        .replica(leaders[0])
        .configuration_committed()
        .clone();
    assert_eq!(committed.member_type(rid(1)), MemberType::Passive);
}
