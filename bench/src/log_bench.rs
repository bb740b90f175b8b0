//! The segment log under a stream of appends, then its recovery.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_engine::entry_codec::encoded_size_bytes;
use coracle_engine::{Entry, EntryBody, LogIndex, Term};
use coracle_storage::segment::{BATCH_HEADER_SIZE_BYTES, SEGMENT_HEADER_SIZE_BYTES};
use coracle_storage::segment_log::{SegmentLog, SegmentLogOptions};
use coracle_storage::LogStorage;
use hdrhistogram::Histogram;

use crate::args::{LogArgs, Mode};
use crate::report::{latency_histogram, record};
use crate::BenchResult;

/// What to append, and when to stop (whichever of `duration` and `size_bytes` comes first).
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Payload bytes of each entry.
    pub entry_size_bytes: u64,
    /// Entries handed to each `append` call.
    pub entries_per_append: u32,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many payload bytes.
    pub size_bytes: u64,
    /// How entries reach the disk.
    pub mode: Mode,
    /// Group commit: the most payload bytes staged and not yet durable.
    pub max_unflushed_bytes: u64,
}

/// What one run of appends measured.
#[derive(Clone, Debug)]
pub struct Samples {
    /// Latency of each `append` call, µs.
    pub latency: Histogram<u64>,
    /// Batches handed to the log (`append` or `stage` calls).
    pub appends: u64,
    /// Flushes: each one write and one fdatasync per segment it touched.
    pub flushes: u64,
    /// Entries appended.
    pub entries: u64,
    /// Payload bytes appended.
    pub payload_bytes: u64,
    /// Bytes the log wrote for them: entries with their framing, and batch headers.
    pub log_bytes: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// CPU time of this process (every thread, the io_uring workers included) during the
    /// run, where `/proc/self/stat` tells it.
    pub cpu: Option<Duration>,
}

impl Samples {
    /// Nothing measured yet.
    #[must_use]
    pub fn empty() -> Samples {
        Samples {
            latency: latency_histogram(),
            appends: 0,
            flushes: 0,
            entries: 0,
            payload_bytes: 0,
            log_bytes: 0,
            elapsed: Duration::ZERO,
            cpu: None,
        }
    }

    /// Per second of wall time.
    #[must_use]
    pub fn rate(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// What recovery (opening the written log again) measured.
#[derive(Clone, Copy, Debug)]
pub struct Recovery {
    /// Time `SegmentLog::open` took.
    pub elapsed: Duration,
    /// Entries it found.
    pub entries: u64,
    /// Segments it found.
    pub segments: u64,
    /// Bytes of log data: segment headers, batch headers, entries.
    pub data_bytes: u64,
    /// Bytes of the segment files (they are preallocated to the segment size).
    pub file_bytes: u64,
}

/// Everything `coracle-bench log` measured on the log.
#[derive(Clone, Debug)]
pub struct LogFigures {
    /// The measured appends (after the warm-up).
    pub samples: Samples,
    /// Entries appended during the warm-up (not measured, but recovered).
    pub warmup_entries: u64,
    /// The reopening of the whole log.
    pub recovery: Recovery,
}

fn entry(index: LogIndex, payload: &Bytes) -> Entry {
    Entry {
        index,
        term: Term(1),
        timestamp_ms: 0,
        body: EntryBody::Command {
            payload: payload.clone(),
        },
    }
}

/// CPU time of this process so far (user + system, every thread), from `/proc/self/stat`.
fn cpu_time() -> Option<Duration> {
    /// Linux reports times in clock ticks of `USER_HZ`, 100 on every architecture we run on.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start with the state, field 3;
    // utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / TICKS_PER_SECOND,
    ))
}

/// Appends `workload` to `log` in its mode.
///
/// # Errors
/// Any error of the log.
pub async fn drive_appends(log: &mut SegmentLog, workload: &Workload) -> BenchResult<Samples> {
    match workload.mode {
        Mode::Append => drive_awaited_appends(log, workload).await,
        Mode::GroupCommit => drive_group_commit(log, workload).await,
    }
}

/// One producer stages batches as fast as the log takes them; a flush runs in the
/// background whenever none is running, writing everything staged since the last one began
/// (the shard runtime's group commit, with one group). A batch's latency runs from its stage
/// to the end of the flush that made it durable. The producer yields after each batch so
/// that the flush's I/O completions are reaped, and waits for the flush once
/// `max_unflushed_bytes` are staged and not durable.
///
/// # Errors
/// Any error of the log.
async fn drive_group_commit(log: &mut SegmentLog, workload: &Workload) -> BenchResult<Samples> {
    let entry_size = usize::try_from(workload.entry_size_bytes)?;
    let per_append = usize::try_from(workload.entries_per_append)?;
    let payload = payload_of(entry_size);
    let mut next = log.last_index().next();
    let entry_bytes = encoded_size_bytes(&entry(next, &payload)) as u64;
    let append_payload_bytes = u64::from(workload.entries_per_append) * workload.entry_size_bytes;
    let mut samples = Samples::empty();
    // (ticket, staged at) of batches not yet durable, oldest first.
    let mut waiting: std::collections::VecDeque<(u64, Instant)> = std::collections::VecDeque::new();
    let mut batch = Vec::with_capacity(per_append);
    let flushes_before = log.flush_count();
    let cpu_start = cpu_time();
    let start = Instant::now();
    let mut stop = false;
    loop {
        let unflushed = waiting.len() as u64 * append_payload_bytes;
        if !stop && unflushed < workload.max_unflushed_bytes {
            batch.clear();
            for _ in 0..per_append {
                batch.push(entry(next, &payload));
                next = next.next();
            }
            let ticket = log.stage(&batch)?;
            waiting.push_back((ticket, Instant::now()));
            samples.appends += 1;
            samples.entries += u64::from(workload.entries_per_append);
            samples.payload_bytes += append_payload_bytes;
            samples.log_bytes += u64::from(workload.entries_per_append) * entry_bytes;
            stop = samples.payload_bytes >= workload.size_bytes
                || start.elapsed() >= workload.duration;
        } else if let Some(&(oldest, _)) = waiting.front() {
            // Too much staged (or the end): wait for the flush that covers the oldest.
            log.flush_through(oldest).await?;
        }
        let durable = log.durable_ticket();
        let now = Instant::now();
        while let Some(&(ticket, staged_at)) = waiting.front() {
            if ticket > durable {
                break;
            }
            record(&mut samples.latency, now - staged_at);
            waiting.pop_front();
        }
        if !log.is_flushing() {
            if let Some(job) = log.flush_begin() {
                glommio::spawn_local(job.run()).detach();
            } else if stop && waiting.is_empty() {
                break;
            } else {
                log.check_running()?;
            }
        }
        // Leave the task queue, so that the executor reaps the flush's I/O completions.
        glommio::executor().yield_task_queue_now().await;
    }
    // Each flush adds one batch header per segment it writes to (one, but at a roll).
    samples.flushes = log.flush_count() - flushes_before;
    samples.log_bytes += samples.flushes * BATCH_HEADER_SIZE_BYTES as u64;
    samples.elapsed = start.elapsed();
    samples.cpu = cpu_start
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(samples)
}

fn payload_of(entry_size: usize) -> Bytes {
    (0..entry_size)
        .map(|byte| u8::try_from(byte % 251).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into()
}

/// Appends `workload` to `log`, one `append` call at a time, each awaited before the next
/// (closed loop, one caller), and times every call.
async fn drive_awaited_appends(log: &mut SegmentLog, workload: &Workload) -> BenchResult<Samples> {
    let entry_size = usize::try_from(workload.entry_size_bytes)?;
    let per_append = usize::try_from(workload.entries_per_append)?;
    let payload = payload_of(entry_size);
    let mut next = log.last_index().next();
    let entry_bytes = encoded_size_bytes(&entry(next, &payload)) as u64;
    let append_log_bytes =
        BATCH_HEADER_SIZE_BYTES as u64 + u64::from(workload.entries_per_append) * entry_bytes;
    let append_payload_bytes = u64::from(workload.entries_per_append) * workload.entry_size_bytes;

    let mut samples = Samples::empty();
    let mut batch = Vec::with_capacity(per_append);
    let cpu_start = cpu_time();
    let start = Instant::now();
    loop {
        batch.clear();
        for _ in 0..per_append {
            batch.push(entry(next, &payload));
            next = next.next();
        }
        let append_start = Instant::now();
        log.append(&batch).await?;
        record(&mut samples.latency, append_start.elapsed());
        samples.appends += 1;
        samples.flushes += 1;
        samples.entries += u64::from(workload.entries_per_append);
        samples.payload_bytes += append_payload_bytes;
        samples.log_bytes += append_log_bytes;
        if samples.payload_bytes >= workload.size_bytes || start.elapsed() >= workload.duration {
            break;
        }
    }
    samples.elapsed = start.elapsed();
    samples.cpu = cpu_start
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(samples)
}

fn segment_file_bytes(directory: &Path) -> BenchResult<u64> {
    let mut total = 0;
    for item in std::fs::read_dir(directory)? {
        let item = item?;
        if item.file_name().to_string_lossy().ends_with(".segment") {
            total += item.metadata()?.len();
        }
    }
    Ok(total)
}

/// Opens a new log in `directory`, appends for the warm-up and then for the measured
/// workload, closes it, and times its reopening (recovery).
///
/// # Errors
/// The directory holds a log already, the log failed, or recovery found something other
/// than what was written.
pub async fn run(directory: &Path, args: &LogArgs) -> BenchResult<LogFigures> {
    let options = SegmentLogOptions {
        segment_size_bytes: args.segment_size,
        unsynced_for_benchmarks_only: args.unsynced,
        zero_fill_segments: !args.no_zero_fill,
        ..SegmentLogOptions::new(directory, 1)
    };
    let (mut log, report) = SegmentLog::open(options.clone()).await?;
    if report.entries_count != 0 {
        return Err(format!(
            "{} holds a log already ({} entries)",
            directory.display(),
            report.entries_count
        )
        .into());
    }
    let workload = Workload {
        entry_size_bytes: args.entry_size,
        entries_per_append: args.entries_per_append,
        duration: args.duration,
        size_bytes: args.size,
        mode: args.mode,
        max_unflushed_bytes: args.max_unflushed,
    };
    let mut warmup_log_bytes = 0;
    let mut warmup_entries = 0;
    if !args.warmup.is_zero() {
        let warmup = Workload {
            duration: args.warmup,
            size_bytes: u64::MAX,
            ..workload
        };
        let samples = drive_appends(&mut log, &warmup).await?;
        warmup_entries = samples.entries;
        warmup_log_bytes = samples.log_bytes;
    }
    let samples = drive_appends(&mut log, &workload).await?;
    let written = log.last_index();
    drop(log);

    let start = Instant::now();
    let (log, report) = SegmentLog::open(options).await?;
    let elapsed = start.elapsed();
    if log.last_index() != written || report.entries_count as u64 != written.0 {
        return Err(format!(
            "recovery found {} entries up to index {}, but {} were written",
            report.entries_count,
            log.last_index(),
            written
        )
        .into());
    }
    if let Some((path, torn)) = &report.torn {
        return Err(format!(
            "recovery found a torn write in {} after a clean close: {torn:?}",
            path.display()
        )
        .into());
    }
    let mut last = Vec::new();
    log.read(written, written.next(), &mut last).await?;
    let payload_size = last.first().and_then(|entry| match &entry.body {
        EntryBody::Command { payload } => Some(payload.len() as u64),
        _ => None,
    });
    if payload_size != Some(args.entry_size) {
        return Err(format!(
            "the last entry read back is not the one written: payload of {payload_size:?} \
             bytes, {} written",
            args.entry_size
        )
        .into());
    }
    drop(log);
    let segments = report.segments_count as u64;
    Ok(LogFigures {
        recovery: Recovery {
            elapsed,
            entries: report.entries_count as u64,
            segments,
            data_bytes: segments * SEGMENT_HEADER_SIZE_BYTES as u64
                + warmup_log_bytes
                + samples.log_bytes,
            file_bytes: segment_file_bytes(directory)?,
        },
        samples,
        warmup_entries,
    })
}
