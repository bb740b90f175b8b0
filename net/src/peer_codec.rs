//! The payload of a peer frame ([`kind::PEER`](crate::kind::PEER)): one [`PeerMessage`]
//! between servers of a group.
//!
//! A tag byte names the variant; fixed little-endian fields follow, lists last.
//!
//! ```text
//!  1 append request      term u64 | leader u64 | prev_index u64 | prev_term u64 |
//!                        commit_index u64 | global_index u64 | round u64 |
//!                        entry count u32 | entries (entry_codec, byte for byte as in a segment)
//!  2 append response     term u64 | success u8 | match_index u64 | rejected_index u64 |
//!                        hint_index u64 | hint_term u64 | round u64
//!  3 poll request        term u64 | candidate u64 | last_index u64 | last_term u64
//!  4 poll response       term u64 | granted u8
//!  5 vote request        as 3
//!  6 vote response       as 4
//!  7 configure request   term u64 | leader u64 | commit_index u64 | configuration
//!  8 configure response  term u64 | last_index u64
//!  9 membership request  term u64 | request_id u64 | change
//! 10 membership response term u64 | request_id u64 | 0 configuration | 1 refusal
//! 11 forward             a client request (session::wire::encode_request), the
//!                        forward_id in the request id's place: forward_id u64 | body
//! 12 forward reply       forward_id u64 | body or error (session::wire::put_body)
//!
//! configuration  index u64 | term u64 | time_ms u64 | member count u16 |
//!                per member: id u64 | type u8 | status u8 | updated_ms u64
//! change         1 join: id u64 | type u8
//!                2 leave: id u64
//!                3 reconfigure: id u64 | type u8 | status u8 |
//!                  configuration_index u64 | configuration_term u64
//! refusal        1 not leader: 0 | 1 leader u64;  2 not ready;  3 change in flight;
//!                4 stale configuration;  5 already member;  6 not member;
//!                7 illegal member type;  8 too many members;  9 no voters
//! ```
//!
//! Booleans are 0 or 1. Members are written as a configuration entry writes them
//! (`entry_codec`'s codes: type 1 RESERVE, 2 PASSIVE, 3 ACTIVE; status 1 AVAILABLE,
//! 2 UNAVAILABLE); a change may also name type 0, INACTIVE, which the leader refuses for a
//! join and reads as removal for a reconfigure.
//!
//! Bytes from a peer are untrusted. Decoding never panics, reserves room for a list only
//! once the bytes left could hold it, and checks what the engine would otherwise assert on:
//! entries follow `prev_index` one by one with terms that never decrease and never pass
//! the sender's term; configurations hold at most `MEMBERS_MAX` members, sorted by id, none
//! INACTIVE. Every accepted payload re-encodes to the same bytes. Entries are decoded in
//! place, so a command's payload is a slice of the received frame (no copy on the way to
//! the log).

use bytes::Bytes;
use coracle_engine::entry::Entry;
use coracle_engine::entry_codec::{
    decode_entry, encode_entry, member_status_code, member_status_from, member_type_code,
    member_type_from, EntryDecodeError, ENTRY_BODY_HEADER_SIZE_BYTES, ENTRY_PREFIX_SIZE_BYTES,
};
use coracle_engine::membership::{
    Configuration, ConfigurationError, Member, MemberType, MembershipChange, MEMBERS_MAX,
};
use coracle_engine::message::{
    AppendRequest, AppendResponse, ConfigureRequest, ConfigureResponse, MembershipRequest,
    MembershipResponse, Message, VoteRequest, VoteResponse,
};
use coracle_engine::server::PeerMessage;
use coracle_engine::session::wire::{decode_request, encode_request, put_body, read_body};
use coracle_engine::session::{ClientRequest, DecodeError, Reader};
use coracle_engine::types::{LogIndex, ReplicaId, Term};

const TAG_APPEND_REQUEST: u8 = 1;
const TAG_APPEND_RESPONSE: u8 = 2;
const TAG_POLL_REQUEST: u8 = 3;
const TAG_POLL_RESPONSE: u8 = 4;
const TAG_VOTE_REQUEST: u8 = 5;
const TAG_VOTE_RESPONSE: u8 = 6;
const TAG_CONFIGURE_REQUEST: u8 = 7;
const TAG_CONFIGURE_RESPONSE: u8 = 8;
const TAG_MEMBERSHIP_REQUEST: u8 = 9;
const TAG_MEMBERSHIP_RESPONSE: u8 = 10;
const TAG_FORWARD: u8 = 11;
const TAG_FORWARD_REPLY: u8 = 12;

const CHANGE_JOIN: u8 = 1;
const CHANGE_LEAVE: u8 = 2;
const CHANGE_RECONFIGURE: u8 = 3;

const OUTCOME_CONFIGURATION: u8 = 0;
const OUTCOME_REFUSED: u8 = 1;

/// The fewest bytes an entry takes (an initialize entry: prefix and body header only); an
/// entry count is checked against it before room is reserved.
const ENTRY_SIZE_BYTES_MIN: usize = ENTRY_PREFIX_SIZE_BYTES + ENTRY_BODY_HEADER_SIZE_BYTES;
/// One member: id, type, status, `updated_ms` (the record of a configuration entry).
const MEMBER_SIZE_BYTES: usize = 8 + 1 + 1 + 8;

// The member count is a u16 on the wire, as in a configuration entry.
const _: () = assert!(MEMBERS_MAX <= u16::MAX as usize);
const _: () = assert!(ENTRY_SIZE_BYTES_MIN > 0);

/// Why a peer frame's payload is not a [`PeerMessage`]. The connection that sent it is
/// closed with this reason, so each variant names what was wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerDecodeError {
    /// A field is cut short, holds a value no writer produces (an unknown tag, a boolean
    /// that is neither 0 nor 1, an INACTIVE or unsorted member), or bytes follow the
    /// message. Offsets count from the start of the payload.
    Field(DecodeError),
    /// A count of items is over its cap or over what the bytes left could hold; refused
    /// before anything was reserved for it.
    Count {
        /// What is counted.
        what: &'static str,
        /// The count read.
        count: u64,
        /// The most there could be.
        max: u64,
    },
    /// An entry of an append does not decode (cut, corrupt or malformed).
    Entry {
        /// Its position among the request's entries, from 0.
        position: usize,
        /// Its offset in the payload.
        offset: usize,
        /// What is wrong with it.
        error: EntryDecodeError,
    },
    /// An entry's index is not the one after its predecessor (`prev_index` for the first).
    EntryIndex {
        /// Its position among the request's entries, from 0.
        position: usize,
        /// The request's `prev_index`: entry `p` must be at `prev_index + p + 1`.
        prev_index: LogIndex,
        /// The index it holds.
        found: LogIndex,
    },
    /// An entry's term is below its predecessor's (`prev_term` for the first) or above
    /// the sender's term: no log holds that, and the engine's log asserts it never does.
    EntryTerm {
        /// Its position among the request's entries, from 0.
        position: usize,
        /// The term it holds.
        found: Term,
        /// The lowest term it may hold.
        min: Term,
        /// The highest term it may hold.
        max: Term,
    },
}

impl std::fmt::Display for PeerDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerDecodeError::Field(error) => write!(f, "malformed peer message: {error}"),
            PeerDecodeError::Count { what, count, max } => write!(
                f,
                "{what} count {count} is over {max} (the cap, or what the bytes left hold)"
            ),
            PeerDecodeError::Entry {
                position,
                offset,
                error,
            } => write!(f, "entry {position} at offset {offset}: {error}"),
            PeerDecodeError::EntryIndex {
                position,
                prev_index,
                found,
            } => write!(
                f,
                "entry {position} after prev index {prev_index} holds index {found}, \
                 not prev index + {}",
                *position as u64 + 1
            ),
            PeerDecodeError::EntryTerm {
                position,
                found,
                min,
                max,
            } => write!(
                f,
                "entry {position} holds term {found}, outside {min}..={max}"
            ),
        }
    }
}

impl std::error::Error for PeerDecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeerDecodeError::Field(error) => Some(error),
            PeerDecodeError::Entry { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Appends the encoding of `message` to `out`, which may already hold a frame header: the
/// message is written in place, so entries are copied once, from the log into the frame.
///
/// # Panics
/// If the message breaks what the engine guarantees of what it sends: entries of an
/// append that do not follow `prev_index` one by one, or a configuration that is not
/// valid; or if an entry is larger than `entry_codec` allows.
pub fn encode_peer_message(message: &PeerMessage, out: &mut Vec<u8>) {
    match message {
        PeerMessage::Raft(message) => put_raft_message(message, out),
        PeerMessage::Forward {
            forward_id,
            request,
        } => {
            // The same bytes as the client's own request, so that layout has one writer.
            // The clone shares the operation's buffer, but `encode_request` copies the
            // operation once more through a buffer of its own: the price of reusing it.
            out.push(TAG_FORWARD);
            let request = ClientRequest {
                request_id: *forward_id,
                body: request.clone(),
            };
            out.extend_from_slice(&encode_request(&request));
        }
        PeerMessage::ForwardReply { forward_id, body } => {
            out.push(TAG_FORWARD_REPLY);
            put_u64(out, *forward_id);
            put_body(out, body);
        }
    }
}

fn put_raft_message(message: &Message, out: &mut Vec<u8>) {
    match message {
        Message::AppendRequest(request) => put_append_request(request, out),
        Message::AppendResponse(response) => {
            out.push(TAG_APPEND_RESPONSE);
            put_u64(out, response.term.0);
            out.push(u8::from(response.success));
            put_u64(out, response.match_index.0);
            put_u64(out, response.rejected_index.0);
            put_u64(out, response.hint_index.0);
            put_u64(out, response.hint_term.0);
            put_u64(out, response.round);
        }
        Message::PollRequest(request) => put_vote_request(TAG_POLL_REQUEST, request, out),
        Message::PollResponse(response) => put_vote_response(TAG_POLL_RESPONSE, response, out),
        Message::VoteRequest(request) => put_vote_request(TAG_VOTE_REQUEST, request, out),
        Message::VoteResponse(response) => put_vote_response(TAG_VOTE_RESPONSE, response, out),
        Message::ConfigureRequest(request) => {
            out.push(TAG_CONFIGURE_REQUEST);
            put_u64(out, request.term.0);
            put_u64(out, request.leader.0);
            put_u64(out, request.commit_index.0);
            put_configuration(&request.configuration, out);
        }
        Message::ConfigureResponse(response) => {
            out.push(TAG_CONFIGURE_RESPONSE);
            put_u64(out, response.term.0);
            put_u64(out, response.last_index.0);
        }
        Message::MembershipRequest(request) => {
            out.push(TAG_MEMBERSHIP_REQUEST);
            put_u64(out, request.term.0);
            put_u64(out, request.request_id);
            put_change(&request.change, out);
        }
        Message::MembershipResponse(response) => {
            out.push(TAG_MEMBERSHIP_RESPONSE);
            put_u64(out, response.term.0);
            put_u64(out, response.request_id);
            match &response.outcome {
                Ok(configuration) => {
                    out.push(OUTCOME_CONFIGURATION);
                    put_configuration(configuration, out);
                }
                Err(error) => {
                    out.push(OUTCOME_REFUSED);
                    put_configuration_error(error, out);
                }
            }
        }
    }
}

fn put_append_request(request: &AppendRequest, out: &mut Vec<u8>) {
    out.push(TAG_APPEND_REQUEST);
    put_u64(out, request.term.0);
    put_u64(out, request.leader.0);
    put_u64(out, request.prev_index.0);
    put_u64(out, request.prev_term.0);
    put_u64(out, request.commit_index.0);
    put_u64(out, request.global_index.0);
    put_u64(out, request.round);
    let count = u32::try_from(request.entries.len()).expect("an append is bounded in bytes");
    out.extend_from_slice(&count.to_le_bytes());
    let mut index = request.prev_index;
    for entry in &request.entries {
        // The receiver refuses anything else; failing here names the sender's bug.
        index = index.next();
        assert_eq!(entry.index, index, "entries follow prev_index one by one");
        encode_entry(entry, out);
    }
}

fn put_vote_request(tag: u8, request: &VoteRequest, out: &mut Vec<u8>) {
    assert!(tag == TAG_POLL_REQUEST || tag == TAG_VOTE_REQUEST);
    out.push(tag);
    put_u64(out, request.term.0);
    put_u64(out, request.candidate.0);
    put_u64(out, request.last_index.0);
    put_u64(out, request.last_term.0);
}

fn put_vote_response(tag: u8, response: &VoteResponse, out: &mut Vec<u8>) {
    assert!(tag == TAG_POLL_RESPONSE || tag == TAG_VOTE_RESPONSE);
    out.push(tag);
    put_u64(out, response.term.0);
    out.push(u8::from(response.granted));
}

fn put_configuration(configuration: &Configuration, out: &mut Vec<u8>) {
    // The receiver refuses an invalid configuration; failing here names the sender's bug.
    configuration.assert_valid();
    put_u64(out, configuration.index.0);
    put_u64(out, configuration.term.0);
    put_u64(out, configuration.time_ms);
    let count = u16::try_from(configuration.members.len()).expect("MEMBERS_MAX fits u16");
    out.extend_from_slice(&count.to_le_bytes());
    for member in &configuration.members {
        put_u64(out, member.id.0);
        out.push(member_type_code(member.member_type));
        out.push(member_status_code(member.status));
        put_u64(out, member.updated_ms);
    }
}

fn put_change(change: &MembershipChange, out: &mut Vec<u8>) {
    match change {
        MembershipChange::Join { id, member_type } => {
            out.push(CHANGE_JOIN);
            put_u64(out, id.0);
            out.push(member_type_code(*member_type));
        }
        MembershipChange::Leave { id } => {
            out.push(CHANGE_LEAVE);
            put_u64(out, id.0);
        }
        MembershipChange::Reconfigure {
            id,
            member_type,
            status,
            configuration_index,
            configuration_term,
        } => {
            out.push(CHANGE_RECONFIGURE);
            put_u64(out, id.0);
            out.push(member_type_code(*member_type));
            out.push(member_status_code(*status));
            put_u64(out, configuration_index.0);
            put_u64(out, configuration_term.0);
        }
    }
}

fn put_configuration_error(error: &ConfigurationError, out: &mut Vec<u8>) {
    out.push(configuration_error_code(error));
    if let ConfigurationError::NotLeader { leader } = error {
        match leader {
            None => out.push(0),
            Some(leader) => {
                out.push(1);
                put_u64(out, leader.0);
            }
        }
    }
}

fn configuration_error_code(error: &ConfigurationError) -> u8 {
    match error {
        ConfigurationError::NotLeader { .. } => 1,
        ConfigurationError::NotReady => 2,
        ConfigurationError::ChangeInFlight => 3,
        ConfigurationError::StaleConfiguration => 4,
        ConfigurationError::AlreadyMember => 5,
        ConfigurationError::NotMember => 6,
        ConfigurationError::IllegalMemberType => 7,
        ConfigurationError::TooManyMembers => 8,
        ConfigurationError::NoVoters => 9,
    }
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Decodes a peer frame's payload. Command payloads and forwarded operations are slices
/// of `payload` (no copy).
///
/// # Errors
/// See [`PeerDecodeError`]: a cut or corrupt payload, an unknown tag, bytes left over, an
/// entry out of place, or a configuration the engine would assert on. Nothing in
/// `payload` can make this panic.
pub fn decode_peer_message(payload: &Bytes) -> Result<PeerMessage, PeerDecodeError> {
    let mut cursor = Cursor::new(payload);
    let message = match cursor.u8("message tag")? {
        TAG_FORWARD => {
            let offset = cursor.offset();
            let request = decode_request(&payload.slice(offset..))
                .map_err(|error| PeerDecodeError::Field(shifted(error, offset)))?;
            cursor.skip_to(payload.len());
            PeerMessage::Forward {
                forward_id: request.request_id,
                request: request.body,
            }
        }
        TAG_FORWARD_REPLY => PeerMessage::ForwardReply {
            forward_id: cursor.u64("forward id")?,
            body: cursor.read(read_body)?,
        },
        tag => PeerMessage::Raft(read_raft_message(tag, &mut cursor)?),
    };
    cursor.finish()?;
    Ok(message)
}

fn read_raft_message(tag: u8, cursor: &mut Cursor) -> Result<Message, PeerDecodeError> {
    Ok(match tag {
        TAG_APPEND_REQUEST => Message::AppendRequest(read_append_request(cursor)?),
        TAG_APPEND_RESPONSE => Message::AppendResponse(AppendResponse {
            term: Term(cursor.u64("term")?),
            success: cursor.bool("success")?,
            match_index: LogIndex(cursor.u64("match index")?),
            rejected_index: LogIndex(cursor.u64("rejected index")?),
            hint_index: LogIndex(cursor.u64("hint index")?),
            hint_term: Term(cursor.u64("hint term")?),
            round: cursor.u64("round")?,
        }),
        TAG_POLL_REQUEST => Message::PollRequest(read_vote_request(cursor)?),
        TAG_POLL_RESPONSE => Message::PollResponse(read_vote_response(cursor)?),
        TAG_VOTE_REQUEST => Message::VoteRequest(read_vote_request(cursor)?),
        TAG_VOTE_RESPONSE => Message::VoteResponse(read_vote_response(cursor)?),
        TAG_CONFIGURE_REQUEST => Message::ConfigureRequest(ConfigureRequest {
            term: Term(cursor.u64("term")?),
            leader: ReplicaId(cursor.u64("leader")?),
            commit_index: LogIndex(cursor.u64("commit index")?),
            configuration: read_configuration(cursor)?,
        }),
        TAG_CONFIGURE_RESPONSE => Message::ConfigureResponse(ConfigureResponse {
            term: Term(cursor.u64("term")?),
            last_index: LogIndex(cursor.u64("last index")?),
        }),
        TAG_MEMBERSHIP_REQUEST => Message::MembershipRequest(MembershipRequest {
            term: Term(cursor.u64("term")?),
            request_id: cursor.u64("request id")?,
            change: read_change(cursor)?,
        }),
        TAG_MEMBERSHIP_RESPONSE => Message::MembershipResponse(MembershipResponse {
            term: Term(cursor.u64("term")?),
            request_id: cursor.u64("request id")?,
            outcome: match cursor.u8("outcome tag")? {
                OUTCOME_CONFIGURATION => Ok(read_configuration(cursor)?),
                OUTCOME_REFUSED => Err(read_configuration_error(cursor)?),
                tag => return Err(invalid("outcome tag", u64::from(tag))),
            },
        }),
        tag => return Err(invalid("message tag", u64::from(tag))),
    })
}

fn read_append_request(cursor: &mut Cursor) -> Result<AppendRequest, PeerDecodeError> {
    let term = Term(cursor.u64("term")?);
    let leader = ReplicaId(cursor.u64("leader")?);
    let prev_index = LogIndex(cursor.u64("prev index")?);
    let prev_term = Term(cursor.u64("prev term")?);
    let commit_index = LogIndex(cursor.u64("commit index")?);
    let global_index = LogIndex(cursor.u64("global index")?);
    let round = cursor.u64("round")?;
    let count = cursor.u32("entry count")?;
    let count = cursor.count("entry", u64::from(count), ENTRY_SIZE_BYTES_MIN, usize::MAX)?;
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    let mut offset = cursor.offset();
    for position in 0..count {
        let (entry, size) =
            decode_entry(cursor.payload, offset).map_err(|error| PeerDecodeError::Entry {
                position,
                offset,
                error,
            })?;
        assert!(size >= ENTRY_SIZE_BYTES_MIN);
        let after = entries.last().map_or(prev_index, |last| last.index);
        if after.0.checked_add(1) != Some(entry.index.0) {
            return Err(PeerDecodeError::EntryIndex {
                position,
                prev_index,
                found: entry.index,
            });
        }
        let min = entries.last().map_or(prev_term, |last| last.term);
        if entry.term < min || entry.term > term {
            return Err(PeerDecodeError::EntryTerm {
                position,
                found: entry.term,
                min,
                max: term,
            });
        }
        entries.push(entry);
        offset += size;
    }
    cursor.skip_to(offset);
    Ok(AppendRequest {
        term,
        leader,
        prev_index,
        prev_term,
        entries,
        commit_index,
        global_index,
        round,
    })
}

fn read_vote_request(cursor: &mut Cursor) -> Result<VoteRequest, PeerDecodeError> {
    Ok(VoteRequest {
        term: Term(cursor.u64("term")?),
        candidate: ReplicaId(cursor.u64("candidate")?),
        last_index: LogIndex(cursor.u64("last index")?),
        last_term: Term(cursor.u64("last term")?),
    })
}

fn read_vote_response(cursor: &mut Cursor) -> Result<VoteResponse, PeerDecodeError> {
    Ok(VoteResponse {
        term: Term(cursor.u64("term")?),
        granted: cursor.bool("granted")?,
    })
}

/// Reads a configuration and checks what `Configuration::assert_valid` asserts (bounded,
/// sorted and unique ids, none INACTIVE), so that a configuration from a peer can never
/// trip it.
fn read_configuration(cursor: &mut Cursor) -> Result<Configuration, PeerDecodeError> {
    let index = LogIndex(cursor.u64("configuration index")?);
    let term = Term(cursor.u64("configuration term")?);
    let time_ms = cursor.u64("configuration time")?;
    let count = cursor.u16("member count")?;
    let count = cursor.count("member", u64::from(count), MEMBER_SIZE_BYTES, MEMBERS_MAX)?;
    let mut members: Vec<Member> = Vec::with_capacity(count);
    for _ in 0..count {
        let id = ReplicaId(cursor.u64("member id")?);
        if members.last().is_some_and(|last| last.id >= id) {
            return Err(invalid("member id (not above the one before)", id.0));
        }
        let code = cursor.u8("member type")?;
        // `member_type_from` knows no INACTIVE: leaving removes a member.
        let member_type =
            member_type_from(code).ok_or_else(|| invalid("member type", u64::from(code)))?;
        let code = cursor.u8("member status")?;
        let status =
            member_status_from(code).ok_or_else(|| invalid("member status", u64::from(code)))?;
        members.push(Member {
            id,
            member_type,
            status,
            updated_ms: cursor.u64("member updated time")?,
        });
    }
    Ok(Configuration {
        index,
        term,
        time_ms,
        members,
    })
}

fn read_change(cursor: &mut Cursor) -> Result<MembershipChange, PeerDecodeError> {
    Ok(match cursor.u8("change tag")? {
        CHANGE_JOIN => MembershipChange::Join {
            id: ReplicaId(cursor.u64("member id")?),
            member_type: read_change_member_type(cursor)?,
        },
        CHANGE_LEAVE => MembershipChange::Leave {
            id: ReplicaId(cursor.u64("member id")?),
        },
        CHANGE_RECONFIGURE => MembershipChange::Reconfigure {
            id: ReplicaId(cursor.u64("member id")?),
            member_type: read_change_member_type(cursor)?,
            status: {
                let code = cursor.u8("member status")?;
                member_status_from(code).ok_or_else(|| invalid("member status", u64::from(code)))?
            },
            configuration_index: LogIndex(cursor.u64("configuration index")?),
            configuration_term: Term(cursor.u64("configuration term")?),
        },
        tag => return Err(invalid("change tag", u64::from(tag))),
    })
}

/// A change may name INACTIVE, unlike a stored member: the leader refuses it for a join
/// and removes the member for a reconfigure.
fn read_change_member_type(cursor: &mut Cursor) -> Result<MemberType, PeerDecodeError> {
    let code = cursor.u8("member type")?;
    if code == member_type_code(MemberType::Inactive) {
        return Ok(MemberType::Inactive);
    }
    member_type_from(code).ok_or_else(|| invalid("member type", u64::from(code)))
}

fn read_configuration_error(cursor: &mut Cursor) -> Result<ConfigurationError, PeerDecodeError> {
    Ok(match cursor.u8("refusal code")? {
        1 => ConfigurationError::NotLeader {
            leader: match cursor.u8("leader flag")? {
                0 => None,
                1 => Some(ReplicaId(cursor.u64("leader")?)),
                flag => return Err(invalid("leader flag", u64::from(flag))),
            },
        },
        2 => ConfigurationError::NotReady,
        3 => ConfigurationError::ChangeInFlight,
        4 => ConfigurationError::StaleConfiguration,
        5 => ConfigurationError::AlreadyMember,
        6 => ConfigurationError::NotMember,
        7 => ConfigurationError::IllegalMemberType,
        8 => ConfigurationError::TooManyMembers,
        9 => ConfigurationError::NoVoters,
        code => return Err(invalid("refusal code", u64::from(code))),
    })
}

fn invalid(what: &'static str, value: u64) -> PeerDecodeError {
    PeerDecodeError::Field(DecodeError::Invalid { what, value })
}

/// `error` with its offset moved from a reader that started `base` bytes into the payload.
fn shifted(error: DecodeError, base: usize) -> DecodeError {
    match error {
        DecodeError::Truncated { what, offset } => DecodeError::Truncated {
            what,
            offset: base + offset,
        },
        other => other,
    }
}

/// A [`Reader`] over the payload that knows where it is. `Reader` keeps its offset to
/// itself; the codec needs it to hand entries to `decode_entry` (which reads the whole
/// payload at an offset, so payloads stay slices of it), to check counts against the
/// bytes left, and to report offsets from the payload's start.
struct Cursor<'a> {
    payload: &'a Bytes,
    reader: Reader,
    /// Where `reader`'s bytes start in `payload`.
    base: usize,
}

impl<'a> Cursor<'a> {
    fn new(payload: &'a Bytes) -> Cursor<'a> {
        Cursor {
            payload,
            reader: Reader::new(payload.clone()),
            base: 0,
        }
    }

    /// The offset of the next read. `Reader::rest` hands out what is left (a slice, no
    /// copy) and a new reader starts there.
    fn offset(&mut self) -> usize {
        let rest = self.reader.rest();
        assert!(rest.len() <= self.payload.len());
        self.base = self.payload.len() - rest.len();
        self.reader = Reader::new(rest);
        self.base
    }

    /// Goes on reading at `offset`, past what was read without the reader.
    fn skip_to(&mut self, offset: usize) {
        assert!(offset <= self.payload.len());
        assert!(offset >= self.base);
        self.reader = Reader::new(self.payload.slice(offset..));
        self.base = offset;
    }

    /// Runs one `Reader` function, with its error's offset counted from the payload.
    fn read<T>(
        &mut self,
        read: impl FnOnce(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<T, PeerDecodeError> {
        let base = self.base;
        read(&mut self.reader).map_err(|error| PeerDecodeError::Field(shifted(error, base)))
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PeerDecodeError> {
        self.read(|reader| reader.u8(what))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, PeerDecodeError> {
        // `Reader` has no u16: check both bytes are there first, so a cut names the
        // field's start.
        let offset = self.offset();
        if self.payload.len() - offset < 2 {
            return Err(PeerDecodeError::Field(DecodeError::Truncated {
                what,
                offset,
            }));
        }
        Ok(u16::from_le_bytes([self.u8(what)?, self.u8(what)?]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PeerDecodeError> {
        self.read(|reader| reader.u32(what))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PeerDecodeError> {
        self.read(|reader| reader.u64(what))
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, PeerDecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(invalid(what, u64::from(value))),
        }
    }

    /// `count` as a length to reserve, if it is at most `cap` and the bytes left could
    /// hold that many items of at least `item_size_bytes_min` each.
    fn count(
        &mut self,
        what: &'static str,
        count: u64,
        item_size_bytes_min: usize,
        cap: usize,
    ) -> Result<usize, PeerDecodeError> {
        assert!(item_size_bytes_min > 0);
        let remaining_bytes = self.payload.len() - self.offset();
        let max = (remaining_bytes / item_size_bytes_min).min(cap);
        match usize::try_from(count) {
            Ok(count) if count <= max => Ok(count),
            _ => Err(PeerDecodeError::Count {
                what,
                count,
                max: max as u64,
            }),
        }
    }

    fn finish(self) -> Result<(), PeerDecodeError> {
        self.reader.finish().map_err(PeerDecodeError::Field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coracle_engine::entry::EntryBody;
    use coracle_engine::membership::MemberStatus;
    use coracle_engine::session::{
        ApplicationError, ClientError, ClientId, QueryConsistency, RequestBody, ResponseBody,
        SessionId,
    };

    /// A seeded xorshift64: the tests need varied bytes, not a random-number crate.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    fn configuration() -> Configuration {
        Configuration {
            index: LogIndex(9),
            term: Term(3),
            time_ms: 1_700_000_000_000,
            members: vec![
                Member::new(ReplicaId(1), MemberType::Active),
                Member {
                    id: ReplicaId(4),
                    member_type: MemberType::Passive,
                    status: MemberStatus::Unavailable,
                    updated_ms: 55,
                },
                Member::new(ReplicaId(u64::MAX), MemberType::Reserve),
            ],
        }
    }

    fn entries_after(prev_index: u64) -> Vec<Entry> {
        let bodies = [
            EntryBody::Initialize,
            EntryBody::Configuration {
                members: configuration().members,
            },
            EntryBody::Command {
                payload: Bytes::from_static(b"set x 1"),
            },
            EntryBody::Command {
                payload: Bytes::new(),
            },
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(position, body)| Entry {
                index: LogIndex(prev_index + position as u64 + 1),
                term: Term(if position == 0 { 2 } else { 3 }),
                timestamp_ms: 1_000 + position as u64,
                body,
            })
            .collect()
    }

    fn append(entries: Vec<Entry>) -> AppendRequest {
        AppendRequest {
            term: Term(3),
            leader: ReplicaId(1),
            prev_index: LogIndex(6),
            prev_term: Term(2),
            entries,
            commit_index: LogIndex(5),
            global_index: LogIndex(4),
            round: 17,
        }
    }

    fn configuration_errors() -> Vec<ConfigurationError> {
        vec![
            ConfigurationError::NotLeader { leader: None },
            ConfigurationError::NotLeader {
                leader: Some(ReplicaId(3)),
            },
            ConfigurationError::NotReady,
            ConfigurationError::ChangeInFlight,
            ConfigurationError::StaleConfiguration,
            ConfigurationError::AlreadyMember,
            ConfigurationError::NotMember,
            ConfigurationError::IllegalMemberType,
            ConfigurationError::TooManyMembers,
            ConfigurationError::NoVoters,
        ]
    }

    fn changes() -> Vec<MembershipChange> {
        vec![
            MembershipChange::Join {
                id: ReplicaId(8),
                member_type: MemberType::Passive,
            },
            MembershipChange::Join {
                id: ReplicaId(8),
                member_type: MemberType::Inactive,
            },
            MembershipChange::Leave { id: ReplicaId(2) },
            MembershipChange::Reconfigure {
                id: ReplicaId(4),
                member_type: MemberType::Active,
                status: MemberStatus::Unavailable,
                configuration_index: LogIndex(9),
                configuration_term: Term(3),
            },
            MembershipChange::Reconfigure {
                id: ReplicaId(4),
                member_type: MemberType::Inactive,
                status: MemberStatus::Available,
                configuration_index: LogIndex(9),
                configuration_term: Term(3),
            },
        ]
    }

    fn raft_messages() -> Vec<Message> {
        let vote = VoteRequest {
            term: Term(4),
            candidate: ReplicaId(2),
            last_index: LogIndex(10),
            last_term: Term(3),
        };
        let mut messages = vec![
            Message::AppendRequest(append(Vec::new())),
            Message::AppendRequest(append(entries_after(6))),
            Message::AppendResponse(AppendResponse {
                term: Term(3),
                success: true,
                match_index: LogIndex(10),
                rejected_index: LogIndex::ZERO,
                hint_index: LogIndex::ZERO,
                hint_term: Term::ZERO,
                round: 17,
            }),
            Message::AppendResponse(AppendResponse {
                term: Term(3),
                success: false,
                match_index: LogIndex::ZERO,
                rejected_index: LogIndex(6),
                hint_index: LogIndex(4),
                hint_term: Term(2),
                round: 0,
            }),
            Message::PollRequest(vote.clone()),
            Message::PollResponse(VoteResponse {
                term: Term(4),
                granted: true,
            }),
            Message::VoteRequest(vote),
            Message::VoteResponse(VoteResponse {
                term: Term(4),
                granted: false,
            }),
            Message::ConfigureRequest(ConfigureRequest {
                term: Term(3),
                leader: ReplicaId(1),
                configuration: configuration(),
                commit_index: LogIndex(9),
            }),
            Message::ConfigureRequest(ConfigureRequest {
                term: Term(1),
                leader: ReplicaId(1),
                configuration: Configuration::default(),
                commit_index: LogIndex::ZERO,
            }),
            Message::ConfigureResponse(ConfigureResponse {
                term: Term(3),
                last_index: LogIndex(9),
            }),
            Message::MembershipResponse(MembershipResponse {
                term: Term(3),
                request_id: 41,
                outcome: Ok(configuration()),
            }),
        ];
        messages.extend(changes().into_iter().map(|change| {
            Message::MembershipRequest(MembershipRequest {
                term: Term(3),
                request_id: 40,
                change,
            })
        }));
        messages.extend(configuration_errors().into_iter().map(|error| {
            Message::MembershipResponse(MembershipResponse {
                term: Term(3),
                request_id: 42,
                outcome: Err(error),
            })
        }));
        messages
    }

    fn request_bodies() -> Vec<RequestBody> {
        let session = SessionId(12);
        vec![
            RequestBody::Connect {
                client: ClientId(u128::MAX - 1),
            },
            RequestBody::Register {
                client: ClientId(7),
                timeout_ms: 5_000,
            },
            RequestBody::KeepAlive {
                session,
                command_sequence: 4,
                event_index: LogIndex(20),
            },
            RequestBody::Unregister { session },
            RequestBody::Command {
                session,
                sequence: 5,
                operation: Bytes::from_static(b"put k v"),
            },
            RequestBody::Query {
                session,
                sequence: 5,
                index: LogIndex(30),
                consistency: QueryConsistency::Causal,
                operation: Bytes::from_static(b"get k"),
            },
            RequestBody::ResetEvents {
                session,
                index: LogIndex(21),
            },
        ]
    }

    fn reply_bodies() -> Vec<Result<ResponseBody, ClientError>> {
        let members = vec![ReplicaId(1), ReplicaId(2)];
        let mut bodies = vec![
            Ok(ResponseBody::Connect {
                leader: None,
                members: members.clone(),
            }),
            Ok(ResponseBody::Register {
                session: SessionId(3),
                timeout_ms: 1,
                leader: Some(ReplicaId(2)),
                members: members.clone(),
            }),
            Ok(ResponseBody::KeepAlive {
                leader: Some(ReplicaId(1)),
                members,
            }),
            Ok(ResponseBody::Unregister),
            Ok(ResponseBody::Command {
                index: LogIndex(9),
                event_index: LogIndex(8),
                output: Ok(Bytes::from_static(b"out")),
            }),
            Ok(ResponseBody::Query {
                index: LogIndex(9),
                event_index: LogIndex(8),
                output: Err(ApplicationError {
                    message: "no such key".into(),
                }),
            }),
        ];
        let errors = [
            ClientError::NoLeader,
            ClientError::Query {
                reason: "lost".into(),
            },
            ClientError::Command { last_sequence: 4 },
            ClientError::Application(ApplicationError {
                message: "bad".into(),
            }),
            ClientError::IllegalMemberState {
                reason: "reserve".into(),
            },
            ClientError::UnknownSession,
            ClientError::Internal {
                reason: "full".into(),
            },
            ClientError::Configuration {
                reason: "stale".into(),
            },
            ClientError::ClosedSession,
        ];
        bodies.extend(errors.into_iter().map(Err));
        bodies
    }

    fn messages() -> Vec<PeerMessage> {
        let mut messages: Vec<PeerMessage> =
            raft_messages().into_iter().map(PeerMessage::Raft).collect();
        messages.extend(
            request_bodies()
                .into_iter()
                .enumerate()
                .map(|(id, request)| PeerMessage::Forward {
                    forward_id: u64::MAX - id as u64,
                    request,
                }),
        );
        messages.extend(reply_bodies().into_iter().enumerate().map(|(id, body)| {
            PeerMessage::ForwardReply {
                forward_id: id as u64,
                body,
            }
        }));
        messages
    }

    fn encode(message: &PeerMessage) -> Bytes {
        let mut out = Vec::new();
        encode_peer_message(message, &mut out);
        Bytes::from(out)
    }

    /// What every accepted payload must satisfy: it re-encodes to the same bytes (one
    /// encoding per message) and holds nothing the engine asserts against.
    fn check_accepted(payload: &Bytes, message: &PeerMessage) {
        assert_eq!(&encode(message), payload, "{message:?} is not canonical");
        let PeerMessage::Raft(message) = message else {
            return;
        };
        match message {
            Message::ConfigureRequest(request) => request.configuration.assert_valid(),
            Message::MembershipResponse(MembershipResponse {
                outcome: Ok(configuration),
                ..
            }) => configuration.assert_valid(),
            Message::AppendRequest(request) => {
                for (position, entry) in request.entries.iter().enumerate() {
                    assert_eq!(entry.index.0, request.prev_index.0 + position as u64 + 1);
                    assert!(entry.term <= request.term);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_variant_round_trips() {
        let messages = messages();
        // Every tag is exercised (the raft tags once per message kind, at least).
        let tags: std::collections::BTreeSet<u8> =
            messages.iter().map(|message| encode(message)[0]).collect();
        assert_eq!(tags, (1..=12).collect());
        for message in &messages {
            let payload = encode(message);
            let decoded = decode_peer_message(&payload)
                .unwrap_or_else(|error| panic!("{message:?} did not decode: {error}"));
            // The engine's messages have no PartialEq: Debug shows every field.
            assert_eq!(format!("{decoded:?}"), format!("{message:?}"));
            check_accepted(&payload, &decoded);
        }
    }

    #[test]
    fn every_cut_is_an_error() {
        for message in messages() {
            let payload = encode(&message);
            for cut in 0..payload.len() {
                let result = decode_peer_message(&payload.slice(..cut));
                assert!(result.is_err(), "{message:?} cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        for message in messages() {
            let mut payload = encode(&message).to_vec();
            payload.push(0);
            assert_eq!(
                decode_peer_message(&Bytes::from(payload)).map(|_| ()),
                Err(PeerDecodeError::Field(DecodeError::Trailing { bytes: 1 })),
                "{message:?}"
            );
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        for message in messages() {
            let payload = encode(&message);
            for at in 0..payload.len() {
                for mask in [0x01, 0x80, 0xff] {
                    let mut bytes = payload.to_vec();
                    bytes[at] ^= mask;
                    let flipped = Bytes::from(bytes);
                    if let Ok(decoded) = decode_peer_message(&flipped) {
                        check_accepted(&flipped, &decoded);
                    }
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut xorshift = Xorshift(0x9e37_79b9_7f4a_7c15);
        let valid: Vec<Bytes> = messages().iter().map(encode).collect();
        for _ in 0..50_000 {
            let mut bytes: Vec<u8> = match xorshift.below(3) {
                // Pure noise, mostly behind a known tag so the decoder goes further.
                0 => {
                    let size = xorshift.below(160);
                    let mut bytes: Vec<u8> = (0..size).map(|_| xorshift.byte()).collect();
                    if let Some(tag) = bytes.first_mut() {
                        *tag = u8::try_from(xorshift.below(14)).expect("small");
                    }
                    bytes
                }
                // A valid message with a few bytes overwritten.
                1 => {
                    let index = usize::try_from(xorshift.below(valid.len() as u64)).expect("small");
                    let mut bytes = valid[index].to_vec();
                    for _ in 0..=xorshift.below(4) {
                        let at =
                            usize::try_from(xorshift.below(bytes.len() as u64)).expect("small");
                        bytes[at] = xorshift.byte();
                    }
                    bytes
                }
                // A valid message cut and followed by noise.
                _ => {
                    let index = usize::try_from(xorshift.below(valid.len() as u64)).expect("small");
                    let mut bytes = valid[index].to_vec();
                    let cut =
                        usize::try_from(xorshift.below(bytes.len() as u64 + 1)).expect("small");
                    bytes.truncate(cut);
                    bytes.extend((0..xorshift.below(40)).map(|_| xorshift.byte()));
                    bytes
                }
            };
            bytes.shrink_to_fit();
            let payload = Bytes::from(bytes);
            if let Ok(decoded) = decode_peer_message(&payload) {
                check_accepted(&payload, &decoded);
            }
        }
    }

    /// The fixed fields of an append request, up to (not including) the entry count.
    fn append_header(request: &AppendRequest) -> Vec<u8> {
        let mut out = Vec::new();
        encode_peer_message(
            &PeerMessage::Raft(Message::AppendRequest(AppendRequest {
                entries: Vec::new(),
                ..request.clone()
            })),
            &mut out,
        );
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn oversized_counts_are_refused_before_anything_is_reserved() {
        // 2^32 - 1 entries with nothing behind them. Reserving room for them would ask
        // for hundreds of GiB and abort the test, so reaching the assert shows it did not.
        let mut payload = append_header(&append(Vec::new()));
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_peer_message(&Bytes::from(payload)).map(|_| ()),
            Err(PeerDecodeError::Count {
                what: "entry",
                count: u64::from(u32::MAX),
                max: 0,
            })
        );

        // A configuration claiming more members than its bytes hold.
        let message = PeerMessage::Raft(Message::ConfigureRequest(ConfigureRequest {
            term: Term(1),
            leader: ReplicaId(1),
            configuration: Configuration::default(),
            commit_index: LogIndex::ZERO,
        }));
        let mut payload = encode(&message).to_vec();
        let count_at = payload.len() - 2;
        payload[count_at..].copy_from_slice(&u16::MAX.to_le_bytes());
        payload.extend_from_slice(&[0; MEMBER_SIZE_BYTES * 2]);
        assert_eq!(
            decode_peer_message(&Bytes::from(payload.clone())).map(|_| ()),
            Err(PeerDecodeError::Count {
                what: "member",
                count: u64::from(u16::MAX),
                max: 2,
            })
        );

        // One member over the engine's cap, with the bytes for all of them present.
        let count = u16::try_from(MEMBERS_MAX + 1).expect("small");
        payload.truncate(count_at);
        payload.extend_from_slice(&count.to_le_bytes());
        for id in 0..=MEMBERS_MAX as u64 {
            payload.extend_from_slice(&id.to_le_bytes());
            payload.extend_from_slice(&[3, 1]);
            payload.extend_from_slice(&0u64.to_le_bytes());
        }
        assert_eq!(
            decode_peer_message(&Bytes::from(payload)).map(|_| ()),
            Err(PeerDecodeError::Count {
                what: "member",
                count: u64::from(count),
                max: MEMBERS_MAX as u64,
            })
        );
    }

    #[test]
    fn command_payloads_are_slices_of_the_input() {
        let payload = encode(&PeerMessage::Raft(Message::AppendRequest(append(
            entries_after(6),
        ))));
        let Ok(PeerMessage::Raft(Message::AppendRequest(request))) = decode_peer_message(&payload)
        else {
            panic!("an append request")
        };
        let inside = |bytes: &Bytes| {
            let start = payload.as_ptr() as usize;
            let at = bytes.as_ptr() as usize;
            at >= start && at + bytes.len() <= start + payload.len()
        };
        let EntryBody::Command { payload: command } = &request.entries[2].body else {
            panic!("entry 2 is a command")
        };
        assert_eq!(command.as_ref(), b"set x 1");
        assert!(inside(command), "the command shares the input's buffer");

        // A forwarded operation too.
        let payload = encode(&messages_forwarding_a_command());
        let Ok(PeerMessage::Forward {
            request: RequestBody::Command { operation, .. },
            ..
        }) = decode_peer_message(&payload)
        else {
            panic!("a forwarded command")
        };
        let start = payload.as_ptr() as usize;
        let at = operation.as_ptr() as usize;
        assert!(at >= start && at + operation.len() <= start + payload.len());
    }

    fn messages_forwarding_a_command() -> PeerMessage {
        PeerMessage::Forward {
            forward_id: 1,
            request: request_bodies().swap_remove(4),
        }
    }

    #[test]
    fn a_forward_is_the_client_request_layout() {
        // One layout for a request, whether a client or a server sends it: the bytes
        // after the tag are the client's own encoding, the forward id as request id.
        for (id, body) in request_bodies().into_iter().enumerate() {
            let request = ClientRequest {
                request_id: id as u64,
                body: body.clone(),
            };
            let payload = encode(&PeerMessage::Forward {
                forward_id: id as u64,
                request: body,
            });
            assert_eq!(payload[0], TAG_FORWARD);
            assert_eq!(payload.slice(1..), encode_request(&request));
        }
    }

    /// An append whose entries are written as given, for entries a sender would never
    /// produce (encoding asserts they are consecutive).
    fn append_payload(request: &AppendRequest, entries: &[Entry]) -> Bytes {
        let mut payload = append_header(request);
        let count = u32::try_from(entries.len()).expect("small");
        payload.extend_from_slice(&count.to_le_bytes());
        for entry in entries {
            encode_entry(entry, &mut payload);
        }
        Bytes::from(payload)
    }

    #[test]
    fn entries_out_of_place_are_errors() {
        let request = append(Vec::new()); // prev_index 6, prev_term 2, term 3.
        let decode =
            |entries: &[Entry]| decode_peer_message(&append_payload(&request, entries)).map(|_| ());
        assert_eq!(decode(&entries_after(6)), Ok(()));

        let mut entries = entries_after(7); // The first one is 8, not 7.
        assert_eq!(
            decode(&entries),
            Err(PeerDecodeError::EntryIndex {
                position: 0,
                prev_index: LogIndex(6),
                found: LogIndex(8),
            })
        );
        entries = entries_after(6);
        entries[2].index = LogIndex(11); // A gap after 8.
        assert_eq!(
            decode(&entries),
            Err(PeerDecodeError::EntryIndex {
                position: 2,
                prev_index: LogIndex(6),
                found: LogIndex(11),
            })
        );
        entries = entries_after(6);
        entries[0].term = Term(1); // Below prev_term.
        assert!(matches!(
            decode(&entries),
            Err(PeerDecodeError::EntryTerm { position: 0, .. })
        ));
        entries = entries_after(6);
        entries[2].term = Term(2); // Below the entry before it.
        assert!(matches!(
            decode(&entries),
            Err(PeerDecodeError::EntryTerm { position: 2, .. })
        ));
        entries = entries_after(6);
        entries[3].term = Term(4); // Above the sender's term.
        assert_eq!(
            decode(&entries),
            Err(PeerDecodeError::EntryTerm {
                position: 3,
                found: Term(4),
                min: Term(3),
                max: Term(3),
            })
        );

        // prev_index at the end of the index space: no entry can follow it.
        let last = AppendRequest {
            prev_index: LogIndex(u64::MAX),
            ..append(Vec::new())
        };
        let mut entry = entries_after(6).swap_remove(2);
        entry.index = LogIndex(u64::MAX);
        assert!(matches!(
            decode_peer_message(&append_payload(&last, &[entry])),
            Err(PeerDecodeError::EntryIndex { position: 0, .. })
        ));
    }

    #[test]
    fn a_corrupt_entry_is_named_with_its_position_and_offset() {
        let entries = entries_after(6);
        let mut payload = append_payload(&append(Vec::new()), &entries).to_vec();
        let first_size = coracle_engine::entry_codec::encoded_size_bytes(&entries[0]);
        let second_at = append_header(&append(Vec::new())).len() + 4 + first_size;
        payload[second_at + 20] ^= 1; // Inside the second entry's body.
        assert!(matches!(
            decode_peer_message(&Bytes::from(payload)),
            Err(PeerDecodeError::Entry {
                position: 1,
                offset,
                error: EntryDecodeError::Checksum { .. },
            }) if offset == second_at
        ));
    }

    #[test]
    fn invalid_configurations_and_unknown_tags_are_errors() {
        let message = PeerMessage::Raft(Message::ConfigureRequest(ConfigureRequest {
            term: Term(3),
            leader: ReplicaId(1),
            configuration: configuration(),
            commit_index: LogIndex(9),
        }));
        let payload = encode(&message).to_vec();
        // Members start after tag, term, leader, commit index, index, term, time, count.
        let members_at = 1 + 8 * 6 + 2;
        let member = |position: usize| members_at + position * MEMBER_SIZE_BYTES;
        let with = |at: usize, bytes: &[u8]| {
            let mut changed = payload.clone();
            changed[at..at + bytes.len()].copy_from_slice(bytes);
            decode_peer_message(&Bytes::from(changed)).map(|_| ())
        };
        let invalid =
            |what, value| Err(PeerDecodeError::Field(DecodeError::Invalid { what, value }));
        // The second member's id equal to the first's, then below it.
        let duplicate = with(member(1), &1u64.to_le_bytes());
        assert_eq!(
            duplicate,
            invalid("member id (not above the one before)", 1)
        );
        assert_eq!(
            with(member(1), &0u64.to_le_bytes()),
            invalid("member id (not above the one before)", 0)
        );
        assert_eq!(with(member(0) + 8, &[0]), invalid("member type", 0)); // INACTIVE.
        assert_eq!(with(member(0) + 8, &[4]), invalid("member type", 4));
        assert_eq!(with(member(0) + 9, &[0]), invalid("member status", 0));
        assert_eq!(with(member(0) + 9, &[3]), invalid("member status", 3));

        assert_eq!(
            decode_peer_message(&Bytes::from_static(&[0])).map(|_| ()),
            invalid("message tag", 0)
        );
        assert_eq!(
            decode_peer_message(&Bytes::from_static(&[13])).map(|_| ()),
            invalid("message tag", 13)
        );
        assert!(matches!(
            decode_peer_message(&Bytes::new()),
            Err(PeerDecodeError::Field(DecodeError::Truncated {
                offset: 0,
                ..
            }))
        ));
        // Every nested tag: replace it with one past the last known value.
        let cases: [(PeerMessage, usize, u8, &str); 5] = [
            (raft(&raft_messages()[2]), 9, 2, "success"),
            (raft(&raft_messages()[5]), 9, 2, "granted"),
            (raft(&raft_messages()[12]), 17, 4, "change tag"),
            (raft(&raft_messages()[11]), 17, 2, "outcome tag"),
            (raft(&raft_messages()[17]), 18, 10, "refusal code"),
        ];
        for (message, at, value, what) in cases {
            let mut bytes = encode(&message).to_vec();
            bytes[at] = value;
            assert_eq!(
                decode_peer_message(&Bytes::from(bytes)).map(|_| ()),
                invalid(what, u64::from(value)),
                "{message:?}"
            );
        }
    }

    fn raft(message: &Message) -> PeerMessage {
        PeerMessage::Raft(message.clone())
    }

    #[test]
    fn errors_name_the_offset_inside_a_forward() {
        let payload = encode(&messages_forwarding_a_command());
        // Cut inside the operation: the offset counts from the payload, not the request.
        let cut = payload.len() - 2;
        let Err(PeerDecodeError::Field(DecodeError::Truncated { what, offset })) =
            decode_peer_message(&payload.slice(..cut))
        else {
            panic!("a truncation")
        };
        assert_eq!(what, "operation");
        assert_eq!(offset, 1 + 8 + 1 + 8 + 8 + 4);
        let text = PeerDecodeError::Field(DecodeError::Truncated { what, offset }).to_string();
        assert!(text.contains("operation") && text.contains(&offset.to_string()));
    }
}
