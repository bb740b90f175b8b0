//! coracle-storage: the durable log every Raft group writes.
//!
//! [`LogStorage`] is the contract (per shard, not `Send`); [`MemLog`] is the in-memory
//! reference implementation; [`conformance`] is the suite every implementation passes.
//! The segment log on glommio direct I/O is being built on the engine's entry format
//! (`coracle_engine::entry_codec`).

pub mod atomic_file;
pub mod block_on;
pub mod configuration_file;
pub mod conformance;
pub mod device;
pub mod error;
pub mod flush_job;
pub mod hard_state_file;
pub mod log_start_file;
pub mod log_storage;
pub mod mem_log;
pub mod offset_index;
pub mod segment;
pub mod segment_file;
pub mod segment_log;
pub mod snapshot_store;
pub mod spare_segment;
pub mod tail_cache;
#[cfg(test)]
mod test_support;

pub use error::StorageError;
pub use log_storage::LogStorage;
pub use mem_log::MemLog;
