//! The sequential specification a history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification: a deterministic state machine over one partition's state.
///
/// A history is checked one partition at a time (Porcupine's `Partition`): operations with
/// the same [`Model::key`] are checked together, each partition starting from
/// [`Model::init`]. This is sound when operations on different keys are independent, as in a
/// key-value store, where the whole is linearizable exactly when every key's history is. An
/// operation belongs to exactly one partition; a model with no natural partitioning uses
/// `()` as its key.
pub trait Model {
    /// The state of one partition. Compared and hashed to memoize the search.
    type State: Clone + Eq + Hash;
    /// An operation's input (what the client asked for).
    type Input: Clone + Debug;
    /// An operation's output (what the client was told).
    type Output: Clone + Debug;
    /// The partition an operation belongs to.
    type Key: Clone + Ord + Debug;

    /// The state every partition starts in.
    fn init(&self) -> Self::State;

    /// The partition `input` belongs to.
    fn key(&self, input: &Self::Input) -> Self::Key;

    /// Returns the next state if `output` is a legal result of applying `input` in `state`,
    /// or `None` if it is not (including when `output` is not a kind of output `input` can
    /// produce).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// The state after `input` takes effect in `state` when its output is unknown (the
    /// client timed out or crashed). The checker also considers the operation never taking
    /// effect, so this only has to describe the case where it does.
    fn step_unknown(&self, state: &Self::State, input: &Self::Input) -> Self::State;
}
