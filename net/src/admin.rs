//! What `coracle admin` asks a node about one of its groups, on a client connection:
//! frame kind [`kind::ADMIN_REQUEST`](crate::kind::ADMIN_REQUEST) with the group in the
//! header, answered by [`kind::ADMIN_RESPONSE`](crate::kind::ADMIN_RESPONSE). The node
//! answers from its own state, without a round through Raft: a status is one server's view.
//!
//! ```text
//! request:  tag u8 (1 status)
//! response: tag u8 = 1 | node u64 | role u8 | term u64 | leader u64 (0: none) |
//!           commit u64 | applied u64 | last u64 | members u32 | (id u64, type u8)*
//!           tag u8 = 2 | reason text
//! ```

use bytes::Bytes;
use coracle_engine::session::reader::put_bytes;
use coracle_engine::session::{DecodeError, Reader};

/// Most members a status lists.
const STATUS_MEMBERS_MAX: u32 = 1024;

/// A question about a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRequest {
    /// The group's state on this node.
    Status,
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
}

impl AdminRequest {
    /// The payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        match self {
            AdminRequest::Status => Bytes::from_static(&[1]),
        }
    }

    /// Reads a payload.
    ///
    /// # Errors
    /// An unknown tag, a cut, or trailing bytes.
    pub fn decode(payload: Bytes) -> Result<AdminRequest, DecodeError> {
        let mut reader = Reader::new(payload);
        let request = match reader.u8("admin request")? {
            1 => AdminRequest::Status,
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
                let count = u32::try_from(status.members.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&count.to_le_bytes());
                for &(id, member_type) in &status.members {
                    out.extend_from_slice(&id.to_le_bytes());
                    out.push(member_type);
                }
            }
            AdminResponse::Error { reason } => {
                out.push(2);
                put_bytes(&mut out, reason.as_bytes());
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
                AdminResponse::Status(GroupStatus {
                    node,
                    role,
                    term,
                    leader,
                    commit_index,
                    applied_index,
                    last_index,
                    members,
                })
            }
            2 => AdminResponse::Error {
                reason: reader.text("reason")?,
            },
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
                members: vec![(1, 3), (2, 3), (3, 2)],
            }),
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
        huge.extend_from_slice(&[0; 8 * 6 + 1]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(AdminResponse::decode(Bytes::from(huge)).is_err());
    }
}
