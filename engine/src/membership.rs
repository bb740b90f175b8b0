//! Members of a Raft group, their types and availability, and the configuration that
//! lists them (SPEC §G).

use crate::types::{LogIndex, ReplicaId, Term};

/// Most members one configuration may hold (voters and non-voters together).
pub const MEMBERS_MAX: usize = 64;

/// What part a member plays. Ordered: INACTIVE < RESERVE < PASSIVE < ACTIVE.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberType {
    /// Not part of the group (not joined yet, or left).
    Inactive,
    /// Stateless standby: receives configuration, term and leader only.
    Reserve,
    /// Stateful non-voter: receives committed entries from followers.
    Passive,
    /// A voter: takes part in elections and commitment.
    Active,
}

/// Whether the leader has been able to reach a member lately (SPEC §G4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Answering heartbeats.
    Available,
    /// Missed several heartbeats in a row.
    Unavailable,
}

/// One member of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member's identity.
    pub id: ReplicaId,
    /// Voter, non-voter or standby.
    pub member_type: MemberType,
    /// Reachability as last committed by a leader.
    pub status: MemberStatus,
    /// The leader's wall-clock time (ms) when type or status last changed.
    pub updated_ms: u64,
}

impl Member {
    /// A member of the given type, available, updated at time zero.
    #[must_use]
    pub fn new(id: ReplicaId, member_type: MemberType) -> Member {
        Member {
            id,
            member_type,
            status: MemberStatus::Available,
            updated_ms: 0,
        }
    }
}

/// The membership of a group as of one configuration entry (or the bootstrap list).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Configuration {
    /// Index of the configuration entry (zero for the bootstrap configuration).
    pub index: LogIndex,
    /// Term of the configuration entry.
    pub term: Term,
    /// Leader wall-clock time of the entry.
    pub time_ms: u64,
    /// Members sorted by id, no duplicates.
    pub members: Vec<Member>,
}

impl Configuration {
    /// The bootstrap configuration: every listed server an ACTIVE voter.
    #[must_use]
    pub fn bootstrap(voters: &[ReplicaId]) -> Configuration {
        let members = voters
            .iter()
            .map(|&id| Member::new(id, MemberType::Active))
            .collect();
        Configuration::from_members(LogIndex::ZERO, Term::ZERO, 0, members)
    }

    /// A configuration from members in any order; sorts them and checks them.
    #[must_use]
    pub fn from_members(
        index: LogIndex,
        term: Term,
        time_ms: u64,
        mut members: Vec<Member>,
    ) -> Configuration {
        members.sort_by_key(|member| member.id);
        let configuration = Configuration {
            index,
            term,
            time_ms,
            members,
        };
        configuration.assert_valid();
        configuration
    }

    /// Members sorted, unique, bounded, and none INACTIVE (leaving removes a member).
    pub fn assert_valid(&self) {
        assert!(self.members.len() <= MEMBERS_MAX);
        for pair in self.members.windows(2) {
            assert!(pair[0].id < pair[1].id, "members sorted and unique");
        }
        for member in &self.members {
            assert!(member.member_type != MemberType::Inactive);
        }
    }

    /// The member with this id, if it is one.
    #[must_use]
    pub fn member(&self, id: ReplicaId) -> Option<&Member> {
        self.members
            .binary_search_by_key(&id, |member| member.id)
            .ok()
            .map(|position| &self.members[position])
    }

    /// The type of `id` in this configuration; INACTIVE when it is not a member.
    #[must_use]
    pub fn member_type(&self, id: ReplicaId) -> MemberType {
        self.member(id)
            .map_or(MemberType::Inactive, |member| member.member_type)
    }

    /// Ids of members of exactly this type, in id order.
    pub fn ids_of(&self, member_type: MemberType) -> impl Iterator<Item = ReplicaId> + '_ {
        self.members
            .iter()
            .filter(move |member| member.member_type == member_type)
            .map(|member| member.id)
    }

    /// Number of voters.
    #[must_use]
    pub fn voters_count(&self) -> usize {
        self.ids_of(MemberType::Active).count()
    }

    /// How many voters form a majority (at least one).
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.voters_count() / 2 + 1
    }

    /// True if the voters in `granted` form a majority of this configuration.
    pub fn is_quorum<'a>(&self, granted: impl IntoIterator<Item = &'a ReplicaId>) -> bool {
        let count = granted
            .into_iter()
            .filter(|&&id| self.member_type(id) == MemberType::Active)
            .count();
        count >= self.quorum()
    }

    /// Applies a change and returns the new member list (not yet an entry).
    ///
    /// # Errors
    /// A change that is not a change (join of a member, leave of a stranger) is refused.
    pub fn apply_change(
        &self,
        change: &MembershipChange,
        time_ms: u64,
    ) -> Result<Vec<Member>, ConfigurationError> {
        let mut members = self.members.clone();
        let position = members.binary_search_by_key(&change.id(), |member| member.id);
        match (change, position) {
            (MembershipChange::Join { id, member_type }, Err(position)) => {
                if *member_type == MemberType::Inactive {
                    return Err(ConfigurationError::IllegalMemberType);
                }
                if members.len() >= MEMBERS_MAX {
                    return Err(ConfigurationError::TooManyMembers);
                }
                let mut member = Member::new(*id, *member_type);
                member.updated_ms = time_ms;
                members.insert(position, member);
            }
            (MembershipChange::Join { .. }, Ok(_)) => {
                return Err(ConfigurationError::AlreadyMember)
            }
            (MembershipChange::Leave { .. }, Ok(position)) => {
                members.remove(position);
            }
            (
                MembershipChange::Reconfigure {
                    member_type,
                    status,
                    ..
                },
                Ok(position),
            ) => {
                if *member_type == MemberType::Inactive {
                    members.remove(position);
                } else {
                    let member = &mut members[position];
                    member.member_type = *member_type;
                    member.status = *status;
                    member.updated_ms = time_ms;
                }
            }
            (MembershipChange::Leave { .. } | MembershipChange::Reconfigure { .. }, Err(_)) => {
                return Err(ConfigurationError::NotMember);
            }
        }
        if !members
            .iter()
            .any(|member| member.member_type == MemberType::Active)
        {
            return Err(ConfigurationError::NoVoters);
        }
        Ok(members)
    }
}

/// One single-server membership change (SPEC §G2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a server with its own type.
    Join {
        /// The joining server.
        id: ReplicaId,
        /// Its type once joined.
        member_type: MemberType,
    },
    /// Remove a server.
    Leave {
        /// The leaving server.
        id: ReplicaId,
    },
    /// Change a member's type or status, if the configuration is still the one the caller read.
    Reconfigure {
        /// The member to change.
        id: ReplicaId,
        /// Its new type (INACTIVE removes it).
        member_type: MemberType,
        /// Its new status.
        status: MemberStatus,
        /// Index of the configuration the caller read (optimistic concurrency).
        configuration_index: LogIndex,
        /// Term of the configuration the caller read.
        configuration_term: Term,
    },
}

impl MembershipChange {
    /// The server the change is about.
    #[must_use]
    pub fn id(&self) -> ReplicaId {
        match self {
            MembershipChange::Join { id, .. }
            | MembershipChange::Leave { id }
            | MembershipChange::Reconfigure { id, .. } => *id,
        }
    }
}

/// Why a membership change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigurationError {
    /// This server is not the leader; retry at the leader (if known).
    NotLeader {
        /// The leader this server believes in.
        leader: Option<ReplicaId>,
    },
    /// The leader's no-op of this term has not committed yet; retry shortly.
    NotReady,
    /// Another change is still uncommitted; retry shortly.
    ChangeInFlight,
    /// A reconfigure named a configuration that is no longer current: re-read and retry.
    StaleConfiguration,
    /// The server to join is already a member.
    AlreadyMember,
    /// The server to change or remove is not a member.
    NotMember,
    /// INACTIVE is not a type to join as.
    IllegalMemberType,
    /// The configuration is full.
    TooManyMembers,
    /// The change would leave no voter.
    NoVoters,
}

impl std::fmt::Display for ConfigurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigurationError::NotLeader {
                leader: Some(leader),
            } => {
                write!(f, "not the leader; the leader is {leader}")
            }
            ConfigurationError::NotLeader { leader: None } => write!(f, "no leader known"),
            ConfigurationError::NotReady => write!(f, "the leader's first entry is not committed"),
            ConfigurationError::ChangeInFlight => write!(f, "a configuration change is in flight"),
            ConfigurationError::StaleConfiguration => write!(f, "the configuration has changed"),
            ConfigurationError::AlreadyMember => write!(f, "already a member"),
            ConfigurationError::NotMember => write!(f, "not a member"),
            ConfigurationError::IllegalMemberType => write!(f, "illegal member type"),
            ConfigurationError::TooManyMembers => write!(f, "too many members"),
            ConfigurationError::NoVoters => write!(f, "the change would leave no voter"),
        }
    }
}

impl std::error::Error for ConfigurationError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[u64]) -> Vec<ReplicaId> {
        values.iter().map(|&value| ReplicaId(value)).collect()
    }

    #[test]
    fn quorum_counts_only_voters() {
        let mut configuration = Configuration::bootstrap(&ids(&[1, 2, 3]));
        assert_eq!(configuration.quorum(), 2);
        let members = configuration
            .apply_change(
                &MembershipChange::Join {
                    id: ReplicaId(4),
                    member_type: MemberType::Passive,
                },
                5,
            )
            .expect("join");
        configuration = Configuration::from_members(LogIndex(1), Term(1), 5, members);
        assert_eq!(configuration.quorum(), 2);
        assert!(!configuration.is_quorum(&ids(&[1, 4])));
        assert!(configuration.is_quorum(&ids(&[1, 3])));
    }

    #[test]
    fn changes_that_are_not_changes_are_refused() {
        let configuration = Configuration::bootstrap(&ids(&[1]));
        let join = MembershipChange::Join {
            id: ReplicaId(1),
            member_type: MemberType::Active,
        };
        assert_eq!(
            configuration.apply_change(&join, 0),
            Err(ConfigurationError::AlreadyMember)
        );
        let leave = MembershipChange::Leave { id: ReplicaId(9) };
        assert_eq!(
            configuration.apply_change(&leave, 0),
            Err(ConfigurationError::NotMember)
        );
        let last = MembershipChange::Leave { id: ReplicaId(1) };
        assert_eq!(
            configuration.apply_change(&last, 0),
            Err(ConfigurationError::NoVoters)
        );
    }
}
