//! The built-in replicated key-value state machine: what the `coracle` command line, the
//! load generator and the real-process tests run, written only on the public
//! state-machine API (`crate::state_machine`), as a user's machine would be.
//!
//! [`KvMachine`] maps byte keys (at most [`KEY_SIZE_MAX`], 64 KiB) to byte values (at most
//! [`VALUE_SIZE_MAX`], 1 MiB). A longer key or value is an `ApplicationError` for that
//! one operation, never a panic. A session may watch key prefixes; each change to a
//! watched key is published to the session as one event named [`KV_EVENT_NAME`] whose
//! payload is a [`KvEvent`]. Watches die with their session. The whole state (map and
//! watches) snapshots to a versioned, checksummed byte format (see [`kv_machine`]).
//!
//! # Operations and their wire ids
//!
//! An operation travels as its id (u32 LE) then its encoding; the ids are stable.
//!
//! | id  | kind    | operation                              | output          |
//! |-----|---------|----------------------------------------|-----------------|
//! | 100 | command | [`Put`] `{ key, value }`               | `Option<Bytes>`: the previous value |
//! | 101 | command | [`Delete`] `{ key }`                   | `Option<Bytes>`: the previous value |
//! | 102 | command | [`CompareAndSet`] `{ key, expected, new }` | `bool`: matched and applied |
//! | 103 | command | [`Watch`] `{ prefix }`                 | `bool`: newly watched |
//! | 104 | command | [`Unwatch`] `{ prefix }`               | `bool`: was watched |
//! | 105 | query   | [`Get`] `{ key }`                      | `Option<Bytes>` |
//! | 106 | query   | [`Len`]                                | `u64`: the number of keys |
//!
//! # Events
//!
//! Every put, every delete that removed a value, and every compare-and-set that matched
//! and changed something publishes one event to each session watching a prefix of the
//! key (the empty prefix matches every key), however many of its prefixes match. A
//! delete of an absent key, and a compare-and-set that did not match, publish nothing. A
//! session is told only of changes applied after its `Watch`.
//!
//! # A client
//!
//! ```
//! use bytes::Bytes;
//! use coracle_engine::kv::{KvEvent, Put};
//! use coracle_engine::state_machine::{decode_value, encode_command, encode_value, Command};
//!
//! let put = Put { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"v") };
//! put.check().expect("within the limits");
//! let operation: Bytes = encode_command(&put); // what the client submits
//! # let output = encode_value(&Some(Bytes::from_static(b"old")));
//! // `output`: the bytes of a successful response.
//! let previous = decode_value::<<Put as Command>::Output>(&output).expect("an Option<Bytes>");
//! assert_eq!(previous, Some(Bytes::from_static(b"old")));
//! # let index = coracle_engine::LogIndex(3);
//! # let payload = KvEvent { key: put.key, value: None, index }.encode();
//! // `payload`: a session event named `KV_EVENT_NAME`.
//! let event = KvEvent::decode(&payload).expect("a kv event");
//! assert_eq!(event.value, None);
//! ```

pub mod kv_machine;
pub mod operations;

pub use kv_machine::{KvMachine, SNAPSHOT_HEADER_SIZE, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use operations::{
    check_key, check_value, CompareAndSet, Delete, Get, KvEvent, Len, Put, Unwatch, Watch,
    COMPARE_AND_SET_ID, DELETE_ID, GET_ID, KEY_SIZE_MAX, KV_EVENT_NAME, LEN_ID, PUT_ID, UNWATCH_ID,
    VALUE_SIZE_MAX, WATCHES_PER_SESSION_MAX, WATCH_ID,
};

#[cfg(test)]
mod tests;
