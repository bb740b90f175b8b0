//! Checking a whole history: one search per partition, taking turns.

use std::collections::BTreeMap;

use super::failure::Failure;
use super::history::History;
use super::model::Model;
use super::options::CheckOptions;
use super::report::CheckReport;
use super::search::{Outcome, Search};
use super::verdict::Verdict;

/// How many steps each partition's search takes per turn.
const SLICE: u64 = 1 << 12;

/// Checks whether `history` is linearizable with respect to `model`, one partition (key) at
/// a time.
///
/// Operations whose output is known must all be linearized, each between its call and
/// return; an operation with an unknown outcome may be linearized at any point after its
/// call (taking effect as [`Model::step_unknown`] says) or not at all.
///
/// The partitions' searches take turns, a slice of steps each, in key order, and the check
/// stops at the end of the first round in which some partition is found not linearizable
/// (the sequential analogue of Porcupine's parallel search that stops at the first failure):
/// a history that is not linearizable is usually refuted quickly through its easiest
/// partition, while a hard one could take exponential time. The result is deterministic.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
) -> CheckReport<M::Key> {
    let mut partitions: BTreeMap<M::Key, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.operations().iter().enumerate() {
        partitions
            .entry(model.key(&op.input))
            .or_default()
            .push(index);
    }
    let mut report = CheckReport {
        verdict: Verdict::Linearizable,
        failures: Vec::new(),
        exhausted: Vec::new(),
        partitions: partitions.len(),
        steps: 0,
    };
    let mut running: Vec<(M::Key, Search<'_, M>)> = partitions
        .into_iter()
        .map(|(key, indices)| (key, Search::new(model, history.operations(), indices)))
        .collect();
    let budget = options.max_steps_per_partition.unwrap_or(u64::MAX);
    let mut until = 0u64;
    while !running.is_empty() && report.failures.is_empty() {
        until = until.saturating_add(SLICE).min(budget);
        let mut still_running = Vec::with_capacity(running.len());
        for (key, mut search) in running {
            let outcome = match search.advance(until) {
                None if search.steps() >= budget => Outcome::Exhausted,
                None => {
                    still_running.push((key, search));
                    continue;
                }
                Some(outcome) => outcome,
            };
            report.steps += search.steps();
            match outcome {
                Outcome::Linearizable => {}
                Outcome::Exhausted => report.exhausted.push(key),
                Outcome::NotLinearizable(furthest) => report.failures.push(Failure {
                    key,
                    operations: search.len(),
                    longest_prefix: furthest.prefix,
                    stuck_at: furthest.stuck_at,
                    candidates: furthest.candidates,
                }),
            }
        }
        running = still_running;
    }
    // Searches cut short by a failure elsewhere count toward the steps, not the verdict.
    report.steps += running
        .iter()
        .map(|(_, search)| search.steps())
        .sum::<u64>();
    report.verdict = if !report.failures.is_empty() {
        Verdict::NotLinearizable
    } else if !report.exhausted.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{
        CasRegister, Event, KvInput, KvModel, KvOutput, Operation, RegisterInput as In,
        RegisterOutput as Out,
    };

    type RegisterHistory = History<In, Out>;

    fn history(ops: Vec<Operation<In, Out>>) -> RegisterHistory {
        let mut history = History::new();
        for op in ops {
            history.push(op).expect("valid operation");
        }
        history
    }

    fn done(client: u64, input: In, call: u64, ret: u64, output: Out) -> Operation<In, Out> {
        Operation::completed(client, input, call, ret, output)
    }

    fn verdict(history: &RegisterHistory) -> Verdict {
        check(&CasRegister, history, &CheckOptions::unbounded()).verdict
    }

    fn read(value: Option<i64>) -> Out {
        Out::Value(value)
    }

    #[test]
    fn empty_history_is_linearizable() {
        let report = check(&CasRegister, &history(vec![]), &CheckOptions::default());
        assert_eq!(report.verdict, Verdict::Linearizable);
        assert_eq!(report.partitions, 0);
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let h = history(vec![
            done(1, In::Write(1), 0, 1, Out::Ok),
            done(2, In::Read, 2, 3, read(None)),
        ]);
        let report = check(&CasRegister, &h, &CheckOptions::unbounded());
        assert_eq!(report.verdict, Verdict::NotLinearizable);
        let failure = &report.failures[0];
        assert_eq!(failure.operations, 2);
        assert_eq!(failure.longest_prefix, vec![0]);
        assert_eq!(failure.stuck_at, 1);
        assert_eq!(failure.candidates, vec![1]);
        let text = failure.describe(&h, 10);
        assert!(
            text.contains("#1 client 2 [2, 3] Read -> Some(Value(None))"),
            "{text}"
        );
    }

    #[test]
    fn concurrent_write_and_read_may_go_either_way() {
        for seen in [None, Some(1)] {
            let h = history(vec![
                done(1, In::Write(1), 0, 3, Out::Ok),
                done(2, In::Read, 1, 2, read(seen)),
            ]);
            assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen:?}");
        }
        let wrong = history(vec![
            done(1, In::Write(1), 0, 3, Out::Ok),
            done(2, In::Read, 1, 2, read(Some(2))),
        ]);
        assert_eq!(verdict(&wrong), Verdict::NotLinearizable);
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        let h = history(vec![
            done(1, In::Write(1), 0, 2, Out::Ok),
            done(2, In::Read, 2, 3, read(None)),
        ]);
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_may_or_may_not_take_effect() {
        let never = history(vec![
            Operation::unknown(1, In::Write(1), 0),
            done(2, In::Read, 1, 2, read(None)),
            done(2, In::Read, 3, 4, read(None)),
        ]);
        assert_eq!(verdict(&never), Verdict::Linearizable);
        let late = history(vec![
            Operation::unknown(1, In::Write(1), 0),
            done(2, In::Read, 1, 2, read(None)),
            done(2, In::Read, 30, 40, read(Some(1))),
        ]);
        assert_eq!(verdict(&late), Verdict::Linearizable);
        let undone = history(vec![
            Operation::unknown(1, In::Write(1), 0),
            done(2, In::Read, 1, 2, read(Some(1))),
            done(2, In::Read, 3, 4, read(None)),
        ]);
        assert_eq!(verdict(&undone), Verdict::NotLinearizable);
        let before_call = history(vec![
            done(2, In::Read, 1, 2, read(Some(1))),
            Operation::unknown(1, In::Write(1), 3),
        ]);
        assert_eq!(verdict(&before_call), Verdict::NotLinearizable);
    }

    #[test]
    fn unknown_outcomes_from_events() {
        let events = vec![
            Event::invoke(1, In::Write(1)),
            Event::unknown(1),
            Event::invoke(1, In::Cas { from: 1, to: 2 }),
            Event::invoke(2, In::Read),
            Event::ret(2, read(Some(2))),
        ];
        let h = History::from_events(events).expect("well formed");
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn cas_failure_means_the_register_held_another_value() {
        let mismatch = history(vec![
            done(1, In::Write(1), 0, 1, Out::Ok),
            done(2, In::Cas { from: 3, to: 4 }, 2, 3, Out::Fail),
            done(3, In::Read, 4, 5, read(Some(1))),
        ]);
        assert_eq!(verdict(&mismatch), Verdict::Linearizable);
        let matched = history(vec![
            done(1, In::Write(1), 0, 1, Out::Ok),
            done(2, In::Cas { from: 1, to: 4 }, 2, 3, Out::Fail),
        ]);
        assert_eq!(verdict(&matched), Verdict::NotLinearizable);
        // Concurrent with the write, the failed cas can go before it (register nil).
        let concurrent = history(vec![
            done(1, In::Write(1), 0, 3, Out::Ok),
            done(2, In::Cas { from: 1, to: 4 }, 1, 2, Out::Fail),
            done(3, In::Read, 4, 5, read(Some(1))),
        ]);
        assert_eq!(verdict(&concurrent), Verdict::Linearizable);
        let succeeded = history(vec![
            done(1, In::Write(1), 0, 1, Out::Ok),
            done(2, In::Cas { from: 1, to: 4 }, 2, 3, Out::Ok),
            done(3, In::Read, 4, 5, read(Some(4))),
        ]);
        assert_eq!(verdict(&succeeded), Verdict::Linearizable);
    }

    /// Many concurrent writes, then a read of a value nobody wrote: only exhaustive search
    /// finds no linearization.
    fn hard_history() -> RegisterHistory {
        let mut ops: Vec<_> = (0..12)
            .map(|i| done(i, In::Write(i as i64), 0, 10, Out::Ok))
            .collect();
        ops.push(done(99, In::Read, 11, 12, read(Some(100))));
        history(ops)
    }

    #[test]
    fn budget_exhaustion_gives_unknown() {
        let report = check(
            &CasRegister,
            &hard_history(),
            &CheckOptions::with_max_steps(50),
        );
        assert_eq!(report.verdict, Verdict::Unknown);
        assert_eq!(report.exhausted, vec![()]);
        assert_eq!(report.steps, 50);
        let full = check(&CasRegister, &hard_history(), &CheckOptions::unbounded());
        assert_eq!(full.verdict, Verdict::NotLinearizable);
        assert!(full.steps > 50);
    }

    #[test]
    fn deep_histories_do_not_recurse() {
        let mut ops = Vec::new();
        // Deep enough to overflow the stack of a recursive search; the memo's bitsets make
        // memory quadratic in a partition's length, so not much deeper.
        for i in 0..8_000u64 {
            let t = 4 * i;
            ops.push(done(1, In::Write(i as i64), t, t + 1, Out::Ok));
            ops.push(done(2, In::Read, t + 2, t + 3, read(Some(i as i64))));
        }
        assert_eq!(verdict(&history(ops)), Verdict::Linearizable);
    }

    #[test]
    fn kv_is_checked_per_key() {
        let key = |k: &str| k.to_string();
        let mut h = History::new();
        let ops = [
            (
                KvInput::Put {
                    key: key("a"),
                    value: key("1"),
                },
                KvOutput::Ok,
            ),
            (
                KvInput::Append {
                    key: key("b"),
                    value: key("x"),
                },
                KvOutput::Ok,
            ),
            (KvInput::Get { key: key("a") }, KvOutput::Value(key("1"))),
            (KvInput::Get { key: key("b") }, KvOutput::Value(key(""))),
            (KvInput::Get { key: key("c") }, KvOutput::Value(key(""))),
        ];
        for (i, (input, output)) in ops.into_iter().enumerate() {
            let t = 2 * i as u64;
            h.push(Operation::completed(1, input, t, t + 1, output))
                .expect("valid");
        }
        let report = check(&KvModel, &h, &CheckOptions::unbounded());
        assert_eq!(report.verdict, Verdict::NotLinearizable);
        assert_eq!(report.partitions, 3);
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].key, "b");
        assert_eq!(report.failures[0].longest_prefix, vec![1]);
        assert_eq!(report.failures[0].stuck_at, 3);
    }
}
