//! The blocking facade, called from plain threads that know nothing of glommio.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coracle_client::{
    BlockingClient, ClientOptions, ClientState, CommandConsistency, Error, QueryConsistency,
};
use coracle_engine::kv::{Get, KvEvent, Len, Put, Watch, KV_EVENT_NAME};
use coracle_engine::state_machine::{decode_value, encode_command};
use support::{ClusterThread, Spec};

fn options(addresses: &[String]) -> ClientOptions {
    let mut options = ClientOptions::new("test", addresses);
    options.backoff_unit_ms = 10;
    options.request_timeout_ms = 500;
    options.blocking_io_memory_bytes = support::TEST_IO_MEMORY_BYTES;
    options.log = Some(Arc::new(|_: &str| {}));
    options
}

fn put(key: String, value: &str) -> Put {
    Put {
        key: Bytes::from(key),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

#[test]
fn the_blocking_client_serves_many_threads_at_once() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50;
    let cluster = ClusterThread::start(Spec::new(3));
    let client = Arc::new(BlockingClient::connect(options(&cluster.addresses)).expect("connected"));
    assert_eq!(client.state(), ClientState::Connected);
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                for count in 0..PER_THREAD {
                    let key = format!("t{thread}/{count}");
                    assert_eq!(client.execute(&put(key, "v")), Ok(None));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("the thread's commands applied");
    }
    let keys = client.read(&Len, QueryConsistency::Linearizable);
    assert_eq!(keys, Ok((THREADS * PER_THREAD) as u64));
    let value = client.read(
        &Get {
            key: Bytes::from_static(b"t3/49"),
        },
        QueryConsistency::Sequential,
    );
    assert_eq!(value, Ok(Some(Bytes::from_static(b"v"))));
    let status = client.status().expect("open");
    assert_eq!(status.pending, 0);
    let client = Arc::into_inner(client).expect("the threads are done");
    client.close().expect("unregistered");
}

#[test]
fn pipelined_blocking_commands_apply_in_submission_order() {
    const COUNT: usize = 200;
    let cluster = ClusterThread::start(Spec::new(1));
    let client = BlockingClient::connect(options(&cluster.addresses)).expect("connected");
    let pending: Vec<_> = (0..COUNT)
        .map(|value| {
            let operation = encode_command(&put("k".into(), &value.to_string()));
            client.send_command(operation, CommandConsistency::Linearizable)
        })
        .collect();
    for (position, pending) in pending.into_iter().enumerate() {
        let response = pending.wait().expect("applied");
        let previous: Option<Bytes> = decode_value(&response.output).expect("an Option<Bytes>");
        let expected = position.checked_sub(1).map(|before| before.to_string());
        assert_eq!(previous.as_deref(), expected.as_deref().map(str::as_bytes));
    }
    client.close().expect("unregistered");
}

#[test]
fn events_and_close_through_the_blocking_client() {
    let cluster = ClusterThread::start(Spec::new(1));
    let client = BlockingClient::connect(options(&cluster.addresses)).expect("connected");
    let session = client.session().expect("a session");
    let watch = Watch {
        prefix: Bytes::new(),
    };
    assert_eq!(client.execute(&watch), Ok(true));
    client.execute(&put("a".into(), "1")).expect("applied");
    let event = client.next_event(Duration::from_secs(5)).expect("an event");
    assert_eq!(
        (event.name.as_str(), event.session),
        (KV_EVENT_NAME, session)
    );
    let change = KvEvent::decode(&event.payload).expect("a kv event");
    assert_eq!(change.key, Bytes::from_static(b"a"));
    assert_eq!(client.try_next_event(), None);
    client.close().expect("unregistered");
}

#[test]
fn a_refused_blocking_connect_names_the_reason() {
    let cluster = ClusterThread::start(Spec::new(1));
    let mut wrong = options(&cluster.addresses);
    wrong.cluster = "elsewhere".into();
    match BlockingClient::connect(wrong) {
        Err(Error::Refused { reason, .. }) => assert!(reason.contains("elsewhere"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut invalid = options(&cluster.addresses);
    invalid.blocking_io_memory_bytes = 0;
    match BlockingClient::connect(invalid) {
        Err(Error::InvalidOptions { option, .. }) => assert_eq!(option, "blocking_io_memory_bytes"),
        other => panic!("expected invalid options, got {other:?}"),
    }
}

#[test]
fn dropping_the_blocking_client_closes_and_joins_its_thread() {
    let cluster = ClusterThread::start(Spec::new(1));
    let client = BlockingClient::connect(options(&cluster.addresses)).expect("connected");
    assert_eq!(client.execute(&put("k".into(), "v")), Ok(None));
    drop(client); // Must return: the close is bounded and the thread ends.
}
