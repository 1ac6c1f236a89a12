//! One health probe of one node: PING and INFO replication, pipelined,
//! bounded by the probe timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use resp::Value;

use shardgate_core::topology::info::{parse_replication, Replication};
use shardgate_core::topology::probe::{is_busy, Probe};

use crate::handshake::Handshake;
use crate::wire::{text, WireConn};

/// A node's prober: keeps its connection between probes.
pub struct Prober {
    addr: SocketAddr,
    handshake: Handshake,
    timeout: Duration,
    conn: Option<WireConn>,
    /// What the last full probe learned, for probes answered `BUSY`.
    last: Option<Replication>,
}

impl Prober {
    pub fn new(addr: SocketAddr, handshake: Handshake, timeout: Duration) -> Prober {
        Prober {
            addr,
            handshake,
            timeout,
            conn: None,
            last: None,
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
            match WireConn::connect(self.addr, &self.handshake, self.timeout).await {
                Ok(conn) => self.conn = Some(conn),
                Err(e) if is_busy(&e) => return self.busy(started, true, e),
                Err(e) => return Err(e),
            }
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
            let error = String::from_utf8_lossy(e).into_owned();
            if is_busy(&error) {
                return self.busy(started, new_connection, error);
            }
            return Err(format!("PING: {error}"));
        }
        let info =
            text(info).ok_or_else(|| format!("INFO replication: unexpected reply {info:?}"))?;
        let replication = parse_replication(&info).ok_or("INFO replication has no role")?;
        self.last = Some(replication.clone());
        Ok(Probe {
            latency,
            replication,
            new_connection,
            busy: None,
        })
    }

    /// A probe answered `BUSY`: the node's last known replication state,
    /// marked busy (a failure when nothing is known of it yet).
    fn busy(&self, started: Instant, new_connection: bool, error: String) -> Result<Probe, String> {
        let replication = self
            .last
            .clone()
            .ok_or_else(|| format!("busy before its first answer: {error}"))?;
        Ok(Probe {
            latency: started.elapsed(),
            replication,
            new_connection,
            busy: Some(error),
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
