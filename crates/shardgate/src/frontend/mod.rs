//! The client side: listening sockets and client sessions.
//!
//! # Layout
//! - [`listener`]: binding (`SO_REUSEPORT`, one socket per worker; unix
//!   sockets) and the accept loop with `client_connections` admission.
//! - [`session`]: one client connection's read-dispatch-write loop.
//! - [`tls`]: TLS clients: the bounded handshake, the stream.

pub mod listener;
pub mod session;
pub mod tls;

/// Which of a pool's addresses a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ReadWrite,
    /// `readonly_listen`: reads only, writes answered READONLY.
    ReadOnly,
    /// `tls_listen`: TLS, reads and writes.
    TlsReadWrite,
    /// `tls_readonly_listen`: TLS, reads only.
    TlsReadOnly,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::ReadWrite,
        Endpoint::ReadOnly,
        Endpoint::TlsReadWrite,
        Endpoint::TlsReadOnly,
    ];

    /// Its number between processes (a binary upgrade).
    pub fn index(self) -> u8 {
        match self {
            Endpoint::ReadWrite => 0,
            Endpoint::ReadOnly => 1,
            Endpoint::TlsReadWrite => 2,
            Endpoint::TlsReadOnly => 3,
        }
    }

    /// Writes are answered READONLY.
    pub fn readonly(self) -> bool {
        matches!(self, Endpoint::ReadOnly | Endpoint::TlsReadOnly)
    }

    /// Clients speak TLS.
    pub fn tls(self) -> bool {
        matches!(self, Endpoint::TlsReadWrite | Endpoint::TlsReadOnly)
    }

    /// Where this endpoint listens under `config`.
    pub fn addr(self, config: &crate::config::PoolConfig) -> Option<&crate::config::ListenAddr> {
        match self {
            Endpoint::ReadWrite => config.listen.as_ref(),
            Endpoint::ReadOnly => config.readonly_listen.as_ref(),
            Endpoint::TlsReadWrite => config.tls_listen.as_ref(),
            Endpoint::TlsReadOnly => config.tls_readonly_listen.as_ref(),
        }
    }
}
