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
use crate::listener::accept_loop;
use crate::node_config::NodeConfig;
use crate::shard::Shard;

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
    let listener = match glommio::net::TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            let reason = format!("cannot listen on {address}: {error}");
            let _ = ready.send(Err(reason.clone()));
            return Err(reason);
        }
    };
    let shard = Rc::new(Shard::new(Rc::new(config), shard, clock, groups));
    shard.link_peers();
    let acceptor = glommio::spawn_local(accept_loop(Rc::clone(&shard), listener)).detach();
    let _ = ready.send(Ok(()));
    Rc::clone(&shard).drive(stop).await;
    acceptor.cancel();
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
