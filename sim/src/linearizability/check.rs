//! The search: Wing & Gong's algorithm with Lowe's memoization, as in Porcupine's
//! `checkSingle`, made iterative.

use std::collections::BTreeMap;

use super::bitset::Bitset;
use super::cache::Cache;
use super::entry_list::{Entry, EntryList};
use super::failure::Failure;
use super::history::History;
use super::model::Model;
use super::operation::Operation;
use super::options::CheckOptions;
use super::report::CheckReport;
use super::verdict::Verdict;

/// Checks whether `history` is linearizable with respect to `model`, one partition (key) at
/// a time.
///
/// Operations whose output is known must all be linearized, each between its call and
/// return; an operation with an unknown outcome may be linearized at any point after its
/// call (taking effect as [`Model::step_unknown`] says) or not at all.
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
    for (key, indices) in partitions {
        let search = Search::new(model, history.operations(), &indices);
        let (outcome, steps) = search.run(options.max_steps_per_partition);
        report.steps += steps;
        match outcome {
            Outcome::Linearizable => {}
            Outcome::Exhausted => report.exhausted.push(key),
            Outcome::NotLinearizable(furthest) => report.failures.push(Failure {
                key,
                operations: indices.len(),
                longest_prefix: furthest.prefix,
                stuck_at: furthest.stuck_at,
                candidates: furthest.candidates,
            }),
        }
    }
    report.verdict = if !report.failures.is_empty() {
        Verdict::NotLinearizable
    } else if !report.exhausted.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    report
}

/// How one partition's search ended.
enum Outcome {
    Linearizable,
    NotLinearizable(Furthest),
    Exhausted,
}

/// The deepest point the search reached before backtracking, in history indices.
struct Furthest {
    prefix: Vec<usize>,
    stuck_at: usize,
    candidates: Vec<usize>,
}

/// The search over one partition. Operations are numbered `0..ops.len()` within it.
struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    /// Each operation's index in the history.
    history_index: &'a [usize],
}

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        all: &'a [Operation<M::Input, M::Output>],
        history_index: &'a [usize],
    ) -> Self {
        let ops = history_index.iter().map(|&i| &all[i]).collect();
        Search {
            model,
            ops,
            history_index,
        }
    }

    /// The state after linearizing operation `op` in `state`, if its output allows it.
    fn step(&self, state: &M::State, op: usize) -> Option<M::State> {
        let op = self.ops[op];
        match &op.output {
            Some(output) => self.model.step(state, &op.input, output),
            None => Some(self.model.step_unknown(state, &op.input)),
        }
    }

    /// Runs the search with at most `budget` steps; returns how it ended and the steps taken.
    fn run(&self, budget: Option<u64>) -> (Outcome, u64) {
        let times: Vec<(u64, Option<u64>)> = self
            .ops
            .iter()
            .map(|op| (op.call_time, op.output.as_ref().map(|_| op.return_time)))
            .collect();
        let mut list = EntryList::new(&times);
        let mut linearized = Bitset::new(self.ops.len());
        let mut cache = Cache::new();
        // The operations linearized so far, each with the state before it.
        let mut stack: Vec<(usize, M::State)> = Vec::new();
        let mut state = self.model.init();
        let mut furthest: Option<Furthest> = None;
        let mut node = list.first();
        let mut steps = 0u64;
        loop {
            // Only an empty list has no first entry; while it has entries, the scan meets a
            // return (every call's return follows it) before running off the end.
            let Some(current) = node else {
                assert!(list.first().is_none(), "the scan ran off a non-empty list");
                return (Outcome::Linearizable, steps);
            };
            if budget.is_some_and(|max| steps >= max) {
                return (Outcome::Exhausted, steps);
            }
            steps += 1;
            match EntryList::entry(current) {
                Entry::Call(op) => {
                    if let Some(next_state) = self.step(&state, op) {
                        let mut next_linearized = linearized.clone();
                        next_linearized.set(op);
                        if cache.insert(next_linearized, next_state.clone()) {
                            stack.push((op, std::mem::replace(&mut state, next_state)));
                            linearized.set(op);
                            list.lift(op);
                            node = list.first();
                            continue;
                        }
                    }
                    node = list.next(current);
                }
                Entry::Return(op) => {
                    if self.ops[op].output.is_none() {
                        // Unknown operations return at +infinity, after every known one: all
                        // known operations are linearized, and the unknown ones left need
                        // never take effect.
                        return (Outcome::Linearizable, steps);
                    }
                    if furthest
                        .as_ref()
                        .is_none_or(|f| stack.len() > f.prefix.len())
                    {
                        furthest = Some(self.furthest(&list, &stack, current, op));
                    }
                    let Some((last, previous)) = stack.pop() else {
                        let furthest = furthest.expect("recorded at this very return");
                        return (Outcome::NotLinearizable(furthest), steps);
                    };
                    state = previous;
                    linearized.clear(last);
                    list.unlift(last);
                    node = list.next(EntryList::call_node(last));
                }
            }
        }
    }

    /// Describes the point where the scan met the return of `stuck_at` (held by `node`).
    fn furthest(
        &self,
        list: &EntryList,
        stack: &[(usize, M::State)],
        node: usize,
        stuck_at: usize,
    ) -> Furthest {
        let mut candidates = Vec::new();
        let mut scan = list.first();
        while let Some(current) = scan {
            if current == node {
                break;
            }
            if let Entry::Call(op) = EntryList::entry(current) {
                candidates.push(self.history_index[op]);
            }
            scan = list.next(current);
        }
        Furthest {
            prefix: stack
                .iter()
                .map(|&(op, _)| self.history_index[op])
                .collect(),
            stuck_at: self.history_index[stuck_at],
            candidates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{
        CasRegister, Event, KvInput, KvModel, KvOutput, RegisterInput as In, RegisterOutput as Out,
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
