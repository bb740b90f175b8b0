//! What each role does, as `impl Replica` blocks: one file per role (Copycat's split).

pub mod candidate;
pub mod follower;
pub mod leader;
pub mod passive;
pub mod replication;
