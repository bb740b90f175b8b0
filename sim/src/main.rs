//! `coracle-sim --seeds N [--start S] [--threads T] [--verbose]`: runs seeds, prints each
//! failing seed with a one-line replay command, and ends with `N passed, M failed`.

use std::process::ExitCode;

use coracle_engine::PlantedBugs;
use coracle_sim::options::planted_bug;
use coracle_sim::runner::{run_seed, SeedOutcome};
use coracle_sim::SimOptions;

struct Arguments {
    seeds: u64,
    start: u64,
    threads: usize,
    verbose: bool,
    planted_bugs: PlantedBugs,
    stop_at_first_failure: bool,
    trace: bool,
    drift_ppm: Option<u64>,
    assumed_drift_ppm: Option<u64>,
}

const USAGE: &str =
    "usage: coracle-sim [--seeds N] [--start S] [--threads T] [--verbose] [--planted-bug NAME]\n\
  --seeds N    number of seeds to run (default 100)\n\
  --start S    first seed (default 0); seed S+i is run for i in 0..N\n\
  --threads T  worker threads (default: available cores)\n\
  --verbose    print every seed's outcome, not only failures\n\
  --trace      print each run's story: roles, persists, messages, commits, faults (use with --seeds 1)\n\
  --drift-ppm N          let server clocks drift up to N parts per million (default: drawn per seed)\n\
  --assumed-drift-ppm N  the drift bound servers assume for leases and expiry (default: the true one)\n\
  --planted-bug NAME  switch on a deliberate engine bug (sensitivity check) and stop at the\n\
               first seed that catches it; names: commit-previous-term, vote-without-persist,\n\
               ack-before-persist, skip-log-matching, commit-past-request,\n\
               config-change-unguarded, vote-any-log, leader-counts-unpersisted,\n\
               follower-linearizable-reads, skip-dedupe, response-before-events";

fn parse_arguments() -> Result<Arguments, String> {
    let mut arguments = Arguments {
        seeds: 100,
        start: 0,
        threads: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        verbose: false,
        planted_bugs: PlantedBugs::default(),
        stop_at_first_failure: false,
        trace: false,
        drift_ppm: None,
        assumed_drift_ppm: None,
    };
    let mut iterator = std::env::args().skip(1);
    while let Some(flag) = iterator.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = iterator.next().ok_or(format!("{name} needs a value"))?;
            text.parse()
                .map_err(|_| format!("{name}: '{text}' is not a whole number"))
        };
        match flag.as_str() {
            "--seeds" => arguments.seeds = value("--seeds")?,
            "--start" => arguments.start = value("--start")?,
            "--threads" => {
                let threads = value("--threads")?;
                if threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
                arguments.threads = usize::try_from(threads).map_err(|_| "--threads too large")?;
            }
            "--verbose" => arguments.verbose = true,
            "--drift-ppm" => arguments.drift_ppm = Some(value("--drift-ppm")?),
            "--assumed-drift-ppm" => {
                arguments.assumed_drift_ppm = Some(value("--assumed-drift-ppm")?);
            }
            "--trace" => arguments.trace = true,
            "--planted-bug" => {
                let name = iterator.next().ok_or("--planted-bug needs a name")?;
                arguments.planted_bugs = planted_bug(&name)?;
                arguments.stop_at_first_failure = true;
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(arguments)
}

fn report(outcome: &SeedOutcome, verbose: bool) {
    match &outcome.result {
        Ok(()) if verbose => println!(
            "seed {} ok: {} ops ({} unknown), {} commits, {} terms, {} crashes, trace {:016x}, {:.1} ms",
            outcome.seed,
            outcome.completed_count,
            outcome.unknown_count,
            outcome.committed_count,
            outcome.leader_terms_count,
            outcome.crashes_count,
            outcome.trace_hash,
            outcome.wall_us as f64 / 1000.0
        ),
        Ok(()) => {}
        Err(violation) => {
            println!("seed {} FAILED: {violation}", outcome.seed);
            println!(
                "  replay: cargo run --release -p coracle-sim -- --seeds 1 --start {} --verbose",
                outcome.seed
            );
        }
    }
}

fn main() -> ExitCode {
    let arguments = match parse_arguments() {
        Ok(arguments) => arguments,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("coracle-sim: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Panics inside a seed are caught and reported with the seed; keep stderr readable.
    let verbose = arguments.verbose;
    std::panic::set_hook(Box::new(move |info| {
        if verbose {
            eprintln!("{info}");
        }
    }));
    #[allow(clippy::disallowed_methods)] // Reporting speed only.
    let started = std::time::Instant::now();
    let (sender, receiver) = std::sync::mpsc::channel::<SeedOutcome>();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..arguments.threads {
        let sender = sender.clone();
        let next = std::sync::Arc::clone(&next);
        let (seeds, start) = (arguments.seeds, arguments.start);
        let (planted_bugs, stop) = (arguments.planted_bugs, arguments.stop_at_first_failure);
        let trace = arguments.trace;
        let (drift_ppm, assumed_drift_ppm) = (arguments.drift_ppm, arguments.assumed_drift_ppm);
        workers.push(std::thread::spawn(move || loop {
            let offset = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if offset >= seeds {
                break;
            }
            let mut options = SimOptions::from_seed(start + offset);
            options.planted_bugs = planted_bugs;
            options.trace = trace;
            if let Some(drift) = drift_ppm {
                options.drift_ppm_max = i64::try_from(drift).unwrap_or(i64::MAX);
            }
            options.assumed_drift_ppm = assumed_drift_ppm.or(options.assumed_drift_ppm);
            let outcome = run_seed(options);
            if stop && outcome.result.is_err() {
                // Claim every remaining seed so that the other workers stop too.
                next.store(seeds, std::sync::atomic::Ordering::Relaxed);
            }
            if sender.send(outcome).is_err() {
                break;
            }
        }));
    }
    drop(sender);
    let mut outcomes: Vec<SeedOutcome> = receiver.iter().collect();
    for worker in workers {
        if worker.join().is_err() {
            eprintln!("coracle-sim: a worker thread panicked");
            return ExitCode::from(1);
        }
    }
    outcomes.sort_by_key(|outcome| outcome.seed);
    let (mut passed, mut failed, mut simulated_us, mut operations) = (0u64, 0u64, 0u64, 0u64);
    let mut checked = coracle_sim::runner::Checked::default();
    for outcome in &outcomes {
        report(outcome, arguments.verbose);
        checked.add(&outcome.checked);
        simulated_us += outcome.simulated_us;
        operations += outcome.completed_count;
        if outcome.result.is_ok() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {:.1} s wall ({:.0} seeds/min), {:.0} s simulated ({:.0}x real time), {} client operations",
        outcomes.len(),
        wall,
        outcomes.len() as f64 / wall * 60.0,
        simulated_us as f64 / 1e6,
        simulated_us as f64 / 1e6 / wall,
        operations
    );
    println!(
        "checked: {} commands ({} resent), queries {} linearizable / {} lease / {} sequential / {} causal, {} events, {} expiries, {} client crashes",
        checked.commands,
        checked.command_retries,
        checked.queries[0],
        checked.queries[1],
        checked.queries[2],
        checked.queries[3],
        checked.events,
        checked.expiries,
        checked.client_crashes
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
