//! Membership changes on a running cluster through the admin protocol: a fourth node
//! joins (address book, then every group), is demoted, and leaves; a node restarted after
//! the join still knows the new node (its address book is on disk).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coracle_engine::kv::KvMachine;
use coracle_engine::session::ClientId;
use coracle_net::admin::{AdminRequest, AdminResponse};
use coracle_server::local_cluster::free_addresses;
use coracle_server::probe::{wait_for_leaders, Probe};
use coracle_server::{Node, NodeConfig};

const GROUPS: u32 = 2;

fn config(node: u64, members: &BTreeMap<u64, SocketAddr>, root: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(node, members.clone(), root.join(format!("node-{node}")));
    config.groups = GROUPS;
    config.shards = 2;
    config.segment_size_bytes = 256 * 1024;
    config.io_memory_bytes = 256 * 1024;
    config.election_timeout_ms = 500;
    config.heartbeat_interval_ms = 100;
    config.pin_cores = false;
    config
}

fn probe(members: &BTreeMap<u64, SocketAddr>, node: u64, shard: u32) -> Probe {
    let base = members[&node];
    let address = SocketAddr::new(base.ip(), base.port() + shard as u16);
    Probe::connect(address, "coracle", ClientId(77), Duration::from_secs(5)).expect("connect")
}

/// Asks node 1 for a change in `group`, retrying refusals that are for now.
fn change(
    members: &BTreeMap<u64, SocketAddr>,
    group: u32,
    request: &AdminRequest,
) -> Vec<(u64, u8)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = probe(members, 1, group % 2)
            .admin(group, request)
            .expect("answer");
        match answer {
            AdminResponse::Changed { members, .. } => return members,
            AdminResponse::Retry { reason } if Instant::now() < deadline => {
                eprintln!("retry: {reason}");
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("group {group}: {other:?}"),
        }
    }
}

fn role_of(members: &BTreeMap<u64, SocketAddr>, node: u64, group: u32) -> (u8, u64) {
    match probe(members, node, group % 2)
        .admin(group, &AdminRequest::Status)
        .expect("status")
    {
        AdminResponse::Status(status) => (status.role, status.applied_index),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_joins_is_demoted_and_leaves_and_a_restart_remembers_it() {
    let root = std::env::temp_dir().join(format!("coracle-membership-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let addresses = free_addresses(4, 2).expect("ports");
    let all: BTreeMap<u64, SocketAddr> = (1..=4).zip(addresses).collect();
    let three: BTreeMap<u64, SocketAddr> = all
        .iter()
        .filter(|(&id, _)| id <= 3)
        .map(|(&id, &a)| (id, a))
        .collect();
    let mut nodes: BTreeMap<u64, Node> = BTreeMap::new();
    for node in 1..=3 {
        nodes.insert(
            node,
            Node::start(config(node, &three, &root), |_| KvMachine::default()).expect("start"),
        );
    }
    let bases: Vec<SocketAddr> = three.values().copied().collect();
    wait_for_leaders(&bases, "coracle", GROUPS, Duration::from_secs(20)).expect("leaders");

    // Node 4 starts outside every group and is refused by the others until they learn it.
    let mut joining = config(4, &all, &root);
    joining.join = true;
    nodes.insert(
        4,
        Node::start(joining, |_| KvMachine::default()).expect("start 4"),
    );
    for node in 1..=3 {
        for shard in 0..2 {
            let request = AdminRequest::AddPeer {
                node: 4,
                address: all[&4].to_string(),
            };
            assert_eq!(
                probe(&three, node, shard)
                    .admin(shard, &request)
                    .expect("answer"),
                AdminResponse::Done
            );
        }
    }
    for group in 0..GROUPS {
        let members = change(
            &all,
            group,
            &AdminRequest::Join {
                node: 4,
                member_type: 3,
            },
        );
        assert_eq!(
            members.iter().map(|&(id, _)| id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }
    // It follows and catches up in every group.
    let deadline = Instant::now() + Duration::from_secs(10);
    for group in 0..GROUPS {
        loop {
            let (role, applied) = role_of(&all, 4, group);
            if (role == 3 || role == 5) && applied >= 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node 4 did not catch up in group {group}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Node 1 restarts with only the first three in its configuration: its address book
    // on disk brings node 4 back (or node 4's links would be refused).
    nodes.remove(&1).expect("node 1").stop().expect("stopped");
    nodes.insert(
        1,
        Node::start(config(1, &three, &root), |_| KvMachine::default()).expect("restart 1"),
    );
    // Node 4 is a voter now and may be the one leading.
    let everyone: Vec<SocketAddr> = all.values().copied().collect();
    wait_for_leaders(&everyone, "coracle", GROUPS, Duration::from_secs(20)).expect("leaders again");
    let book = std::fs::read_to_string(root.join("node-1").join("peers.toml")).expect("book");
    assert!(book.contains("\"4\""), "{book}");

    for group in 0..GROUPS {
        let members = change(
            &all,
            group,
            &AdminRequest::Reconfigure {
                node: 4,
                member_type: 2,
            },
        );
        assert!(members.contains(&(4, 2)), "{members:?}");
        let members = change(&all, group, &AdminRequest::Leave { node: 4 });
        assert_eq!(
            members.iter().map(|&(id, _)| id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
    // A change the engine refuses for good is an error, not a retry.
    let answer = probe(&all, 1, 0)
        .admin(0, &AdminRequest::Leave { node: 9 })
        .expect("answer");
    assert!(
        matches!(
            answer,
            AdminResponse::Error { .. } | AdminResponse::Retry { .. }
        ),
        "{answer:?}"
    );
    // Every shard of every node is still alive: a shard that panicked fails its stop.
    for (id, node) in nodes {
        node.stop()
            .unwrap_or_else(|reason| panic!("node {id}: {reason}"));
    }
    let _ = std::fs::remove_dir_all(&root);
}
