//! One client connection: read every ready request, dispatch each, write
//! the replies back in order, one `writev` per batch.
//!
//! The loop is strictly read batch -> dispatch -> collect -> write. While a
//! batch's replies are written the session reads nothing more, so a client
//! that does not read its replies stops being read (TCP pushes back on it)
//! instead of growing the proxy's memory; replies it leaves unread beyond
//! `client_output_limit` get it disconnected.

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use resp::{Limits, ProtocolError, Request, RequestParser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::backend::handshake;
use crate::config::PoolConfig;

use crate::dispatch::{self, Dispatched, Pending};
use crate::io::{read_now, write_all_queued, write_queued_now};
use crate::worker::pool::PoolWorker;

/// Requests dispatched before their replies are collected; the rest wait
/// in the read buffer (this bounds the replies one batch holds).
const MAX_BATCH: usize = 1024;
/// Reply bytes gathered before trying to write them out mid-batch.
const FLUSH_AT: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Runs one client session to its end.
pub async fn run<S>(stream: S, pool: Rc<PoolWorker>, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = Limits {
        max_bulk_len: pool.config().max_request_bytes,
        ..Limits::default()
    };
    let mut session = Session {
        stream,
        pool,
        parser: RequestParser::new(limits),
        read_buf: BytesMut::with_capacity(READ_CHUNK),
        pending: VecDeque::new(),
        out: VecDeque::new(),
        out_len: 0,
        shutdown,
        tunnel: None,
    };
    match session.serve().await {
        Err(reason @ End::SlowReader(_)) => tracing::warn!(pool = %session.pool.config().name, "client {reason}"),
        Err(reason) => tracing::debug!("client session ended: {reason}"),
        Ok(()) => {}
    }
}

struct Session<S> {
    stream: S,
    pool: Rc<PoolWorker>,
    parser: RequestParser,
    read_buf: BytesMut,
    pending: VecDeque<Pending>,
    out: VecDeque<Bytes>,
    out_len: usize,
    shutdown: watch::Receiver<bool>,
    /// Set when a request needs a connection of its own (see [`Dispatched::Tunnel`]).
    tunnel: Option<(usize, Request)>,
}

/// Why a session ends.
enum End {
    Io(io::Error),
    ClientClosed,
    Quit,
    Protocol(ProtocolError),
    SlowReader(usize),
    Shutdown,
    TunnelClosed,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Io(e) => write!(f, "i/o error: {e}"),
            End::ClientClosed => f.write_str("client closed the connection"),
            End::Quit => f.write_str("QUIT"),
            End::Protocol(e) => write!(f, "protocol error: {e}"),
            End::SlowReader(n) => write!(f, "disconnected: client left {n} reply bytes unread"),
            End::Shutdown => f.write_str("proxy shutting down"),
            End::TunnelClosed => f.write_str("relayed connection closed"),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn serve(&mut self) -> Result<(), End> {
        loop {
            // Requests left over from a full batch are dispatched before
            // anything more is read.
            let stop = self.dispatch_batch().await;
            if self.pending.is_empty() && stop.is_none() {
                self.read_more().await?;
                continue;
            }
            self.collect_replies().await?;
            if let Some(end) = stop {
                return Err(end);
            }
            if let Some((server, request)) = self.tunnel.take() {
                self.relay(server, request).await?;
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), End> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        if !*self.shutdown.borrow() {
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.read_buf) => return match read {
                    Ok(0) => Err(End::ClientClosed),
                    Ok(_) => Ok(()),
                    Err(e) => Err(End::Io(e)),
                },
                _ = self.shutdown.changed() => {}
            }
        }
        // Shutting down: serve what the client has already sent, but wait
        // for nothing more.
        match read_now(&mut self.stream, &mut self.read_buf) {
            Ok(Some(0)) => Err(End::ClientClosed),
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(End::Shutdown),
            Err(e) => Err(End::Io(e)),
        }
    }

    /// Parses and dispatches every complete request in the read buffer (up
    /// to [`MAX_BATCH`]). Returns why the session must end after this
    /// batch's replies are written, if it must.
    async fn dispatch_batch(&mut self) -> Option<End> {
        if self.read_buf.is_empty() {
            return None;
        }
        let view = self.pool.view();
        while self.pending.len() < MAX_BATCH {
            match self.parser.next(&mut self.read_buf) {
                Ok(Some(request)) => {
                    match dispatch::dispatch(&self.pool, &view, request).await {
                        Dispatched::Reply(pending) => self.pending.push_back(pending),
                        Dispatched::Quit(pending) => {
                            self.pending.push_back(pending);
                            return Some(End::Quit);
                        }
                        Dispatched::Tunnel { server, request } => {
                            self.tunnel = Some((server, request));
                            return None;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.pending
                        .push_back(Pending::error(&format!("ERR Protocol error: {e}")));
                    return Some(End::Protocol(e));
                }
            }
        }
        None
    }

    /// Awaits every pending reply in order and writes them out.
    async fn collect_replies(&mut self) -> Result<(), End> {
        let limit = self.pool.config().client_output_limit;
        while let Some(pending) = self.pending.pop_front() {
            let reply = pending.resolve().await;
            self.out_len += reply.len();
            self.out.push_back(reply);
            if self.out_len >= FLUSH_AT {
                self.try_write_now().map_err(End::Io)?;
                if self.out_len > limit {
                    return Err(End::SlowReader(self.out_len));
                }
            }
        }
        write_all_queued(&mut self.stream, &mut self.out)
            .await
            .map_err(End::Io)?;
        self.out_len = 0;
        Ok(())
    }

    /// From now on, relays this client's bytes to `server` on a connection
    /// of its own, starting with `request` and whatever the client sent
    /// after it. If the connection cannot be made, the client gets an error
    /// for `request` and the session carries on as before.
    async fn relay(&mut self, server: usize, request: Request) -> Result<(), End> {
        let pool = self.pool.clone();
        let view = pool.view();
        let config = pool.config();
        let Some(conns) = view.servers.get(server) else {
            self.pending.push_back(Pending::error("ERR shardgate: internal error: no such server"));
            return self.collect_replies().await;
        };
        let name = format!("pool '{}' server {}", config.name, conns.server.label);
        let mut backend = match own_connection(conns.server.addr, config).await {
            Ok(backend) => backend,
            Err(reason) => {
                let message = format!("ERR shardgate: {name} is unavailable: {reason}");
                self.pending.push_back(Pending::error(&message));
                return self.collect_replies().await;
            }
        };
        let relay = async {
            backend.write_all(&request.raw).await?;
            let rest = self.read_buf.split();
            backend.write_all(&rest).await?;
            tokio::io::copy_bidirectional(&mut self.stream, &mut backend).await
        };
        tokio::select! {
            result = relay => match result {
                Ok(_) => Err(End::TunnelClosed),
                Err(e) => Err(End::Io(e)),
            },
            _ = wait_for_shutdown(self.shutdown.clone()) => Err(End::Shutdown),
        }
    }

    /// Writes what the socket takes right now, without waiting.
    fn try_write_now(&mut self) -> io::Result<()> {
        let written = write_queued_now(&mut self.stream, &mut self.out)?;
        self.out_len -= written;
        Ok(())
    }
}

/// A dedicated connection to a server, with the pool's AUTH and SELECT.
async fn own_connection(addr: std::net::SocketAddr, config: &PoolConfig) -> Result<TcpStream, String> {
    let connect = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        handshake::run(&mut stream, config.redis_auth.as_ref(), config.redis_db).await?;
        Ok(stream)
    };
    tokio::time::timeout(config.connect_timeout, connect)
        .await
        .unwrap_or_else(|_| Err(format!("connect timed out after {} ms", config.connect_timeout.as_millis())))
}

async fn wait_for_shutdown(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
