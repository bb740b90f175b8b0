//! `coracle admin`: ask every node how its groups are.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, Subcommand};
use coracle_engine::session::ClientId;
use coracle_net::admin::{member_type_name, AdminRequest, AdminResponse, GroupStatus};
use coracle_server::probe::Probe;

use crate::Failure;

/// Options of `coracle admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The nodes to ask: their shard-0 addresses, comma-separated
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',', required = true)]
    addresses: Vec<String>,
    /// The cluster's name
    #[arg(long, value_name = "NAME", default_value = "coracle")]
    cluster: String,
    /// How long to wait for each node, ms
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Each node's view of each group: role, term, leader, commit, applied and last index.
    /// Exits 3 if a node does not answer, 1 if a group has no leader
    Status {
        /// The groups to show (0 to N-1)
        #[arg(long, value_name = "N", default_value_t = 1)]
        groups: u32,
    },
    /// The members of a group's configuration, as its leader (or the first node that
    /// answers) sees them
    Members {
        /// The group
        #[arg(long, value_name = "G", default_value_t = 0)]
        group: u32,
    },
    /// Where the commands each node led spent their time: from a request's arrival to its
    /// entry durable on the leader, committed, applied and answered (p50, p90, p99, max,
    /// ms), over every shard of the nodes given
    Stats {
        /// Start the figures afresh after reading them
        #[arg(long)]
        reset: bool,
    },
    /// Add a node to the cluster: every node given learns its address, then it is added
    /// to each group (start it first with `coracle server --join`). Exits 0 once every
    /// group's change committed
    Join {
        /// The joining node's id
        #[arg(long, value_name = "ID")]
        node: u64,
        /// Its shard-0 address, host:port
        #[arg(long, value_name = "ADDR")]
        address: String,
        /// Its type in every group
        #[arg(long = "type", value_enum, default_value_t = TypeArg::Active)]
        member_type: TypeArg,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove a node from every group, then from the address book of the nodes given. Stop
    /// the node and delete its data directory afterwards
    Leave {
        /// The leaving node's id
        #[arg(long, value_name = "ID")]
        node: u64,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Raise a node's type in every group (reserve → passive → active)
    Promote {
        /// The node's id
        #[arg(long, value_name = "ID")]
        node: u64,
        /// Its new type
        #[arg(long = "type", value_enum, default_value_t = TypeArg::Active)]
        member_type: TypeArg,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Lower a node's type in every group (active → passive → reserve)
    Demote {
        /// The node's id
        #[arg(long, value_name = "ID")]
        node: u64,
        /// Its new type
        #[arg(long = "type", value_enum, default_value_t = TypeArg::Passive)]
        member_type: TypeArg,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// Options of every membership change.
#[derive(Debug, clap::Args)]
struct ChangeArgs {
    /// The groups to change (0 to N-1)
    #[arg(long, value_name = "N", default_value_t = 1)]
    groups: u32,
    /// How long to keep retrying a group whose change is refused for now (no leader yet, a
    /// change in flight), ms
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    deadline_ms: u64,
}

/// A member type on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TypeArg {
    /// A voter
    Active,
    /// A non-voter that receives committed entries
    Passive,
    /// A standby that tracks only term, leader and configuration
    Reserve,
}

impl TypeArg {
    fn code(self) -> u8 {
        match self {
            TypeArg::Reserve => 1,
            TypeArg::Passive => 2,
            TypeArg::Active => 3,
        }
    }
}

/// Runs the admin command.
pub fn run(args: AdminArgs) -> Result<(), Failure> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let addresses = resolve(&args.addresses)?;
    match args.command {
        AdminCommand::Status { groups } => status(&addresses, &args.cluster, groups, timeout),
        AdminCommand::Members { group } => members(&addresses, &args.cluster, group, timeout),
        AdminCommand::Stats { reset } => {
            let stages =
                coracle_server::probe::commit_stages(&addresses, &args.cluster, reset, timeout)
                    .map_err(Failure::unreachable)?;
            println!(
                "{:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
                "stage", "commands", "p50 ms", "p90 ms", "p99 ms", "max ms"
            );
            let ms = |micros: u64| format!("{:.3}", micros as f64 / 1000.0);
            for stage in stages {
                println!(
                    "{:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
                    stage.name,
                    stage.count,
                    ms(stage.p50_us),
                    ms(stage.p90_us),
                    ms(stage.p99_us),
                    ms(stage.max_us)
                );
            }
            Ok(())
        }
        AdminCommand::Join {
            node,
            address,
            member_type,
            change,
        } => {
            for &base in &addresses {
                tell_every_shard(
                    base,
                    &args.cluster,
                    &AdminRequest::AddPeer {
                        node,
                        address: address.clone(),
                    },
                    timeout,
                )?;
            }
            let request = AdminRequest::Join {
                node,
                member_type: member_type.code(),
            };
            change_every_group(&addresses, &args.cluster, &request, &change, timeout)
        }
        AdminCommand::Leave { node, change } => {
            change_every_group(
                &addresses,
                &args.cluster,
                &AdminRequest::Leave { node },
                &change,
                timeout,
            )?;
            for &base in &addresses {
                // The leaving node itself may be among the addresses: it keeps its book.
                if let Err(failure) = tell_every_shard(
                    base,
                    &args.cluster,
                    &AdminRequest::RemovePeer { node },
                    timeout,
                ) {
                    eprintln!("coracle: {base}: {}", failure.message);
                }
            }
            Ok(())
        }
        AdminCommand::Promote {
            node,
            member_type,
            change,
        }
        | AdminCommand::Demote {
            node,
            member_type,
            change,
        } => {
            let request = AdminRequest::Reconfigure {
                node,
                member_type: member_type.code(),
            };
            change_every_group(&addresses, &args.cluster, &request, &change, timeout)
        }
    }
}

/// A client id for admin connections (they open no session).
fn admin_client() -> ClientId {
    ClientId(u128::from(std::process::id()) << 64 | 0xad)
}

/// Sends an address-book order to every shard of the node at `base`.
fn tell_every_shard(
    base: SocketAddr,
    cluster: &str,
    request: &AdminRequest,
    timeout: Duration,
) -> Result<(), Failure> {
    let probes = Probe::connect_every_shard(base, cluster, admin_client(), timeout)
        .map_err(Failure::unreachable)?;
    for (shard, mut connection) in probes.into_iter().enumerate() {
        let shard = u32::try_from(shard).unwrap_or(u32::MAX);
        // The group in the frame picks nothing here: the order is for the whole shard.
        match connection
            .admin(shard, request)
            .map_err(Failure::unreachable)?
        {
            AdminResponse::Done => {}
            AdminResponse::Error { reason } | AdminResponse::Retry { reason } => {
                return Err(Failure::answered(format!("{base} shard {shard}: {reason}")))
            }
            other => {
                return Err(Failure::answered(format!(
                    "{base} shard {shard}: unexpected {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// Asks for `request` in every group, through whichever node answers, retrying refusals
/// that are only for now until the deadline.
fn change_every_group(
    addresses: &[SocketAddr],
    cluster: &str,
    request: &AdminRequest,
    change: &ChangeArgs,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + Duration::from_millis(change.deadline_ms);
    for group in 0..change.groups {
        let mut last = String::from("no node answered");
        let mut unreachable = true;
        'group: loop {
            for &base in addresses {
                match ask_change(base, cluster, group, request, timeout) {
                    Ok(AdminResponse::Changed { index, members, .. }) => {
                        let listed: Vec<String> = members
                            .iter()
                            .map(|&(id, member_type)| {
                                format!("{id}:{}", member_type_name(member_type))
                            })
                            .collect();
                        println!("group {group}: configuration {index}: {}", listed.join(" "));
                        break 'group;
                    }
                    Ok(AdminResponse::Error { reason }) => {
                        return Err(Failure::answered(format!("group {group}: {reason}")))
                    }
                    Ok(AdminResponse::Retry { reason }) => {
                        unreachable = false;
                        last = reason;
                    }
                    Ok(other) => last = format!("unexpected answer {other:?}"),
                    Err(reason) => last = reason,
                }
            }
            if std::time::Instant::now() >= deadline {
                let message = format!("group {group}: no change before the deadline: {last}");
                return Err(if unreachable {
                    Failure::unreachable(message)
                } else {
                    Failure::answered(message)
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn ask_change(
    base: SocketAddr,
    cluster: &str,
    group: u32,
    request: &AdminRequest,
    timeout: Duration,
) -> Result<AdminResponse, String> {
    Probe::connect_group(base, group, cluster, admin_client(), timeout)?.admin(group, request)
}

fn resolve(addresses: &[String]) -> Result<Vec<SocketAddr>, Failure> {
    addresses
        .iter()
        .map(|text| {
            text.to_socket_addrs()
                .map_err(|error| Failure::usage(format!("--addresses: {text:?}: {error}")))?
                .next()
                .ok_or_else(|| Failure::usage(format!("--addresses: {text:?} resolves to nothing")))
        })
        .collect()
}

/// Asks the node at `base` (its shard 0) about `group`.
fn ask(
    base: SocketAddr,
    cluster: &str,
    group: u32,
    timeout: Duration,
) -> Result<GroupStatus, String> {
    let mut probe = Probe::connect_group(base, group, cluster, admin_client(), timeout)?;
    match probe.admin(group, &AdminRequest::Status)? {
        AdminResponse::Status(status) => Ok(status),
        AdminResponse::Error { reason } | AdminResponse::Retry { reason } => Err(reason),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

fn status(
    addresses: &[SocketAddr],
    cluster: &str,
    groups: u32,
    timeout: Duration,
) -> Result<(), Failure> {
    println!(
        "{:>6} {:>6} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10}",
        "group", "node", "role", "term", "leader", "commit", "applied", "last"
    );
    let mut unreachable = Vec::new();
    let mut leaderless = Vec::new();
    for group in 0..groups {
        let mut leader_seen = false;
        for &address in addresses {
            match ask(address, cluster, group, timeout) {
                Ok(status) => {
                    leader_seen |= status.role == 5;
                    println!(
                        "{group:>6} {:>6} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10}",
                        status.node,
                        status.role_name(),
                        status.term,
                        status
                            .leader
                            .map_or("-".to_string(), |leader| leader.to_string()),
                        status.commit_index,
                        status.applied_index,
                        status.last_index
                    );
                }
                Err(reason) => {
                    println!("{group:>6} {address:>6}: {reason}");
                    unreachable.push(address);
                }
            }
        }
        if !leader_seen {
            leaderless.push(group);
        }
    }
    if !unreachable.is_empty() {
        return Err(Failure::unreachable(format!(
            "{} answer(s) missing",
            unreachable.len()
        )));
    }
    if !leaderless.is_empty() {
        return Err(Failure::answered(format!(
            "no leader for group(s) {leaderless:?}"
        )));
    }
    Ok(())
}

fn members(
    addresses: &[SocketAddr],
    cluster: &str,
    group: u32,
    timeout: Duration,
) -> Result<(), Failure> {
    let mut answers = Vec::new();
    let mut errors = Vec::new();
    for &address in addresses {
        match ask(address, cluster, group, timeout) {
            Ok(status) => answers.push(status),
            Err(reason) => errors.push(format!("{address}: {reason}")),
        }
    }
    let best = answers
        .iter()
        .find(|status| status.role == 5)
        .or_else(|| answers.first())
        .ok_or_else(|| Failure::unreachable(format!("no node answered: {}", errors.join("; "))))?;
    println!(
        "group {group} as node {} ({}) sees it:",
        best.node,
        best.role_name()
    );
    for &(id, member_type) in &best.members {
        let name = member_type_name(member_type);
        let leader = if best.leader == Some(id) {
            " (leader)"
        } else {
            ""
        };
        println!("  {id}: {name}{leader}");
    }
    Ok(())
}
