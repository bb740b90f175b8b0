//! Simulated clients: each drives a real [`ClientSession`] (registration, sequencing,
//! failover, keep-alives, events) and runs one operation at a time, recording invocations
//! and completions for the linearizability checker and what it observed for the session
//! checkers.

use coracle_engine::client::{ClientSession, OperationId};
use coracle_engine::session::{CommandConsistency, QueryConsistency, SessionId};
use coracle_engine::Prng;

use crate::kv::{KvCommand, KvOp, KvOutput, LockCommand};
use crate::session_check::Observation;

/// One operation of the linearizability history, with unknown outcome while `output` is
/// `None`.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The client process (a client whose operation's outcome stays unknown takes a new
    /// process: the open operation never ends).
    pub process: u64,
    /// What was asked.
    pub op: KvOp,
    /// When it was invoked (simulated µs × 1000 plus a tie-breaker).
    pub call_us: u64,
    /// What it returned, if it completed.
    pub output: Option<KvOutput>,
    /// When it completed.
    pub return_us: Option<u64>,
}

/// What a client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A command through the log (a `Get` here is a read through the log).
    Command(KvCommand, CommandConsistency),
    /// A query at a consistency level.
    Query(crate::kv::Key, QueryConsistency),
    /// Take or give back a lock.
    Lock(LockCommand),
}

impl Request {
    /// Whether the linearizability checker judges it. LINEARIZABLE_LEASE reads are judged
    /// too: the simulator's drift bound covers every server's drift.
    #[must_use]
    pub fn linearizable(&self) -> bool {
        match self {
            Request::Command(..) => true,
            Request::Query(_, consistency) => matches!(
                consistency,
                QueryConsistency::Linearizable | QueryConsistency::LinearizableLease
            ),
            Request::Lock(_) => false,
        }
    }

    /// The operation as the linearizability checker models it.
    #[must_use]
    pub fn kv_op(&self) -> Option<KvOp> {
        match *self {
            Request::Command(command, _) => Some(command.op),
            Request::Query(key, _) => Some(KvOp::Get(key)),
            Request::Lock(_) => None,
        }
    }

    /// A short label for messages.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Request::Command(..) => "command",
            Request::Query(_, QueryConsistency::Linearizable) => "linearizable",
            Request::Query(_, QueryConsistency::LinearizableLease) => "lease",
            Request::Query(_, QueryConsistency::Sequential) => "sequential",
            Request::Query(_, QueryConsistency::Causal) => "causal",
            Request::Lock(_) => "lock",
        }
    }
}

/// The operation a client is waiting on.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The session's id for it.
    pub operation: OperationId,
    /// What was asked.
    pub request: Request,
    /// Its place in the linearizability history, if judged there.
    pub history_position: Option<usize>,
    /// When it was invoked (µs).
    pub invoked_us: u64,
}

/// One simulated client.
pub struct SimClient {
    /// Its session protocol, or `None` while the client is "crashed" (it will come back as a
    /// new client with a new session).
    pub session: Option<ClientSession>,
    /// Its current client id (a new one after each crash).
    pub client_id: u128,
    /// The linearizability process.
    pub process: u64,
    /// The operation in flight.
    pub in_flight: Option<InFlight>,
    /// Everything it observed, across its sessions.
    pub observations: Vec<Observation>,
    /// Sessions this client abandoned without closing (a crash), with when.
    pub abandoned: Vec<(SessionId, u64)>,
    /// Operations completed.
    pub completed_count: u64,
    /// Operations with unknown outcome.
    pub unknown_count: u64,
    /// Bumped whenever the client's timer is set; older timer events are ignored.
    pub wake_generation: u64,
    /// The session the client's current session protocol opened, if any.
    pub current_session: Option<SessionId>,
    /// When the client invokes its next operation (after thinking).
    pub next_invoke_us: u64,
}

/// Keys clients use.
pub const KEYS_COUNT: u64 = 5;

impl SimClient {
    /// A client that has not started.
    #[must_use]
    pub fn new(client_id: u128, process: u64) -> SimClient {
        SimClient {
            session: None,
            client_id,
            process,
            in_flight: None,
            observations: Vec::new(),
            abandoned: Vec::new(),
            completed_count: 0,
            unknown_count: 0,
            wake_generation: 0,
            current_session: None,
            next_invoke_us: 0,
        }
    }

    /// A random request. Written values are unique so that the checkers can tell writes
    /// apart.
    pub fn random_request(prng: &mut Prng, unique: &mut i64) -> Request {
        let key = u8::try_from(prng.range(0, KEYS_COUNT)).expect("few keys");
        *unique += 1;
        let op_id = u64::try_from(*unique).expect("positive");
        let consistency = if prng.chance(1, 5) {
            CommandConsistency::Sequential
        } else {
            CommandConsistency::Linearizable
        };
        match prng.range(0, 20) {
            0..=2 => Request::Query(key, QueryConsistency::Linearizable),
            3 | 4 => Request::Query(key, QueryConsistency::LinearizableLease),
            5 | 6 => Request::Query(key, QueryConsistency::Sequential),
            7 | 8 => Request::Query(key, QueryConsistency::Causal),
            9 => Request::Command(
                KvCommand {
                    op_id,
                    op: KvOp::Get(key),
                },
                consistency,
            ),
            10..=14 => Request::Command(
                KvCommand {
                    op_id,
                    op: KvOp::Put(key, *unique),
                },
                consistency,
            ),
            15..=17 => {
                let expected = i64::try_from(prng.range(0, 4)).expect("small");
                Request::Command(
                    KvCommand {
                        op_id,
                        op: KvOp::Cas(key, (*unique - expected * 3).max(1), *unique),
                    },
                    consistency,
                )
            }
            _ => Request::Lock(LockCommand {
                op_id,
                key,
                take: prng.chance(1, 2),
            }),
        }
    }
}
