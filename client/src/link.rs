//! One TCP connection to one shard of one node: connect, handshake, then frames both ways.
//!
//! A link is one glommio task. It connects, sends the `Hello` and waits for the reply
//! before anything else (a refusing server closes at once, and a request sent ahead of the
//! reply could make its close a reset that loses the reason). Then it reads and writes at
//! the same time: the reader decodes every whole frame in what one read brought and hands
//! the batch to the driver; the writer sends whatever the driver queued in [`Outgoing`]
//! since its last write, so pipelined requests leave in one system call. Frames queued
//! while the link is still connecting wait in the buffer.
//!
//! A bad frame, an undecodable payload, a frame of the wrong kind or group, or the server
//! closing ends the link with a reason; the driver logs it and tells the session the
//! connection was lost. Nothing here panics on what the server sends.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use coracle_engine::session::wire::decode_to_client;
use coracle_engine::session::ToClient;
use coracle_engine::ReplicaId;
use coracle_net::{encode_frame, kind, Frame, FrameDecoder, Hello, HelloReply};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::Timer;

use crate::driver::Core;

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What a server said about itself when it accepted a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Its node id (the engine's `ReplicaId`).
    pub node: u64,
    /// The shard that accepted.
    pub shard: u32,
    /// How many shards the node runs.
    pub shards: u32,
    /// How many groups the node runs.
    pub groups: u32,
}

/// Why a connection could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// The server refused the handshake, with its reason.
    Refused(String),
    /// Anything else: connect, I/O, timeout, a malformed reply.
    Failed(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Refused(reason) => write!(f, "refused: {reason}"),
            OpenError::Failed(reason) => write!(f, "{reason}"),
        }
    }
}

/// An open connection: the stream, the server's answer, and bytes that came after it.
pub(crate) struct Opened {
    pub stream: TcpStream,
    pub accepted: Accepted,
    pub buffer: BytesMut,
}

/// Connects to `address` and runs the handshake, all within `timeout`.
pub(crate) async fn open(
    address: SocketAddr,
    hello: &Hello,
    timeout: Duration,
) -> Result<Opened, OpenError> {
    let attempt = async {
        let failed = |what: &str, error: &dyn std::fmt::Display| {
            OpenError::Failed(format!("{what}: {error}"))
        };
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|error| failed("connect", &error))?;
        // Requests are small and latency is what a client is measured by.
        stream
            .set_nodelay(true)
            .map_err(|error| failed("set TCP_NODELAY", &error))?;
        let mut frame = BytesMut::new();
        encode_frame(kind::HELLO, 0, &hello.encode(), &mut frame);
        stream
            .write_all(&frame)
            .await
            .map_err(|error| failed("send the hello", &error))?;
        let mut buffer = BytesMut::new();
        let mut scratch = vec![0; READ_CHUNK_BYTES];
        let decoder = FrameDecoder::default();
        let reply = read_frame(&mut stream, &mut buffer, &decoder, &mut scratch)
            .await
            .map_err(OpenError::Failed)?
            .ok_or_else(|| OpenError::Failed("closed before answering the hello".into()))?;
        if reply.kind != kind::HELLO_REPLY {
            return Err(OpenError::Failed(format!(
                "answered the hello with a frame of kind {}",
                reply.kind
            )));
        }
        match HelloReply::decode(reply.payload) {
            Ok(HelloReply::Accepted {
                node,
                shard,
                shards,
                groups,
            }) => Ok(Opened {
                stream,
                accepted: Accepted {
                    node,
                    shard,
                    shards,
                    groups,
                },
                buffer,
            }),
            Ok(HelloReply::Refused { reason }) => Err(OpenError::Refused(reason)),
            Err(error) => Err(failed("malformed hello reply", &error)),
        }
    };
    let deadline = async {
        Timer::new(timeout).await;
        Err(OpenError::Failed(format!(
            "no handshake within {} ms",
            timeout.as_millis()
        )))
    };
    futures_lite::future::or(attempt, deadline).await
}

/// The next whole frame, reading as needed; `None` if the other side closed first.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    buffer: &mut BytesMut,
    decoder: &FrameDecoder,
    scratch: &mut [u8],
) -> Result<Option<Frame>, String> {
    loop {
        match decoder.decode(buffer) {
            Ok(Some(frame)) => return Ok(Some(frame)),
            Ok(None) => {}
            Err(error) => return Err(format!("malformed frame: {error}")),
        }
        let count = reader
            .read(scratch)
            .await
            .map_err(|error| format!("read: {error}"))?;
        if count == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&scratch[..count]);
    }
}

/// What the driver queued for one link, and the link task's waker.
#[derive(Default)]
pub(crate) struct Outgoing {
    buffer: RefCell<BytesMut>,
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Outgoing {
    /// Queues one frame and wakes the writer.
    pub fn push(&self, kind: u8, group: u32, payload: &[u8]) {
        assert!(!self.closed.get(), "nothing is queued on a closed link");
        encode_frame(kind, group, payload, &mut self.buffer.borrow_mut());
        self.wake();
    }

    /// Ends the link: the task stops (dropping the socket) and queued bytes are dropped.
    pub fn close(&self) {
        self.closed.set(true);
        self.wake();
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Everything queued since the last call, once there is something; `None` once closed.
    fn next(&self) -> impl Future<Output = Option<BytesMut>> + '_ {
        std::future::poll_fn(move |context| {
            if self.closed.get() {
                return Poll::Ready(None);
            }
            let mut buffer = self.buffer.borrow_mut();
            if !buffer.is_empty() {
                return Poll::Ready(Some(buffer.split()));
            }
            *self.waker.borrow_mut() = Some(context.waker().clone());
            Poll::Pending
        })
    }

    /// Completes once the link is closed.
    fn closed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |context| {
            if self.closed.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(context.waker().clone());
            Poll::Pending
        })
    }
}

/// Where a link goes and what it must find there.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Target {
    /// The server (node) as the session knows it.
    pub server: ReplicaId,
    /// The driver's number for this link: reports from a link it replaced are ignored.
    pub link: u64,
    /// The shard's address.
    pub address: SocketAddr,
    /// The shard that must answer (the group's).
    pub shard: u32,
}

/// The link task: open, then read and write until either side ends or the driver closes
/// it; then report to the driver.
pub(crate) async fn run(core: Rc<Core>, target: Target, outgoing: Rc<Outgoing>) {
    let work = async {
        let opened = match open(target.address, &core.hello(), core.connect_timeout()).await {
            Ok(opened) => opened,
            Err(error) => return Some(format!("could not connect: {error}")),
        };
        let accepted = opened.accepted;
        if accepted.node != target.server.0 || accepted.shard != target.shard {
            return Some(format!(
                "expected node {} shard {}, found node {} shard {}",
                target.server, target.shard, accepted.node, accepted.shard
            ));
        }
        core.link_opened();
        let (mut reader, mut writer) = futures_lite::io::split(opened.stream);
        let reading = read_loop(&core, target, &mut reader, opened.buffer);
        let writing = async {
            while let Some(bytes) = outgoing.next().await {
                if let Err(error) = writer.write_all(&bytes).await {
                    return Some(format!("write: {error}"));
                }
            }
            None // Closed by the driver.
        };
        futures_lite::future::or(reading, writing).await
    };
    let closed = async {
        outgoing.closed().await;
        None
    };
    let end = futures_lite::future::or(work, closed).await;
    core.link_ended(target, end);
}

/// Reads until the server closes or sends something wrong; returns why it stopped.
async fn read_loop(
    core: &Rc<Core>,
    target: Target,
    reader: &mut (impl AsyncRead + Unpin),
    mut buffer: BytesMut,
) -> Option<String> {
    let decoder = FrameDecoder::default();
    let mut scratch = vec![0; READ_CHUNK_BYTES];
    let group = core.group();
    loop {
        let mut messages = Vec::new();
        let failure = loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => match to_client(&frame, group) {
                    Ok(message) => messages.push(message),
                    Err(reason) => break Some(reason),
                },
                Ok(None) => break None,
                Err(error) => break Some(format!("malformed frame: {error}")),
            }
        };
        // The good frames before a bad one are still the server's answers.
        if !messages.is_empty() {
            core.on_messages(target, messages);
        }
        if failure.is_some() {
            return failure;
        }
        let count = match reader.read(&mut scratch).await {
            Ok(count) => count,
            Err(error) => return Some(format!("read: {error}")),
        };
        if count == 0 {
            return Some("closed by the server".into());
        }
        buffer.extend_from_slice(&scratch[..count]);
    }
}

/// A frame for this client: the right kind and group, and a payload that decodes.
fn to_client(frame: &Frame, group: u32) -> Result<ToClient, String> {
    if frame.kind != kind::TO_CLIENT {
        return Err(format!("unexpected frame kind {}", frame.kind));
    }
    if frame.group != group {
        return Err(format!(
            "a frame for group {} on group {group}'s connection",
            frame.group
        ));
    }
    decode_to_client(&frame.payload).map_err(|error| format!("undecodable message: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coracle_engine::session::wire::encode_to_client;
    use coracle_engine::session::{ClientResponse, ResponseBody};

    fn frame(kind: u8, group: u32, payload: &[u8]) -> Frame {
        let mut bytes = BytesMut::new();
        encode_frame(kind, group, payload, &mut bytes);
        FrameDecoder::default()
            .decode(&mut bytes)
            .expect("valid")
            .expect("whole")
    }

    #[test]
    fn only_well_formed_frames_of_the_group_reach_the_session() {
        let message = ToClient::Response(ClientResponse {
            request_id: 7,
            body: Ok(ResponseBody::Unregister),
        });
        let payload = encode_to_client(&message);
        assert_eq!(
            to_client(&frame(kind::TO_CLIENT, 3, &payload), 3),
            Ok(message)
        );
        let wrong_group = to_client(&frame(kind::TO_CLIENT, 4, &payload), 3);
        assert!(wrong_group.expect_err("refused").contains("group 4"));
        let wrong_kind = to_client(&frame(kind::PEER, 3, &payload), 3);
        assert!(wrong_kind.expect_err("refused").contains("kind"));
        let garbage = to_client(&frame(kind::TO_CLIENT, 3, &[9, 9, 9]), 3);
        assert!(garbage.expect_err("refused").contains("undecodable"));
        for cut in 0..payload.len() {
            let cut_frame = frame(kind::TO_CLIENT, 3, &payload[..cut]);
            assert!(to_client(&cut_frame, 3).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn outgoing_batches_frames_until_taken() {
        let outgoing = Outgoing::default();
        outgoing.push(kind::CLIENT_REQUEST, 1, b"a");
        outgoing.push(kind::CLIENT_REQUEST, 1, b"bc");
        let taken = futures_lite::future::block_on(outgoing.next()).expect("queued");
        let mut taken = taken;
        let decoder = FrameDecoder::default();
        let first = decoder.decode(&mut taken).expect("valid").expect("whole");
        let second = decoder.decode(&mut taken).expect("valid").expect("whole");
        assert_eq!(
            (&first.payload[..], &second.payload[..]),
            (&b"a"[..], &b"bc"[..])
        );
        assert!(taken.is_empty());
        outgoing.close();
        assert_eq!(futures_lite::future::block_on(outgoing.next()), None);
    }
}
