//! The command line: `coracle-bench <SUBCOMMAND>`, and the parsers for sizes and durations.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Largest payload of one entry (the entry format refuses bodies above 64 MiB).
pub const ENTRY_SIZE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Largest batch handed to one `append` (payload bytes), so that one write stays reasonable.
pub const BATCH_SIZE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The disk probe's sequential reads and writes use blocks of this size.
pub const PROBE_BLOCK_SIZE_BYTES: u64 = 1024 * 1024;

/// coracle's benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "coracle-bench", version, about, long_about = None)]
pub struct Cli {
    /// What to measure.
    #[command(subcommand)]
    pub command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The load generator: start an embedded 3-node cluster (or use --cluster), drive
    /// load from client sessions, and print throughput and commit latency percentiles;
    /// write the histogram (.hgrm) and a latency-over-time picture (SVG)
    Run(crate::run::run_args::RunArgs),
    /// Append to a segment log for a given time or size, recover it, and measure the disk's
    /// own limits in the same run and directory; print each log figure as a ratio to them.
    Log(LogArgs),
}

/// How the bench hands entries to the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Stage appends as they come; a flush runs in the background whenever none is
    /// running and writes everything staged while the previous one synced (group commit)
    GroupCommit,
    /// Await each append before the next (one write and one fdatasync per call)
    Append,
}

/// Options of `coracle-bench log`.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// How entries reach the disk
    #[arg(long, value_enum, default_value_t = Mode::GroupCommit)]
    pub mode: Mode,

    /// group-commit: the most payload bytes staged but not yet durable; the producer waits
    /// for the running flush beyond it
    /// (4 MiB measured best here: flushes of ~2 MiB keep the disk busy without long queues)
    #[arg(long, value_name = "BYTES", default_value = "4MiB", value_parser = parse_size_positive)]
    pub max_unflushed: u64,

    /// Directory to work in: the log goes to DIR/log (which must not exist yet), the disk
    /// probe's files next to it [default: a fresh directory under the system's temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Keep the written log at the end (it is removed otherwise)
    #[arg(long)]
    pub keep: bool,

    /// Stop appending after this long (or at --size, whichever comes first), e.g. 10s, 500ms, 2m
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration_positive)]
    pub duration: Duration,

    /// Stop appending after this many payload bytes (or at --duration, whichever comes
    /// first), e.g. 1GiB, 256MiB, 10GB
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = parse_size_positive)]
    pub size: u64,

    /// Payload bytes of each entry (a command entry adds 33 bytes of framing)
    #[arg(long, value_name = "BYTES", default_value = "1024", value_parser = parse_entry_size)]
    pub entry_size: u64,

    /// Entries handed to the log at a time (in append mode, one write and one fdatasync per
    /// call: a caller-side batch)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub entries_per_append: u32,

    /// Never fdatasync the segments (the log's benchmark-only unsynced mode): shows what
    /// the syncs cost; "durable" then means "handed to the device"
    #[arg(long)]
    pub unsynced: bool,

    /// Let segments be preallocated with fallocate only, instead of zero-filled ahead of
    /// time in the background (the log's default)
    #[arg(long)]
    pub no_zero_fill: bool,

    /// Segment size: segments are preallocated to it and roll when full
    #[arg(long, value_name = "BYTES", default_value = "32MiB", value_parser = parse_segment_size)]
    pub segment_size: u64,

    /// Append this long before measuring (appends during the warm-up are not counted, but
    /// they are in the log that recovery reads)
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// glommio io_memory of the executor. glommio locks it three times, and `ulimit -l` is
    /// often 8 MiB for a user that is not root: keep it at or below 2 MiB there
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_io_memory)]
    pub io_memory: u64,

    /// Bytes the disk probe writes and reads sequentially (in 1 MiB blocks)
    #[arg(long, value_name = "BYTES", default_value = "256MiB", value_parser = parse_probe_size)]
    pub probe_size: u64,

    /// 4 KiB write+fdatasync operations the disk probe times for each access pattern
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub probe_syncs: u32,

    /// Skip the disk probe (the log figures are then printed without ratios)
    #[arg(long)]
    pub no_probe: bool,

    /// Also run fio (when it is on PATH) in the same directory, as a second opinion
    #[arg(long)]
    pub fio: bool,

    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

impl LogArgs {
    /// Checks the options against each other; the message names what to change.
    ///
    /// # Errors
    /// A batch larger than [`BATCH_SIZE_BYTES_MAX`].
    pub fn check(&self) -> Result<(), String> {
        let batch = self
            .entry_size
            .saturating_mul(u64::from(self.entries_per_append));
        if batch > BATCH_SIZE_BYTES_MAX {
            return Err(format!(
                "--entry-size {} × --entries-per-append {} is {} bytes per append; at most {} \
                 (64 MiB) are allowed",
                self.entry_size, self.entries_per_append, batch, BATCH_SIZE_BYTES_MAX
            ));
        }
        Ok(())
    }
}

/// Parses a byte size: a number (fractions allowed) and an optional unit. `B`; binary `K`,
/// `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB`; decimal `KB`, `MB`, `GB`, `TB`. Units are
/// case-insensitive.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {:?} in {text:?}: use B, KiB, MiB, GiB, TiB (or K, M, G, T), or \
                 KB, MB, GB, TB",
                unit.trim()
            ))
        }
    };
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a size: expected a number and a unit, e.g. 1GiB"
        ));
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| format!("{text:?} is too large"));
    }
    let value = number
        .parse::<f64>()
        .map_err(|_| format!("{text:?} is not a size: {number:?} is not a number"))?;
    let bytes = (value * multiplier as f64).round();
    // Below 2^63, so the conversion is exact enough and cannot saturate.
    if !bytes.is_finite() || bytes >= 9.2e18 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Parses a duration: a number (fractions allowed) and a unit, `ns`, `us` (or `µs`), `ms`,
/// `s`, `m` (or `min`), `h`; a bare number is seconds.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ns, us, ms, s, m or h"
            ))
        }
    };
    let value = number.parse::<f64>().map_err(|_| {
        format!("{text:?} is not a duration: expected a number and a unit, e.g. 10s")
    })?;
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|error| format!("{text:?} is not a usable duration: {error}"))
}

fn parse_duration_positive(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be more than zero".to_string());
    }
    Ok(duration)
}

fn parse_size_in(text: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if size < min || size > max {
        return Err(format!(
            "{what} must be between {min} and {max} bytes, not {size}"
        ));
    }
    Ok(size)
}

fn parse_size_positive(text: &str) -> Result<u64, String> {
    parse_size_in(text, 1, u64::MAX, "the size")
}

fn parse_entry_size(text: &str) -> Result<u64, String> {
    parse_size_in(text, 1, ENTRY_SIZE_BYTES_MAX, "an entry's payload")
}

fn parse_segment_size(text: &str) -> Result<u64, String> {
    let size = parse_size_in(text, 64 * 1024, 1 << 40, "the segment size")?;
    if !size.is_multiple_of(4096) {
        return Err(format!(
            "the segment size must be a multiple of 4 KiB, not {size}"
        ));
    }
    Ok(size)
}

fn parse_io_memory(text: &str) -> Result<u64, String> {
    parse_size_in(text, 64 * 1024, 1 << 30, "io_memory")
}

fn parse_probe_size(text: &str) -> Result<u64, String> {
    let size = parse_size_in(text, PROBE_BLOCK_SIZE_BYTES, 1 << 40, "the probe size")?;
    if !size.is_multiple_of(PROBE_BLOCK_SIZE_BYTES) {
        return Err(format!(
            "the probe size must be a whole number of MiB, not {size} bytes"
        ));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("coracle-bench").chain(line.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1 gib"), Ok(1 << 30));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("1.2.3MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("1e300").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("10 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e400s").is_err());
    }

    #[test]
    fn defaults_are_modest() {
        let Command::Log(args) = parse(&["log"]).expect("defaults parse").command else {
            panic!("log parses as log");
        };
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.size, 1 << 30);
        assert_eq!(args.entry_size, 1024);
        assert_eq!(args.entries_per_append, 1);
        assert_eq!(args.io_memory, 1 << 20);
        assert!(args.check().is_ok());
    }

    #[test]
    fn bad_input_is_a_clap_error_not_a_panic() {
        for line in [
            &["log", "--entry-size", "0"][..],
            &["log", "--entry-size", "1TiB"],
            &["log", "--entries-per-append", "0"],
            &["log", "--size", "lots"],
            &["log", "--size", "0"],
            &["log", "--duration", "0s"],
            &["log", "--duration", "soon"],
            &["log", "--segment-size", "1000"],
            &["log", "--segment-size", "100001"],
            &["log", "--probe-size", "1.5MiB"],
            &["log", "--io-memory", "1"],
            &["log", "--no-such-option"],
            &[],
        ] {
            assert!(parse(line).is_err(), "{line:?} should be refused");
        }
    }

    #[test]
    fn run_defaults_are_the_main_job_and_bad_input_is_refused() {
        let Command::Run(args) = parse(&["run"]).expect("defaults parse").command else {
            panic!("run parses as run");
        };
        assert!(args.cluster.is_empty());
        assert_eq!((args.clients, args.payload, args.groups), (16, 128, 1));
        assert_eq!(args.rate, None);
        assert_eq!(args.duration, Duration::from_secs(10));
        assert!(args.check().is_ok());
        for line in [
            &["run", "--clients", "0"][..],
            &["run", "--reads", "1.5"],
            &["run", "--rate", "-3"],
            &["run", "--payload", "2MiB"],
            &["run", "--duration", "0s"],
            &["run", "--groups", "0"],
        ] {
            assert!(parse(line).is_err(), "{line:?} should be refused");
        }
        let Command::Run(args) = parse(&["run", "--cluster", "a:1,b:2", "--keep"])
            .expect("parses")
            .command
        else {
            panic!("run parses as run");
        };
        assert_eq!(args.cluster, vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(args.check().is_err(), "--keep is for the embedded cluster");
    }

    #[test]
    fn a_batch_too_large_is_refused() {
        let Command::Log(args) =
            parse(&["log", "--entry-size", "16MiB", "--entries-per-append", "5"])
                .expect("each option alone is fine")
                .command
        else {
            panic!("log parses as log");
        };
        assert!(args.check().is_err());
    }
}
