//! Engine tests that drive one or a few replicas by hand and assert exact actions.

mod election;
mod harness;
mod membership;
mod persistence;
mod reads;
mod replication;
mod server_cluster;
mod sessions;
mod voting;
