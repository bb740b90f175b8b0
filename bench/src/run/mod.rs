//! `coracle-bench run`: the load generator, coracle's main job.
//!
//! With no `--cluster` it starts an embedded 3-node cluster on loopback (real sockets, real
//! segment files with fdatasync, in a temporary directory), times the disk's own 4 KiB
//! write+fdatasync there for scale, opens one session per client, warms up, measures for
//! `--duration` with a progress line, and prints throughput and commit latency from an
//! HdrHistogram; it writes the histogram as `.hgrm` and a picture of latency over time as
//! SVG. See docs/BENCH.md.

pub mod hgrm;
pub mod latency_svg;
pub mod load;
pub mod run_args;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coracle_engine::kv::KvMachine;
use coracle_server::local_cluster::LocalCluster;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::report::{latency_histogram, Latency};
use crate::BenchResult;
use latency_svg::Interval;
use load::{LoadMessage, LoadPlan, PHASE_MEASURE, PHASE_STOP};
use run_args::RunArgs;

/// io_memory of each executor of the embedded cluster and of the load threads: they all
/// share one process's locked memory (docs/GLOMMIO.md).
const EMBEDDED_IO_MEMORY_BYTES: usize = 256 * 1024;
/// Clients per load thread at most; more clients get more threads.
const CLIENTS_PER_THREAD_MAX: u32 = 4096;

/// Everything the run measured.
struct Outcome {
    total: Histogram<u64>,
    intervals: Vec<Interval>,
    errors: u64,
    error_samples: Vec<String>,
    measured: Duration,
    fsync: Option<Latency>,
    description: String,
    /// Where commands spent their time on the leaders: per stage, name, count, p50, p90,
    /// p99, max (µs from arrival).
    stages: Option<Vec<coracle_net::admin::StageFigures>>,
}

/// Runs the load generator.
///
/// # Errors
/// The cluster did not start or could not be reached, a client could not open a
/// session, or an output file could not be written.
pub fn run(args: &RunArgs) -> BenchResult<()> {
    let mut cluster_guard = None;
    let (addresses, description, fsync) = if args.cluster.is_empty() {
        let directory = EmbeddedDirectory::prepare(args.dir.as_deref(), args.keep)?;
        let fsync = if args.fsync_probe > 0 {
            Some(probe_fsync(&directory.path, args.fsync_probe)?)
        } else {
            None
        };
        let mut cluster = LocalCluster::configure(3, args.shards, &directory.path)?;
        for config in cluster.configs.values_mut() {
            config.groups = args.groups;
            config.io_memory_bytes = EMBEDDED_IO_MEMORY_BYTES;
            config.unsynced_for_benchmarks_only = args.unsynced;
            // Every group of every node keeps a segment and a zero-filled spare: keep the
            // total near 256 MiB per node when there are many groups.
            config.segment_size_bytes = args.segment_size.unwrap_or(
                (128 * 1024 * 1024 / u64::from(args.groups)).clamp(64 * 1024, 32 * 1024 * 1024),
            );
        }
        if args.local_network {
            cluster.use_local_network();
        }
        cluster.start(|_group| KvMachine::default())?;
        let addresses: Vec<String> = cluster
            .addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        let description =
                format!(
            "embedded 3-node cluster on loopback ({} shard(s) per node, {} group(s), {}, peers over {}) in {}",
            args.shards,
            args.groups,
            if args.unsynced { "UNSYNCED" } else { "fdatasync" },
            if args.local_network { "an in-process network" } else { "TCP" },
            directory.path.display()
        );
        cluster_guard = Some((cluster, directory));
        (addresses, description, fsync)
    } else {
        let description = format!(
            "cluster {} ({} group(s))",
            args.cluster.join(","),
            args.groups
        );
        (args.cluster.clone(), description, None)
    };
    let resolved: Vec<std::net::SocketAddr> = addresses
        .iter()
        .map(|text| {
            std::net::ToSocketAddrs::to_socket_addrs(text.as_str())
                .ok()
                .and_then(|mut all| all.next())
                .ok_or_else(|| format!("--cluster: {text:?} is not an address"))
        })
        .collect::<Result<_, _>>()?;
    coracle_server::probe::wait_for_leaders(
        &resolved,
        &args.cluster_name,
        args.groups,
        Duration::from_secs(30),
    )?;
    let stages_before = coracle_server::probe::commit_stages(
        &resolved,
        &args.cluster_name,
        true,
        Duration::from_secs(5),
    );
    let mut outcome = drive(args, addresses, description, fsync)?;
    // The stages count from the end of the sessions' opening (warm-up included).
    outcome.stages = match stages_before {
        Ok(_) => coracle_server::probe::commit_stages(
            &resolved,
            &args.cluster_name,
            false,
            Duration::from_secs(5),
        )
        .ok(),
        Err(_) => None,
    };
    if let Some((cluster, directory)) = cluster_guard {
        drop(cluster);
        drop(directory);
    }
    write_outputs(args, &outcome)?;
    if args.json {
        println!("{}", summary_json(args, &outcome));
    } else {
        print!("{}", summary_text(args, &outcome));
    }
    if outcome.total.is_empty() {
        return Err("no operation completed while measuring".into());
    }
    Ok(())
}

/// Starts the load threads, runs the phases, collects the intervals.
fn drive(
    args: &RunArgs,
    addresses: Vec<String>,
    description: String,
    fsync: Option<Latency>,
) -> BenchResult<Outcome> {
    let threads = args.clients.div_ceil(CLIENTS_PER_THREAD_MAX).max(1);
    let phase = Arc::new(AtomicU8::new(load::PHASE_WARMUP));
    let (to_main, from_threads) = mpsc::channel();
    let mut handles = Vec::new();
    for thread in 0..threads {
        let first_client = thread * args.clients / threads;
        let clients = (thread + 1) * args.clients / threads - first_client;
        let plan = LoadPlan {
            cluster: args.cluster_name.clone(),
            addresses: addresses.clone(),
            first_client,
            clients,
            groups: args.groups,
            rate_per_client: args.rate.map(|rate| rate / f64::from(args.clients)),
            payload: usize::try_from(args.payload)?,
            reads: args.reads,
            consistency: args.consistency.level(),
            selection: args.selection.strategy(),
            keys: args.keys,
            interval: args.interval,
        };
        let (phase, to_main) = (Arc::clone(&phase), to_main.clone());
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("coracle-load-{thread}"))
            .io_memory(EMBEDDED_IO_MEMORY_BYTES)
            .spawn(move || load::run_thread(plan, phase, to_main))
            .map_err(|error| format!("cannot start load thread {thread}: {error}"))?;
        handles.push(handle);
    }
    drop(to_main);
    let stop = |handles: Vec<glommio::ExecutorJoinHandle<()>>| {
        phase.store(PHASE_STOP, Ordering::Relaxed);
        for handle in handles {
            let _ = handle.join();
        }
    };
    // Sessions first: a client that cannot open one ends the run with its reason.
    for _ in 0..threads {
        match from_threads.recv_timeout(Duration::from_secs(60)) {
            Ok(LoadMessage::Ready(Ok(()))) => {}
            Ok(LoadMessage::Ready(Err(reason))) => {
                stop(handles);
                return Err(reason.into());
            }
            Ok(LoadMessage::Interval(_)) => {}
            Err(_) => {
                stop(handles);
                return Err("the clients did not open their sessions within 60 s".into());
            }
        }
    }
    let progress = Progress::new(args.quiet);
    let warmup_end = Instant::now() + args.warmup;
    while Instant::now() < warmup_end {
        progress.warming(warmup_end.saturating_duration_since(Instant::now()));
        std::thread::sleep(
            Duration::from_millis(100).min(warmup_end.saturating_duration_since(Instant::now())),
        );
    }
    phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let start = Instant::now();
    let end = start + args.duration;
    let mut total = latency_histogram();
    let mut intervals = Vec::new();
    let mut current = latency_histogram();
    let mut reports_in_interval = 0;
    let (mut errors, mut error_samples) = (0u64, Vec::new());
    let mut interval_start = start;
    let mut finished = 0;
    let mut stopped = None;
    while finished < threads {
        if stopped.is_none() && Instant::now() >= end {
            phase.store(PHASE_STOP, Ordering::Relaxed);
            stopped = Some(start.elapsed());
        }
        let message = match from_threads.recv_timeout(Duration::from_millis(50)) {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let LoadMessage::Interval(report) = message else {
            continue;
        };
        let _ = total.add(&report.histogram);
        let _ = current.add(&report.histogram);
        errors += report.errors;
        for sample in report.error_samples {
            if error_samples.len() < 5 {
                error_samples.push(sample);
            }
        }
        if report.last {
            finished += 1;
            continue;
        }
        reports_in_interval += 1;
        if reports_in_interval == threads {
            reports_in_interval = 0;
            let now = Instant::now();
            let interval = Interval {
                end_s: now.duration_since(start).as_secs_f64(),
                operations: current.len(),
                length_s: now.duration_since(interval_start).as_secs_f64(),
                p50_us: current.value_at_quantile(0.5),
                p99_us: current.value_at_quantile(0.99),
                max_us: current.max(),
            };
            progress.measuring(now.duration_since(start), args.duration, &interval, errors);
            intervals.push(interval);
            current.reset();
            interval_start = now;
        }
    }
    // Operations completing after the stop still count (they were issued before it).
    let measured = stopped.unwrap_or_else(|| start.elapsed());
    progress.done();
    stop(handles);
    Ok(Outcome {
        total,
        intervals,
        errors,
        error_samples,
        measured,
        fsync,
        description,
        stages: None,
    })
}

/// Times 4 KiB write+fdatasync in the data directory, on an executor of its own.
fn probe_fsync(directory: &Path, syncs: u32) -> BenchResult<Latency> {
    let directory = directory.to_path_buf();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("coracle-fsync-probe")
        .io_memory(EMBEDDED_IO_MEMORY_BYTES)
        .spawn(move || async move {
            crate::disk_probe::fdatasync_latency(&directory, syncs)
                .await
                .map_err(|error| error.to_string())
        })
        .map_err(|error| format!("cannot start the disk probe: {error}"))?;
    let latency = handle
        .join()
        .map_err(|error| format!("the disk probe failed: {error}"))??;
    Ok(latency)
}

fn write_outputs(args: &RunArgs, outcome: &Outcome) -> BenchResult<()> {
    std::fs::write(&args.hgrm, hgrm::percentile_distribution(&outcome.total))
        .map_err(|error| format!("cannot write {}: {error}", args.hgrm.display()))?;
    let title = format!("coracle-bench run: {}", load_words(args));
    std::fs::write(&args.svg, latency_svg::render(&title, &outcome.intervals))
        .map_err(|error| format!("cannot write {}: {error}", args.svg.display()))?;
    Ok(())
}

fn load_words(args: &RunArgs) -> String {
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate} ops/s over {} clients", args.clients),
        None => format!("{} closed-loop clients", args.clients),
    };
    let mix = if args.reads > 0.0 {
        format!("{:.0}% {:?} reads", args.reads * 100.0, args.consistency).to_lowercase()
    } else {
        "writes only".to_string()
    };
    format!("{mode}, {} B values, {mix}", args.payload)
}

fn ms(micros: u64) -> String {
    format!("{:.3}", micros as f64 / 1000.0)
}

fn summary_text(args: &RunArgs, outcome: &Outcome) -> String {
    let latency = Latency::of(&outcome.total);
    let seconds = outcome.measured.as_secs_f64().max(1e-9);
    let mut out = String::new();
    out.push_str(&format!("coracle-bench run: {}\n", load_words(args)));
    out.push_str(&format!("  target:     {}\n", outcome.description));
    if let Some(fsync) = &outcome.fsync {
        out.push_str(&format!(
            "  disk:       4 KiB write+fdatasync p50 {} ms, p99 {} ms ({} in the data directory, before the load)\n",
            ms(fsync.p50),
            ms(fsync.p99),
            fsync.count
        ));
    }
    out.push_str(&format!(
        "  throughput: {:.0} ops/s ({} operations in {:.1} s, {} errors)\n",
        latency.count as f64 / seconds,
        latency.count,
        seconds,
        outcome.errors
    ));
    out.push_str(&format!(
        "  latency ms: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.3})\n",
        ms(latency.p50),
        ms(latency.p90),
        ms(latency.p99),
        ms(latency.p999),
        ms(latency.max),
        latency.mean / 1000.0
    ));
    if let Some(fsync) = &outcome.fsync {
        if fsync.p50 > 0 {
            out.push_str(&format!(
                "  ratio:      commit p50 = {:.1} × the disk's fdatasync p50\n",
                latency.p50 as f64 / fsync.p50 as f64
            ));
        }
    }
    if let Some(stages) = outcome
        .stages
        .as_ref()
        .filter(|stages| stages.iter().any(|stage| stage.count > 0))
    {
        let listed: Vec<String> = stages
            .iter()
            .map(|stage| format!("{} {} / {}", stage.name, ms(stage.p50_us), ms(stage.p99_us)))
            .collect();
        out.push_str(&format!(
            "  stages ms:  on the leader, from a command's arrival (p50 / p99): {}\n",
            listed.join(", ")
        ));
    }
    for sample in &outcome.error_samples {
        out.push_str(&format!("  error:      {sample}\n"));
    }
    out.push_str(&format!(
        "  wrote:      {} (histogram), {} (latency over time)\n",
        args.hgrm.display(),
        args.svg.display()
    ));
    out
}

fn summary_json(args: &RunArgs, outcome: &Outcome) -> serde_json::Value {
    let latency = Latency::of(&outcome.total);
    let seconds = outcome.measured.as_secs_f64().max(1e-9);
    json!({
        "target": outcome.description,
        "clients": args.clients,
        "rate": args.rate,
        "payload_bytes": args.payload,
        "reads": args.reads,
        "groups": args.groups,
        "operations": latency.count,
        "errors": outcome.errors,
        "seconds": seconds,
        "ops_per_s": latency.count as f64 / seconds,
        "latency_us": {
            "p50": latency.p50, "p90": latency.p90, "p99": latency.p99,
            "p999": latency.p999, "max": latency.max, "mean": latency.mean,
        },
        "fdatasync_us": outcome.fsync.map(|fsync| json!({"p50": fsync.p50, "p99": fsync.p99, "count": fsync.count})),
        "stages_us": outcome.stages.as_ref().map(|stages| stages.iter().map(|stage| json!({
            "stage": stage.name, "count": stage.count, "p50": stage.p50_us,
            "p90": stage.p90_us, "p99": stage.p99_us, "max": stage.max_us,
        })).collect::<Vec<_>>()),
        "hgrm": args.hgrm,
        "svg": args.svg,
    })
}

/// The progress line on stderr (only on a terminal, unless quiet).
struct Progress {
    show: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal as _;
        Progress {
            show: !quiet && std::io::stderr().is_terminal(),
        }
    }

    fn warming(&self, left: Duration) {
        if self.show {
            eprint!("\r\x1b[2K  warming up, {:.1} s left", left.as_secs_f64());
            let _ = std::io::stderr().flush();
        }
    }

    fn measuring(&self, elapsed: Duration, duration: Duration, interval: &Interval, errors: u64) {
        if !self.show {
            return;
        }
        let fraction = (elapsed.as_secs_f64() / duration.as_secs_f64()).clamp(0.0, 1.0);
        let width = 30;
        let filled = (fraction * f64::from(width)).round() as usize;
        let bar: String = "#".repeat(filled) + &".".repeat(width as usize - filled);
        eprint!(
            "\r\x1b[2K  [{bar}] {:.1}/{:.1} s  {:.0} ops/s  p50 {} ms  p99 {} ms  errors {errors}",
            elapsed.as_secs_f64(),
            duration.as_secs_f64(),
            interval.operations as f64 / interval.length_s.max(1e-9),
            ms(interval.p50_us),
            ms(interval.p99_us)
        );
        let _ = std::io::stderr().flush();
    }

    fn done(&self) {
        if self.show {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// The embedded cluster's directory: made fresh (or given), removed at the end unless kept.
struct EmbeddedDirectory {
    path: PathBuf,
    remove: bool,
}

impl EmbeddedDirectory {
    fn prepare(dir: Option<&Path>, keep: bool) -> BenchResult<EmbeddedDirectory> {
        let path = match dir {
            Some(path) => {
                if path.exists() && std::fs::read_dir(path)?.next().is_some() {
                    return Err(
                        format!("{} is not empty: choose another --dir", path.display()).into(),
                    );
                }
                path.to_path_buf()
            }
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos());
                std::env::temp_dir()
                    .join(format!("coracle-bench-run-{}-{nanos}", std::process::id()))
            }
        };
        std::fs::create_dir_all(&path)
            .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        Ok(EmbeddedDirectory {
            path,
            remove: !keep,
        })
    }
}

impl Drop for EmbeddedDirectory {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
