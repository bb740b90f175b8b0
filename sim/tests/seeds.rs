//! The simulator on fixed seeds: every run passes every checker, and a seed replays exactly.

use coracle_sim::runner::run_seed;
use coracle_sim::SimOptions;

/// Seeds run by `cargo test`, split into chunks so the test harness spreads them over cores.
const SEEDS_COUNT: u64 = 1000;
const CHUNKS_COUNT: u64 = 4;

fn run_chunk(chunk: u64) {
    let per_chunk = SEEDS_COUNT / CHUNKS_COUNT;
    let mut failures = Vec::new();
    let mut operations = 0;
    for seed in chunk * per_chunk..(chunk + 1) * per_chunk {
        let outcome = run_seed(SimOptions::from_seed(seed));
        operations += outcome.completed_count;
        if let Err(violation) = outcome.result {
            failures.push(format!("seed {seed}: {violation}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        operations > per_chunk * 300,
        "too few client operations ran: {operations}"
    );
}

#[test]
fn seeds_0_to_249() {
    run_chunk(0);
}

#[test]
fn seeds_250_to_499() {
    run_chunk(1);
}

#[test]
fn seeds_500_to_749() {
    run_chunk(2);
}

#[test]
fn seeds_750_to_999() {
    run_chunk(3);
}

#[test]
fn one_seed_twice_gives_the_same_trace() {
    let first = run_seed(SimOptions::from_seed(42));
    let second = run_seed(SimOptions::from_seed(42));
    assert!(first.result.is_ok(), "{:?}", first.result);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.completed_count, second.completed_count);
    assert_eq!(first.committed_count, second.committed_count);
    let other = run_seed(SimOptions::from_seed(43));
    assert_ne!(
        first.trace_hash, other.trace_hash,
        "different seeds, different runs"
    );
}

#[test]
fn a_run_without_faults_completes_many_operations() {
    let mut options = SimOptions::from_seed(7);
    options.faults = false;
    let outcome = run_seed(options);
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.unknown_count, 0, "nothing is lost without faults");
    assert!(
        outcome.completed_count > 1_000,
        "{} operations",
        outcome.completed_count
    );
}
