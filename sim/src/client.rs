//! Simulated clients: each runs one operation at a time against the cluster, retries it
//! (with the same request number, so the state machine dedupes) across servers, and
//! records invocations and completions for the linearizability checker.

use coracle_engine::Prng;

use crate::kv::{KvCommand, KvOp, KvOutput};

/// One operation of the history, with unknown outcome while `output` is `None`.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The client process (a client that gives up on an operation takes a new process).
    pub process: u64,
    /// What was asked.
    pub op: KvOp,
    /// When it was invoked (simulated µs × 1000 plus a tie-breaker; see `history_time`).
    pub call_us: u64,
    /// What it returned, if it completed.
    pub output: Option<KvOutput>,
    /// When it completed.
    pub return_us: Option<u64>,
}

/// The operation a client is waiting on.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The command sent (retries resend it unchanged).
    pub command: KvCommand,
    /// Position of the operation in the history.
    pub history_position: usize,
    /// The server the current attempt went to.
    pub target: usize,
    /// When the current attempt is considered lost.
    pub attempt_deadline_us: u64,
    /// When the client gives up (the outcome stays unknown).
    pub give_up_us: u64,
    /// Attempts made.
    pub attempts: u32,
}

/// One simulated client.
#[derive(Clone, Debug)]
pub struct SimClient {
    /// The current process id (also the dedupe client id).
    pub process: u64,
    /// Last request number used by this process.
    pub request: u64,
    /// The operation in flight, if any.
    pub in_flight: Option<InFlight>,
    /// A server believed to lead.
    pub leader_hint: Option<usize>,
    /// Operations completed.
    pub completed_count: u64,
    /// Operations given up with unknown outcome.
    pub unknown_count: u64,
    /// Bumped whenever the client's timer is set; older timer events are ignored.
    pub wake_generation: u64,
}

/// Bounds on the keys and values clients use.
pub const KEYS_COUNT: u64 = 5;

impl SimClient {
    /// A client starting as `process`.
    #[must_use]
    pub fn new(process: u64) -> SimClient {
        SimClient {
            process,
            request: 0,
            in_flight: None,
            leader_hint: None,
            completed_count: 0,
            unknown_count: 0,
            wake_generation: 0,
        }
    }

    /// A random operation: reads, writes and compare-and-sets over a few keys; written
    /// values are unique so that the checker can tell writes apart.
    pub fn random_op(prng: &mut Prng, unique: &mut i64) -> KvOp {
        let key = u8::try_from(prng.range(0, KEYS_COUNT)).expect("few keys");
        *unique += 1;
        match prng.range(0, 10) {
            0..=4 => KvOp::Get(key),
            5..=7 => KvOp::Put(key, *unique),
            _ => {
                let expected = prng.range(0, 4);
                let expected = i64::try_from(expected).expect("small");
                KvOp::Cas(key, (*unique - expected * 3).max(1), *unique)
            }
        }
    }

    /// Picks the server for the next attempt: the hinted leader, else a random one.
    pub fn pick_target(&mut self, prng: &mut Prng, nodes_count: usize) -> usize {
        match self.leader_hint.take() {
            Some(hint) if prng.chance(9, 10) => hint,
            _ => usize::try_from(prng.range(0, nodes_count as u64)).expect("few nodes"),
        }
    }
}
