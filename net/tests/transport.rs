//! Both transports across real glommio executors, each on its own thread: the local one
//! between two shards' mailboxes, the TCP one to a listener that accepts its hello.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coracle_net::frame::{encode_frame_into, FrameDecoder};
use coracle_net::frame_reader::FrameReader;
use coracle_net::local_transport::{LocalNetwork, LocalNetworkOptions, LocalReceiver};
use coracle_net::peer_link::PeerLinkOptions;
use coracle_net::tcp_transport::TcpTransport;
use coracle_net::{kind, Hello, HelloReply, Party, SendError, Transport};
use futures_lite::AsyncWriteExt;
use glommio::{LocalExecutorBuilder, Placement};

/// Locked memory is 8 MiB here and glommio registers io_memory three times per executor.
const TEST_IO_MEMORY_BYTES: usize = 256 * 1024;
const CLUSTER: &str = "test";

/// Runs `work` on a fresh executor thread; join the handle for its result.
fn executor<T, F>(
    name: &str,
    work: impl FnOnce() -> F + Send + 'static,
) -> glommio::ExecutorJoinHandle<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(move || async move { work().await })
        .expect("an executor")
}

fn unused_address() -> SocketAddr {
    "127.0.0.1:1".parse().expect("an address")
}

/// A payload that names its sequence number and whose size varies with it.
fn payload(sequence: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&sequence.to_le_bytes());
    let filler = u8::try_from(sequence % 251).expect("under 251");
    out.resize(out.len() + usize::from(filler), filler);
}

fn check_payload(sequence: u64, bytes: &[u8]) {
    let mut expected = Vec::new();
    payload(sequence, &mut expected);
    assert_eq!(bytes, &expected[..], "frame {sequence}");
}

/// Receives `count` frames from `from`, checking that they come in order, whole, and
/// counting them in `received`.
async fn receive_in_order(
    receiver: &mut LocalReceiver,
    from: u64,
    count: u64,
    received: &AtomicU64,
) {
    for sequence in 0..count {
        let (sender, frame) = receiver.next().await.expect("the endpoint stays");
        assert_eq!(sender, from);
        assert_eq!((frame.kind, frame.group), (kind::PEER, 9));
        check_payload(sequence, &frame.payload);
        received.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn local_frames_cross_executors_both_ways_in_order_without_loss() {
    const FRAMES: u64 = 5_000;
    let network = LocalNetwork::new(LocalNetworkOptions::default());
    // Frames each node has received so far, by node - 1.
    let received: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut handles = Vec::new();
    for (node, peer) in [(1u64, 2u64), (2, 1)] {
        let received = Arc::clone(&received);
        // Both endpoints exist before either executor sends.
        let (local, mut receiver) = network.endpoint(CLUSTER, node, 0);
        local.add_peer(peer, unused_address());
        handles.push(executor(&format!("local-{node}"), move || async move {
            let receiving = {
                let received = Arc::clone(&received);
                glommio::spawn_local(async move {
                    let index = usize::try_from(node - 1).expect("small");
                    receive_in_order(&mut receiver, peer, FRAMES, &received[index]).await;
                    receiver
                })
                .detach()
            };
            let transport: &dyn Transport = &local;
            let peer_received = &received[usize::try_from(peer - 1).expect("small")];
            for sequence in 0..FRAMES {
                transport
                    .send(peer, kind::PEER, 9, &mut |out| payload(sequence, out))
                    .expect("within the cap");
                // Halfway, wait until the peer has taken some: it then receives while
                // this side still sends, in more than one batch, whatever the threads'
                // timing. Waiting on a timer lets the executor go idle, which is when it
                // reaps the wake-ups other threads sent it (as it reaps socket
                // completions): its own receiving task runs meanwhile.
                if sequence == FRAMES / 2 {
                    while peer_received.load(Ordering::Relaxed) == 0 {
                        glommio::timer::sleep(Duration::from_micros(50)).await;
                    }
                }
            }
            let receiver = receiving.await.expect("received everything");
            assert_eq!(local.stats().dropped_full, 0);
            receiver.stats()
        }));
    }
    for handle in handles {
        let stats = handle.join().expect("the executor ran");
        assert_eq!(stats.frames_received, FRAMES);
        assert_eq!(stats.frames_refused, 0);
        assert!(stats.batches > 1, "{stats:?}");
        println!(
            "{FRAMES} frames in {} batches ({:.1} frames per wake-up)",
            stats.batches,
            FRAMES as f64 / stats.batches as f64
        );
    }
}

/// The next frame, or `None` after 10 s: a lost wake-up fails the test instead of
/// hanging it.
async fn next_within(receiver: &mut LocalReceiver) -> Option<(u64, coracle_net::Frame)> {
    futures_lite::future::or(receiver.next(), async {
        glommio::timer::sleep(Duration::from_secs(10)).await;
        None
    })
    .await
}

#[test]
#[allow(clippy::disallowed_methods)] // Measuring wall time is what this test is for.
fn a_waiting_receiver_wakes_at_once_without_polling() {
    const ROUND_TRIPS: usize = 2_000;
    let network = LocalNetwork::new(LocalNetworkOptions::default());
    let (one, mut one_receiver) = network.endpoint(CLUSTER, 1, 0);
    let (two, mut two_receiver) = network.endpoint(CLUSTER, 2, 0);
    one.add_peer(2, unused_address());
    two.add_peer(1, unused_address());
    // Node 2 answers every ping with a pong, sleeping (no spinning) in between.
    let echo = executor("echo", move || async move {
        for sequence in 0..ROUND_TRIPS as u64 {
            let (from, frame) = next_within(&mut two_receiver).await.expect("a ping");
            assert_eq!(from, 1);
            check_payload(sequence, &frame.payload);
            two.send(1, kind::PEER, 9, &mut |out| payload(sequence, out))
                .expect("pong sent");
        }
    });
    let pinger = executor("ping", move || async move {
        let mut round_trips = Vec::with_capacity(ROUND_TRIPS);
        for sequence in 0..ROUND_TRIPS as u64 {
            let start = Instant::now();
            one.send(2, kind::PEER, 9, &mut |out| payload(sequence, out))
                .expect("ping sent");
            let (from, frame) = next_within(&mut one_receiver).await.expect("a pong");
            round_trips.push(start.elapsed());
            assert_eq!(from, 2);
            check_payload(sequence, &frame.payload);
        }
        round_trips
    });
    // The pinger first: if a wake-up were lost, its timeout fails the test, while the
    // echo might wait for ever.
    let mut round_trips = pinger.join().expect("the pinger ran");
    echo.join().expect("the echo ran");
    round_trips.sort_unstable();
    let total: Duration = round_trips.iter().sum();
    let mean = total / u32::try_from(ROUND_TRIPS).expect("small");
    let p50 = round_trips[ROUND_TRIPS / 2];
    let p99 = round_trips[ROUND_TRIPS * 99 / 100];
    println!("{ROUND_TRIPS} round trips between two sleeping executors: mean {mean:?}, p50 {p50:?}, p99 {p99:?}");
    // Each round trip is two cross-thread wake-ups of a parked executor. A receiver that
    // polled on a timer, even every millisecond, would wait half a period per leg: a
    // median round trip near 1 ms. The median, not the mean, so that a test machine
    // busy with other tests does not fail this one.
    assert!(
        p50 < Duration::from_micros(500),
        "median round trip {p50:?}: the receivers do not wake at once"
    );
}

/// Accepts one peer link as a shard's listener does, answers its hello as `node`, and
/// returns the payloads of the next `count` frames.
async fn accept_peer_and_read(
    address: mpsc::Sender<SocketAddr>,
    node: u64,
    count: usize,
) -> Vec<(u8, u32, Vec<u8>)> {
    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    address
        .send(listener.local_addr().expect("bound"))
        .expect("the test waits");
    let stream = listener.accept().await.expect("a connection");
    let mut reader = FrameReader::new(stream, FrameDecoder::new(4096));
    let frame = reader.next().await.expect("read").expect("a hello");
    assert_eq!(frame.kind, kind::HELLO);
    let hello = Hello::decode(frame.payload).expect("a hello");
    assert_eq!(hello.cluster, CLUSTER);
    assert_eq!(hello.party, Party::Peer { node: 1, shard: 0 });
    let reply = HelloReply::Accepted {
        node,
        shard: 0,
        shards: 1,
        groups: 1,
    }
    .encode();
    let mut out = Vec::new();
    encode_frame_into(kind::HELLO_REPLY, 0, usize::MAX, &mut out, |out| {
        out.extend_from_slice(&reply);
    })
    .expect("a small reply");
    reader
        .stream_mut()
        .write_all(&out)
        .await
        .expect("reply sent");
    reader.set_decoder(FrameDecoder::default());
    let mut frames = Vec::with_capacity(count);
    while frames.len() < count {
        let frame = reader.next().await.expect("read").expect("a frame");
        frames.push((frame.kind, frame.group, frame.payload.to_vec()));
    }
    frames
}

#[test]
fn tcp_transport_frames_reach_a_listener_after_the_hello() {
    const FRAMES: usize = 2_000;
    let (address_sender, address_receiver) = mpsc::channel();
    let listener = executor("listener", move || async move {
        accept_peer_and_read(address_sender, 2, FRAMES).await
    });
    let address = address_receiver.recv().expect("the listener's address");
    let (done_sender, done_receiver) = mpsc::channel::<()>();
    let done_receiver = Arc::new(std::sync::Mutex::new(done_receiver));
    let sender = executor("sender", move || async move {
        let mut options = PeerLinkOptions::new(CLUSTER, 1, 0);
        options.backoff_min = Duration::from_millis(1);
        let tcp = TcpTransport::new(options);
        let transport: &dyn Transport = &tcp;
        assert_eq!(
            transport.send(2, kind::PEER, 9, &mut |out| payload(0, out)),
            Err(SendError::NotConnected),
            "not a peer yet"
        );
        transport.add_peer(2, address);
        for tries in 0.. {
            if transport.is_connected(2) {
                break;
            }
            assert!(tries < 10_000, "not connected after 10 s");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        for sequence in 0..FRAMES as u64 {
            loop {
                match transport.send(2, kind::PEER, 9, &mut |out| payload(sequence, out)) {
                    Ok(()) => break,
                    // The writer has not caught up: let it run.
                    Err(SendError::Full) => glommio::timer::sleep(Duration::from_millis(1)).await,
                    Err(error) => panic!("frame {sequence}: {error:?}"),
                }
            }
            if sequence % 64 == 63 {
                glommio::executor().yield_task_queue_now().await;
            }
        }
        // Keep the link until the listener has read everything.
        while done_receiver.lock().expect("lock").try_recv().is_err() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let stats = tcp.stats(2).expect("a peer");
        transport.remove_peer(2);
        assert!(!transport.is_connected(2));
        assert_eq!(
            transport.send(2, kind::PEER, 9, &mut |out| payload(0, out)),
            Err(SendError::NotConnected),
            "removed"
        );
        stats
    });
    let frames = listener.join().expect("the listener ran");
    done_sender.send(()).expect("the sender waits");
    let stats = sender.join().expect("the sender ran");
    assert_eq!(frames.len(), FRAMES);
    for (sequence, (frame_kind, group, bytes)) in frames.iter().enumerate() {
        assert_eq!((*frame_kind, *group), (kind::PEER, 9));
        check_payload(sequence as u64, bytes);
    }
    assert_eq!(stats.frames_queued, FRAMES as u64);
    assert_eq!(stats.connects, 1);
    println!("{FRAMES} frames over TCP in {} writes", stats.writes);
}
