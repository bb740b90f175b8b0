//! One operation of a history.

/// One client operation: what was asked, when, and what (if anything) was answered.
///
/// Times are logical or simulated instants; only their order matters. An operation whose
/// call is at or before another's return is concurrent with it (ties count as overlapping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (process) that issued the operation.
    pub client: u64,
    /// What the client asked for.
    pub input: I,
    /// When the client issued the operation.
    pub call_time: u64,
    /// When the client received the answer. Ignored, and treated as +infinity, when `output`
    /// is `None`.
    pub return_time: u64,
    /// The answer, or `None` if the outcome is unknown (timed out or crashed): the operation
    /// may then have taken effect at any point after its call, or never.
    pub output: Option<O>,
}

impl<I, O> Operation<I, O> {
    /// An operation that completed at `return_time` with `output`.
    pub fn completed(client: u64, input: I, call_time: u64, return_time: u64, output: O) -> Self {
        Operation {
            client,
            input,
            call_time,
            return_time,
            output: Some(output),
        }
    }

    /// An operation issued at `call_time` whose outcome is unknown.
    pub fn unknown(client: u64, input: I, call_time: u64) -> Self {
        Operation {
            client,
            input,
            call_time,
            return_time: u64::MAX,
            output: None,
        }
    }

    /// Whether the outcome is known.
    pub fn is_completed(&self) -> bool {
        self.output.is_some()
    }
}
