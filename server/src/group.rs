//! One Raft group on a shard: its pure server (replica, state machine, sessions) and its
//! durable log, and the bookkeeping between the two: which persist each staged write
//! carries, so that the server hears `on_persisted` once the flush holding it is durable.

use std::collections::VecDeque;

use coracle_engine::server::{Server, ServerConfig};
use coracle_engine::state_machine::StateMachine;
use coracle_engine::{
    Configuration, Entry, HardState, LogIndex, PersistId, Replica, ReplicaConfig, ReplicaId,
    Restored, Time,
};
use coracle_storage::flush_job::FlushJob;
use coracle_storage::segment_log::{SegmentLog, SegmentLogOptions};
use coracle_storage::{LogStorage, StorageError};

use crate::node_config::NodeConfig;

/// See the module documentation.
pub struct Group<S: StateMachine> {
    /// The group's number.
    pub id: u32,
    /// The pure server.
    pub server: Server<S>,
    log: SegmentLog,
    /// Persists staged, oldest first, with the log ticket that makes each durable.
    /// Persists staged, oldest first: id, the log ticket that makes it durable, and the
    /// last entry index it wrote (if it wrote entries).
    persists: VecDeque<(PersistId, u64, Option<u64>)>,
    /// Set when the log failed: the group takes no more input (fail-stop).
    pub stopped: Option<String>,
    /// A flush of this group runs (its end comes back as `Input::Flushed`).
    pub flush_running: bool,
    /// The log's permit was taken by someone else; a task waits for it to come free.
    pub flush_waiting: bool,
}

impl<S: StateMachine> Group<S> {
    /// Opens (or creates) the group's log under the node's data directory, reads it back,
    /// and starts the server on it.
    ///
    /// # Errors
    /// What opening or reading the log found wrong (corruption names file and offset).
    pub async fn open(
        config: &NodeConfig,
        id: u32,
        machine: S,
        now: Time,
    ) -> Result<Group<S>, StorageError> {
        let directory = config.data_dir.join(format!("group-{id}"));
        let mut options = SegmentLogOptions::new(directory, u64::from(id));
        options.segment_size_bytes = config.segment_size_bytes;
        options.unsynced_for_benchmarks_only = config.unsynced_for_benchmarks_only;
        let (log, _report) = SegmentLog::open(options).await?;
        let mut entries: Vec<Entry> = Vec::new();
        if log.last_index() >= log.first_index() {
            if log.first_index() != LogIndex(1) {
                return Err(StorageError::Refused {
                    reason: format!(
                        "group {id}'s log starts at {} but snapshots are not restored yet",
                        log.first_index()
                    ),
                });
            }
            log.read(log.first_index(), log.last_index().next(), &mut entries)
                .await?;
        }
        let restored = Restored {
            hard_state: log.hard_state(),
            entries,
        };
        let mut replica_config = ReplicaConfig::new(ReplicaId(config.node), seed(config, id, now));
        replica_config.election_timeout_ms = config.election_timeout_ms;
        replica_config.heartbeat_interval_ms = config.heartbeat_interval_ms;
        // A joining node is not a voter of the configuration it starts from: it waits to be
        // added by the leader (a configuration in its log, once it has one, overrides this).
        let voters: Vec<ReplicaId> = config
            .members
            .keys()
            .filter(|&&node| !(config.join && node == config.node))
            .map(|&node| ReplicaId(node))
            .collect();
        let replica = Replica::new(
            replica_config,
            Configuration::bootstrap(&voters),
            restored,
            now,
        );
        let server_config = ServerConfig {
            session_timeout_ms_default: config.session_timeout_ms,
            ..ServerConfig::default()
        };
        Ok(Group {
            id,
            server: Server::new(server_config, replica, machine, now),
            log,
            persists: VecDeque::new(),
            stopped: None,
            flush_running: false,
            flush_waiting: false,
        })
    }

    /// Stages one `Persist`: the hard state, then the entries (replacing a conflicting
    /// suffix). Nothing is written until a flush.
    ///
    /// Returns whether it is durable already (it held nothing new): no flush will report
    /// it, so the caller must.
    ///
    /// # Errors
    /// The log stopped.
    pub fn stage(
        &mut self,
        id: PersistId,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<bool, StorageError> {
        let mut ticket = self.log.durable_ticket();
        if let Some(hard_state) = hard_state {
            ticket = self.log.stage_hard_state(hard_state)?;
        }
        if !entries.is_empty() {
            ticket = self.log.stage(entries)?;
        }
        // Tickets only grow, so the queue stays sorted by ticket.
        debug_assert!(self
            .persists
            .back()
            .is_none_or(|&(_, last, _)| last <= ticket));
        let last_index = entries.last().map(|entry| entry.index.0);
        self.persists.push_back((id, ticket, last_index));
        Ok(self.log.is_durable(ticket))
    }

    /// Plans a flush of what is staged, unless one is running or nothing is staged.
    pub fn flush_begin(&mut self) -> Option<FlushJob> {
        self.log.flush_begin()
    }

    /// Completes when the log's permit is free again (see `SegmentLog::when_flushable`).
    pub fn when_flushable(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.log.when_flushable()
    }

    /// Whether staged writes wait for a flush (or one runs).
    #[must_use]
    pub fn has_unflushed(&self) -> bool {
        !self.persists.is_empty()
    }

    /// The latest persist now durable, taking it and every earlier one off the queue.
    ///
    /// # Errors
    /// The log stopped: a flush failed.
    /// With it, the last entry index those persists wrote, if any wrote entries.
    pub fn take_durable(&mut self) -> Result<Option<(PersistId, Option<u64>)>, StorageError> {
        self.log.check_running()?;
        let mut latest = None;
        let mut last_index = None;
        while let Some(&(id, ticket, index)) = self.persists.front() {
            if !self.log.is_durable(ticket) {
                break;
            }
            latest = Some(id);
            // A later persist may have replaced a suffix: its last index is what holds.
            if index.is_some() {
                last_index = index;
            }
            self.persists.pop_front();
        }
        Ok(latest.map(|id| (id, last_index)))
    }
}

/// A replica's seed: different per node, group and start, so that two groups of a node
/// do not time out in step, and a restarted node does not repeat its predecessor.
fn seed(config: &NodeConfig, group: u32, now: Time) -> u64 {
    let mut seed = config.node.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(group);
    seed ^= now.wall_ms.rotate_left(23) ^ u64::from(std::process::id()).rotate_left(47);
    seed
}
