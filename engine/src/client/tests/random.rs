//! Seeded random faults: requests lost, connections dropped, servers silent, time jumps.
//! Then the faults stop, and every operation must complete exactly once, in submission
//! order, with its own output; every command must apply exactly once.

use super::*;
use crate::client::ConnectionStrategy;
use crate::prng::Prng;

const STEPS: u64 = 400;
const SEEDS: u64 = 60;

fn run(seed: u64) {
    let mut prng = Prng::new(seed);
    let mut config = config();
    config.seed = seed;
    config.connection = ConnectionStrategy::FibonacciBackoff;
    let mut cluster = FakeCluster::new(1, &[1, 2, 3]);
    let mut harness = Harness::new(config, &[1, 2, 3]);
    harness.open();
    let mut expected = Vec::new();
    for step in 0..STEPS {
        match prng.range(0, 12) {
            0..=2 => {
                let text = format!("c{step}");
                let id = harness.command(&text);
                expected.push((id.0, Ok(text)));
            }
            3 => {
                let text = format!("q{step}");
                let id = harness.query(&text);
                expected.push((id.0, Ok(text)));
            }
            4 => {
                harness.outbox.pop_front();
            }
            5 => {
                if let Some(server) = harness.client.server() {
                    harness.lost(server.0);
                }
            }
            6 => {
                let server = prng.range(1, 4);
                if !cluster.down.remove(&server) {
                    cluster.down.insert(server);
                }
            }
            _ => {
                if let Some(sent) = harness.outbox.pop_front() {
                    if let Some(body) = cluster.answer(&sent) {
                        harness.answer(&sent, body);
                    }
                }
            }
        }
        if prng.chance(1, 3) {
            let at = harness.now + prng.range(0, 60);
            harness.tick(at);
        }
    }
    cluster.down.clear();
    harness.run_until(harness.now + 60_000, &mut cluster);
    assert_eq!(harness.take_completions(), expected, "seed {seed}");
    assert_eq!(harness.state(), ClientState::Connected, "seed {seed}");
    assert_eq!(harness.client.pending_count(), 0, "seed {seed}");
    // The live session applied each of its commands once, in sequence order.
    let session = harness.client.session().expect("open").0;
    let sequences: Vec<u64> = cluster
        .applications
        .iter()
        .filter(|(of, _, _)| *of == session)
        .map(|(_, sequence, _)| *sequence)
        .collect();
    let commands = expected
        .iter()
        .filter(|(_, text)| text.as_ref().is_ok_and(|text| text.starts_with('c')))
        .count();
    let in_order: Vec<u64> = (1..).take(sequences.len()).collect();
    assert_eq!(sequences, in_order, "seed {seed}");
    let earlier_sessions = cluster.applications.len() - sequences.len();
    assert_eq!(
        earlier_sessions, 0,
        "one session for the whole run, seed {seed}"
    );
    assert_eq!(sequences.len(), commands, "seed {seed}");
}

#[test]
fn random_faults_never_lose_reorder_or_duplicate_an_operation() {
    for seed in 0..SEEDS {
        run(seed);
    }
}
