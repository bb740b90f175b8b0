//! The storage conformance suite: every `LogStorage` implementation must pass it. Each
//! check starts from a fresh log made by `make`; `reopen` simulates a clean restart.

use std::future::Future;

use bytes::Bytes;
use coracle_engine::{Entry, EntryBody, HardState, LogIndex, ReplicaId, Term};

use crate::error::StorageError;
use crate::log_storage::LogStorage;

/// A command entry with a payload that names it.
#[must_use]
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        timestamp_ms: 1_000 + index,
        body: EntryBody::Command {
            payload: Bytes::from(format!("entry {index}/{term}")),
        },
    }
}

/// Entries `first..=last`, all of `term`.
#[must_use]
pub fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last).map(|index| entry(index, term)).collect()
}

async fn read_all<L: LogStorage>(log: &L) -> Vec<Entry> {
    let mut out = Vec::new();
    log.read(log.first_index(), log.last_index().next(), &mut out)
        .await
        .expect("the whole log reads back");
    out
}

/// Runs every check.
pub async fn run_all<L, Make, MakeFuture, Reopen, ReopenFuture>(mut make: Make, mut reopen: Reopen)
where
    L: LogStorage,
    Make: FnMut() -> MakeFuture,
    MakeFuture: Future<Output = L>,
    Reopen: FnMut(L) -> ReopenFuture,
    ReopenFuture: Future<Output = L>,
{
    empty_log(make().await).await;
    append_and_read_back(make().await).await;
    append_refuses_holes(make().await).await;
    append_replaces_a_conflicting_suffix(make().await).await;
    truncate_after_drops_the_suffix(make().await).await;
    truncate_before_drops_the_prefix(make().await).await;
    survives_reopen(make().await, &mut reopen).await;
}

async fn empty_log<L: LogStorage>(log: L) {
    assert_eq!(log.first_index(), LogIndex(1));
    assert_eq!(log.last_index(), LogIndex(0));
    assert_eq!(log.term_at(LogIndex(0)), Some(Term::ZERO));
    assert_eq!(log.term_at(LogIndex(1)), None);
    assert_eq!(log.hard_state(), HardState::default());
    assert!(read_all(&log).await.is_empty());
}

async fn append_and_read_back<L: LogStorage>(mut log: L) {
    let written = entries(1, 50, 1);
    for chunk in written.chunks(7) {
        log.append(chunk).await.expect("append");
    }
    assert_eq!(log.last_index(), LogIndex(50));
    assert_eq!(log.term_at(LogIndex(50)), Some(Term(1)));
    assert_eq!(read_all(&log).await, written);
    let mut middle = Vec::new();
    log.read(LogIndex(10), LogIndex(13), &mut middle)
        .await
        .expect("range");
    assert_eq!(middle, written[9..12].to_vec());
    let mut beyond = Vec::new();
    let result = log.read(LogIndex(50), LogIndex(52), &mut beyond).await;
    assert!(
        matches!(
            result,
            Err(StorageError::OutOfRange {
                index: LogIndex(51)
            })
        ),
        "{result:?}"
    );
}

async fn append_refuses_holes<L: LogStorage>(mut log: L) {
    log.append(&entries(1, 3, 1)).await.expect("append");
    let result = log.append(&entries(5, 6, 1)).await;
    assert!(
        matches!(result, Err(StorageError::NotContiguous { .. })),
        "{result:?}"
    );
    let gapped = vec![entry(4, 1), entry(6, 1)];
    let result = log.append(&gapped).await;
    assert!(
        matches!(result, Err(StorageError::NotContiguous { .. })),
        "{result:?}"
    );
    assert_eq!(
        log.last_index(),
        LogIndex(3),
        "a refused append writes nothing"
    );
}

async fn append_replaces_a_conflicting_suffix<L: LogStorage>(mut log: L) {
    log.append(&entries(1, 10, 1)).await.expect("append");
    log.append(&entries(6, 8, 2))
        .await
        .expect("append over a suffix");
    assert_eq!(log.last_index(), LogIndex(8));
    let mut expected = entries(1, 5, 1);
    expected.extend(entries(6, 8, 2));
    assert_eq!(read_all(&log).await, expected);
}

async fn truncate_after_drops_the_suffix<L: LogStorage>(mut log: L) {
    log.append(&entries(1, 10, 1)).await.expect("append");
    log.truncate_after(LogIndex(4)).await.expect("truncate");
    assert_eq!(log.last_index(), LogIndex(4));
    assert_eq!(log.term_at(LogIndex(5)), None);
    log.append(&entries(5, 6, 3))
        .await
        .expect("append after truncation");
    let mut expected = entries(1, 4, 1);
    expected.extend(entries(5, 6, 3));
    assert_eq!(read_all(&log).await, expected);
    log.truncate_after(LogIndex(0))
        .await
        .expect("truncate everything");
    assert_eq!(log.last_index(), LogIndex(0));
}

async fn truncate_before_drops_the_prefix<L: LogStorage>(mut log: L) {
    log.append(&entries(1, 10, 2)).await.expect("append");
    log.truncate_before(LogIndex(6))
        .await
        .expect("truncate prefix");
    assert_eq!(log.first_index(), LogIndex(6));
    assert_eq!(
        log.term_at(LogIndex(5)),
        Some(Term(2)),
        "the term before the first stays known"
    );
    assert_eq!(log.term_at(LogIndex(4)), None);
    let mut below = Vec::new();
    let result = log.read(LogIndex(3), LogIndex(7), &mut below).await;
    assert!(
        matches!(result, Err(StorageError::OutOfRange { .. })),
        "{result:?}"
    );
    assert_eq!(read_all(&log).await, entries(6, 10, 2));
}

async fn survives_reopen<L, Reopen, ReopenFuture>(mut log: L, reopen: &mut Reopen)
where
    L: LogStorage,
    Reopen: FnMut(L) -> ReopenFuture,
    ReopenFuture: Future<Output = L>,
{
    log.append(&entries(1, 20, 1)).await.expect("append");
    log.append(&entries(15, 16, 2))
        .await
        .expect("replace a suffix");
    let vote = HardState {
        term: Term(2),
        vote: Some(ReplicaId(3)),
    };
    log.hard_state_save(vote).await.expect("hard state");
    let log = reopen(log).await;
    assert_eq!(log.hard_state(), vote);
    assert_eq!(log.last_index(), LogIndex(16));
    let mut expected = entries(1, 14, 1);
    expected.extend(entries(15, 16, 2));
    assert_eq!(read_all(&log).await, expected);
}
