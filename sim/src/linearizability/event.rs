//! The events a simulator or test harness records, in real-time order.

/// One event of a recorded history: a client invoking an operation, or learning its outcome.
///
/// A list of events is in real-time order: an event's position is its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<I, O> {
    /// The client (process) the event belongs to. A client has at most one operation in
    /// flight.
    pub client: u64,
    /// What happened.
    pub kind: EventKind<I, O>,
}

/// What an [`Event`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind<I, O> {
    /// The client invoked an operation.
    Invoke(I),
    /// The client's operation completed with this output.
    Return(O),
    /// The client gave up on its operation without learning the outcome (Jepsen's `:info`):
    /// it may take effect at any time after its invocation, or never. The client may then
    /// invoke another operation.
    Unknown,
    /// The client's operation definitely did not take effect (Jepsen's `:fail`); it is
    /// dropped from the history.
    NoEffect,
}

impl<I, O> Event<I, O> {
    /// An invocation by `client`.
    pub fn invoke(client: u64, input: I) -> Self {
        Event {
            client,
            kind: EventKind::Invoke(input),
        }
    }

    /// A completion with `output` for `client`'s operation.
    pub fn ret(client: u64, output: O) -> Self {
        Event {
            client,
            kind: EventKind::Return(output),
        }
    }

    /// `client`'s operation ended with an unknown outcome.
    pub fn unknown(client: u64) -> Self {
        Event {
            client,
            kind: EventKind::Unknown,
        }
    }

    /// `client`'s operation definitely had no effect.
    pub fn no_effect(client: u64) -> Self {
        Event {
            client,
            kind: EventKind::NoEffect,
        }
    }
}
