//! A connection to a Redis server or Sentinel: plain TCP, or TLS over
//! TCP (the pool's `backend_tls` / `sentinel_tls`).
//!
//! Two ways to use it. The control plane and push links read and write
//! through `AsyncRead` / `AsyncWrite` (and flush: a TLS stream keeps its
//! last records until flushed). The pipelined connections drive it the
//! way they drive a socket: wait for readiness ([`Stream::poll_readable`],
//! [`Stream::poll_writable`]), then move what is there without waiting
//! ([`Stream::try_read_buf`], [`Stream::try_write_vectored`]), so reads and
//! writes of one connection share one `select!` and a plaintext
//! connection pays nothing for TLS.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use shardgate_tls::tokio_rustls::client::TlsStream;
use shardgate_tls::wire;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Ready when a read would not wait (data, the end, an error). A
    /// poll, not a future: waiting on it keeps no waiter of its own (the
    /// connection's one task is the socket's one reader), which a
    /// `readable()` future made and dropped on every wake-up would.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(tcp) => tcp.poll_read_ready(cx),
            Stream::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                if wire::has_plaintext(session) {
                    return Poll::Ready(Ok(()));
                }
                tcp.poll_read_ready(cx)
            }
        }
    }

    /// Appends what has arrived to `buf`; `Ok(0)` at the end of the
    /// stream, `WouldBlock` when nothing has.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            // Through `poll_read`, not `TcpStream::try_read_buf`: a read
            // that leaves room in the buffer has drained the socket, and
            // `poll_read` then forgets the readiness, as the session's
            // client reads do. `try_read_buf` keeps it until a read finds
            // nothing, so every wake-up cost one more `recvfrom` that got
            // EAGAIN (0.18 per request at -P 1 over 3 shards). The no-op
            // waker registers nothing that lasts: the connection's loop
            // polls readiness with its own waker before it waits.
            Stream::Tcp(tcp) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match std::pin::pin!(tcp.read_buf(buf)).poll(&mut cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
            Stream::Tls(tls) => {
                let (tcp, session) = tls.get_mut();
                wire::try_read(tcp, session, buf).map_err(explain)
            }
        }
    }

    /// Ready when the socket takes more bytes (a poll, as
    /// [`Stream::poll_readable`]).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(tcp) => tcp.poll_write_ready(cx),
            Stream::Tls(tls) => tls.get_ref().0.poll_write_ready(cx),
        }
    }

    /// Writes what the socket takes now; `WouldBlock` when it takes
    /// nothing (over TLS: while records of an earlier write still wait).
    pub fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(tcp) => tcp.try_write_vectored(bufs),
            Stream::Tls(tls) => {
                let (tcp, session) = tls.get_mut();
                wire::try_write(tcp, session, bufs)
            }
        }
    }

    /// Whether bytes already written wait for the socket (TLS records).
    pub fn has_unsent(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
            Stream::Tls(tls) => wire::has_records(tls.get_ref().1),
        }
    }

    /// Pushes bytes already written that wait for the socket; `WouldBlock`
    /// when it is full.
    pub fn push_unsent(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(_) => Ok(()),
            Stream::Tls(tls) => {
                let (tcp, session) = tls.get_mut();
                wire::push(tcp, session)
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf).map_err(explain),
        }
    }
}

/// A TLS error in words: with TLS 1.3 a server that refuses the proxy's
/// certificate (or wants one) says so at the first read, as an alert.
fn explain(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::WouldBlock || error.get_ref().is_none() {
        return error;
    }
    let words = shardgate_tls::describe(&error, shardgate_tls::Side::Server);
    io::Error::new(error.kind(), words)
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
