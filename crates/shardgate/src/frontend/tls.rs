//! Clients over TLS: the handshake that comes between accept and the
//! session, and the stream a session then reads and writes.
//!
//! A handshake runs in its own task, bounded twice: by the pool's
//! `tls.handshake_timeout`, and by `tls.max_handshakes` per worker (the
//! accept loop takes no new client while that many are in progress, so
//! a reconnect storm waits in the listen backlog instead of taking the
//! worker's time from established clients). Each handshake takes the
//! pool's certificate as it is at that moment; a reload swaps it for the
//! next ones.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use shardgate_tls::tokio_rustls::server::TlsStream;
use shardgate_tls::{classify, tokio_rustls, wire, Side};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::session::ClientStream;
use crate::log_limit::LogLimit;

/// An established TLS client connection.
pub struct TlsClient(TlsStream<TcpStream>);

impl AsyncRead for TlsClient {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsClient {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsFd for TlsClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().0.as_fd()
    }
}

impl ClientStream for TlsClient {
    const UNIX: bool = false;
    const CAN_HAND_OVER: bool = false;

    fn poll_ready_to_read(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let (tcp, session) = self.0.get_ref();
        // Plaintext already decrypted is not signalled by the socket.
        if wire::has_plaintext(session) {
            return std::task::Poll::Ready(Ok(()));
        }
        tcp.poll_read_ready(cx)
    }

    fn fd(&self) -> i32 {
        self.0.get_ref().0.as_raw_fd()
    }

    /// Read from the leaf certificate rustls verified against the pool's
    /// `client_ca`.
    fn peer_common_name(&self) -> Option<String> {
        let (_, session) = self.0.get_ref();
        let leaf = session.peer_certificates()?.first()?;
        shardgate_tls::x509::summarize(leaf)?.common_name
    }
}

/// Handshakes in progress on one worker for one pool, bounded.
#[derive(Default)]
pub struct HandshakeSlots {
    busy: Cell<u32>,
    freed: Notify,
}

/// A handshake's place among [`HandshakeSlots`], given back on drop.
pub struct Slot(Rc<HandshakeSlots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.busy.set(self.0.busy.get().saturating_sub(1));
        self.0.freed.notify_one();
    }
}

impl HandshakeSlots {
    /// Waits until fewer than `max` handshakes run, then takes a place.
    pub async fn take(self: &Rc<Self>, max: impl Fn() -> u32) -> Slot {
        loop {
            // Registered before the check: a slot freed in between is seen.
            let freed = self.freed.notified();
            if self.busy.get() < max() {
                self.busy.set(self.busy.get() + 1);
                return Slot(self.clone());
            }
            freed.await;
        }
    }
}

/// Connections that have sent nothing yet may wait beside each handshake
/// place (they hold no place: see [`handshake`]).
pub const WAITING_PER_PLACE: u32 = 8;

/// Runs the server side of a handshake, bounded by the pool's timeout.
/// The client's first bytes are awaited before it takes one of `places`:
/// a connection that sends nothing costs no handshake place (otherwise a
/// few silent sockets every timeout would lock every new TLS client
/// out). Err: why it failed, already logged (rate limited) with the pool
/// and the client's address.
pub async fn handshake(
    pool: &crate::view::PoolWorker,
    stream: TcpStream,
    peer: &str,
    places: &Rc<HandshakeSlots>,
) -> Result<TlsClient, ()> {
    let Some(side) = pool.state.tls.acceptor.current() else {
        refused(
            &pool.state.name,
            peer,
            "unreadable",
            "the pool's certificate could not be read (see the error at startup or reload)",
        );
        return Err(());
    };
    let timeout = side.settings.handshake_timeout;
    let handshake = async {
        // The first byte of a ClientHello (peeked: the handshake reads it).
        stream.peek(&mut [0u8; 1]).await?;
        let max = side.settings.max_handshakes;
        let _place = places.take(|| max).await;
        tokio_rustls::TlsAcceptor::from(side.config.clone())
            .accept(stream)
            .await
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(stream)) => {
            pool.stats.tls_handshakes.inc();
            Ok(TlsClient(stream))
        }
        Ok(Err(error)) => {
            pool.stats.tls_handshake_failures.inc();
            let failure = classify(&error, Side::Client);
            refused(&pool.state.name, peer, failure.reason, &failure.words);
            Err(())
        }
        Err(_) => {
            pool.stats.tls_handshake_failures.inc();
            let words = format!(
                "no handshake within {} ms (tls.handshake_timeout)",
                side.settings.handshake_timeout.as_millis()
            );
            refused(&pool.state.name, peer, "timeout", &words);
            Err(())
        }
    }
}

/// Logs a refused handshake: at most one line every ten seconds per
/// reason, so a flood of bad clients cannot flood the log.
fn refused(pool: &str, peer: &str, reason: &str, words: &str) {
    static LIMITS: [LogLimit; 8] = [const { LogLimit::new(10) }; 8];
    let index = match reason {
        "no_certificate" => 0,
        "expired" | "not_yet_valid" => 1,
        "unknown_ca" | "bad_certificate" => 2,
        "not_tls" => 3,
        "timeout" => 4,
        "closed" | "io" => 5,
        "incompatible" => 6,
        _ => 7,
    };
    if LIMITS.get(index).is_some_and(LogLimit::allow) {
        tracing::warn!(pool, client = peer, "TLS handshake refused: {words}");
    }
}
