//! Single-thread checks of the local transport: bounds, missing peers, restarts, faults.
//! Two executors on two threads are in `net/tests/transport.rs`.

use super::*;
use futures_lite::future::block_on;

const CLUSTER: &str = "test";

fn address() -> SocketAddr {
    "127.0.0.1:1".parse().expect("an address")
}

fn network(queue_size_bytes_max: usize) -> Arc<LocalNetwork> {
    LocalNetwork::new(LocalNetworkOptions {
        queue_size_bytes_max,
        payload_size_bytes_max: 1024,
    })
}

/// Endpoints for `nodes` on shard 0, each with every other as a peer.
fn endpoints(network: &Arc<LocalNetwork>, nodes: &[u64]) -> Vec<(LocalTransport, LocalReceiver)> {
    nodes
        .iter()
        .map(|&node| {
            let (transport, receiver) = network.endpoint(CLUSTER, node, 0);
            for &peer in nodes.iter().filter(|&&peer| peer != node) {
                transport.add_peer(peer, address());
            }
            (transport, receiver)
        })
        .collect()
}

fn send(transport: &LocalTransport, to: u64, payload: &[u8]) -> Result<(), SendError> {
    transport.send(to, 3, 7, &mut |out| out.extend_from_slice(payload))
}

fn drain(receiver: &mut LocalReceiver) -> Vec<(u64, Vec<u8>)> {
    std::iter::from_fn(|| receiver.try_next())
        .map(|(from, frame)| {
            assert_eq!((frame.kind, frame.group), (3, 7));
            (from, frame.payload.to_vec())
        })
        .collect()
}

#[test]
fn frames_arrive_decoded_in_order_with_their_sender() {
    let network = network(1 << 20);
    let mut nodes = endpoints(&network, &[1, 2, 3]);
    for index in 0..100u8 {
        send(&nodes[0].0, 2, &[index]).expect("sent");
        send(&nodes[2].0, 2, &[index, index]).expect("sent");
    }
    let received = drain(&mut nodes[1].1);
    let from_1: Vec<_> = received.iter().filter(|(from, _)| *from == 1).collect();
    let from_3: Vec<_> = received.iter().filter(|(from, _)| *from == 3).collect();
    assert_eq!(from_1.len(), 100);
    assert_eq!(from_3.len(), 100);
    for (index, (_, payload)) in from_1.iter().enumerate() {
        assert_eq!(payload, &vec![u8::try_from(index).expect("small")]);
    }
    // Everything queued went in one batch.
    assert_eq!(nodes[1].1.stats().batches, 1);
    assert_eq!(nodes[1].1.stats().frames_received, 200);
    assert_eq!(nodes[0].0.stats().bytes_sent, 100 * (20 + 1));
}

#[test]
fn a_sender_over_its_cap_is_full_until_the_receiver_takes_and_others_go_on() {
    // Frames of 20 + 80 bytes: the tenth reaches the cap of 1,000 and is still taken, the
    // eleventh is refused.
    let network = network(1000);
    let mut nodes = endpoints(&network, &[1, 2, 3]);
    let payload = [5u8; 80];
    for _ in 0..10 {
        send(&nodes[0].0, 2, &payload).expect("under the cap");
    }
    assert_eq!(send(&nodes[0].0, 2, &payload), Err(SendError::Full));
    assert_eq!(send(&nodes[0].0, 2, &payload), Err(SendError::Full));
    assert!(nodes[0].0.is_connected(2), "full is not down");
    // Another sender to the same receiver has a cap of its own.
    send(&nodes[2].0, 2, &payload).expect("another sender");
    assert_eq!(drain(&mut nodes[1].1).len(), 11);
    send(&nodes[0].0, 2, &payload).expect("room again once taken");
    let stats = nodes[0].0.stats();
    assert_eq!((stats.frames_sent, stats.dropped_full), (11, 2));
}

#[test]
fn a_payload_over_the_cap_is_refused_and_sends_nothing() {
    let network = network(1 << 20);
    let mut nodes = endpoints(&network, &[1, 2]);
    let result = send(&nodes[0].0, 2, &[0; 1025]);
    assert!(matches!(result, Err(SendError::TooLarge(_))), "{result:?}");
    send(&nodes[0].0, 2, &[1; 1024]).expect("at the cap");
    let received = drain(&mut nodes[1].1);
    assert_eq!(received, vec![(1, vec![1; 1024])]);
}

#[test]
fn unknown_stopped_and_restarted_peers() {
    let network = network(1 << 20);
    let (one, _one_receiver) = network.endpoint(CLUSTER, 1, 0);
    // Not a peer: nothing is sent even though node 2 may exist.
    assert_eq!(send(&one, 2, b"x"), Err(SendError::NotConnected));
    one.add_peer(2, address());
    // A peer without an endpoint yet.
    assert!(!one.is_connected(2));
    assert_eq!(send(&one, 2, b"x"), Err(SendError::NotConnected));
    let (_two, mut two_receiver) = network.endpoint(CLUSTER, 2, 0);
    assert!(one.is_connected(2));
    send(&one, 2, b"first").expect("sent");
    // Another shard of node 2, or node 2 of another cluster, is not the same endpoint.
    let (_other_shard, mut other_shard_receiver) = network.endpoint(CLUSTER, 2, 1);
    let (_other_cluster, mut other_cluster_receiver) = network.endpoint("other", 2, 0);
    send(&one, 2, b"second").expect("sent");
    assert_eq!(drain(&mut other_shard_receiver), vec![]);
    assert_eq!(drain(&mut other_cluster_receiver), vec![]);
    assert_eq!(drain(&mut two_receiver).len(), 2);

    // Node 2 restarts: a new endpoint replaces the old, whose queued frames are lost and
    // whose receiver ends; the sender finds the new one by itself.
    send(&one, 2, b"lost").expect("sent");
    let (_two, mut two_receiver_again) = network.endpoint(CLUSTER, 2, 0);
    assert_eq!(block_on(two_receiver.next()), None);
    send(&one, 2, b"after").expect("sent to the new endpoint");
    assert_eq!(drain(&mut two_receiver_again), vec![(1, b"after".to_vec())]);
    drop(two_receiver); // The old receiver going does not remove the new endpoint.
    assert!(network.is_registered(CLUSTER, 2, 0));

    // Node 2 stops (its receiver goes), then leaves.
    drop(two_receiver_again);
    assert!(!network.is_registered(CLUSTER, 2, 0));
    assert!(!one.is_connected(2));
    assert_eq!(send(&one, 2, b"x"), Err(SendError::NotConnected));
    let (_two, _two_receiver) = network.endpoint(CLUSTER, 2, 0);
    assert!(one.is_connected(2));
    one.remove_peer(2);
    assert!(!one.is_connected(2));
    assert_eq!(send(&one, 2, b"x"), Err(SendError::NotConnected));
    assert_eq!(one.stats().dropped_not_connected, 4);
}

#[test]
fn partitions_drop_both_ways_until_healed_and_isolation_cuts_a_node_off() {
    let network = network(1 << 20);
    let mut nodes = endpoints(&network, &[1, 2, 3]);
    network.partition(1, 2);
    assert_eq!(send(&nodes[0].0, 2, b"a"), Err(SendError::NotConnected));
    assert_eq!(send(&nodes[1].0, 1, b"b"), Err(SendError::NotConnected));
    assert!(!nodes[0].0.is_connected(2));
    send(&nodes[0].0, 3, b"c").expect("1 still reaches 3");
    send(&nodes[1].0, 3, b"d").expect("2 still reaches 3");
    network.heal(1, 2);
    send(&nodes[0].0, 2, b"e").expect("healed");
    send(&nodes[1].0, 1, b"f").expect("healed");

    network.partition_one_way(1, 2);
    assert_eq!(send(&nodes[0].0, 2, b"g"), Err(SendError::NotConnected));
    send(&nodes[1].0, 1, b"h").expect("the other way goes");
    network.heal(2, 1);

    network.isolate(3);
    assert_eq!(send(&nodes[0].0, 3, b"i"), Err(SendError::NotConnected));
    assert_eq!(send(&nodes[2].0, 1, b"j"), Err(SendError::NotConnected));
    send(&nodes[0].0, 2, b"k").expect("1 and 2 are not isolated");
    network.partition(1, 3);
    network.rejoin(3);
    assert!(network.is_cut(1, 3), "a partition outlives the isolation");
    assert!(!network.is_cut(2, 3));
    network.heal_all();
    assert!(!network.is_cut(1, 3));
    send(&nodes[2].0, 1, b"l").expect("all healed");

    let payloads = |received: Vec<(u64, Vec<u8>)>| -> Vec<Vec<u8>> {
        received.into_iter().map(|(_, payload)| payload).collect()
    };
    assert_eq!(
        payloads(drain(&mut nodes[0].1)),
        vec![b"f".to_vec(), b"h".to_vec(), b"l".to_vec()]
    );
    assert_eq!(
        payloads(drain(&mut nodes[1].1)),
        vec![b"e".to_vec(), b"k".to_vec()]
    );
    assert_eq!(
        payloads(drain(&mut nodes[2].1)),
        vec![b"c".to_vec(), b"d".to_vec()]
    );
    assert_eq!(nodes[0].0.stats().dropped_partitioned, 3);
}

#[test]
fn frames_queued_before_a_partition_still_arrive() {
    let network = network(1 << 20);
    let mut nodes = endpoints(&network, &[1, 2]);
    send(&nodes[0].0, 2, b"on the wire").expect("sent");
    network.partition(1, 2);
    assert_eq!(drain(&mut nodes[1].1), vec![(1, b"on the wire".to_vec())]);
}

#[test]
#[allow(clippy::disallowed_methods)] // A plain thread sleeps, not an executor.
fn a_waiting_receiver_is_woken_by_a_send_from_another_thread() {
    let network = network(1 << 20);
    let mut nodes = endpoints(&network, &[1, 2]);
    let (two, mut two_receiver) = nodes.pop().expect("node 2");
    let (one, _one_receiver) = nodes.pop().expect("node 1");
    // futures-lite's block_on parks the thread: only the waker can bring it back.
    let sender = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        send(&one, 2, b"wake").expect("sent");
        one
    });
    let (from, frame) = block_on(two_receiver.next()).expect("a frame");
    assert_eq!((from, &frame.payload[..]), (1, &b"wake"[..]));
    drop(sender.join().expect("the sender"));
    drop(two);
}
