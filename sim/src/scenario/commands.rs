//! One handler per transcript command, over one [`ScenarioCluster`].

use std::fmt::Write as _;

use coracle_engine::{
    Configuration, Entry, HardState, LogIndex, Member, MemberStatus, MemberType, MembershipChange,
    ReplicaId, Term,
};

use crate::scenario::cluster::{ScenarioCluster, Settings};
use crate::scenario::datadriven::{Argument, Directive};
use crate::scenario::format;

/// The state a transcript runs against: no cluster until `add-nodes`.
#[derive(Debug, Default)]
pub struct Scenario {
    cluster: Option<ScenarioCluster>,
}

type Output = Result<String, String>;

impl Scenario {
    /// Runs one command and returns its output (`Err` for a script error).
    ///
    /// # Errors
    /// An unknown command, a missing or malformed argument, or a command before `add-nodes`.
    pub fn handle(&mut self, directive: &Directive) -> Output {
        if directive.command == "add-nodes" {
            return self.add_nodes(directive);
        }
        let cluster = self
            .cluster
            .as_mut()
            .ok_or("no cluster: start with add-nodes")?;
        let output = match directive.command.as_str() {
            "campaign" => campaign(cluster, directive),
            "tick" => tick(cluster, directive),
            "tick-heartbeat" => tick_heartbeat(cluster, directive),
            "tick-election" => tick_election(cluster, directive),
            "deliver-msgs" => deliver_msgs(cluster, directive),
            "drop-msgs" => drop_msgs(cluster, directive),
            "persist" => persist(cluster, directive),
            "persist-all" => persist_all(cluster),
            "stabilize" => stabilize(cluster),
            "partition" => partition(cluster, directive),
            "heal" => {
                cluster.heal();
                Ok(String::new())
            }
            "propose" => propose(cluster, directive),
            "crash" => crash(cluster, directive),
            "restart" => restart(cluster, directive),
            "membership" => membership(cluster, directive),
            "status" => status(cluster, directive),
            "log" => log(cluster, directive),
            other => Err(format!("unknown command {other:?}")),
        }?;
        Ok(output)
    }

    /// `add-nodes N [voters=(..)] [passive=(..)] [reserve=(..)] [election-timeout=MS]
    /// [heartbeat=MS] [append-bytes-max=N] [seed=N] [planted-bug=NAME]`: nodes 1..=N;
    /// voters default to all.
    fn add_nodes(&mut self, directive: &Directive) -> Output {
        if self.cluster.is_some() {
            return Err("add-nodes runs once per transcript".to_owned());
        }
        let count = number(single(directive.positional().next(), "the node count")?)?;
        if count == 0 {
            return Err("add-nodes needs at least one node".to_owned());
        }
        let all: Vec<ReplicaId> = (1..=count).map(ReplicaId).collect();
        let voters = match directive.keyed("voters") {
            Some(argument) => ids(argument)?,
            None => all.clone(),
        };
        let mut members: Vec<Member> = voters
            .iter()
            .map(|&id| Member::new(id, MemberType::Active))
            .collect();
        for (key, member_type) in [
            ("passive", MemberType::Passive),
            ("reserve", MemberType::Reserve),
        ] {
            if let Some(argument) = directive.keyed(key) {
                members.extend(
                    ids(argument)?
                        .into_iter()
                        .map(|id| Member::new(id, member_type)),
                );
            }
        }
        let mut listed: Vec<ReplicaId> = members.iter().map(|member| member.id).collect();
        listed.sort_unstable();
        if listed.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err("a node is listed twice".to_owned());
        }
        if listed.iter().any(|id| !all.contains(id)) {
            return Err(format!("members must be among 1..={count}"));
        }
        let bootstrap = Configuration::from_members(LogIndex::ZERO, Term::ZERO, 0, members);
        let mut settings = Settings::default();
        if let Some(argument) = directive.keyed("election-timeout") {
            settings.election_timeout_ms = number(argument)?;
        }
        if let Some(argument) = directive.keyed("heartbeat") {
            settings.heartbeat_interval_ms = number(argument)?;
        }
        if let Some(argument) = directive.keyed("append-bytes-max") {
            settings.append_size_bytes_max =
                usize::try_from(number(argument)?).map_err(|error| error.to_string())?;
        }
        if let Some(argument) = directive.keyed("seed") {
            settings.seed = number(argument)?;
        }
        if let Some(argument) = directive.keyed("planted-bug") {
            let [name] = argument.values.as_slice() else {
                return Err("planted-bug takes one name".to_owned());
            };
            settings.planted_bugs = crate::options::planted_bug(name)?;
        }
        let cluster = ScenarioCluster::new(count, &bootstrap, settings);
        let output = status_lines(&cluster, &cluster.ids());
        self.cluster = Some(cluster);
        Ok(output)
    }
}

// ----- Arguments -----

fn number(argument: &Argument) -> Result<u64, String> {
    let [value] = argument.values.as_slice() else {
        return Err(format!("expected one number, got {:?}", argument.values));
    };
    value
        .parse()
        .map_err(|_| format!("not a number: {value:?}"))
}

fn single<'a>(argument: Option<&'a Argument>, what: &str) -> Result<&'a Argument, String> {
    argument.ok_or_else(|| format!("missing {what}"))
}

fn ids(argument: &Argument) -> Result<Vec<ReplicaId>, String> {
    argument
        .values
        .iter()
        .map(|value| {
            value
                .parse()
                .map(ReplicaId)
                .map_err(|_| format!("not an id: {value:?}"))
        })
        .collect()
}

/// Node ids among the positional arguments, each checked to exist.
fn node_ids(cluster: &ScenarioCluster, directive: &Directive) -> Result<Vec<ReplicaId>, String> {
    let mut list = Vec::new();
    for argument in directive.positional() {
        list.extend(ids(argument)?);
    }
    if let Some(unknown) = list.iter().find(|&&id| !cluster.contains(id)) {
        return Err(format!("no node {unknown}"));
    }
    Ok(list)
}

/// Exactly one node id as the first positional argument.
fn one_node(cluster: &ScenarioCluster, directive: &Directive) -> Result<ReplicaId, String> {
    let id = ids(single(directive.positional().next(), "a node id")?)?;
    let [id] = id.as_slice() else {
        return Err("expected one node id".to_owned());
    };
    if !cluster.contains(*id) {
        return Err(format!("no node {id}"));
    }
    Ok(*id)
}

fn join_lines(lines: Vec<String>) -> String {
    lines.join("\n")
}

fn events(cluster: &mut ScenarioCluster) -> String {
    join_lines(cluster.take_events())
}

// ----- Time -----

/// `campaign ID`: ticks the node until its election timer fires.
fn campaign(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let id = one_node(cluster, directive)?;
    match cluster.tick_until_election(id) {
        Some(_) => Ok(events(cluster)),
        None => {
            let mut output = events(cluster);
            let role = match cluster.replica(id) {
                Some(replica) => format::role(replica.role()),
                None => "down",
            };
            let _ = write!(output, "\n{id}: election timer did not fire ({role})");
            Ok(output)
        }
    }
}

/// `tick ID MS`: moves the node's clock on by MS and ticks it once.
fn tick(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let id = one_node(cluster, directive)?;
    let duration_ms = number(single(directive.positional().nth(1), "a duration in ms")?)?;
    tick_each(cluster, &[id], duration_ms)
}

/// `tick-heartbeat ID...`: one heartbeat interval on each node.
fn tick_heartbeat(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let list = node_ids(cluster, directive)?;
    let duration_ms = cluster.settings().heartbeat_interval_ms;
    tick_each(cluster, &list, duration_ms)
}

/// `tick-election ID...`: twice the election timeout on each node, so its timer fires.
fn tick_election(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let list = node_ids(cluster, directive)?;
    let duration_ms = 2 * cluster.settings().election_timeout_ms;
    tick_each(cluster, &list, duration_ms)
}

fn tick_each(cluster: &mut ScenarioCluster, list: &[ReplicaId], duration_ms: u64) -> Output {
    if list.is_empty() {
        return Err("name the nodes to tick".to_owned());
    }
    let mut lines = Vec::new();
    for &id in list {
        if !cluster.tick(id, duration_ms) {
            lines.push(format!("{id}: down"));
        }
        lines.extend(cluster.take_events());
    }
    Ok(join_lines(lines))
}

// ----- Network and disk -----

/// `deliver-msgs [ID...]`: delivers what is queued now to those nodes (all if none).
fn deliver_msgs(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let list = node_ids(cluster, directive)?;
    let lines = cluster.deliver(&list);
    if lines.is_empty() {
        return Ok("no messages".to_owned());
    }
    Ok(join_lines(lines))
}

/// `drop-msgs [ID...]`: loses what is queued now to those nodes (all if none).
fn drop_msgs(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let list = node_ids(cluster, directive)?;
    let lines = cluster.drop_messages(&list);
    if lines.is_empty() {
        return Ok("no messages".to_owned());
    }
    Ok(join_lines(lines))
}

fn persist_one(cluster: &mut ScenarioCluster, id: ReplicaId, lines: &mut Vec<String>) {
    if cluster.replica(id).is_none() {
        lines.push(format!("{id}: down"));
        return;
    }
    if !cluster.persist(id) {
        lines.push(format!("{id}: nothing to persist"));
        return;
    }
    let replica = cluster.replica(id).expect("up");
    let durable = replica.persisted_index();
    let term = replica.log().term_at(durable).unwrap_or(Term::ZERO);
    lines.push(format!(
        "{id}: persisted {} last={durable}/{term}",
        hard_state(replica.hard_state())
    ));
    lines.extend(
        cluster
            .take_events()
            .into_iter()
            .map(|event| format!("  {event}")),
    );
}

/// `persist ID...`: makes each node's writes durable and tells it.
fn persist(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let list = node_ids(cluster, directive)?;
    if list.is_empty() {
        return Err("name the nodes to persist (or use persist-all)".to_owned());
    }
    let mut lines = Vec::new();
    for id in list {
        persist_one(cluster, id, &mut lines);
    }
    Ok(join_lines(lines))
}

/// `persist-all`: persists every node that has writes waiting.
fn persist_all(cluster: &mut ScenarioCluster) -> Output {
    let mut lines = Vec::new();
    for id in cluster.ids() {
        if cluster.has_unsynced(id) {
            persist_one(cluster, id, &mut lines);
        }
    }
    if lines.is_empty() {
        return Ok("nothing to persist".to_owned());
    }
    Ok(join_lines(lines))
}

/// `stabilize`: persists and delivers until nothing changes; prints the events.
fn stabilize(cluster: &mut ScenarioCluster) -> Output {
    cluster.stabilize();
    Ok(events(cluster))
}

/// `partition (1) (2,3)`: nodes in different groups cannot talk; unnamed nodes are alone.
fn partition(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let mut groups = Vec::new();
    for argument in directive.positional() {
        let group = ids(argument)?;
        if let Some(unknown) = group.iter().find(|&&id| !cluster.contains(id)) {
            return Err(format!("no node {unknown}"));
        }
        groups.push(group);
    }
    if groups.is_empty() {
        return Err("name the groups, as in partition (1) (2,3)".to_owned());
    }
    cluster.partition(&groups);
    Ok(String::new())
}

// ----- Crashes -----

/// `crash ID`: the node stops; unpersisted writes and messages queued to or from it are lost.
fn crash(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let id = one_node(cluster, directive)?;
    Ok(match cluster.crash(id) {
        Some((writes, messages)) => {
            format!("{id}: crashed; lost {writes} unpersisted writes, {messages} queued messages")
        }
        None => format!("{id}: already down"),
    })
}

/// `restart ID`: the node starts again from what its disk holds.
fn restart(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let id = one_node(cluster, directive)?;
    if !cluster.restart(id) {
        return Ok(format!("{id}: already up"));
    }
    let replica = cluster.replica(id).expect("just started");
    Ok(format!(
        "{id}: restarted as {} {} last={}/{}",
        format::role(replica.role()),
        hard_state(replica.hard_state()),
        replica.log().last_index(),
        replica.log().last_term()
    ))
}

// ----- Requests -----

/// `propose ID DATA`: submits a command at the node.
fn propose(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let id = one_node(cluster, directive)?;
    let data = single(directive.positional().nth(1), "the data")?;
    let [data] = data.values.as_slice() else {
        return Err("the data is one word".to_owned());
    };
    let mut output = match cluster.propose(id, data) {
        None => format!("{id}: down"),
        Some(Ok((index, term))) => format!("{id}: appended {index}/{term}"),
        Some(Err(error)) => format!("{id}: refused: {error}"),
    };
    for event in cluster.take_events() {
        let _ = write!(output, "\n{event}");
    }
    Ok(output)
}

fn member_type(name: &str) -> Result<MemberType, String> {
    match name {
        "active" | "voter" => Ok(MemberType::Active),
        "passive" => Ok(MemberType::Passive),
        "reserve" => Ok(MemberType::Reserve),
        other => Err(format!("unknown member type {other:?}")),
    }
}

/// `membership ID join|leave|promote|demote TARGET [TYPE]`: asks node ID (which forwards to
/// its leader) to change TARGET's membership. `join` defaults to active, `promote` to
/// active, `demote` to passive. The reconfigure names the configuration ID has in force.
fn membership(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let id = one_node(cluster, directive)?;
    let mut positional = directive.positional().skip(1);
    let action = single(positional.next(), "join, leave, promote or demote")?;
    let target = ids(single(positional.next(), "the target id")?)?;
    let [target] = target.as_slice() else {
        return Err("expected one target id".to_owned());
    };
    let target = *target;
    let kind = positional
        .next()
        .map(|argument| argument.values.first().map_or("", String::as_str))
        .map(member_type)
        .transpose()?;
    let Some(replica) = cluster.replica(id) else {
        return Ok(format!("{id}: down"));
    };
    let current = replica.configuration();
    let reconfigure = |member_type: MemberType| MembershipChange::Reconfigure {
        id: target,
        member_type,
        status: current
            .member(target)
            .map_or(MemberStatus::Available, |member| member.status),
        configuration_index: current.index,
        configuration_term: current.term,
    };
    let change = match action.values.first().map(String::as_str) {
        Some("join") => MembershipChange::Join {
            id: target,
            member_type: kind.unwrap_or(MemberType::Active),
        },
        Some("leave") => MembershipChange::Leave { id: target },
        Some("promote") => reconfigure(kind.unwrap_or(MemberType::Active)),
        Some("demote") => reconfigure(kind.unwrap_or(MemberType::Passive)),
        other => return Err(format!("unknown membership action {other:?}")),
    };
    let leader = replica.leader();
    let mut lines = Vec::new();
    match cluster.request_membership(id, change) {
        None => lines.push(format!("{id}: down")),
        Some((request_id, Ok(()))) => {
            if leader != Some(id) {
                let leader = leader.map_or_else(|| "?".to_owned(), |leader| leader.to_string());
                lines.push(format!("{id}: request {request_id} forwarded to {leader}"));
            }
        }
        Some((request_id, Err(error))) => {
            lines.push(format!(
                "{id}: membership request {request_id} refused: {error}"
            ));
        }
    }
    lines.extend(cluster.take_events());
    Ok(join_lines(lines))
}

// ----- Looking in -----

fn hard_state(hard_state: HardState) -> String {
    let vote = hard_state
        .vote
        .map_or_else(|| "none".to_owned(), |vote| vote.to_string());
    format!("term={} vote={vote}", hard_state.term)
}

fn last_position(entries: &[Entry]) -> String {
    entries
        .last()
        .map_or_else(|| "0/0".to_owned(), format::position)
}

fn status_lines(cluster: &ScenarioCluster, list: &[ReplicaId]) -> String {
    let mut lines = Vec::new();
    for &id in list {
        let Some(replica) = cluster.replica(id) else {
            let restored = cluster.disk_restored(id);
            lines.push(format!(
                "{id}: down; disk {} last={}",
                hard_state(restored.hard_state),
                last_position(&restored.entries)
            ));
            continue;
        };
        let leader = replica
            .leader()
            .map_or_else(|| "none".to_owned(), |leader| leader.to_string());
        lines.push(format!(
            "{id}: {} {} leader={leader} last={}/{} commit={} {}",
            format::role(replica.role()),
            hard_state(replica.hard_state()),
            replica.log().last_index(),
            replica.log().last_term(),
            replica.commit_index(),
            format::configuration(replica.configuration())
        ));
    }
    join_lines(lines)
}

/// `status [ID...]`: role, term, vote, leader, last entry, commit and configuration.
fn status(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let mut list = node_ids(cluster, directive)?;
    if list.is_empty() {
        list = cluster.ids();
    }
    Ok(status_lines(cluster, &list))
}

/// `log ID...`: each entry as `index/term kind`, flagged if uncommitted or unpersisted.
fn log(cluster: &mut ScenarioCluster, directive: &Directive) -> Output {
    let list = node_ids(cluster, directive)?;
    if list.is_empty() {
        return Err("name the nodes whose log to show".to_owned());
    }
    let mut lines = Vec::new();
    for id in list {
        let Some(replica) = cluster.replica(id) else {
            lines.push(format!("{id}: down; durable log:"));
            let entries = cluster.disk_entries(id);
            lines.extend(
                entries
                    .iter()
                    .map(|entry| format!("  {}", format::entry(entry))),
            );
            if entries.is_empty() {
                lines.push("  empty".to_owned());
            }
            continue;
        };
        lines.push(format!("{id}:"));
        let entries = replica.log().entries();
        for entry in entries {
            let mut line = format!("  {}", format::entry(entry));
            if entry.index > replica.commit_index() {
                line.push_str(" (uncommitted)");
            }
            if entry.index > replica.persisted_index() {
                line.push_str(" (unpersisted)");
            }
            lines.push(line);
        }
        if entries.is_empty() {
            lines.push("  empty".to_owned());
        }
    }
    Ok(join_lines(lines))
}
