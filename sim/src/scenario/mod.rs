//! Datadriven scenario transcripts, in the style of etcd-raft's `testdata/*.txt`.
//!
//! A transcript in `sim/testdata/` drives a [`ScenarioCluster`] by hand, one command per
//! block, and holds the expected output of each command. `sim/tests/scenarios.rs` runs
//! every transcript; `REWRITE=1 cargo test -p coracle-sim --test scenarios` rewrites them
//! with the actual output (review the diff before keeping it).
//!
//! Commands (ids are node ids; `(..)` lists are comma-separated):
//!
//! | command | what it does |
//! |---|---|
//! | `add-nodes N [voters=(..)] [passive=(..)] [reserve=(..)] [election-timeout=MS] [heartbeat=MS] [append-bytes-max=N] [seed=N] [planted-bug=NAME]` | nodes 1..=N (voters default to all; unlisted nodes start inactive) |
//! | `campaign ID` | ticks ID in 10 ms steps until its election timer fires |
//! | `tick ID MS` | moves ID's clock on by MS and ticks it once |
//! | `tick-heartbeat ID...` | ticks each by one heartbeat interval |
//! | `tick-election ID...` | ticks each by twice the election timeout (its timer fires) |
//! | `deliver-msgs [ID...]` | delivers the messages queued now to those nodes (all if none) |
//! | `drop-msgs [ID...]` | loses the messages queued now to those nodes (all if none) |
//! | `persist ID...` / `persist-all` | makes written state durable and tells the replica |
//! | `stabilize` | persists and delivers until nothing changes; prints the events |
//! | `partition (..) (..)` / `heal` | splits / rejoins the network (unnamed nodes are alone) |
//! | `propose ID DATA` | submits a command at ID |
//! | `crash ID` / `restart ID` | stops ID (unpersisted writes and its queued messages are lost) / starts it from disk |
//! | `membership ID join\|leave\|promote\|demote TARGET [TYPE]` | asks ID to change TARGET's membership |
//! | `status [ID...]` | role, term, vote, leader, last entry, commit, configuration |
//! | `log ID...` | entries as `index/term kind`, flagged uncommitted or unpersisted |
//!
//! Every node has its own clock, advanced only by ticks addressed to it (as etcd-raft's
//! per-node ticks): a script can fire one node's election timer while the others still
//! believe in their leader. Events printed by commands: `N: became ROLE at term T[, leader
//! L]`, `N: follows leader L at term T`, `N: lost leader L at term T`, `N: committed through I`,
//! `N: configuration conf@I ... in force`, `N: election timer fired; pre-vote for term T`,
//! `N: truncated log after I (dropped J..=K)`, `N: membership request R ok|refused: ...`.

pub mod cluster;
pub mod commands;
pub mod datadriven;
pub mod format;

use std::path::Path;

pub use cluster::{ScenarioCluster, Settings};
pub use commands::Scenario;

/// Runs the transcript at `path` against a fresh [`Scenario`].
///
/// # Panics
/// On the first output that differs from the transcript (unless `REWRITE=1`), a script
/// error, or a panic in the engine or a checker, naming the file and line.
pub fn run_transcript(path: &Path) {
    let mut scenario = Scenario::default();
    datadriven::run_file(path, |directive| scenario.handle(directive));
}
