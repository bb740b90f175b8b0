//! `coracle client`: read and write the built-in key-value store through one client
//! session.
//!
//! Each invocation registers a session with the group (through the client library's
//! [`BlockingClient`], so it fails over between nodes like any client), runs one operation,
//! prints its answer and unregisters. `watch-events` keeps its session and prints events
//! until it is killed or has printed the events it was asked for.
//!
//! Keys and values are the UTF-8 bytes of the command-line text; values are printed as
//! text, with bytes that are not UTF-8 replaced (a lossy rendering, for people and simple
//! scripts).
//!
//! Exit codes are those of `main.rs`: 0 done, 1 the cluster (or the state machine) answered
//! with an error, 2 the command line is wrong, 3 the cluster could not be reached, refused
//! the connection or did not answer within `--timeout-ms`, 4 the answer is no.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use coracle_client::{
    BlockingClient, ClientOptions, ClientState, CommandConsistency, Error, QueryConsistency,
};
use coracle_engine::kv::{CompareAndSet, Delete, Get, KvEvent, Len, Put, Watch, KV_EVENT_NAME};
use coracle_engine::session::ApplicationError;
use coracle_engine::state_machine::{decode_value, encode_command, encode_query, Command, Query};

use crate::{Failure, EXIT_CODES};

/// How long `watch-events` waits for an event before it checks that its session is still
/// open: a session that ended (expired while the cluster was away) delivers nothing more,
/// and saying so beats waiting forever.
const WATCH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Options of `coracle client`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ClientArgs {
    /// The nodes to try: their shard-0 addresses, comma-separated (one that answers is
    /// enough; the others are used for failover)
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',', required = true)]
    addresses: Vec<String>,
    /// The cluster's name: a node of another cluster refuses the connection (exit 3)
    #[arg(long, value_name = "NAME", default_value = "coracle")]
    cluster: String,
    /// The Raft group whose key-value store to use
    #[arg(long, value_name = "G", default_value_t = 0)]
    group: u32,
    /// How long connecting (registering the session) may take, and then each operation,
    /// ms; past it the command exits 3. `watch-events` also exits 3 once it has had no
    /// contact with the cluster for this long
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Print the value of KEY; exit 4 if it has none
    ///
    /// Prints the value as one line of text and exits 0. If KEY has no value, prints
    /// nothing and exits 4.
    #[command(after_help = EXIT_CODES)]
    Get {
        /// The key (UTF-8 text; put `--` before a key that starts with `-`)
        key: String,
        /// How the read is served
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
    },
    /// Set KEY to VALUE; print the previous value, if any
    ///
    /// Prints the value KEY held before, as one line of text, or nothing if it had none;
    /// exits 0 either way once the write is committed and applied.
    #[command(after_help = EXIT_CODES)]
    Put {
        /// The key (UTF-8 text; put `--` before a key that starts with `-`)
        key: String,
        /// The value (UTF-8 text)
        value: String,
    },
    /// Remove KEY; print the value it held, if any
    ///
    /// Prints the value KEY held, as one line of text, or nothing if it had none; exits 0
    /// either way once the delete is committed and applied.
    #[command(after_help = EXIT_CODES)]
    Delete {
        /// The key (UTF-8 text; put `--` before a key that starts with `-`)
        key: String,
    },
    /// Compare-and-set: change KEY only if it holds the expected value
    ///
    /// Atomically: if KEY holds the value given by --expected (or has no value, with
    /// --expect-absent), sets it to --new (or removes it, with --delete). Prints `true`
    /// and exits 0 if it matched and was applied; prints `false` and exits 4 if it did not
    /// match (nothing changed).
    #[command(after_help = EXIT_CODES)]
    Cas(CasArgs),
    /// Print changes of keys under PREFIX as they are applied, one per line
    ///
    /// Watches every key that starts with PREFIX (every key if PREFIX is left out), then
    /// prints one line per change applied after the watch began, in the order they were
    /// applied: `INDEX KEY VALUE`, where INDEX is the log index of the change and VALUE is
    /// `<deleted>` for a removal. Runs until killed, or until --count lines are printed
    /// (then exits 0). Exits 3 if the session ends (it expired while the cluster was out
    /// of reach): events after that would be missed.
    #[command(after_help = EXIT_CODES)]
    WatchEvents {
        /// The key prefix to watch; empty (every key) if left out
        #[arg(default_value = "")]
        prefix: String,
        /// Stop after printing N events
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Print the number of keys
    ///
    /// Prints the number of keys in the store (a linearizable read) as one line.
    #[command(after_help = EXIT_CODES)]
    Len,
}

/// Options of `coracle client cas`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("expectation").required(true).args(["expected", "expect_absent"])))]
#[command(group(ArgGroup::new("change").required(true).args(["new", "delete"])))]
struct CasArgs {
    /// The key (UTF-8 text; put `--` before a key that starts with `-`)
    key: String,
    /// The value KEY must hold for the change to apply
    #[arg(long, value_name = "V", allow_hyphen_values = true)]
    expected: Option<String>,
    /// Apply the change only if KEY has no value
    #[arg(long)]
    expect_absent: bool,
    /// The value to set KEY to
    #[arg(long, value_name = "V", allow_hyphen_values = true)]
    new: Option<String>,
    /// Remove KEY instead of setting it
    #[arg(long)]
    delete: bool,
}

/// The read consistency of `get`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Consistency {
    /// The leader confirms it still leads with a round to a majority: never stale
    Linearizable,
    /// The leader answers while it holds its lease, without a round: never stale while
    /// clocks drift within the bound
    Lease,
    /// Any node that has applied what this session has seen answers; may be stale
    Sequential,
    /// Like sequential, but a node that is behind waits instead of forwarding
    Causal,
}

impl Consistency {
    fn level(self) -> QueryConsistency {
        match self {
            Consistency::Linearizable => QueryConsistency::Linearizable,
            Consistency::Lease => QueryConsistency::LinearizableLease,
            Consistency::Sequential => QueryConsistency::Sequential,
            Consistency::Causal => QueryConsistency::Causal,
        }
    }
}

/// Runs the client command.
pub fn run(args: ClientArgs) -> Result<(), Failure> {
    let timeout = Duration::from_millis(args.timeout_ms);
    // Check the input before connecting: a key over the limit is the user's mistake, and
    // it should be told so without waiting on the cluster.
    check_operation(&args.command).map_err(|error| Failure::usage(error.message))?;
    let mut options = ClientOptions::new(args.cluster.clone(), args.addresses.iter());
    options.group = args.group;
    options.connect_timeout_ms = args.timeout_ms;
    options.close_timeout_ms = args.timeout_ms;
    // Without it a session whose cluster is gone stays suspended forever, and
    // `watch-events` would wait in silence for events that can no longer come.
    options.unstability_timeout_ms = args.timeout_ms;
    options.validate().map_err(|error| failure_of(&error))?;
    let session = Session::open(options, timeout)?;
    let result = match args.command {
        ClientCommand::Get { key, consistency } => get(&session, key, consistency),
        ClientCommand::Put { key, value } => put(&session, key, value),
        ClientCommand::Delete { key } => delete(&session, key),
        ClientCommand::Cas(cas) => compare_and_set(&session, cas),
        ClientCommand::WatchEvents { prefix, count } => watch_events(&session, prefix, count),
        ClientCommand::Len => len(&session),
    };
    session.finish(result)
}

/// The state machine's size limits, checked here so nothing is sent that it would refuse.
fn check_operation(command: &ClientCommand) -> Result<(), ApplicationError> {
    match command {
        ClientCommand::Get { key, .. } => Get { key: text(key) }.check(),
        ClientCommand::Put { key, value } => Put {
            key: text(key),
            value: text(value),
        }
        .check(),
        ClientCommand::Delete { key } => Delete { key: text(key) }.check(),
        ClientCommand::Cas(cas) => cas_operation(cas).check(),
        ClientCommand::WatchEvents { prefix, .. } => Watch {
            prefix: text(prefix),
        }
        .check(),
        ClientCommand::Len => Ok(()),
    }
}

fn text(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn cas_operation(cas: &CasArgs) -> CompareAndSet {
    // clap's groups make exactly one of each pair present, so `None` means the flag.
    CompareAndSet {
        key: text(&cas.key),
        expected: cas.expected.as_deref().map(text),
        new: cas.new.as_deref().map(text),
    }
}

fn get(session: &Session, key: String, consistency: Consistency) -> Result<(), Failure> {
    let value = session.read(&Get { key: text(&key) }, consistency.level())?;
    match value {
        Some(value) => print_line(&String::from_utf8_lossy(&value)),
        None => Err(Failure::no("")),
    }
}

fn put(session: &Session, key: String, value: String) -> Result<(), Failure> {
    let previous = session.execute(&Put {
        key: text(&key),
        value: text(&value),
    })?;
    print_value(previous.as_ref())
}

fn delete(session: &Session, key: String) -> Result<(), Failure> {
    let previous = session.execute(&Delete { key: text(&key) })?;
    print_value(previous.as_ref())
}

fn compare_and_set(session: &Session, cas: CasArgs) -> Result<(), Failure> {
    let applied = session.execute(&cas_operation(&cas))?;
    print_line(if applied { "true" } else { "false" })?;
    if applied {
        Ok(())
    } else {
        Err(Failure::no(""))
    }
}

fn len(session: &Session) -> Result<(), Failure> {
    let count = session.read(&Len, QueryConsistency::Linearizable)?;
    print_line(&count.to_string())
}

fn watch_events(session: &Session, prefix: String, count: Option<u64>) -> Result<(), Failure> {
    session.execute(&Watch {
        prefix: text(&prefix),
    })?;
    let mut printed: u64 = 0;
    while count.is_none_or(|count| printed < count) {
        let Some(event) = session.client.next_event(WATCH_CHECK_INTERVAL) else {
            if session.client.state() == ClientState::Closed {
                return Err(Failure::unreachable(
                    "the session ended (it expired or was closed); later events would be \
                     missed",
                ));
            }
            continue;
        };
        if event.name != KV_EVENT_NAME {
            continue; // Not the key-value machine's: nothing this command knows to print.
        }
        let change = KvEvent::decode(&event.payload).map_err(|error| {
            Failure::answered(format!(
                "an event at index {} does not decode: {error}",
                event.index.0
            ))
        })?;
        let value = change.value.as_ref().map_or_else(
            || "<deleted>".into(),
            |value| String::from_utf8_lossy(value).into_owned(),
        );
        print_line(&format!(
            "{} {} {value}",
            change.index.0,
            String::from_utf8_lossy(&change.key)
        ))?;
        printed += 1;
    }
    Ok(())
}

/// One registered session and the deadline each operation gets.
struct Session {
    client: BlockingClient,
    timeout: Duration,
}

impl Session {
    /// Registers a session within `timeout`. `BlockingClient::connect` bounds each
    /// connection but not registration as a whole (a cluster without a leader keeps it
    /// trying), so it runs on its own thread and is abandoned past the deadline: the
    /// process ends right after, taking that thread with it.
    fn open(options: ClientOptions, timeout: Duration) -> Result<Session, Failure> {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("coracle-connect".into())
            .spawn(move || {
                // If nobody waits any more, the client is dropped here, which closes it.
                let _ = sender.send(BlockingClient::connect(options));
            })
            .map_err(|error| Failure::answered(format!("cannot start a thread: {error}")))?;
        match receiver.recv_timeout(timeout) {
            Ok(Ok(client)) => Ok(Session { client, timeout }),
            Ok(Err(error)) => Err(failure_of(&error)),
            Err(RecvTimeoutError::Timeout) => Err(Failure::unreachable(format!(
                "no session registered within {} ms",
                timeout.as_millis()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(Failure::answered(
                "the connecting thread stopped without an answer",
            )),
        }
    }

    /// Runs a linearizable command and decodes its output.
    fn execute<C: Command>(&self, command: &C) -> Result<C::Output, Failure> {
        let pending = self
            .client
            .send_command(encode_command(command), CommandConsistency::Linearizable);
        let response = pending
            .wait_timeout(self.timeout)
            .map_err(|_still_pending| self.timed_out())?
            .map_err(|error| failure_of(&error))?;
        decode_value(&response.output).map_err(|error| failure_of(&Error::Decode(error)))
    }

    /// Runs a query and decodes its output.
    fn read<Q: Query>(
        &self,
        query: &Q,
        consistency: QueryConsistency,
    ) -> Result<Q::Output, Failure> {
        let pending = self.client.send_query(encode_query(query), consistency);
        let response = pending
            .wait_timeout(self.timeout)
            .map_err(|_still_pending| self.timed_out())?
            .map_err(|error| failure_of(&error))?;
        decode_value(&response.output).map_err(|error| failure_of(&Error::Decode(error)))
    }

    fn timed_out(&self) -> Failure {
        // The operation may still apply: the session would resend it until it expires.
        Failure::unreachable(format!(
            "no answer within {} ms (a command may still apply)",
            self.timeout.as_millis()
        ))
    }

    /// Unregisters the session and passes `result` on. When the cluster could not be
    /// reached, waiting for it to unregister would only delay the exit code: the client is
    /// left to the process's end, and the servers expire the session on their own.
    fn finish(self, result: Result<(), Failure>) -> Result<(), Failure> {
        if matches!(&result, Err(failure) if failure.code == 3) {
            std::mem::forget(self.client);
            return result;
        }
        if let Err(error) = self.client.close() {
            // The answer is already printed and stands; only the session's end is late.
            eprintln!("coracle: warning: {error}");
        }
        result
    }
}

/// The exit code and message for a client library error.
fn failure_of(error: &Error) -> Failure {
    match error {
        Error::InvalidOptions { option, reason } => {
            let flag = match *option {
                "addresses" => "--addresses",
                "cluster" => "--cluster",
                "group" => "--group",
                "connect_timeout_ms" | "close_timeout_ms" | "request_timeout_ms" => "--timeout-ms",
                other => other,
            };
            Failure::usage(format!("{flag}: {reason}"))
        }
        Error::Refused { .. }
        | Error::Unreachable { .. }
        | Error::RegistrationFailed { .. }
        | Error::Closed
        | Error::CloseTimedOut { .. } => Failure::unreachable(error.to_string()),
        Error::Application(_)
        | Error::Cluster(_)
        | Error::Decode(_)
        | Error::TooManyPending { .. }
        | Error::Runtime { .. } => Failure::answered(error.to_string()),
    }
}

fn print_value(value: Option<&Bytes>) -> Result<(), Failure> {
    match value {
        Some(value) => print_line(&String::from_utf8_lossy(value)),
        None => Ok(()),
    }
}

/// Prints one line and flushes it (so that `watch-events` lines reach a pipe at once). A
/// reader that went away (a closed pipe: `| head -1`) ends the command quietly with exit 0,
/// as for other command-line tools; any other write error is exit 1.
fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure {
            code: 0,
            message: String::new(),
        }),
        Err(error) => Err(Failure::answered(format!(
            "cannot write to standard output: {error}"
        ))),
    }
}
