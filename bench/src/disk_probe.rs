//! The disk's own limits, measured with direct I/O on glommio in the directory the log uses,
//! in the same run: what a log on this disk could reach at best.
//!
//! - 4 KiB write + fdatasync latency for four access patterns: the same offset again and
//!   again; growing offsets in an already written file (what fio's
//!   `--rw=write --direct=1 --fdatasync=1 --bs=4k` measures, the floor to beat); growing
//!   offsets in a file preallocated with `fallocate` (the segment log's pattern today:
//!   the first write to each block converts an unwritten extent); growing offsets that
//!   extend an empty file.
//! - Sequential direct write bandwidth (1 MiB writes one at a time into a file preallocated
//!   with `fallocate`, one fdatasync at the end), the same with an fdatasync after every
//!   write (a group commit of 1 MiB each), and sequential direct read bandwidth (1 MiB reads
//!   one at a time, of the file just written).
//!
//! `fio` (when asked for and on PATH) measures the same shapes as a second opinion.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use coracle_storage::device::warm_up_device;
use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;

use crate::args::PROBE_BLOCK_SIZE_BYTES;
use crate::report::{latency_histogram, record, Bandwidth, Latency};
use crate::BenchResult;

const SYNC_BLOCK_SIZE_BYTES: u64 = 4096;
const PROBE_FILE_NAME: &str = "disk-probe.data";
const PROBE_SYNC_FILE_NAME: &str = "disk-probe-sync.data";

/// What the probe measured.
#[derive(Clone, Debug)]
pub struct DiskLimits {
    /// 4 KiB write + fdatasync at offset 0, repeated.
    pub sync_same_offset: Latency,
    /// 4 KiB write + fdatasync at growing offsets of a written file (fio's pattern).
    pub sync_growing_written: Latency,
    /// 4 KiB write + fdatasync at growing offsets of a file preallocated with fallocate.
    pub sync_growing_fallocated: Latency,
    /// 4 KiB write + fdatasync appended to an empty file (each one extends it).
    pub sync_growing_extending: Latency,
    /// 1 MiB direct writes into a preallocated file, one at a time, one fdatasync at the end.
    pub write: Bandwidth,
    /// 1 MiB direct writes, each followed by an fdatasync, into a preallocated file.
    pub write_synced: Bandwidth,
    /// 1 MiB direct reads, one at a time.
    pub read: Bandwidth,
}

/// Sizes of the probe.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    /// Bytes written and read sequentially.
    pub size_bytes: u64,
    /// Timed 4 KiB write + fdatasync operations per pattern.
    pub syncs: u32,
}

/// Removes a file when dropped (also when the probe fails half-way).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn context<E: std::fmt::Display>(what: &str, path: &Path) -> impl FnOnce(E) -> String {
    let message = format!("disk probe: {what} {}", path.display());
    move |error| format!("{message}: {error}")
}

async fn create(path: &Path) -> BenchResult<DmaFile> {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .dma_open(path)
        .await
        .map_err(context("create", path))?;
    Ok(file)
}

async fn write_block(file: &DmaFile, path: &Path, offset: u64, size: u64) -> BenchResult<()> {
    let length = usize::try_from(size)?;
    let mut buffer = file.alloc_dma_buffer(length);
    buffer.as_bytes_mut().fill(0xA5);
    let written = file
        .write_at(buffer, offset)
        .await
        .map_err(context("write", path))?;
    if written != length {
        return Err(format!(
            "disk probe: short write to {}: {written} of {length} bytes",
            path.display()
        )
        .into());
    }
    Ok(())
}

/// Times `offsets.len()` 4 KiB writes, each followed by an fdatasync.
async fn sync_latency(
    file: &DmaFile,
    path: &Path,
    offsets: impl Iterator<Item = u64>,
) -> BenchResult<Latency> {
    let mut histogram: Histogram<u64> = latency_histogram();
    for offset in offsets {
        let start = Instant::now();
        write_block(file, path, offset, SYNC_BLOCK_SIZE_BYTES).await?;
        file.fdatasync().await.map_err(context("fdatasync", path))?;
        record(&mut histogram, start.elapsed());
    }
    Ok(Latency::of(&histogram))
}

/// The latency of one 4 KiB write + fdatasync at growing offsets of a file written
/// beforehand — the pattern of a log appending into zero-filled segments — `syncs` times,
/// in `directory`: the floor under any durable commit there, for scale beside a load run.
///
/// # Errors
/// Any I/O error, with the file it happened on.
pub async fn fdatasync_latency(directory: &Path, syncs: u32) -> BenchResult<Latency> {
    warm_up_device(directory).await?;
    let path = directory.join(PROBE_SYNC_FILE_NAME);
    let _remove = RemoveOnDrop(path.clone());
    let file = create(&path).await?;
    let size = u64::from(syncs.max(1)) * SYNC_BLOCK_SIZE_BYTES;
    file.pre_allocate(size, false)
        .await
        .map_err(context("preallocate", &path))?;
    let mut offset = 0;
    while offset < size {
        let length = (size - offset).min(PROBE_BLOCK_SIZE_BYTES);
        write_block(&file, &path, offset, length).await?;
        offset += length;
    }
    file.fdatasync()
        .await
        .map_err(context("fdatasync", &path))?;
    let latency = sync_latency(
        &file,
        &path,
        (0..u64::from(syncs)).map(|n| n * SYNC_BLOCK_SIZE_BYTES),
    )
    .await?;
    file.close().await.map_err(context("close", &path))?;
    Ok(latency)
}

/// Measures the disk under `directory`. Warms up the device first (glommio #605/#670), so
/// it may be the first direct I/O of the executor.
///
/// # Errors
/// Any I/O error, with the file it happened on.
pub async fn probe(directory: &Path, options: ProbeOptions) -> BenchResult<DiskLimits> {
    warm_up_device(directory).await?;
    let path = directory.join(PROBE_FILE_NAME);
    let _remove = RemoveOnDrop(path.clone());
    let blocks = options.size_bytes / PROBE_BLOCK_SIZE_BYTES;

    // Sequential write into a preallocated file (as fio does, and as the log writes into
    // preallocated segments), then read back.
    let file = create(&path).await?;
    file.pre_allocate(options.size_bytes, false)
        .await
        .map_err(context("preallocate", &path))?;
    let start = Instant::now();
    for block in 0..blocks {
        write_block(
            &file,
            &path,
            block * PROBE_BLOCK_SIZE_BYTES,
            PROBE_BLOCK_SIZE_BYTES,
        )
        .await?;
    }
    file.fdatasync()
        .await
        .map_err(context("fdatasync", &path))?;
    let write = Bandwidth::new(options.size_bytes, start.elapsed());

    let start = Instant::now();
    for block in 0..blocks {
        let read = file
            .read_at_aligned(
                block * PROBE_BLOCK_SIZE_BYTES,
                usize::try_from(PROBE_BLOCK_SIZE_BYTES)?,
            )
            .await
            .map_err(context("read", &path))?;
        if read.len() as u64 != PROBE_BLOCK_SIZE_BYTES {
            return Err(format!("disk probe: short read of {}", path.display()).into());
        }
    }
    let read = Bandwidth::new(options.size_bytes, start.elapsed());

    // 4 KiB syncs in the written file: at one offset, then at growing offsets (wrapping
    // around if the file is smaller than the syncs need).
    let syncs = u64::from(options.syncs);
    let blocks_4k = options.size_bytes / SYNC_BLOCK_SIZE_BYTES;
    let sync_same_offset = sync_latency(&file, &path, (0..syncs).map(|_| 0)).await?;
    let sync_growing_written = sync_latency(
        &file,
        &path,
        (0..syncs).map(|n| (n % blocks_4k) * SYNC_BLOCK_SIZE_BYTES),
    )
    .await?;
    file.close().await.map_err(context("close", &path))?;

    // 1 MiB write + fdatasync each, into a preallocated file.
    let file = create(&path).await?;
    file.pre_allocate(options.size_bytes, false)
        .await
        .map_err(context("preallocate", &path))?;
    let start = Instant::now();
    for block in 0..blocks {
        write_block(
            &file,
            &path,
            block * PROBE_BLOCK_SIZE_BYTES,
            PROBE_BLOCK_SIZE_BYTES,
        )
        .await?;
        file.fdatasync()
            .await
            .map_err(context("fdatasync", &path))?;
    }
    let write_synced = Bandwidth::new(options.size_bytes, start.elapsed());
    file.close().await.map_err(context("close", &path))?;

    // 4 KiB syncs at growing offsets of a preallocated file, then of an empty one.
    let sync_path = directory.join(PROBE_SYNC_FILE_NAME);
    let _remove_sync = RemoveOnDrop(sync_path.clone());
    let file = create(&sync_path).await?;
    file.pre_allocate(syncs * SYNC_BLOCK_SIZE_BYTES, false)
        .await
        .map_err(context("preallocate", &sync_path))?;
    let sync_growing_fallocated = sync_latency(
        &file,
        &sync_path,
        (0..syncs).map(|n| n * SYNC_BLOCK_SIZE_BYTES),
    )
    .await?;
    file.close().await.map_err(context("close", &sync_path))?;
    let file = create(&sync_path).await?;
    let sync_growing_extending = sync_latency(
        &file,
        &sync_path,
        (0..syncs).map(|n| n * SYNC_BLOCK_SIZE_BYTES),
    )
    .await?;
    file.close().await.map_err(context("close", &sync_path))?;

    Ok(DiskLimits {
        sync_same_offset,
        sync_growing_written,
        sync_growing_fallocated,
        sync_growing_extending,
        write,
        write_synced,
        read,
    })
}

/// What fio measured (latencies in µs).
#[derive(Clone, Debug)]
pub struct FioFigures {
    /// `fio --rw=write --ioengine=sync --direct=1 --fdatasync=1 --bs=4k --size=64m`: the
    /// fdatasync latency alone (fio times the write separately).
    pub fdatasync_p50_us: f64,
    /// The same run's fdatasync p99.
    pub fdatasync_p99_us: f64,
    /// The same run's write completion latency p50.
    pub write_4k_p50_us: f64,
    /// `--rw=write --bs=1m --direct=1 --end_fsync=1` bandwidth, bytes/s.
    pub write_bytes_per_second: f64,
    /// `--rw=read --bs=1m --direct=1` bandwidth, bytes/s.
    pub read_bytes_per_second: f64,
}

fn fio_json(directory: &Path, name: &str, options: &[String]) -> BenchResult<serde_json::Value> {
    let output = Command::new("fio")
        .arg(format!("--name={name}"))
        .arg(format!("--directory={}", directory.display()))
        .args(["--ioengine=sync", "--direct=1", "--output-format=json"])
        .args(options)
        .output()
        .map_err(|error| format!("fio: could not run it: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "fio {name} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("fio {name}: unreadable JSON: {error}"))?)
}

fn number(value: &serde_json::Value, pointer: &str) -> BenchResult<f64> {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("fio's JSON has no number at {pointer}").into())
}

/// Whether `fio` is on PATH.
#[must_use]
pub fn fio_available() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs fio's shapes of the probe in `directory` (blocking: run it outside the executor's
/// timed work) and removes its files.
///
/// # Errors
/// fio failed or printed something unexpected.
pub fn fio(directory: &Path, size_bytes: u64) -> BenchResult<FioFigures> {
    let sync_name = "coracle-fio-sync";
    let sequential_name = "coracle-fio-sequential";
    let remove = |name: &str| {
        let _ = std::fs::remove_file(directory.join(format!("{name}.0.0")));
    };
    let result = (|| {
        let sync = fio_json(
            directory,
            sync_name,
            &[
                "--rw=write".into(),
                "--fdatasync=1".into(),
                "--bs=4k".into(),
                "--size=64m".into(),
            ],
        )?;
        let size = format!("--size={size_bytes}");
        let write = fio_json(
            directory,
            sequential_name,
            &[
                "--rw=write".into(),
                "--bs=1m".into(),
                "--end_fsync=1".into(),
                size.clone(),
            ],
        )?;
        let read = fio_json(
            directory,
            sequential_name,
            &["--rw=read".into(), "--bs=1m".into(), size],
        )?;
        let to_us = 1e-3;
        Ok(FioFigures {
            fdatasync_p50_us: number(&sync, "/jobs/0/sync/lat_ns/percentile/50.000000")? * to_us,
            fdatasync_p99_us: number(&sync, "/jobs/0/sync/lat_ns/percentile/99.000000")? * to_us,
            write_4k_p50_us: number(&sync, "/jobs/0/write/clat_ns/percentile/50.000000")? * to_us,
            write_bytes_per_second: number(&write, "/jobs/0/write/bw_bytes")?,
            read_bytes_per_second: number(&read, "/jobs/0/read/bw_bytes")?,
        })
    })();
    remove(sync_name);
    remove(sequential_name);
    result
}
