//! Short, stable text forms of configurations, entries and messages for transcripts.
//!
//! Every form fits on one line and names positions as `index/term`, so that a transcript
//! reads like a trace and changes only when behaviour changes.

use std::fmt::Write as _;

use coracle_engine::{
    Configuration, ConfigurationError, Entry, EntryBody, Member, MemberStatus, MemberType,
    MembershipChange, Message, ReplicaId, Role,
};

/// `(1,2,3)`.
#[must_use]
pub fn id_list(ids: impl IntoIterator<Item = ReplicaId>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.0.to_string()).collect();
    format!("({})", ids.join(","))
}

/// `voters=(1,2,3) passive=(4) reserve=(5) unavailable=(2)`, empty groups left out
/// (voters always shown).
#[must_use]
pub fn members(members: &[Member]) -> String {
    let of = |member_type: MemberType| {
        members
            .iter()
            .filter(move |member| member.member_type == member_type)
            .map(|member| member.id)
    };
    let mut text = format!("voters={}", id_list(of(MemberType::Active)));
    for (name, member_type) in [
        ("passive", MemberType::Passive),
        ("reserve", MemberType::Reserve),
    ] {
        if of(member_type).next().is_some() {
            let _ = write!(text, " {name}={}", id_list(of(member_type)));
        }
    }
    let unavailable = members
        .iter()
        .filter(|member| member.status == MemberStatus::Unavailable)
        .map(|member| member.id);
    if unavailable.clone().next().is_some() {
        let _ = write!(text, " unavailable={}", id_list(unavailable));
    }
    text
}

/// `conf@4 voters=(1,2,3) passive=(4)`: the index of the entry that wrote it, then members.
#[must_use]
pub fn configuration(configuration: &Configuration) -> String {
    format!(
        "conf@{} {}",
        configuration.index,
        members(&configuration.members)
    )
}

/// `3/2`.
#[must_use]
pub fn position(entry: &Entry) -> String {
    format!("{}/{}", entry.index, entry.term)
}

/// `3/2 command x`, `1/1 initialize`, `4/2 configuration voters=(1,2,3)`.
#[must_use]
pub fn entry(entry: &Entry) -> String {
    let body = match &entry.body {
        EntryBody::Initialize => "initialize".to_owned(),
        EntryBody::Configuration { members: list } => format!("configuration {}", members(list)),
        EntryBody::Command { payload } => {
            format!("command {}", String::from_utf8_lossy(payload))
        }
    };
    format!("{} {body}", position(entry))
}

/// `[2/1,3/2]`.
#[must_use]
pub fn positions(entries: &[Entry]) -> String {
    let list: Vec<String> = entries.iter().map(position).collect();
    format!("[{}]", list.join(","))
}

/// `leader`, `follower`, ...
#[must_use]
pub fn role(role: Role) -> &'static str {
    match role {
        Role::Inactive => "inactive",
        Role::Reserve => "reserve",
        Role::Passive => "passive",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// `active`, `passive`, ...
#[must_use]
pub fn member_type(member_type: MemberType) -> &'static str {
    match member_type {
        MemberType::Inactive => "inactive",
        MemberType::Reserve => "reserve",
        MemberType::Passive => "passive",
        MemberType::Active => "active",
    }
}

/// `join 4 passive`, `leave 3`, `reconfigure 4 active available`.
#[must_use]
pub fn change(change: &MembershipChange) -> String {
    match change {
        MembershipChange::Join {
            id,
            member_type: kind,
        } => {
            format!("join {id} {}", member_type(*kind))
        }
        MembershipChange::Leave { id } => format!("leave {id}"),
        MembershipChange::Reconfigure {
            id,
            member_type: kind,
            status,
            ..
        } => {
            let status = match status {
                MemberStatus::Available => "available",
                MemberStatus::Unavailable => "unavailable",
            };
            format!("reconfigure {id} {} {status}", member_type(*kind))
        }
    }
}

/// `ok conf@4 voters=(1,2,3)` or `refused: a configuration change is in flight`.
#[must_use]
pub fn outcome(outcome: &Result<Configuration, ConfigurationError>) -> String {
    match outcome {
        Ok(committed) => format!("ok {}", configuration(committed)),
        Err(error) => format!("refused: {error}"),
    }
}

/// One message as `append term=2 prev=1/1 entries=[2/2] commit=1` (sender and receiver
/// are added by the caller).
#[must_use]
pub fn message(from: ReplicaId, message: &Message) -> String {
    match message {
        Message::AppendRequest(request) => {
            let mut text = if request.entries.is_empty() {
                format!(
                    "heartbeat term={} prev={}/{} commit={}",
                    request.term, request.prev_index, request.prev_term, request.commit_index
                )
            } else {
                format!(
                    "append term={} prev={}/{} entries={} commit={}",
                    request.term,
                    request.prev_index,
                    request.prev_term,
                    positions(&request.entries),
                    request.commit_index
                )
            };
            if request.leader != from {
                let _ = write!(text, " leader={}", request.leader);
            }
            text
        }
        Message::AppendResponse(response) => {
            if response.success {
                format!(
                    "append-response term={} ok match={}",
                    response.term, response.match_index
                )
            } else {
                format!(
                    "append-response term={} reject prev={} hint={}/{}",
                    response.term, response.rejected_index, response.hint_index, response.hint_term
                )
            }
        }
        Message::PollRequest(request) | Message::VoteRequest(request) => format!(
            "{} term={} last={}/{}",
            message.name(),
            request.term,
            request.last_index,
            request.last_term
        ),
        Message::PollResponse(response) | Message::VoteResponse(response) => format!(
            "{} term={} {}",
            message.name(),
            response.term,
            if response.granted {
                "granted"
            } else {
                "refused"
            }
        ),
        Message::ConfigureRequest(request) => format!(
            "configure term={} leader={} commit={} {}",
            request.term,
            request.leader,
            request.commit_index,
            configuration(&request.configuration)
        ),
        Message::ConfigureResponse(response) => {
            format!(
                "configure-response term={} last={}",
                response.term, response.last_index
            )
        }
        Message::MembershipRequest(request) => format!(
            "membership term={} request={} {}",
            request.term,
            request.request_id,
            change(&request.change)
        ),
        Message::MembershipResponse(response) => format!(
            "membership-response term={} request={} {}",
            response.term,
            response.request_id,
            outcome(&response.outcome)
        ),
    }
}
