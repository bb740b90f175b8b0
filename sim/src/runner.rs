//! Runs seeds: one simulation per seed, then the end-of-run checks, with a one-line
//! outcome per seed.

use std::time::Instant;

use crate::options::SimOptions;
use crate::simulator::Simulator;

/// What one seed did.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// `Err` with the first violation found.
    pub result: Result<(), String>,
    /// The run's trace hash (same seed, same hash).
    pub trace_hash: u64,
    /// Client operations completed.
    pub completed_count: u64,
    /// Client operations with unknown outcome.
    pub unknown_count: u64,
    /// Entries committed.
    pub committed_count: usize,
    /// Terms that had a leader.
    pub leader_terms_count: usize,
    /// Crashes injected.
    pub crashes_count: u64,
    /// Simulated time in µs.
    pub simulated_us: u64,
    /// Wall time spent, in µs.
    pub wall_us: u64,
    /// What the session checkers judged: commands, queries by level, events, retries,
    /// expiries, client crashes.
    pub checked: Checked,
}

/// Counts of what a seed's checkers judged, summed over a run.
#[derive(Copy, Clone, Debug, Default)]
pub struct Checked {
    /// Commands completed.
    pub commands: u64,
    /// Command requests sent again with the same session and sequence.
    pub command_retries: u64,
    /// Queries completed: linearizable, lease, sequential, causal.
    pub queries: [u64; 4],
    /// Session events delivered.
    pub events: u64,
    /// Session expiries logged by leaders.
    pub expiries: u64,
    /// Clients that crashed and abandoned their session.
    pub client_crashes: u64,
}

impl Checked {
    /// Adds another seed's counts.
    pub fn add(&mut self, other: &Checked) {
        self.commands += other.commands;
        self.command_retries += other.command_retries;
        for (total, count) in self.queries.iter_mut().zip(other.queries) {
            *total += count;
        }
        self.events += other.events;
        self.expiries += other.expiries;
        self.client_crashes += other.client_crashes;
    }
}

/// Runs one simulation with `options` and checks its history.
#[must_use]
pub fn run_seed(options: SimOptions) -> SeedOutcome {
    // The wall clock only measures the simulator's speed; it never steers a run.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let seed = options.seed;
    let mut simulator = Simulator::new(options);
    // A panic is an assertion in the engine or the simulator firing: a failed seed, not a
    // crashed runner.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| simulator.run()));
    let mut result = run.unwrap_or_else(|payload| Err(format!("panic: {}", panic_text(&*payload))));
    if result.is_ok() {
        result = crate::history_check::check_history(simulator.history());
    }
    let stats = simulator.stats();
    SeedOutcome {
        seed,
        result,
        trace_hash: simulator.trace_hash(),
        completed_count: stats.completed_count,
        unknown_count: stats.unknown_count,
        committed_count: simulator.safety().committed_count(),
        leader_terms_count: simulator.safety().leader_terms_count(),
        crashes_count: stats.crashes_count,
        simulated_us: simulator.now_us(),
        wall_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        checked: Checked {
            commands: stats.commands_count,
            command_retries: stats.command_retries_count,
            queries: stats.queries_count,
            events: stats.events_delivered_count,
            expiries: stats.expiries_count,
            client_crashes: stats.client_crashes_count,
        },
    }
}

/// The message of a caught panic.
#[must_use]
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(non-text panic)".to_string()
    }
}
