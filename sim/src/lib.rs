//! coracle-sim: the seeded deterministic simulator, and the checkers that judge its histories.

pub mod linearizability;
