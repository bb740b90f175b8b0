//! coracle-sim: the seeded deterministic simulator, and the checkers that judge its histories.
//!
//! One thread and one seed run a whole cluster: servers of `coracle-engine` (replica,
//! state machine, sessions), their disks (unsynced writes lost on a crash), a network that
//! delays, drops, duplicates, reorders and partitions, clients running the engine's session
//! protocol with a key-value workload, and a nemesis. Checkers run after every step; the
//! client histories are checked at the end (linearizability, session order, events,
//! exactly-once, expiry).

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
pub mod session_check;
pub mod simulator;

pub use options::SimOptions;
pub use simulator::Simulator;
