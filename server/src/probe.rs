//! A blocking, one-request-at-a-time connection to one shard of one node, on plain std
//! sockets: what `coracle admin` uses to ask a node about a group, and what tests use to
//! talk to a cluster without the client library's failover. It speaks the same handshake
//! and frames as everyone else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use coracle_engine::session::{
    wire, ClientError, ClientId, ClientRequest, RequestBody, ResponseBody, ToClient,
};
use coracle_net::admin::{AdminRequest, AdminResponse, StageFigures};
use coracle_net::frame::{encode_frame_into, FrameDecoder};
use coracle_net::{kind, Hello, HelloReply, Party, PROTOCOL_VERSION};

use crate::node_config::shard_address;

/// See the module documentation.
#[derive(Debug)]
pub struct Probe {
    stream: TcpStream,
    buffer: BytesMut,
    decoder: FrameDecoder,
    next_request: u64,
    /// The node that answered.
    pub node: u64,
    /// The shard that answered.
    pub shard: u32,
    /// How many shards the node runs.
    pub shards: u32,
}

impl Probe {
    /// Connects and says hello as client `client` of `cluster`; every later read and
    /// write waits at most `timeout`.
    ///
    /// # Errors
    /// The connection failed, or the node refused (its reason is in the message).
    pub fn connect(
        address: SocketAddr,
        cluster: &str,
        client: ClientId,
        timeout: Duration,
    ) -> Result<Probe, String> {
        let stream = TcpStream::connect_timeout(&address, timeout)
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|error| format!("{address}: {error}"))?;
        let mut probe = Probe {
            stream,
            buffer: BytesMut::new(),
            decoder: FrameDecoder::default(),
            next_request: 1,
            node: 0,
            shard: 0,
            shards: 0,
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster: cluster.to_string(),
            party: Party::Client { client: client.0 },
        };
        probe.write(kind::HELLO, 0, &hello.encode())?;
        let frame = probe.read_frame()?;
        if frame.kind != kind::HELLO_REPLY {
            return Err(format!(
                "{address} answered the hello with frame kind {}",
                frame.kind
            ));
        }
        match HelloReply::decode(frame.payload) {
            Ok(HelloReply::Accepted {
                node,
                shard,
                shards,
                ..
            }) => {
                probe.node = node;
                probe.shard = shard;
                probe.shards = shards;
                Ok(probe)
            }
            Ok(HelloReply::Refused { reason }) => Err(format!("{address} refused: {reason}")),
            Err(error) => Err(format!("{address}: malformed hello reply: {error}")),
        }
    }

    /// Connects to the shard of the node at `base` (its shard-0 address) that runs
    /// `group`, learning the node's shard count from shard 0 first.
    ///
    /// # Errors
    /// As [`Probe::connect`].
    pub fn connect_group(
        base: SocketAddr,
        group: u32,
        cluster: &str,
        client: ClientId,
        timeout: Duration,
    ) -> Result<Probe, String> {
        let first = Probe::connect(base, cluster, client, timeout)?;
        let shard = group % first.shards.max(1);
        if shard == first.shard {
            return Ok(first);
        }
        let address = shard_address(base, shard)
            .ok_or_else(|| format!("{base}: no port for shard {shard}"))?;
        Probe::connect(address, cluster, client, timeout)
    }

    /// Connects to every shard of the node at `base`, in shard order.
    ///
    /// # Errors
    /// As [`Probe::connect`], for the first shard that fails.
    pub fn connect_every_shard(
        base: SocketAddr,
        cluster: &str,
        client: ClientId,
        timeout: Duration,
    ) -> Result<Vec<Probe>, String> {
        let first = Probe::connect(base, cluster, client, timeout)?;
        let shards = first.shards.max(1);
        let mut probes = vec![first];
        for shard in 1..shards {
            let address = shard_address(base, shard)
                .ok_or_else(|| format!("{base}: no port for shard {shard}"))?;
            probes.push(Probe::connect(address, cluster, client, timeout)?);
        }
        Ok(probes)
    }

    /// Sends one request to `group` and waits for its response (event batches that come
    /// meanwhile are skipped).
    ///
    /// # Errors
    /// The connection failed or sent something malformed.
    pub fn request(
        &mut self,
        group: u32,
        body: RequestBody,
    ) -> Result<Result<ResponseBody, ClientError>, String> {
        let request_id = self.next_request;
        self.next_request += 1;
        let request = ClientRequest { request_id, body };
        self.write(kind::CLIENT_REQUEST, group, &wire::encode_request(&request))?;
        loop {
            let frame = self.read_frame()?;
            if frame.kind != kind::TO_CLIENT {
                return Err(format!("frame kind {} instead of a response", frame.kind));
            }
            match wire::decode_to_client(&frame.payload) {
                Ok(ToClient::Response(response)) if response.request_id == request_id => {
                    return Ok(response.body)
                }
                Ok(_) => {}
                Err(error) => return Err(format!("malformed response: {error}")),
            }
        }
    }

    /// Asks the node about `group` (`coracle admin`).
    ///
    /// # Errors
    /// The connection failed or sent something malformed.
    pub fn admin(&mut self, group: u32, request: &AdminRequest) -> Result<AdminResponse, String> {
        self.write(kind::ADMIN_REQUEST, group, &request.encode())?;
        loop {
            let frame = self.read_frame()?;
            match frame.kind {
                kind::ADMIN_RESPONSE => {
                    return AdminResponse::decode(frame.payload)
                        .map_err(|error| format!("malformed admin response: {error}"))
                }
                kind::TO_CLIENT => {}
                other => return Err(format!("frame kind {other} instead of an admin answer")),
            }
        }
    }

    fn write(&mut self, frame_kind: u8, group: u32, payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(payload.len() + 32);
        encode_frame_into(frame_kind, group, usize::MAX, &mut out, |out| {
            out.extend_from_slice(payload);
        })
        .map_err(|error| error.to_string())?;
        self.stream
            .write_all(&out)
            .map_err(|error| format!("write: {error}"))
    }

    fn read_frame(&mut self) -> Result<coracle_net::Frame, String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.buffer)
                .map_err(|error| error.to_string())?
            {
                return Ok(frame);
            }
            let count = self
                .stream
                .read(&mut chunk)
                .map_err(|error| format!("read: {error}"))?;
            if count == 0 {
                return Err("the node closed the connection".into());
            }
            self.buffer.extend_from_slice(&chunk[..count]);
        }
    }
}

/// Waits until every group in `0..groups` has a leader that one of the nodes at
/// `addresses` (shard-0 addresses) reports as itself leading.
///
/// # Errors
/// `timeout` passed; the message names the groups still without a leader and the last
/// reason a node gave.
pub fn wait_for_leaders(
    addresses: &[SocketAddr],
    cluster: &str,
    groups: u32,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    let client = ClientId(u128::from(std::process::id()) << 64 | 0x1ead);
    let mut waiting: Vec<u32> = (0..groups).collect();
    let mut last_reason = String::from("no node answered yet");
    let per_call = Duration::from_millis(500);
    while !waiting.is_empty() {
        if std::time::Instant::now() >= deadline {
            let shown: Vec<String> = waiting.iter().take(10).map(ToString::to_string).collect();
            return Err(format!(
                "{} group(s) without a leader after {timeout:?} (groups {}{}); last: {last_reason}",
                waiting.len(),
                shown.join(", "),
                if waiting.len() > 10 { ", ..." } else { "" }
            ));
        }
        waiting.retain(|&group| {
            let led = addresses.iter().any(|&address| {
                let answer = Probe::connect_group(address, group, cluster, client, per_call)
                    .and_then(|mut probe| probe.admin(group, &AdminRequest::Status));
                match answer {
                    Ok(AdminResponse::Status(status)) => status.role == 5,
                    Ok(AdminResponse::Error { reason } | AdminResponse::Retry { reason })
                    | Err(reason) => {
                        last_reason = reason;
                        false
                    }
                    Ok(other) => {
                        last_reason = format!("unexpected answer {other:?}");
                        false
                    }
                }
            });
            !led
        });
        if !waiting.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// The commit stages of every shard of every node at `addresses` (shard-0 addresses),
/// merged by stage: the counts added, the percentiles of the shard that counted the most
/// (the busiest leader). `reset` starts them afresh after reading.
///
/// # Errors
/// A node did not answer.
pub fn commit_stages(
    addresses: &[SocketAddr],
    cluster: &str,
    reset: bool,
    timeout: Duration,
) -> Result<Vec<StageFigures>, String> {
    let client = ClientId(u128::from(std::process::id()) << 64 | 0x57a6);
    let mut merged: Vec<StageFigures> = Vec::new();
    let mut busiest: Vec<u64> = Vec::new();
    for &base in addresses {
        for (shard, mut connection) in Probe::connect_every_shard(base, cluster, client, timeout)?
            .into_iter()
            .enumerate()
        {
            let shard = u32::try_from(shard).unwrap_or(u32::MAX);
            let AdminResponse::Stats { stages } =
                connection.admin(shard, &AdminRequest::Stats { reset })?
            else {
                return Err(format!("{base} shard {shard}: no stats in the answer"));
            };
            for (position, stage) in stages.into_iter().enumerate() {
                if merged.len() <= position {
                    merged.push(StageFigures {
                        name: stage.name.clone(),
                        ..StageFigures::default()
                    });
                    busiest.push(0);
                }
                let count = stage.count;
                let total = merged[position].count + count;
                if count > busiest[position] {
                    busiest[position] = count;
                    merged[position] = stage;
                }
                merged[position].count = total;
            }
        }
    }
    Ok(merged)
}
