//! Latency and bandwidth summaries, the ratios of the log's figures to the disk's limits,
//! and the two outputs: a table for people and one JSON object for scripts.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::args::LogArgs;
use crate::disk_probe::{DiskLimits, FioFigures};
use crate::log_bench::LogFigures;

const MB: f64 = 1e6;

/// A histogram of latencies in µs: 1 µs to 60 s, 3 significant digits.
#[must_use]
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("the bounds are valid")
}

/// Records `elapsed` in µs (clamped to the histogram's range).
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
}

/// A latency distribution, µs.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Operations timed.
    pub count: u64,
    /// Mean, µs.
    pub mean: f64,
    /// Median, µs.
    pub p50: u64,
    /// 90th percentile, µs.
    pub p90: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// 99.9th percentile, µs.
    pub p999: u64,
    /// 99.99th percentile, µs.
    pub p9999: u64,
    /// Largest, µs.
    pub max: u64,
}

impl Latency {
    /// The summary of `histogram`.
    #[must_use]
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        Latency {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count, "mean": self.mean, "p50": self.p50, "p90": self.p90,
            "p99": self.p99, "p99.9": self.p999, "p99.99": self.p9999, "max": self.max,
        })
    }

    fn row(&self, name: &str) -> String {
        format!(
            "    {name:<30}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}",
            self.count, self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }
}

const LATENCY_HEADER: &str =
    "                                     count     p50     p90     p99   p99.9  p99.99     max";

/// Bytes moved in some time.
#[derive(Clone, Copy, Debug)]
pub struct Bandwidth {
    /// Bytes moved.
    pub bytes: u64,
    /// Time it took.
    pub elapsed: Duration,
}

impl Bandwidth {
    /// `bytes` in `elapsed`.
    #[must_use]
    pub fn new(bytes: u64, elapsed: Duration) -> Bandwidth {
        Bandwidth { bytes, elapsed }
    }

    /// Bytes per second.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// One log figure against the disk limit it should be compared with.
#[derive(Clone, Debug)]
pub struct Ratio {
    /// What is divided by what.
    pub name: &'static str,
    /// The log's figure.
    pub log: f64,
    /// The disk's limit.
    pub limit: f64,
    /// The unit of both.
    pub unit: &'static str,
    /// The bar for this ratio, if it has one, and the shape it applies to.
    pub goal: Option<&'static str>,
}

impl Ratio {
    /// `log / limit`.
    #[must_use]
    pub fn ratio(&self) -> f64 {
        self.log / self.limit
    }
}

/// Everything one run of `coracle-bench log` found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The options it ran with.
    pub args: LogArgs,
    /// Where it wrote.
    pub directory: PathBuf,
    /// The disk probe's figures (none with `--no-probe`).
    pub disk: Option<DiskLimits>,
    /// fio's figures (with `--fio`, when fio is on PATH).
    pub fio: Option<FioFigures>,
    /// The log's figures.
    pub log: LogFigures,
}

impl Report {
    /// Each log figure against its matching disk limit.
    #[must_use]
    pub fn ratios(&self) -> Vec<Ratio> {
        let samples = &self.log.samples;
        let recovery = &self.log.recovery;
        let payload_per_second = samples.rate(samples.payload_bytes) / MB;
        let append_p50 = Latency::of(&samples.latency).p50 as f64;
        let recovery_s = recovery.elapsed.as_secs_f64();
        let read_time = |bytes_per_second: f64| recovery.data_bytes as f64 / bytes_per_second;
        let mut ratios = Vec::new();
        if let Some(disk) = &self.disk {
            ratios.extend([
                Ratio {
                    name: "payload MB/s / sequential direct write MB/s",
                    log: payload_per_second,
                    limit: disk.write.per_second() / MB,
                    unit: "MB/s",
                    goal: Some(">= 0.8 for 1 KiB entries, group-committed"),
                },
                Ratio {
                    name: "payload MB/s / 1 MiB write+fdatasync MB/s",
                    log: payload_per_second,
                    limit: disk.write_synced.per_second() / MB,
                    unit: "MB/s",
                    goal: None,
                },
                Ratio {
                    name: "append p50 / 4 KiB write+fdatasync p50 (written file)",
                    log: append_p50,
                    limit: disk.sync_growing_written.p50 as f64,
                    unit: "µs",
                    goal: Some("<= 1.2 for one 4 KiB append"),
                },
                Ratio {
                    name: "append p50 / 4 KiB write+fdatasync p50 (fallocated file)",
                    log: append_p50,
                    limit: disk.sync_growing_fallocated.p50 as f64,
                    unit: "µs",
                    goal: None,
                },
                Ratio {
                    name: "recovery time / sequential read of the log data",
                    log: recovery_s,
                    limit: read_time(disk.read.per_second()),
                    unit: "s",
                    goal: Some("<= 1.5 for a 1 GiB log"),
                },
                Ratio {
                    name: "recovery time / sequential read of the segment files",
                    log: recovery_s,
                    limit: recovery.file_bytes as f64 / disk.read.per_second(),
                    unit: "s",
                    goal: None,
                },
            ]);
        }
        if let Some(fio) = &self.fio {
            ratios.extend([
                Ratio {
                    name: "payload MB/s / fio sequential write MB/s",
                    log: payload_per_second,
                    limit: fio.write_bytes_per_second / MB,
                    unit: "MB/s",
                    goal: None,
                },
                Ratio {
                    name: "append p50 / fio 4 KiB write p50 + fdatasync p50",
                    log: append_p50,
                    limit: fio.write_4k_p50_us + fio.fdatasync_p50_us,
                    unit: "µs",
                    goal: None,
                },
                Ratio {
                    name: "recovery time / fio sequential read of the log data",
                    log: recovery_s,
                    limit: read_time(fio.read_bytes_per_second),
                    unit: "s",
                    goal: None,
                },
            ]);
        }
        ratios
    }

    /// The human-readable table.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_table(&mut out);
        out
    }

    fn write_table(&self, out: &mut String) -> std::fmt::Result {
        let args = &self.args;
        writeln!(
            out,
            "coracle-bench log ({:?}{}): {} B entries, {} per append, {} segments, io_memory {}",
            args.mode,
            if args.unsynced { ", UNSYNCED" } else { "" },
            group(args.entry_size),
            group(u64::from(args.entries_per_append)),
            bytes(args.segment_size),
            bytes(args.io_memory),
        )?;
        writeln!(out, "directory: {}", self.directory.display())?;
        if let Some(disk) = &self.disk {
            writeln!(
                out,
                "\ndisk (own probe: glommio direct I/O, same directory; latencies in µs)"
            )?;
            writeln!(out, "  4 KiB write+fdatasync\n{LATENCY_HEADER}")?;
            writeln!(out, "{}", disk.sync_same_offset.row("same offset"))?;
            writeln!(
                out,
                "{}",
                disk.sync_growing_written.row("growing, written file")
            )?;
            writeln!(
                out,
                "{}",
                disk.sync_growing_fallocated.row("growing, fallocated file")
            )?;
            writeln!(
                out,
                "{}",
                disk.sync_growing_extending
                    .row("growing, extending the file")
            )?;
            for (name, bandwidth) in [
                ("sequential write, 1 MiB blocks", disk.write),
                ("1 MiB write+fdatasync each", disk.write_synced),
                ("sequential read, 1 MiB blocks", disk.read),
            ] {
                writeln!(
                    out,
                    "  {name:<34}{:>10.1} MB/s  ({} in {:.3} s)",
                    bandwidth.per_second() / MB,
                    bytes(bandwidth.bytes),
                    bandwidth.elapsed.as_secs_f64()
                )?;
            }
        }
        if let Some(fio) = &self.fio {
            writeln!(out, "\nfio (second opinion, same directory)")?;
            writeln!(
                out,
                "  4 KiB write p50 {:.0} µs, then fdatasync p50 {:.0} µs, p99 {:.0} µs",
                fio.write_4k_p50_us, fio.fdatasync_p50_us, fio.fdatasync_p99_us
            )?;
            writeln!(
                out,
                "  sequential write {:.1} MB/s, read {:.1} MB/s (1 MiB blocks)",
                fio.write_bytes_per_second / MB,
                fio.read_bytes_per_second / MB
            )?;
        }
        let samples = &self.log.samples;
        let recovery = &self.log.recovery;
        writeln!(
            out,
            "\nlog ({:.2} s measured, after {} warm-up entries)",
            samples.elapsed.as_secs_f64(),
            group(self.log.warmup_entries)
        )?;
        writeln!(
            out,
            "  entries/s                  {:>12}",
            group(samples.rate(samples.entries).round() as u64)
        )?;
        writeln!(
            out,
            "  payload MB/s               {:>12.1}   (with framing: {:.1} MB/s)",
            samples.rate(samples.payload_bytes) / MB,
            samples.rate(samples.log_bytes) / MB
        )?;
        writeln!(
            out,
            "  appends/s                  {:>12}",
            group(samples.rate(samples.appends).round() as u64)
        )?;
        writeln!(
            out,
            "  flushes/s (= fdatasyncs/s) {:>12}   ({:.1} appends per flush)",
            group(samples.rate(samples.flushes).round() as u64),
            samples.appends as f64 / samples.flushes.max(1) as f64
        )?;
        writeln!(out, "  append latency, µs\n{LATENCY_HEADER}")?;
        writeln!(out, "{}", Latency::of(&samples.latency).row("append"))?;
        if let Some(cpu) = samples.cpu {
            let cpu_s = cpu.as_secs_f64();
            writeln!(
                out,
                "  CPU                        {cpu_s:>12.2} s  ({:.0}% of one core; {:.3} s per \
                 1,000 appends, {:.4} s per 1,000 entries)",
                100.0 * cpu_s / samples.elapsed.as_secs_f64(),
                cpu_s * 1000.0 / samples.appends as f64,
                cpu_s * 1000.0 / samples.entries as f64,
            )?;
        }
        writeln!(
            out,
            "  recovery                   {:>12.3} s  ({} entries, {} segment{}, {} of log \
             data = {:.1} MB/s; {} of files)",
            recovery.elapsed.as_secs_f64(),
            group(recovery.entries),
            recovery.segments,
            if recovery.segments == 1 { "" } else { "s" },
            bytes(recovery.data_bytes),
            recovery.data_bytes as f64 / recovery.elapsed.as_secs_f64() / MB,
            bytes(recovery.file_bytes),
        )?;
        let ratios = self.ratios();
        if !ratios.is_empty() {
            writeln!(out, "\nlog / disk limit")?;
            writeln!(
                out,
                "  {:<58}{:>10}{:>10}{:>8}  goal",
                "", "log", "limit", "ratio"
            )?;
            for ratio in ratios {
                let line = format!(
                    "  {:<58}{:>10}{:>10}{:>7.2}x  {}",
                    ratio.name,
                    figure(ratio.log),
                    figure(ratio.limit),
                    ratio.ratio(),
                    ratio.goal.unwrap_or("")
                );
                writeln!(out, "{}", line.trim_end())?;
            }
        }
        Ok(())
    }

    /// One JSON object with every figure (latencies in µs, rates per second, times in s).
    #[must_use]
    pub fn json(&self) -> Value {
        let args = &self.args;
        let samples = &self.log.samples;
        let recovery = &self.log.recovery;
        let bandwidth = |bandwidth: &Bandwidth| {
            json!({
                "bytes": bandwidth.bytes,
                "seconds": bandwidth.elapsed.as_secs_f64(),
                "bytes_per_second": bandwidth.per_second(),
            })
        };
        json!({
            "config": {
                "directory": self.directory.display().to_string(),
                "entry_size_bytes": args.entry_size,
                "entries_per_append": args.entries_per_append,
                "mode": format!("{:?}", args.mode),
                "max_unflushed_bytes": args.max_unflushed,
                "unsynced": args.unsynced,
                "zero_fill_segments": !args.no_zero_fill,
                "segment_size_bytes": args.segment_size,
                "duration_s": args.duration.as_secs_f64(),
                "size_bytes": args.size,
                "warmup_s": args.warmup.as_secs_f64(),
                "io_memory_bytes": args.io_memory,
            },
            "disk": self.disk.as_ref().map(|disk| json!({
                "sync_4k_us": {
                    "same_offset": disk.sync_same_offset.json(),
                    "growing_written": disk.sync_growing_written.json(),
                    "growing_fallocated": disk.sync_growing_fallocated.json(),
                    "growing_extending": disk.sync_growing_extending.json(),
                },
                "sequential_write": bandwidth(&disk.write),
                "write_fdatasync_1m": bandwidth(&disk.write_synced),
                "sequential_read": bandwidth(&disk.read),
            })),
            "fio": self.fio.as_ref().map(|fio| json!({
                "write_4k_p50_us": fio.write_4k_p50_us,
                "fdatasync_p50_us": fio.fdatasync_p50_us,
                "fdatasync_p99_us": fio.fdatasync_p99_us,
                "write_bytes_per_second": fio.write_bytes_per_second,
                "read_bytes_per_second": fio.read_bytes_per_second,
            })),
            "log": {
                "elapsed_s": samples.elapsed.as_secs_f64(),
                "warmup_entries": self.log.warmup_entries,
                "appends": samples.appends,
                "flushes": samples.flushes,
                "flushes_per_second": samples.rate(samples.flushes),
                "entries": samples.entries,
                "payload_bytes": samples.payload_bytes,
                "log_bytes": samples.log_bytes,
                "entries_per_second": samples.rate(samples.entries),
                "appends_per_second": samples.rate(samples.appends),
                "payload_bytes_per_second": samples.rate(samples.payload_bytes),
                "log_bytes_per_second": samples.rate(samples.log_bytes),
                "append_latency_us": Latency::of(&samples.latency).json(),
                "cpu_s": samples.cpu.map(|cpu| cpu.as_secs_f64()),
                "recovery": {
                    "seconds": recovery.elapsed.as_secs_f64(),
                    "entries": recovery.entries,
                    "segments": recovery.segments,
                    "data_bytes": recovery.data_bytes,
                    "file_bytes": recovery.file_bytes,
                    "data_bytes_per_second":
                        recovery.data_bytes as f64 / recovery.elapsed.as_secs_f64(),
                },
            },
            "ratios": self.ratios().iter().map(|ratio| json!({
                "name": ratio.name,
                "log": ratio.log,
                "limit": ratio.limit,
                "unit": ratio.unit,
                "ratio": ratio.ratio(),
                "goal": ratio.goal,
            })).collect::<Vec<_>>(),
        })
    }
}

/// `1234567` as `1,234,567`.
fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A size in the largest binary unit that keeps it at or above 1.
fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 || scaled.fract() == 0.0 {
        format!("{scaled:.0} {}", UNITS[unit])
    } else {
        format!("{scaled:.2} {}", UNITS[unit])
    }
}

/// A figure with three significant digits or so.
fn figure(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(32 << 20), "32 MiB");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(figure(2134.56), "2135");
        assert_eq!(figure(0.0523), "0.052");
    }

    #[test]
    fn latencies_come_from_the_histogram() {
        let mut histogram = latency_histogram();
        for micros in 1..=1000 {
            record(&mut histogram, Duration::from_micros(micros));
        }
        record(&mut histogram, Duration::from_secs(3600));
        let latency = Latency::of(&histogram);
        assert_eq!(latency.count, 1001);
        assert_eq!(latency.p50, 501);
        assert!(latency.max >= 59_000_000, "clamped to the histogram's top");
    }
}
