//! The shard's listener: every connection opens with a hello; peers of this cluster get a
//! reader that feeds their messages to the driver, clients get a reader and a writer.
//! Whatever is wrong with a connection — a refused hello, a malformed, oversized or
//! wrongly checksummed frame, a payload that does not decode, a group that is not on this
//! shard — closes that connection with a logged reason; the shard goes on.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use coracle_engine::session::wire;
use coracle_engine::state_machine::StateMachine;
use coracle_net::admin::{AdminRequest, AdminResponse};
use coracle_net::frame::{encode_frame_into, FrameDecoder};
use coracle_net::frame_reader::FrameReader;
use coracle_net::local_transport::LocalReceiver;
use coracle_net::peer_codec::decode_peer_message;
use coracle_net::Frame;
use coracle_net::{kind, HandshakeError, Hello, HelloReply, Party};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};

use crate::inbox::Input;
use crate::shard::Shard;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest hello accepted.
const HELLO_SIZE_BYTES_MAX: usize = 4096;

/// Accepts connections until the task is dropped.
pub(crate) async fn accept_loop<S: StateMachine>(shard: Rc<Shard<S>>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(_) if shard.is_stopping() => return,
            Ok(stream) => {
                let id = shard.next_task_id();
                shard.socket_opened(id, stream.as_raw_fd());
                let task = {
                    let shard = Rc::clone(&shard);
                    glommio::spawn_local(async move {
                        serve(Rc::clone(&shard), stream).await;
                        shard.task_ended(id);
                    })
                    .detach()
                };
                shard.task_started(id, task);
            }
            Err(_) if shard.is_stopping() => return,
            Err(error) => {
                eprintln!(
                    "coracle: node {} shard {}: accept failed: {error}",
                    shard.config.node, shard.index
                );
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One accepted connection, from its hello to its end.
async fn serve<S: StateMachine>(shard: Rc<Shard<S>>, stream: TcpStream) {
    let peer_address = stream.peer_addr().map_or_else(
        |_| "an unknown address".to_string(),
        |address| address.to_string(),
    );
    let _ = stream.set_nodelay(true);
    let (read_half, mut write_half) = futures_lite::io::split(stream);
    let mut reader = FrameReader::new(read_half, FrameDecoder::new(HELLO_SIZE_BYTES_MAX));
    let hello = match read_hello(&mut reader).await {
        Ok(hello) => hello,
        Err(reason) => {
            refuse(&shard, &mut write_half, &peer_address, &reason).await;
            return;
        }
    };
    let config = &shard.config;
    let checked = hello.check(&config.cluster, shard.index, |node| shard.knows(node));
    if let Err(error) = checked {
        refuse(&shard, &mut write_half, &peer_address, &error.to_string()).await;
        return;
    }
    let reply = HelloReply::Accepted {
        node: config.node,
        shard: shard.index,
        shards: config.shards,
        groups: config.groups,
    };
    if write_frame(&mut write_half, kind::HELLO_REPLY, &reply.encode())
        .await
        .is_err()
    {
        return;
    }
    reader.set_decoder(FrameDecoder::default());
    match hello.party {
        Party::Peer { node, .. } => {
            // A peer closing its link is routine (it restarts, or reconnects after an
            // error it logs itself); only a link this side refused is news here.
            if let Some(reason) = serve_peer(&shard, reader, node).await {
                eprintln!(
                    "coracle: node {} shard {}: closed the link from node {node} ({peer_address}): {reason}",
                    config.node, shard.index
                );
            }
        }
        Party::Client { .. } => serve_client(shard, reader, write_half, peer_address).await,
    }
}

async fn read_hello(reader: &mut FrameReader<ReadHalf<TcpStream>>) -> Result<Hello, String> {
    let read = futures_lite::future::or(async { Some(reader.next().await) }, async {
        glommio::timer::sleep(HELLO_TIMEOUT).await;
        None
    });
    match read.await {
        None => Err(format!("no hello within {HELLO_TIMEOUT:?}")),
        Some(Err(error)) => Err(error.to_string()),
        Some(Ok(None)) => Err("closed before saying hello".into()),
        Some(Ok(Some(frame))) if frame.kind != kind::HELLO => {
            Err(HandshakeError::UnexpectedKind { kind: frame.kind }.to_string())
        }
        Some(Ok(Some(frame))) => {
            Hello::decode(frame.payload).map_err(|error| HandshakeError::Decode(error).to_string())
        }
    }
}

async fn refuse<S: StateMachine>(
    shard: &Shard<S>,
    write_half: &mut WriteHalf<TcpStream>,
    peer_address: &str,
    reason: &str,
) {
    eprintln!(
        "coracle: node {} shard {}: refused a connection from {peer_address}: {reason}",
        shard.config.node, shard.index
    );
    let reply = HelloReply::Refused {
        reason: reason.to_string(),
    };
    let _ = write_frame(write_half, kind::HELLO_REPLY, &reply.encode()).await;
    let _ = write_half.close().await;
}

async fn write_frame(
    write_half: &mut WriteHalf<TcpStream>,
    frame_kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 32);
    encode_frame_into(frame_kind, 0, usize::MAX, &mut out, |out| {
        out.extend_from_slice(payload);
    })
    .map_err(|error| std::io::Error::other(error.to_string()))?;
    write_half.write_all(&out).await
}

/// Feeds a peer's messages to the driver until the link ends; returns why, unless the
/// peer closed it or this shard is stopping.
async fn serve_peer<S: StateMachine>(
    shard: &Shard<S>,
    mut reader: FrameReader<ReadHalf<TcpStream>>,
    node: u64,
) -> Option<String> {
    loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(_) if shard.is_stopping() => return None,
            Err(error) => return Some(error.to_string()),
        };
        if let Err(reason) = accept_peer_frame(shard, node, frame).await {
            return Some(reason);
        }
    }
}

/// Hands one frame from peer `node` to the driver, or says why it is refused.
async fn accept_peer_frame<S: StateMachine>(
    shard: &Shard<S>,
    node: u64,
    frame: Frame,
) -> Result<(), String> {
    if frame.kind != kind::PEER {
        return Err(format!("frame kind {} on a peer link", frame.kind));
    }
    if !shard.holds(frame.group) {
        return Err(format!("group {} is not on this shard", frame.group));
    }
    let message = decode_peer_message(&frame.payload)
        .map_err(|error| format!("malformed message for group {}: {error}", frame.group))?;
    shard
        .inbox
        .push_from_reader(Input::Peer {
            from: node,
            group: frame.group,
            message,
        })
        .await;
    Ok(())
}

/// Feeds frames from the in-process network to the driver. There is no connection to
/// close: a frame that is refused is dropped with a logged reason.
pub(crate) async fn serve_local_peers<S: StateMachine>(
    shard: Rc<Shard<S>>,
    mut receiver: LocalReceiver,
) {
    while let Some((from, frame)) = receiver.next().await {
        let accepted = if shard.knows(from) {
            accept_peer_frame(&shard, from, frame).await
        } else {
            Err(format!("node {from} is not a member"))
        };
        if let Err(reason) = accepted {
            eprintln!(
                "coracle: node {} shard {}: dropped a frame from node {from}: {reason}",
                shard.config.node, shard.index
            );
        }
    }
}

/// A client connection: a writer task for the responses, and this task reading requests.
async fn serve_client<S: StateMachine>(
    shard: Rc<Shard<S>>,
    mut reader: FrameReader<ReadHalf<TcpStream>>,
    write_half: WriteHalf<TcpStream>,
    peer_address: String,
) {
    let connection = shard.new_connection();
    let writer = {
        let connection = Rc::clone(&connection);
        glommio::spawn_local(async move { connection.write_until_closed(write_half).await })
            .detach()
    };
    let reason = loop {
        let read = futures_lite::future::or(async { Some(reader.next().await) }, async {
            // A connection closed for not reading ends this reader too.
            while !connection.is_closed() {
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
            None
        });
        let frame = match read.await {
            None => break "closed for not reading its responses".to_string(),
            Some(Ok(Some(frame))) => frame,
            Some(Ok(None)) => break String::new(),
            Some(Err(error)) => break error.to_string(),
        };
        if frame.kind == kind::ADMIN_REQUEST {
            let request = match AdminRequest::decode(frame.payload) {
                Ok(request) => request,
                Err(error) => break format!("malformed admin request: {error}"),
            };
            let for_the_node = matches!(
                request,
                AdminRequest::AddPeer { .. }
                    | AdminRequest::RemovePeer { .. }
                    | AdminRequest::Stats { .. }
            );
            if for_the_node || shard.holds(frame.group) {
                shard.inbox.push(Input::Admin {
                    connection: connection.id,
                    group: frame.group,
                    request,
                });
            } else {
                let answer = AdminResponse::Error {
                    reason: format!(
                        "group {} is not on shard {} of node {} (groups {}, shards {})",
                        frame.group,
                        shard.index,
                        shard.config.node,
                        shard.config.groups,
                        shard.config.shards
                    ),
                };
                connection.send_raw(kind::ADMIN_RESPONSE, frame.group, &answer.encode());
            }
            continue;
        }
        if frame.kind != kind::CLIENT_REQUEST {
            break format!("frame kind {} from a client", frame.kind);
        }
        if !shard.holds(frame.group) {
            break format!(
                "group {} is not on shard {} (groups {}, shards {})",
                frame.group, shard.index, shard.config.groups, shard.config.shards
            );
        }
        let request = match wire::decode_request(&frame.payload) {
            Ok(request) => request,
            Err(error) => break format!("malformed request: {error}"),
        };
        shard
            .inbox
            .push_from_reader(Input::Client {
                connection: connection.id,
                group: frame.group,
                request,
            })
            .await;
    };
    if !reason.is_empty() {
        eprintln!(
            "coracle: node {} shard {}: closed client connection {} ({peer_address}): {reason}",
            shard.config.node, shard.index, connection.id.0
        );
    }
    connection.close();
    shard.clients.borrow_mut().remove(&connection.id);
    shard.inbox.push(Input::ClientClosed {
        connection: connection.id,
    });
    let _ = writer.await;
}
