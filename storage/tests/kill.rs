//! Crash durability with real processes: a child process appends to a `SegmentLog` and
//! reports each append once it returned; the parent kills it with SIGKILL mid-stream, opens
//! the log, and checks that every reported append is there. Repeated over several kills,
//! each child continuing the log the last one left.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use coracle_engine::LogIndex;
use coracle_storage::conformance::entries;
use coracle_storage::segment_log::{SegmentLog, SegmentLogOptions};
use coracle_storage::LogStorage;
use glommio::{LocalExecutorBuilder, Placement};

const CHILD_DIRECTORY_VARIABLE: &str = "CORACLE_KILL_TEST_DIRECTORY";
const KILLS_COUNT: u64 = 5;
/// Appends the parent waits to see acknowledged before it kills the child.
const ACKS_BEFORE_KILL: u64 = 40;

fn run<T: Send + 'static, F: std::future::Future<Output = T>>(
    future: impl FnOnce() -> F + Send + 'static,
) -> T {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 * 1024)
        .spawn(move || async move { future().await })
        .expect("an executor")
        .join()
        .expect("the executor finished")
}

fn options(directory: PathBuf) -> SegmentLogOptions {
    SegmentLogOptions {
        segment_size_bytes: 64 * 1024,
        ..SegmentLogOptions::new(directory, 1)
    }
}

/// The child's side: append batches of three entries forever, printing each acknowledged
/// last index. Does nothing unless the parent started this process.
#[test]
fn child_appends_until_killed() {
    let Some(directory) = std::env::var_os(CHILD_DIRECTORY_VARIABLE) else {
        return;
    };
    run(move || async move {
        let (mut log, _) = SegmentLog::open(options(PathBuf::from(directory)))
            .await
            .expect("open");
        loop {
            let first = log.last_index().0 + 1;
            log.append(&entries(first, first + 2, 1))
                .await
                .expect("append");
            // Printed only after `append` returned: the promise that the entries are durable.
            println!("acked {}", first + 2);
        }
    });
}

#[test]
fn no_acknowledged_append_is_lost_to_sigkill() {
    let directory = std::env::temp_dir().join(format!("coracle-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    let mut acknowledged = 0;
    for kill in 0..KILLS_COUNT {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "child_appends_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIRECTORY_VARIABLE, &directory)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("piped");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            if let Some(index) = line.strip_prefix("acked ") {
                acknowledged = index.parse().expect("an index");
                seen += 1;
                if seen == ACKS_BEFORE_KILL + kill * 7 {
                    child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix.
                    break;
                }
            }
        }
        child.wait().expect("reaped");
        let reopened = directory.clone();
        let (last, read) = run(move || async move {
            let (log, _) = SegmentLog::open(options(reopened)).await.expect("reopen");
            let mut read = Vec::new();
            log.read(LogIndex(1), log.last_index().next(), &mut read)
                .await
                .expect("read");
            (log.last_index(), read)
        });
        assert!(
            last.0 >= acknowledged,
            "kill {kill}: acknowledged through {acknowledged}, the log ends at {last}"
        );
        assert_eq!(
            read,
            entries(1, last.0, 1),
            "kill {kill}: the log is intact"
        );
    }
    assert!(
        acknowledged >= KILLS_COUNT * ACKS_BEFORE_KILL * 3,
        "the children made progress"
    );
    std::fs::remove_dir_all(&directory).expect("clean up");
}
