//! Replication: commitment rules, log matching and fast backtracking, truncation, the
//! follower's commit cap, append size bounds and pipelining.

use super::harness::*;
use crate::message::Message;
use crate::{LogIndex, PlantedBugs, Replica, Restored, Role, Term};

fn leader_with(bugs: PlantedBugs) -> Replica {
    let mut settings = config(1);
    settings.planted_bugs = bugs;
    let mut leader = restored_with(settings, voters(&[1, 2, 3]), hard_state(0, None), vec![]);
    elect_by_hand(&mut leader, &[2]);
    leader
}

#[test]
fn leader_commits_once_a_majority_acked_and_its_own_persist_completed() {
    let mut leader = leader_with(PlantedBugs::default());
    let first = initialize(1, 1, TIMER_FIRED_MS);
    // Follower 2 holds the Initialize durably, the leader's own write is still in flight.
    assert_actions(&deliver(&mut leader, 2, accepted(1, 1)), &[]);
    assert_eq!(leader.commit_index(), LogIndex(0));
    // Its own write completes: {1, 2} is a majority. Idle follower 2 learns the commit.
    assert_actions(
        &persist_all(&mut leader),
        &[
            committed(1),
            apply(vec![first]),
            send(2, in_round(append(1, 1, (1, 1), vec![], 1), 1)),
        ],
    );
    assert_eq!(leader.commit_index(), LogIndex(1));
}

#[test]
fn leader_does_not_commit_on_its_own_durable_copy_alone() {
    let mut leader = leader_with(PlantedBugs::default());
    assert_actions(&persist_all(&mut leader), &[]);
    assert_eq!(leader.commit_index(), LogIndex(0));
    let actions = deliver(&mut leader, 3, accepted(1, 1));
    assert!(has_commit(&actions));
}

#[test]
fn durable_copies_on_a_majority_of_followers_commit_without_the_leaders_own() {
    // Raft counts durable copies: two followers of three are a majority without the leader.
    let mut leader = leader_with(PlantedBugs::default());
    assert!(!has_commit(&deliver(&mut leader, 2, accepted(1, 1))));
    assert!(has_commit(&deliver(&mut leader, 3, accepted(1, 1))));
}

#[test]
fn planted_bug_leader_counts_unpersisted_commits_too_early() {
    let bugs = PlantedBugs {
        leader_counts_unpersisted: true,
        ..PlantedBugs::default()
    };
    let mut leader = leader_with(bugs);
    assert!(has_commit(&deliver(&mut leader, 2, accepted(1, 1))));
}

/// Figure 8 of the Raft paper: leader 1 of term 3 holds [1: t1, 2: t2]; entry 2 (of term 2)
/// reaches a majority. Returns whether the leader committed index 2 before its own term's
/// Initialize (index 3) was on a majority.
fn figure_8(bugs: PlantedBugs) -> (Replica, bool) {
    let mut settings = config(1);
    settings.planted_bugs = bugs;
    settings.append_size_bytes_max = 1; // One entry per append.
    let entries = log_with_terms(&[1, 2]);
    let mut leader = restored_with(
        settings,
        voters(&[1, 2, 3]),
        hard_state(2, Some(1)),
        entries,
    );
    let actions = elect_by_hand(&mut leader, &[2]);
    assert_eq!(leader.term(), Term(3));
    let probe = &appends_to(&actions, 2)[0];
    assert_eq!(
        (probe.prev_index, entry_indexes(probe)),
        (LogIndex(2), vec![3])
    );
    // Follower 2 holds only [1: t1]: it rejects, the leader sends entry 2 alone.
    let actions = deliver(&mut leader, 2, rejected(3, 2, (1, 1)));
    assert_eq!(entry_indexes(&appends_to(&actions, 2)[0]), vec![2]);
    let mut early = has_commit(&deliver(&mut leader, 2, accepted(3, 2)));
    // Entry 2 is now durable on {1, 2}; the Initialize on the leader only.
    early |= has_commit(&persist_all(&mut leader));
    (leader, early)
}

#[test]
fn leader_never_commits_an_entry_of_a_previous_term_by_counting() {
    let (mut leader, early) = figure_8(PlantedBugs::default());
    assert!(!early, "entry 2 of term 2 must wait for an entry of term 3");
    assert_eq!(leader.commit_index(), LogIndex(0));
    let actions = deliver(&mut leader, 2, accepted(3, 3));
    let expected = leader.log().range(LogIndex(1), LogIndex(3));
    assert_eq!(actions[..2].len(), 2);
    assert_actions(&actions[..2], &[committed(3), apply(expected)]);
}

#[test]
fn planted_bug_commit_previous_term_is_caught_by_figure_8() {
    let bugs = PlantedBugs {
        commit_previous_term: true,
        ..PlantedBugs::default()
    };
    let (leader, early) = figure_8(bugs);
    assert!(early);
    assert_eq!(leader.commit_index(), LogIndex(2));
}

/// Follower 2 at term 2 with [1: t1, 2: t1, 3..=10: t2], entries 3.. never committed.
fn follower_with_stale_suffix(bugs: PlantedBugs) -> Replica {
    let mut settings = config(2);
    settings.planted_bugs = bugs;
    let entries = log_with_terms(&[1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
    restored_with(settings, voters(&[1, 2, 3]), hard_state(2, None), entries)
}

#[test]
fn follower_rejects_a_mismatched_prev_term_with_a_hint() {
    let mut follower = follower_with_stale_suffix(PlantedBugs::default());
    let request = append(3, 1, (6, 3), vec![command(7, 3, "new")], 2);
    let actions = deliver(&mut follower, 1, request);
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(3, None)), vec![]),
            send(1, rejected(3, 6, (6, 2))),
            role_changed(Role::Follower, 3, Some(1)),
        ],
    );
    assert_eq!(
        follower.log().last_index(),
        LogIndex(10),
        "nothing appended or truncated"
    );
    assert_eq!(
        follower.commit_index(),
        LogIndex(0),
        "no commit without a match"
    );
}

#[test]
fn follower_rejects_an_append_past_its_last_entry_with_its_last_index() {
    let mut follower = fresh(2, voters(&[1, 2, 3]));
    deliver(
        &mut follower,
        1,
        append(1, 1, (0, 0), log_with_terms(&[1, 1]), 0),
    );
    let actions = deliver(&mut follower, 1, append(1, 1, (9, 1), vec![], 0));
    assert_actions(&actions, &[send(1, rejected(1, 9, (2, 1)))]);
}

#[test]
fn leader_backs_up_over_a_long_conflicting_suffix_in_one_round_trip() {
    // Leader 1 holds [t1, t1, t3 x 28]; follower 2 holds [t1, t1, t2 x 48] it never committed.
    let mut leader_terms = vec![1, 1];
    leader_terms.extend([3; 28]);
    let mut follower_terms = vec![1, 1];
    follower_terms.extend([2; 48]);
    let restored = vec![
        Restored {
            hard_state: hard_state(3, Some(1)),
            entries: log_with_terms(&leader_terms),
        },
        Restored {
            hard_state: hard_state(2, None),
            entries: log_with_terms(&follower_terms),
        },
        Restored::default(),
    ];
    let mut cluster = Cluster::with(
        vec![config(1), config(2), config(3)],
        &voters(&[1, 2, 3]),
        restored,
    );
    cluster.cut.insert(3);
    cluster.elect(1);
    let rejections = cluster
        .delivered_to(1)
        .into_iter()
        .filter(|envelope| matches!(&envelope.message, Message::AppendResponse(r) if !r.success))
        .count();
    assert_eq!(rejections, 1, "one rejection for 48 conflicting entries");
    assert_eq!(terms_of(cluster.replica(2)), terms_of(cluster.replica(1)));
    assert_eq!(cluster.replica(2).commit_index(), LogIndex(31));
    assert_eq!(
        cluster.node(2).store.entries,
        cluster.replica(2).log().range(LogIndex(1), LogIndex(31))
    );
}

#[test]
fn follower_truncates_a_conflicting_uncommitted_suffix() {
    let mut follower = restored(
        2,
        voters(&[1, 2, 3]),
        hard_state(2, None),
        log_with_terms(&[1, 2, 2]),
    );
    let new = vec![command(2, 3, "a"), command(3, 3, "b"), command(4, 3, "c")];
    let actions = deliver(&mut follower, 1, append(3, 1, (1, 1), new.clone(), 1));
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(3, None)), vec![]),
            persist(2, None, new),
            committed(1),
            apply(log_with_terms(&[1])),
            role_changed(Role::Follower, 3, Some(1)),
        ],
    );
    assert_eq!(terms_of(&follower), vec![1, 3, 3, 3]);
    assert_actions(&persisted(&mut follower, 1), &[]);
    assert_actions(&persisted(&mut follower, 2), &[send(1, accepted(3, 4))]);
}

#[test]
fn follower_keeps_matching_entries_of_a_duplicate_append() {
    let mut follower = fresh(2, voters(&[1, 2, 3]));
    let entries = log_with_terms(&[1, 1]);
    deliver(&mut follower, 1, append(1, 1, (0, 0), entries.clone(), 0));
    persist_all(&mut follower);
    // The same append again, then a shorter one: nothing to write, nothing truncated.
    let actions = deliver(&mut follower, 1, append(1, 1, (0, 0), entries, 0));
    assert_actions(&actions, &[send(1, accepted(1, 2))]);
    let actions = deliver(
        &mut follower,
        1,
        append(1, 1, (0, 0), log_with_terms(&[1]), 0),
    );
    assert_actions(&actions, &[send(1, accepted(1, 1))]);
    assert_eq!(follower.log().last_index(), LogIndex(2));
}

/// A heartbeat after [1: t1, 2: t1] carrying commit 10, to a follower whose entries past 2
/// are stale (term 2, while the leader of term 3 holds other entries there).
fn commit_after_heartbeat(bugs: PlantedBugs) -> (Replica, Vec<crate::Action>) {
    let mut settings = config(2);
    settings.planted_bugs = bugs;
    let entries = log_with_terms(&[1, 1, 2, 2]);
    let mut follower = restored_with(settings, voters(&[1, 2, 3]), hard_state(2, None), entries);
    let actions = deliver(&mut follower, 1, append(3, 1, (2, 1), vec![], 10));
    (follower, actions)
}

#[test]
fn follower_commit_is_capped_at_the_requests_last_entry() {
    let (mut follower, actions) = commit_after_heartbeat(PlantedBugs::default());
    assert_actions(
        &actions,
        &[
            persist(1, Some(hard_state(3, None)), vec![]),
            committed(2),
            apply(log_with_terms(&[1, 1])),
            role_changed(Role::Follower, 3, Some(1)),
        ],
    );
    assert_eq!(follower.commit_index(), LogIndex(2));
    assert_actions(&persisted(&mut follower, 1), &[send(1, accepted(3, 2))]);
}

#[test]
fn planted_bug_commit_past_request_commits_stale_entries() {
    let (follower, _) = commit_after_heartbeat(PlantedBugs {
        commit_past_request: true,
        ..PlantedBugs::default()
    });
    assert_eq!(follower.commit_index(), LogIndex(4));
}

#[test]
fn planted_bug_skip_log_matching_accepts_a_mismatched_append() {
    let bugs = PlantedBugs {
        skip_log_matching: true,
        ..PlantedBugs::default()
    };
    let mut follower = follower_with_stale_suffix(bugs);
    let actions = deliver(
        &mut follower,
        1,
        append(3, 1, (6, 3), vec![command(7, 3, "x")], 0),
    );
    assert!(appends_to(&actions, 1).is_empty());
    assert_eq!(
        follower.log().term_at(LogIndex(7)),
        Some(Term(3)),
        "the bug appended"
    );
}

#[test]
fn follower_acks_appended_entries_only_once_durable() {
    let mut follower = fresh(2, voters(&[1, 2, 3]));
    deliver(&mut follower, 1, append(1, 1, (0, 0), vec![], 0));
    persist_all(&mut follower);
    let entries = log_with_terms(&[1, 1]);
    let actions = deliver(&mut follower, 1, append(1, 1, (0, 0), entries.clone(), 0));
    assert_actions(&actions, &[persist(2, None, entries)]);
    assert_actions(&persisted(&mut follower, 2), &[send(1, accepted(1, 2))]);
}

#[test]
fn planted_bug_ack_before_persist_acks_at_once() {
    let mut settings = config(2);
    settings.planted_bugs = PlantedBugs {
        ack_before_persist: true,
        ..PlantedBugs::default()
    };
    let mut follower = restored_with(settings, voters(&[1, 2, 3]), hard_state(1, None), vec![]);
    let actions = deliver(
        &mut follower,
        1,
        append(1, 1, (0, 0), log_with_terms(&[1]), 0),
    );
    assert_eq!(sends(&actions).len(), 1);
}

#[test]
fn appends_are_bounded_by_append_size_bytes_max() {
    let mut settings = config(1);
    settings.append_size_bytes_max = 150; // Two 70-byte entries fit, three do not.
    let entries: Vec<_> = (1..=5).map(|index| command_sized(index, 1, 30)).collect();
    let mut leader = restored_with(settings, voters(&[1, 2, 3]), hard_state(1, None), entries);
    let actions = elect_by_hand(&mut leader, &[2]);
    assert_eq!(entry_indexes(&appends_to(&actions, 2)[0]), vec![6]);
    // The probe after the rejection carries one bounded batch; once it is acknowledged
    // the leader fills its pipeline with the rest, each append within the bound.
    let mut requests = appends_to(&deliver(&mut leader, 2, rejected(2, 5, (0, 0))), 2);
    assert_eq!(requests.len(), 1, "one append at a time while probing");
    requests.extend(appends_to(&deliver(&mut leader, 2, accepted(2, 2)), 2));
    let mut batches = Vec::new();
    for request in &requests {
        let size: usize = request.entries.iter().map(crate::Entry::size_bytes).sum();
        assert!(size <= 150, "append of {size} bytes");
        batches.push(entry_indexes(request));
    }
    assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5, 6]]);
}

#[test]
fn an_append_carries_one_entry_larger_than_the_bound() {
    let mut settings = config(1);
    settings.append_size_bytes_max = 10;
    let mut leader = restored_with(settings, voters(&[1, 2]), hard_state(0, None), vec![]);
    elect_by_hand(&mut leader, &[2]);
    deliver(&mut leader, 2, accepted(1, 1));
    let (_, actions) = submit(&mut leader, &"y".repeat(100));
    assert_eq!(entry_indexes(&appends_to(&actions, 2)[0]), vec![2]);
}

#[test]
fn pipelining_keeps_at_most_pipeline_depth_appends_in_flight() {
    let mut settings = config(1);
    settings.pipeline_depth = 2;
    let mut leader = restored_with(settings, voters(&[1, 2, 3]), hard_state(0, None), vec![]);
    elect_by_hand(&mut leader, &[2]);
    // Follower 2 matched: replicate mode. Follower 3 never answered the first probe.
    assert_actions(&deliver(&mut leader, 2, accepted(1, 1)), &[]);
    let mut sent_to_2 = Vec::new();
    for payload in ["a", "b", "c", "d"] {
        let (_, actions) = submit(&mut leader, payload);
        assert!(
            appends_to(&actions, 3).is_empty(),
            "a probing follower gets one append"
        );
        sent_to_2.push(
            appends_to(&actions, 2)
                .iter()
                .map(entry_indexes)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        sent_to_2,
        vec![vec![vec![2]], vec![vec![3]], vec![], vec![]]
    );
    // One ack frees one slot: the rest goes in one append.
    let actions = deliver(&mut leader, 2, accepted(1, 2));
    let appends = appends_to(&actions, 2);
    assert_eq!(appends.len(), 1);
    assert_eq!(
        (appends[0].prev_index, entry_indexes(&appends[0])),
        (LogIndex(3), vec![4, 5])
    );
    let (_, actions) = submit(&mut leader, "e");
    assert!(
        appends_to(&actions, 2).is_empty(),
        "two appends still in flight"
    );
}

#[test]
fn cluster_replicates_and_applies_the_same_entries_everywhere() {
    let mut cluster = Cluster::new(3, &voters(&[1, 2, 3]));
    cluster.elect(1);
    for payload in ["a", "b", "c"] {
        cluster.submit(1, payload);
    }
    cluster.deliver_all();
    cluster.advance(2 * HEARTBEAT_INTERVAL_MS);
    for id in cluster.ids() {
        assert_eq!(
            cluster.replica(id).commit_index(),
            LogIndex(4),
            "replica {id}"
        );
        assert_eq!(
            cluster.node(id).applied,
            cluster.node(1).applied,
            "replica {id}"
        );
        assert_eq!(cluster.node(id).store.entries.len(), 4, "replica {id}");
    }
}
