//! Runs the datadriven transcripts in `sim/testdata/`, one test per file.
//! `REWRITE=1 cargo test -p coracle-sim --test scenarios` rewrites them with the actual output.

use std::path::{Path, PathBuf};

use coracle_sim::scenario::run_transcript;

/// Every transcript, by file name; `every_transcript_is_run` keeps this list complete.
const TRANSCRIPTS: &[&str] = &[
    "election.txt",
    "prevote_disruptive_node.txt",
    "leader_isolation.txt",
    "figure8.txt",
    "figure8_overwrite.txt",
    "figure8_planted_bug.txt",
    "membership.txt",
    "passive_catchup.txt",
    "vote_without_persist_planted_bug.txt",
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn run(name: &str) {
    assert!(
        TRANSCRIPTS.contains(&name),
        "{name} is missing from TRANSCRIPTS"
    );
    run_transcript(&testdata().join(name));
}

#[test]
fn election() {
    run("election.txt");
}

#[test]
fn prevote_disruptive_node() {
    run("prevote_disruptive_node.txt");
}

#[test]
fn leader_isolation() {
    run("leader_isolation.txt");
}

#[test]
fn figure8() {
    run("figure8.txt");
}

#[test]
fn figure8_overwrite() {
    run("figure8_overwrite.txt");
}

#[test]
fn figure8_planted_bug() {
    run("figure8_planted_bug.txt");
}

#[test]
fn vote_without_persist_planted_bug() {
    run("vote_without_persist_planted_bug.txt");
}

#[test]
fn membership() {
    run("membership.txt");
}

#[test]
fn passive_catchup() {
    run("passive_catchup.txt");
}

#[test]
fn every_transcript_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(testdata())
        .expect("sim/testdata exists")
        .map(|entry| {
            entry
                .expect("readable")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".txt"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = TRANSCRIPTS.iter().map(|name| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "every transcript in sim/testdata has a test above"
    );
}
