//! [`KvMachine`]: the map, the watches, their handlers and the snapshot format.
//!
//! # Snapshot format, version 1
//!
//! All integers little-endian; "bytes" is a u32 length followed by that many bytes.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "CKVS"
//! 4       4     version (1)
//! 8       8     body size in bytes: exactly what follows the header
//! 16      4     CRC32C of the body
//! 20      ...   body:
//!                 u64 key count, then per key, strictly ascending: key bytes, value bytes
//!                 u64 watching-session count, then per session, strictly ascending ids:
//!                   u64 session id, u32 prefix count (1..=256),
//!                   prefixes as bytes, strictly ascending
//! ```
//!
//! [`StateMachine::install`] checks the header, the size, the checksum, every limit and
//! the ordering (so a duplicate key is refused), and replaces the state only if all of it
//! holds; a refused snapshot leaves the machine as it was.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::kv::operations::{
    check_key, check_value, CompareAndSet, Delete, Get, KvEvent, Len, Put, Unwatch, Watch,
    KV_EVENT_NAME, WATCHES_PER_SESSION_MAX,
};
use crate::session::reader::{DecodeError, Reader};
use crate::session::{ApplicationError, SessionId};
use crate::state_machine::{Commit, Context, Operations, QueryContext, StateMachine};
use crate::types::LogIndex;

/// The first four bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"CKVS";
/// The snapshot format this code writes, and the only one it reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Magic, version, body size and checksum.
pub const SNAPSHOT_HEADER_SIZE: usize = 4 + 4 + 8 + 4;

/// The replicated key-value map with per-session prefix watches.
///
/// Keys and values are stored in buffers of their own, copied out of the operation: an
/// operation's bytes are slices of a log entry or a receive buffer, and keeping a slice
/// would keep the whole buffer alive for as long as the key lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvMachine {
    values: BTreeMap<Bytes, Bytes>,
    /// Each watching session's prefixes; a session with none has no entry.
    watches: BTreeMap<SessionId, BTreeSet<Bytes>>,
}

impl KvMachine {
    /// The value of `key`, if any.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.values.get(key)
    }

    /// How many keys the map holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if the map holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The prefixes `session` watches, ascending.
    pub fn watched_prefixes(&self, session: SessionId) -> impl Iterator<Item = &Bytes> {
        self.watches.get(&session).into_iter().flatten()
    }

    /// How many (session, prefix) watches exist in all.
    #[must_use]
    pub fn watch_count(&self) -> usize {
        self.watches.values().map(BTreeSet::len).sum()
    }

    fn put(
        &mut self,
        commit: Commit<Put>,
        context: &mut Context<'_, KvMachine>,
    ) -> Result<Option<Bytes>, ApplicationError> {
        commit.operation().check()?;
        let index = commit.index();
        let Put { key, value } = commit.into_operation();
        let previous = self.write(&key, Bytes::copy_from_slice(&value));
        self.notify(&key, Some(&value), index, context);
        Ok(previous)
    }

    fn delete(
        &mut self,
        commit: Commit<Delete>,
        context: &mut Context<'_, KvMachine>,
    ) -> Result<Option<Bytes>, ApplicationError> {
        commit.operation().check()?;
        let index = commit.index();
        let Delete { key } = commit.into_operation();
        let previous = self.values.remove(key.as_ref());
        if previous.is_some() {
            // Deleting an absent key changes nothing, so no one is told.
            self.notify(&key, None, index, context);
        }
        Ok(previous)
    }

    fn compare_and_set(
        &mut self,
        commit: Commit<CompareAndSet>,
        context: &mut Context<'_, KvMachine>,
    ) -> Result<bool, ApplicationError> {
        commit.operation().check()?;
        let index = commit.index();
        let CompareAndSet { key, expected, new } = commit.into_operation();
        let current = self.values.get(key.as_ref()).map(|value| &value[..]);
        if current != expected.as_deref() {
            return Ok(false);
        }
        match new {
            Some(value) => {
                self.write(&key, Bytes::copy_from_slice(&value));
                self.notify(&key, Some(&value), index, context);
            }
            None => {
                if self.values.remove(key.as_ref()).is_some() {
                    self.notify(&key, None, index, context);
                }
            }
        }
        Ok(true)
    }

    fn watch(
        &mut self,
        commit: Commit<Watch>,
        context: &mut Context<'_, KvMachine>,
    ) -> Result<bool, ApplicationError> {
        commit.operation().check()?;
        let session = commit.session();
        assert!(
            context.sessions().get(session).is_some(),
            "a command runs only for an open session"
        );
        let prefix = &commit.operation().prefix;
        let watched = self.watches.get(&session);
        if watched.is_some_and(|prefixes| prefixes.contains(prefix)) {
            return Ok(false);
        }
        let count = watched.map_or(0, BTreeSet::len);
        if count >= WATCHES_PER_SESSION_MAX {
            return Err(ApplicationError {
                message: format!(
                    "kv: {session} already watches {count} prefixes, the most one session may"
                ),
            });
        }
        let inserted = self
            .watches
            .entry(session)
            .or_default()
            .insert(Bytes::copy_from_slice(prefix));
        assert!(inserted);
        Ok(true)
    }

    fn unwatch(&mut self, commit: Commit<Unwatch>) -> Result<bool, ApplicationError> {
        commit.operation().check()?;
        let session = commit.session();
        let Some(prefixes) = self.watches.get_mut(&session) else {
            return Ok(false);
        };
        assert!(
            !prefixes.is_empty(),
            "a session without watches has no entry"
        );
        let removed = prefixes.remove(&commit.operation().prefix);
        if prefixes.is_empty() {
            self.watches.remove(&session);
        }
        Ok(removed)
    }

    /// Sets `key` (copied if it is new) to `value`; returns the previous value.
    fn write(&mut self, key: &Bytes, value: Bytes) -> Option<Bytes> {
        assert!(key.len() <= crate::kv::KEY_SIZE_MAX);
        assert!(value.len() <= crate::kv::VALUE_SIZE_MAX);
        match self.values.get_mut(key.as_ref()) {
            Some(current) => Some(std::mem::replace(current, value)),
            None => {
                self.values.insert(Bytes::copy_from_slice(key), value);
                None
            }
        }
    }

    /// Publishes one event to each session that watches a prefix of `key`.
    fn notify(
        &self,
        key: &Bytes,
        value: Option<&Bytes>,
        index: LogIndex,
        context: &mut Context<'_, KvMachine>,
    ) {
        let mut payload: Option<Bytes> = None;
        for (&session, prefixes) in &self.watches {
            if !prefixes.iter().any(|prefix| key.starts_with(prefix)) {
                continue;
            }
            let payload = payload
                .get_or_insert_with(|| {
                    KvEvent {
                        key: key.clone(),
                        value: value.cloned(),
                        index,
                    }
                    .encode()
                })
                .clone();
            // Watches die with their session (`on_close`), so the session is open. Only a
            // snapshot installed without its sessions could name one that is not; such a
            // watch is skipped alike on every server.
            let _ = context.publish(session, KV_EVENT_NAME, payload);
        }
    }

    /// The snapshot's body (see the module documentation).
    fn encode_body(&self) -> Vec<u8> {
        let size_estimate: usize = self
            .values
            .iter()
            .map(|(key, value)| 8 + key.len() + value.len())
            .sum();
        let mut body = Vec::with_capacity(16 + size_estimate);
        body.extend_from_slice(&(self.values.len() as u64).to_le_bytes());
        for (key, value) in &self.values {
            crate::session::reader::put_bytes(&mut body, key);
            crate::session::reader::put_bytes(&mut body, value);
        }
        body.extend_from_slice(&(self.watches.len() as u64).to_le_bytes());
        for (session, prefixes) in &self.watches {
            assert!(!prefixes.is_empty());
            assert!(prefixes.len() <= WATCHES_PER_SESSION_MAX);
            body.extend_from_slice(&session.0.to_le_bytes());
            let count = u32::try_from(prefixes.len()).expect("at most 256 prefixes");
            body.extend_from_slice(&count.to_le_bytes());
            for prefix in prefixes {
                crate::session::reader::put_bytes(&mut body, prefix);
            }
        }
        body
    }

    /// Reads a snapshot's body into a new machine, checking every limit and the order.
    fn decode_body(body: Bytes) -> Result<KvMachine, SnapshotError> {
        let mut reader = Reader::new(body);
        let mut machine = KvMachine::default();
        let key_count = reader.u64("key count")?;
        let mut previous: Option<Bytes> = None;
        for _ in 0..key_count {
            let key = reader.bytes("key")?;
            let value = reader.bytes("value")?;
            check_key(&key).map_err(SnapshotError::Limit)?;
            check_value(&value).map_err(SnapshotError::Limit)?;
            if previous.as_ref().is_some_and(|previous| *previous >= key) {
                return Err(SnapshotError::Order("keys"));
            }
            previous = Some(key.clone());
            // Copied, so that the map does not keep the whole snapshot alive.
            machine
                .values
                .insert(Bytes::copy_from_slice(&key), Bytes::copy_from_slice(&value));
        }
        let session_count = reader.u64("watching session count")?;
        let mut previous_session = SessionId(0);
        for _ in 0..session_count {
            let session = SessionId(reader.u64("session id")?);
            if session <= previous_session {
                return Err(SnapshotError::Order("watching sessions"));
            }
            previous_session = session;
            let count = reader.u32("prefix count")? as usize;
            if count == 0 || count > WATCHES_PER_SESSION_MAX {
                return Err(SnapshotError::PrefixCount(count));
            }
            let mut prefixes = BTreeSet::new();
            for _ in 0..count {
                let prefix = reader.bytes("prefix")?;
                check_key(&prefix).map_err(SnapshotError::Limit)?;
                if prefixes.last().is_some_and(|last: &Bytes| *last >= prefix) {
                    return Err(SnapshotError::Order("prefixes"));
                }
                prefixes.insert(Bytes::copy_from_slice(&prefix));
            }
            machine.watches.insert(session, prefixes);
        }
        reader.finish()?;
        assert_eq!(machine.values.len() as u64, key_count);
        assert_eq!(machine.watches.len() as u64, session_count);
        Ok(machine)
    }
}

/// Why a snapshot was refused.
#[derive(Debug)]
enum SnapshotError {
    /// Shorter than the header.
    Header(usize),
    /// Not a key-value snapshot.
    Magic([u8; 4]),
    /// A format this code does not read.
    Version(u32),
    /// The body is not the size the header says.
    Size { header: u64, actual: u64 },
    /// The body does not match its checksum.
    Checksum { header: u32, actual: u32 },
    /// The body is not a body.
    Decode(DecodeError),
    /// A key, value or prefix over its limit.
    Limit(ApplicationError),
    /// Entries out of order, or repeated.
    Order(&'static str),
    /// A session with no prefixes, or too many.
    PrefixCount(usize),
}

impl From<DecodeError> for SnapshotError {
    fn from(error: DecodeError) -> Self {
        SnapshotError::Decode(error)
    }
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Header(size) => {
                write!(
                    f,
                    "{size} bytes, shorter than the {SNAPSHOT_HEADER_SIZE}-byte header"
                )
            }
            SnapshotError::Magic(magic) => write!(f, "magic {magic:?} is not {SNAPSHOT_MAGIC:?}"),
            SnapshotError::Version(version) => {
                write!(f, "version {version}; this code reads {SNAPSHOT_VERSION}")
            }
            SnapshotError::Size { header, actual } => {
                write!(f, "the header says {header} body bytes, {actual} follow")
            }
            SnapshotError::Checksum { header, actual } => {
                write!(
                    f,
                    "body checksum {actual:#010x}, header says {header:#010x}"
                )
            }
            SnapshotError::Decode(error) => write!(f, "{error}"),
            SnapshotError::Limit(error) => write!(f, "{}", error.message),
            SnapshotError::Order(what) => write!(f, "{what} not strictly ascending"),
            SnapshotError::PrefixCount(count) => {
                write!(f, "a session with {count} watched prefixes")
            }
        }
    }
}

/// Splits a snapshot into its checked body.
fn open_snapshot(snapshot: &Bytes) -> Result<Bytes, SnapshotError> {
    if snapshot.len() < SNAPSHOT_HEADER_SIZE {
        return Err(SnapshotError::Header(snapshot.len()));
    }
    let mut reader = Reader::new(snapshot.slice(..SNAPSHOT_HEADER_SIZE));
    let mut magic = [0u8; 4];
    for byte in &mut magic {
        *byte = reader.u8("magic")?;
    }
    if magic != SNAPSHOT_MAGIC {
        return Err(SnapshotError::Magic(magic));
    }
    let version = reader.u32("version")?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Version(version));
    }
    let size = reader.u64("body size")?;
    let checksum = reader.u32("body checksum")?;
    reader.finish()?;
    let body = snapshot.slice(SNAPSHOT_HEADER_SIZE..);
    let actual = body.len() as u64;
    if size != actual {
        return Err(SnapshotError::Size {
            header: size,
            actual,
        });
    }
    let actual = crc32c::crc32c(&body);
    if checksum != actual {
        return Err(SnapshotError::Checksum {
            header: checksum,
            actual,
        });
    }
    Ok(body)
}

/// A snapshot of `body`: the header, then the body (see the module documentation).
pub(super) fn seal_snapshot(body: &[u8]) -> Bytes {
    let mut snapshot = Vec::with_capacity(SNAPSHOT_HEADER_SIZE + body.len());
    snapshot.extend_from_slice(&SNAPSHOT_MAGIC);
    snapshot.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    snapshot.extend_from_slice(&(body.len() as u64).to_le_bytes());
    snapshot.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    assert_eq!(snapshot.len(), SNAPSHOT_HEADER_SIZE);
    snapshot.extend_from_slice(body);
    Bytes::from(snapshot)
}

impl StateMachine for KvMachine {
    fn operations(operations: &mut Operations<Self>) {
        operations
            .command(|kv: &mut KvMachine, commit: Commit<Put>, context| kv.put(commit, context))
            .command(|kv: &mut KvMachine, commit: Commit<Delete>, context| {
                kv.delete(commit, context)
            })
            .command(
                |kv: &mut KvMachine, commit: Commit<CompareAndSet>, context| {
                    kv.compare_and_set(commit, context)
                },
            )
            .command(|kv: &mut KvMachine, commit: Commit<Watch>, context| kv.watch(commit, context))
            .command(|kv: &mut KvMachine, commit: Commit<Unwatch>, _context| kv.unwatch(commit))
            .query(
                |kv: &KvMachine, commit: Commit<Get>, _context: &QueryContext<'_>| {
                    commit.operation().check()?;
                    Ok(kv.values.get(commit.operation().key.as_ref()).cloned())
                },
            )
            .query(
                |kv: &KvMachine, _commit: Commit<Len>, _context: &QueryContext<'_>| {
                    Ok(kv.values.len() as u64)
                },
            );
    }

    fn on_close(&mut self, session: SessionId, _context: &mut Context<'_, Self>) {
        self.watches.remove(&session);
        assert!(!self.watches.contains_key(&session));
    }

    fn snapshot(&self) -> Option<Bytes> {
        Some(seal_snapshot(&self.encode_body()))
    }

    fn install(&mut self, snapshot: &Bytes) -> Result<(), ApplicationError> {
        let installed = open_snapshot(snapshot)
            .and_then(KvMachine::decode_body)
            .map_err(|error| ApplicationError {
                message: format!("kv: snapshot refused: {error}"),
            })?;
        *self = installed;
        Ok(())
    }
}
