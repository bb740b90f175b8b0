//! The error the history parsers return.

use std::fmt;

use super::event::Event;
use super::history::{History, HistoryError};

/// A malformed line in a history file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl ParseError {
    /// An error at `line` (1-based).
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Builds a history from parsed events; an error names the file line of the event at
/// fault (`event_lines[i]` is the line of event `i`).
pub(crate) fn history_from_events<I: Clone, O: Clone>(
    events: Vec<Event<I, O>>,
    event_lines: &[usize],
) -> Result<History<I, O>, ParseError> {
    History::from_events(events).map_err(|error| {
        let event = match error {
            HistoryError::AlreadyInFlight { event, .. }
            | HistoryError::NothingInFlight { event, .. } => event,
            HistoryError::ReturnBeforeCall { .. } => 0,
        };
        ParseError::new(
            event_lines.get(event).copied().unwrap_or(0),
            error.to_string(),
        )
    })
}
