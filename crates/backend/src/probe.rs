//! One health probe of one node: PING and INFO replication, pipelined,
//! bounded by the probe timeout; host names the node reports are resolved
//! before the result leaves (the controller decides on addresses).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use resp::Value;
use shardgate_core::error::NodeError;
use shardgate_core::topology::info::{parse_replication, Replication};
use shardgate_core::topology::probe::Probe;

use crate::handshake::Handshake;
use crate::resolve::Resolver;
use crate::wire::{text, WireConn};

/// A node's prober: keeps its connection between probes.
pub struct Prober {
    addr: SocketAddr,
    handshake: Handshake,
    timeout: Duration,
    conn: Option<WireConn>,
    /// What the last full probe learned, for probes answered `BUSY`.
    last: Option<Replication>,
    resolver: Resolver,
}

impl Prober {
    pub fn new(addr: SocketAddr, handshake: Handshake, timeout: Duration) -> Prober {
        Prober {
            addr,
            handshake,
            timeout,
            conn: None,
            last: None,
            resolver: Resolver::default(),
        }
    }

    /// Probes once; on any failure the connection is dropped (the next
    /// probe reconnects) and the reason returned.
    pub async fn probe(&mut self) -> Result<Probe, NodeError> {
        let result = self.try_probe().await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn try_probe(&mut self) -> Result<Probe, NodeError> {
        let started = Instant::now();
        let new_connection = self.conn.is_none();
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => match WireConn::connect(self.addr, &self.handshake, self.timeout).await {
                Ok(conn) => self.conn.insert(conn),
                Err(e) if e.is_busy() => return self.busy(started, true, e),
                Err(e) => return Err(e),
            },
        };
        let left = self
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let replies = conn
            .query(&[&[b"PING"], &[b"INFO", b"replication"]], left)
            .await?;
        let latency = started.elapsed();
        let [pong, info] = replies.as_slice() else {
            return Err(NodeError::Unexpected("short reply".into()));
        };
        if let Value::Error(e) = pong {
            let error = NodeError::Replied(String::from_utf8_lossy(e).into_owned());
            if error.is_busy() {
                return self.busy(started, new_connection, error);
            }
            return Err(error);
        }
        let info = text(info).ok_or_else(|| {
            NodeError::Unexpected(format!("INFO replication: unexpected reply {info:?}"))
        })?;
        let mut replication = parse_replication(&info)
            .ok_or_else(|| NodeError::Unexpected("INFO replication has no role".into()))?;
        for (host, port) in replication.names() {
            self.resolver.lookup(&host, port).await;
        }
        replication.resolve_with(|host, port| self.resolver.cached(host, port));
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
    fn busy(
        &self,
        started: Instant,
        new_connection: bool,
        error: NodeError,
    ) -> Result<Probe, NodeError> {
        let Some(replication) = self.last.clone() else {
            return Err(error);
        };
        Ok(Probe {
            latency: started.elapsed(),
            replication,
            new_connection,
            busy: Some(error.to_string()),
        })
    }

    /// Runs one command on the node (ROLE, REPLICAOF, CLIENT LIST...).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Value, NodeError> {
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => self
                .conn
                .insert(WireConn::connect(self.addr, &self.handshake, self.timeout).await?),
        };
        let result = conn.call(args, self.timeout * 3).await;
        if result.is_err() {
            self.conn = None;
        }
        match result? {
            Value::Error(e) => Err(NodeError::Replied(String::from_utf8_lossy(&e).into_owned())),
            value => Ok(value),
        }
    }
}
