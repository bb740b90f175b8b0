//! Options of `coracle-bench run`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use coracle_engine::session::QueryConsistency;

use crate::args::{parse_duration, parse_size};

/// Largest payload of one write.
pub const PAYLOAD_SIZE_BYTES_MAX: u64 = 1024 * 1024;

/// The consistency of the reads in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Confirmed with a quorum round each time (shared by concurrent reads)
    Linearizable,
    /// Served on the leader's lease, without a round
    Lease,
    /// Served by the server the client is connected to, in session order
    Sequential,
    /// Served once the server has applied what the session saw
    Causal,
}

impl Consistency {
    /// The wire level.
    #[must_use]
    pub fn level(self) -> QueryConsistency {
        match self {
            Consistency::Linearizable => QueryConsistency::Linearizable,
            Consistency::Lease => QueryConsistency::LinearizableLease,
            Consistency::Sequential => QueryConsistency::Sequential,
            Consistency::Causal => QueryConsistency::Causal,
        }
    }
}

/// Which server a client connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Selection {
    /// The leader
    Leader,
    /// Any member
    Any,
    /// Followers only
    Followers,
}

impl Selection {
    /// The client's strategy.
    #[must_use]
    pub fn strategy(self) -> coracle_client::ServerSelection {
        match self {
            Selection::Leader => coracle_client::ServerSelection::Leader,
            Selection::Any => coracle_client::ServerSelection::Any,
            Selection::Followers => coracle_client::ServerSelection::Followers,
        }
    }
}

/// Options of `coracle-bench run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// An existing cluster: the addresses of its nodes (shard 0), comma-separated
    /// [default: start an embedded 3-node cluster on loopback, with durable storage in a
    /// temporary directory]
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',')]
    pub cluster: Vec<String>,

    /// The cluster's name (checked in every handshake)
    #[arg(long, value_name = "NAME", default_value = "coracle")]
    pub cluster_name: String,

    /// Closed loop: this many clients, each with its own session, each issuing its next
    /// operation when the previous one completes
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// Open loop: issue this many operations per second in all, on schedule, whatever the
    /// latency; latency counts from when each operation was due, so a stall is not hidden
    /// (coordinated omission). The clients share the rate
    #[arg(long, value_name = "OPS_PER_S", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Bytes of each written value
    #[arg(long, value_name = "BYTES", default_value = "128B", value_parser = parse_payload)]
    pub payload: u64,

    /// Fraction of operations that are reads (0 to 1)
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    pub reads: f64,

    /// Consistency of the reads
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,

    /// Which server each client talks to: the leader (commit latency without a forward),
    /// any member, or followers only (their requests are forwarded to the leader)
    #[arg(long, value_enum, default_value_t = Selection::Leader)]
    pub selection: Selection,

    /// Distinct keys written and read
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,

    /// Raft groups the clients spread over (client i uses group i % groups); for the
    /// embedded cluster, the groups it runs
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub groups: u32,

    /// Embedded cluster: shards per node
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub shards: u32,

    /// How long to measure
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration_positive)]
    pub duration: Duration,

    /// How long to run before measuring (sessions open, caches warm, segments allocated)
    #[arg(long, value_name = "TIME", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Length of each interval in the latency picture and the progress line
    #[arg(long, value_name = "TIME", default_value = "250ms", value_parser = parse_duration_positive)]
    pub interval: Duration,

    /// Where to write the histogram (.hgrm percentile distribution)
    #[arg(long, value_name = "FILE", default_value = "coracle-bench-run.hgrm")]
    pub hgrm: PathBuf,

    /// Where to write the latency-over-time picture (SVG)
    #[arg(long, value_name = "FILE", default_value = "coracle-bench-run.svg")]
    pub svg: PathBuf,

    /// Embedded cluster: where its nodes keep their data [default: a fresh directory under
    /// the system's temp dir, removed at the end]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Embedded cluster: keep the data directory at the end
    #[arg(long)]
    pub keep: bool,

    /// Embedded cluster: never fdatasync (a crash would lose acknowledged writes) — to see
    /// what durability costs
    #[arg(long)]
    pub unsynced: bool,

    /// Embedded cluster: segment size of every group's log [default: 32 MiB for one group,
    /// less as groups grow, to keep about 256 MiB of segments per node]
    #[arg(long, value_name = "BYTES", value_parser = parse_segment_size)]
    pub segment_size: Option<u64>,

    /// Embedded cluster: the nodes talk through an in-process network instead of TCP
    /// (clients still use TCP) — with --unsynced, what is left is the engine's own cost
    #[arg(long)]
    pub local_network: bool,

    /// 4 KiB write+fdatasync operations timed in the data directory before the load, for
    /// scale (0 skips it)
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub fsync_probe: u32,

    /// No progress line (for logs and scripts)
    #[arg(long)]
    pub quiet: bool,

    /// Print one JSON object instead of the summary
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// Checks the options against each other.
    ///
    /// # Errors
    /// The message names what to change.
    pub fn check(&self) -> Result<(), String> {
        if !self.cluster.is_empty()
            && (self.dir.is_some()
                || self.unsynced
                || self.keep
                || self.local_network
                || self.segment_size.is_some())
        {
            return Err("--dir, --keep, --unsynced, --local-network and --segment-size are for the embedded cluster; drop them with --cluster".into());
        }
        if let Some(rate) = self.rate {
            if rate < f64::from(self.clients) / 3600.0 {
                return Err(format!(
                    "--rate {rate} leaves each of the {} clients less than one operation an hour",
                    self.clients
                ));
            }
        }
        Ok(())
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of operations per second"))?;
    if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
        return Err("must be above 0 and at most 10,000,000".into());
    }
    Ok(rate)
}

fn parse_payload(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if size > PAYLOAD_SIZE_BYTES_MAX {
        return Err(format!(
            "at most {PAYLOAD_SIZE_BYTES_MAX} bytes (the key-value machine's value limit)"
        ));
    }
    Ok(size)
}

fn parse_segment_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if !(64 * 1024..=1024 * 1024 * 1024).contains(&size) {
        return Err("must be 64 KiB to 1 GiB".into());
    }
    Ok(size)
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let fraction: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&fraction) {
        return Err("must be between 0 and 1".into());
    }
    Ok(fraction)
}

fn parse_duration_positive(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}
