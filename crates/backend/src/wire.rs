//! Plain request/reply over a connection (TCP or TLS), for the control plane's own
//! traffic (health probes, Sentinel, failover commands): send a few
//! commands, read as many replies, each bounded by a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use resp::{Limits, ReplyScanner, Request, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use shardgate_core::error::NodeError;

use crate::handshake::{self, Handshake};
use crate::stream::Stream;

/// A control connection to one Redis or Sentinel.
pub struct WireConn {
    stream: Stream,
    buf: BytesMut,
    scanner: ReplyScanner,
}

impl WireConn {
    /// Connects and runs the handshake, within `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        handshake: &Handshake,
        timeout: Duration,
    ) -> Result<WireConn, NodeError> {
        let stream = handshake::connect(addr, handshake, timeout, false).await?;
        Ok(WireConn {
            stream,
            buf: BytesMut::with_capacity(4096),
            scanner: ReplyScanner::new(Limits::replies()),
        })
    }

    /// Sends the commands (pipelined) and returns their replies, decoded.
    pub async fn query(
        &mut self,
        commands: &[&[&[u8]]],
        timeout: Duration,
    ) -> Result<Vec<Value>, NodeError> {
        let run = async {
            let mut out = Vec::new();
            for command in commands {
                out.extend_from_slice(&Request::from_args(command).raw);
            }
            self.stream
                .write_all(&out)
                .await
                .map_err(|e| NodeError::Io(e.to_string()))?;
            self.stream
                .flush()
                .await
                .map_err(|e| NodeError::Io(e.to_string()))?;
            let mut replies = Vec::with_capacity(commands.len());
            for _ in commands {
                let frame = self.next_frame().await?;
                let value = resp::decode(&frame, &Limits::replies())
                    .map_err(|e| NodeError::Io(e.to_string()))?;
                replies.push(value);
            }
            Ok(replies)
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| NodeError::Timeout(timeout))?
    }

    /// One command, one reply.
    pub async fn call(&mut self, command: &[&[u8]], timeout: Duration) -> Result<Value, NodeError> {
        let mut replies = self.query(&[command], timeout).await?;
        replies
            .pop()
            .ok_or_else(|| NodeError::Unexpected("no reply".into()))
    }

    /// The next reply frame (for subscriptions: pushed messages).
    pub async fn next_frame(&mut self) -> Result<Bytes, NodeError> {
        loop {
            let scanned = self
                .scanner
                .scan(&self.buf)
                .map_err(|e| NodeError::Io(format!("invalid reply: {e}")))?;
            if let Some(frame) = scanned {
                return Ok(self.buf.split_to(frame.len).freeze());
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| NodeError::Io(e.to_string()))?;
            if n == 0 {
                return Err(NodeError::Io("connection closed by the server".into()));
            }
        }
    }
}

/// A reply's text (bulk, simple or verbatim string).
pub fn text(value: &Value) -> Option<String> {
    value.as_bytes().map(|b| {
        let s = String::from_utf8_lossy(b);
        match s.strip_prefix("txt:") {
            Some(rest) if matches!(value.without_attributes(), Value::Verbatim(..)) => {
                rest.to_string()
            }
            _ => s.into_owned(),
        }
    })
}
