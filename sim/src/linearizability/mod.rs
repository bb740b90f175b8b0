//! Placeholder replaced by the linearizability checker.
