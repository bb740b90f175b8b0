//! A 3-node cluster in this process on loopback, with real sockets and segment files:
//! it elects a leader, takes writes through the leader and through a follower, and
//! answers reads.

use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_engine::kv::{Get, KvMachine, Put};
use coracle_engine::session::{ClientId, QueryConsistency, RequestBody, ResponseBody, SessionId};
use coracle_engine::state_machine::{decode_value, encode_command, encode_query, Query};
use coracle_engine::LogIndex;
use coracle_server::local_cluster::LocalCluster;
use coracle_server::probe::Probe;

/// A fresh directory for a test's nodes, removed when the test ends (also on a panic).
/// Declare it before the cluster, so that the cluster stops first.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("coracle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

/// Waits for a leader of `group` as seen from the first node; returns its id.
fn leader_of(cluster: &LocalCluster, group: u32, client: ClientId) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let config = cluster.configs.values().next().expect("a node");
    let address = config
        .address(config.node, config.shard_of(group))
        .expect("address");
    loop {
        assert!(Instant::now() < deadline, "no leader for group {group}");
        if let Ok(mut probe) = Probe::connect(
            address,
            &cluster.cluster_name(),
            client,
            Duration::from_secs(2),
        ) {
            if let Ok(Ok(ResponseBody::Connect {
                leader: Some(leader),
                ..
            })) = probe.request(group, RequestBody::Connect { client })
            {
                return leader.0;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers a session for `client` on `group` through `probe`.
fn register(probe: &mut Probe, group: u32, client: ClientId) -> SessionId {
    let registered = probe
        .request(
            group,
            RequestBody::Register {
                client,
                timeout_ms: 10_000,
            },
        )
        .expect("io")
        .expect("registered");
    let ResponseBody::Register { session, .. } = registered else {
        panic!("{registered:?}");
    };
    session
}

#[test]
fn three_nodes_elect_a_leader_and_replicate_writes() {
    let root = temp_dir("three-nodes");
    let mut cluster = LocalCluster::configure(3, 1, &root).expect("ports");
    for config in cluster.configs.values_mut() {
        config.segment_size_bytes = 1024 * 1024;
    }
    cluster.start(|_group| KvMachine::default()).expect("start");
    let client = ClientId(7);
    let leader = leader_of(&cluster, 0, client);
    let name = cluster.cluster_name();
    // Through a follower: it forwards to the leader.
    let follower = cluster
        .configs
        .keys()
        .copied()
        .find(|&node| node != leader)
        .expect("a follower");
    let address = cluster.configs[&follower].members[&follower];
    let mut probe =
        Probe::connect(address, &name, client, Duration::from_secs(5)).expect("connect");
    let session = register(&mut probe, 0, client);
    for sequence in 1..=20u64 {
        let put = Put {
            key: Bytes::from(format!("k{}", sequence % 3)),
            value: Bytes::from(format!("v{sequence}")),
        };
        let answer = probe
            .request(
                0,
                RequestBody::Command {
                    session,
                    sequence,
                    operation: encode_command(&put),
                },
            )
            .expect("io")
            .expect("applied");
        assert!(
            matches!(answer, ResponseBody::Command { output: Ok(_), .. }),
            "{answer:?}"
        );
    }
    let answer = probe
        .request(
            0,
            RequestBody::Query {
                session,
                sequence: 20,
                index: LogIndex(0),
                consistency: QueryConsistency::Linearizable,
                operation: encode_query(&Get {
                    key: Bytes::from("k2"),
                }),
            },
        )
        .expect("io")
        .expect("read");
    let ResponseBody::Query {
        output: Ok(output), ..
    } = answer
    else {
        panic!("{answer:?}");
    };
    let value = decode_value::<<Get as Query>::Output>(&output).expect("decodes");
    assert_eq!(value, Some(Bytes::from("v20")));
}

#[test]
fn sixty_four_groups_over_two_shards_each_elect_a_leader_and_take_a_write() {
    let root = temp_dir("many-groups");
    let mut cluster = LocalCluster::configure(3, 2, &root).expect("ports");
    for config in cluster.configs.values_mut() {
        config.groups = 64;
        config.segment_size_bytes = 64 * 1024;
        config.io_memory_bytes = 256 * 1024;
    }
    let started = Instant::now();
    cluster.start(|_group| KvMachine::default()).expect("start");
    let name = cluster.cluster_name();
    let client = ClientId(9);
    let mut leaders = std::collections::BTreeMap::new();
    for group in 0..64u32 {
        let leader = leader_of(&cluster, group, client);
        *leaders.entry(leader).or_insert(0) += 1;
        // Group g lives on shard g % 2: ask that shard of the leader.
        let config = &cluster.configs[&leader];
        let address = config
            .address(leader, config.shard_of(group))
            .expect("address");
        let mut probe =
            Probe::connect(address, &name, client, Duration::from_secs(5)).expect("connect");
        assert_eq!(probe.shard, group % 2);
        let session = register(&mut probe, group, client);
        let put = Put {
            key: Bytes::from("k"),
            value: Bytes::from(format!("group {group}")),
        };
        let answer = probe
            .request(
                group,
                RequestBody::Command {
                    session,
                    sequence: 1,
                    operation: encode_command(&put),
                },
            )
            .expect("io")
            .expect("applied");
        assert!(
            matches!(answer, ResponseBody::Command { output: Ok(_), .. }),
            "{answer:?}"
        );
    }
    eprintln!(
        "64 groups elected and wrote in {:?}; leaders per node: {leaders:?}",
        started.elapsed()
    );
}

#[test]
fn a_second_node_on_a_taken_port_is_refused_with_the_reason() {
    let root = temp_dir("taken-port");
    let mut cluster = LocalCluster::configure(1, 1, &root).expect("ports");
    cluster.start(|_group| KvMachine::default()).expect("start");
    let mut second = cluster.configs[&1].clone();
    second.data_dir = root.join("second");
    let error = match coracle_server::Node::start(second, |_group| KvMachine::default()) {
        Ok(_) => panic!("two nodes on one port"),
        Err(error) => error,
    };
    assert!(error.contains("listening there already"), "{error}");
}

#[test]
fn an_in_process_network_carries_the_cluster_and_a_partitioned_leader_is_replaced() {
    let root = temp_dir("in-process");
    let mut cluster = LocalCluster::configure(3, 1, &root).expect("ports");
    for config in cluster.configs.values_mut() {
        config.segment_size_bytes = 256 * 1024;
        config.election_timeout_ms = 300;
        config.heartbeat_interval_ms = 60;
    }
    let network = cluster.use_local_network();
    cluster.start(|_group| KvMachine::default()).expect("start");
    let client = ClientId(11);
    let first = leader_of(&cluster, 0, client);
    network.isolate(first);
    let deadline = Instant::now() + Duration::from_secs(20);
    let name = cluster.cluster_name();
    // Ask the others until one of them leads in a later term.
    let replaced = loop {
        assert!(
            Instant::now() < deadline,
            "no new leader after isolating {first}"
        );
        let others: Vec<u64> = cluster
            .configs
            .keys()
            .copied()
            .filter(|&node| node != first)
            .collect();
        let found = others.iter().find_map(|&node| {
            let address = cluster.configs[&node].members[&node];
            let mut probe = Probe::connect(address, &name, client, Duration::from_secs(2)).ok()?;
            match probe.request(0, RequestBody::Connect { client }).ok()? {
                Ok(ResponseBody::Connect {
                    leader: Some(leader),
                    ..
                }) if leader.0 != first => Some(leader.0),
                _ => None,
            }
        });
        if let Some(leader) = found {
            break leader;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(replaced, first);
    network.rejoin(first);
}

#[test]
fn bad_bytes_close_only_their_connection_and_strangers_are_refused_with_a_reason() {
    use std::io::{Read, Write};
    let root = temp_dir("bad-bytes");
    let mut cluster = LocalCluster::configure(1, 1, &root).expect("ports");
    cluster.start(|_group| KvMachine::default()).expect("start");
    let address = cluster.addresses()[0];
    let closed = |bytes: &[u8]| {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(bytes).expect("write");
        let mut answer = Vec::new();
        // The node answers a refusal (or nothing) and closes: the read ends.
        let _ = stream.read_to_end(&mut answer);
        answer
    };
    // Not a frame at all.
    closed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // A frame header claiming 4 GiB: refused from the header, nothing reserved.
    let mut huge = b"CRCL\x01\x01\x00\x00".to_vec();
    huge.extend_from_slice(&0u32.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&0u32.to_le_bytes());
    closed(&huge);
    // A good hello with a flipped checksum.
    let hello = coracle_net::Hello {
        version: coracle_net::PROTOCOL_VERSION,
        cluster: cluster.cluster_name(),
        party: coracle_net::Party::Client { client: 5 },
    };
    let mut framed = bytes::BytesMut::new();
    coracle_net::encode_frame(coracle_net::kind::HELLO, 0, &hello.encode(), &mut framed);
    let last = framed.len() - 1;
    framed[last] ^= 0x40;
    closed(&framed);
    // Another cluster's client is refused, and told why.
    let refused = Probe::connect(address, "another", ClientId(3), Duration::from_secs(5))
        .expect_err("refused");
    assert!(
        refused.contains("another") && refused.contains("not this cluster"),
        "{refused}"
    );
    // The node still serves.
    let client = ClientId(4);
    assert_eq!(leader_of(&cluster, 0, client), 1);
}

#[test]
fn a_client_asking_for_a_group_no_node_runs_is_told_so() {
    let root = temp_dir("no-such-group");
    let mut cluster = LocalCluster::configure(1, 1, &root).expect("ports");
    cluster.start(|_group| KvMachine::default()).expect("start");
    let mut options = coracle_client::ClientOptions::new(
        cluster.cluster_name(),
        cluster.addresses().iter().map(ToString::to_string),
    );
    options.group = 7;
    match coracle_client::BlockingClient::connect(options) {
        Err(coracle_client::Error::InvalidOptions { option, reason }) => {
            assert_eq!(option, "group");
            assert!(
                reason.contains("group 7") && reason.contains("0 to 0"),
                "{reason}"
            );
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a session on a group nobody runs"),
    }
}
