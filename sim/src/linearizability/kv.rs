//! A key-value store model, partitioned by key.

use super::model::Model;

/// A key-value store of strings with get, put, append and compare-and-set, checked one key
/// at a time. A missing key reads as the empty string (the model does not tell a missing
/// key from one holding `""`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvModel;

/// An operation on a [`KvModel`] store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read a key; answered with [`KvOutput::Value`].
    Get {
        /// The key.
        key: String,
    },
    /// Set a key; answered with [`KvOutput::Ok`].
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Append to a key's value; answered with [`KvOutput::Ok`].
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
    /// Set a key to `new` if it holds `expected`: [`KvOutput::Ok`] if it did (and the value
    /// changed), [`KvOutput::Fail`] if it did not (and nothing changed).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold.
        expected: String,
        /// The value it then holds.
        new: String,
    },
}

impl KvInput {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Append { key, .. }
            | KvInput::Cas { key, .. } => key,
        }
    }
}

/// The answer to a [`KvInput`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// A get's result.
    Value(String),
    /// A put, an append, or a cas whose compare matched.
    Ok,
    /// A cas whose compare did not match.
    Fail,
}

impl Model for KvModel {
    /// The value of the partition's one key.
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;
    type Key = String;

    fn init(&self) -> String {
        String::new()
    }

    fn key(&self, input: &KvInput) -> String {
        input.key().to_string()
    }

    fn step(&self, state: &String, input: &KvInput, output: &KvOutput) -> Option<String> {
        match (input, output) {
            (KvInput::Get { .. }, KvOutput::Value(value)) => {
                (value == state).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, KvOutput::Ok) => Some(value.clone()),
            (KvInput::Append { value, .. }, KvOutput::Ok) => Some(format!("{state}{value}")),
            (KvInput::Cas { expected, new, .. }, KvOutput::Ok) => {
                (state == expected).then(|| new.clone())
            }
            (KvInput::Cas { expected, .. }, KvOutput::Fail) => {
                (state != expected).then(|| state.clone())
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &String, input: &KvInput) -> String {
        match input {
            KvInput::Get { .. } => state.clone(),
            KvInput::Put { value, .. } => value.clone(),
            KvInput::Append { value, .. } => format!("{state}{value}"),
            KvInput::Cas { expected, new, .. } if state == expected => new.clone(),
            KvInput::Cas { .. } => state.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn steps() {
        let m = KvModel;
        let get = KvInput::Get { key: s("k") };
        let append = KvInput::Append {
            key: s("k"),
            value: s("b"),
        };
        let cas = KvInput::Cas {
            key: s("k"),
            expected: s("ab"),
            new: s("c"),
        };
        assert_eq!(m.step(&s(""), &get, &KvOutput::Value(s(""))), Some(s("")));
        assert_eq!(m.step(&s("a"), &get, &KvOutput::Value(s(""))), None);
        assert_eq!(m.step(&s("a"), &append, &KvOutput::Ok), Some(s("ab")));
        assert_eq!(m.step(&s("ab"), &cas, &KvOutput::Ok), Some(s("c")));
        assert_eq!(m.step(&s("ab"), &cas, &KvOutput::Fail), None);
        assert_eq!(m.step(&s("a"), &cas, &KvOutput::Fail), Some(s("a")));
        assert_eq!(m.step(&s("a"), &get, &KvOutput::Ok), None);
        assert_eq!(m.step_unknown(&s("a"), &append), s("ab"));
        assert_eq!(m.key(&cas), "k");
    }
}
