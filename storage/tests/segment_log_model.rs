//! The segment log against a model, under random interleavings of staging, flushes in
//! flight, truncations at both ends, dropped flushes and restarts.
//!
//! The only places a single-threaded shard can interleave are awaits, so the test makes
//! them explicit: it begins a flush, keeps staging (appends, conflicting suffixes,
//! truncations) while that flush is "in flight", and only then runs it. After a restart the
//! log must hold exactly what the model held at the last durable ticket.

use std::collections::BTreeMap;
use std::path::PathBuf;

use coracle_engine::{Entry, HardState, LogIndex, Prng, ReplicaId, Term};
use coracle_storage::conformance::entry;
use coracle_storage::segment_log::{SegmentLog, SegmentLogOptions};
use coracle_storage::LogStorage;
use glommio::{LocalExecutorBuilder, Placement};

/// What the log should hold: entries `first..=last`, with the one below `first` kept for
/// its term.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    first: u64,
    entries: BTreeMap<u64, Entry>,
    hard_state: HardState,
}

impl Model {
    fn last(&self) -> u64 {
        self.entries
            .last_key_value()
            .map_or(self.first - 1, |(&index, _)| index)
            .max(self.first - 1)
    }

    fn held(&self) -> Vec<Entry> {
        self.entries
            .range(self.first..)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

async fn check(log: &SegmentLog, model: &Model, context: &str) {
    assert_eq!(log.first_index(), LogIndex(model.first), "{context}: first");
    assert_eq!(log.last_index(), LogIndex(model.last()), "{context}: last");
    assert_eq!(log.hard_state(), model.hard_state, "{context}: hard state");
    let mut read = Vec::new();
    log.read(log.first_index(), log.last_index().next(), &mut read)
        .await
        .unwrap_or_else(|error| panic!("{context}: read: {error}"));
    assert_eq!(read, model.held(), "{context}: entries");
    if model.first > 1 {
        let below = model.first - 1;
        assert_eq!(
            log.term_at(LogIndex(below)),
            model.entries.get(&below).map(|e| e.term),
            "{context}: term below the first entry"
        );
    }
}

fn trace() -> bool {
    std::env::var_os("MODEL_TRACE").is_some()
}

async fn run_seed(seed: u64, directory: PathBuf) {
    let mut prng = Prng::new(seed);
    let mut options = SegmentLogOptions::new(&directory, 7);
    options.segment_size_bytes = 8 * 1024;
    options.segment_entries_max = u32::try_from(prng.range(3, 40)).expect("small");
    options.tail_cache_entries = usize::try_from(prng.range(0, 20)).expect("small");
    let (mut log, _) = SegmentLog::open(options.clone()).await.expect("open");
    let mut model = Model {
        first: 1,
        entries: BTreeMap::new(),
        hard_state: HardState::default(),
    };
    // The model as of each ticket still waiting to be durable.
    let mut at_ticket: Vec<(u64, Model)> = Vec::new();
    let mut durable = model.clone();
    let mut term = 1;
    for step in 0..300 {
        let context = format!("seed {seed} step {step}");
        let in_flight = if prng.chance(1, 2) {
            log.flush_begin()
        } else {
            None
        };
        for _ in 0..prng.range(1, 4) {
            let ticket = match prng.range(0, 100) {
                0..=59 => {
                    // Append, or replace a suffix (a follower's conflicting tail).
                    let last = model.last();
                    let from = if prng.chance(1, 4) {
                        prng.range(model.first, last + 2)
                    } else {
                        last + 1
                    };
                    if from <= last {
                        term += 1;
                    }
                    let count = prng.range(1, 12);
                    let staged: Vec<Entry> = (from..from + count).map(|i| entry(i, term)).collect();
                    model.entries.retain(|&index, _| index < from);
                    model
                        .entries
                        .extend(staged.iter().map(|e| (e.index.0, e.clone())));
                    log.stage(&staged).expect("stage")
                }
                60..=74 => {
                    let last = model.last();
                    let after = prng.range(model.first - 1, last + 1);
                    model.entries.retain(|&index, _| index <= after);
                    log.stage_truncate_after(LogIndex(after))
                        .expect("truncate after")
                }
                75..=84 => {
                    let last = model.last();
                    let before = prng.range(model.first, last + 2);
                    if before > model.first {
                        model.first = before;
                        // Entries below the kept one are gone; the model keeps them but
                        // never compares them.
                    }
                    log.stage_truncate_before(LogIndex(before))
                        .expect("truncate before")
                }
                _ => {
                    term += 1;
                    model.hard_state = HardState {
                        term: Term(term),
                        vote: Some(ReplicaId(prng.range(1, 4))),
                    };
                    log.stage_hard_state(model.hard_state).expect("hard state")
                }
            };
            if trace() {
                eprintln!(
                    "{context}: ticket {ticket} model {}..={} segments {:?}",
                    model.first,
                    model.last(),
                    log.debug_segments()
                );
            }
            at_ticket.push((ticket, model.clone()));
            check(&log, &model, &context).await;
        }
        if trace() {
            eprintln!("{context}: in flight {}", in_flight.is_some());
        }
        if let Some(job) = in_flight {
            job.run().await.expect("flush");
        }
        if prng.chance(1, 3) {
            log.flush().await.expect("flush");
        }
        let durable_ticket = log.durable_ticket();
        while at_ticket.first().is_some_and(|&(t, _)| t <= durable_ticket) {
            durable = at_ticket.remove(0).1;
        }
        if prng.chance(1, 12) {
            // A restart: what was staged but never flushed is gone, the rest is there.
            drop(log);
            log = SegmentLog::open(options.clone()).await.expect("reopen").0;
            at_ticket.clear();
            model = durable.clone();
            if model.last() + 1 < model.first {
                model.first = model.last() + 1;
            }
            check(&log, &model, &format!("{context} after a restart")).await;
        }
    }
}

#[test]
fn the_segment_log_matches_its_model_under_random_interleavings() {
    let root = std::env::temp_dir().join(format!("coracle-model-{}", std::process::id()));
    let inside = root.clone();
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 * 1024)
        .spawn(move || async move {
            // MODEL_SEEDS=N runs more (the default keeps `cargo test` quick).
            let seeds = std::env::var("MODEL_SEEDS")
                .ok()
                .and_then(|seeds| seeds.parse().ok())
                .unwrap_or(12u64);
            for seed in 0..seeds {
                run_seed(seed, inside.join(seed.to_string())).await;
            }
        })
        .expect("an executor")
        .join()
        .expect("the test ran");
    std::fs::remove_dir_all(root).expect("clean up");
}

#[test]
fn a_flush_dropped_before_it_ran_stops_the_log() {
    let root = std::env::temp_dir().join(format!("coracle-dropped-{}", std::process::id()));
    let inside = root.clone();
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 * 1024)
        .spawn(move || async move {
            let (mut log, _) = SegmentLog::open(SegmentLogOptions::new(&inside, 1))
                .await
                .expect("open");
            log.stage(&[entry(1, 1)]).expect("stage");
            let job = log.flush_begin().expect("something to flush");
            drop(job);
            assert!(log.stage(&[entry(2, 1)]).is_err(), "the log stopped");
            assert!(log.flush().await.is_err());
        })
        .expect("an executor")
        .join()
        .expect("the test ran");
    std::fs::remove_dir_all(root).expect("clean up");
}
