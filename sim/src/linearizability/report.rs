//! The full result of a check.

use super::failure::Failure;
use super::verdict::Verdict;

/// The result of checking a history: the verdict, and what backs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport<K> {
    /// The verdict on the whole history.
    pub verdict: Verdict,
    /// The partitions found not linearizable, in key order. The check stops soon after
    /// finding one, so others may go unreported.
    pub failures: Vec<Failure<K>>,
    /// The partitions on which the search ran out of budget, in key order (only those that
    /// ran out before the check stopped).
    pub exhausted: Vec<K>,
    /// How many partitions were checked.
    pub partitions: usize,
    /// How many search steps the check took, over all partitions.
    pub steps: u64,
}
