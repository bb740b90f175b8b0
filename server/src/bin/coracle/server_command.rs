//! `coracle server`: start a node from a configuration file and/or flags.

use std::path::PathBuf;

use clap::Args;
use coracle_engine::kv::KvMachine;
use coracle_server::config_file::{parse_member_list, ConfigFile};
use coracle_server::Node;

use crate::Failure;

/// Options of `coracle server`; each overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A TOML configuration file (keys as the long options, with `_` for `-`, and a
    /// `[members]` table)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's id (a key of the members)
    #[arg(long, value_name = "ID")]
    node: Option<u64>,
    /// Every node's shard-0 address: `1=host:port,2=host:port,...`; shard s of a node
    /// listens on its port + s
    #[arg(long, value_name = "ID=ADDR,...")]
    members: Option<String>,
    /// The cluster's name: peers and clients naming another are refused
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Where this node keeps its logs [default: data/node-ID]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Executors (threads), one per core [default: 1]
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// Raft groups; group g runs on shard g % shards [default: 1]
    #[arg(long, value_name = "N")]
    groups: Option<u32>,
    /// Do not pin shard s to CPU s (pinning is on by default; turn it off when several
    /// nodes share a machine, or each pins its shard 0 to CPU 0)
    #[arg(long)]
    no_pin_cores: bool,
    /// DMA memory each executor registers, bytes [default: 524288]
    #[arg(long, value_name = "BYTES")]
    io_memory_bytes: Option<usize>,
    /// How often timers run, ms [default: 10]
    #[arg(long, value_name = "MS")]
    tick_ms: Option<u64>,
    /// Raft election timeout, ms [default: 750]
    #[arg(long, value_name = "MS")]
    election_timeout_ms: Option<u64>,
    /// Raft heartbeat interval, ms [default: 250]
    #[arg(long, value_name = "MS")]
    heartbeat_interval_ms: Option<u64>,
    /// Session timeout for clients that ask for none, ms [default: 5000]
    #[arg(long, value_name = "MS")]
    session_timeout_ms: Option<u64>,
    /// Segment file size, bytes [default: 33554432]
    #[arg(long, value_name = "BYTES")]
    segment_size_bytes: Option<u64>,
    /// Join a running cluster instead of forming one: this node starts outside every
    /// group's configuration and waits to be added with `coracle admin join`
    #[arg(long)]
    join: bool,
}

/// Starts the node and waits until it ends.
pub fn run(args: ServerArgs) -> Result<(), Failure> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path).map_err(Failure::usage)?,
        None => ConfigFile::default(),
    };
    let members = args
        .members
        .as_deref()
        .map(parse_member_list)
        .transpose()
        .map_err(Failure::usage)?;
    let flags = ConfigFile {
        cluster: args.cluster,
        node: args.node,
        members,
        data_dir: args.data_dir,
        shards: args.shards,
        groups: args.groups,
        pin_cores: args.no_pin_cores.then_some(false),
        io_memory_bytes: args.io_memory_bytes,
        tick_ms: args.tick_ms,
        election_timeout_ms: args.election_timeout_ms,
        heartbeat_interval_ms: args.heartbeat_interval_ms,
        session_timeout_ms: args.session_timeout_ms,
        segment_size_bytes: args.segment_size_bytes,
        join: args.join.then_some(true),
    };
    let config = file
        .overridden_by(flags)
        .into_node_config()
        .map_err(Failure::usage)?;
    let (node, shards, groups) = (config.node, config.shards, config.groups);
    let address = config.members[&node];
    let node_handle = Node::start(config, |_group| KvMachine::default())
        .map_err(|reason| Failure::answered(format!("node {node} did not start: {reason}")))?;
    eprintln!("coracle: node {node} serving {groups} group(s) on {shards} shard(s) at {address}");
    node_handle
        .wait()
        .map_err(|reason| Failure::answered(format!("node {node} failed: {reason}")))
}
