//! One frame on a connection.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "CRCL"
//!      4     1  version (1)
//!      5     1  kind (what the payload holds; the layers above number them)
//!      6     2  reserved, zero
//!      8     4  group (u32 LE): the Raft group the frame belongs to
//!     12     4  length (u32 LE): payload bytes after the header
//!     16     4  checksum (u32 LE): CRC32C of bytes 0..16 and of the payload
//!     20     -  payload
//! ```
//!
//! Bytes from a socket are untrusted. The decoder checks the magic, the version and the
//! length against its cap before it waits for (or reserves room for) the payload, and the
//! checksum before it hands anything out. A bad frame is an error value naming what was
//! wrong; the caller closes the connection with that reason. Nothing here panics on input.

use bytes::{Buf, Bytes, BytesMut};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Identifies coracle frames.
pub const FRAME_MAGIC: [u8; 4] = *b"CRCL";
/// The only version spoken so far.
pub const FRAME_VERSION: u8 = 1;
/// Header bytes before the payload.
pub const FRAME_HEADER_SIZE_BYTES: usize = 20;
/// The default cap on one payload: an append carries at most 32 KiB of entries by default,
/// and an install chunk 32 KiB; the cap leaves room for a large configured append.
pub const FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// The header as it lies on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct FrameHeader {
    magic: [u8; 4],
    version: u8,
    kind: u8,
    reserved: U16,
    group: U32,
    length: U32,
    checksum: U32,
}

const _: () = assert!(std::mem::size_of::<FrameHeader>() == FRAME_HEADER_SIZE_BYTES);

impl FrameHeader {
    /// What the payload holds.
    #[must_use]
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The Raft group.
    #[must_use]
    pub fn group(&self) -> u32 {
        self.group.get()
    }

    /// Payload bytes.
    #[must_use]
    pub fn length(&self) -> u32 {
        self.length.get()
    }

    fn checksum_of(&self, payload: &[u8]) -> u32 {
        let covered = &self.as_bytes()[..FRAME_HEADER_SIZE_BYTES - 4];
        crc32c::crc32c_append(crc32c::crc32c(covered), payload)
    }
}

/// One frame received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub kind: u8,
    /// The Raft group.
    pub group: u32,
    /// The payload: a slice of the receive buffer, not a copy.
    pub payload: Bytes,
}

/// Why bytes are not a frame. The connection that sent them is closed with this reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not a coracle frame (or the stream lost its framing).
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A version this side does not speak.
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// Reserved bytes are not zero.
    Reserved {
        /// Their value.
        value: u16,
    },
    /// The length field is over the cap: refused before anything is reserved for it.
    TooLarge {
        /// The length claimed.
        length: u64,
        /// The cap.
        max: u64,
    },
    /// The checksum does not match.
    Checksum {
        /// The checksum sent.
        stored: u32,
        /// The checksum computed.
        computed: u32,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadMagic { found } => write!(f, "bad frame magic {found:02x?}"),
            FrameError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "frame version {version} is not spoken here (only {FRAME_VERSION})"
                )
            }
            FrameError::Reserved { value } => write!(f, "reserved frame bytes hold {value}"),
            FrameError::TooLarge { length, max } => {
                write!(
                    f,
                    "frame payload of {length} bytes is over the cap of {max}"
                )
            }
            FrameError::Checksum { stored, computed } => write!(
                f,
                "frame checksum {stored:08x} does not match the computed {computed:08x}"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame to `out`.
///
/// # Panics
/// If the payload is 4 GiB or longer (the caller's bound is far below).
pub fn encode_frame(kind: u8, group: u32, payload: &[u8], out: &mut BytesMut) {
    let length = u32::try_from(payload.len()).expect("payload under 4 GiB");
    let mut header = FrameHeader {
        magic: FRAME_MAGIC,
        version: FRAME_VERSION,
        kind,
        reserved: U16::new(0),
        group: U32::new(group),
        length: U32::new(length),
        checksum: U32::new(0),
    };
    header.checksum = U32::new(header.checksum_of(payload));
    out.reserve(FRAME_HEADER_SIZE_BYTES + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
}

/// Appends one frame whose payload `write_payload` appends to `out` directly (no copy of
/// the payload through a scratch buffer), then fills in the header. If the payload came
/// out larger than `payload_size_bytes_max`, nothing is left appended and the size is
/// returned as the error: a receiver would refuse the frame anyway.
///
/// # Errors
/// `TooLarge` with the payload's size.
pub fn encode_frame_into(
    kind: u8,
    group: u32,
    payload_size_bytes_max: usize,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), FrameError> {
    let start = out.len();
    out.resize(start + FRAME_HEADER_SIZE_BYTES, 0);
    write_payload(out);
    let length = out.len() - start - FRAME_HEADER_SIZE_BYTES;
    let Some(length32) = u32::try_from(length)
        .ok()
        .filter(|_| length <= payload_size_bytes_max)
    else {
        out.truncate(start);
        return Err(FrameError::TooLarge {
            length: length as u64,
            max: payload_size_bytes_max as u64,
        });
    };
    let mut header = FrameHeader {
        magic: FRAME_MAGIC,
        version: FRAME_VERSION,
        kind,
        reserved: U16::new(0),
        group: U32::new(group),
        length: U32::new(length32),
        checksum: U32::new(0),
    };
    header.checksum = U32::new(header.checksum_of(&out[start + FRAME_HEADER_SIZE_BYTES..]));
    out[start..start + FRAME_HEADER_SIZE_BYTES].copy_from_slice(header.as_bytes());
    Ok(())
}

/// Cuts frames out of a connection's receive buffer.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    payload_size_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(FRAME_PAYLOAD_SIZE_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder refusing payloads over `payload_size_bytes_max`.
    #[must_use]
    pub fn new(payload_size_bytes_max: usize) -> FrameDecoder {
        FrameDecoder {
            payload_size_bytes_max,
        }
    }

    /// How many more bytes `buffer` needs before the frame at its front is whole (at least
    /// one: the caller reads when `decode` found no frame). Never more than the cap allows.
    #[must_use]
    pub fn bytes_wanted(&self, buffer: &[u8]) -> usize {
        let Ok((header, _)) = FrameHeader::read_from_prefix(buffer) else {
            return FRAME_HEADER_SIZE_BYTES - buffer.len();
        };
        let length = (header.length.get() as usize).min(self.payload_size_bytes_max);
        (FRAME_HEADER_SIZE_BYTES + length)
            .saturating_sub(buffer.len())
            .max(1)
    }

    /// The next whole frame at the front of `buffer`, taken out of it; `Ok(None)` if more
    /// bytes must arrive first. After an error the buffer is left as it was.
    ///
    /// # Errors
    /// A bad magic, version, reserved field, oversized length or checksum.
    pub fn decode(&self, buffer: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Ok((header, _)) = FrameHeader::read_from_prefix(buffer) else {
            return Ok(None); // Fewer bytes than a header.
        };
        if header.magic != FRAME_MAGIC {
            return Err(FrameError::BadMagic {
                found: header.magic,
            });
        }
        if header.version != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion {
                version: header.version,
            });
        }
        if header.reserved.get() != 0 {
            return Err(FrameError::Reserved {
                value: header.reserved.get(),
            });
        }
        let length = header.length.get() as usize;
        if length > self.payload_size_bytes_max {
            return Err(FrameError::TooLarge {
                length: u64::from(header.length.get()),
                max: self.payload_size_bytes_max as u64,
            });
        }
        let total = FRAME_HEADER_SIZE_BYTES + length;
        if buffer.len() < total {
            return Ok(None);
        }
        let payload = &buffer[FRAME_HEADER_SIZE_BYTES..total];
        let computed = header.checksum_of(payload);
        if computed != header.checksum.get() {
            return Err(FrameError::Checksum {
                stored: header.checksum.get(),
                computed,
            });
        }
        buffer.advance(FRAME_HEADER_SIZE_BYTES);
        let payload = buffer.split_to(length).freeze();
        Ok(Some(Frame {
            kind: header.kind,
            group: header.group.get(),
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(kind: u8, group: u32, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(kind, group, payload, &mut out);
        out
    }

    #[test]
    fn frames_encoded_in_place_match_and_oversized_ones_leave_nothing() {
        let mut out = b"before".to_vec();
        encode_frame_into(3, 9, 100, &mut out, |out| out.extend_from_slice(b"payload"))
            .expect("fits");
        assert_eq!(&out[6..], &framed(3, 9, b"payload")[..]);
        let result = encode_frame_into(3, 9, 4, &mut out, |out| out.extend_from_slice(b"12345"));
        assert_eq!(result, Err(FrameError::TooLarge { length: 5, max: 4 }));
        assert_eq!(&out[6..], &framed(3, 9, b"payload")[..]);
        let decoder = FrameDecoder::new(100);
        assert_eq!(decoder.bytes_wanted(b"CR"), FRAME_HEADER_SIZE_BYTES - 2);
        assert_eq!(decoder.bytes_wanted(&out[6..30]), 3);
    }

    #[test]
    fn frames_round_trip_and_arrive_in_pieces() {
        let mut wire = framed(3, 77, b"hello");
        wire.extend_from_slice(&framed(4, 0, b""));
        let decoder = FrameDecoder::default();
        // Byte by byte: nothing until a frame is whole.
        let mut buffer = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire.iter() {
            buffer.extend_from_slice(&[*byte]);
            while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame {
                    kind: 3,
                    group: 77,
                    payload: Bytes::from_static(b"hello")
                },
                Frame {
                    kind: 4,
                    group: 0,
                    payload: Bytes::new()
                },
            ]
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn the_payload_is_a_slice_of_the_receive_buffer() {
        let mut buffer = framed(1, 1, &[9; 64]);
        let start = buffer.as_ptr() as usize;
        let frame = FrameDecoder::default()
            .decode(&mut buffer)
            .unwrap()
            .unwrap();
        assert_eq!(
            frame.payload.as_ptr() as usize,
            start + FRAME_HEADER_SIZE_BYTES
        );
    }

    #[test]
    fn a_length_over_the_cap_is_refused_before_the_payload_arrives() {
        let mut buffer = framed(1, 1, &[0; 100]);
        buffer.truncate(FRAME_HEADER_SIZE_BYTES); // Only the header has come.
        let decoder = FrameDecoder::new(99);
        assert_eq!(
            decoder.decode(&mut buffer),
            Err(FrameError::TooLarge {
                length: 100,
                max: 99
            })
        );
    }

    #[test]
    fn every_corruption_is_named() {
        let decoder = FrameDecoder::default();
        let good = framed(1, 5, b"payload");
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(matches!(
            decoder.decode(&mut magic),
            Err(FrameError::BadMagic { .. })
        ));
        let mut version = good.clone();
        version[4] = 2;
        assert_eq!(
            decoder.decode(&mut version),
            Err(FrameError::UnsupportedVersion { version: 2 })
        );
        let mut reserved = good.clone();
        reserved[6] = 1;
        assert_eq!(
            decoder.decode(&mut reserved),
            Err(FrameError::Reserved { value: 1 })
        );
        // A flipped bit anywhere in the checked header fields or the payload.
        for position in (5..16).chain(FRAME_HEADER_SIZE_BYTES..good.len()) {
            if position == 6 || position == 7 {
                continue; // Reserved: reported as such above.
            }
            let mut flipped = good.clone();
            flipped[position] ^= 0x10;
            let result = decoder.decode(&mut flipped);
            assert!(
                result.is_err() || result == Ok(None),
                "byte {position}: {result:?}"
            );
        }
        let mut payload = good.clone();
        let last = payload.len() - 1;
        payload[last] ^= 1;
        assert!(matches!(
            decoder.decode(&mut payload),
            Err(FrameError::Checksum { .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic_and_never_pass_unnoticed() {
        let decoder = FrameDecoder::new(1 << 16);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            let mut bytes = BytesMut::new();
            let size = (state % 64) as usize;
            for _ in 0..size {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                bytes.extend_from_slice(&[(state >> 56) as u8]);
            }
            // Valid-looking starts now and then, so the later checks are reached too.
            if state.is_multiple_of(3) && bytes.len() >= 6 {
                bytes[..4].copy_from_slice(&FRAME_MAGIC);
                bytes[4] = FRAME_VERSION;
            }
            if let Ok(Some(frame)) = decoder.decode(&mut bytes) {
                panic!("random bytes decoded as {frame:?}");
            }
        }
    }
}
