//! The replicated key-value state machine the simulated clients use, written on the
//! engine's public state-machine API: registers with get, put and compare-and-set, locks
//! released when their holder's session closes, and events to the sessions that watch a
//! key. It keeps a journal of what it did (per server, rebuilt by replay after a restart)
//! that the checkers read as ground truth.

use std::collections::BTreeMap;

use bytes::Bytes;
use coracle_engine::session::reader::{DecodeError, Reader};
use coracle_engine::session::SessionId;
use coracle_engine::state_machine::{
    Codec, Command, Commit, Context, Operations, Query, QueryContext, StateMachine,
};
use coracle_engine::LogIndex;

/// Keys are small numbers so that operations contend.
pub type Key = u8;

/// One client operation, as the linearizability checker models it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Read a key.
    Get(Key),
    /// Write a key.
    Put(Key, i64),
    /// Write `new` if the key holds `expected`.
    Cas(Key, i64, i64),
}

impl KvOp {
    /// The key the operation touches.
    #[must_use]
    pub fn key(&self) -> Key {
        match *self {
            KvOp::Get(key) | KvOp::Put(key, _) | KvOp::Cas(key, _, _) => key,
        }
    }
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOutput {
    /// A get's value (`None` if never written).
    Value(Option<i64>),
    /// A put, or a cas that matched.
    Ok,
    /// A cas that did not match.
    Fail,
}

/// A command: the operation and an id unique in the run, so the journal shows whether any
/// command ran twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCommand {
    /// Unique in the run.
    pub op_id: u64,
    /// What to do (a `Get` here is a read through the log).
    pub op: KvOp,
}

impl Codec for KvCommand {
    fn encode(&self, out: &mut Vec<u8>) {
        self.op_id.encode(out);
        let (tag, key, a, b) = match self.op {
            KvOp::Get(key) => (0u8, key, 0, 0),
            KvOp::Put(key, value) => (1, key, value, 0),
            KvOp::Cas(key, expected, new) => (2, key, expected, new),
        };
        out.push(tag);
        out.push(key);
        a.encode(out);
        b.encode(out);
    }

    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let op_id = u64::decode(reader)?;
        let tag = reader.u8("kv tag")?;
        let key = reader.u8("kv key")?;
        let a = i64::decode(reader)?;
        let b = i64::decode(reader)?;
        let op = match tag {
            0 => KvOp::Get(key),
            1 => KvOp::Put(key, a),
            2 => KvOp::Cas(key, a, b),
            tag => {
                return Err(DecodeError::Invalid {
                    what: "kv tag",
                    value: u64::from(tag),
                })
            }
        };
        Ok(KvCommand { op_id, op })
    }
}

impl Command for KvCommand {
    const ID: u32 = 1;
    type Output = KvResult;
}

/// A command's output on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvResult(pub KvOutput);

impl Codec for KvResult {
    fn encode(&self, out: &mut Vec<u8>) {
        match self.0 {
            KvOutput::Value(value) => {
                out.push(0);
                value.map(|value| value as u64).encode(out);
            }
            KvOutput::Ok => out.push(1),
            KvOutput::Fail => out.push(2),
        }
    }

    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(KvResult(match reader.u8("kv output tag")? {
            0 => KvOutput::Value(Option::<u64>::decode(reader)?.map(|value| value as i64)),
            1 => KvOutput::Ok,
            2 => KvOutput::Fail,
            tag => {
                return Err(DecodeError::Invalid {
                    what: "kv output tag",
                    value: u64::from(tag),
                })
            }
        }))
    }
}

/// Take or give back a lock; the output says whether it changed hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockCommand {
    /// Unique in the run.
    pub op_id: u64,
    /// The lock.
    pub key: Key,
    /// True to take it, false to give it back.
    pub take: bool,
}

impl Codec for LockCommand {
    fn encode(&self, out: &mut Vec<u8>) {
        self.op_id.encode(out);
        out.push(self.key);
        self.take.encode(out);
    }

    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(LockCommand {
            op_id: u64::decode(reader)?,
            key: reader.u8("lock key")?,
            take: bool::decode(reader)?,
        })
    }
}

impl Command for LockCommand {
    const ID: u32 = 2;
    type Output = bool;
}

/// A read that is never logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvGet(pub Key);

impl Codec for KvGet {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.0);
    }

    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(KvGet(reader.u8("get key")?))
    }
}

impl Query for KvGet {
    const ID: u32 = 1;
    type Output = Option<u64>;
}

/// A write that took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedWrite {
    /// The command's index.
    pub index: LogIndex,
    /// The key.
    pub key: Key,
    /// Its value afterwards.
    pub value: i64,
}

/// An event the machine published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedEvent {
    /// To whom.
    pub session: SessionId,
    /// At which index.
    pub index: LogIndex,
    /// The written value it announces (unique in the run).
    pub value: i64,
}

/// What happened to locks, in apply order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockEvent {
    /// `session` took the free lock `key`.
    Acquired(Key, SessionId),
    /// `session` gave `key` back.
    Unlocked(Key, SessionId),
    /// `key` was released because its holder `session` closed.
    ReleasedOnClose(Key, SessionId),
    /// `session` closed (after its locks were released).
    Closed(SessionId),
}

/// What the machine did, in apply order.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// Every change to locks and every close, in order.
    pub locks: Vec<LockEvent>,
    /// Every write that took effect.
    pub writes: Vec<AppliedWrite>,
    /// Every command run, as (index, session, op id).
    pub commands: Vec<(LogIndex, SessionId, u64)>,
    /// Every event published.
    pub published: Vec<PublishedEvent>,
    /// Locks taken: (key, holder).
    pub acquired: Vec<(Key, SessionId)>,
    /// Locks released because their holder's session closed: (key, holder).
    pub released_on_close: Vec<(Key, SessionId)>,
    /// Sessions closed: (session, index, expired).
    pub closed: Vec<(SessionId, LogIndex, bool)>,
    /// Sessions registered, with their index.
    pub registered: Vec<SessionId>,
}

/// The replicated state.
#[derive(Clone, Debug, Default)]
pub struct SimKv {
    values: BTreeMap<Key, i64>,
    locks: BTreeMap<Key, SessionId>,
    /// The session `on_expire` announced, for the `on_close` that follows.
    expiring: Option<SessionId>,
    /// Ground truth for the checkers.
    pub journal: Journal,
}

/// Whether `session` watches `key`: a fixed half of the sessions per key, so events go to
/// some sessions and not others.
#[must_use]
pub fn watches(session: SessionId, key: Key) -> bool {
    (session.0 + u64::from(key)).is_multiple_of(2)
}

impl SimKv {
    fn write(&mut self, index: LogIndex, key: Key, value: i64, context: &mut Context<'_, SimKv>) {
        self.values.insert(key, value);
        self.journal.writes.push(AppliedWrite { index, key, value });
        let watchers: Vec<SessionId> = context
            .sessions()
            .iter()
            .map(|session| session.id())
            .filter(|&session| watches(session, key))
            .collect();
        for session in watchers {
            let payload = Bytes::from(value.to_le_bytes().to_vec());
            if context.publish(session, "write", payload).is_ok() {
                self.journal.published.push(PublishedEvent {
                    session,
                    index: context.index(),
                    value,
                });
            }
        }
    }
}

impl StateMachine for SimKv {
    fn operations(operations: &mut Operations<Self>) {
        operations
            .command(|kv: &mut SimKv, commit: Commit<KvCommand>, context| {
                let KvCommand { op_id, op } = *commit.operation();
                kv.journal
                    .commands
                    .push((commit.index(), commit.session(), op_id));
                let output = match op {
                    KvOp::Get(key) => KvOutput::Value(kv.values.get(&key).copied()),
                    KvOp::Put(key, value) => {
                        kv.write(commit.index(), key, value, context);
                        KvOutput::Ok
                    }
                    KvOp::Cas(key, expected, new) => {
                        if kv.values.get(&key) == Some(&expected) {
                            kv.write(commit.index(), key, new, context);
                            KvOutput::Ok
                        } else {
                            KvOutput::Fail
                        }
                    }
                };
                Ok(KvResult(output))
            })
            .command(|kv: &mut SimKv, commit: Commit<LockCommand>, _context| {
                let LockCommand { op_id, key, take } = *commit.operation();
                kv.journal
                    .commands
                    .push((commit.index(), commit.session(), op_id));
                let holder = kv.locks.get(&key).copied();
                Ok(match (take, holder) {
                    (true, None) => {
                        kv.locks.insert(key, commit.session());
                        kv.journal.acquired.push((key, commit.session()));
                        kv.journal
                            .locks
                            .push(LockEvent::Acquired(key, commit.session()));
                        true
                    }
                    (false, Some(holder)) if holder == commit.session() => {
                        kv.locks.remove(&key);
                        kv.journal
                            .locks
                            .push(LockEvent::Unlocked(key, commit.session()));
                        true
                    }
                    _ => false,
                })
            })
            .query(
                |kv: &SimKv, commit: Commit<KvGet>, _context: &QueryContext<'_>| {
                    Ok(kv
                        .values
                        .get(&commit.operation().0)
                        .map(|value| *value as u64))
                },
            );
    }

    fn on_register(&mut self, session: SessionId, _context: &mut Context<'_, Self>) {
        self.journal.registered.push(session);
    }

    fn on_close(&mut self, session: SessionId, context: &mut Context<'_, Self>) {
        let held: Vec<Key> = self
            .locks
            .iter()
            .filter(|(_, holder)| **holder == session)
            .map(|(key, _)| *key)
            .collect();
        for key in held {
            self.locks.remove(&key);
            self.journal.released_on_close.push((key, session));
            self.journal
                .locks
                .push(LockEvent::ReleasedOnClose(key, session));
        }
        self.journal.locks.push(LockEvent::Closed(session));
        let expired = self.expiring.take() == Some(session);
        self.journal
            .closed
            .push((session, context.index(), expired));
    }

    fn on_expire(&mut self, session: SessionId, _context: &mut Context<'_, Self>) {
        // `on_close` follows at once and records the close.
        self.expiring = Some(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coracle_engine::state_machine::{decode_value, encode_value};

    #[test]
    fn commands_and_outputs_round_trip() {
        for op in [KvOp::Get(3), KvOp::Put(1, -7), KvOp::Cas(2, 5, 9)] {
            let command = KvCommand { op_id: 77, op };
            assert_eq!(
                decode_value::<KvCommand>(&encode_value(&command)),
                Ok(command)
            );
        }
        for output in [
            KvOutput::Value(None),
            KvOutput::Value(Some(-3)),
            KvOutput::Ok,
            KvOutput::Fail,
        ] {
            let result = KvResult(output);
            assert_eq!(decode_value::<KvResult>(&encode_value(&result)), Ok(result));
        }
        let lock = LockCommand {
            op_id: 1,
            key: 2,
            take: true,
        };
        assert_eq!(decode_value::<LockCommand>(&encode_value(&lock)), Ok(lock));
        assert!(decode_value::<KvCommand>(&Bytes::from_static(&[1, 2, 3])).is_err());
    }
}
