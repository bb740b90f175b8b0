//! Real processes: the `coracle` binary runs as three child processes on loopback, each
//! with its own data directory, and the tests kill them with SIGKILL.
//!
//! - A killed leader: every write acknowledged before, during and after the kill is still
//!   there under the new leader, and the killed node, restarted on the same data
//!   directory, catches up.
//! - A client whose server is killed under a window of pipelined writes fails over and
//!   resends without applying anything twice: a second session watching the key sees each
//!   acknowledged write exactly once, in order. The writer talks to the leader in one test
//!   and to a follower in the other; its server is killed (and restarted) three times.
//!   With the engine's planted `skip_dedupe` bug switched on in the servers (by a
//!   throw-away patch of `ReplicaConfig::new`: the binary has no flag for it), these two
//!   tests failed 9 times in 10 (5 runs of each).
//! - `coracle client` end to end: output and exit codes of every subcommand.
//!
//! The clusters run one at a time (a lock): three nodes and a client already fill the two
//! cores here, and elections with 500 ms timeouts go wrong when starved. A guard kills
//! every child process when a test ends, however it ends, and prints the nodes' logs when
//! it ends in a panic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_client::{
    BlockingClient, ClientOptions, CommandConsistency, Pending, QueryConsistency, Response,
    ServerSelection,
};
use coracle_engine::kv::{Get, KvEvent, Len, Put, Watch, KV_EVENT_NAME};
use coracle_engine::session::ClientId;
use coracle_engine::state_machine::{decode_value, encode_command};
use coracle_net::admin::{AdminRequest, AdminResponse, GroupStatus};
use coracle_server::local_cluster::free_addresses;
use coracle_server::probe::{wait_for_leaders, Probe};

const BINARY: &str = env!("CARGO_BIN_EXE_coracle");
/// `GroupStatus::role` of a leader.
const ROLE_LEADER: u8 = 5;
/// Every wait in these tests gives up after this; a healthy cluster needs a second or two.
const WAIT: Duration = Duration::from_secs(20);

/// One cluster at a time (see the module documentation). A test that panicked poisons
/// the lock; the next one may still run, as its guard cleaned up.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Three `coracle server` processes; killed (and their data removed) on drop.
struct ProcessCluster {
    name: String,
    root: PathBuf,
    members: BTreeMap<u64, SocketAddr>,
    children: BTreeMap<u64, Child>,
    shards: u32,
    groups: u32,
}

impl ProcessCluster {
    fn start(name: &str) -> ProcessCluster {
        ProcessCluster::start_sharded(name, 1, 1)
    }

    /// Three nodes with `shards` shards and `groups` groups each.
    fn start_sharded(name: &str, shards: u32, groups: u32) -> ProcessCluster {
        let root = std::env::temp_dir().join(format!("coracle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("a temporary directory");
        let members = (1..=3)
            .zip(free_addresses(3, shards).expect("free ports"))
            .collect();
        let mut cluster = ProcessCluster {
            name: name.to_string(),
            root,
            members,
            children: BTreeMap::new(),
            shards,
            groups,
        };
        for node in 1..=3 {
            cluster.spawn(node);
        }
        cluster
    }

    /// Starts node `node` with the same arguments and data directory every time.
    fn spawn(&mut self, node: u64) {
        assert!(!self.children.contains_key(&node), "node {node} runs");
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(id, address)| format!("{id}={address}"))
            .collect();
        // Appending, so that a restarted node's log follows the killed one's.
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(node))
            .expect("a log file");
        let child = Command::new(BINARY)
            .args(["server", "--node", &node.to_string()])
            .args(["--members", &members.join(",")])
            .args(["--cluster", &self.name])
            .args(["--shards", &self.shards.to_string()])
            .args(["--groups", &self.groups.to_string()])
            .arg("--no-pin-cores")
            .arg("--data-dir")
            .arg(self.root.join(format!("node-{node}")))
            .args([
                "--election-timeout-ms",
                "500",
                "--heartbeat-interval-ms",
                "100",
            ])
            .args([
                "--segment-size-bytes",
                "1048576",
                "--io-memory-bytes",
                "262144",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("coracle server starts");
        self.children.insert(node, child);
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    fn kill(&mut self, node: u64) {
        let mut child = self.children.remove(&node).expect("node runs");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    fn log_path(&self, node: u64) -> PathBuf {
        self.root.join(format!("node-{node}.log"))
    }

    fn addresses(&self) -> Vec<String> {
        self.members.values().map(ToString::to_string).collect()
    }

    fn client_options(&self, addresses: Vec<String>) -> ClientOptions {
        let mut options = ClientOptions::new(self.name.clone(), addresses);
        // Shorter than the default 5 s, so that a request lost with its server is sent
        // elsewhere soon (a resend is what the exactly-once test wants to see, too).
        options.request_timeout_ms = 1000;
        options.backoff_unit_ms = 50;
        options.log = Some(Arc::new(|line: &str| eprintln!("client: {line}")));
        options
    }

    fn client(&self) -> BlockingClient {
        BlockingClient::connect(self.client_options(self.addresses())).expect("a session")
    }

    /// Node `node`'s view of group 0.
    fn status(&self, node: u64) -> Result<GroupStatus, String> {
        let client = ClientId(0xad_0000 + u128::from(node));
        let mut probe = Probe::connect(
            self.members[&node],
            &self.name,
            client,
            Duration::from_secs(2),
        )?;
        match probe.admin(0, &AdminRequest::Status)? {
            AdminResponse::Status(status) => Ok(status),
            AdminResponse::Error { reason } => Err(reason),
            #[allow(unreachable_patterns)] // Kinds of answer added later are not a status.
            other => Err(format!("not a status: {other:?}")),
        }
    }

    /// The leader of group 0 among the running nodes: one that says it leads, in a term
    /// no running node has passed.
    fn wait_leader(&self) -> GroupStatus {
        wait_for("a leader", || {
            let statuses: Vec<GroupStatus> = self
                .children
                .keys()
                .filter_map(|&node| self.status(node).ok())
                .collect();
            let term = statuses.iter().map(|status| status.term).max()?;
            statuses
                .into_iter()
                .find(|status| status.role == ROLE_LEADER && status.term == term)
        })
    }

    /// `client --addresses ... --cluster NAME ARGS`.
    fn client_arguments(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "client".to_string(),
            "--addresses".into(),
            self.addresses().join(","),
            "--cluster".into(),
            self.name.clone(),
        ];
        all.extend(args.iter().map(ToString::to_string));
        all
    }

    /// Runs `coracle client --addresses ... --cluster NAME ARGS`.
    fn command_line(&self, args: &[&str]) -> Ran {
        run(&self.client_arguments(args))
    }

    /// Starts `coracle client --addresses ... --cluster NAME ARGS` with piped output.
    fn spawn_command_line(&self, args: &[&str]) -> (ChildGuard, Vec<String>) {
        let all = self.client_arguments(args);
        let child = Command::new(BINARY)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("coracle starts");
        (ChildGuard(child), all)
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for node in self.members.keys() {
                let log = std::fs::read_to_string(self.log_path(*node)).unwrap_or_default();
                eprintln!("---- node {node} log ----\n{log}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Polls `probe` until it gives a value; panics after [`WAIT`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn put(key: &str, value: &str) -> Put {
    Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

fn get(client: &BlockingClient, key: &str, consistency: QueryConsistency) -> Option<Bytes> {
    let get = Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
    };
    client
        .read(&get, consistency)
        .unwrap_or_else(|error| panic!("get {key}: {error}"))
}

fn answer(pending: Pending<Response>, what: &str) -> Result<Response, coracle_client::Error> {
    pending
        .wait_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
}

#[test]
fn sixty_four_groups_over_two_shards_on_three_processes_elect_and_take_writes() {
    let _serial = serial();
    let cluster = ProcessCluster::start_sharded("sixty-four", 2, 64);
    let addresses: Vec<SocketAddr> = cluster.members.values().copied().collect();
    wait_for_leaders(&addresses, &cluster.name, 64, WAIT).expect("a leader in every group");
    for group in 0..64u32 {
        let mut options = cluster.client_options(cluster.addresses());
        options.group = group;
        let client = BlockingClient::connect(options).expect("a session");
        let value = format!("group {group}");
        client.execute(&put("k", &value)).expect("written");
        let read = get(&client, "k", QueryConsistency::Linearizable);
        assert_eq!(read.as_deref(), Some(value.as_bytes()), "group {group}");
        client.close().expect("closed");
    }
    // Each group is its own state machine: group 0's key says group 0.
    let mut options = cluster.client_options(cluster.addresses());
    options.group = 0;
    let client = BlockingClient::connect(options).expect("a session");
    assert_eq!(
        get(&client, "k", QueryConsistency::Linearizable).as_deref(),
        Some(&b"group 0"[..])
    );
}

#[test]
fn a_killed_leader_loses_no_acknowledged_write_and_catches_up_after_restart() {
    let _serial = serial();
    let mut cluster = ProcessCluster::start("leader-kill");
    let old = cluster.wait_leader();
    let client = cluster.client();
    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
    let mut record = |i: usize, result: Result<Response, coracle_client::Error>| {
        let response = result.unwrap_or_else(|error| panic!("write {i} failed: {error}"));
        let previous: Option<Bytes> = decode_value(&response.output).expect("decodes");
        assert_eq!(previous, None, "write {i}: every key is written once");
        acknowledged.insert(format!("key-{i}"), format!("value-{i}"));
    };
    for i in 0..100 {
        let write = encode_command(&put(&format!("key-{i}"), &format!("value-{i}")));
        record(i, client.command(write));
    }
    // Fifty writes in flight while the leader dies: the session fails over and resends
    // them, so each must be acknowledged (and then survive) rather than fail.
    let in_flight: Vec<_> = (100..150)
        .map(|i| {
            let write = encode_command(&put(&format!("key-{i}"), &format!("value-{i}")));
            (
                i,
                client.send_command(write, CommandConsistency::Linearizable),
            )
        })
        .collect();
    cluster.kill(old.node);
    for (i, pending) in in_flight {
        record(i, answer(pending, "a write in flight at the kill"));
    }
    let new = cluster.wait_leader();
    assert_ne!(new.node, old.node);
    assert!(new.term > old.term, "{new:?} after {old:?}");
    for i in 150..200 {
        let write = encode_command(&put(&format!("key-{i}"), &format!("value-{i}")));
        record(i, client.command(write));
    }
    assert_eq!(acknowledged.len(), 200);
    for (key, value) in &acknowledged {
        let found = get(&client, key, QueryConsistency::Linearizable);
        assert_eq!(found.as_deref(), Some(value.as_bytes()), "{key} lost");
    }
    let keys = client.read(&Len, QueryConsistency::Linearizable);
    assert_eq!(keys, Ok(200));

    cluster.spawn(old.node);
    let commit = cluster
        .status(new.node)
        .expect("the leader answers")
        .commit_index;
    let caught_up = wait_for("catch-up of the restarted node", || {
        let status = cluster.status(old.node).ok()?;
        (status.applied_index >= commit).then_some(status)
    });
    assert!(caught_up.last_index >= commit, "{caught_up:?}");
    // Served by the restarted node itself: a client that knows only its address, reading
    // at the causal level (never forwarded for being behind).
    let local = BlockingClient::connect(
        cluster.client_options(vec![cluster.members[&old.node].to_string()]),
    )
    .expect("a session through the restarted node");
    assert_eq!(
        local.status().expect("status").server.map(|id| id.0),
        Some(old.node)
    );
    for (key, value) in &acknowledged {
        let found = get(&local, key, QueryConsistency::Causal);
        assert_eq!(
            found.as_deref(),
            Some(value.as_bytes()),
            "{key} on the restarted node"
        );
    }
    local.close().expect("closed");
    client.close().expect("closed");
}

/// Writes `Put { k, v<i> }` for i in 1..=`count`, `window` in flight at a time. When
/// write `i` of `kills` is submitted, kills the node the writer talks to and starts it
/// again on its data (each kill is a chance to catch a double apply: what was in flight
/// then is resent). Returns the writes acknowledged and the nodes killed.
fn write_through_kills(
    cluster: &mut ProcessCluster,
    writer: &BlockingClient,
    count: u64,
    window: usize,
    kills: &[u64],
) -> (BTreeSet<u64>, Vec<u64>) {
    let mut acknowledged = BTreeSet::new();
    let mut killed = Vec::new();
    let mut in_flight: VecDeque<(u64, Pending<Response>)> = VecDeque::new();
    let mut settle = |i: u64, pending: Pending<Response>| {
        match answer(pending, "a write") {
            Ok(_) => {
                acknowledged.insert(i);
            }
            // Its fate is unknown: it may or may not have applied, once at most.
            Err(error) => eprintln!("write v{i} failed: {error}"),
        }
    };
    for i in 1..=count {
        if in_flight.len() == window {
            let (oldest, pending) = in_flight.pop_front().expect("a full window");
            settle(oldest, pending);
        }
        let write = encode_command(&put("k", &format!("v{i}")));
        in_flight.push_back((
            i,
            writer.send_command(write, CommandConsistency::Linearizable),
        ));
        if kills.contains(&i) {
            // The node restarted at the last kill must be up again: a second node down
            // would leave no majority.
            for node in 1..=3 {
                wait_for("a restarted node", || cluster.status(node).ok());
            }
            let server = writer.status().expect("status").server.expect("a server");
            cluster.kill(server.0);
            cluster.spawn(server.0);
            killed.push(server.0);
        }
    }
    for (i, pending) in in_flight {
        settle(i, pending);
    }
    (acknowledged, killed)
}

/// What a watcher saw of the writes `v1..=v<submitted>` to key `k`: each event's log index
/// and write number, in arrival order. Each write appears at most once, the acknowledged
/// ones exactly once, in the order they were submitted (one session's commands apply in
/// sequence order), at increasing log indexes.
fn check_watch_events(
    seen: &[(u64, u64)],
    acknowledged: &BTreeSet<u64>,
    submitted: u64,
) -> Result<(), String> {
    for pair in seen.windows(2) {
        let ((index_a, write_a), (index_b, write_b)) = (pair[0], pair[1]);
        if write_b <= write_a {
            return Err(format!(
                "v{write_b} (index {index_b}) after v{write_a} (index {index_a})"
            ));
        }
        if index_b <= index_a {
            return Err(format!(
                "index {index_b} (v{write_b}) after index {index_a} (v{write_a})"
            ));
        }
    }
    if let Some((index, write)) = seen
        .iter()
        .find(|(_, write)| *write == 0 || *write > submitted)
    {
        return Err(format!("v{write} at index {index} was never written"));
    }
    let writes: BTreeSet<u64> = seen.iter().map(|(_, write)| *write).collect();
    let missing: Vec<u64> = acknowledged.difference(&writes).copied().collect();
    if !missing.is_empty() {
        return Err(format!("acknowledged writes without an event: {missing:?}"));
    }
    Ok(())
}

#[test]
fn a_client_whose_leader_is_killed_fails_over_without_applying_a_write_twice() {
    fail_over_under_writes("failover-leader", ServerSelection::Leader);
}

#[test]
fn a_client_whose_follower_is_killed_fails_over_without_applying_a_write_twice() {
    fail_over_under_writes("failover-follower", ServerSelection::Followers);
}

/// The writer talks to the leader (`Leader`: its commands in flight may be appended and
/// not yet committed when it dies) or to a follower (`Followers`: the follower forwards,
/// the leader applies, the answers die with the follower); either way the session resends
/// under the same sequence numbers and the servers must not apply anything twice.
fn fail_over_under_writes(name: &str, selection: ServerSelection) {
    const WRITES: u64 = 500;
    let _serial = serial();
    let mut cluster = ProcessCluster::start(name);
    let leader = cluster.wait_leader();
    let watcher = cluster.client();
    let watching = watcher.execute(&Watch {
        prefix: Bytes::from_static(b"k"),
    });
    assert_eq!(watching, Ok(true));
    let mut options = cluster.client_options(cluster.addresses());
    options.selection = selection;
    let writer = BlockingClient::connect(options).expect("a session");
    // Settle on a server first (`Leader` moves to the leader once it learns who leads).
    writer
        .execute(&put("settle", "x"))
        .expect("the first write");
    let server = writer.status().expect("status").server.expect("a server").0;
    match selection {
        ServerSelection::Leader => assert_eq!(server, leader.node),
        _ => assert_ne!(server, leader.node),
    }
    let (acknowledged, killed) =
        write_through_kills(&mut cluster, &writer, WRITES, 16, &[100, 250, 400]);
    assert_eq!(killed[0], server);
    let stats = writer.status().expect("status");
    eprintln!(
        "nodes {killed:?} killed; {} of {WRITES} writes acknowledged; writer now on {:?}: {:?}",
        acknowledged.len(),
        stats.server,
        stats.stats
    );
    assert!(
        acknowledged.len() as u64 > WRITES / 2,
        "only {} of {WRITES} writes acknowledged after nodes {killed:?} died",
        acknowledged.len()
    );

    let mut seen: Vec<(u64, u64)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    // Until every acknowledged write has its event, then a little longer for late
    // duplicates.
    let mut quiet_until = None;
    loop {
        let now = Instant::now();
        if quiet_until.is_some_and(|until| now >= until) || now >= deadline {
            break;
        }
        let Some(event) = watcher.next_event(Duration::from_millis(100)) else {
            continue;
        };
        assert_eq!(event.name, KV_EVENT_NAME);
        let change = KvEvent::decode(&event.payload).expect("a kv event");
        assert_eq!(change.key.as_ref(), b"k");
        let value = change.value.expect("only puts");
        let write: u64 = std::str::from_utf8(&value)
            .ok()
            .and_then(|text| text.strip_prefix('v'))
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("value {value:?}"));
        seen.push((change.index.0, write));
        if quiet_until.is_none() && acknowledged.iter().all(|i| seen.iter().any(|s| s.1 == *i)) {
            quiet_until = Some(Instant::now() + Duration::from_millis(1000));
        }
    }
    if let Err(violation) = check_watch_events(&seen, &acknowledged, WRITES) {
        panic!(
            "after nodes {killed:?} were killed: {violation}\nacknowledged {} writes, saw {} events",
            acknowledged.len(),
            seen.len()
        );
    }
    // The last write the watcher saw is the value the key holds.
    let last = seen.last().expect("events").1;
    let value = get(&writer, "k", QueryConsistency::Linearizable);
    assert_eq!(value.as_deref(), Some(format!("v{last}").as_bytes()));
    writer.close().expect("closed");
    watcher.close().expect("closed");
}

#[test]
fn the_watch_check_catches_a_duplicate_a_loss_and_a_reordering() {
    let acknowledged: BTreeSet<u64> = [1, 2, 3].into();
    assert_eq!(
        check_watch_events(&[(5, 1), (6, 2), (7, 3)], &acknowledged, 4),
        Ok(())
    );
    // v4 was not acknowledged: it may be missing, or present once.
    assert_eq!(
        check_watch_events(&[(5, 1), (6, 2), (7, 3), (8, 4)], &acknowledged, 4),
        Ok(())
    );
    let duplicate = [(5, 1), (6, 2), (7, 2), (8, 3)];
    assert!(check_watch_events(&duplicate, &acknowledged, 4).is_err());
    let lost = [(5, 1), (7, 3)];
    assert!(check_watch_events(&lost, &acknowledged, 4).is_err());
    let reordered = [(5, 1), (6, 3), (7, 2)];
    assert!(check_watch_events(&reordered, &acknowledged, 4).is_err());
    let unknown = [(5, 1), (6, 2), (7, 3), (8, 9)];
    assert!(check_watch_events(&unknown, &acknowledged, 4).is_err());
    let index_backwards = [(5, 1), (4, 2), (7, 3)];
    assert!(check_watch_events(&index_backwards, &acknowledged, 4).is_err());
}

/// A finished `coracle` process.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stdout {:?} stderr {:?}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Kills the process on drop: a test that panics while one runs leaves nothing behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `coracle ARGS`, killing it after [`WAIT`].
fn run(args: &[String]) -> Ran {
    let child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coracle starts");
    finish(ChildGuard(child), args)
}

/// Waits for a process started with piped output (its output is small enough for the
/// pipes to hold it).
fn finish(mut guard: ChildGuard, args: &[String]) -> Ran {
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "coracle {args:?} still runs after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(out) = guard.0.stdout.as_mut() {
        out.read_to_string(&mut stdout).expect("stdout");
    }
    if let Some(err) = guard.0.stderr.as_mut() {
        err.read_to_string(&mut stderr).expect("stderr");
    }
    Ran {
        status,
        stdout,
        stderr,
    }
}

/// Asserts the exit code and the whole standard output.
#[track_caller]
fn expect(ran: &Ran, code: i32, stdout: &str) {
    assert_eq!(ran.code(), Some(code), "{ran:?}");
    assert_eq!(ran.stdout, stdout, "{ran:?}");
}

#[test]
fn the_command_line_client_reads_and_writes_with_its_exit_codes() {
    let _serial = serial();
    let cluster = ProcessCluster::start("command-line");
    cluster.wait_leader();
    let c = |args: &[&str]| cluster.command_line(args);

    expect(&c(&["get", "a"]), 4, "");
    expect(&c(&["put", "a", "1"]), 0, "");
    expect(&c(&["put", "a", "2"]), 0, "1\n");
    expect(&c(&["get", "a"]), 0, "2\n");
    for level in ["linearizable", "lease", "sequential", "causal"] {
        expect(&c(&["get", "a", "--consistency", level]), 0, "2\n");
    }
    expect(
        &c(&["cas", "a", "--expected", "1", "--new", "3"]),
        4,
        "false\n",
    );
    expect(&c(&["get", "a"]), 0, "2\n");
    expect(
        &c(&["cas", "a", "--expected", "2", "--new", "3"]),
        0,
        "true\n",
    );
    expect(
        &c(&["cas", "b", "--expect-absent", "--new", "x y"]),
        0,
        "true\n",
    );
    expect(
        &c(&["cas", "b", "--expect-absent", "--new", "z"]),
        4,
        "false\n",
    );
    expect(&c(&["len"]), 0, "2\n");
    expect(
        &c(&["cas", "a", "--expected", "3", "--delete"]),
        0,
        "true\n",
    );
    expect(&c(&["get", "a"]), 4, "");
    expect(&c(&["delete", "b"]), 0, "x y\n");
    expect(&c(&["delete", "b"]), 0, "");
    expect(&c(&["put", "--", "-dash", "-5"]), 0, "");
    expect(&c(&["get", "--", "-dash"]), 0, "-5\n");
    expect(&c(&["put", "ключ", "значение ✓"]), 0, "");
    expect(&c(&["get", "ключ"]), 0, "значение ✓\n");
    expect(&c(&["len"]), 0, "2\n");

    // A watcher prints the changes applied after its watch: puts and deletes alternate.
    let (watcher, watch_args) = cluster.spawn_command_line(&["watch-events", "w/", "--count", "4"]);
    let mut watcher = watcher;
    let writer = cluster.client();
    let started = Instant::now();
    let mut step = 0;
    // It watches from some moment on: write until it has printed its four lines.
    while watcher.0.try_wait().expect("try_wait").is_none() {
        assert!(started.elapsed() < WAIT, "the watcher printed too little");
        let key = format!("w/{}", step / 2);
        let done = if step % 2 == 0 {
            writer.execute(&put(&key, &format!("v{step}"))).map(|_| ())
        } else {
            let delete = coracle_engine::kv::Delete {
                key: Bytes::from(key),
            };
            writer.execute(&delete).map(|_| ())
        };
        done.expect("a write");
        assert_eq!(c(&["put", "other", "not watched"]).code(), Some(0));
        step += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.close().expect("closed");
    let watched = finish(watcher, &watch_args);
    assert_eq!(watched.code(), Some(0), "{watched:?}");
    let lines: Vec<Vec<&str>> = watched
        .stdout
        .lines()
        .map(|line| line.split(' ').collect())
        .collect();
    assert_eq!(lines.len(), 4, "{watched:?}");
    let mut last_index = 0;
    for line in &lines {
        assert_eq!(line.len(), 3, "{watched:?}");
        let index: u64 = line[0].parse().expect("an index");
        assert!(index > last_index, "{watched:?}");
        last_index = index;
        assert!(line[1].starts_with("w/"), "{watched:?}");
        assert!(
            line[2].starts_with('v') || line[2] == "<deleted>",
            "{watched:?}"
        );
    }
    assert!(
        lines.iter().any(|line| line[2] == "<deleted>"),
        "{watched:?}"
    );

    // Another cluster's name: refused with the node's reason.
    let mut refused = vec!["client".to_string(), "--addresses".into()];
    refused.push(cluster.addresses().join(","));
    refused.extend(["--cluster", "not-this-one", "get", "a"].map(String::from));
    let ran = run(&refused);
    expect(&ran, 3, "");
    assert!(ran.stderr.contains("not this cluster"), "{ran:?}");
    // No node listening.
    let nobody = free_addresses(1, 1).expect("a free port")[0].to_string();
    let ran = run(&[
        "client",
        "--addresses",
        &nobody,
        "--timeout-ms",
        "2000",
        "len",
    ]
    .map(String::from));
    expect(&ran, 3, "");
    // Wrong command lines.
    expect(&c(&["get", "a", "--consistency", "eventual"]), 2, "");
    expect(
        &c(&[
            "cas",
            "a",
            "--expected",
            "1",
            "--expect-absent",
            "--new",
            "2",
        ]),
        2,
        "",
    );
    expect(&c(&["cas", "a", "--new", "2"]), 2, "");
    expect(&c(&["watch-events", "--count", "0"]), 2, "");
    let long_key = "k".repeat(coracle_engine::kv::KEY_SIZE_MAX + 1);
    let ran = c(&["get", &long_key]);
    expect(&ran, 2, "");
    assert!(
        ran.stderr.contains("longer than the limit"),
        "{}",
        ran.stderr
    );
    expect(&run(&["client", "len"].map(String::from)), 2, "");
    let ran = run(&["client", "--addresses", "no-port", "len"].map(String::from));
    expect(&ran, 2, "");
    assert!(ran.stderr.contains("--addresses"), "{ran:?}");
    // Every subcommand explains itself.
    for subcommand in ["get", "put", "delete", "cas", "watch-events", "len"] {
        let ran = c(&[subcommand, "--help"]);
        assert_eq!(ran.code(), Some(0), "{ran:?}");
        assert!(ran.stdout.contains("Exit codes"), "{subcommand}: {ran:?}");
        assert!(
            ran.stdout.to_lowercase().contains("prints"),
            "{subcommand}: {ran:?}"
        );
    }
    let ran = c(&["cas", "--help"]);
    for option in ["--expected", "--expect-absent", "--new", "--delete"] {
        assert!(ran.stdout.contains(option), "{ran:?}");
    }

    // A cluster without a majority does not answer: exit 3 once the deadline passes, and
    // a watcher gives up once its session has been out of touch that long.
    let (mut watcher, watch_args) =
        cluster.spawn_command_line(&["--timeout-ms", "2000", "watch-events", "z"]);
    let lines = lines_of(&mut watcher);
    let writer = cluster.client();
    wait_for("the watcher's first line", || {
        writer.execute(&put("z", "1")).expect("a write");
        lines.recv_timeout(Duration::from_millis(100)).ok()
    });
    drop(writer);
    let mut cluster = cluster;
    cluster.kill(2);
    cluster.kill(3);
    let started = Instant::now();
    let ran = cluster.command_line(&["--timeout-ms", "2000", "put", "a", "1"]);
    expect(&ran, 3, "");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let watched = finish(watcher, &watch_args);
    assert_eq!(watched.code(), Some(3), "{watched:?}");
    assert!(watched.stderr.contains("session ended"), "{watched:?}");
}

/// The lines the process prints, as they come (read on a thread of their own).
fn lines_of(guard: &mut ChildGuard) -> mpsc::Receiver<String> {
    let stdout = guard.0.stdout.take().expect("piped");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}
