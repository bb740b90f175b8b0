//! The operations of the key-value machine, their wire ids and codecs, and the event a
//! watcher receives.
//!
//! Every field is written with the engine's [`Codec`]s: `Bytes` as a u32 LE length and
//! the bytes, `Option` as a tag byte (0 none, 1 some) and the value, integers little-endian.
//! Operations are plain structs with public fields; [`encode_command`] and
//! [`encode_query`] put the id in front.
//!
//! Sizes are checked where the operation is applied, not where it is decoded, so that an
//! oversized key is an [`ApplicationError`] that names the limit rather than a decoding
//! failure. A client may call `check` first to fail before it submits anything.
//!
//! [`encode_command`]: crate::state_machine::encode_command
//! [`encode_query`]: crate::state_machine::encode_query

use bytes::Bytes;

use crate::session::reader::{DecodeError, Reader};
use crate::session::ApplicationError;
use crate::state_machine::{Codec, Command, Query};
use crate::types::LogIndex;

/// The longest key, and the longest watch prefix, in bytes (64 KiB).
pub const KEY_SIZE_MAX: usize = 64 * 1024;
/// The longest value in bytes (1 MiB).
pub const VALUE_SIZE_MAX: usize = 1024 * 1024;
/// How many prefixes one session may watch at once. Every write compares its key with
/// every watched prefix, so the count is bounded.
pub const WATCHES_PER_SESSION_MAX: usize = 256;
/// The name of every session event the machine publishes; its payload is a [`KvEvent`].
pub const KV_EVENT_NAME: &str = "kv";

/// Wire id of [`Put`].
pub const PUT_ID: u32 = 100;
/// Wire id of [`Delete`].
pub const DELETE_ID: u32 = 101;
/// Wire id of [`CompareAndSet`].
pub const COMPARE_AND_SET_ID: u32 = 102;
/// Wire id of [`Watch`].
pub const WATCH_ID: u32 = 103;
/// Wire id of [`Unwatch`].
pub const UNWATCH_ID: u32 = 104;
/// Wire id of [`Get`] (a query).
pub const GET_ID: u32 = 105;
/// Wire id of [`Len`] (a query).
pub const LEN_ID: u32 = 106;

// Commands and queries have separate id spaces in the engine; these are kept distinct
// across both anyway, so that an operation sent as the wrong kind fails as unknown.
const _: () = assert!(PUT_ID < DELETE_ID && DELETE_ID < COMPARE_AND_SET_ID);
const _: () = assert!(COMPARE_AND_SET_ID < WATCH_ID && WATCH_ID < UNWATCH_ID);
const _: () = assert!(UNWATCH_ID < GET_ID && GET_ID < LEN_ID);
// Every size fits the u32 length prefix of the codec.
const _: () = assert!(KEY_SIZE_MAX < VALUE_SIZE_MAX);
const _: () = assert!(VALUE_SIZE_MAX <= u32::MAX as usize);

/// Refuses a key (or a watch prefix) longer than [`KEY_SIZE_MAX`].
///
/// # Errors
/// The key is too long.
pub fn check_key(key: &[u8]) -> Result<(), ApplicationError> {
    if key.len() > KEY_SIZE_MAX {
        return Err(ApplicationError {
            message: format!(
                "kv: a key of {} bytes is longer than the limit of {KEY_SIZE_MAX}",
                key.len()
            ),
        });
    }
    Ok(())
}

/// Refuses a value longer than [`VALUE_SIZE_MAX`].
///
/// # Errors
/// The value is too long.
pub fn check_value(value: &[u8]) -> Result<(), ApplicationError> {
    if value.len() > VALUE_SIZE_MAX {
        return Err(ApplicationError {
            message: format!(
                "kv: a value of {} bytes is longer than the limit of {VALUE_SIZE_MAX}",
                value.len()
            ),
        });
    }
    Ok(())
}

fn check_optional_value(value: Option<&Bytes>) -> Result<(), ApplicationError> {
    value.map_or(Ok(()), |value| check_value(value))
}

/// Command 100: sets `key` to `value`. Output: the previous value, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    /// At most [`KEY_SIZE_MAX`] bytes.
    pub key: Bytes,
    /// At most [`VALUE_SIZE_MAX`] bytes.
    pub value: Bytes,
}

impl Put {
    /// The size checks the machine applies.
    ///
    /// # Errors
    /// The key or the value is too long.
    pub fn check(&self) -> Result<(), ApplicationError> {
        check_key(&self.key)?;
        check_value(&self.value)
    }
}

impl Codec for Put {
    fn encode(&self, out: &mut Vec<u8>) {
        self.key.encode(out);
        self.value.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Put {
            key: Bytes::decode(reader)?,
            value: Bytes::decode(reader)?,
        })
    }
}

impl Command for Put {
    const ID: u32 = PUT_ID;
    type Output = Option<Bytes>;
}

/// Command 101: removes `key`. Output: the value it held, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// At most [`KEY_SIZE_MAX`] bytes.
    pub key: Bytes,
}

impl Delete {
    /// The size checks the machine applies.
    ///
    /// # Errors
    /// The key is too long.
    pub fn check(&self) -> Result<(), ApplicationError> {
        check_key(&self.key)
    }
}

impl Codec for Delete {
    fn encode(&self, out: &mut Vec<u8>) {
        self.key.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Delete {
            key: Bytes::decode(reader)?,
        })
    }
}

impl Command for Delete {
    const ID: u32 = DELETE_ID;
    type Output = Option<Bytes>;
}

/// Command 102: if `key` holds `expected` (`None`: is absent), sets it to `new` (`None`:
/// deletes it). Output: whether it matched and was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareAndSet {
    /// At most [`KEY_SIZE_MAX`] bytes.
    pub key: Bytes,
    /// The value the key must hold, or `None` for absent. At most [`VALUE_SIZE_MAX`].
    pub expected: Option<Bytes>,
    /// The value to write, or `None` to delete. At most [`VALUE_SIZE_MAX`].
    pub new: Option<Bytes>,
}

impl CompareAndSet {
    /// The size checks the machine applies.
    ///
    /// # Errors
    /// The key or one of the values is too long.
    pub fn check(&self) -> Result<(), ApplicationError> {
        check_key(&self.key)?;
        check_optional_value(self.expected.as_ref())?;
        check_optional_value(self.new.as_ref())
    }
}

impl Codec for CompareAndSet {
    fn encode(&self, out: &mut Vec<u8>) {
        self.key.encode(out);
        self.expected.encode(out);
        self.new.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(CompareAndSet {
            key: Bytes::decode(reader)?,
            expected: Option::<Bytes>::decode(reader)?,
            new: Option::<Bytes>::decode(reader)?,
        })
    }
}

impl Command for CompareAndSet {
    const ID: u32 = COMPARE_AND_SET_ID;
    type Output = bool;
}

/// Command 103: subscribes the calling session to changes of every key that starts with
/// `prefix` (empty: every key). Output: true if the session did not watch that prefix yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// At most [`KEY_SIZE_MAX`] bytes.
    pub prefix: Bytes,
}

impl Watch {
    /// The size checks the machine applies.
    ///
    /// # Errors
    /// The prefix is too long.
    pub fn check(&self) -> Result<(), ApplicationError> {
        check_key(&self.prefix)
    }
}

impl Codec for Watch {
    fn encode(&self, out: &mut Vec<u8>) {
        self.prefix.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Watch {
            prefix: Bytes::decode(reader)?,
        })
    }
}

impl Command for Watch {
    const ID: u32 = WATCH_ID;
    type Output = bool;
}

/// Command 104: removes the calling session's watch of exactly `prefix`. Output: true if
/// it was watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwatch {
    /// The prefix given to [`Watch`].
    pub prefix: Bytes,
}

impl Unwatch {
    /// The size checks the machine applies.
    ///
    /// # Errors
    /// The prefix is too long.
    pub fn check(&self) -> Result<(), ApplicationError> {
        check_key(&self.prefix)
    }
}

impl Codec for Unwatch {
    fn encode(&self, out: &mut Vec<u8>) {
        self.prefix.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Unwatch {
            prefix: Bytes::decode(reader)?,
        })
    }
}

impl Command for Unwatch {
    const ID: u32 = UNWATCH_ID;
    type Output = bool;
}

/// Query 105: the value of `key`, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Get {
    /// At most [`KEY_SIZE_MAX`] bytes.
    pub key: Bytes,
}

impl Get {
    /// The size checks the machine applies.
    ///
    /// # Errors
    /// The key is too long.
    pub fn check(&self) -> Result<(), ApplicationError> {
        check_key(&self.key)
    }
}

impl Codec for Get {
    fn encode(&self, out: &mut Vec<u8>) {
        self.key.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Get {
            key: Bytes::decode(reader)?,
        })
    }
}

impl Query for Get {
    const ID: u32 = GET_ID;
    type Output = Option<Bytes>;
}

/// Query 106: how many keys the map holds. Its encoding is empty.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Len;

impl Codec for Len {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Len)
    }
}

impl Query for Len {
    const ID: u32 = LEN_ID;
    type Output = u64;
}

/// What a watching session receives, as the payload of a session event named
/// [`KV_EVENT_NAME`], when a key it watches changes.
///
/// Byte format (little-endian): `index` as u64, `key` as a u32 length and the bytes, then
/// `value` as a tag byte (0: deleted, 1: set) followed, when set, by a u32 length and the
/// bytes. Nothing may follow. Use [`KvEvent::encode`] and [`KvEvent::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEvent {
    /// The key that changed.
    pub key: Bytes,
    /// Its new value; `None` if it was deleted.
    pub value: Option<Bytes>,
    /// The log index of the command that made the change, the index its own response
    /// reports. Unique per change. Events arrive in the order the changes were applied,
    /// which is log order except where a session's command waited for a gap in its
    /// sequence to fill.
    pub index: LogIndex,
}

impl KvEvent {
    /// The event's bytes, as published.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(
            8 + 4 + self.key.len() + 1 + 4 + self.value.as_ref().map_or(0, Bytes::len),
        );
        Codec::encode(self, &mut out);
        Bytes::from(out)
    }

    /// Reads an event's payload. Never panics: bytes that are not exactly one event are an
    /// error.
    ///
    /// # Errors
    /// Bytes cut short, an invalid tag, or bytes left over.
    pub fn decode(payload: &Bytes) -> Result<KvEvent, DecodeError> {
        let mut reader = Reader::new(payload.clone());
        let event = <KvEvent as Codec>::decode(&mut reader)?;
        reader.finish()?;
        Ok(event)
    }
}

impl Codec for KvEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        self.index.0.encode(out);
        self.key.encode(out);
        self.value.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let index = LogIndex(reader.u64("kv event index")?);
        let key = reader.bytes("kv event key")?;
        let value = Option::<Bytes>::decode(reader)?;
        Ok(KvEvent { key, value, index })
    }
}
