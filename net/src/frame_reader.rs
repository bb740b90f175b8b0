//! Reads whole frames from a byte stream.
//!
//! Bytes read from the socket are appended to a frame buffer (the decoder has checked a
//! frame's length against its cap before the buffer grows for it), and frames leave it as
//! zero-copy `Bytes` slices: a follower's entries keep pointing into the buffer they
//! arrived in.

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt};

use crate::frame::{Frame, FrameDecoder, FrameError};

/// Bytes asked of the stream per read.
const READ_SIZE_BYTES: usize = 64 * 1024;
/// The frame buffer grows by at least this much at a time.
const BUFFER_CHUNK_BYTES: usize = 64 * 1024;

/// Why a connection stopped yielding frames.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed.
    Io(std::io::Error),
    /// The bytes are not a frame.
    Frame(FrameError),
    /// The other side closed the connection in the middle of a frame.
    ClosedInsideFrame {
        /// Bytes of the unfinished frame received.
        received: usize,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(error) => write!(f, "read failed: {error}"),
            ReadError::Frame(error) => write!(f, "{error}"),
            ReadError::ClosedInsideFrame { received } => {
                write!(f, "closed after {received} bytes of an unfinished frame")
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// Frames out of a stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    stream: R,
    buffer: BytesMut,
    /// Where the socket's bytes land first (zeroed once, reused).
    scratch: Vec<u8>,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads `stream` with `decoder`'s cap.
    pub fn new(stream: R, decoder: FrameDecoder) -> FrameReader<R> {
        FrameReader {
            stream,
            buffer: BytesMut::new(),
            scratch: vec![0; READ_SIZE_BYTES],
            decoder,
        }
    }

    /// The next frame; `None` once the other side closed the connection between frames.
    ///
    /// # Errors
    /// A socket error, a bad frame, or a close inside a frame.
    pub async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.buffered()? {
                return Ok(Some(frame));
            }
            let start = self.buffer.len();
            let read = self.stream.read(&mut self.scratch).await;
            let count = read.map_err(ReadError::Io)?;
            if count == 0 {
                if start == 0 {
                    return Ok(None);
                }
                return Err(ReadError::ClosedInsideFrame { received: start });
            }
            // One copy of what arrived, into the frame buffer's spare room: frames are
            // cut from it as zero-copy slices, and successive reads fill one allocation
            // instead of each pinning a fresh one (entries keep their slices alive).
            let wanted = self.decoder.bytes_wanted(&self.buffer);
            if self.buffer.capacity() - start < count {
                self.buffer
                    .reserve(count.max(wanted).max(BUFFER_CHUNK_BYTES));
            }
            self.buffer.extend_from_slice(&self.scratch[..count]);
        }
    }

    /// A frame already received whole, without reading.
    ///
    /// # Errors
    /// A bad frame.
    pub fn buffered(&mut self) -> Result<Option<Frame>, ReadError> {
        self.decoder
            .decode(&mut self.buffer)
            .map_err(ReadError::Frame)
    }

    /// Reads on with another cap (a larger one once a handshake, read with a small cap,
    /// is done); bytes already received stay.
    pub fn set_decoder(&mut self, decoder: FrameDecoder) {
        self.decoder = decoder;
    }

    /// The stream, to write to it (a client connection) or close it.
    pub fn stream_mut(&mut self) -> &mut R {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;
    use futures_lite::future::block_on;

    #[test]
    fn frames_come_out_whole_and_a_cut_stream_is_named() {
        let mut wire = BytesMut::new();
        encode_frame(3, 1, &vec![7u8; 200_000], &mut wire);
        encode_frame(4, 2, b"x", &mut wire);
        let bytes = wire.to_vec();
        let mut reader = FrameReader::new(&bytes[..], FrameDecoder::default());
        let first = block_on(reader.next()).expect("frame").expect("some");
        assert_eq!(
            (first.kind, first.group, first.payload.len()),
            (3, 1, 200_000)
        );
        let second = block_on(reader.next()).expect("frame").expect("some");
        assert_eq!(&second.payload[..], b"x");
        assert!(block_on(reader.next()).expect("clean end").is_none());

        let cut = &bytes[..bytes.len() - 1];
        let mut reader = FrameReader::new(cut, FrameDecoder::default());
        block_on(reader.next()).expect("first").expect("some");
        assert!(matches!(
            block_on(reader.next()),
            Err(ReadError::ClosedInsideFrame { received: 20 })
        ));
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_payload_is_awaited() {
        let mut wire = BytesMut::new();
        encode_frame(3, 1, &[0u8; 1000], &mut wire);
        let header = wire[..20].to_vec(); // the payload never arrives
        let mut reader = FrameReader::new(&header[..], FrameDecoder::new(100));
        assert!(matches!(
            block_on(reader.next()),
            Err(ReadError::Frame(FrameError::TooLarge {
                length: 1000,
                max: 100
            }))
        ));
    }
}
