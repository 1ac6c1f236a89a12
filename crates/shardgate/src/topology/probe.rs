//! One health probe of one node: PING and INFO replication, pipelined,
//! bounded by the probe timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use resp::Value;

use super::info::{parse_replication, Replication};
use super::wire::{text, WireConn};
use crate::backend::Handshake;

/// What one successful probe learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub latency: Duration,
    pub replication: Replication,
    /// Answered on a connection made for this probe: the node may have
    /// restarted since the last answer (a restart breaks the kept one).
    pub new_connection: bool,
}

/// A node's prober: keeps its connection between probes.
pub struct Prober {
    addr: SocketAddr,
    handshake: Handshake,
    timeout: Duration,
    conn: Option<WireConn>,
}

impl Prober {
    pub fn new(addr: SocketAddr, handshake: Handshake, timeout: Duration) -> Prober {
        Prober {
            addr,
            handshake,
            timeout,
            conn: None,
        }
    }

    /// Probes once; on any failure the connection is dropped (the next
    /// probe reconnects) and the reason returned.
    pub async fn probe(&mut self) -> Result<Probe, String> {
        let result = self.try_probe().await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn try_probe(&mut self) -> Result<Probe, String> {
        let started = Instant::now();
        let new_connection = self.conn.is_none();
        if new_connection {
            self.conn = Some(WireConn::connect(self.addr, &self.handshake, self.timeout).await?);
        }
        let conn = self.conn.as_mut().ok_or("not connected")?;
        let left = self
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let replies = conn
            .query(&[&[b"PING"], &[b"INFO", b"replication"]], left)
            .await?;
        let latency = started.elapsed();
        let [pong, info] = replies.as_slice() else {
            return Err("short reply".into());
        };
        if let Value::Error(e) = pong {
            return Err(format!("PING: {}", String::from_utf8_lossy(e)));
        }
        let info =
            text(info).ok_or_else(|| format!("INFO replication: unexpected reply {info:?}"))?;
        let replication = parse_replication(&info).ok_or("INFO replication has no role")?;
        Ok(Probe {
            latency,
            replication,
            new_connection,
        })
    }

    /// Runs one command on the node (REPLICAOF, CLIENT LIST...).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Value, String> {
        if self.conn.is_none() {
            self.conn = Some(WireConn::connect(self.addr, &self.handshake, self.timeout).await?);
        }
        let conn = self.conn.as_mut().ok_or("not connected")?;
        let result = conn.call(args, self.timeout * 3).await;
        if result.is_err() {
            self.conn = None;
        }
        match result? {
            Value::Error(e) => Err(String::from_utf8_lossy(&e).into_owned()),
            value => Ok(value),
        }
    }
}
