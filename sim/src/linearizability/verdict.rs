//! The answer a check gives.

/// Whether a history is linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Every partition has a linearization.
    Linearizable,
    /// Some partition has none.
    NotLinearizable,
    /// No partition was found not linearizable, but the search ran out of budget on some.
    Unknown,
}
