//! A small state machine for tests: a register map, locks released when their holder's
//! session closes, events to every session, scheduled tasks and a command that panics.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::session::reader::{DecodeError, Reader};
use crate::session::{ApplicationError, SessionId};
use crate::state_machine::{
    Codec, Command, Commit, Context, Operations, Query, QueryContext, StateMachine,
};

#[derive(Default)]
pub(crate) struct TestMachine {
    pub values: BTreeMap<u64, u64>,
    pub locks: BTreeMap<u64, SessionId>,
    pub releases: Vec<(u64, SessionId)>,
    pub ticks: Vec<u64>,
    pub listener_calls: Vec<String>,
}

pub(crate) struct Put(pub u64, pub u64);
pub(crate) struct Get(pub u64);
pub(crate) struct Lock(pub u64);
pub(crate) struct Shout(pub String);
pub(crate) struct Boom;
pub(crate) struct After(pub u64);

impl Codec for Put {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Put(u64::decode(reader)?, u64::decode(reader)?))
    }
}
impl Command for Put {
    const ID: u32 = 1;
    type Output = Option<u64>;
}

macro_rules! one_field {
    ($name:ident, $field:ty) => {
        impl Codec for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out);
            }
            fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
                Ok($name(<$field>::decode(reader)?))
            }
        }
    };
}
one_field!(Get, u64);
one_field!(Lock, u64);
one_field!(Shout, String);
one_field!(After, u64);

impl Query for Get {
    const ID: u32 = 1;
    type Output = Option<u64>;
}
impl Command for Lock {
    const ID: u32 = 2;
    type Output = bool;
}
impl Command for Shout {
    const ID: u32 = 3;
    type Output = ();
}
impl Codec for Boom {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Boom)
    }
}
impl Command for Boom {
    const ID: u32 = 4;
    type Output = ();
}
impl Command for After {
    const ID: u32 = 5;
    type Output = ();
}

impl StateMachine for TestMachine {
    fn operations(operations: &mut Operations<Self>) {
        operations
            .command(|machine: &mut TestMachine, commit: Commit<Put>, _context| {
                let Put(key, value) = *commit.operation();
                Ok(machine.values.insert(key, value))
            })
            .command(
                |machine: &mut TestMachine, commit: Commit<Lock>, _context| {
                    let key = commit.operation().0;
                    if machine.locks.contains_key(&key) {
                        return Ok(false);
                    }
                    machine.locks.insert(key, commit.session());
                    Ok(true)
                },
            )
            .command(
                |_machine: &mut TestMachine, commit: Commit<Shout>, context| {
                    let ids: Vec<SessionId> = context.sessions().iter().map(|s| s.id()).collect();
                    for id in ids {
                        context
                            .publish(id, commit.operation().0.clone(), Bytes::new())
                            .map_err(|error| ApplicationError {
                                message: error.to_string(),
                            })?;
                    }
                    Ok(())
                },
            )
            .command(
                |machine: &mut TestMachine, _commit: Commit<Boom>, _context| {
                    machine.values.insert(999, 1);
                    panic!("boom");
                },
            )
            .command(
                |_machine: &mut TestMachine, commit: Commit<After>, context| {
                    let session = commit.session();
                    context.schedule(
                        commit.operation().0,
                        move |machine: &mut TestMachine, context: &mut Context<'_, TestMachine>| {
                            machine.ticks.push(context.clock_ms());
                            let _ = context.publish(session, "tick", Bytes::new());
                        },
                    );
                    Ok(())
                },
            )
            .query(
                |machine: &TestMachine, commit: Commit<Get>, _context: &QueryContext<'_>| {
                    Ok(machine.values.get(&commit.operation().0).copied())
                },
            );
    }

    fn on_register(&mut self, session: SessionId, context: &mut Context<'_, Self>) {
        let refused = context.publish(session, "hello", Bytes::new()).is_err();
        self.listener_calls
            .push(format!("register {} refused-self {refused}", session.0));
    }

    fn on_unregister(&mut self, session: SessionId, _context: &mut Context<'_, Self>) {
        self.listener_calls
            .push(format!("unregister {}", session.0));
    }

    fn on_expire(&mut self, session: SessionId, _context: &mut Context<'_, Self>) {
        self.listener_calls.push(format!("expire {}", session.0));
    }

    fn on_close(&mut self, session: SessionId, context: &mut Context<'_, Self>) {
        self.listener_calls.push(format!("close {}", session.0));
        // Tell everyone else (Copycat's "close events" scenario).
        let others: Vec<SessionId> = context.sessions().iter().map(|other| other.id()).collect();
        for other in others {
            let payload = Bytes::from(session.0.to_le_bytes().to_vec());
            let _ = context.publish(other, "closed", payload);
        }
        let held: Vec<u64> = self
            .locks
            .iter()
            .filter(|(_, holder)| **holder == session)
            .map(|(key, _)| *key)
            .collect();
        for key in held {
            self.locks.remove(&key);
            self.releases.push((key, session));
        }
    }
}
