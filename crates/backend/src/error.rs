//! Errors on the way to and from a backend, worded for the client.

use std::fmt;
use std::sync::Arc;

/// Why a backend could not answer a request. Cheap to clone: one failure
/// is often delivered to many waiting requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// `pool 'alpha' server 127.0.0.1:6379`
    pub server: Arc<str>,
    pub kind: BackendErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// Not connected (refused, unreachable, failed handshake); the reason is
    /// the last connect error. Nothing was sent: a retry is safe.
    Unavailable(Arc<str>),
    /// The request may have been sent, but the connection broke before its
    /// reply. The command may or may not have run.
    ConnectionLost(Arc<str>),
    /// No reply within the pool's `timeout`; the connection was closed.
    Timeout(u64),
    /// The server sent something that is not RESP; the connection was closed.
    Protocol(Arc<str>),
}

impl BackendError {
    /// The message sent to the client after `-`, e.g.
    /// `ERR shardgate: pool 'alpha' server 127.0.0.1:6379 is unavailable: Connection refused`.
    pub fn client_message(&self) -> String {
        format!("ERR shardgate: {self}")
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = &self.server;
        match &self.kind {
            BackendErrorKind::Unavailable(reason) => write!(f, "{server} is unavailable: {reason}"),
            BackendErrorKind::ConnectionLost(reason) => {
                write!(f, "connection to {server} lost before its reply: {reason}")
            }
            BackendErrorKind::Timeout(ms) => write!(f, "{server} did not reply within {ms} ms"),
            BackendErrorKind::Protocol(reason) => {
                write!(f, "{server} sent an invalid reply: {reason}")
            }
        }
    }
}

impl std::error::Error for BackendError {}

impl BackendErrorKind {
    /// The reason alone, for logs and for the next "unavailable" error.
    pub fn reason(&self) -> Arc<str> {
        match self {
            BackendErrorKind::Unavailable(r)
            | BackendErrorKind::ConnectionLost(r)
            | BackendErrorKind::Protocol(r) => r.clone(),
            BackendErrorKind::Timeout(ms) => format!("no reply within {ms} ms").into(),
        }
    }
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}
