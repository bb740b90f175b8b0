//! What the checker reports about a partition that is not linearizable.

use std::fmt::{Debug, Write};

use super::history::History;

/// A partition with no linearization, and where the search got furthest before giving up.
///
/// Operations are named by their index in [`History::operations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure<K> {
    /// The partition.
    pub key: K,
    /// How many operations the partition holds.
    pub operations: usize,
    /// The longest sequence of operations the search could linearize (in linearization
    /// order) that respects real time and the model; a genuine linearization of the whole
    /// partition would extend some such sequence.
    pub longest_prefix: Vec<usize>,
    /// The operation whose return the search could not get past after `longest_prefix`:
    /// every extension ended before this operation could be linearized.
    pub stuck_at: usize,
    /// The operations not in `longest_prefix` that were called before `stuck_at` returned
    /// (`stuck_at` among them): those the search could try next, and none of which led to a
    /// full linearization.
    pub candidates: Vec<usize>,
}

impl<K: Debug> Failure<K> {
    /// A human-readable account of the failure, naming the operations of `history` (the
    /// history that was checked) and showing at most the last `context` operations of the
    /// prefix.
    pub fn describe<I: Debug, O: Debug>(&self, history: &History<I, O>, context: usize) -> String {
        let ops = history.operations();
        let line = |out: &mut String, i: usize| {
            let op = &ops[i];
            let ret = match &op.output {
                Some(_) => op.return_time.to_string(),
                None => "?".to_string(),
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "    #{i} client {} [{}, {ret}] {:?} -> {:?}",
                op.client, op.call_time, op.input, op.output
            );
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "partition {:?} ({} operations) is not linearizable; the longest linearizable \
             prefix has {} operations",
            self.key,
            self.operations,
            self.longest_prefix.len()
        );
        let skip = self.longest_prefix.len().saturating_sub(context);
        let _ = writeln!(
            out,
            "  end of that prefix ({skip} earlier operations omitted):"
        );
        for &i in &self.longest_prefix[skip..] {
            line(&mut out, i);
        }
        let _ = writeln!(out, "  after which none of these leads to a linearization:");
        for &i in &self.candidates {
            line(&mut out, i);
        }
        let _ = writeln!(out, "  before this operation's return:");
        line(&mut out, self.stuck_at);
        out
    }
}
