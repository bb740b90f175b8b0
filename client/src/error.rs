//! Why a client call failed. Nothing in this crate panics on what the network brings: a
//! bad frame closes its connection (and is logged), and the session carries on elsewhere.

use coracle_engine::client::SubmitError;
use coracle_engine::session::{ApplicationError, ClientError, DecodeError};
use coracle_engine::ReplicaId;

/// One address that could not be used at start-up, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressFailure {
    /// The address as given.
    pub address: String,
    /// What went wrong.
    pub reason: String,
}

/// Why a client call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// An option is out of range; nothing was attempted.
    InvalidOptions {
        /// The option's field name in [`ClientOptions`](crate::ClientOptions).
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A server refused the handshake (another cluster's name, another protocol version)
    /// and no address accepted.
    Refused {
        /// The address that refused.
        address: String,
        /// The server's reason.
        reason: String,
    },
    /// No address answered the handshake.
    Unreachable {
        /// Each address and why it failed.
        failures: Vec<AddressFailure>,
    },
    /// Servers answered the handshake, but none registered a session (the connection
    /// strategy gave up).
    RegistrationFailed {
        /// The servers tried.
        servers: Vec<ReplicaId>,
    },
    /// The client is closed (or its session expired with the CLOSE recovery strategy); the
    /// operation's fate on the servers is unknown if it had been sent.
    Closed,
    /// Too many operations are pending: wait for some to complete.
    TooManyPending {
        /// The bound.
        pending_max: usize,
    },
    /// The state machine ran the operation and returned this error (or panicked).
    Application(ApplicationError),
    /// The cluster failed the operation for good (an internal error, a command whose
    /// cached output is gone); retryable errors never reach the caller, the session
    /// retries them itself.
    Cluster(ClientError),
    /// A typed operation's output did not decode as its `Output` type: the client and the
    /// servers disagree on the state machine.
    Decode(DecodeError),
    /// `close` gave up waiting for the unregister; the servers will expire the session.
    CloseTimedOut {
        /// How long it waited.
        waited_ms: u64,
    },
    /// The blocking facade's executor could not start or stopped.
    Runtime {
        /// What happened.
        reason: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidOptions { option, reason } => {
                write!(f, "invalid client option `{option}`: {reason}")
            }
            Error::Refused { address, reason } => {
                write!(
                    f,
                    "the server at {address} refused the connection: {reason}"
                )
            }
            Error::Unreachable { failures } => {
                write!(f, "no server answered:")?;
                for (position, failure) in failures.iter().enumerate() {
                    let separator = if position == 0 { " " } else { "; " };
                    write!(f, "{separator}{}: {}", failure.address, failure.reason)?;
                }
                Ok(())
            }
            Error::RegistrationFailed { servers } => {
                write!(f, "no server registered a session (tried nodes")?;
                for server in servers {
                    write!(f, " {server}")?;
                }
                write!(f, ")")
            }
            Error::Closed => write!(f, "the client is closed"),
            Error::TooManyPending { pending_max } => {
                write!(f, "{pending_max} operations are already pending")
            }
            Error::Application(error) => write!(f, "{error}"),
            Error::Cluster(error) => write!(f, "the cluster failed the operation: {error}"),
            Error::Decode(error) => write!(f, "the output does not decode: {error}"),
            Error::CloseTimedOut { waited_ms } => write!(
                f,
                "no server unregistered the session within {waited_ms} ms; it will expire"
            ),
            Error::Runtime { reason } => write!(f, "client runtime: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<SubmitError> for Error {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Closed => Error::Closed,
            SubmitError::TooManyPending { pending_max } => Error::TooManyPending { pending_max },
        }
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::ClosedSession => Error::Closed,
            ClientError::Application(error) => Error::Application(error),
            other => Error::Cluster(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_failed() {
        let unreachable = Error::Unreachable {
            failures: vec![
                AddressFailure {
                    address: "a:1".into(),
                    reason: "connection refused".into(),
                },
                AddressFailure {
                    address: "b:2".into(),
                    reason: "timed out".into(),
                },
            ],
        };
        assert_eq!(
            unreachable.to_string(),
            "no server answered: a:1: connection refused; b:2: timed out"
        );
        let registration = Error::RegistrationFailed {
            servers: vec![ReplicaId(1), ReplicaId(3)],
        };
        assert_eq!(
            registration.to_string(),
            "no server registered a session (tried nodes 1 3)"
        );
        assert_eq!(
            Error::from(ClientError::ClosedSession),
            Error::Closed,
            "the session's own closed error is the client's"
        );
        assert_eq!(
            Error::from(SubmitError::TooManyPending { pending_max: 4 }),
            Error::TooManyPending { pending_max: 4 }
        );
    }
}
