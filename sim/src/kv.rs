//! The small replicated key-value/register state machine the simulated clients use, with
//! dedupe by (client, request) until real sessions exist.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Keys are small numbers so that operations contend.
pub type Key = u8;

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Read a key.
    Get(Key),
    /// Write a key.
    Put(Key, i64),
    /// Write `new` if the key holds `expected`.
    Cas(Key, i64, i64),
}

impl KvOp {
    /// The key the operation touches.
    #[must_use]
    pub fn key(&self) -> Key {
        match *self {
            KvOp::Get(key) | KvOp::Put(key, _) | KvOp::Cas(key, _, _) => key,
        }
    }
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOutput {
    /// A get's value (`None` if never written).
    Value(Option<i64>),
    /// A put, or a cas that matched.
    Ok,
    /// A cas that did not match.
    Fail,
}

/// A command as logged: who sent it, which of their requests, and the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCommand {
    /// The client (a fresh id after a client gives up on an operation).
    pub client: u64,
    /// The client's request number; retries reuse it.
    pub request: u64,
    /// The operation.
    pub op: KvOp,
}

const COMMAND_SIZE_BYTES: usize = 8 + 8 + 1 + 1 + 8 + 8;

impl KvCommand {
    /// The command as an entry payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut buffer = Vec::with_capacity(COMMAND_SIZE_BYTES);
        buffer.extend_from_slice(&self.client.to_le_bytes());
        buffer.extend_from_slice(&self.request.to_le_bytes());
        let (tag, key, a, b) = match self.op {
            KvOp::Get(key) => (0u8, key, 0, 0),
            KvOp::Put(key, value) => (1, key, value, 0),
            KvOp::Cas(key, expected, new) => (2, key, expected, new),
        };
        buffer.push(tag);
        buffer.push(key);
        buffer.extend_from_slice(&a.to_le_bytes());
        buffer.extend_from_slice(&b.to_le_bytes());
        Bytes::from(buffer)
    }

    /// Decodes a payload written by `encode`.
    ///
    /// # Errors
    /// A payload of the wrong size or with an unknown tag.
    pub fn decode(payload: &[u8]) -> Result<KvCommand, String> {
        if payload.len() != COMMAND_SIZE_BYTES {
            return Err(format!("kv command of {} bytes", payload.len()));
        }
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&payload[at..at + 8]);
            bytes
        };
        let client = u64::from_le_bytes(word(0));
        let request = u64::from_le_bytes(word(8));
        let key = payload[17];
        let a = i64::from_le_bytes(word(18));
        let b = i64::from_le_bytes(word(26));
        let op = match payload[16] {
            0 => KvOp::Get(key),
            1 => KvOp::Put(key, a),
            2 => KvOp::Cas(key, a, b),
            tag => return Err(format!("kv command tag {tag}")),
        };
        Ok(KvCommand {
            client,
            request,
            op,
        })
    }
}

/// The replicated state: values, and each client's last request with its output.
#[derive(Clone, Debug, Default)]
pub struct KvStore {
    values: BTreeMap<Key, i64>,
    last_request: BTreeMap<u64, (u64, KvOutput)>,
    /// Commands that took effect (not deduplicated away).
    pub applied_count: u64,
    /// Commands recognised as duplicates of an applied request.
    pub duplicate_count: u64,
}

impl KvStore {
    /// Applies a command once: a retry of the client's last request gets the cached output.
    /// Returns `None` for a request older than the client's last (nobody waits for it).
    pub fn apply(&mut self, command: &KvCommand) -> Option<KvOutput> {
        if let Some(&(request, output)) = self.last_request.get(&command.client) {
            if command.request == request {
                self.duplicate_count += 1;
                return Some(output);
            }
            if command.request < request {
                self.duplicate_count += 1;
                return None;
            }
        }
        let output = match command.op {
            KvOp::Get(key) => KvOutput::Value(self.values.get(&key).copied()),
            KvOp::Put(key, value) => {
                self.values.insert(key, value);
                KvOutput::Ok
            }
            KvOp::Cas(key, expected, new) => {
                if self.values.get(&key) == Some(&expected) {
                    self.values.insert(key, new);
                    KvOutput::Ok
                } else {
                    KvOutput::Fail
                }
            }
        };
        self.applied_count += 1;
        self.last_request
            .insert(command.client, (command.request, output));
        Some(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for op in [KvOp::Get(3), KvOp::Put(1, -7), KvOp::Cas(2, 5, 9)] {
            let command = KvCommand {
                client: 77,
                request: 12,
                op,
            };
            assert_eq!(KvCommand::decode(&command.encode()), Ok(command));
        }
        assert!(KvCommand::decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn retries_apply_once() {
        let mut store = KvStore::default();
        let put = KvCommand {
            client: 1,
            request: 1,
            op: KvOp::Put(0, 5),
        };
        assert_eq!(store.apply(&put), Some(KvOutput::Ok));
        let cas = KvCommand {
            client: 1,
            request: 2,
            op: KvOp::Cas(0, 5, 6),
        };
        assert_eq!(store.apply(&cas), Some(KvOutput::Ok));
        assert_eq!(
            store.apply(&cas),
            Some(KvOutput::Ok),
            "retry gets the cached output"
        );
        assert_eq!(
            store.apply(&put),
            None,
            "an older request is not applied again"
        );
        let get = KvCommand {
            client: 2,
            request: 1,
            op: KvOp::Get(0),
        };
        assert_eq!(store.apply(&get), Some(KvOutput::Value(Some(6))));
    }
}
