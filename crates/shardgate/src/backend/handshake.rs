//! What a fresh backend connection sends before it carries client traffic:
//! AUTH (when the pool has `redis_auth`) and SELECT (when `redis_db` is not 0).

use bytes::BytesMut;
use resp::{Limits, ReplyScanner, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Secret;

/// Runs AUTH and SELECT; returns why it failed, with the password never in
/// the message.
pub async fn run(stream: &mut TcpStream, auth: Option<&Secret>, db: u32) -> Result<(), String> {
    let mut commands = Vec::new();
    if let Some(secret) = auth {
        commands.push(("AUTH", Request::from_args(&[b"AUTH".as_slice(), secret.expose().as_bytes()])));
    }
    if db != 0 {
        commands.push(("SELECT", Request::from_args(&[b"SELECT".to_vec(), db.to_string().into_bytes()])));
    }
    if commands.is_empty() {
        return Ok(());
    }
    for (_, request) in &commands {
        stream
            .write_all(&request.raw)
            .await
            .map_err(|e| format!("handshake write failed: {e}"))?;
    }
    let mut buf = BytesMut::with_capacity(256);
    let mut scanner = ReplyScanner::new(Limits::default());
    for (name, _) in &commands {
        let frame = loop {
            match scanner.scan(&buf) {
                Ok(Some(frame)) => break buf.split_to(frame.len),
                Ok(None) => {}
                Err(e) => return Err(format!("{name} reply is not RESP: {e}")),
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("handshake read failed: {e}"))?;
            if n == 0 {
                return Err(format!("closed during {name}"));
            }
        };
        if frame.first() == Some(&b'-') {
            let text = String::from_utf8_lossy(frame.get(1..frame.len().saturating_sub(2)).unwrap_or_default());
            return Err(format!("{name} failed: {text}"));
        }
    }
    Ok(())
}
