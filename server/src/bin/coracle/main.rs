//! `coracle`: run a node, talk to a cluster as a client, or ask it how it is.
//!
//! Exit codes, for scripts:
//! - 0: done;
//! - 1: the cluster answered with an error (the state machine refused, a node failed);
//! - 2: the command line or the configuration is wrong (the message names the option or
//!   key);
//! - 3: the cluster could not be reached, or did not answer in time;
//! - 4: the answer is "no": `get` found no value, `cas` did not match.

mod admin_command;
mod client_command;
mod server_command;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What scripts can rely on.
pub const EXIT_CODES: &str = "Exit codes: 0 done; 1 the cluster answered with an error; \
    2 wrong command line or configuration; 3 the cluster could not be reached or did not \
    answer in time; 4 the answer is no (get: no value; cas: no match).";

/// coracle: a thread-per-core Raft engine.
#[derive(Debug, Parser)]
#[command(name = "coracle", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node of a cluster until it is killed
    Server(server_command::ServerArgs),
    /// Read and write the built-in key-value store through a client session
    Client(client_command::ClientArgs),
    /// Ask the nodes of a cluster about their groups
    Admin(admin_command::AdminArgs),
}

/// How a command failed: its exit code and message.
#[derive(Debug)]
pub struct Failure {
    /// The exit code (see the module documentation).
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Failure {
    /// The cluster answered with an error.
    pub fn answered(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// The command line or configuration is wrong.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// The cluster could not be reached.
    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure {
            code: 3,
            message: message.into(),
        }
    }

    /// The answer is no (printed, not an error).
    pub fn no(message: impl Into<String>) -> Failure {
        Failure {
            code: 4,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server_command::run(args),
        Command::Client(args) => client_command::run(args),
        Command::Admin(args) => admin_command::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("coracle: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
