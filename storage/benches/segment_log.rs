//! Criterion benches of the segment log on glommio direct I/O: appends (128 B, 1 KiB and
//! 16 KiB entries in batches of 1, 16 and 256 per `append`, each one write and one
//! fdatasync), reads of one entry by index, range reads, and recovery (opening a 16 MiB log).
//!
//! One glommio executor on the bench's own thread runs everything (`LocalExecutor::run`
//! inside `iter_custom`), with 512 KiB of io_memory like the tests. Fixtures are made on
//! first use, so `cargo bench -p coracle-storage -- --test` (each bench once) stays quick.
//! Logs and fixtures live under the system's temp dir and are removed at the end; an
//! append bench starts a fresh log (untimed) whenever its log reaches 256 MiB.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_engine::{Entry, EntryBody, LogIndex, Term};
use coracle_storage::segment_log::{SegmentLog, SegmentLogOptions};
use coracle_storage::LogStorage;
use criterion::{BenchmarkId, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};

const IO_MEMORY_BYTES: usize = 512 * 1024;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// An append bench starts a fresh log (untimed) once its log holds this many payload bytes.
const APPEND_LOG_BYTES_MAX: u64 = 256 * MIB;
/// Payload bytes of the read and recovery fixtures.
const FIXTURE_LOG_BYTES: u64 = 16 * MIB;
const FIXTURE_ENTRY_SIZE_BYTES: u64 = KIB;
const RANGE_ENTRIES: u64 = 256;

#[allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time; iter_custom needs its own clock"
)]
fn now() -> Instant {
    Instant::now()
}

/// The bench's directory under the system's temp dir, removed when dropped.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let root =
            std::env::temp_dir().join(format!("coracle-storage-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("the scratch directory");
        Scratch { root }
    }

    fn directory(&self, name: &str) -> PathBuf {
        let directory = self.root.join(name);
        let _ = std::fs::remove_dir_all(&directory);
        directory
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn payload(size_bytes: u64) -> Bytes {
    (0..size_bytes)
        .map(|byte| u8::try_from(byte % 251).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into()
}

fn batch(first: LogIndex, count: u64, payload: &Bytes) -> Vec<Entry> {
    (first.0..first.0 + count)
        .map(|index| Entry {
            index: LogIndex(index),
            term: Term(1),
            timestamp_ms: 0,
            body: EntryBody::Command {
                payload: payload.clone(),
            },
        })
        .collect()
}

async fn open(directory: &Path) -> SegmentLog {
    SegmentLog::open(SegmentLogOptions::new(directory, 1))
        .await
        .expect("the log opens")
        .0
}

/// Writes a log of `FIXTURE_LOG_BYTES` of 1 KiB entries in batches of 256.
async fn fixture(directory: &Path) -> SegmentLog {
    let mut log = open(directory).await;
    let payload = payload(FIXTURE_ENTRY_SIZE_BYTES);
    let entries = FIXTURE_LOG_BYTES / FIXTURE_ENTRY_SIZE_BYTES;
    while log.last_index().0 < entries {
        let count = RANGE_ENTRIES.min(entries - log.last_index().0);
        log.append(&batch(log.last_index().next(), count, &payload))
            .await
            .expect("the fixture appends");
    }
    log
}

/// A small deterministic generator of read positions (xorshift64).
struct Positions(u64);

impl Positions {
    /// A position in `1..=last`.
    fn next(&mut self, last: u64) -> LogIndex {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        LogIndex(1 + self.0 % last)
    }
}

fn append(criterion: &mut Criterion, executor: &LocalExecutor, scratch: &Scratch) {
    let mut group = criterion.benchmark_group("append");
    for entry_size in [128, KIB, 16 * KIB] {
        let payload = payload(entry_size);
        for per_append in [1, 16, 256] {
            let name = format!("{entry_size}B");
            let directory = scratch.directory(&format!("append-{name}-{per_append}"));
            // The log and the payload bytes it holds; opened on first use.
            let mut state: Option<(SegmentLog, u64)> = None;
            group.throughput(Throughput::Bytes(entry_size * per_append));
            group.bench_function(BenchmarkId::new(name, per_append), |bencher| {
                bencher.iter_custom(|iterations| {
                    executor.run(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iterations {
                            if state
                                .as_ref()
                                .is_none_or(|(_, bytes)| *bytes >= APPEND_LOG_BYTES_MAX)
                            {
                                drop(state.take());
                                let _ = std::fs::remove_dir_all(&directory);
                                state = Some((open(&directory).await, 0));
                            }
                            let (log, bytes) = state.as_mut().expect("opened above");
                            let entries = batch(log.last_index().next(), per_append, &payload);
                            let start = now();
                            log.append(&entries).await.expect("the append succeeds");
                            total += start.elapsed();
                            *bytes += entry_size * per_append;
                        }
                        total
                    })
                });
            });
            executor.run(async { drop(state) });
            let _ = std::fs::remove_dir_all(&directory);
        }
    }
    group.finish();
}

fn read(criterion: &mut Criterion, executor: &LocalExecutor, scratch: &Scratch) {
    let directory = scratch.directory("read");
    let mut log: Option<SegmentLog> = None;
    let mut positions = Positions(0x9E37_79B9_7F4A_7C15);
    let mut group = criterion.benchmark_group("read");
    for (name, count) in [("by index", 1), ("range", RANGE_ENTRIES)] {
        group.throughput(Throughput::Bytes(FIXTURE_ENTRY_SIZE_BYTES * count));
        group.bench_function(
            BenchmarkId::new(name, format!("{count}x{FIXTURE_ENTRY_SIZE_BYTES}B")),
            |bencher| {
                bencher.iter_custom(|iterations| {
                    executor.run(async {
                        if log.is_none() {
                            log = Some(fixture(&directory).await);
                        }
                        let log = log.as_ref().expect("made above");
                        let mut into = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                        let mut total = Duration::ZERO;
                        for _ in 0..iterations {
                            let start_index = positions.next(log.last_index().0 - count + 1);
                            into.clear();
                            let start = now();
                            log.read(start_index, LogIndex(start_index.0 + count), &mut into)
                                .await
                                .expect("the read succeeds");
                            total += start.elapsed();
                            assert_eq!(into.len() as u64, count);
                        }
                        total
                    })
                });
            },
        );
    }
    group.finish();
    executor.run(async { drop(log) });
    let _ = std::fs::remove_dir_all(&directory);
}

fn recovery(criterion: &mut Criterion, executor: &LocalExecutor, scratch: &Scratch) {
    let directory = scratch.directory("recovery");
    let mut written = None;
    let mut group = criterion.benchmark_group("recovery");
    group.throughput(Throughput::Bytes(FIXTURE_LOG_BYTES));
    group.bench_function(
        BenchmarkId::new("open", format!("{}MiB", FIXTURE_LOG_BYTES / MIB)),
        |bencher| {
            bencher.iter_custom(|iterations| {
                executor.run(async {
                    let expected = match written {
                        Some(entries) => entries,
                        None => {
                            let entries = fixture(&directory).await.last_index();
                            written = Some(entries);
                            entries
                        }
                    };
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let start = now();
                        let log = open(&directory).await;
                        total += start.elapsed();
                        assert_eq!(log.last_index(), expected, "recovery finds every entry");
                    }
                    total
                })
            });
        },
    );
    group.finish();
    let _ = std::fs::remove_dir_all(&directory);
}

fn main() {
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("a glommio executor");
    let scratch = Scratch::new();
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    append(&mut criterion, &executor, &scratch);
    read(&mut criterion, &executor, &scratch);
    recovery(&mut criterion, &executor, &scratch);
    criterion.final_summary();
}
