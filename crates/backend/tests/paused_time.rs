//! A pipelined connection's bounds, with tokio's paused clock: the test
//! runs the connection in its own runtime against a real loopback socket
//! whose peer never answers, and the clock jumps to each timer instead of
//! waiting for it, so the bound is checked exactly and at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shardgate_backend::{BackendErrorKind, Conn, ConnSettings, Episode, EpisodeLog, NodeStats};
use tokio::time::Instant;

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// A server that accepts connections and never writes a byte.
async fn silent_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::task::spawn_local(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

fn settings(addr: std::net::SocketAddr, timeout: Duration) -> ConnSettings {
    ConnSettings {
        addr,
        name: "test server".into(),
        handshake: Default::default(),
        timeout,
        connect_timeout: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        tcp_keepalive: false,
    }
}

fn conn(settings: ConnSettings) -> Conn {
    let episode = Rc::new(EpisodeLog::new(Arc::new(Episode::new("test".into()))));
    Conn::spawn(settings, Arc::new(NodeStats::default()), episode)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_request_to_a_silent_server_fails_at_its_bound_not_before() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let addr = silent_server().await;
            let conn = conn(settings(addr, Duration::from_secs(30)));
            let started = Instant::now();
            let reply = conn.send(Bytes::from_static(PING)).await;
            let waited = started.elapsed();
            let error = reply.expect_err("a silent server cannot answer");
            assert!(
                matches!(error.kind, BackendErrorKind::Timeout(_)),
                "{error:?}"
            );
            assert!(
                waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
                "failed after {waited:?}, the bound is 30 s"
            );
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_blocking_call_with_no_bound_is_not_timed_out() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let addr = silent_server().await;
            let conn = conn(settings(addr, Duration::from_secs(1)));
            // BLPOP with timeout 0: the call itself has no bound.
            let slot = conn.send_with_timeout(Bytes::from_static(PING), None);
            let waited = tokio::time::timeout(Duration::from_secs(3600), slot).await;
            assert!(waited.is_err(), "an unbounded call ended: {waited:?}");
        })
        .await;
}
