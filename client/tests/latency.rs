//! What the blocking facade's thread crossings cost, against the async client on the same
//! cluster. Not a pass/fail test: it prints figures (quoted in `client/README.md`).
//!
//! `cargo test --release -p coracle-client --test latency -- --ignored --nocapture`

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_client::{BlockingClient, Client, ClientOptions};
use coracle_engine::kv::Put;
use glommio::{LocalExecutorBuilder, Placement};
use support::{ClusterThread, Spec};

const ROUNDS: usize = 5_000;

fn options(addresses: &[String]) -> ClientOptions {
    let mut options = ClientOptions::new("test", addresses);
    options.blocking_io_memory_bytes = support::TEST_IO_MEMORY_BYTES;
    options.log = Some(Arc::new(|_: &str| {}));
    options
}

fn put() -> Put {
    Put {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
    }
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |fraction: f64| {
        let position = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
        samples[position].as_secs_f64() * 1e6
    };
    println!(
        "{what:<40} p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs  ({} rounds)",
        at(0.5),
        at(0.9),
        at(0.99),
        samples.len()
    );
}

fn timed(mut round: impl FnMut()) -> Vec<Duration> {
    for _ in 0..ROUNDS / 10 {
        round(); // Warm-up.
    }
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            round();
            start.elapsed()
        })
        .collect()
}

#[test]
#[ignore = "a measurement; run it on purpose"]
fn blocking_facade_latency() {
    let cluster = ClusterThread::start(Spec::new(1));
    let addresses = cluster.addresses.clone();
    let async_samples = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(support::TEST_IO_MEMORY_BYTES)
        .spawn(move || async move {
            let client = Client::connect(options(&addresses))
                .await
                .expect("connected");
            let mut samples = Vec::with_capacity(ROUNDS);
            for round in 0..ROUNDS + ROUNDS / 10 {
                let start = Instant::now();
                client.execute(&put()).await.expect("applied");
                if round >= ROUNDS / 10 {
                    samples.push(start.elapsed());
                }
            }
            client.close().await.expect("unregistered");
            samples
        })
        .expect("an executor")
        .join()
        .expect("measured");
    report("async client: command", async_samples);

    let client = BlockingClient::connect(options(&cluster.addresses)).expect("connected");
    report(
        "blocking client: command",
        timed(|| {
            client.execute(&put()).expect("applied");
        }),
    );
    report(
        "blocking client: status (two crossings)",
        timed(|| {
            client.status().expect("open");
        }),
    );
    client.close().expect("unregistered");

    // The floor: the same two crossings between two plain threads (std channels, which
    // park and unpark with futexes like the facade's condition variable).
    let (to_helper, helper_receives) = std::sync::mpsc::channel::<()>();
    let (to_caller, caller_receives) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        while helper_receives.recv().is_ok() {
            to_caller.send(()).expect("the caller waits");
        }
    });
    report(
        "two plain threads: round trip",
        timed(|| {
            to_helper.send(()).expect("the helper runs");
            caller_receives.recv().expect("answered");
        }),
    );
    drop(to_helper);
    helper.join().expect("the helper ended");
}
