//! What a fresh backend connection goes through before it carries client
//! traffic: the TLS handshake when the pool dials its servers (or
//! Sentinels) with TLS, then AUTH (with a user for Redis 6 ACLs), HELLO 3
//! for RESP3 connections, and SELECT for a database other than 0.
//! Pipelined: one round trip.

use bytes::BytesMut;
use resp::{Limits, ReplyScanner, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::stream::Stream;

use shardgate_core::config::BackendAuth;
use shardgate_core::error::NodeError;
use shardgate_core::frames::error_text;
pub use shardgate_tls::Connector;

/// The state a new connection must be put in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handshake {
    pub auth: Option<BackendAuth>,
    pub db: u32,
    pub resp3: bool,
    /// `CLIENT SETNAME`, so operators can tell shardgate's connections apart.
    pub client_name: Option<String>,
    /// Ask the server for the connection's id (`CLIENT ID`, last), so the
    /// proxy can name it later (CLIENT UNBLOCK of a leased connection).
    pub ask_id: bool,
    /// `READONLY`: a Redis Cluster replica then serves reads of its
    /// primary's slots (a primary ignores it; only for cluster nodes).
    pub readonly: bool,
    /// Plaintext, or TLS as the pool's live configuration says when the
    /// connection is made (a certificate re-read by a reload applies to
    /// the next connection; this one keeps its session).
    pub tls: Connector,
}

impl Handshake {
    /// The commands to send, each with the name used in error messages.
    fn commands(&self) -> Vec<(&'static str, Request)> {
        let mut commands = Vec::new();
        let credentials = self.auth.as_ref().map(|auth| {
            (
                auth.user.as_deref().unwrap_or("default").as_bytes(),
                auth.password.expose().as_bytes(),
            )
        });
        if self.resp3 {
            let mut args: Vec<&[u8]> = vec![b"HELLO", b"3"];
            if let Some((user, password)) = credentials {
                args.extend([b"AUTH".as_slice(), user, password]);
            }
            commands.push(("HELLO", Request::from_args(&args)));
        } else if let Some(auth) = &self.auth {
            let password = auth.password.expose().as_bytes();
            let request = match &auth.user {
                Some(user) => Request::from_args(&[b"AUTH".as_slice(), user.as_bytes(), password]),
                None => Request::from_args(&[b"AUTH".as_slice(), password]),
            };
            commands.push(("AUTH", request));
        }
        if self.db != 0 {
            let db = self.db.to_string();
            commands.push((
                "SELECT",
                Request::from_args(&[b"SELECT".as_slice(), db.as_bytes()]),
            ));
        }
        if let Some(name) = &self.client_name {
            commands.push((
                "CLIENT SETNAME",
                Request::from_args(&[b"CLIENT".as_slice(), b"SETNAME", name.as_bytes()]),
            ));
        }
        if self.readonly {
            commands.push(("READONLY", Request::from_args(&[b"READONLY".as_slice()])));
        }
        if self.ask_id {
            commands.push((
                "CLIENT ID",
                Request::from_args(&[b"CLIENT".as_slice(), b"ID"]),
            ));
        }
        commands
    }
}

/// What a handshake learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Greeting {
    /// The connection's id on the server, when asked for.
    pub id: Option<i64>,
}

/// Connects to `addr` (TCP_NODELAY, keepalive if asked) and runs the
/// handshake, all within `timeout`; the error says why, never with the
/// password.
pub async fn connect(
    addr: std::net::SocketAddr,
    handshake: &Handshake,
    timeout: std::time::Duration,
    keepalive: bool,
) -> Result<Stream, NodeError> {
    connect_greeted(addr, handshake, timeout, keepalive)
        .await
        .map(|(stream, _)| stream)
}

/// [`connect`], also returning what the handshake learned.
pub async fn connect_greeted(
    addr: std::net::SocketAddr,
    handshake: &Handshake,
    timeout: std::time::Duration,
    keepalive: bool,
) -> Result<(Stream, Greeting), NodeError> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| NodeError::Connect(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| NodeError::Connect(e.to_string()))?;
        if keepalive {
            socket2::SockRef::from(&tcp)
                .set_keepalive(true)
                .map_err(|e| NodeError::Connect(e.to_string()))?;
        }
        let mut stream = match handshake.tls.current() {
            Some(tls) => Stream::Tls(Box::new(
                tls.handshake(addr, tcp)
                    .await
                    .map_err(|e| NodeError::Connect(e.to_string()))?,
            )),
            None => Stream::Tcp(tcp),
        };
        let greeting = run(&mut stream, handshake).await?;
        Ok((stream, greeting))
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| NodeError::Timeout(timeout))?
}

/// Runs the handshake; returns why it failed, the password never in the
/// message.
pub async fn run<S>(stream: &mut S, handshake: &Handshake) -> Result<Greeting, NodeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let commands = handshake.commands();
    let mut greeting = Greeting::default();
    if commands.is_empty() {
        return Ok(greeting);
    }
    let mut out = Vec::new();
    for (_, request) in &commands {
        out.extend_from_slice(&request.raw);
    }
    stream
        .write_all(&out)
        .await
        .map_err(|e| NodeError::Io(format!("handshake write failed: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| NodeError::Io(format!("handshake write failed: {e}")))?;
    let mut buf = BytesMut::with_capacity(512);
    let mut scanner = ReplyScanner::new(Limits::replies());
    for (name, _) in &commands {
        let frame = loop {
            match scanner.scan(&buf) {
                Ok(Some(frame)) => break buf.split_to(frame.len),
                Ok(None) => {}
                Err(e) => return Err(NodeError::Io(format!("{name} reply is not RESP: {e}"))),
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| NodeError::Io(format!("handshake read failed: {e}")))?;
            if n == 0 {
                return Err(NodeError::Io(format!("closed by the server during {name}")));
            }
        };
        if let Some(reply) = error_text(&frame) {
            return Err(NodeError::Handshake {
                command: name,
                reply,
            });
        }
        if *name == "CLIENT ID" {
            greeting.id = shardgate_core::frames::integer(&frame);
        }
    }
    Ok(greeting)
}
