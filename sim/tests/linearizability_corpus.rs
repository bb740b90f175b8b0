//! Checks the linearizability checker against histories with known verdicts that nobody on
//! this project wrote: Jepsen's etcd register logs and Porcupine's key-value histories.

use std::fs;
use std::path::{Path, PathBuf};

use coracle_sim::linearizability::{
    check, parse_edn_kv, parse_jepsen_log, CasRegister, CheckOptions, KvModel, Verdict,
};

/// Far more than any corpus history needs, so a search bug shows up as `Unknown` rather than
/// a hung test.
const MAX_STEPS: u64 = 50_000_000;

fn corpus() -> PathBuf {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/linearizability"
    ));
    assert!(
        dir.is_dir(),
        "the linearizability corpus is missing: expected it at {} (shared/testdata beside the \
         repository checkout)",
        dir.display()
    );
    dir.to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn jepsen_etcd_histories_match_their_verdicts() {
    let dir = corpus().join("jepsen-etcd");
    let verdicts = read(&dir.join("VERDICTS"));
    let mut listed = Vec::new();
    let mut mismatches = Vec::new();
    for line in verdicts.lines().filter(|l| !l.trim().is_empty()) {
        let (name, expected) = line
            .split_once(char::is_whitespace)
            .unwrap_or_else(|| panic!("bad VERDICTS line {line:?}"));
        let expected = match expected.trim() {
            "linearizable" => Verdict::Linearizable,
            "not-linearizable" => Verdict::NotLinearizable,
            other => panic!("bad verdict {other:?} for {name}"),
        };
        let history =
            parse_jepsen_log(&read(&dir.join(name))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!history.is_empty(), "{name}: no operations parsed");
        let report = check(
            &CasRegister,
            &history,
            &CheckOptions::with_max_steps(MAX_STEPS),
        );
        if report.verdict != expected {
            mismatches.push(format!(
                "{name}: expected {expected:?}, got {:?}",
                report.verdict
            ));
        }
        listed.push(name.to_string());
    }
    assert!(
        mismatches.is_empty(),
        "wrong verdicts:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(listed.len(), 102, "VERDICTS should list 102 histories");
    let mut logs: Vec<String> = fs::read_dir(&dir)
        .expect("list jepsen-etcd")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".log"))
        .collect();
    logs.sort();
    listed.sort();
    assert_eq!(logs, listed, "every log should have a verdict");
}

#[test]
fn kv_histories_match_their_verdicts() {
    let dir = corpus().join("kv");
    for clients in ["c01", "c10", "c50"] {
        for (suffix, expected) in [
            ("ok", Verdict::Linearizable),
            ("bad", Verdict::NotLinearizable),
        ] {
            let name = format!("{clients}-{suffix}.txt");
            let history =
                parse_edn_kv(&read(&dir.join(&name))).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!history.is_empty(), "{name}: no operations parsed");
            let report = check(&KvModel, &history, &CheckOptions::with_max_steps(MAX_STEPS));
            assert_eq!(report.verdict, expected, "{name}: {report:?}");
            if expected == Verdict::NotLinearizable {
                let failure = &report.failures[0];
                assert!(failure.longest_prefix.len() < failure.operations, "{name}");
                assert!(failure.candidates.contains(&failure.stuck_at), "{name}");
            }
        }
    }
}
