//! The client socket: TCP, unix or TLS over TCP, read only once it is
//! readable so an idle client holds no read buffer.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// A client connection the session can serve.
pub trait ClientStream: AsyncRead + AsyncWrite + AsFd + Unpin + 'static {
    /// A unix socket (else TCP).
    const UNIX: bool;

    /// Whether a binary upgrade can hand the connection to the new
    /// process. A TLS session cannot be (its keys live in this process):
    /// its client stays here until it leaves, or until the old process
    /// exits after `--shutdown-grace`.
    const CAN_HAND_OVER: bool;

    /// Resolves when a read would not block (data, end of stream or error).
    ///
    /// A poll of the socket's readiness rather than tokio's `readable()`:
    /// that future links a waiter node into the socket's list and unlinks
    /// it on every wake-up, about 400 instructions per request at `-P 1`.
    /// Only the session waits to read its client, so the socket's single
    /// reader waker is enough.
    fn ready_to_read(&self) -> impl Future<Output = io::Result<()>> {
        std::future::poll_fn(|cx| self.poll_ready_to_read(cx))
    }

    /// Whether a read would not block, registering `cx` to be woken when it
    /// would not (also for a wait that keeps no future of its own: an idle
    /// client's, where every byte counts).
    fn poll_ready_to_read(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// The socket's file descriptor (CLIENT LIST's `fd`).
    fn fd(&self) -> i32;

    /// The common name of the certificate the client presented (mutual
    /// TLS), if any.
    fn peer_common_name(&self) -> Option<String> {
        None
    }
}

impl ClientStream for TcpStream {
    const UNIX: bool = false;
    const CAN_HAND_OVER: bool = true;

    fn poll_ready_to_read(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}

impl ClientStream for UnixStream {
    const UNIX: bool = true;
    const CAN_HAND_OVER: bool = true;

    fn poll_ready_to_read(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}
