//! The search over one partition: Wing & Gong's algorithm with Lowe's memoization, as in
//! Porcupine's `checkSingle`, made iterative and resumable.

use super::bitset::Bitset;
use super::cache::Cache;
use super::entry_list::{Entry, EntryList};
use super::model::Model;
use super::operation::Operation;

/// How a partition's search ended.
pub(crate) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; where the search got furthest.
    NotLinearizable(Furthest),
    /// The step budget ran out first.
    Exhausted,
}

/// The deepest point the search reached before backtracking, in history indices.
pub(crate) struct Furthest {
    /// The operations linearized there, in order.
    pub(crate) prefix: Vec<usize>,
    /// The operation whose return the search could not pass.
    pub(crate) stuck_at: usize,
    /// The unlinearized operations called before that return.
    pub(crate) candidates: Vec<usize>,
}

/// A search in progress over one partition. Operations are numbered `0..ops.len()` within
/// it. The search runs in slices ([`Search::advance`]) so several partitions can take turns.
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    /// Each operation's index in the history.
    history_index: Vec<usize>,
    list: EntryList,
    linearized: Bitset,
    cache: Cache<M::State>,
    /// The operations linearized so far, each with the state before it.
    stack: Vec<(usize, M::State)>,
    state: M::State,
    /// The entry to visit next; `None` only when the list is empty.
    node: Option<usize>,
    furthest: Option<Furthest>,
    steps: u64,
}

impl<'a, M: Model> Search<'a, M> {
    /// A search over the operations of `all` at `history_index`.
    pub(crate) fn new(
        model: &'a M,
        all: &'a [Operation<M::Input, M::Output>],
        history_index: Vec<usize>,
    ) -> Self {
        let ops: Vec<_> = history_index.iter().map(|&i| &all[i]).collect();
        let times: Vec<(u64, Option<u64>)> = ops
            .iter()
            .map(|op| (op.call_time, op.output.as_ref().map(|_| op.return_time)))
            .collect();
        let list = EntryList::new(&times);
        let node = list.first();
        Search {
            model,
            linearized: Bitset::new(ops.len()),
            ops,
            history_index,
            list,
            cache: Cache::new(),
            stack: Vec::new(),
            state: model.init(),
            node,
            furthest: None,
            steps: 0,
        }
    }

    /// How many operations the partition holds.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// How many steps the search has taken.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// The state after linearizing operation `op` in `state`, if its output allows it.
    fn step(&self, op: usize) -> Option<M::State> {
        let op = self.ops[op];
        match &op.output {
            Some(output) => self.model.step(&self.state, &op.input, output),
            None => Some(self.model.step_unknown(&self.state, &op.input)),
        }
    }

    /// Runs until the search ends or has taken `until` steps in all; `None` if it has not
    /// ended. Once it has ended it must not be advanced again.
    pub(crate) fn advance(&mut self, until: u64) -> Option<Outcome> {
        while self.steps < until {
            // Only an empty list has no first entry; while it has entries, the scan meets a
            // return (every call's return follows it) before running off the end.
            let Some(current) = self.node else {
                assert!(
                    self.list.first().is_none(),
                    "the scan ran off a non-empty list"
                );
                return Some(Outcome::Linearizable);
            };
            self.steps += 1;
            match EntryList::entry(current) {
                Entry::Call(op) => {
                    if let Some(next_state) = self.step(op) {
                        let mut next_linearized = self.linearized.clone();
                        next_linearized.set(op);
                        if self.cache.insert(next_linearized, next_state.clone()) {
                            let previous = std::mem::replace(&mut self.state, next_state);
                            self.stack.push((op, previous));
                            self.linearized.set(op);
                            self.list.lift(op);
                            self.node = self.list.first();
                            continue;
                        }
                    }
                    self.node = self.list.next(current);
                }
                Entry::Return(op) => {
                    if self.ops[op].output.is_none() {
                        // Unknown operations return at +infinity, after every known one: all
                        // known operations are linearized, and the unknown ones left need
                        // never take effect.
                        return Some(Outcome::Linearizable);
                    }
                    if self
                        .furthest
                        .as_ref()
                        .is_none_or(|f| self.stack.len() > f.prefix.len())
                    {
                        self.furthest = Some(self.describe_furthest(current, op));
                    }
                    let Some((last, previous)) = self.stack.pop() else {
                        let furthest = self.furthest.take().expect("recorded at this return");
                        return Some(Outcome::NotLinearizable(furthest));
                    };
                    self.state = previous;
                    self.linearized.clear(last);
                    self.list.unlift(last);
                    self.node = self.list.next(EntryList::call_node(last));
                }
            }
        }
        None
    }

    /// Describes the point where the scan met the return of `stuck_at` (held by `node`).
    fn describe_furthest(&self, node: usize, stuck_at: usize) -> Furthest {
        let mut candidates = Vec::new();
        let mut scan = self.list.first();
        while let Some(current) = scan {
            if current == node {
                break;
            }
            if let Entry::Call(op) = EntryList::entry(current) {
                candidates.push(self.history_index[op]);
            }
            scan = self.list.next(current);
        }
        Furthest {
            prefix: self
                .stack
                .iter()
                .map(|&(op, _)| self.history_index[op])
                .collect(),
            stuck_at: self.history_index[stuck_at],
            candidates,
        }
    }
}
