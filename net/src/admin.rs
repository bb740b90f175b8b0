//! What `coracle admin` asks a node about one of its groups, on a client connection:
//! frame kind [`kind::ADMIN_REQUEST`](crate::kind::ADMIN_REQUEST) with the group in the
//! header, answered by [`kind::ADMIN_RESPONSE`](crate::kind::ADMIN_RESPONSE). The node
//! answers from its own state, without a round through Raft: a status is one server's view.
//!
//! Membership changes go through the group's leader (the node asked forwards them) and are
//! answered once committed; address-book changes are answered by the node at once.
//!
//! ```text
//! request:  1 status
//!           2 add-peer node u64, address text     3 remove-peer node u64
//!           4 join node u64, type u8              5 leave node u64
//!           6 reconfigure node u64, type u8   7 stats reset u8
//! response: 1 status: node u64 | role u8 | term u64 | leader u64 (0: none) | commit u64 |
//!             applied u64 | last u64 | configuration index u64, term u64 |
//!             members u32 | (id u64, type u8)*
//!           2 error: reason text               5 retry: reason text (try again soon)
//!           6 stats: count u32, (name text, count, p50, p90, p99, max: u64 each)*
//!           3 done                             4 changed: index u64, term u64, members
//! ```

use bytes::Bytes;
use coracle_engine::session::reader::put_bytes;
use coracle_engine::session::{DecodeError, Reader};

/// Most stages a stats answer lists.
const STAGES_MAX: u32 = 64;
/// Most members a status lists.
const STATUS_MEMBERS_MAX: u32 = 1024;

/// A question about a group, or an order to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRequest {
    /// The group's state on this node.
    Status,
    /// This node learns where another node listens (a node about to join).
    AddPeer {
        /// The node.
        node: u64,
        /// Its shard-0 address, `host:port`.
        address: String,
    },
    /// This node forgets a node (it left every group).
    RemovePeer {
        /// The node.
        node: u64,
    },
    /// Add `node` to the group with `member_type` (1 reserve, 2 passive, 3 active).
    Join {
        /// The node.
        node: u64,
        /// Its type once joined.
        member_type: u8,
    },
    /// Remove `node` from the group.
    Leave {
        /// The node.
        node: u64,
    },
    /// Change `node`'s type in the group (promote or demote).
    Reconfigure {
        /// The node.
        node: u64,
        /// Its new type.
        member_type: u8,
    },
    /// The shard's commit-stage figures (the commands it led), optionally starting them
    /// afresh after reading.
    Stats {
        /// Reset after reading.
        reset: bool,
    },
}

/// One server's view of its group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The node answering.
    pub node: u64,
    /// Its role: 0 inactive, 1 reserve, 2 passive, 3 follower, 4 candidate, 5 leader.
    pub role: u8,
    /// Its term.
    pub term: u64,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// Its commit index.
    pub commit_index: u64,
    /// The last index its state machine applied.
    pub applied_index: u64,
    /// Its last log index.
    pub last_index: u64,
    /// The index of the configuration in force (zero: the bootstrap one).
    pub configuration_index: u64,
    /// That configuration's term.
    pub configuration_term: u64,
    /// The members of its configuration: id and type (1 reserve, 2 passive, 3 active).
    pub members: Vec<(u64, u8)>,
}

impl GroupStatus {
    /// The role's name.
    #[must_use]
    pub fn role_name(&self) -> &'static str {
        match self.role {
            0 => "inactive",
            1 => "reserve",
            2 => "passive",
            3 => "follower",
            4 => "candidate",
            5 => "leader",
            _ => "unknown",
        }
    }
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminResponse {
    /// The group's status here.
    Status(GroupStatus),
    /// The question could not be answered.
    Error {
        /// Why.
        reason: String,
    },
    /// Done (an address-book change).
    Done,
    /// A membership change committed; the configuration it made.
    Changed {
        /// The configuration entry's index.
        index: u64,
        /// Its term.
        term: u64,
        /// Its members: id and type.
        members: Vec<(u64, u8)>,
    },
    /// Refused for now (no leader known, a change in flight, the leader not ready): ask
    /// again shortly.
    Retry {
        /// Why.
        reason: String,
    },
    /// Commit stages of the commands the shard led: per stage, its name, the commands
    /// counted, and p50, p90, p99 and max in µs from the request's arrival.
    Stats {
        /// The stages in order.
        stages: Vec<StageFigures>,
    },
}

/// One commit stage's figures: µs from a command's arrival at the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageFigures {
    /// The stage: persisted, committed, applied or replied.
    pub name: String,
    /// Commands counted.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl AdminRequest {
    /// The payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(32);
        match self {
            AdminRequest::Status => out.push(1),
            AdminRequest::AddPeer { node, address } => {
                out.push(2);
                out.extend_from_slice(&node.to_le_bytes());
                put_bytes(&mut out, address.as_bytes());
            }
            AdminRequest::RemovePeer { node } => {
                out.push(3);
                out.extend_from_slice(&node.to_le_bytes());
            }
            AdminRequest::Join { node, member_type } => {
                out.push(4);
                out.extend_from_slice(&node.to_le_bytes());
                out.push(*member_type);
            }
            AdminRequest::Leave { node } => {
                out.push(5);
                out.extend_from_slice(&node.to_le_bytes());
            }
            AdminRequest::Reconfigure { node, member_type } => {
                out.push(6);
                out.extend_from_slice(&node.to_le_bytes());
                out.push(*member_type);
            }
            AdminRequest::Stats { reset } => {
                out.push(7);
                out.push(u8::from(*reset));
            }
        }
        Bytes::from(out)
    }

    /// Reads a payload.
    ///
    /// # Errors
    /// An unknown tag, a cut, or trailing bytes.
    pub fn decode(payload: Bytes) -> Result<AdminRequest, DecodeError> {
        let mut reader = Reader::new(payload);
        let request = match reader.u8("admin request")? {
            1 => AdminRequest::Status,
            2 => AdminRequest::AddPeer {
                node: reader.u64("node")?,
                address: reader.text("address")?,
            },
            3 => AdminRequest::RemovePeer {
                node: reader.u64("node")?,
            },
            4 => AdminRequest::Join {
                node: reader.u64("node")?,
                member_type: reader.u8("member type")?,
            },
            5 => AdminRequest::Leave {
                node: reader.u64("node")?,
            },
            6 => AdminRequest::Reconfigure {
                node: reader.u64("node")?,
                member_type: reader.u8("member type")?,
            },
            7 => AdminRequest::Stats {
                reset: match reader.u8("reset")? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(DecodeError::Invalid {
                            what: "reset",
                            value: u64::from(other),
                        })
                    }
                },
            },
            other => {
                return Err(DecodeError::Invalid {
                    what: "admin request",
                    value: u64::from(other),
                })
            }
        };
        reader.finish()?;
        Ok(request)
    }
}

impl AdminResponse {
    /// The payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(128);
        match self {
            AdminResponse::Status(status) => {
                out.push(1);
                out.extend_from_slice(&status.node.to_le_bytes());
                out.push(status.role);
                out.extend_from_slice(&status.term.to_le_bytes());
                out.extend_from_slice(&status.leader.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&status.commit_index.to_le_bytes());
                out.extend_from_slice(&status.applied_index.to_le_bytes());
                out.extend_from_slice(&status.last_index.to_le_bytes());
                out.extend_from_slice(&status.configuration_index.to_le_bytes());
                out.extend_from_slice(&status.configuration_term.to_le_bytes());
                put_members(&mut out, &status.members);
            }
            AdminResponse::Error { reason } => {
                out.push(2);
                put_bytes(&mut out, reason.as_bytes());
            }
            AdminResponse::Done => out.push(3),
            AdminResponse::Changed {
                index,
                term,
                members,
            } => {
                out.push(4);
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(&term.to_le_bytes());
                put_members(&mut out, members);
            }
            AdminResponse::Retry { reason } => {
                out.push(5);
                put_bytes(&mut out, reason.as_bytes());
            }
            AdminResponse::Stats { stages } => {
                out.push(6);
                let count = u32::try_from(stages.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&count.to_le_bytes());
                for stage in stages {
                    put_bytes(&mut out, stage.name.as_bytes());
                    for value in [
                        stage.count,
                        stage.p50_us,
                        stage.p90_us,
                        stage.p99_us,
                        stage.max_us,
                    ] {
                        out.extend_from_slice(&value.to_le_bytes());
                    }
                }
            }
        }
        Bytes::from(out)
    }

    /// Reads a payload.
    ///
    /// # Errors
    /// A cut, an unknown tag, a member count over the cap, or trailing bytes.
    pub fn decode(payload: Bytes) -> Result<AdminResponse, DecodeError> {
        let mut reader = Reader::new(payload);
        let response = match reader.u8("admin response")? {
            1 => {
                let node = reader.u64("node")?;
                let role = reader.u8("role")?;
                let term = reader.u64("term")?;
                let leader = Some(reader.u64("leader")?).filter(|&leader| leader != 0);
                let commit_index = reader.u64("commit index")?;
                let applied_index = reader.u64("applied index")?;
                let last_index = reader.u64("last index")?;
                let configuration_index = reader.u64("configuration index")?;
                let configuration_term = reader.u64("configuration term")?;
                let members = read_members(&mut reader)?;
                AdminResponse::Status(GroupStatus {
                    node,
                    role,
                    term,
                    leader,
                    commit_index,
                    applied_index,
                    last_index,
                    configuration_index,
                    configuration_term,
                    members,
                })
            }
            2 => AdminResponse::Error {
                reason: reader.text("reason")?,
            },
            3 => AdminResponse::Done,
            4 => AdminResponse::Changed {
                index: reader.u64("configuration index")?,
                term: reader.u64("configuration term")?,
                members: read_members(&mut reader)?,
            },
            5 => AdminResponse::Retry {
                reason: reader.text("reason")?,
            },
            6 => {
                let count = reader.u32("stage count")?;
                if count > STAGES_MAX {
                    return Err(DecodeError::Invalid {
                        what: "stage count",
                        value: u64::from(count),
                    });
                }
                let mut stages = Vec::new();
                for _ in 0..count {
                    stages.push(StageFigures {
                        name: reader.text("stage name")?,
                        count: reader.u64("count")?,
                        p50_us: reader.u64("p50")?,
                        p90_us: reader.u64("p90")?,
                        p99_us: reader.u64("p99")?,
                        max_us: reader.u64("max")?,
                    });
                }
                AdminResponse::Stats { stages }
            }
            other => {
                return Err(DecodeError::Invalid {
                    what: "admin response",
                    value: u64::from(other),
                })
            }
        };
        reader.finish()?;
        Ok(response)
    }
}

fn put_members(out: &mut Vec<u8>, members: &[(u64, u8)]) {
    let count = u32::try_from(members.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for &(id, member_type) in members {
        out.extend_from_slice(&id.to_le_bytes());
        out.push(member_type);
    }
}

fn read_members(reader: &mut Reader) -> Result<Vec<(u64, u8)>, DecodeError> {
    let count = reader.u32("member count")?;
    if count > STATUS_MEMBERS_MAX {
        return Err(DecodeError::Invalid {
            what: "member count",
            value: u64::from(count),
        });
    }
    let mut members = Vec::new();
    for _ in 0..count {
        members.push((reader.u64("member id")?, reader.u8("member type")?));
    }
    Ok(members)
}

/// A member type's name.
#[must_use]
pub fn member_type_name(code: u8) -> &'static str {
    match code {
        1 => "reserve",
        2 => "passive",
        3 => "active",
        _ => "inactive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip_and_cuts_are_errors() {
        assert_eq!(
            AdminRequest::decode(AdminRequest::Status.encode()),
            Ok(AdminRequest::Status)
        );
        assert!(AdminRequest::decode(Bytes::from_static(&[9])).is_err());
        let responses = [
            AdminResponse::Status(GroupStatus {
                node: 2,
                role: 5,
                term: 7,
                leader: Some(2),
                commit_index: 40,
                applied_index: 39,
                last_index: 41,
                configuration_index: 2,
                configuration_term: 1,
                members: vec![(1, 3), (2, 3), (3, 2)],
            }),
            AdminResponse::Done,
            AdminResponse::Changed {
                index: 9,
                term: 2,
                members: vec![(1, 3), (4, 1)],
            },
            AdminResponse::Retry {
                reason: "a change is in flight".into(),
            },
            AdminResponse::Stats {
                stages: vec![StageFigures {
                    name: "persisted".into(),
                    count: 10,
                    p50_us: 300,
                    p90_us: 500,
                    p99_us: 900,
                    max_us: 1200,
                }],
            },
            AdminResponse::Error {
                reason: "group 9 is not here".into(),
            },
        ];
        for response in responses {
            let bytes = response.encode();
            assert_eq!(AdminResponse::decode(bytes.clone()), Ok(response));
            for cut in 0..bytes.len() {
                assert!(
                    AdminResponse::decode(bytes.slice(..cut)).is_err(),
                    "cut {cut}"
                );
            }
        }
        let mut huge = vec![1u8];
        huge.extend_from_slice(&[0; 8 * 8 + 1]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(AdminResponse::decode(Bytes::from(huge)).is_err());
    }
}
