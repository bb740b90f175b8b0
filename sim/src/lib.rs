//! coracle-sim: the seeded deterministic simulator, and the checkers that judge its histories.
//!
//! One thread and one seed run a whole cluster: replicas of `coracle-engine`, their disks
//! (unsynced writes lost on a crash), a network that delays, drops, duplicates, reorders
//! and partitions, clients with a key-value workload, and a nemesis. Checkers run after
//! every step; the client history is checked for linearizability at the end.

pub mod client;
pub mod disk;
pub mod hash;
pub mod history_check;
pub mod kv;
pub mod linearizability;
pub mod nemesis;
pub mod network;
pub mod node;
pub mod options;
pub mod runner;
pub mod safety;
pub mod scenario;
pub mod simulator;

pub use options::SimOptions;
pub use simulator::Simulator;
