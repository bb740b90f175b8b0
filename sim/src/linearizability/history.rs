//! A history: the operations a checker judges.

use std::collections::BTreeMap;
use std::fmt;

use super::event::{Event, EventKind};
use super::operation::Operation;

/// The operations of one run, each with its call and return time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
}

/// Why a history could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// A completed operation returned before it was called.
    ReturnBeforeCall {
        /// The operation's call time.
        call_time: u64,
        /// The operation's return time.
        return_time: u64,
    },
    /// A client invoked an operation while another of its operations was in flight.
    AlreadyInFlight {
        /// The position of the offending event.
        event: usize,
        /// The client.
        client: u64,
    },
    /// A client's operation completed, but the client had no operation in flight.
    NothingInFlight {
        /// The position of the offending event.
        event: usize,
        /// The client.
        client: u64,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::ReturnBeforeCall {
                call_time,
                return_time,
            } => write!(
                f,
                "operation returns at {return_time}, before its call at {call_time}"
            ),
            HistoryError::AlreadyInFlight { event, client } => write!(
                f,
                "event {event}: client {client} invokes while an operation is in flight"
            ),
            HistoryError::NothingInFlight { event, client } => write!(
                f,
                "event {event}: client {client} completes an operation it never invoked"
            ),
        }
    }
}

impl std::error::Error for HistoryError {}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History { ops: Vec::new() }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation; returns its index in [`History::operations`].
    pub fn push(&mut self, op: Operation<I, O>) -> Result<usize, HistoryError> {
        if op.is_completed() && op.return_time < op.call_time {
            return Err(HistoryError::ReturnBeforeCall {
                call_time: op.call_time,
                return_time: op.return_time,
            });
        }
        self.ops.push(op);
        Ok(self.ops.len() - 1)
    }

    /// The operations, in the order they were added.
    pub fn operations(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// How many operations the history holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the history holds no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Builds a history from events in real-time order, an event's position being its time.
    ///
    /// The operations come out in invocation order. An operation still in flight at the end
    /// has an unknown outcome; one ended by [`EventKind::NoEffect`] is left out.
    pub fn from_events(
        events: impl IntoIterator<Item = Event<I, O>>,
    ) -> Result<Self, HistoryError> {
        // Operations by call time, which is unique: one event per time.
        let mut ops: BTreeMap<u64, Operation<I, O>> = BTreeMap::new();
        let mut in_flight: BTreeMap<u64, (u64, I)> = BTreeMap::new();
        for (position, event) in events.into_iter().enumerate() {
            let time = position as u64;
            let client = event.client;
            let nothing_in_flight = HistoryError::NothingInFlight {
                event: position,
                client,
            };
            match event.kind {
                EventKind::Invoke(input) => {
                    if in_flight.insert(client, (time, input)).is_some() {
                        return Err(HistoryError::AlreadyInFlight {
                            event: position,
                            client,
                        });
                    }
                }
                EventKind::Return(output) => {
                    let (call, input) = in_flight.remove(&client).ok_or(nothing_in_flight)?;
                    ops.insert(
                        call,
                        Operation::completed(client, input, call, time, output),
                    );
                }
                EventKind::Unknown => {
                    let (call, input) = in_flight.remove(&client).ok_or(nothing_in_flight)?;
                    ops.insert(call, Operation::unknown(client, input, call));
                }
                EventKind::NoEffect => {
                    in_flight.remove(&client).ok_or(nothing_in_flight)?;
                }
            }
        }
        for (client, (call, input)) in in_flight {
            ops.insert(call, Operation::unknown(client, input, call));
        }
        Ok(History {
            ops: ops.into_values().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_events_pairs_calls_and_returns() {
        let events = vec![
            Event::invoke(1, "a"),
            Event::invoke(2, "b"),
            Event::invoke(3, "c"),
            Event::ret(2, 20),
            Event::unknown(1),
            Event::invoke(1, "d"),
            Event::no_effect(3),
            Event::invoke(4, "e"),
            Event::ret(4, 40),
        ];
        let history = History::from_events(events).expect("well formed");
        assert_eq!(
            history.operations(),
            &[
                Operation::unknown(1, "a", 0),
                Operation::completed(2, "b", 1, 3, 20),
                Operation::unknown(1, "d", 5),
                Operation::completed(4, "e", 7, 8, 40),
            ]
        );
    }

    #[test]
    fn from_events_rejects_malformed_lists() {
        let twice: Vec<Event<&str, i32>> = vec![Event::invoke(1, "a"), Event::invoke(1, "b")];
        assert_eq!(
            History::from_events(twice),
            Err(HistoryError::AlreadyInFlight {
                event: 1,
                client: 1
            })
        );
        let orphan: Vec<Event<&str, i32>> = vec![Event::invoke(1, "a"), Event::ret(2, 5)];
        assert_eq!(
            History::from_events(orphan),
            Err(HistoryError::NothingInFlight {
                event: 1,
                client: 2
            })
        );
    }

    #[test]
    fn push_rejects_return_before_call() {
        let mut history = History::new();
        assert_eq!(history.push(Operation::completed(1, (), 5, 5, ())), Ok(0));
        assert!(history.push(Operation::completed(1, (), 5, 4, ())).is_err());
        assert_eq!(history.push(Operation::unknown(1, (), 9)), Ok(1));
        assert_eq!(history.len(), 2);
    }
}
