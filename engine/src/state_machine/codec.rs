//! Typed operations and their byte codec (SPEC §E1, §L).
//!
//! A state machine's commands and queries are Rust types. Each has a stable numeric id and
//! encodes itself with [`Codec`]; an operation on the wire and in the log is the id (u32 LE)
//! followed by the operation's encoding, and its output travels back encoded the same way.
//! Registering handlers by id (see [`Operations`](super::Operations)) replaces Copycat's
//! class-based dispatch; the ids are what Catalyst's registered type ids were for.

use bytes::Bytes;

use crate::session::reader::{put_bytes, DecodeError, Reader};

/// A value that can be written to bytes and read back. Decoding untrusted bytes never
/// panics and never allocates more than the input holds.
pub trait Codec: Sized {
    /// Appends the value's encoding.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value.
    ///
    /// # Errors
    /// Bytes that are not a value of this type.
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError>;
}

/// A command: changes state, is logged and applied on every server (SPEC §C1).
pub trait Command: Codec + 'static {
    /// The id that routes it to its handler; unique among the state machine's commands.
    const ID: u32;
    /// What applying it returns.
    type Output: Codec + 'static;
}

/// A query: reads state, never logged (SPEC §D1).
pub trait Query: Codec + 'static {
    /// The id that routes it to its handler; unique among the state machine's queries.
    const ID: u32;
    /// What it returns.
    type Output: Codec + 'static;
}

/// The bytes of a command, as a client submits it.
#[must_use]
pub fn encode_command<C: Command>(command: &C) -> Bytes {
    encode_with_id(C::ID, command)
}

/// The bytes of a query, as a client submits it.
#[must_use]
pub fn encode_query<Q: Query>(query: &Q) -> Bytes {
    encode_with_id(Q::ID, query)
}

fn encode_with_id<T: Codec>(id: u32, value: &T) -> Bytes {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&id.to_le_bytes());
    value.encode(&mut out);
    Bytes::from(out)
}

/// Encodes one value on its own.
#[must_use]
pub fn encode_value<T: Codec>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(16);
    value.encode(&mut out);
    Bytes::from(out)
}

/// Decodes one value that must fill `bytes` exactly (an output, on the client).
///
/// # Errors
/// Bytes that are not exactly one value of the type.
pub fn decode_value<T: Codec>(bytes: &Bytes) -> Result<T, DecodeError> {
    let mut reader = Reader::new(bytes.clone());
    let value = T::decode(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// Splits an operation into its id and the rest.
///
/// # Errors
/// Fewer than four bytes.
pub fn split_operation(operation: &Bytes) -> Result<(u32, Reader), DecodeError> {
    let mut reader = Reader::new(operation.clone());
    let id = reader.u32("operation id")?;
    Ok((id, reader))
}

impl Codec for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(())
    }
}

impl Codec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        match reader.u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::Invalid {
                what: "bool",
                value: u64::from(value),
            }),
        }
    }
}

impl Codec for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        reader.u64("u64")
    }
}

impl Codec for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(reader.u64("i64")? as i64)
    }
}

impl Codec for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        reader.u32("u32")
    }
}

impl Codec for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        reader.bytes("bytes")
    }
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.as_bytes());
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        reader.text("utf-8 in a string at byte")
    }
}

impl<T: Codec> Codec for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        match reader.u8("option tag")? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(reader)?)),
            value => Err(DecodeError::Invalid {
                what: "option tag",
                value: u64::from(value),
            }),
        }
    }
}

impl<T: Codec> Codec for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        let count = u32::try_from(self.len()).expect("fewer than 2^32 elements");
        out.extend_from_slice(&count.to_le_bytes());
        for value in self {
            value.encode(out);
        }
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let count = reader.u32("element count")?;
        // Not `with_capacity(count)`: the count is untrusted; every element read checks
        // the input, so the vector never grows past what the input holds.
        let mut values = Vec::new();
        for _ in 0..count {
            values.push(T::decode(reader)?);
        }
        Ok(values)
    }
}

impl<A: Codec, B: Codec> Codec for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok((A::decode(reader)?, B::decode(reader)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(value: T) {
        let bytes = encode_value(&value);
        assert_eq!(decode_value::<T>(&bytes), Ok(value));
        for cut in 0..bytes.len() {
            assert!(decode_value::<T>(&bytes.slice(..cut)).is_err());
        }
    }

    #[test]
    fn values_round_trip_and_cuts_fail() {
        round_trip(7u64);
        round_trip(-7i64);
        round_trip(true);
        round_trip(String::from("héllo"));
        round_trip(Some(Bytes::from_static(b"abc")));
        round_trip(None::<u64>);
        round_trip(vec![(1u64, String::from("a")), (2, String::from("b"))]);
    }

    #[test]
    fn a_huge_count_does_not_allocate() {
        let bytes = Bytes::from(u32::MAX.to_le_bytes().to_vec());
        assert!(decode_value::<Vec<u64>>(&bytes).is_err());
    }

    #[test]
    fn invalid_utf8_and_tags_are_errors() {
        let mut out = Vec::new();
        put_bytes(&mut out, &[0xff, 0xfe]);
        assert!(decode_value::<String>(&Bytes::from(out)).is_err());
        assert!(decode_value::<bool>(&Bytes::from_static(&[2])).is_err());
        assert!(decode_value::<Option<u64>>(&Bytes::from_static(&[3])).is_err());
    }
}
