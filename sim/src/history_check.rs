//! Checks a simulated client history for linearizability, key by key, against the
//! key-value model the simulated state machine implements.

use crate::client::Operation;
use crate::kv::{Key, KvOp, KvOutput};
use crate::linearizability::{
    check, CheckOptions, History, Model, Operation as CheckedOp, Verdict,
};

/// Search steps allowed per key before the verdict is "unknown" (which fails the seed: a
/// checker that gives up proves nothing).
const STEPS_PER_KEY_MAX: u64 = 50_000_000;

/// Each key is a register with get, put and compare-and-set, initially absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimKvModel;

impl Model for SimKvModel {
    type State = Option<i64>;
    type Input = KvOp;
    type Output = KvOutput;
    type Key = Key;

    fn init(&self) -> Option<i64> {
        None
    }

    fn key(&self, input: &KvOp) -> Key {
        input.key()
    }

    fn step(&self, state: &Option<i64>, input: &KvOp, output: &KvOutput) -> Option<Option<i64>> {
        match (input, output) {
            (KvOp::Get(_), KvOutput::Value(value)) => (value == state).then_some(*state),
            (KvOp::Put(_, value), KvOutput::Ok) => Some(Some(*value)),
            (KvOp::Cas(_, expected, new), KvOutput::Ok) => {
                (*state == Some(*expected)).then_some(Some(*new))
            }
            (KvOp::Cas(_, expected, _), KvOutput::Fail) => {
                (*state != Some(*expected)).then_some(*state)
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &Option<i64>, input: &KvOp) -> Option<i64> {
        match *input {
            KvOp::Get(_) => *state,
            KvOp::Put(_, value) => Some(value),
            KvOp::Cas(_, expected, new) => {
                if *state == Some(expected) {
                    Some(new)
                } else {
                    *state
                }
            }
        }
    }
}

/// `Err` with a description if the history is not linearizable (or could not be decided).
///
/// # Errors
/// The keys whose histories cannot be linearized, with the operations involved.
pub fn check_history(operations: &[Operation]) -> Result<(), String> {
    let mut history = History::new();
    for operation in operations {
        let checked = match (operation.output, operation.return_us) {
            (Some(output), Some(return_us)) => CheckedOp::completed(
                operation.process,
                operation.op,
                operation.call_us,
                return_us,
                output,
            ),
            _ => CheckedOp::unknown(operation.process, operation.op, operation.call_us),
        };
        history
            .push(checked)
            .map_err(|error| format!("malformed history: {error:?}"))?;
    }
    let report = check(
        &SimKvModel,
        &history,
        &CheckOptions::with_max_steps(STEPS_PER_KEY_MAX),
    );
    match report.verdict {
        Verdict::Linearizable => Ok(()),
        Verdict::NotLinearizable => {
            let described: Vec<String> = report
                .failures
                .iter()
                .map(|failure| failure.describe(&history, 4))
                .collect();
            Err(format!("not linearizable: {}", described.join("; ")))
        }
        Verdict::Unknown => Err(format!(
            "linearizability undecided within {STEPS_PER_KEY_MAX} steps for keys {:?}",
            report.exhausted
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(process: u64, op: KvOp, call: u64, ret: u64, output: KvOutput) -> Operation {
        Operation {
            process,
            op,
            call_us: call,
            output: Some(output),
            return_us: Some(ret),
        }
    }

    #[test]
    fn stale_read_is_caught() {
        let history = vec![
            completed(1, KvOp::Put(0, 5), 1, 2, KvOutput::Ok),
            completed(2, KvOp::Get(0), 3, 4, KvOutput::Value(None)),
        ];
        assert!(check_history(&history).is_err());
    }

    #[test]
    fn unknown_write_may_or_may_not_happen() {
        let unknown = Operation {
            process: 1,
            op: KvOp::Put(0, 5),
            call_us: 1,
            output: None,
            return_us: None,
        };
        let seen = vec![
            unknown.clone(),
            completed(2, KvOp::Get(0), 3, 4, KvOutput::Value(Some(5))),
        ];
        assert!(check_history(&seen).is_ok());
        let unseen = vec![
            unknown,
            completed(2, KvOp::Get(0), 3, 4, KvOutput::Value(None)),
        ];
        assert!(check_history(&unseen).is_ok());
    }

    #[test]
    fn failed_cas_needs_a_different_value() {
        let history = vec![
            completed(1, KvOp::Put(0, 5), 1, 2, KvOutput::Ok),
            completed(2, KvOp::Cas(0, 5, 6), 3, 4, KvOutput::Fail),
        ];
        assert!(check_history(&history).is_err());
    }
}
