//! A node: one glommio executor per shard, each on its own thread (pinned to a core when
//! asked), each opening its groups, listening, linking to its peers and driving its groups.
//! [`Node::start`] returns once every shard listens, or with the first shard's error.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use coracle_engine::state_machine::StateMachine;
use glommio::{LocalExecutorBuilder, Placement};

use crate::clock::Clock;
use crate::group::Group;
use crate::listener::{accept_loop, serve_local_peers};
use crate::node_config::NodeConfig;
use crate::shard::Shard;
use coracle_net::peer_link::PeerLinkOptions;
use coracle_net::tcp_transport::TcpTransport;
use coracle_net::Transport;

/// Groups opened at once while a shard starts.
const OPENS_AT_ONCE: usize = 32;

/// A running node. Dropping it stops it.
pub struct Node {
    stop: Arc<AtomicBool>,
    shards: Vec<glommio::ExecutorJoinHandle<Result<(), String>>>,
}

impl Node {
    /// Starts every shard of `config`, making each group's state machine with
    /// `machine(group)`.
    ///
    /// # Errors
    /// A wrong setting, or why a shard could not start (a log that does not open, an
    /// address in use), naming the shard.
    pub fn start<S, F>(config: NodeConfig, machine: F) -> Result<Node, String>
    where
        S: StateMachine,
        F: Fn(u32) -> S + Send + Sync + 'static,
    {
        let mut config = config;
        // A stored address book (written when nodes joined or left) overrides the members
        // configured; this node's own address stays as configured.
        if let Some(mut stored) = crate::peers_file::load(&config.data_dir)? {
            if let Some(&own) = config.members.get(&config.node) {
                stored.insert(config.node, own);
            }
            config.members = stored;
        }
        config.validate().map_err(|error| error.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let machine = Arc::new(machine);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let mut node = Node {
            stop: Arc::clone(&stop),
            shards: Vec::new(),
        };
        let mut readies = Vec::new();
        for shard in 0..config.shards {
            let placement = if config.pin_cores {
                Placement::Fixed(shard as usize % cpus)
            } else {
                Placement::Unbound
            };
            let (ready_tx, ready_rx) = mpsc::channel();
            let (config, machine, stop) = (config.clone(), Arc::clone(&machine), Arc::clone(&stop));
            let handle = LocalExecutorBuilder::new(placement)
                .name(&format!("coracle-n{}-s{shard}", config.node))
                .io_memory(config.io_memory_bytes)
                .spawn(
                    move || async move { run_shard(config, shard, machine, stop, ready_tx).await },
                )
                .map_err(|error| format!("shard {shard}: cannot start its executor: {error}"))?;
            node.shards.push(handle);
            readies.push((shard, ready_rx));
        }
        for (shard, ready) in readies {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(format!("shard {shard}: {reason}")),
                Err(_) => return Err(format!("shard {shard} ended while starting")),
            }
        }
        Ok(node)
    }

    /// Stops every shard and waits for them.
    ///
    /// # Errors
    /// The first shard that failed, and why.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_and_join()
    }

    /// Waits until the node stops (it runs until stopped or a shard fails).
    ///
    /// # Errors
    /// The first shard that failed, and why.
    pub fn wait(mut self) -> Result<(), String> {
        let mut result = Ok(());
        for handle in self.shards.drain(..) {
            let outcome = handle
                .join()
                .map_err(|error| format!("a shard's executor failed: {error}"))
                .and_then(|outcome| outcome);
            if let Err(reason) = outcome {
                self.stop.store(true, Ordering::Relaxed);
                result = result.and(Err(reason));
            }
        }
        result
    }

    fn stop_and_join(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for handle in self.shards.drain(..) {
            let outcome = handle
                .join()
                .map_err(|error| format!("a shard's executor failed: {error}"))
                .and_then(|outcome| outcome);
            result = result.and(outcome);
        }
        result
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// One shard's life: open its groups, listen, say it is ready, link, drive until stopped.
async fn run_shard<S, F>(
    config: NodeConfig,
    shard: u32,
    machine: Arc<F>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<(), String>>,
) -> Result<(), String>
where
    S: StateMachine,
    F: Fn(u32) -> S + Send + Sync + 'static,
{
    let clock = Clock::new();
    let groups = match open_groups(&config, shard, &*machine, &clock).await {
        Ok(groups) => groups,
        Err(reason) => {
            let _ = ready.send(Err(reason.clone()));
            return Err(reason);
        }
    };
    let Some(address) = config.address(config.node, shard) else {
        let reason = "no address for this node".to_string();
        let _ = ready.send(Err(reason.clone()));
        return Err(reason);
    };
    // glommio binds with SO_REUSEPORT, so a second server on the same port would share its
    // connections silently. A plain bind cannot tell (connections of a previous run
    // lingering in FIN-WAIT refuse it for up to a minute); a connection can: if something
    // answers, the port is taken.
    if std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(200)).is_ok()
    {
        let reason = format!("cannot listen on {address}: something is listening there already");
        let _ = ready.send(Err(reason.clone()));
        return Err(reason);
    }
    let listener = match glommio::net::TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            let reason = format!("cannot listen on {address}: {error}");
            let _ = ready.send(Err(reason.clone()));
            return Err(reason);
        }
    };
    let index = shard;
    let (transport, receiver): (Box<dyn Transport>, _) = match &config.local_network {
        Some(network) => {
            let (transport, receiver) = network.endpoint(&config.cluster, config.node, index);
            (Box::new(transport), Some(receiver))
        }
        None => {
            let mut options = PeerLinkOptions::new(config.cluster.clone(), config.node, index);
            options.connect_timeout = std::time::Duration::from_millis(config.election_timeout_ms);
            (Box::new(TcpTransport::new(options)), None)
        }
    };
    let shard = Rc::new(Shard::new(Rc::new(config), index, clock, groups, transport));
    shard.link_peers();
    if let Some(receiver) = receiver {
        let id = shard.next_task_id();
        let task = glommio::spawn_local(serve_local_peers(Rc::clone(&shard), receiver)).detach();
        shard.task_started(id, task);
    }
    // Detached: it ends by itself once the shard stops (see `Shard::close_all`).
    glommio::spawn_local(accept_loop(Rc::clone(&shard), listener)).detach();
    let _ = ready.send(Ok(()));
    Rc::clone(&shard).drive(stop).await;
    shard.close_all();
    // Let the cancelled tasks be dropped (closing their sockets) before the executor ends.
    glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
    Ok(())
}

/// Opens this shard's groups, several at once (each open scans its segments).
async fn open_groups<S, F>(
    config: &NodeConfig,
    shard: u32,
    machine: &F,
    clock: &Clock,
) -> Result<BTreeMap<u32, Group<S>>, String>
where
    S: StateMachine,
    F: Fn(u32) -> S,
{
    let ids: Vec<u32> = (shard..config.groups)
        .step_by(config.shards as usize)
        .collect();
    let mut groups = BTreeMap::new();
    for chunk in ids.chunks(OPENS_AT_ONCE) {
        let opens = chunk.iter().map(|&id| {
            let (config, state) = (config.clone(), machine(id));
            let now = clock.now();
            glommio::spawn_local(async move { (id, Group::open(&config, id, state, now).await) })
                .detach()
        });
        let tasks: Vec<_> = opens.collect();
        for task in tasks {
            match task.await {
                Some((id, Ok(group))) => {
                    groups.insert(id, group);
                }
                Some((id, Err(error))) => return Err(format!("group {id}: {error}")),
                None => return Err("a group's open was cancelled".into()),
            }
        }
    }
    Ok(groups)
}
