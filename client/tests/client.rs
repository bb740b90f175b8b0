//! The async client against whole servers behind real sockets (`support`).

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use coracle_client::{
    Client, ClientOptions, ClientState, Error, QueryConsistency, ServerSelection,
};
use coracle_engine::kv::{Get, KvEvent, Len, Put, Watch, KV_EVENT_NAME};
use coracle_engine::state_machine::encode_command;
use futures_lite::StreamExt;
use support::{run, Spec, TestCluster};

fn options(cluster: &TestCluster) -> ClientOptions {
    let mut options = ClientOptions::new("test", cluster.addresses());
    // Failures are retried after a few milliseconds, not Copycat's seconds.
    options.backoff_unit_ms = 10;
    options.request_timeout_ms = 500;
    options.log = Some(Arc::new(|_: &str| {}));
    options
}

fn put(key: &str, value: &str) -> Put {
    Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

fn get(key: &str) -> Get {
    Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
    }
}

fn bytes(text: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(text.as_bytes()))
}

#[test]
fn a_command_and_queries_round_trip_through_any_server() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(3));
        cluster.leader().await;
        let client = Client::connect(options(&cluster)).await.expect("connected");
        assert_eq!(client.state(), ClientState::Connected);
        let session = client.session().expect("a session");
        assert_eq!(client.execute(&put("k", "v1")).await, Ok(None));
        let response = client
            .command(encode_command(&put("k", "v2")))
            .await
            .expect("applied");
        assert!(
            response.index.0 > session.0,
            "applied after the register entry"
        );
        for consistency in [
            QueryConsistency::Sequential,
            QueryConsistency::Causal,
            QueryConsistency::LinearizableLease,
            QueryConsistency::Linearizable,
        ] {
            let value = client.read(&get("k"), consistency).await;
            assert_eq!(value, Ok(bytes("v2")), "{consistency:?}");
        }
        assert_eq!(
            client.read(&Len, QueryConsistency::Linearizable).await,
            Ok(1)
        );
        client.close().await.expect("unregistered");
        assert_eq!(client.state(), ClientState::Closed);
        assert_eq!(client.execute(&put("k", "v3")).await, Err(Error::Closed));
        let leader = cluster.leader().await;
        assert_eq!(cluster.host_stats(leader).commands_applied, 2);
    });
}

#[test]
fn pipelined_commands_apply_and_complete_in_submission_order() {
    const COUNT: usize = 300;
    run(|| async {
        let cluster = TestCluster::start(Spec::new(1));
        cluster.leader().await;
        let client = Client::connect(options(&cluster)).await.expect("connected");
        // Submitted now, in this order, all before any completes.
        let operations: Vec<_> = (0..COUNT)
            .map(|value| client.execute(&put("k", &value.to_string())))
            .collect();
        assert_eq!(client.status().pending, COUNT);
        let completed = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = operations
            .into_iter()
            .enumerate()
            .map(|(position, operation)| {
                let completed = Rc::clone(&completed);
                glommio::spawn_local(async move {
                    let previous = operation.await.expect("applied");
                    completed.borrow_mut().push(position);
                    previous
                })
            })
            .collect();
        for (position, task) in tasks.into_iter().enumerate() {
            // Each put saw the one submitted just before it.
            let expected = position.checked_sub(1).map(|before| before.to_string());
            assert_eq!(task.await, expected.as_deref().and_then(bytes));
        }
        assert_eq!(*completed.borrow(), (0..COUNT).collect::<Vec<_>>());
        assert_eq!(client.status().pending, 0);
        client.close().await.expect("unregistered");
    });
}

#[test]
fn events_reach_the_watching_client_in_order() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(3));
        cluster.leader().await;
        let watcher = Client::connect(options(&cluster)).await.expect("connected");
        let writer = Client::connect(options(&cluster)).await.expect("connected");
        let watch = Watch {
            prefix: Bytes::from_static(b"user/"),
        };
        assert_eq!(watcher.execute(&watch).await, Ok(true));
        for (key, value) in [("user/a", "1"), ("other", "x"), ("user/b", "2")] {
            writer.execute(&put(key, value)).await.expect("applied");
        }
        let mut events = watcher.events();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = events.next().await.expect("an event");
            assert_eq!(event.name, KV_EVENT_NAME);
            assert_eq!(Some(event.session), watcher.session());
            let change = KvEvent::decode(&event.payload).expect("a kv event");
            assert_eq!(change.index, event.index);
            seen.push((change.key, change.value, event.index));
        }
        assert_eq!(
            (seen[0].0.clone(), seen[0].1.clone()),
            (Bytes::from_static(b"user/a"), bytes("1"))
        );
        assert_eq!(
            (seen[1].0.clone(), seen[1].1.clone()),
            (Bytes::from_static(b"user/b"), bytes("2"))
        );
        assert!(seen[0].2 < seen[1].2);
        // A change by the watcher itself: its event is delivered no later than the
        // response of its next linearizable command.
        watcher.execute(&put("user/c", "3")).await.expect("applied");
        watcher.execute(&put("other", "y")).await.expect("applied");
        let own = watcher
            .try_next_event()
            .expect("delivered before the response");
        let change = KvEvent::decode(&own.payload).expect("a kv event");
        assert_eq!(change.key, Bytes::from_static(b"user/c"));
        assert_eq!(watcher.try_next_event(), None);
        writer.close().await.expect("unregistered");
        let leader = cluster.leader().await;
        assert_eq!(cluster.machine(leader).watch_count(), 1);
        watcher.close().await.expect("unregistered");
        assert_eq!(watcher.next_event().await, None, "no events after close");
        // The unregister applied: the session's watches died with it.
        assert_eq!(cluster.machine(leader).watch_count(), 0);
    });
}

#[test]
fn a_wrong_cluster_name_is_refused_with_the_servers_reason() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(1));
        let mut options = options(&cluster);
        options.cluster = "staging".into();
        let error = Client::connect(options).await.expect_err("refused");
        let Error::Refused { address, reason } = &error else {
            panic!("expected a refusal, got {error:?}");
        };
        assert_eq!(address, &cluster.addresses()[0]);
        assert!(reason.contains("staging"), "{reason}");
        let message = error.to_string();
        assert!(
            message.contains("refused") && message.contains("staging"),
            "{message}"
        );
    });
}

#[test]
fn an_address_without_a_server_is_reported_and_skipped() {
    run(|| async {
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
            listener.local_addr().expect("bound").to_string()
        };
        let mut alone = ClientOptions::new("test", [dead.clone()]);
        alone.log = Some(Arc::new(|_: &str| {}));
        match Client::connect(alone).await {
            Err(Error::Unreachable { failures }) => {
                assert_eq!(failures.len(), 1);
                assert_eq!(failures[0].address, dead);
            }
            other => panic!("expected unreachable, got {other:?}"),
        }
        // With one live node among the addresses, the client goes on.
        let cluster = TestCluster::start(Spec::new(1));
        cluster.leader().await;
        let mut options = options(&cluster);
        options.addresses.insert(0, dead);
        let client = Client::connect(options).await.expect("connected");
        assert_eq!(client.execute(&put("k", "v")).await, Ok(None));
        client.close().await.expect("unregistered");
    });
}

#[test]
fn invalid_options_are_refused_before_connecting() {
    run(|| async {
        let mut options = ClientOptions::new("test", ["127.0.0.1:1"]);
        options.connect_timeout_ms = 0;
        match Client::connect(options).await {
            Err(Error::InvalidOptions { option, .. }) => assert_eq!(option, "connect_timeout_ms"),
            other => panic!("expected invalid options, got {other:?}"),
        }
    });
}

#[test]
fn a_lost_response_is_retried_on_another_server_and_applied_once() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(3));
        let leader = cluster.leader().await;
        let client = Client::connect(options(&cluster)).await.expect("connected");
        let before = client.status().server.expect("a server");
        // The command applies, but its connection closes instead of answering.
        cluster.faults.drop_command_responses.set(1);
        assert_eq!(
            client.execute(&put("k", "v")).await,
            Ok(None),
            "the first run's output"
        );
        let status = client.status();
        assert_ne!(status.server, Some(before), "moved to another server");
        assert!(status.stats.connections_lost >= 1);
        assert_eq!(
            cluster.host_stats(leader).commands_applied,
            1,
            "applied once"
        );
        assert_eq!(client.execute(&put("k", "w")).await, Ok(bytes("v")));
        assert_eq!(cluster.machine(leader).get(b"k").cloned(), bytes("w"));
        client.close().await.expect("unregistered");
    });
}

#[test]
fn a_malformed_frame_closes_the_connection_with_a_logged_reason() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(3));
        let leader = cluster.leader().await;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut options = options(&cluster);
        let logged = Arc::clone(&lines);
        options.log = Some(Arc::new(move |line: &str| {
            logged.lock().expect("not poisoned").push(line.to_string());
        }));
        let client = Client::connect(options).await.expect("connected");
        cluster.faults.garble_command_responses.set(1);
        assert_eq!(client.execute(&put("k", "v")).await, Ok(None));
        let lines = lines.lock().expect("not poisoned").clone();
        assert!(
            lines
                .iter()
                .any(|line| line.contains("lost") && line.contains("bad frame magic")),
            "{lines:?}"
        );
        assert_eq!(cluster.host_stats(leader).commands_applied, 1);
        client.close().await.expect("unregistered");
    });
}

#[test]
fn a_cut_off_server_makes_the_client_fail_over() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(3));
        let leader = cluster.leader().await;
        let mut options = options(&cluster);
        options.selection = ServerSelection::Followers;
        let client = Client::connect(options).await.expect("connected");
        assert_eq!(client.execute(&put("a", "1")).await, Ok(None));
        let follower = client.status().server.expect("a server").0;
        assert_ne!(follower, leader, "FOLLOWERS keeps off the leader");
        cluster.isolate(follower);
        assert_eq!(client.execute(&put("a", "2")).await, Ok(bytes("1")));
        let now = client.status().server.expect("a server").0;
        assert_ne!(now, follower);
        assert_eq!(cluster.connections_at(follower), 0);
        assert_eq!(cluster.host_stats(leader).commands_applied, 2);
        client.close().await.expect("unregistered");
    });
}

#[test]
fn the_group_is_reached_on_its_shard_port() {
    run(|| async {
        let mut spec = Spec::new(1);
        spec.shards = 3;
        spec.group = 5; // Shard 2: base port + 2.
        let cluster = TestCluster::start(spec);
        cluster.leader().await;
        let mut options = options(&cluster);
        options.group = 5;
        let client = Client::connect(options).await.expect("connected");
        assert_eq!(client.execute(&put("k", "v")).await, Ok(None));
        assert_eq!(
            client.read(&get("k"), QueryConsistency::Sequential).await,
            Ok(bytes("v"))
        );
        client.close().await.expect("unregistered");
    });
}

#[test]
fn a_dropped_operation_future_still_applies_and_others_complete() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(1));
        let leader = cluster.leader().await;
        let client = Client::connect(options(&cluster)).await.expect("connected");
        drop(client.execute(&put("k", "dropped")));
        assert_eq!(
            client.execute(&put("k", "kept")).await,
            Ok(bytes("dropped"))
        );
        assert_eq!(cluster.host_stats(leader).commands_applied, 2);
        client.close().await.expect("unregistered");
    });
}

#[test]
fn an_outcome_delivered_before_close_is_kept_and_later_calls_fail() {
    run(|| async {
        let cluster = TestCluster::start(Spec::new(1));
        cluster.leader().await;
        let client = Client::connect(options(&cluster)).await.expect("connected");
        let answered = client.execute(&put("k", "v"));
        while client.status().pending > 0 {
            glommio::timer::Timer::new(std::time::Duration::from_millis(1)).await;
        }
        client.close().await.expect("unregistered");
        assert_eq!(answered.await, Ok(None), "completed before the close");
        assert_eq!(client.execute(&put("k", "w")).await, Err(Error::Closed));
        assert_eq!(client.close().await, Ok(()), "closing again does nothing");
    });
}
