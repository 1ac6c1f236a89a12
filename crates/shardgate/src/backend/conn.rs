//! One shared, pipelined backend connection.
//!
//! Many client sessions of one worker send requests through a
//! [`BackendConn`] handle; one task owns the socket. It writes every queued
//! request with one `writev`, and matches replies to requests by order (a
//! FIFO of pending reply senders), so a connection carries as many requests
//! in flight as clients send. When the connection breaks, every pending
//! request gets an error at once, and the task reconnects with exponential
//! backoff; while it is down, new requests fail fast without queueing.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use resp::{Limits, ReplyScanner};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use super::error::{BackendError, BackendErrorKind};
use super::handshake;
use crate::config::Secret;
use crate::io::write_all_queued;

/// Requests queued to one connection before senders wait (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// Requests taken off the queue per write.
const WRITE_BATCH: usize = 256;
const READ_CHUNK: usize = 16 * 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The reply to one request, or why there is none.
pub type ReplyResult = Result<Bytes, BackendError>;
pub type ReplyReceiver = oneshot::Receiver<ReplyResult>;

struct Pending {
    frame: Bytes,
    reply: oneshot::Sender<ReplyResult>,
}

/// How a connection is doing, as its senders see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Up,
    /// Failed; requests are refused until this instant, then it reconnects.
    Down { until: Instant },
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub addr: SocketAddr,
    /// `pool 'alpha' server 127.0.0.1:6379`, for logs and client errors.
    pub name: Arc<str>,
    pub auth: Option<Secret>,
    pub db: u32,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest wait between reconnects (twemproxy's `server_retry_timeout`).
    pub max_backoff: Duration,
    pub tcp_keepalive: bool,
}

/// A handle to one connection task; cheap to clone within a worker.
#[derive(Clone)]
pub struct BackendConn {
    tx: mpsc::Sender<Pending>,
    status: Rc<Cell<Status>>,
    last_error: Rc<Cell<Option<Arc<str>>>>,
    name: Arc<str>,
}

impl BackendConn {
    /// Queues one request frame; the receiver yields its reply. Fails at
    /// once, without queueing, while the connection is down.
    pub async fn send(&self, frame: Bytes) -> Result<ReplyReceiver, BackendError> {
        if let Status::Down { until } = self.status.get() {
            if Instant::now() < until {
                return Err(self.unavailable());
            }
        }
        let (reply, receiver) = oneshot::channel();
        self.tx
            .send(Pending { frame, reply })
            .await
            .map_err(|_| self.unavailable())?;
        Ok(receiver)
    }

    pub fn status(&self) -> Status {
        self.status.get()
    }

    fn unavailable(&self) -> BackendError {
        let reason = self.last_error.take();
        self.last_error.set(reason.clone());
        BackendError {
            server: self.name.clone(),
            kind: BackendErrorKind::Unavailable(reason.unwrap_or_else(|| "not connected".into())),
        }
    }
}

/// Starts a connection task on the current worker (`spawn_local`).
pub fn spawn(settings: BackendSettings) -> BackendConn {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let status = Rc::new(Cell::new(Status::Connecting));
    let last_error = Rc::new(Cell::new(None));
    let conn = BackendConn {
        tx,
        status: status.clone(),
        last_error: last_error.clone(),
        name: settings.name.clone(),
    };
    let task = ConnTask {
        settings,
        rx,
        status,
        last_error,
    };
    tokio::task::spawn_local(task.run());
    conn
}

struct ConnTask {
    settings: BackendSettings,
    rx: mpsc::Receiver<Pending>,
    status: Rc<Cell<Status>>,
    last_error: Rc<Cell<Option<Arc<str>>>>,
}

impl ConnTask {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            self.status.set(Status::Connecting);
            let failure = match self.connect().await {
                Ok(stream) => {
                    if self.last_error.take().is_some() {
                        tracing::info!(server = %self.settings.name, "backend connection restored");
                    }
                    self.status.set(Status::Up);
                    backoff = MIN_BACKOFF;
                    match self.serve(stream).await {
                        Ok(()) => return, // every handle is gone: the worker is stopping
                        Err(kind) => {
                            tracing::warn!(server = %self.settings.name, "backend connection lost: {kind:?}");
                            kind_reason(&kind)
                        }
                    }
                }
                Err(reason) => {
                    if self.last_error.take().is_none() {
                        tracing::warn!(server = %self.settings.name, "cannot connect to backend: {reason}");
                    }
                    reason
                }
            };
            self.last_error.set(Some(failure.clone()));
            let until = Instant::now() + backoff;
            self.status.set(Status::Down { until });
            if !self.refuse_until(until, &failure).await {
                return;
            }
            backoff = (backoff * 2).min(self.settings.max_backoff.max(MIN_BACKOFF));
        }
    }

    async fn connect(&self) -> Result<TcpStream, Arc<str>> {
        let settings = &self.settings;
        let connect = async {
            let mut stream = TcpStream::connect(settings.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            if settings.tcp_keepalive {
                let sock = socket2::SockRef::from(&stream);
                sock.set_keepalive(true).map_err(|e| e.to_string())?;
            }
            handshake::run(&mut stream, settings.auth.as_ref(), settings.db).await?;
            Ok::<_, String>(stream)
        };
        match tokio::time::timeout(settings.connect_timeout, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(reason)) => Err(reason.into()),
            Err(_) => Err(format!(
                "connect timed out after {} ms",
                settings.connect_timeout.as_millis()
            )
            .into()),
        }
    }

    /// While down, answers queued requests with an error until `until`.
    /// Returns false when every handle is gone.
    async fn refuse_until(&mut self, until: Instant, reason: &Arc<str>) -> bool {
        let sleep = sleep_until(until);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                pending = self.rx.recv() => match pending {
                    Some(pending) => {
                        let _ = pending.reply.send(Err(self.error(BackendErrorKind::Unavailable(reason.clone()))));
                    }
                    None => return false,
                },
            }
        }
    }

    fn error(&self, kind: BackendErrorKind) -> BackendError {
        BackendError {
            server: self.settings.name.clone(),
            kind,
        }
    }

    /// Carries traffic until the connection fails (Err) or every handle is
    /// dropped (Ok). Pending requests are failed before returning.
    async fn serve(&mut self, mut stream: TcpStream) -> Result<(), BackendErrorKind> {
        let mut in_flight: VecDeque<(Instant, oneshot::Sender<ReplyResult>)> = VecDeque::new();
        let result = self.pump(&mut stream, &mut in_flight).await;
        if let Err(kind) = &result {
            for (_, reply) in in_flight.drain(..) {
                let _ = reply.send(Err(self.error(kind.clone())));
            }
        }
        result
    }

    async fn pump(
        &mut self,
        stream: &mut TcpStream,
        in_flight: &mut VecDeque<(Instant, oneshot::Sender<ReplyResult>)>,
    ) -> Result<(), BackendErrorKind> {
        let timeout = self.settings.timeout;
        let mut scanner = ReplyScanner::new(Limits::default());
        let mut read_buf = BytesMut::with_capacity(READ_CHUNK);
        let mut batch: Vec<Pending> = Vec::with_capacity(WRITE_BATCH);
        let mut writes: VecDeque<Bytes> = VecDeque::with_capacity(WRITE_BATCH);
        // One timer, re-armed only when the oldest request changes.
        let timer = sleep_until(Instant::now() + timeout);
        tokio::pin!(timer);
        let mut armed_for: Option<Instant> = None;
        loop {
            if let Some(&(sent, _)) = in_flight.front() {
                if armed_for != Some(sent) {
                    timer.as_mut().reset(sent + timeout);
                    armed_for = Some(sent);
                }
            }
            tokio::select! {
                biased;
                read = stream.read_buf(&mut read_buf) => {
                    match read {
                        Ok(0) => return Err(BackendErrorKind::ConnectionLost("closed by the server".into())),
                        Ok(_) => {}
                        Err(e) => return Err(BackendErrorKind::ConnectionLost(e.to_string().into())),
                    }
                    self.deliver(&mut scanner, &mut read_buf, in_flight)?;
                    if read_buf.capacity() - read_buf.len() < READ_CHUNK / 4 {
                        read_buf.reserve(READ_CHUNK);
                    }
                }
                count = self.rx.recv_many(&mut batch, WRITE_BATCH) => {
                    if count == 0 {
                        return Ok(());
                    }
                    let now = Instant::now();
                    for pending in batch.drain(..) {
                        writes.push_back(pending.frame);
                        in_flight.push_back((now, pending.reply));
                    }
                    write_all_queued(stream, &mut writes)
                        .await
                        .map_err(|e| BackendErrorKind::ConnectionLost(e.to_string().into()))?;
                }
                () = &mut timer, if !in_flight.is_empty() => {
                    if let Some(&(sent, _)) = in_flight.front() {
                        if sent + timeout <= Instant::now() {
                            return Err(BackendErrorKind::Timeout(timeout.as_millis() as u64));
                        }
                    }
                    armed_for = None;
                }
            }
        }
    }

    /// Hands every complete reply in `read_buf` to the oldest waiter.
    fn deliver(
        &self,
        scanner: &mut ReplyScanner,
        read_buf: &mut BytesMut,
        in_flight: &mut VecDeque<(Instant, oneshot::Sender<ReplyResult>)>,
    ) -> Result<(), BackendErrorKind> {
        loop {
            let frame = match scanner.scan(read_buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(BackendErrorKind::Protocol(e.to_string().into())),
            };
            let reply = read_buf.split_to(frame.len).freeze();
            match in_flight.pop_front() {
                // A client that went away dropped its receiver: nothing to do.
                Some((_, waiter)) => {
                    let _ = waiter.send(Ok(reply));
                }
                None => {
                    return Err(BackendErrorKind::Protocol(
                        "a reply arrived with no request waiting for it".into(),
                    ))
                }
            }
        }
    }
}

fn kind_reason(kind: &BackendErrorKind) -> Arc<str> {
    match kind {
        BackendErrorKind::Unavailable(r)
        | BackendErrorKind::ConnectionLost(r)
        | BackendErrorKind::Protocol(r) => r.clone(),
        BackendErrorKind::Timeout(ms) => format!("no reply within {ms} ms").into(),
    }
}
